package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/errlist"
	"github.com/tendril-db/tendril/topology"
)

// Conn is a connection pinned to one node, for session state (a selected
// database, WATCH) and transactions.
//
// On a partitioned backend (a Redis Cluster) a Conn binds to the partition
// of its first keyed statement: its connection is taken then, from the pool
// of that partition's primary, so WATCH, MULTI and EXEC over keys of one
// partition work whichever node owns it. A later statement for another
// partition fails with ErrWrongPartition (keep a transaction's keys in one
// partition, with a Redis hash tag). Keyless statements before the first
// keyed one run on any node without binding, unless they change the
// session (then they bind the Conn to the node they ran on). On a backend
// without partitions the Conn takes its connection at once.
//
// Statements on a Conn are not retried: a retry could land on another
// connection. Close resets the session (the driver undoes what the Conn's
// statements changed, or the connection is closed) and returns the
// connection to its pool; an open transaction is rolled back first.
type Conn struct {
	db *DB

	mu      sync.Mutex
	closed  bool
	busy    bool  // a statement or open Rows hold the connection
	closing bool  // Close was called while busy: finish when done
	undo    bool  // Rollback was called while busy: roll back when done
	lastErr error // the last error that may leave the connection unusable

	// The fields below belong to whoever set busy (or, once closed, to
	// Close): no lock is needed to read or write them.
	l    *lease // the pinned connection; nil until bound
	part int    // the partition bound to (driver.AnyPartition: a node only)
	tx   *Tx    // the open transaction
}

var errConnBusy = errors.New("sqlish: Conn is busy with open Rows; close them first")

// Conn returns a connection pinned to one node until it is closed, for
// session state and transactions. On a partitioned backend it is bound by
// its first keyed statement (see Conn); otherwise Conn takes the
// connection now, waiting at most total_timeout for one.
func (db *DB) Conn(ctx context.Context) (*Conn, error) {
	return db.conn(ctx, driver.Write)
}

// conn is Conn; intent is Read for a read-only transaction, which a
// replica may serve when read_preference allows it.
func (db *DB) conn(ctx context.Context, intent driver.Intent) (*Conn, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	c := &Conn{db: db, part: driver.AnyPartition}
	wctx := ctx
	if t := db.cfg.Policy.TotalTimeout; t > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	s, err := db.tender.Wait(wctx)
	if err != nil {
		return nil, fmt.Errorf("sqlish: Conn: %w", err)
	}
	if s.Partitions() == 0 {
		if c.l, err = db.pin(ctx, driver.Route{Op: "CONN", Partition: driver.AnyPartition, Intent: intent}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// pin takes a connection of its own on the node serving route, waiting
// (bounded by total_timeout) while no healthy node serves it or its pool
// cannot give a connection.
func (db *DB) pin(ctx context.Context, route driver.Route) (*lease, error) {
	if t := db.cfg.Policy.TotalTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	_, hasDeadline := ctx.Deadline()
	b := newBudget(db.cfg.Policy, hasDeadline)
	var last error
	for {
		if db.closed.Load() {
			return nil, ErrClosed
		}
		n := db.tender.Snapshot().Pick(route, db.pref, 0)
		if n == nil || !n.Healthy() {
			last = db.noNode(route, n)
			if err := db.awaitNode(ctx, &b); err != nil {
				if err != ctx.Err() && !errors.Is(err, ErrNoNodes) {
					last = fmt.Errorf("sqlish: %s: %w", route.Op, err) // the tender says why
				}
				break
			}
			continue
		}
		l, err := db.acquireExclusive(ctx, n)
		if err == nil {
			return l, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		v := judge(err, false, false, db.classify(err))
		if !b.allow(v) || db.await(ctx, v, &b) != nil {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(last, ctx.Err()) {
		return nil, fmt.Errorf("sqlish: %s: waiting for a connection: %w (last error: %v)", route.Op, ctx.Err(), last)
	}
	return nil, last
}

// grab marks the Conn busy for one call.
func (c *Conn) grab() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.db.closed.Load():
		return ErrClosed
	case c.closed:
		return ErrConnDone
	case c.busy:
		return errConnBusy
	}
	c.busy = true
	return nil
}

// done ends a call (or the Rows it returned); err is its error. A
// Rollback that came while the Conn was busy runs first, before anything
// else can take the Conn.
func (c *Conn) done(err error) {
	c.mu.Lock()
	if err != nil && !keepsConn(err) {
		c.lastErr = err
	}
	if c.undo {
		c.undo = false
		c.mu.Unlock()
		tx := c.tx
		c.tx = nil
		rerr := c.abort(tx)
		c.mu.Lock()
		if rerr != nil && c.lastErr == nil {
			c.lastErr = rerr
		}
	}
	c.busy = false
	finish := c.closing
	c.closing = false
	c.mu.Unlock()
	if finish {
		c.finish()
	}
}

// bind returns the lease a statement of route runs on, binding the Conn
// when it must: temp is set when the statement runs unbound, on a
// connection of its own that the caller releases.
func (c *Conn) bind(ctx context.Context, route driver.Route) (l *lease, temp bool, err error) {
	db := c.db
	s := db.tender.Snapshot()
	partitioned := s.Partitions() > 0
	keyed := partitioned && route.Partition != driver.AnyPartition
	if c.l != nil {
		if !keyed || c.part == route.Partition {
			return c.l, false, nil
		}
		if c.part == driver.AnyPartition && s.Primary(route.Partition) == c.l.n {
			c.part = route.Partition // bound to the node by a keyless statement
			return c.l, false, nil
		}
		return nil, false, c.wrongPartition(s, route)
	}
	if !keyed && !route.Session && c.tx == nil {
		// Nothing to bind to: run it anywhere.
		l, err := db.pin(ctx, route)
		return l, true, err
	}
	pr := route
	pr.Intent = driver.Write // a pinned connection goes to the primary...
	if c.tx != nil && c.tx.opts.ReadOnly {
		pr.Intent = driver.Read // ...unless a read-only transaction may go elsewhere
	}
	if l, err = db.pin(ctx, pr); err != nil {
		return nil, false, err
	}
	c.l = l
	if keyed {
		c.part = route.Partition
	}
	return l, false, nil
}

func (c *Conn) wrongPartition(s *topology.Snapshot, route driver.Route) error {
	where := ""
	if n := s.Primary(route.Partition); n != nil {
		where = " (served by " + n.Addr() + ")"
	}
	bound := "node " + c.l.n.Addr()
	if c.part != driver.AnyPartition {
		bound = fmt.Sprintf("partition %d on node %s", c.part, c.l.n.Addr())
	}
	return fmt.Errorf("%w: %s is for partition %d%s, the Conn is bound to %s; keep a Conn's keys in one partition (a Redis hash tag) or use another Conn",
		ErrWrongPartition, route.Op, route.Partition, where, bound)
}

// stmt is one statement on the Conn: routed, bound, with its arguments.
type stmt struct {
	l     *lease
	temp  bool
	route driver.Route
	dargs []driver.Value
}

// prepare makes the Conn busy and readies a statement, beginning an open
// transaction on the server when the statement binds the Conn. On error
// the Conn is not busy.
func (c *Conn) prepare(ctx context.Context, query string, args []any) (*stmt, error) {
	if err := c.grab(); err != nil {
		return nil, err
	}
	st := &stmt{}
	var err error
	if st.dargs, err = normalizeArgs(c.db.converter, args); err == nil {
		if st.route, err = c.db.connector.Route(query, st.dargs); err != nil {
			err = fmt.Errorf("sqlish: %w", err)
		}
	}
	if err == nil {
		st.l, st.temp, err = c.bind(ctx, st.route)
	}
	if err == nil && c.tx != nil && c.tx.tx == nil {
		err = c.tx.begin(ctx)
	}
	if err != nil {
		c.done(nil)
		return nil, err
	}
	return st, nil
}

// attemptCtx bounds one statement on the Conn by socket_timeout; a
// blocking statement is bounded by its own timeout and ctx only.
func (c *Conn) attemptCtx(ctx context.Context, route driver.Route) (context.Context, context.CancelFunc) {
	if t := c.db.cfg.Policy.SocketTimeout; t > 0 && !blocking(route) {
		return context.WithTimeout(ctx, t)
	}
	return ctx, noop
}

// after records what a statement did to the connection: err is its error.
func (c *Conn) after(st *stmt, err error) error {
	if st.route.Session {
		st.l.dirty = true
	}
	if err != nil && c.db.classify(err) == driver.RetryDemoted {
		c.db.tender.Demote(st.l.n, err) // the pinned node no longer takes writes
	}
	var re *driver.RedirectError
	if errors.As(err, &re) {
		// The partition moved under the pinned connection: the tender
		// learns of it for the next Conn; this one cannot follow.
		c.db.tender.Redirect(re.Partition, re.Addr, re.Ask)
		err = fmt.Errorf("sqlish: %s: partition %d moved to %s while the Conn was pinned to %s: %w", st.route.Op, re.Partition, re.Addr, st.l.n.Addr(), err)
	}
	if st.temp {
		st.l.release(err)
		st.l = nil
	}
	return err
}

// Exec runs a statement on this connection and discards its rows.
func (c *Conn) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	return c.exec(ctx, query, args)
}

func (c *Conn) exec(ctx context.Context, query string, args []any) (Result, error) {
	st, err := c.prepare(ctx, query, args)
	if err != nil {
		return nil, err
	}
	n := st.l.n
	actx, cancel := c.attemptCtx(ctx, st.route)
	defer cancel()
	var ob observation
	if c.db.tel.on(actx) {
		actx = c.observe(actx, &ob, n, st.route, query, len(st.dargs))
	}
	res, err := st.l.conn().Exec(actx, query, st.dargs)
	c.lost(err, st.route.Op)
	err = c.after(st, c.outcome(ctx, st.route, err))
	if err == nil {
		res = c.queue(res, st.route.Op)
	}
	c.done(err)
	c.db.tel.finish(actx, &ob, st.route, nodeErr(n, err))
	return res, nodeErr(n, err)
}

// observe starts observing a statement on the pinned connection: one
// attempt, on its node.
func (c *Conn) observe(ctx context.Context, ob *observation, n *topology.Node, route driver.Route, query string, nargs int) context.Context {
	ctx = c.db.tel.begin(ctx, ob, route, query, nargs)
	ob.node, ob.attempts = n, 1
	return ctx
}

// Query runs a statement on this connection. The Conn is busy until the
// rows are closed, which happens at the latest when ctx ends.
func (c *Conn) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	return c.query(ctx, query, args)
}

func (c *Conn) query(ctx context.Context, query string, args []any) (*Rows, error) {
	st, err := c.prepare(ctx, query, args)
	if err != nil {
		return nil, err
	}
	n := st.l.n
	actx, cancel := c.attemptCtx(ctx, st.route)
	defer cancel()
	var ob observation
	if c.db.tel.on(actx) {
		actx = c.observe(actx, &ob, n, st.route, query, len(st.dargs))
	}
	dr, err := st.l.conn().Query(actx, query, st.dargs)
	c.lost(err, st.route.Op)
	err = c.after(st, c.outcome(ctx, st.route, err))
	if err != nil {
		c.done(err)
		c.db.tel.finish(actx, &ob, st.route, nodeErr(n, err))
		return nil, nodeErr(n, err)
	}
	c.db.tel.finish(actx, &ob, st.route, nil)
	if q := c.queued(st.route.Op); q != nil {
		dr.Close()
		c.done(nil)
		return &Rows{queued: q}, nil
	}
	rows := newRows(dr, c.done)
	rows.watch(ctx)
	return rows, nil
}

// QueryRow runs a statement expected to return at most one row.
func (c *Conn) QueryRow(ctx context.Context, query string, args ...any) *Row {
	rows, err := c.Query(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Ping checks the connection's node (any node while the Conn is unbound).
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.grab(); err != nil {
		return err
	}
	l := c.l
	if l == nil {
		c.done(nil)
		return c.db.Ping(ctx)
	}
	var err error
	if p, ok := l.conn().(driver.Pinger); ok {
		err = p.Ping(ctx)
	}
	c.done(err)
	return nodeErr(l.n, err)
}

// BeginTx starts a transaction on this connection. On a partitioned
// backend an unbound Conn begins it on the server with its first
// statement, on the node of that statement's partition.
func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (*Tx, error) {
	if !c.db.backend.Caps.Has(driver.CapTx) {
		return nil, fmt.Errorf("sqlish: BeginTx on %s: %w", c.db.backend.System, ErrNotSupported)
	}
	if err := c.grab(); err != nil {
		return nil, err
	}
	if c.tx != nil {
		c.done(nil)
		return nil, errors.New("sqlish: BeginTx: a transaction is already open on this Conn")
	}
	tx := &Tx{c: c, opts: opts}
	c.tx = tx
	var err error
	if c.l != nil {
		err = tx.begin(ctx)
	}
	if err != nil {
		c.tx = nil
	}
	c.done(err)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// Close rolls back an open transaction, resets the session and returns
// the connection to its pool (or closes it, when it may be unusable). It
// is idempotent. A Conn closed while its Rows are open is finished when
// they are closed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.busy {
		c.closing = true
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.finish()
	return nil
}

// finish ends a closed Conn: a transaction still open is rolled back,
// then the connection goes back to its pool through the lease's checks.
func (c *Conn) finish() {
	l, tx := c.l, c.tx
	c.l, c.tx = nil, nil
	c.mu.Lock()
	err := c.lastErr
	c.mu.Unlock()
	if tx != nil && tx.markDone() {
		if rerr := c.abort(tx); rerr != nil && err == nil {
			err = rerr
		}
	}
	if l != nil {
		l.release(err)
	}
}

// abort rolls back tx, marked done, on the server for a Rollback or a
// Close that could not run when it was called, bounded as a reset is. It
// returns the error that may leave the connection unusable. The Conn is
// busy, or closed.
func (c *Conn) abort(tx *Tx) error {
	if tx == nil || tx.tx == nil {
		return nil
	}
	err := c.rollback(tx)
	tx.settle(nil, errRolledBack)
	return err
}

// rollback rolls tx back on the server, bounded as a reset is, and
// returns the error that may leave the connection unusable.
func (c *Conn) rollback(tx *Tx) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.db.resetTimeout())
	defer cancel()
	if err := tx.tx.Rollback(ctx); err != nil && !keepsConn(err) {
		return err
	}
	return nil
}

// resetTimeout bounds the clean-up of a pinned connection.
func (db *DB) resetTimeout() time.Duration {
	if t := db.cfg.Policy.SocketTimeout; t > 0 {
		return t
	}
	return defaultResetTimeout
}

// defaultResetTimeout bounds a clean-up when no socket_timeout is set.
const defaultResetTimeout = 5 * time.Second

var errRolledBack = errors.New("sqlish: the transaction was rolled back: the statement did not run")

// BeginTx starts a transaction on a pinned connection, bound as a Conn is
// (see Conn): on a partitioned backend, to the partition of its first
// keyed statement. It returns ErrNotSupported when the driver has no
// transactions. The connection goes back to its pool at Commit or
// Rollback.
//
// On a backend that queues a transaction's statements and runs them at
// Commit (Redis MULTI/EXEC), the Result, Rows and Row of a statement in
// the transaction hold its outcome only after Commit: read before, they
// return ErrQueued.
func (db *DB) BeginTx(ctx context.Context, opts driver.TxOptions) (*Tx, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if !db.backend.Caps.Has(driver.CapTx) {
		return nil, fmt.Errorf("sqlish: BeginTx on %s: %w", db.backend.System, ErrNotSupported)
	}
	intent := driver.Write
	if opts.ReadOnly {
		intent = driver.Read
	}
	c, err := db.conn(ctx, intent)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	tx.ownsConn = true
	return tx, nil
}

// Tx is a transaction on a pinned connection.
type Tx struct {
	c        *Conn
	opts     driver.TxOptions
	tx       driver.Tx // nil until begun on the server
	ownsConn bool      // opened by DB.BeginTx: close the Conn when done
	// queue holds the statements a driver.QueuedTx queued, for Commit to
	// hand their results.
	queue []*deferred
	// lost is the error of the first statement of a driver.QueuedTx that
	// may have been queued although it failed (see Conn.lost): Commit then
	// rolls back.
	lost error

	done atomic.Bool
}

// begin begins the transaction on the Conn's connection. The caller
// holds the Conn busy.
func (tx *Tx) begin(ctx context.Context) error {
	b, ok := tx.c.l.conn().(driver.Beginner)
	if !ok {
		return fmt.Errorf("sqlish: BeginTx on %s: %w", tx.c.db.backend.System, ErrNotSupported)
	}
	actx, cancel := tx.c.attemptCtx(ctx, driver.Route{})
	defer cancel()
	dtx, err := b.BeginTx(actx, tx.opts)
	if err != nil {
		return nodeErr(tx.c.l.n, err)
	}
	tx.tx = dtx
	return nil
}

func (tx *Tx) check() error {
	if tx.done.Load() {
		return ErrTxDone
	}
	return nil
}

// markDone ends the transaction, reporting whether it was still open.
func (tx *Tx) markDone() bool { return tx.done.CompareAndSwap(false, true) }

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.c.exec(ctx, query, args)
}

// Query runs a statement in the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.c.query(ctx, query, args)
}

// QueryRow runs a statement expected to return at most one row.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	rows, err := tx.Query(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Commit commits the transaction. With a driver that queues statements
// until Commit (Redis), the statements' results are available once it
// returns, and it fails, naming them, when some statements failed.
//
// While Rows of the Conn are open Commit fails, and the transaction stays
// open: close them, then Commit again (or Rollback).
func (tx *Tx) Commit(ctx context.Context) error { return tx.end(ctx, true) }

// Rollback aborts the transaction. It returns ErrTxDone after Commit or
// Rollback, so `defer tx.Rollback(ctx)` is safe. While Rows of the Conn
// are open the transaction is rolled back when they are closed, before
// anything else runs on the Conn.
func (tx *Tx) Rollback(ctx context.Context) error { return tx.end(ctx, false) }

func (tx *Tx) end(ctx context.Context, commit bool) error {
	c := tx.c
	later, err := c.grabEnd(tx, commit)
	if errors.Is(err, ErrTxDone) || errors.Is(err, errConnBusy) {
		return err // the Tx stays as it was: done, or open for another Commit
	}
	if err == nil && !later {
		err = tx.run(ctx, commit)
		c.tx = nil
		c.done(err)
	}
	// Otherwise the rollback runs when the Conn is done (later), or
	// when it is finished (a closed Conn or DB).
	if tx.ownsConn {
		c.Close()
	}
	return err
}

// grabEnd marks the Conn busy for ending tx and marks tx done. A Rollback
// on a busy Conn is not refused: tx is marked done and later is set, the
// rollback left to done. A Commit on a busy Conn is refused, tx left open:
// the Conn's statements would otherwise run in a transaction the caller
// was told is over, and be rolled back with it. So are both on a closed
// Conn or DB, whose finish rolls tx back.
func (c *Conn) grabEnd(tx *Tx, commit bool) (later bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case tx.done.Load():
		return false, ErrTxDone
	case c.db.closed.Load():
		return false, ErrClosed
	case c.closed:
		return false, ErrConnDone
	case c.busy && commit:
		return false, fmt.Errorf("%w (Commit refused: the transaction is still open)", errConnBusy)
	case !tx.markDone():
		return false, ErrTxDone
	case c.busy:
		c.undo = true
		return true, nil
	}
	c.busy = true
	return false, nil
}

// run commits or rolls back on the server; the Conn is busy.
func (tx *Tx) run(ctx context.Context, commit bool) error {
	if tx.tx == nil { // nothing ran: nothing to end
		return nil
	}
	c := tx.c
	actx, cancel := c.attemptCtx(ctx, driver.Route{})
	defer cancel()
	if !commit {
		err := tx.tx.Rollback(actx)
		tx.settle(nil, errRolledBack)
		return nodeErr(c.l.n, err)
	}
	qtx, ok := tx.tx.(driver.QueuedTx)
	if !ok {
		err := tx.tx.Commit(actx)
		tx.unsure(err)
		return commitErr(c.l.n, err)
	}
	if tx.lost != nil {
		// EXEC would run a statement the caller was told failed, and
		// its results would not match the queue: nothing runs instead.
		// The cause is not wrapped: the transaction's outcome is known.
		err := fmt.Errorf("%w: rolled back, none of its statements ran, because %v", ErrTxNotCommitted, tx.lost)
		if rerr := tx.tx.Rollback(actx); rerr != nil {
			err = fmt.Errorf("%w (rollback: %v)", err, rerr)
		}
		tx.settle(nil, errRolledBack)
		return nodeErr(c.l.n, err)
	}
	res, err := qtx.CommitResults(actx)
	tx.unsure(err)
	err = commitErr(c.l.n, err)
	if err == nil && len(res) != len(tx.queue) {
		err = fmt.Errorf("sqlish: driver bug: %d transaction results for %d queued statements", len(res), len(tx.queue))
	}
	if err != nil {
		tx.settle(nil, err)
		return err
	}
	return tx.settle(res, nil)
}

// unsure ends the transaction on the server after its COMMIT (EXEC)
// failed with err before it was sent, or with its reply lost: it may not
// have reached the server (a context already done), and the transaction
// would stay open, the Conn's next statements running in it (queued in
// the MULTI) and rolled back with it, though each reported success. A
// ROLLBACK (DISCARD) ends it; after a COMMIT that did run it ends nothing.
// A rollback that fails leaves the connection to be destroyed.
func (tx *Tx) unsure(err error) {
	if err == nil || !lostReply(err) && !errors.Is(err, driver.ErrBadConn) {
		return
	}
	c := tx.c
	if rerr := c.rollback(tx); rerr != nil {
		c.mu.Lock()
		if c.lastErr == nil {
			c.lastErr = rerr
		}
		c.mu.Unlock()
	}
}

// commitErr is the error of a COMMIT (or EXEC) on n. One whose reply may
// have been lost after the server got it (see lostReply) wraps
// ErrOutcomeUnknown, as a statement's does (see runAttempts): the
// transaction must not run again unchecked.
func commitErr(n *topology.Node, err error) error {
	switch {
	case err == nil:
		return nil
	case lostReply(err):
		return fmt.Errorf("sqlish: Commit: %w (the transaction may have been committed): %w", ErrOutcomeUnknown, nodeErr(n, err))
	}
	return nodeErr(n, err)
}

// lostReply reports whether err, from a COMMIT or EXEC, may have come
// after the server got it: not a reply of the server's, nor a failure
// before anything was sent (driver.ErrBadConn), nor the driver's reading
// of a reply, a bare error of its own (Redis's ErrTxAborted: EXEC
// answered nil). A reply is lost when a context ends (a timeout, a
// cancellation) or the connection breaks, an error that carries its cause
// (a network error, EOF, the closed connection's error).
func lostReply(err error) bool {
	switch {
	case settled(err):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// settled reports whether err says what became of the request: the
// server answered it (a server error, no rows, a redirect), or it was not
// sent (driver.ErrBadConn; ErrNotSupported, refused before sending).
func settled(err error) bool {
	var re *driver.RedirectError
	return keepsConn(err) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &re)
}

// settle hands each queued statement its result (res[i]) or err, and
// returns the statements' own errors joined.
func (tx *Tx) settle(res []driver.BatchResult, err error) error {
	var failed error
	for i, q := range tx.queue {
		if err != nil {
			q.err = err
		} else {
			q.res, q.err = readResult(&res[i])
			if q.err != nil {
				failed = errlist.Append(failed, fmt.Errorf("statement %d (%s): %w", i+1, q.op, q.err))
			}
		}
		q.ready.Store(true)
	}
	tx.queue = nil
	if failed != nil {
		return fmt.Errorf("sqlish: transaction ran, but: %w", failed)
	}
	return nil
}

// deferred is a statement a driver.QueuedTx queued: its result comes
// with Commit.
type deferred struct {
	op    string
	ready atomic.Bool // res and err are set
	res   batchResult
	err   error
}

// lost records in the open transaction, when it queues its statements
// (driver.QueuedTx), a statement (op) that failed with err after it may
// have reached the server: a timeout or a cancelled context (not a reply
// of the server's, not a failure before it was sent). The server may have
// queued it, unknown to the queue, so Commit must not run the
// transaction. The Conn is busy.
func (c *Conn) lost(err error, op string) {
	tx := c.tx
	if err == nil || tx == nil || tx.tx == nil || tx.lost != nil || settled(err) {
		return
	}
	if _, ok := tx.tx.(driver.QueuedTx); !ok {
		return
	}
	tx.lost = fmt.Errorf("statement %d (%s) failed after it may have been queued: %w", len(tx.queue)+1, op, err)
}

// outcome wraps ErrOutcomeUnknown into the error of a statement run on
// the Conn outside a transaction that may have run: a write sent before
// its reply was lost (a timeout, a broken connection), as runAttempts
// does for the DB's. A Conn retries nothing, and a caller that ran it
// again might apply it twice. In a transaction the commit settles it.
func (c *Conn) outcome(ctx context.Context, route driver.Route, err error) error {
	if err == nil || c.tx != nil || judge(err, true, idempotent(ctx, route), c.db.classify(err)) != unknown {
		return err
	}
	return fmt.Errorf("sqlish: %s: %w: %w", route.Op, ErrOutcomeUnknown, err)
}

// queued returns the slot of the statement just run when the open
// transaction queues statements, nil otherwise. The Conn is busy.
func (c *Conn) queued(op string) *deferred {
	if c.tx == nil || c.tx.tx == nil {
		return nil
	}
	if _, ok := c.tx.tx.(driver.QueuedTx); !ok {
		return nil
	}
	q := &deferred{op: op}
	c.tx.queue = append(c.tx.queue, q)
	return q
}

// queue returns res, or the deferred result of a queued statement.
func (c *Conn) queue(res driver.Result, op string) Result {
	if q := c.queued(op); q != nil {
		return queuedResult{q}
	}
	return res
}

// queuedResult is the Result of a statement queued in a transaction.
type queuedResult struct{ q *deferred }

func (r queuedResult) RowsAffected() (int64, error) {
	if !r.q.ready.Load() {
		return 0, ErrQueued
	}
	if r.q.err != nil {
		return 0, r.q.err
	}
	return r.q.res.affected(), nil
}
