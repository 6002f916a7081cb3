package stdlib

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"

	tdriver "github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// conn is a database/sql connection: a handle on the connector's
// sqlish.DB that holds a pinned sqlish.Conn only once a session statement
// needed one, and a sqlish.Tx while a transaction is open (see the package
// documentation). database/sql never uses a connection from two
// goroutines at once, so its fields need no lock; Rows, which may be
// closed from another goroutine, touch only sqlish's own objects.
type conn struct {
	c    *connector
	pin  *sqlish.Conn // the session, once a session statement ran
	tx   *sqlish.Tx   // the open transaction
	bad  error        // set when the pinned connection broke: nothing more is sent
	owns bool         // opened by drv.Open: closing it closes the connector
}

// Compile-time checks of the interfaces database/sql looks for.
var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.StmtExecContext    = (*stmt)(nil)
	_ driver.StmtQueryContext   = (*stmt)(nil)
)

// ExecContext implements driver.ExecerContext.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.bad != nil {
		return nil, c.bad
	}
	vals := values(args)
	var res sqlish.Result
	var err error
	switch {
	case c.tx != nil:
		res, err = c.tx.Exec(ctx, query, vals...)
	case c.pin != nil:
		res, err = c.pin.Exec(ctx, query, vals...)
	default:
		res, err = c.c.db.Exec(ctx, query, vals...)
		if !errors.Is(err, sqlish.ErrSessionState) {
			break // routed by the sqlish.DB: never ErrBadConn (see doc.go)
		}
		if err = c.session(ctx); err == nil {
			res, err = c.pin.Exec(ctx, query, vals...)
		}
	}
	if err != nil {
		return nil, c.fail(err)
	}
	return result{res}, nil
}

// QueryContext implements driver.QueryerContext.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.bad != nil {
		return nil, c.bad
	}
	vals := values(args)
	var r *sqlish.Rows
	var err error
	switch {
	case c.tx != nil:
		r, err = c.tx.Query(ctx, query, vals...)
	case c.pin != nil:
		r, err = c.pin.Query(ctx, query, vals...)
	default:
		r, err = c.c.db.Query(ctx, query, vals...)
		if !errors.Is(err, sqlish.ErrSessionState) {
			break
		}
		if err = c.session(ctx); err == nil {
			r, err = c.pin.Query(ctx, query, vals...)
		}
	}
	if err != nil {
		return nil, c.fail(err)
	}
	return newRows(r), nil
}

// session pins a sqlish.Conn for a statement that changes the session:
// it and the handle's later statements run there.
func (c *conn) session(ctx context.Context) error {
	pin, err := c.c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("stdlib: pinning a connection for a session statement: %w", err)
	}
	c.pin = pin
	return nil
}

// fail turns the error of a call into what database/sql should see. A
// failure that the tendril driver reports as happening before anything
// was sent (its ErrBadConn), on a pinned connection, which sqlish does not
// retry, is database/sql's ErrBadConn: the handle is then discarded and,
// outside a *sql.Conn or transaction, the call retried on another one.
// Calls through the sqlish.DB do not get here with such an error: its
// policy retried them already.
func (c *conn) fail(err error) error {
	if (c.pin == nil && c.tx == nil) || !errors.Is(err, tdriver.ErrBadConn) {
		return err
	}
	c.bad = fmt.Errorf("stdlib: the pinned connection is broken, nothing was sent: %w (%w)", driver.ErrBadConn, err)
	return c.bad
}

// values returns the arguments' values; CheckNamedValue has refused
// names.
func values(args []driver.NamedValue) []any {
	if len(args) == 0 {
		return nil
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	return vals
}

// CheckNamedValue implements driver.NamedValueChecker: every value goes
// to sqlish as it is, which converts it as its own callers' (with the
// backend's converter first: PostgreSQL takes arrays, UUIDs, pgtype
// values...), and refuses before sending what it cannot. Two things
// database/sql's default conversion does are done here: a database/sql
// Valuer (sql.NullString...) is asked for its value, which tendril's
// Valuer interface does not match, and a nil pointer is NULL, without
// calling a Value method that would dereference it.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return fmt.Errorf("stdlib: named argument %q: tendril statements take positional arguments ($1 for PostgreSQL, ? for Redis): %w", nv.Name, sqlish.ErrNotSupported)
	}
	switch v := nv.Value.(type) {
	case nil, int64, float64, bool, []byte, string:
		return nil
	case sql.Out:
		return fmt.Errorf("stdlib: argument %d: sql.Out parameters: %w", nv.Ordinal, sqlish.ErrNotSupported)
	case driver.Valuer:
		if nilPtr(v) {
			nv.Value = nil
			return nil
		}
		x, err := v.Value()
		if err != nil {
			return fmt.Errorf("stdlib: argument %d: %T.Value: %w", nv.Ordinal, v, err)
		}
		nv.Value = x
		return nil
	}
	if nilPtr(nv.Value) {
		nv.Value = nil
	}
	return nil
}

// nilPtr reports whether v is a nil pointer that must be NULL: one whose
// type has no Value method of its own for a nil receiver (the method, if
// any, is its element type's and would dereference it), as database/sql's
// callValuerValue does.
func nilPtr(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || !rv.IsNil() {
		return false
	}
	t := rv.Type()
	return !implementsValuer(t) || implementsValuer(t.Elem())
}

var (
	sqlValuer = reflect.TypeFor[driver.Valuer]()
	tValuer   = reflect.TypeFor[tdriver.Valuer]()
)

func implementsValuer(t reflect.Type) bool { return t.Implements(sqlValuer) || t.Implements(tValuer) }

// result is a driver.Result.
type result struct{ r sqlish.Result }

// LastInsertId is not supported: no tendril backend has one.
func (result) LastInsertId() (int64, error) {
	return 0, fmt.Errorf("stdlib: LastInsertId (use RETURNING with PostgreSQL): %w", sqlish.ErrNotSupported)
}

// RowsAffected returns the count the backend reports; for a statement
// queued in a Redis transaction, once the transaction committed.
func (r result) RowsAffected() (int64, error) { return r.r.RowsAffected() }

// Ping implements driver.Pinger: the pinned connection's node, or any
// node (waiting for the topology) otherwise.
func (c *conn) Ping(ctx context.Context) error {
	if c.bad != nil {
		return c.bad
	}
	if c.pin != nil {
		return c.fail(c.pin.Ping(ctx))
	}
	return c.c.db.Ping(ctx)
}

// BeginTx implements driver.ConnBeginTx. On a handle without a session
// the transaction is sqlish's DB.BeginTx: on a connection of its own,
// chosen by its options; on a handle with a session, it runs there.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.bad != nil {
		return nil, c.bad
	}
	if c.tx != nil {
		return nil, errors.New("stdlib: BeginTx: a transaction is already open on this connection")
	}
	o, err := txOptions(opts)
	if err != nil {
		return nil, err
	}
	var tx *sqlish.Tx
	if c.pin != nil {
		tx, err = c.pin.BeginTx(ctx, o)
	} else {
		tx, err = c.c.db.BeginTx(ctx, o)
		if err != nil && errors.Is(err, tdriver.ErrBadConn) {
			// BEGIN met a broken connection before it was sent: another
			// handle, another connection, may begin it (database/sql
			// retries). The handle itself is not broken.
			return nil, fmt.Errorf("stdlib: BeginTx: %w (%w)", driver.ErrBadConn, err)
		}
	}
	if err != nil {
		return nil, c.fail(fmt.Errorf("stdlib: BeginTx: %w", err))
	}
	c.tx = tx
	return &txn{c: c, tx: tx}, nil
}

// txOptions maps database/sql's options to tendril's. A level tendril does
// not name is refused here; one the backend cannot honour is refused by
// its driver, both with an error wrapping sqlish.ErrNotSupported.
func txOptions(opts driver.TxOptions) (tdriver.TxOptions, error) {
	// tendril's levels are database/sql's, in the same order
	// (TestIsolationLevelsMatch).
	if sql.IsolationLevel(opts.Isolation) > sql.LevelLinearizable {
		return tdriver.TxOptions{}, fmt.Errorf("stdlib: BeginTx: isolation level %v: %w", sql.IsolationLevel(opts.Isolation), sqlish.ErrNotSupported)
	}
	return tdriver.TxOptions{ReadOnly: opts.ReadOnly, Isolation: tdriver.IsolationLevel(opts.Isolation)}, nil
}

// Begin implements driver.Conn for callers without a context.
func (c *conn) Begin() (driver.Tx, error) { return c.BeginTx(context.Background(), driver.TxOptions{}) }

// txn is a database/sql transaction: a sqlish.Tx. database/sql calls
// Commit and Rollback without a context; sqlish bounds them by
// socket_timeout.
type txn struct {
	c  *conn
	tx *sqlish.Tx
}

func (t *txn) Commit() error   { return t.end(true) }
func (t *txn) Rollback() error { return t.end(false) }

func (t *txn) end(commit bool) error {
	ctx := context.Background()
	var err error
	if commit {
		err = t.tx.Commit(ctx)
		// database/sql ends the transaction whatever Commit returns. One
		// that sqlish left open (Commit refused while Rows the handle
		// opened in it are open) is rolled back, now or when they are
		// closed: the handle's later statements must not run in it.
		if err != nil && t.tx.Rollback(ctx) == nil {
			err = fmt.Errorf("stdlib: Commit failed, so the transaction is rolled back instead (database/sql ends it whatever Commit returns): %w", err)
		}
	} else {
		err = t.tx.Rollback(ctx)
	}
	if t.c.tx == t.tx {
		t.c.tx = nil
	}
	if errors.Is(err, sqlish.ErrTxDone) {
		return fmt.Errorf("stdlib: %w (%w)", sql.ErrTxDone, err)
	}
	// Never ErrBadConn: a COMMIT may have run whatever happened to the
	// connection, and database/sql must not run anything twice.
	return err
}

// PrepareContext implements driver.ConnPrepareContext. Nothing is sent:
// the statement remembers its text, and each run goes where an unprepared
// statement would; the tendril driver keeps the server-side prepared
// statements (PostgreSQL: per connection, by text), so a statement run
// again is not parsed again.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.bad != nil {
		return nil, c.bad
	}
	return &stmt{c: c, query: query}, nil
}

// Prepare implements driver.Conn.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// ResetSession implements driver.SessionResetter. database/sql calls it
// before reusing a handle from its pool. A handle with a session never
// gets there (IsValid discarded it), so there is nothing to reset; a
// broken one is refused.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.bad != nil {
		return driver.ErrBadConn
	}
	return nil
}

// IsValid implements driver.Validator. database/sql calls it when a handle
// comes back to its pool: a handle holding a session (or, by accident, a
// transaction) or a broken connection is discarded, and Close releases
// the pinned connection, reset, to its node's pool. A plain handle holds
// nothing and is kept.
func (c *conn) IsValid() bool { return c.bad == nil && c.pin == nil && c.tx == nil }

// Close implements driver.Conn: an open transaction is rolled back and
// the session's connection reset and returned (or closed) by sqlish.
func (c *conn) Close() error {
	if c.tx != nil {
		c.tx.Rollback(context.Background())
		c.tx = nil
	}
	if c.pin != nil {
		c.pin.Close()
		c.pin = nil
	}
	if c.owns {
		return c.c.Close()
	}
	return nil
}

// stmt is a prepared statement: its text, run on its connection.
type stmt struct {
	c     *conn
	query string
}

func (s *stmt) Close() error { return nil }

// NumInput is -1: the backend counts the arguments (database/sql does not).
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

// Exec and Query implement driver.Stmt for callers without a context.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}
