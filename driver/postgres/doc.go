// Package postgres is tendril's PostgreSQL backend, registered as
// "postgres" and "postgresql" (telemetry system name "postgresql"): a
// primary and its streaming standbys, on pgx's pgconn (wire protocol,
// SCRAM-SHA-256 and other authentication, TLS, cancellation, pipeline
// mode) and pgtype (encoding and decoding), with tendril's topology and
// per-node pools on top. pgx.Conn and pgxpool are not used.
//
//	import _ "github.com/tendril-db/tendril/driver/postgres"
//
//	db, err := sqlish.Open("postgres", "postgres://app:secret@db1:5432,db2:5432/shop?read_preference=prefer_replica")
//
// # DSN
//
// postgres://user:password@host1:port1[,host2:port2...]/dbname?key=value...
// (the port defaults to 5432). List every node, primary and standbys: a
// node does not tell where its peers are; the tender probes each one for
// its role (pg_is_in_recovery()), its cluster (the system identifier,
// checked against cluster_name when set) and its timeline, so that of two
// nodes that both say they are primary the one promoted last wins.
//
// The DSN is the only source of settings: PG* environment variables,
// service files and .pgpass do not change the credentials, TLS, target
// roles or session settings (the parser reads PGSERVICE, and fails when it
// names a service that does not exist). Driver keys:
//
//	sslmode               disable, require, verify-ca or verify-full. The
//	                      default is disable; verify-full with tls=true,
//	                      tls_ca or sslrootcert (require with
//	                      tls_insecure_skip_verify, or with only a client
//	                      certificate). prefer and allow are refused: TLS
//	                      never falls back to plaintext, and a server
//	                      without TLS fails the connection. require with a
//	                      root certificate verifies the chain, as libpq
//	                      does. verify-full checks the host of the DSN (or
//	                      tls_server_name, with tls=true).
//	sslrootcert           the CA file (or "system"); tls_ca also works
//	sslcert, sslkey       the client certificate and key; or tls_cert and
//	                      tls_key (for "cert" authentication, or TLS that
//	                      checks the client as well as a password)
//	channel_binding       disable, prefer (default) or require: SCRAM-SHA-256
//	                      bound to the TLS channel (SCRAM-SHA-256-PLUS), so
//	                      that a man in the middle holding a certificate the
//	                      client trusts cannot relay the login; require
//	                      needs TLS and refuses a server that does not bind
//	require_auth          the authentication methods the server may ask
//	                      for, as libpq's: password, md5, scram-sha-256,
//	                      gss, sspi, oauth, none, comma-separated, or each
//	                      negated with ! (e.g. scram-sha-256: never send a
//	                      password in clear or as md5)
//	application_name      sent at connect; a session reset keeps it
//	search_path, timezone session defaults sent at connect
//	statement_cache_size  prepared statements kept per connection, least
//	                      recently used evicted (default 256; 0: none, each
//	                      statement with arguments is then prepared unnamed
//	                      before each run, one more round trip)
//
// # Authentication
//
// pgconn answers what the server asks for: a password (SCRAM-SHA-256,
// with channel binding over TLS; md5; or clear text, which a server
// checking it against LDAP, RADIUS or PAM asks for: use TLS), or a TLS
// client certificate (pg_hba "cert", or "clientcert=verify-full" with a
// password). require_auth and channel_binding refuse a server that asks
// for less. With sqlish.Config.Credentials, each new connection asks the
// provider for its user and password (a rotated password, an RDS IAM
// token); PostgreSQL checks a password at login only, so the connections
// already open are not touched. auth_mode=pki insists on a client
// certificate.
//
// # Statements and routing
//
// Placeholders are PostgreSQL's own ($1, $2...), passed through as they
// are. A statement's first word does not say whether it writes, so every
// statement goes to the primary unless the caller declares a read
// (sqlish.WithRead) or runs a read-only transaction; with read_preference
// prefer_replica or replica those go to a standby. A write declared a read
// fails on the standby with SQLSTATE 25006, and the error says so (the
// user API retries it until total_timeout first: from the driver's side
// it cannot be told from a write that met a demoted primary).
//
// Statements that change the session (SET other than SET LOCAL, RESET,
// DISCARD, PREPARE, DEALLOCATE, LISTEN, UNLISTEN, transaction control,
// DECLARE, CREATE [OR REPLACE] TEMP, SELECT INTO TEMP, any object named
// in pg_temp, LOAD, UPDATE pg_settings, set_config, setseed,
// session-level advisory locks, dblink_connect; EXPLAIN ANALYZE of any of
// them) are refused on the DB's shared pool: run them on a pinned
// sqlish.Conn, whose connection is reset when it goes back (below). A DO
// block runs on the shared pool, and its connection is reset (DISCARD
// ALL) before it is reused, as it may have changed anything. What the
// driver cannot see is a function, procedure, trigger or rule that
// changes the session from inside (set_config(..., false), a temporary
// table): call such code on a pinned Conn, or make it change only its
// transaction (SET LOCAL, set_config(..., true)).
//
// COPY FROM STDIN and COPY TO STDOUT are refused (ErrNotSupported): the
// driver does not speak the copy sub-protocol.
//
// Exec without arguments uses the simple query protocol: one round trip,
// and the string may hold several statements. Otherwise a statement is
// prepared once per connection and run by name, its parameters encoded in
// binary for their types, its rows requested in binary for the types
// decoded below. A cached statement whose result type changed under it
// (ALTER TABLE, SQLSTATE 0A000) or that the server dropped (26000) is
// prepared again and run once more when it ran alone; inside a
// transaction the error stands (the transaction is aborted). FETCH and
// EXECUTE, whose result columns can change under the same text without
// the server saying so (another cursor or prepared statement of the same
// name), have their columns described with every result.
//
// # Arguments
//
// Besides the basic types, arguments pgtype can encode are passed as they
// are and encoded for the parameter's type: int16, int32, uint32,
// [16]byte (a UUID), slices ([]int64, []string, [][]byte... for arrays),
// json.RawMessage, time.Duration (an interval), netip.Addr and
// netip.Prefix, pgtype values and database/sql Valuers. A string is sent
// as text, which the server parses into the parameter's type. Arguments
// that do not fit the parameters (a type pgtype cannot encode for the
// parameter's type, a wrong count) fail before anything is sent, with an
// error wrapping sqlish.ErrNotSupported.
//
// # Results
//
//	int2, int4, int8, oid               int64
//	float4, float8                      float64
//	bool                                bool
//	text, varchar, bpchar, name, "char" string
//	bytea                               []byte
//	json, jsonb                         []byte (the JSON text)
//	timestamptz                         time.Time in UTC, microseconds kept
//	timestamp                           time.Time: the wall clock, in UTC
//	date                                time.Time: midnight UTC
//	                                    (infinity and -infinity: the strings)
//	uuid                                [16]byte
//	numeric                             string (exact)
//	interval                            string, as the server prints it
//	                                    (months and days are not durations)
//	arrays of the types above           []int64, []float64, []bool, []string,
//	                                    [][]byte, []time.Time, [][16]byte;
//	                                    []any when an element is NULL;
//	                                    nested []any when multi-dimensional
//	anything else                       its text, as a string
//
// Rows describe their columns (sqlish.Rows.ColumnTypes): the type's name
// in upper case ("INT8", "TIMESTAMPTZ", "_TEXT" for text[]), the Go type
// above, the length of varchar(n) and the precision and scale of
// numeric(p,s). A statement without rows gives the count of its command
// tag ("INSERT 0 5": 5), in batches too.
//
// # Batches
//
// sqlish.DB.SendBatch sends a node's statements in pipeline mode in one
// round trip (plus one to prepare the statements the connection has not
// prepared yet). Each statement's outcome is as if it ran alone, in its
// own implicit transaction: one that fails reports its error on its
// result, and the others run and commit all the same. When every
// statement is plain DML (SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES,
// TABLE, or WITH one of them), they share one Sync, so that the server
// answers in one flush: one implicit transaction, which on any failure
// (the commit's included) rolls back, and the batch runs again with a
// Sync per statement. What shows: the statements see one now(), hold their
// locks until the batch ends, and a failed first try may have used
// sequence values. Other statements (DDL, VACUUM...) get a Sync each.
// Put statements that must succeed or fail together in a transaction.
// A statement whose cached plan went stale (0A000, after an ALTER TABLE)
// runs again only where that keeps the batch's order: in the grouped
// first try, or as the last statement; otherwise its result reports the
// error (nothing of it ran; the batch's next run prepares it again).
//
// # Transactions and sessions
//
// BeginTx sends BEGIN with the isolation level (read uncommitted, read
// committed, repeatable read, serializable; others wrap
// sqlish.ErrNotSupported), READ ONLY or READ WRITE, and DEFERRABLE. A
// COMMIT the server answers with ROLLBACK (the transaction had failed) is
// an error wrapping ErrCommitRollback.
//
// When a pinned connection goes back to its pool, an open or failed
// transaction is rolled back and, if a statement changed the session,
// DISCARD ALL restores it (the statement cache is cleared with it); when
// nothing changed nothing is sent. A connection that reached its node as
// a primary is discarded once the server reports in_hot_standby=on
// (PostgreSQL 14+), so a demoted primary's pool serves no more writes.
//
// # Cancellation and errors
//
// A statement whose context ends is cancelled on the server (a
// CancelRequest on a connection of its own, over TLS when the statement's
// is): it returns the context's error, a few milliseconds after the
// context ended, and the connection stays usable. The connection runs
// nothing else until the server has closed the cancel request's
// connection: a server signals the cancelled backend twice, and a second
// signal that lands late must not cancel the next statement. A server
// that does not act on the cancel within 80 ms has the connection cut
// instead.
// socket_timeout bounds each statement with a deadline on the socket (no
// context or timer per statement): a statement that outlives it fails
// with an error wrapping context.DeadlineExceeded that names the limit,
// and its connection is closed. The
// rows of a Query stream from the connection after Query returns: the
// statement's deadline still bounds them, and closing them early reads
// and discards the rest.
//
// The server's errors are *driver.ServerError (sqlish.ServerError) with
// the SQLSTATE as Code and the error fields (Detail, Hint, Constraint...),
// reached with errors.As; a refused password wraps sqlish's
// driver.ErrAuthFailed and names the user, never the password. The
// connector classifies errors for the retry policy: 25006 on a standby
// (a demoted primary) is retried once the topology is refreshed;
// 57P01-57P03 (shutdown, starting up) after a refresh; 40001 and 40P01
// (serialization failure, deadlock) and 53300 (too many connections) after
// a pause, the former only for a statement outside a transaction; any
// other server error is final.
package postgres
