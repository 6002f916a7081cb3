package sqlish

import (
	"errors"
	"fmt"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
	"github.com/tendril-db/tendril/topology"
)

// Sentinel errors, to test with errors.Is.
var (
	// ErrNoRows is returned by Row.Scan when the statement returned no row
	// (for Redis-like backends: a nil reply).
	ErrNoRows = errors.New("sqlish: no rows in result set")
	// ErrClosed is returned by every operation on a closed DB.
	ErrClosed = errors.New("sqlish: database is closed")
	// ErrConnDone is returned by operations on a Conn that was closed.
	ErrConnDone = errors.New("sqlish: connection is already closed")
	// ErrTxDone is returned by operations on a committed or rolled-back Tx.
	ErrTxDone = errors.New("sqlish: transaction has already been committed or rolled back")
	// ErrNotSupported is returned when the driver lacks the capability an
	// operation needs. It is the same value as driver.ErrNotSupported.
	ErrNotSupported = driver.ErrNotSupported
	// ErrPoolTimeout is returned when no connection to a node became free
	// within the acquire timeout; the error also names the node and the
	// time waited.
	ErrPoolTimeout = puddlepool.ErrAcquireTimeout
	// ErrClusterNameMismatch is returned when a node reports a cluster name
	// other than the configured cluster_name.
	ErrClusterNameMismatch = topology.ErrClusterNameMismatch
	// ErrNoNodes is returned when no node is available to serve a request.
	ErrNoNodes = topology.ErrNoNodes
	// ErrAuthFailed is wrapped by the errors that say a node refused the
	// credentials, or that Config.Credentials failed: not retried. It is
	// driver.ErrAuthFailed.
	ErrAuthFailed = driver.ErrAuthFailed
	// ErrOutcomeUnknown is wrapped by the error of a statement that may or
	// may not have run: an attempt failed after the statement may have
	// reached the server (a timeout, a connection lost mid-request), and
	// the statement is not idempotent, so it was not tried again. Check
	// the data before repeating it, or mark statements that may safely
	// run twice with WithIdempotent.
	ErrOutcomeUnknown = errors.New("sqlish: outcome unknown: the statement may or may not have run")
	// ErrSessionState is wrapped by the error of a statement that changes
	// the connection's session state (Redis SELECT, MULTI, WATCH, CLIENT
	// SETNAME...) run on the DB itself, whose connections are shared: run
	// it on a pinned Conn, whose session is reset before its connection
	// is reused.
	ErrSessionState = errors.New("sqlish: statement changes the connection's session state")
	// ErrWrongPartition is wrapped by the error of a statement on a Conn
	// or Tx for a partition other than the one the Conn is bound to.
	ErrWrongPartition = errors.New("sqlish: statement for another partition than the pinned connection's")
	// ErrQueued is returned by the result of a statement queued in a
	// transaction (Redis MULTI) when it is read before Commit.
	ErrQueued = errors.New("sqlish: the statement is queued in the transaction: its result is available after Commit")
	// ErrTxNotCommitted is wrapped by the error of Commit when it rolled
	// the transaction back instead: a statement of a transaction that
	// queues its statements until Commit (Redis MULTI) failed after it may
	// have been queued (a timeout, a cancelled context: its reply was
	// lost), so committing would run it, or not, unknown to the caller.
	// None of the transaction's statements ran: it may be run again.
	ErrTxNotCommitted = errors.New("sqlish: transaction not committed")
)

// ServerError is an error the server reported for one statement (for
// Redis: WRONGTYPE, ERR unknown command, ...). The connection that got it
// stays usable.
type ServerError = driver.ServerError

// NodeError is an error that happened on, or while reaching, one node.
type NodeError struct {
	Node string // node id, or the address when the id is not known yet
	Addr string // host:port
	Err  error
}

func (e *NodeError) Error() string {
	if e.Node == "" || e.Node == e.Addr {
		return fmt.Sprintf("sqlish: node %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("sqlish: node %s (%s): %v", e.Node, e.Addr, e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }
