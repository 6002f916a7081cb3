package stdlib

import (
	"database/sql/driver"
	"io"
	"reflect"

	"github.com/tendril-db/tendril/sqlish"
)

// rows is a driver.Rows over sqlish's Rows. Each row is scanned into
// *any, which hands the driver's values over unconverted (a []byte the
// driver keeps is copied), for database/sql to convert into the caller's
// destinations.
type rows struct {
	r     *sqlish.Rows
	cols  []string
	vals  []any
	ptrs  []any
	types []sqlish.ColumnType // nil until asked for
}

var (
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
)

func newRows(r *sqlish.Rows) *rows {
	cols := r.Columns()
	rs := &rows{r: r, cols: cols, vals: make([]any, len(cols)), ptrs: make([]any, len(cols))}
	for i := range rs.vals {
		rs.ptrs[i] = &rs.vals[i]
	}
	return rs
}

func (r *rows) Columns() []string { return r.cols }

// Close releases the rows and the connection they hold; database/sql also
// calls it when the query's context ends.
func (r *rows) Close() error { return r.r.Close() }

func (r *rows) Next(dest []driver.Value) error {
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if err := r.r.Scan(r.ptrs...); err != nil {
		return err
	}
	for i, v := range r.vals {
		dest[i] = v
	}
	clear(r.vals) // the values are database/sql's now
	return nil
}

// column describes column i, as the tendril driver knows it.
func (r *rows) column(i int) sqlish.ColumnType {
	if r.types == nil {
		r.types = r.r.ColumnTypes()
	}
	if i < len(r.types) {
		return r.types[i]
	}
	return sqlish.ColumnType{}
}

// ColumnTypeDatabaseTypeName is the database's name for the type, upper
// case ("INT8", "TEXT"); "" when the backend does not say (Redis).
func (r *rows) ColumnTypeDatabaseTypeName(i int) string { return r.column(i).DatabaseType }

func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	c := r.column(i)
	return c.Nullable, c.NullableKnown
}

// ColumnTypeScanType is the Go type of the column's values; any when the
// backend does not know it (a Redis reply may hold any type).
func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if t := r.column(i).ScanType; t != nil {
		return t
	}
	return reflect.TypeFor[any]()
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	c := r.column(i)
	return c.Length, c.HasLength
}

func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	c := r.column(i)
	return c.Precision, c.Scale, c.HasPrecisionScale
}
