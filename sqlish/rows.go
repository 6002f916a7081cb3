package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/tendril-db/tendril/driver"
)

// Result summarises an executed statement.
type Result interface {
	// RowsAffected is the count the backend reports: for Redis-like
	// backends the integer reply (DEL, HSET...), 1 for OK, 0 for nil.
	RowsAffected() (int64, error)
}

// Rows is the result of a query. It holds a connection until it is closed
// (by Close, or by Next returning false); always close it.
type Rows struct {
	rows    driver.Rows
	release func(error) // returns the connection; nil when not ours
	cols    []string
	dest    []driver.Value
	err     error
	valid   bool // dest holds a row
	closed  bool
	// owned: the driver never reuses the []byte values it returns, so the
	// first Scan of a value may hand it over instead of copying it;
	// handed marks the columns (of the first 64) handed over in this row.
	owned  bool
	handed uint64
	small  [2]driver.Value // dest for up to two columns, saving an allocation
	// A Rows filled in by a driver.RowQueryer has no driver Rows: its row
	// is first, waiting for Next while pending.
	first   driver.Row
	pending bool
	// queued is set for the rows of a statement queued in a transaction,
	// which come with Commit.
	queued *deferred
	// stop unregisters the watcher that closes Rows holding a connection
	// when their context ends (see watch); while it is set, mu serialises
	// Next, Scan, Err and Close with the watcher.
	stop func() bool
	mu   sync.Mutex
}

func newRows(dr driver.Rows, release func(error)) *Rows {
	r := &Rows{}
	r.init(dr, release)
	return r
}

func (r *Rows) init(dr driver.Rows, release func(error)) {
	cols := dr.Columns()
	_, owned := dr.(driver.OwnedValues)
	*r = Rows{rows: dr, release: release, cols: cols, owned: owned}
	if len(cols) <= len(r.small) {
		r.dest = r.small[:len(cols)]
	} else {
		r.dest = make([]driver.Value, len(cols))
	}
}

// initFirst makes r, zero but for first, the result of a
// driver.RowQueryer; none says there was no row.
func (r *Rows) initFirst(none bool) error {
	r.cols = r.first.Columns
	if n := len(r.cols); n <= driver.InlineColumns {
		r.dest = r.first.Values[:n]
	} else {
		if len(r.first.More) != n-driver.InlineColumns {
			return fmt.Errorf("sqlish: driver bug: RowQueryer returned %d columns and %d values", n, driver.InlineColumns+len(r.first.More))
		}
		r.dest = make([]driver.Value, n)
		for i := range r.dest {
			r.dest[i] = r.first.Value(i)
		}
		r.first.Bytes = [driver.InlineColumns][]byte{} // boxed into dest
	}
	r.owned = !r.first.Shared // RowQueryer's values are the caller's, unless cached
	r.pending = !none
	return nil
}

// watch closes the rows when ctx ends, as database/sql does, so that
// Rows a caller forgot to close do not keep their connection once the
// caller has given up; Err then reports ctx's error.
func (r *Rows) watch(ctx context.Context) {
	if ctx.Done() == nil || r.release == nil {
		return
	}
	r.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.closed {
			r.err = ctx.Err()
			r.close(nil)
		}
	})
}

// lock serialises the user's calls with the watcher, when there is one.
func (r *Rows) lock() func() {
	if r.stop == nil {
		return noop
	}
	r.mu.Lock()
	return r.mu.Unlock
}

// rowsPool recycles the Rows behind a Row, which nobody can touch after
// Row.Scan.
var rowsPool = sync.Pool{New: func() any { return new(Rows) }}

// Next prepares the next row for Scan. It returns false at the end or on
// error (see Err), and then closes the rows.
func (r *Rows) Next() bool {
	defer r.lock()()
	return r.next()
}

func (r *Rows) next() bool {
	if r.closed {
		return false
	}
	if r.queued != nil {
		if !r.resolve() {
			return false
		}
		return r.next()
	}
	if r.rows == nil { // filled in by a RowQueryer
		if !r.pending {
			r.close(nil)
			return false
		}
		r.pending, r.valid, r.handed = false, true, 0
		return true
	}
	err := r.rows.Next(r.dest)
	if err != nil {
		if err != io.EOF {
			r.err = err
		}
		r.valid = false
		r.close(err)
		return false
	}
	r.valid = true
	r.handed = 0
	return true
}

// Scan stores the current row's columns into dest, one pointer per column,
// converting as the README's "Using it" section lists. A []byte the caller
// gets is its own: a value the driver decoded for this call is handed over
// by the first Scan of the row, anything else is copied.
func (r *Rows) Scan(dest ...any) error {
	defer r.lock()()
	return r.scan(dest)
}

func (r *Rows) scan(dest []any) error {
	if r.closed {
		if r.err != nil {
			// Closed under the caller by its context's end (see watch),
			// between Next and Scan: say why.
			return r.err
		}
		return errors.New("sqlish: Scan on closed Rows")
	}
	if !r.valid {
		return errors.New("sqlish: Scan called without calling Next")
	}
	if len(dest) != len(r.dest) {
		return fmt.Errorf("sqlish: Scan got %d destinations for %d columns %v", len(dest), len(r.dest), r.cols)
	}
	for i, v := range r.dest {
		// Hand an owned []byte over once; a second Scan of the row copies.
		own := r.owned && i < 64 && r.handed&(1<<i) == 0
		if own {
			r.handed |= 1 << i
		}
		var err error
		if r.rows == nil && i < driver.InlineColumns && r.first.Bytes[i] != nil {
			err = assignBytes(dest[i], r.first.Bytes[i], own)
		} else {
			err = assign(dest[i], v, own)
		}
		if err != nil {
			return fmt.Errorf("sqlish: Scan column %d (%s): %w", i, r.cols[i], err)
		}
	}
	return nil
}

// Columns returns the column names; those of a statement queued in a
// transaction once Commit has run (nil before).
func (r *Rows) Columns() []string {
	defer r.lock()()
	if q := r.queued; q != nil && q.ready.Load() {
		r.resolve()
	}
	return r.cols
}

// resolve makes the rows of a statement queued in a transaction its
// result, once Commit brought it in; false, with Err set, when it did not
// (yet). The rows hold no connection, so r.mu is not in use.
func (r *Rows) resolve() bool {
	q := r.queued
	if !q.ready.Load() {
		r.err = ErrQueued
		return false
	}
	if q.err != nil {
		r.err = q.err
		r.close(nil)
		return false
	}
	res := q.res
	r.init(&res, nil)
	return true
}

// ColumnType describes a result column: its name, the database's name for
// its type, whether it may be NULL and the Go type its values scan as,
// where the driver knows them (see driver.ColumnType).
type ColumnType = driver.ColumnType

// ColumnTypes describes the columns. A driver that does not know its
// columns' types gives their names only.
func (r *Rows) ColumnTypes() []ColumnType {
	defer r.lock()()
	var types []ColumnType
	switch {
	case r.first.Types != nil:
		types = r.first.Types
	case r.rows != nil:
		if ct, ok := r.rows.(driver.RowsColumnTypes); ok {
			types = ct.ColumnTypes()
		}
	}
	if len(types) == len(r.cols) {
		return slices.Clone(types)
	}
	out := make([]ColumnType, len(r.cols))
	for i, c := range r.cols {
		out[i].Name = c
	}
	return out
}

// Err returns the error, if any, that ended the iteration.
func (r *Rows) Err() error {
	defer r.lock()()
	return r.err
}

// Close releases the rows and their connection. It is idempotent.
func (r *Rows) Close() error {
	defer r.lock()()
	r.close(nil)
	return nil
}

func (r *Rows) close(err error) {
	if r.closed {
		return
	}
	r.closed = true
	if r.stop != nil {
		r.stop()
	}
	r.valid = false
	if r.rows != nil {
		if cerr := r.rows.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if r.release != nil {
		if err == io.EOF {
			err = nil
		}
		r.release(err)
	}
}

// Row is the result of QueryRow.
type Row struct {
	rows *Rows
	err  error
	// pooled: rows came from rowsPool and goes back after Scan.
	pooled bool
}

var errRowScanned = errors.New("sqlish: Row.Scan called twice")

// Scan stores the row's columns into dest as Rows.Scan does and closes it. It returns
// ErrNoRows when the statement returned no row. A Row is scanned once.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	rows := r.rows
	if rows == nil {
		return errRowScanned
	}
	r.rows = nil
	err := rows.scanOne(dest)
	rows.Close()
	if r.pooled {
		*rows = Rows{}
		rowsPool.Put(rows)
	}
	return err
}

func (r *Rows) scanOne(dest []any) error {
	defer r.lock()()
	if !r.next() {
		if r.err != nil {
			return r.err
		}
		return ErrNoRows
	}
	return r.scan(dest)
}

// Err returns the error of the query, if any, without scanning.
func (r *Row) Err() error { return r.err }
