// Package stdlib is a database/sql driver over tendril: importing it
// registers the driver "tendril", whose DSN is a tendril DSN. Its scheme
// names the tendril driver, whose package must be imported too:
//
//	import (
//		"database/sql"
//
//		_ "github.com/tendril-db/tendril/driver/postgres"
//		_ "github.com/tendril-db/tendril/stdlib"
//	)
//
//	db, err := sql.Open("tendril", "postgres://app:secret@db1,db2/shop?tend_interval=250ms")
//
// The same program talks to Redis with "redis://h1:7000,h2:7001" (and the
// driver/redis import). OpenDB opens a *sql.DB from a sqlish.Config, for
// what a DSN cannot carry (a Logger, a TracerProvider...); OpenDBFromDB
// shares an open *sqlish.DB, its pools and its topology, with code written
// for database/sql.
//
// Statements are tendril's: placeholders are the backend's own ($1, $2...
// for PostgreSQL; ? for Redis and memory, where extra arguments are
// appended to the command), results and errors are those of package
// sqlish (errors.As(err, new(*sqlish.ServerError)) gives a SQLSTATE),
// and a context made by sqlish.WithRead or sqlish.WithIdempotent works
// through database/sql's ...Context methods, which pass it on. With sqlx,
// give the bind type of the backend: sqlx.NewDb(db, "postgres") binds $1
// (sqlx.Rebind, sqlx.In, named queries); the driver name "tendril" binds ?,
// which is what Redis statements take.
//
// # Connections
//
// One sqlish.DB stands behind each *sql.DB: a pool per node, a topology
// tender, the retry policy. A database/sql "connection" is a thin handle
// on it, with no socket of its own:
//
//   - A statement on the *sql.DB, or on a *sql.Conn that has no session,
//     goes through the sqlish.DB: routed to the node that should serve it
//     (the primary; a replica for a read that sqlish.WithRead or the read
//     preference allows), retried within the policy, riding through a
//     failover. One handle is never tied to one node, so database/sql's
//     pool cannot pin an application to a dead primary.
//   - A transaction (BeginTx) runs on a connection of its own, pinned for
//     its life: sqlish's DB.BeginTx chooses the node (a read-only
//     transaction may go to a standby when read_preference allows). The
//     connection goes back to its node's pool, reset, at Commit or
//     Rollback.
//   - A statement that changes the session (SET, RESET, LISTEN, BEGIN...
//     on PostgreSQL; SELECT, WATCH, MULTI on Redis), which sqlish refuses
//     on its shared pools with ErrSessionState, makes the handle take a
//     pinned sqlish.Conn, on which it runs, and every later statement of
//     the handle, transactions included, until database/sql returns the
//     handle to its pool. So a *sql.Conn keeps its session from its first
//     session statement until Close. The handle is then discarded (IsValid
//     says false) and the pinned connection reset (DISCARD ALL, or closed)
//     before its node's pool reuses it: session state never leaks to
//     another caller. On the *sql.DB, where each statement takes any handle,
//     a session statement therefore lasts for itself only; use a *sql.Conn
//     (or a DSN key such as search_path) to keep a setting. A session begun
//     inside a transaction that the handle did not pin before ends with the
//     transaction: set it before BeginTx to keep it.
//
// # Pool settings
//
// database/sql's limits apply to handles, not to sockets:
//
//   - SetMaxOpenConns bounds the statements, open Rows, transactions and
//     *sql.Conns in use at once: a concurrency limit in front of tendril.
//     The sockets are bounded per node by max_conns_per_node; a
//     multiplexed backend (Redis) serves many statements per socket.
//   - SetMaxIdleConns keeps idle handles, which hold no socket and cost
//     an allocation to make: database/sql's default of 2 is fine, a larger
//     value saves a little garbage under concurrency. Idle sockets are
//     governed by max_idle_conns_per_node, min_conns_per_node and
//     idle_timeout.
//   - SetConnMaxLifetime and SetConnMaxIdleTime recycle handles, which
//     closes no socket: use max_conn_lifetime and idle_timeout in the DSN
//     to recycle connections to the nodes.
//   - DB.Stats counts handles. The nodes' pools are in sqlish.DB.Stats
//     (OpenDBFromDB keeps the sqlish.DB at hand).
//
// # Errors and driver.ErrBadConn
//
// database/sql retries an operation on another connection when the driver
// returns driver.ErrBadConn, which must mean that nothing was sent. The
// bridge returns it only where tendril did not retry already and the
// tendril driver says nothing was sent (its own driver.ErrBadConn, which
// the error still wraps): a BEGIN, or a statement on a pinned connection
// (a session's, a transaction's), that found its connection broken before
// sending. Later calls on such a handle get it at once, without sending;
// a *sql.Conn holding it is closed by database/sql. A statement through
// the sqlish.DB never gets it: the policy has already retried it on every
// node that could serve it within total_timeout, and another round from
// database/sql would only multiply that wait. Nor does a COMMIT, which
// may have run whatever became of its connection.
//
// LastInsertId is not supported (use RETURNING); named arguments
// (sql.Named) and sql.Out are refused before anything is sent. Arguments
// are passed to sqlish as they are, after database/sql Valuers
// (sql.NullString...) are asked for their value, so every type sqlish and
// the backend accept works.
package stdlib
