package sqlish

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tendril-db/tendril/driver"
)

// Conn is one connection pinned to one node, for session state and
// transactions. Statements on a Conn are not retried: a retry could land on
// another connection. Close returns the connection to its pool.
type Conn struct {
	db *DB

	mu     sync.Mutex
	l      *lease // nil once closed
	busy   bool   // open Rows hold the connection
	lastEr error  // the last error, to judge the connection on Close
}

var errConnBusy = errors.New("sqlish: Conn is busy with open Rows; close them first")

// grab locks the connection for one call.
func (c *Conn) grab() (*lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.db.closed.Load():
		return nil, ErrClosed
	case c.l == nil:
		return nil, ErrConnDone
	case c.busy:
		return nil, errConnBusy
	}
	c.busy = true
	return c.l, nil
}

func (c *Conn) done(err error) {
	c.mu.Lock()
	c.busy = false
	if err != nil && !keepsConn(err) {
		c.lastEr = err
	}
	c.mu.Unlock()
}

func (c *Conn) args(ctx context.Context, args []any) (context.Context, context.CancelFunc, []driver.Value, error) {
	dargs, err := normalizeArgs(args)
	if err != nil {
		return ctx, nil, nil, err
	}
	cancel := context.CancelFunc(noop)
	if t := c.db.cfg.Policy.SocketTimeout; t > 0 {
		ctx, cancel = context.WithTimeout(ctx, t)
	}
	return ctx, cancel, dargs, nil
}

// Exec runs a statement on this connection and discards its rows.
func (c *Conn) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	l, err := c.grab()
	if err != nil {
		return nil, err
	}
	ctx, cancel, dargs, err := c.args(ctx, args)
	if err != nil {
		c.done(nil)
		return nil, err
	}
	defer cancel()
	var ob observation
	var route driver.Route
	if c.db.tel.on(ctx) {
		ctx, route = c.observe(ctx, &ob, l, query, dargs)
	}
	res, err := l.conn().Exec(ctx, query, dargs)
	c.done(err)
	err = nodeErr(l.n, err)
	c.db.tel.finish(ctx, &ob, route, err)
	return res, err
}

// observe starts observing a statement on the pinned connection: one
// attempt, on its node.
func (c *Conn) observe(ctx context.Context, ob *observation, l *lease, query string, dargs []driver.Value) (context.Context, driver.Route) {
	route, err := c.db.connector.Route(query, dargs)
	if err != nil {
		route = driver.Route{Op: "UNKNOWN"}
	}
	ctx = c.db.tel.begin(ctx, ob, route, query, len(dargs))
	ob.node, ob.attempts = l.n, 1
	return ctx, route
}

// Query runs a statement on this connection. The Conn is busy until the
// rows are closed.
func (c *Conn) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	l, err := c.grab()
	if err != nil {
		return nil, err
	}
	ctx, cancel, dargs, err := c.args(ctx, args)
	if err != nil {
		c.done(nil)
		return nil, err
	}
	defer cancel()
	var ob observation
	var route driver.Route
	if c.db.tel.on(ctx) {
		ctx, route = c.observe(ctx, &ob, l, query, dargs)
	}
	dr, err := l.conn().Query(ctx, query, dargs)
	if err != nil {
		c.done(err)
		err = nodeErr(l.n, err)
		c.db.tel.finish(ctx, &ob, route, err)
		return nil, err
	}
	c.db.tel.finish(ctx, &ob, route, nil)
	return newRows(dr, c.done), nil
}

// QueryRow runs a statement expected to return at most one row.
func (c *Conn) QueryRow(ctx context.Context, query string, args ...any) *Row {
	rows, err := c.Query(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Ping checks the connection's node.
func (c *Conn) Ping(ctx context.Context) error {
	l, err := c.grab()
	if err != nil {
		return err
	}
	if p, ok := l.conn().(driver.Pinger); ok {
		err = p.Ping(ctx)
	}
	c.done(err)
	return nodeErr(l.n, err)
}

// BeginTx starts a transaction on this connection.
func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (*Tx, error) {
	l, err := c.grab()
	if err != nil {
		return nil, err
	}
	b, ok := l.conn().(driver.Beginner)
	if !ok {
		c.done(nil)
		return nil, fmt.Errorf("sqlish: BeginTx on %s: %w", c.db.backend.System, ErrNotSupported)
	}
	dtx, err := b.BeginTx(ctx, opts)
	c.done(err)
	if err != nil {
		return nil, nodeErr(l.n, err)
	}
	return &Tx{c: c, tx: dtx}, nil
}

// Close returns the connection to its pool (or closes it, when an error
// may have left it unusable). It is idempotent; open Rows keep working
// until they are closed.
func (c *Conn) Close() error {
	c.mu.Lock()
	l, err := c.l, c.lastEr
	c.l = nil
	c.mu.Unlock()
	if l != nil {
		l.release(err)
	}
	return nil
}

// Tx is a transaction on a pinned connection.
type Tx struct {
	c        *Conn
	tx       driver.Tx
	ownsConn bool // opened by DB.BeginTx: close the Conn when done

	mu   sync.Mutex
	done bool
}

func (tx *Tx) check() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.c.Exec(ctx, query, args...)
}

// Query runs a statement in the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return tx.c.Query(ctx, query, args...)
}

// QueryRow runs a statement expected to return at most one row.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	rows, err := tx.Query(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Commit commits the transaction.
func (tx *Tx) Commit(ctx context.Context) error { return tx.end(ctx, tx.tx.Commit) }

// Rollback aborts the transaction. It returns ErrTxDone after Commit or
// Rollback, so `defer tx.Rollback(ctx)` is safe.
func (tx *Tx) Rollback(ctx context.Context) error { return tx.end(ctx, tx.tx.Rollback) }

func (tx *Tx) end(ctx context.Context, f func(context.Context) error) error {
	tx.mu.Lock()
	if tx.done {
		tx.mu.Unlock()
		return ErrTxDone
	}
	tx.done = true
	tx.mu.Unlock()
	l, err := tx.c.grab()
	if err == nil {
		err = f(ctx)
		tx.c.done(err)
		err = nodeErr(l.n, err)
	}
	if tx.ownsConn {
		tx.c.Close()
	}
	return err
}
