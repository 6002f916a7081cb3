package sqlish

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/tendril-db/tendril/driver"
)

// Scanner is implemented by types that scan themselves from a column
// value, like database/sql.Scanner. src is nil, int64, uint64, float64,
// bool, []byte (only valid during the call), string, time.Time or []any.
type Scanner interface {
	Scan(src any) error
}

// Null is a value that may be null (for Redis-like backends: a nil reply
// element, as MGET returns for a missing key).
type Null[T any] struct {
	V     T
	Valid bool
}

// Scan implements Scanner.
func (n *Null[T]) Scan(src any) error {
	if src == nil {
		var zero T
		n.V, n.Valid = zero, false
		return nil
	}
	n.Valid = true
	return convertAssign(&n.V, src)
}

// Value implements driver.Valuer, so a Null can be passed as an argument.
func (n Null[T]) Value() (driver.Value, error) {
	if !n.Valid {
		return nil, nil
	}
	return normalize(n.V)
}

// normalizeArgs turns user arguments into driver values.
func normalizeArgs(conv driver.ValueConverter, args []any) ([]driver.Value, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := make([]driver.Value, len(args))
	if err := normalizeInto(conv, out, args); err != nil {
		return nil, err
	}
	return out, nil
}

// normalizeInto normalizes args into dst, which has their length: the
// driver's ValueConverter first, when it has one, then the default
// conversion for what it skips.
func normalizeInto(conv driver.ValueConverter, dst []driver.Value, args []any) error {
	for i, a := range args {
		v, err := driver.Value(nil), driver.ErrSkip
		if conv != nil {
			v, err = conv.ConvertValue(a)
		}
		if err == driver.ErrSkip {
			v, err = normalize(a)
		}
		if err != nil {
			return fmt.Errorf("sqlish: argument %d: %w", i+1, err)
		}
		dst[i] = v
	}
	return nil
}

// normalize converts one argument to nil, int64, uint64, float64, bool,
// []byte, string or time.Time.
func normalize(a any) (driver.Value, error) {
	switch v := a.(type) {
	case nil, int64, uint64, float64, bool, []byte, string, time.Time:
		return v, nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case float32:
		return float64(v), nil
	case driver.Valuer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			// A nil *Null[T] (or any nil pointer whose Value the pointer
			// only inherits) is NULL, as database/sql has it: calling
			// Value would dereference it.
			if rv.Type().Elem().Implements(valuerType) {
				return nil, nil
			}
		}
		x, err := v.Value()
		if err != nil {
			return nil, err
		}
		if _, ok := x.(driver.Valuer); ok {
			return nil, fmt.Errorf("Value of %T returned another Valuer", a)
		}
		return normalize(x)
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, nil
		}
		return normalize(rv.Elem().Interface())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return rv.Bytes(), nil
		}
	}
	return nil, fmt.Errorf("unsupported type %T", a)
}

var errNilDest = errors.New("destination pointer is nil")

var valuerType = reflect.TypeFor[driver.Valuer]()

// convertAssign stores src in the value dest points to.
func convertAssign(dest any, src driver.Value) error { return assign(dest, src, false) }

// assign is convertAssign; own says that a []byte src belongs to nobody
// else and may be stored without a copy.
func assign(dest any, src driver.Value, own bool) error {
	if rv := reflect.ValueOf(dest); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return errNilDest
	}
	if a, ok := src.([]any); ok && !own {
		// Rows the driver keeps (a cached reply, served to every caller)
		// hold []byte below the top level too (ZRANGE ... WITHSCORES,
		// XRANGE): the caller gets copies, or writing into them would
		// change what the next caller reads.
		src = cloneNested(a)
	}
	switch d := dest.(type) {
	case nil:
		return errNilDest
	case Scanner:
		return d.Scan(src)
	case *any:
		if b, ok := src.([]byte); ok && !own {
			src = clone(b)
		}
		*d = src
		return nil
	case *[]byte:
		switch s := src.(type) {
		case nil:
			*d = nil
		case []byte:
			if !own {
				s = clone(s)
			}
			*d = s
		default:
			str, err := asString(src)
			if err != nil {
				return err
			}
			*d = []byte(str)
		}
		return nil
	case *string:
		s, err := asString(src)
		if err == nil {
			*d = s
		}
		return err
	case *int64:
		n, err := asInt(src, 64)
		if err == nil {
			*d = n
		}
		return err
	case *int:
		n, err := asInt(src, strconv.IntSize)
		if err == nil {
			*d = int(n)
		}
		return err
	case *float64:
		f, err := asFloat(src, 64)
		if err == nil {
			*d = f
		}
		return err
	case *bool:
		b, err := asBool(src)
		if err == nil {
			*d = b
		}
		return err
	case *time.Time:
		t, err := asTime(src)
		if err == nil {
			*d = t
		}
		return err
	}
	return reflectAssign(dest, src)
}

// reflectAssign handles the remaining sized and named numeric, string and
// bool types.
func reflectAssign(dest any, src driver.Value) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer {
		return fmt.Errorf("destination must be a pointer, not %T", dest)
	}
	e := rv.Elem()
	if src != nil {
		// A value of the destination's own type (an array into a slice, a
		// UUID into a [16]byte...), or one convertible without loss of
		// meaning between named types of the same kind.
		if sv := reflect.ValueOf(src); sv.Type().AssignableTo(e.Type()) {
			e.Set(sv)
			return nil
		} else if sv.Kind() == e.Kind() && (sv.Kind() == reflect.Slice || sv.Kind() == reflect.Array) && sv.Type().ConvertibleTo(e.Type()) {
			e.Set(sv.Convert(e.Type()))
			return nil
		}
	}
	switch e.Kind() {
	case reflect.String:
		s, err := asString(src)
		if err == nil {
			e.SetString(s)
		}
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := asInt(src, e.Type().Bits())
		if err == nil {
			e.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := asUint(src, e.Type().Bits())
		if err == nil {
			e.SetUint(n)
		}
		return err
	case reflect.Float32, reflect.Float64:
		f, err := asFloat(src, e.Type().Bits())
		if err == nil {
			e.SetFloat(f)
		}
		return err
	case reflect.Bool:
		b, err := asBool(src)
		if err == nil {
			e.SetBool(b)
		}
		return err
	}
	return fmt.Errorf("unsupported Scan destination %T", dest)
}

// assignBytes is assign for a []byte src that was not boxed in a Value:
// the common destinations take it without boxing it.
func assignBytes(dest any, b []byte, own bool) error {
	switch d := dest.(type) {
	case *[]byte:
		if d == nil {
			return errNilDest
		}
		if !own {
			b = clone(b)
		}
		*d = b
		return nil
	case *string:
		if d == nil {
			return errNilDest
		}
		*d = string(b)
		return nil
	}
	return assign(dest, b, own)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// cloneNested copies a, with the []byte and []any it holds, all the way
// down.
func cloneNested(a []any) []any {
	if a == nil {
		return nil
	}
	out := make([]any, len(a))
	for i, v := range a {
		switch v := v.(type) {
		case []byte:
			out[i] = clone(v)
		case []any:
			out[i] = cloneNested(v)
		default:
			out[i] = v
		}
	}
	return out
}

// errNull says what to do about a nil value scanned into a non-nullable
// destination.
func errNull(want string) error {
	return fmt.Errorf("cannot scan nil into %s (use sqlish.Null[%s] or *any)", want, want)
}

func asString(src driver.Value) (string, error) {
	switch s := src.(type) {
	case nil:
		return "", errNull("string")
	case string:
		return s, nil
	case []byte:
		return string(s), nil
	case int64:
		return strconv.FormatInt(s, 10), nil
	case uint64:
		return strconv.FormatUint(s, 10), nil
	case float64:
		return strconv.FormatFloat(s, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(s), nil
	case time.Time:
		return s.Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("cannot scan %T into string", src)
}

// text returns the textual form of a string-like src for parsing.
func text(src driver.Value) (string, bool) {
	switch s := src.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	}
	return "", false
}

// sized names a sized Go type for errors ("int32"); built only when an
// error is, it costs the hot path nothing.
func sized(kind string, bits int) string { return kind + strconv.Itoa(bits) }

func asInt(src driver.Value, bits int) (int64, error) {
	switch s := src.(type) {
	case nil:
		return 0, errNull(sized("int", bits))
	case int64:
		if bits < 64 && (s < -1<<(bits-1) || s > 1<<(bits-1)-1) {
			return 0, fmt.Errorf("value %d overflows %s", s, sized("int", bits))
		}
		return s, nil
	case uint64:
		if s > math.MaxInt64>>(64-bits) {
			return 0, fmt.Errorf("value %d overflows %s", s, sized("int", bits))
		}
		return int64(s), nil
	case float64:
		if limit := math.Ldexp(1, bits-1); s != math.Trunc(s) || s < -limit || s >= limit {
			return 0, fmt.Errorf("value %v is not representable as %s", s, sized("int", bits))
		}
		return int64(s), nil
	case bool:
		if s {
			return 1, nil
		}
		return 0, nil
	}
	if t, ok := text(src); ok {
		n, err := strconv.ParseInt(t, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("cannot scan %q into %s: %w", t, sized("int", bits), err.(*strconv.NumError).Err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("cannot scan %T into %s", src, sized("int", bits))
}

func asUint(src driver.Value, bits int) (uint64, error) {
	switch s := src.(type) {
	case nil:
		return 0, errNull(sized("uint", bits))
	case int64:
		if s < 0 || (bits < 64 && uint64(s) > 1<<bits-1) {
			return 0, fmt.Errorf("value %d overflows %s", s, sized("uint", bits))
		}
		return uint64(s), nil
	case uint64:
		if bits < 64 && s > 1<<bits-1 {
			return 0, fmt.Errorf("value %d overflows %s", s, sized("uint", bits))
		}
		return s, nil
	case bool:
		if s {
			return 1, nil
		}
		return 0, nil
	}
	if t, ok := text(src); ok {
		n, err := strconv.ParseUint(t, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("cannot scan %q into %s: %w", t, sized("uint", bits), err.(*strconv.NumError).Err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("cannot scan %T into %s", src, sized("uint", bits))
}

func asFloat(src driver.Value, bits int) (float64, error) {
	switch s := src.(type) {
	case nil:
		return 0, errNull(sized("float", bits))
	case float64:
		if bits == 32 && !math.IsInf(s, 0) && math.IsInf(float64(float32(s)), 0) {
			// A finite value that float32 cannot hold would become ±Inf.
			return 0, fmt.Errorf("value %g overflows float32", s)
		}
		return s, nil
	case int64:
		return float64(s), nil
	case uint64:
		return float64(s), nil
	}
	if t, ok := text(src); ok {
		f, err := strconv.ParseFloat(t, bits)
		if err != nil {
			return 0, fmt.Errorf("cannot scan %q into %s: %w", t, sized("float", bits), err.(*strconv.NumError).Err)
		}
		return f, nil
	}
	return 0, fmt.Errorf("cannot scan %T into %s", src, sized("float", bits))
}

func asBool(src driver.Value) (bool, error) {
	switch s := src.(type) {
	case nil:
		return false, errNull("bool")
	case bool:
		return s, nil
	case int64:
		if s == 0 || s == 1 {
			return s == 1, nil
		}
		return false, fmt.Errorf("cannot scan %d into bool: want 0 or 1", s)
	}
	if t, ok := text(src); ok {
		b, err := strconv.ParseBool(t)
		if err != nil {
			return false, fmt.Errorf("cannot scan %q into bool", t)
		}
		return b, nil
	}
	return false, fmt.Errorf("cannot scan %T into bool", src)
}

func asTime(src driver.Value) (time.Time, error) {
	switch s := src.(type) {
	case nil:
		return time.Time{}, errNull("time.Time")
	case time.Time:
		return s, nil
	}
	if t, ok := text(src); ok {
		tm, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return time.Time{}, fmt.Errorf("cannot scan %q into time.Time: want RFC 3339", t)
		}
		return tm, nil
	}
	return time.Time{}, fmt.Errorf("cannot scan %T into time.Time", src)
}
