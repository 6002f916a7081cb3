// Package driver defines the interfaces a tendril backend implements.
//
// It mirrors database/sql/driver, made cluster-aware: a Driver turns a parsed
// configuration into a Connector without touching the network; the Connector
// dials one node at a time, describes the backend (its telemetry system name
// and capabilities) and routes statements to partitions; a Conn runs
// statements on one node. Optional behaviour is expressed as small interfaces
// (Pinger, SessionResetter, Validator, Batcher, Beginner, Infoer, Prober) and
// declared up front in Caps, so the user API and the conformance suite can
// tell a missing capability from a broken one.
//
// Users do not call these interfaces directly: they use package sqlish.
package driver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Value is a value passed to or returned by a driver. Arguments are
// normalized by sqlish to one of: nil, int64, uint64, float64, bool,
// []byte, string or time.Time, unless the Connector is a ValueConverter
// and accepts them as they are. Drivers return those types in rows, and
// may return others their database has (a slice for an array, a [16]byte
// UUID...): Scan assigns a value to a destination of its own type, and
// hands it to a database/sql Scanner. A []byte returned by Rows.Next may
// be reused by the driver after the next call, so the user API copies it
// before handing it out, unless the Rows implement OwnedValues (or the
// value came through RowQueryer or BatchResult.Row).
type Value = any

// ValueConverter is implemented by Connectors that accept argument types
// of their database as they are (int16, uint32, arrays, UUIDs, JSON,
// network addresses...), in the spirit of database/sql's
// NamedValueChecker: ConvertValue returns the value to hand to the Conn,
// or ErrSkip to let the user API apply its default conversion (Valuer, then
// the basic types above), or another error to refuse the argument.
type ValueConverter interface {
	ConvertValue(v any) (Value, error)
}

// ErrSkip is returned by a ValueConverter for a value it leaves to the
// default conversion.
var ErrSkip = errors.New("driver: skip fast-path; continue as if unimplemented")

// Valuer is implemented by argument types that convert themselves to a
// Value, like database/sql/driver.Valuer.
type Valuer interface {
	Value() (Value, error)
}

// Driver is the interface a backend registers with sqlish.Register.
type Driver interface {
	// OpenConnector validates cfg, including the driver-specific keys in
	// cfg.Params, and returns a Connector. It must not dial: Open never
	// blocks on the network. An unknown key is reported as a *ParamError.
	OpenConnector(cfg Config) (Connector, error)
}

// Config is what a driver receives: the parts of the user's configuration
// that concern how to reach and talk to the nodes. Pooling, topology and
// policy settings stay in sqlish.
type Config struct {
	Scheme      string   // the DSN scheme, e.g. "redis"
	Hosts       []string // seed addresses, "host:port" (IPv6 as "[::1]:7000")
	User        string
	Password    string
	Namespace   string // the DSN path: a database, keyspace or namespace
	ClusterName string // when set, nodes of another cluster are refused
	AuthMode    string // "internal" or "pki"
	Timeout     time.Duration
	TLS         *tls.Config       // nil when TLS is off
	Params      map[string]string // driver-specific keys, unvalidated
	// SocketTimeout bounds one request on one node. A driver that
	// declares CapRequestTimeout enforces it itself, cheaper than a
	// context per request.
	SocketTimeout time.Duration
	// ReplicaReads is set when the read preference lets reads go to
	// replicas, so connections must be ready to serve them (Redis:
	// READONLY).
	ReplicaReads bool
	// Credentials, when not nil, gives the user and password of every new
	// connection in place of User and Password (see Credentials).
	Credentials Credentials
}

// String describes the configuration with the password redacted.
func (c Config) String() string {
	pass := ""
	if c.Password != "" {
		pass = "xxxxx"
	}
	return fmt.Sprintf("driver.Config{Scheme:%s Hosts:%v User:%q Password:%s Namespace:%q ClusterName:%q AuthMode:%s Timeout:%v TLS:%v Params:%d keys SocketTimeout:%v ReplicaReads:%v Credentials:%v}",
		c.Scheme, c.Hosts, c.User, pass, c.Namespace, c.ClusterName, c.AuthMode, c.Timeout, c.TLS != nil, len(c.Params), c.SocketTimeout, c.ReplicaReads, c.Credentials != nil)
}

// GoString is String, so that %#v cannot print the password either.
func (c Config) GoString() string { return c.String() }

// Format prints String whatever the verb: printed field by field (%d,
// %x...) the Config would show its password.
func (c Config) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Credentials supplies the user name and password (or token) that
// connections log in with, for credentials that change while the program
// runs: a rotated password, a cloud IAM token (ElastiCache, MemoryDB, RDS,
// Entra ID). Where Config.Credentials is set, a driver calls it for every
// new connection, with the context of the dial (bounded by the connect
// timeout), and uses what it returns instead of Config.User and
// Config.Password; an empty user keeps Config.User. Drivers whose
// connections can log in again while they are open (Redis: AUTH) also
// call it from the topology tender's probes (once a tend_interval, at most
// once a second), and connections then log in again with credentials that
// changed (see each driver's documentation): a rotation reaches open
// connections within about max(tend_interval, 1s), or at once when a new
// connection is dialled.
//
// It must be safe for concurrent use, and should answer from a cache
// refreshed ahead of expiry: it runs on the dial path. An error fails the
// connection with a *CredentialsError, which wraps ErrAuthFailed: it is
// not retried. The password is never printed by tendril; the provider's
// own error text must not hold it either.
type Credentials interface {
	Credentials(ctx context.Context) (user, password string, err error)
}

// CredentialsFunc is a function used as Credentials.
type CredentialsFunc func(ctx context.Context) (user, password string, err error)

// Credentials calls f.
func (f CredentialsFunc) Credentials(ctx context.Context) (user, password string, err error) {
	return f(ctx)
}

// CredentialsError reports that the Credentials provider failed, so a
// connection could not log in. It wraps ErrAuthFailed (callers fail at
// once instead of retrying) and the provider's error.
type CredentialsError struct {
	Addr string // the node the connection was for
	Err  error  // the provider's error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("credentials provider failed for a connection to %s: %v", e.Addr, e.Err)
}

func (e *CredentialsError) Unwrap() []error { return []error{ErrAuthFailed, e.Err} }

// Login returns the user and password a new connection to addr logs in
// with: cfg.Credentials' answer when it is set (an empty user keeps
// cfg.User), else cfg.User and cfg.Password. A provider's error is a
// *CredentialsError.
func (c *Config) Login(ctx context.Context, addr string) (user, password string, err error) {
	if c.Credentials == nil {
		return c.User, c.Password, nil
	}
	user, password, err = c.Credentials.Credentials(ctx)
	if err != nil {
		return "", "", &CredentialsError{Addr: addr, Err: err}
	}
	if user == "" {
		user = c.User
	}
	return user, password, nil
}

// Connector dials nodes of one configured cluster. It is safe for
// concurrent use.
type Connector interface {
	// Connect opens one connection to the node at addr, honouring ctx's
	// deadline for the dial and the handshake.
	Connect(ctx context.Context, addr string) (Conn, error)
	// Backend describes the backend; it is constant for a Connector.
	Backend() Backend
	Router
}

// Backend describes a backend for telemetry and for capability checks.
type Backend struct {
	// System is the OpenTelemetry db.system.name, e.g. "redis".
	System string
	// Caps lists the optional interfaces this backend's Conns implement.
	Caps Caps
}

// Intent says whether a statement reads or writes.
type Intent uint8

const (
	Write Intent = iota // the default: must go to a primary
	Read                // may be served by a replica when the policy allows
)

func (i Intent) String() string {
	if i == Read {
		return "read"
	}
	return "write"
}

// AnyPartition is the Route.Partition of a statement that any node may serve.
const AnyPartition = -1

// Route is where and how a statement should run.
type Route struct {
	// Op is the operation name used in telemetry (db.operation.name), e.g.
	// "GET". It never contains argument values.
	Op string
	// Key is the routing key, nil when the statement has none.
	Key []byte
	// Partition is the partition (slot) the key maps to, or AnyPartition.
	Partition int
	// Intent is Read or Write.
	Intent Intent
	// Idempotent reports that the statement may safely run twice, so it can
	// be retried even after it may have reached the server.
	Idempotent bool
	// Exclusive reports that the statement needs a connection to itself
	// for its whole run (a blocking command such as BLPOP), even when the
	// backend's connections are multiplexed.
	Exclusive bool
	// Unsure reports that the driver cannot tell from the statement
	// whether it writes (SQL: SELECT nextval(...), WITH ... INSERT, SELECT
	// ... FOR UPDATE): Intent is then Write, to be safe, and the caller may
	// declare the statement a read (sqlish.WithRead) so that a replica may
	// serve it. A statement the driver knows to write is never sent to a
	// replica, whatever the caller says.
	Unsure bool
	// Session reports that the statement changes the connection's session
	// state (the selected database, a transaction, WATCH, subscriptions,
	// client flags, credentials...): state that would leak into other
	// callers' statements if the connection were shared or pooled as it
	// is. The user API refuses such statements outside a pinned connection,
	// and resets (or destroys) a pinned connection that ran one before it
	// is reused.
	Session bool
}

// Router maps a statement and its arguments to a Route.
type Router interface {
	Route(query string, args []Value) (Route, error)
}

// PrepareRouter is implemented by Connectors that can route a statement
// and encode it for their Conns in one pass. For each statement of a
// batch, the user API calls RoutePrepare instead of Route, and hands what
// it appended to buf to the Conn's Batcher or BatchSender in
// Stmt.Prepared: each statement is then parsed once. On an error,
// RoutePrepare returns buf as it was given. The Route is Route's; what it
// appends is read only by the driver's own Conns.
type PrepareRouter interface {
	RoutePrepare(query string, args []Value, buf []byte) (Route, []byte, error)
}

// Conn is one connection to one node. It is used by one goroutine at a
// time unless the driver documents otherwise. Its methods (and a Router's)
// must not keep the args slice after they return: the user API reuses it
// (the values in it may be kept).
type Conn interface {
	// Exec runs a statement whose rows, if any, are discarded.
	Exec(ctx context.Context, query string, args []Value) (Result, error)
	// Query runs a statement and returns its rows.
	Query(ctx context.Context, query string, args []Value) (Rows, error)
	// Close closes the connection.
	Close() error
}

// Result summarises an executed statement.
type Result interface {
	// RowsAffected is the number of rows (keys, fields, elements) the
	// statement affected, as the backend reports it.
	RowsAffected() (int64, error)
}

// RowsAffected is a Result holding a count.
type RowsAffected int64

// RowsAffected returns the count.
func (n RowsAffected) RowsAffected() (int64, error) { return int64(n), nil }

// Rows is an iterator over a statement's result.
type Rows interface {
	// Columns returns the column names; its length is the width of dest.
	Columns() []string
	// Next fills dest with the next row and returns io.EOF when there is
	// none left.
	Next(dest []Value) error
	// Close releases the rows. It may be called more than once.
	Close() error
}

// RowQueryer is implemented by Conns that can answer a query expected to
// return at most one row without a Rows object, and without boxing a
// []byte value in a Value: each costs an allocation, and a key-value GET
// needs neither. The user API's QueryRow uses it.
type RowQueryer interface {
	// QueryRow runs query and stores the first row of its result in row
	// (the rest is discarded). It returns io.EOF when there is no row.
	// The values are the caller's: the driver keeps no reference to them
	// and never reuses their memory, unless it sets row.Shared.
	QueryRow(ctx context.Context, query string, args []Value, row *Row) error
}

// InlineColumns is the number of columns a Row holds in place; the values
// of wider rows continue in Row.More.
const InlineColumns = 2

// Row receives the first row of a RowQueryer's result.
type Row struct {
	// Columns names the row's columns, any number of them.
	Columns []string
	// Values holds column i's value for i < InlineColumns, unless Bytes[i]
	// is not nil: a []byte value may be stored there instead (an empty one
	// as a non-nil empty slice), which saves boxing it.
	Values [InlineColumns]Value
	Bytes  [InlineColumns][]byte
	// More holds the values of columns InlineColumns and beyond.
	More []Value
	// Types describes the columns, when the driver knows their types
	// (see RowsColumnTypes); nil otherwise.
	Types []ColumnType
	// Shared says that the row's []byte values are shared with the driver
	// (a client-side cache serves them to every caller): they are read
	// only, and the user API copies them before handing them out.
	Shared bool
}

// Value returns column i's value, boxing a []byte held in Bytes.
func (r *Row) Value(i int) Value {
	if i >= InlineColumns {
		return r.More[i-InlineColumns]
	}
	if b := r.Bytes[i]; b != nil {
		return b
	}
	return r.Values[i]
}

// ColumnType describes a result column, as database/sql's ColumnType does.
type ColumnType struct {
	Name string
	// DatabaseType is the database's name for the type in upper case
	// ("INT8", "TEXT", "TIMESTAMPTZ"); "" when unknown.
	DatabaseType string
	// Nullable reports whether the column may be NULL; NullableKnown
	// whether the driver knows.
	Nullable, NullableKnown bool
	// ScanType is the Go type the driver returns for the column's values
	// (nil when unknown).
	ScanType reflect.Type
	// Length is the column's length for variable-length types (HasLength).
	Length    int64
	HasLength bool
	// Precision and Scale are a decimal's (HasPrecisionScale).
	Precision, Scale  int64
	HasPrecisionScale bool
}

// RowsColumnTypes is implemented by Rows that describe their columns.
type RowsColumnTypes interface {
	ColumnTypes() []ColumnType
}

// OwnedValues is implemented by Rows whose []byte values are never reused
// by the driver, so the user API may keep them without copying (for
// example when it reads a batch's results into memory).
type OwnedValues interface {
	OwnedValues()
}

// Pinger is implemented by Conns that can check the node is alive.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SessionResetter is implemented by Conns that hold session state which
// must be reset before the connection is reused by another caller. The
// user API calls it every time a connection it used alone (a Conn, a Tx,
// Rows holding a connection, any statement of a backend without
// multiplexing) goes back to its pool, so it must be cheap — no I/O, no
// allocation — when there is nothing to reset. ctx carries no deadline of
// its own: a reset that does I/O bounds it by Config.SocketTimeout (or a
// default of the driver's when that is 0). An error means the session
// could not be restored: the connection is closed, never reused.
type SessionResetter interface {
	ResetSession(ctx context.Context) error
}

// Validator is implemented by Conns that know when they can no longer be
// used; an invalid Conn is closed instead of being returned to its pool.
type Validator interface {
	IsValid() bool
}

// Spreader is implemented by multiplexed Conns (CapMultiplex) that can
// tell when sharing them costs more than it saves: Crowded reports that
// the connection's recent statements carried large values, so that the
// next one had better have the connection to itself: a server may handle
// large requests and replies queued behind each other on one connection at
// a higher cost than on connections of their own (Redis does: it builds
// the replies queued on a connection before writing them out, a slice per
// turn of its event loop, and by then they have left its CPU's cache).
// The user API then runs the statement on the connection without lending
// it to other callers, who take (or dial) another while the node's pool
// has room: large values spread over as many connections as callers, small
// ones keep sharing one. Crowded must be cheap (no I/O, no allocation, no
// lock).
type Spreader interface {
	Crowded() bool
}

// Stmt is one statement of a batch.
type Stmt struct {
	Query string
	Args  []Value
	// Prepared, when not nil, is the statement as the Connector's
	// PrepareRouter encoded it while routing it: a Batcher (or
	// BatchSender) uses it instead of parsing Query and Args again. Its
	// content is the driver's own business. It is valid until the batch
	// returns (or its PendingBatch was waited for), and must not be kept.
	Prepared []byte
}

// BatchResult is the outcome of one statement of a batch: rows or an error.
type BatchResult struct {
	Rows Rows
	Err  error
	// Row holds the result instead when Rows, Result and Err are nil:
	// exactly one row, as a RowQueryer delivers it, which saves the Rows
	// object and the boxing of a []byte value.
	Row Row
	// Result holds the result of a statement that returned no rows (an
	// INSERT's command tag), when Rows and Err are nil.
	Result Result
}

// Batcher is implemented by Conns that pipeline several statements in one
// round trip. Batch stores statement i's outcome in out[i]: the caller
// gives out, zeroed, as long as stmts, and may reuse it once it has read
// the results (so a result must not share memory with out). The returned
// error is for a failure of the whole batch (for example a broken
// connection); a statement that failed on its own reports it in its
// BatchResult.
type Batcher interface {
	Batch(ctx context.Context, stmts []Stmt, out []BatchResult) error
}

// BatchSender is implemented by Conns that can send a batch without waiting
// for its outcome: Batcher's Batch in two halves. The user API sends the
// statements of a batch that go to several nodes to each node in turn from
// one goroutine, then waits for each node's outcome, instead of running a
// goroutine per node. SendBatch has Batch's contract for stmts and out,
// except that the caller reads out only once Wait has returned; it must
// not keep stmts. An error from SendBatch is a failure of the whole batch,
// as Batch's, and leaves nothing to wait for.
type BatchSender interface {
	SendBatch(ctx context.Context, stmts []Stmt, out []BatchResult) (PendingBatch, error)
}

// PendingBatch is a batch sent by a BatchSender. Wait must be called
// exactly once: it waits for the outcome, stores it in out and returns
// what Batch would have returned. When ctx ends first, Wait returns
// promptly with an error wrapping ctx's; the connection is then left as
// after a statement whose caller gave up (still usable, or retired by the
// driver).
type PendingBatch interface {
	Wait(ctx context.Context) error
}

// IsolationLevel is a transaction's isolation level, as database/sql has
// them.
type IsolationLevel uint8

const (
	LevelDefault IsolationLevel = iota // the database's default
	LevelReadUncommitted
	LevelReadCommitted
	LevelWriteCommitted
	LevelRepeatableRead
	LevelSnapshot
	LevelSerializable
	LevelLinearizable
)

var levelNames = [...]string{"default", "read uncommitted", "read committed", "write committed",
	"repeatable read", "snapshot", "serializable", "linearizable"}

func (l IsolationLevel) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("IsolationLevel(%d)", l)
}

// TxOptions configures a transaction. A driver refuses, with an error
// wrapping ErrNotSupported, options its database cannot honour.
type TxOptions struct {
	Isolation IsolationLevel
	// ReadOnly makes the transaction read-only; with a read_preference
	// that allows it, it may run on a replica (a PostgreSQL standby).
	ReadOnly bool
	// Deferrable, with Serializable and ReadOnly, lets a PostgreSQL
	// transaction wait for a snapshot that cannot fail to serialize.
	Deferrable bool
}

// Tx is an open transaction on one Conn.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// QueuedTx is implemented by a Tx whose statements the server queues and
// runs only at Commit (Redis MULTI/EXEC): until then a statement's Exec or
// Query only says whether it was queued (an error: it was not). The user
// API then hands the statements' results to the caller after Commit.
type QueuedTx interface {
	Tx
	// CommitResults commits and returns one result per statement queued
	// since the transaction began, in order, as a Batcher returns them. A
	// transaction that did not run at all (aborted) is an error.
	CommitResults(ctx context.Context) ([]BatchResult, error)
}

// Beginner is implemented by Conns that support transactions.
type Beginner interface {
	BeginTx(ctx context.Context, opts TxOptions) (Tx, error)
}

// Infoer is implemented by Conns that answer administrative info commands
// (Redis INFO, Aerospike info), returning the node's text answer.
type Infoer interface {
	Info(ctx context.Context, cmd string) (string, error)
}

// Role is a node's role in its partition's replication.
type Role uint8

const (
	RoleUnknown Role = iota
	RolePrimary
	RoleReplica
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	}
	return "unknown"
}

// NodeStatus is what a probe learns about a node.
type NodeStatus struct {
	ID          string // stable node id
	ClusterName string // "" when the backend has none
	Role        Role
	// PeersGen and PartitionGen change whenever the node's view of the
	// peer list or of the partition map changes, so a tender only fetches
	// them when needed.
	PeersGen     uint64
	PartitionGen uint64
	Healthy      bool
	// Epoch orders the views of a failover: when two nodes both report
	// RolePrimary, the one with the higher epoch is the real primary (a
	// PostgreSQL timeline; 0 when the backend has none).
	Epoch uint64
}

// Peer is a node as another node advertises it.
type Peer struct {
	ID        string
	Addr      string
	AltAddr   string // the alternate (services-alternate) address, if any
	Role      Role
	PrimaryID string // for a replica, the id of its primary
}

// Shard is a set of partitions served by one primary and its replicas.
type Shard struct {
	// Ranges are inclusive [from, to] partition ranges.
	Ranges   [][2]int
	Primary  string   // node id
	Replicas []string // node ids
}

// PartitionMap is the partition layout of a cluster.
type PartitionMap struct {
	Partitions int // number of partitions, e.g. 16384 for Redis Cluster
	Shards     []Shard
}

// Prober is implemented by Conns of clustered backends: it is how the
// topology tender discovers and follows the cluster.
type Prober interface {
	Probe(ctx context.Context) (NodeStatus, error)
	Peers(ctx context.Context) ([]Peer, error)
	PartitionMap(ctx context.Context) (PartitionMap, error)
}

// Caps is a set of optional capabilities a backend declares.
type Caps uint32

const (
	CapPing         Caps = 1 << iota // Pinger
	CapResetSession                  // SessionResetter
	CapValidate                      // Validator
	CapBatch                         // Batcher
	CapTx                            // Beginner
	CapInfo                          // Infoer
	CapTopology                      // Prober
	CapClusterName                   // nodes report a cluster name to validate
	// CapMultiplex says Conns are safe for concurrent use (requests are
	// pipelined and matched to replies): the pool lends a connection only
	// while a statement is handed over, so one socket serves many callers.
	// Rows from such a Conn must not depend on it (they are read in full).
	CapMultiplex
	// CapRequestTimeout says Conns bound every non-exclusive request by
	// Config.SocketTimeout themselves, failing it with an error wrapping
	// context.DeadlineExceeded: the user API then sets no per-attempt
	// context deadline of its own.
	CapRequestTimeout
)

var capNames = []string{"ping", "reset_session", "validate", "batch", "tx", "info", "topology", "cluster_name", "multiplex", "request_timeout"}

// Has reports whether c includes every capability of x.
func (c Caps) Has(x Caps) bool { return c&x == x }

func (c Caps) String() string {
	var names []string
	for i, n := range capNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Implemented returns the capabilities whose interfaces conn implements.
// CapClusterName, CapMultiplex and CapRequestTimeout have no interface and
// are never included.
func Implemented(conn Conn) Caps {
	var c Caps
	if _, ok := conn.(Pinger); ok {
		c |= CapPing
	}
	if _, ok := conn.(SessionResetter); ok {
		c |= CapResetSession
	}
	if _, ok := conn.(Validator); ok {
		c |= CapValidate
	}
	if _, ok := conn.(Batcher); ok {
		c |= CapBatch
	}
	if _, ok := conn.(Beginner); ok {
		c |= CapTx
	}
	if _, ok := conn.(Infoer); ok {
		c |= CapInfo
	}
	if _, ok := conn.(Prober); ok {
		c |= CapTopology
	}
	return c
}

// Retry says whether an attempt that failed with an error may be tried
// again, and when.
type Retry uint8

const (
	// RetryDefault: the driver does not know the error; the user API's
	// generic rules apply (a failure before sending is retried, a server
	// error is not, anything else only for idempotent statements).
	RetryDefault Retry = iota
	// RetryNever: the error is the statement's own outcome (a syntax
	// error, WRONGTYPE, a constraint); another attempt cannot help.
	RetryNever
	// RetryLater: the statement did not run because the node is busy
	// (Redis LOADING, BUSY, TRYAGAIN); another attempt after a pause may
	// succeed, whatever the statement.
	RetryLater
	// RetryRefresh: the statement did not run because the client's view
	// of the topology is stale (Redis CLUSTERDOWN, MASTERDOWN): retry once
	// the topology has been refreshed, whatever the statement.
	RetryRefresh
	// RetryDemoted: the statement did not run because the node no longer
	// takes writes (Redis READONLY; PostgreSQL 25006, a read-only
	// transaction on a demoted primary): the node's role is stale. It is
	// not written to again until a probe says it is a primary; retry once
	// the topology has been refreshed, whatever the statement.
	RetryDemoted
)

func (r Retry) String() string {
	switch r {
	case RetryNever:
		return "never"
	case RetryLater:
		return "later"
	case RetryRefresh:
		return "refresh"
	case RetryDemoted:
		return "demoted"
	}
	return "default"
}

// Classifier is implemented by Connectors that know which of their
// backend's errors may be retried.
type Classifier interface {
	// Classify says what err, returned by one attempt of a statement,
	// means for another attempt. Errors it does not know are RetryDefault.
	Classify(err error) Retry
}

// ErrBadConn is returned by a Conn that found itself unusable before the
// statement could reach the server; the caller discards the connection and
// may safely retry elsewhere (like database/sql/driver.ErrBadConn).
var ErrBadConn = errors.New("driver: bad connection")

// ErrAuthFailed is wrapped by errors that say a server refused the
// credentials. Retrying cannot help, so callers fail at once instead of
// waiting for the node to recover.
var ErrAuthFailed = errors.New("authentication failed")

// ErrNotSupported is returned for an operation the backend does not offer.
// sqlish.ErrNotSupported is the same value.
var ErrNotSupported = errors.New("operation not supported by this driver")

// ServerError is an error reported by the server for one statement, e.g.
// Redis' "WRONGTYPE Operation against a key holding the wrong kind of
// value". The connection remains usable.
type ServerError struct {
	// Code is the error's code: Redis' prefix ("ERR", "WRONGTYPE",
	// "MOVED"), a PostgreSQL SQLSTATE ("23505").
	Code string
	Msg  string // the full message as the server sent it
	// The fields below are a SQL server's details (PostgreSQL's error
	// fields), empty when the server gives none.
	Severity   string // "ERROR", "FATAL", "PANIC"
	Detail     string
	Hint       string
	Position   int // 1-based character position in the statement, 0: none
	Where      string
	Schema     string
	Table      string
	Column     string
	DataType   string
	Constraint string
}

func (e *ServerError) Error() string { return e.Msg }

// ParamLister is implemented by Drivers that list the driver-specific
// keys they know, so that a configuration can be printed with the values
// of those keys only: the value of a key no driver knows (a misspelled
// "passwd=") may be a secret.
type ParamLister interface {
	Params() []string
}

// ParamError reports a bad driver-specific key or value.
type ParamError struct {
	Key    string
	Value  string   // the offending value; never a credential
	Reason string   // e.g. "unknown key", "not a positive integer"
	Valid  []string // the keys the driver knows, for unknown keys
}

func (e *ParamError) Error() string {
	if e.Reason == "unknown key" {
		return fmt.Sprintf("unknown key %q (valid keys: %s)", e.Key, strings.Join(e.Valid, ", "))
	}
	return fmt.Sprintf("bad value %q for key %q: %s", e.Value, e.Key, e.Reason)
}

// Resolver is implemented by Connectors whose seed names stand for several
// nodes (as a DNS name may have several addresses). The tender resolves
// every seed when it starts and again when every known node has failed.
// Without a Resolver, a seed host is resolved through DNS.
type Resolver interface {
	Resolve(ctx context.Context, seed string) ([]string, error)
}

// RedirectError is returned by a Conn when the node says a partition is
// served elsewhere: Redis Cluster's MOVED (the partition has moved for
// good) and ASK (ask the other node, once, while the partition migrates).
type RedirectError struct {
	Partition int
	Addr      string // where to go, host:port
	Ask       bool   // a one-off redirect: do not update the partition map
	Err       error  // the server's error, e.g. "MOVED 3999 127.0.0.1:6381"
}

func (e *RedirectError) Error() string { return e.Err.Error() }
func (e *RedirectError) Unwrap() error { return e.Err }

type askKey struct{}

// WithAsk marks an attempt that follows an ASK redirect: the Conn must
// tell the node so (Redis: ASKING) in the same round trip as the statement.
func WithAsk(ctx context.Context) context.Context { return context.WithValue(ctx, askKey{}, true) }

// IsAsk reports whether ctx was marked by WithAsk.
func IsAsk(ctx context.Context) bool { return ctx.Value(askKey{}) != nil }

type cacheKey struct{}

// WithCache returns a context whose reads may be served from the driver's
// client-side cache, and cached for at most ttl (a driver may keep an entry
// for less, e.g. until the key expires on the server). ttl <= 0 asks for a
// read from the server, not cached. Without WithCache, the driver's default
// applies (Redis: cache_ttl). A driver without a cache ignores it: the
// result is the same, only slower.
func WithCache(ctx context.Context, ttl time.Duration) context.Context {
	return context.WithValue(ctx, cacheKey{}, ttl)
}

// CacheTTL returns the ttl of ctx's WithCache, and whether it has one.
func CacheTTL(ctx context.Context) (time.Duration, bool) {
	ttl, ok := ctx.Value(cacheKey{}).(time.Duration)
	return ttl, ok
}

// CacheStats counts what a driver's client-side cache did (see WithCache).
type CacheStats struct {
	Hits, Misses  int64 // reads served from the cache, and cacheable reads that were not
	Invalidations int64 // entries the server said changed
	Evictions     int64 // entries dropped to fit the cache's budget
	Entries       int   // entries held now
	Bytes         int64 // their approximate size
}

// RowCacher is implemented by a Connector whose client-side cache can
// answer a read without a connection. Before a QueryRow takes a
// connection, the user API asks CachedRow, which parses the statement once:
// it routes it, calls pick with the route for the address of the node that
// would serve it ("" to give up), and looks in that node's cache. true
// means row holds the statement's first row (err is io.EOF when it has
// none) served from the cache, with row.Shared set; false means nothing was
// done and the statement runs as usual (a miss, a statement not to cache,
// caching off under ctx).
type RowCacher interface {
	CachedRow(ctx context.Context, query string, args []Value, pick func(Route) string, row *Row) (bool, error)
}

// CacheStatser is implemented by a Connector with a client-side cache.
type CacheStatser interface {
	CacheStats() CacheStats
}
