package sqlish

import (
	"errors"
	"fmt"
	"io"

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
	small   [2]driver.Value // dest for up to two columns, saving an allocation
}

func newRows(dr driver.Rows, release func(error)) *Rows {
	cols := dr.Columns()
	r := &Rows{rows: dr, release: release, cols: cols}
	if len(cols) <= len(r.small) {
		r.dest = r.small[:len(cols)]
	} else {
		r.dest = make([]driver.Value, len(cols))
	}
	return r
}

// Next prepares the next row for Scan. It returns false at the end or on
// error (see Err), and then closes the rows.
func (r *Rows) Next() bool {
	if r.closed {
		return false
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
	return true
}

// Scan copies the current row's columns into dest, one pointer per column;
// see the package doc for the conversions.
func (r *Rows) Scan(dest ...any) error {
	if r.closed {
		return errors.New("sqlish: Scan on closed Rows")
	}
	if !r.valid {
		return errors.New("sqlish: Scan called without calling Next")
	}
	if len(dest) != len(r.dest) {
		return fmt.Errorf("sqlish: Scan got %d destinations for %d columns %v", len(dest), len(r.dest), r.cols)
	}
	for i, v := range r.dest {
		if err := convertAssign(dest[i], v); err != nil {
			return fmt.Errorf("sqlish: Scan column %d (%s): %w", i, r.cols[i], err)
		}
	}
	return nil
}

// Columns returns the column names.
func (r *Rows) Columns() []string { return r.cols }

// Err returns the error, if any, that ended the iteration.
func (r *Rows) Err() error { return r.err }

// Close releases the rows and their connection. It is idempotent.
func (r *Rows) Close() error {
	r.close(nil)
	return nil
}

func (r *Rows) close(err error) {
	if r.closed {
		return
	}
	r.closed = true
	r.valid = false
	if cerr := r.rows.Close(); cerr != nil && err == nil {
		err = cerr
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
}

// Scan copies the row's columns into dest and closes it. It returns
// ErrNoRows when the statement returned no row.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// Err returns the error of the query, if any, without scanning.
func (r *Row) Err() error { return r.err }
