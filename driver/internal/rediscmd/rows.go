package rediscmd

import (
	"errors"
	"io"

	"github.com/tendril-db/tendril/driver"
)

var (
	valueColumns = []string{"value"}
	mapColumns   = []string{"field", "value"}
)

// Rows maps a reply to rows: nil is no row; a scalar is one row of one
// column; an array is one row per element; a map is one (field, value) row
// per entry. An error reply (a *driver.ServerError, or a
// *driver.RedirectError) is returned as the error.
func Rows(r Reply) (driver.Rows, error) {
	switch r := r.(type) {
	case error:
		return nil, r
	case nil:
		return &rows{cols: valueColumns}, nil
	case []any:
		return &rows{cols: valueColumns, vals: r}, nil
	case Map:
		return &rows{cols: mapColumns, vals: r}, nil
	}
	return &scalar{v: r}, nil
}

// FirstRow stores the first of the rows Rows would make of r in row
// (driver.RowQueryer); io.EOF when there is none.
func FirstRow(r Reply, row *driver.Row) error {
	switch r := r.(type) {
	case error:
		return r
	case nil:
		return io.EOF
	case []any:
		if len(r) == 0 {
			return io.EOF
		}
		row.Columns = valueColumns
		row.Values[0] = value(r[0])
	case Map:
		if len(r) < 2 {
			if len(r) == 1 {
				return errors.New("malformed reply: a map with an odd number of elements")
			}
			return io.EOF
		}
		row.Columns = mapColumns
		row.Values[0], row.Values[1] = value(r[0]), value(r[1])
	default:
		row.Columns = valueColumns
		row.Values[0] = value(r)
	}
	return nil
}

// BytesRow stores a string reply in row without boxing it
// (driver.RowQueryer).
func BytesRow(b []byte, row *driver.Row) {
	if b == nil {
		b = []byte{}
	}
	row.Columns = valueColumns
	row.Bytes[0] = b
}

// scalar is the one row of a scalar reply, in a single allocation.
type scalar struct {
	v    Reply
	done bool
}

// OwnedValues implements driver.OwnedValues: replies are decoded into
// memory of their own.
func (*scalar) OwnedValues() {}
func (*rows) OwnedValues()   {}

func (s *scalar) Columns() []string { return valueColumns }
func (s *scalar) Close() error      { s.done = true; return nil }
func (s *scalar) Next(dest []driver.Value) error {
	if s.done {
		return io.EOF
	}
	s.done = true
	dest[0] = value(s.v)
	return nil
}

// Result maps a reply to the count Exec reports: the integer of an integer
// reply, 1 for a status or a string, the number of entries of an array or
// a map, 0 for nil.
func Result(r Reply) (driver.Result, error) {
	switch r := r.(type) {
	case error:
		return nil, r
	case nil:
		return driver.RowsAffected(0), nil
	case int64:
		return driver.RowsAffected(r), nil
	case []any:
		return driver.RowsAffected(len(r)), nil
	case Map:
		return driver.RowsAffected(len(r) / 2), nil
	}
	return driver.RowsAffected(1), nil
}

type rows struct {
	cols []string
	vals []any
	pos  int
}

func (r *rows) Columns() []string { return r.cols }

func (r *rows) Close() error { r.pos = len(r.vals); return nil }

func (r *rows) Next(dest []driver.Value) error {
	if r.pos >= len(r.vals) {
		return io.EOF
	}
	if r.pos+len(dest) > len(r.vals) {
		r.pos = len(r.vals)
		return errors.New("malformed reply: a map with an odd number of elements")
	}
	for i := range dest {
		dest[i] = value(r.vals[r.pos])
		r.pos++
	}
	return nil
}

// value turns a reply element into a driver.Value: a status becomes a
// string and a nested map an array; nested arrays stay arrays.
func value(r Reply) driver.Value {
	switch r := r.(type) {
	case Status:
		return string(r)
	case Map:
		return []any(r)
	}
	return r
}
