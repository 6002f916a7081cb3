package postgres

import (
	sqldriver "database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tendril-db/tendril/driver"
)

// ConvertValue implements driver.ValueConverter: arguments that pgtype
// encodes better than the user API's default conversion would are kept as
// they are, and encoded for the parameter's type: int16, int32 and uint32
// (their width kept), arrays and slices ([]int64, []string, [][]byte,
// [16]byte UUIDs...), json.RawMessage, time.Duration (an interval, not a
// count of nanoseconds), netip.Addr and netip.Prefix, pgtype values, and
// database/sql Valuers (pgtype calls Value itself). The basic types (and
// named types of a basic kind) take the default conversion (ErrSkip).
func (c *connector) ConvertValue(v any) (driver.Value, error) {
	switch v := v.(type) {
	case nil, int64, uint64, float64, bool, []byte, string, time.Time,
		int, int8, uint, uint8, uint16, float32:
		return nil, driver.ErrSkip
	case int16, int32, uint32, time.Duration:
		return v, nil
	case driver.Valuer: // tendril's: sqlish.Null[T]
		x, err := v.Value()
		if err != nil {
			return nil, err
		}
		if _, ok := x.(driver.Valuer); ok {
			return nil, fmt.Errorf("Value of %T returned another Valuer", v)
		}
		if r, err := c.ConvertValue(x); err != driver.ErrSkip {
			return r, err
		}
		return x, nil // a basic value: pgtype encodes it as it is
	case sqldriver.Valuer:
		return v, nil // pgtype calls Value, for the parameter's type
	}
	rv := reflect.ValueOf(v)
	t := rv.Type()
	if t.PkgPath() == pgtypePath {
		return v, nil
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, nil
		}
		return c.ConvertValue(rv.Elem().Interface())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Name() == "" {
			return nil, driver.ErrSkip // a []byte of another spelling
		}
		return v, nil // arrays, json.RawMessage...
	case reflect.Array, reflect.Struct, reflect.Map:
		return v, nil // [16]byte, netip.Addr, netip.Prefix...: pgtype knows, or says it does not
	}
	return nil, driver.ErrSkip
}

var pgtypePath = reflect.TypeFor[pgtype.Text]().PkgPath()

// errArgs is wrapped by the error of arguments that do not fit the
// statement's parameters. Nothing was sent: the statement did not run, and
// another attempt would fail alike. driver.ErrNotSupported is the one
// error of the contract that says so (final, the connection in sync).
var errArgs = fmt.Errorf("arguments refused before sending: %w", driver.ErrNotSupported)

// encoder encodes a statement's arguments for its parameters.
type encoder struct {
	buf     []byte
	values  [][]byte
	formats []int16
}

// encode encodes args for the parameter types oids: binary where pgtype
// can, text for strings (the server parses them into any type). The
// values stay valid until the next encode.
func (e *encoder) encode(m *pgtype.Map, oids []uint32, args []driver.Value) error {
	if len(args) != len(oids) {
		return fmt.Errorf("postgres: the statement has %d parameters ($1...$%d), got %d arguments: %w", len(oids), len(oids), len(args), errArgs)
	}
	if e.buf == nil {
		e.buf = make([]byte, 0, 256)
	}
	e.buf = e.buf[:0]
	e.values, e.formats = e.values[:0], e.formats[:0]
	for i, a := range args {
		oid := oids[i]
		f := m.FormatCodeForOID(oid)
		switch a := a.(type) {
		case string:
			f = pgtype.TextFormatCode
		case float64:
			if err := intFits(oid, a); err != nil {
				return fmt.Errorf("postgres: argument %d ($%d): %w (%w)", i+1, i+1, err, errArgs)
			}
		}
		start := len(e.buf)
		b, err := m.Encode(oid, f, a, e.buf)
		if err != nil {
			return fmt.Errorf("postgres: argument %d ($%d): %w (%w)", i+1, i+1, err, errArgs)
		}
		if b == nil {
			e.values = append(e.values, nil) // NULL
		} else {
			e.buf = b
			e.values = append(e.values, b[start:len(b):len(b)])
		}
		e.formats = append(e.formats, f)
	}
	if cap(e.buf) > 1<<20 {
		e.buf = nil // do not keep a huge buffer for the next statement
	}
	return nil
}

// intFits refuses a float for an integer parameter (int2, int4, int8,
// oid) unless it is a whole number within int64's range: pgtype would
// truncate 2.9 to 2, and turn -1e30 into the least int64, without a word
// (narrower ranges pgtype checks itself).
func intFits(oid uint32, v float64) error {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
	default:
		return nil
	}
	if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 { // NaN and ±Inf too
		return fmt.Errorf("%v does not fit an integer parameter (%s) without loss", v, oidName(oid))
	}
	return nil
}

func oidName(oid uint32) string {
	switch oid {
	case pgtype.Int2OID:
		return "int2"
	case pgtype.Int4OID:
		return "int4"
	case pgtype.OIDOID:
		return "oid"
	}
	return "int8"
}
