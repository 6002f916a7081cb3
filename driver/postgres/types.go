package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tendril-db/tendril/driver"
)

// kind is how a column's values are decoded.
type kind uint8

const (
	kText        kind = iota // text format, returned as a string
	kInt                     // int2, int4, int8, oid: int64
	kFloat                   // float4, float8: float64
	kBool                    // bool
	kString                  // text, varchar, bpchar, name, "char" in binary: string
	kBytes                   // bytea: []byte
	kJSON                    // json: []byte
	kJSONB                   // jsonb: []byte (without the binary format's version byte)
	kTimestamptz             // time.Time in UTC
	kTimestamp               // time.Time, the wall clock in UTC
	kDate                    // time.Time, midnight UTC
	kUUID                    // [16]byte
	kArray                   // a one-dimensional array: a typed slice
)

// scalarKinds maps the OIDs decoded from the binary format to their kind.
var scalarKinds = map[uint32]kind{
	pgtype.Int2OID: kInt, pgtype.Int4OID: kInt, pgtype.Int8OID: kInt, pgtype.OIDOID: kInt,
	pgtype.Float4OID: kFloat, pgtype.Float8OID: kFloat,
	pgtype.BoolOID: kBool,
	pgtype.TextOID: kString, pgtype.VarcharOID: kString, pgtype.BPCharOID: kString, pgtype.NameOID: kString, pgtype.QCharOID: kString,
	pgtype.ByteaOID: kBytes,
	pgtype.JSONOID:  kJSON, pgtype.JSONBOID: kJSONB,
	pgtype.TimestamptzOID: kTimestamptz, pgtype.TimestampOID: kTimestamp, pgtype.DateOID: kDate,
	pgtype.UUIDOID: kUUID,
}

// arrayElems maps the array OIDs decoded from the binary format to their
// element's OID.
var arrayElems = map[uint32]uint32{
	pgtype.Int2ArrayOID: pgtype.Int2OID, pgtype.Int4ArrayOID: pgtype.Int4OID, pgtype.Int8ArrayOID: pgtype.Int8OID,
	pgtype.OIDArrayOID: pgtype.OIDOID, pgtype.Float4ArrayOID: pgtype.Float4OID, pgtype.Float8ArrayOID: pgtype.Float8OID,
	pgtype.BoolArrayOID: pgtype.BoolOID, pgtype.TextArrayOID: pgtype.TextOID, pgtype.VarcharArrayOID: pgtype.VarcharOID,
	pgtype.BPCharArrayOID: pgtype.BPCharOID, pgtype.NameArrayOID: pgtype.NameOID, pgtype.ByteaArrayOID: pgtype.ByteaOID,
	pgtype.JSONArrayOID: pgtype.JSONOID, pgtype.JSONBArrayOID: pgtype.JSONBOID,
	pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID, pgtype.TimestampArrayOID: pgtype.TimestampOID,
	pgtype.DateArrayOID: pgtype.DateOID, pgtype.UUIDArrayOID: pgtype.UUIDOID,
}

var (
	tInt64   = reflect.TypeFor[int64]()
	tFloat64 = reflect.TypeFor[float64]()
	tBool    = reflect.TypeFor[bool]()
	tString  = reflect.TypeFor[string]()
	tBytes   = reflect.TypeFor[[]byte]()
	tTime    = reflect.TypeFor[time.Time]()
	tUUID    = reflect.TypeFor[[16]byte]()
)

// goType is the Go type values of kind k are returned as.
func goType(k kind) reflect.Type {
	switch k {
	case kInt:
		return tInt64
	case kFloat:
		return tFloat64
	case kBool:
		return tBool
	case kBytes, kJSON, kJSONB:
		return tBytes
	case kTimestamptz, kTimestamp, kDate:
		return tTime
	case kUUID:
		return tUUID
	}
	return tString
}

// column is how one result column is decoded.
type column struct {
	oid  uint32
	kind kind
	elem kind // for kArray: the elements' kind
}

// format is the result format asked of the server for the column.
func (c column) format() int16 {
	if c.kind == kText {
		return pgtype.TextFormatCode
	}
	return pgtype.BinaryFormatCode
}

func newColumn(oid uint32) column {
	if k, ok := scalarKinds[oid]; ok {
		return column{oid: oid, kind: k}
	}
	if e, ok := arrayElems[oid]; ok {
		return column{oid: oid, kind: kArray, elem: scalarKinds[e]}
	}
	return column{oid: oid, kind: kText} // numeric, interval, time, enums...: their text
}

// describe returns the result columns' decoders, formats, names and
// types for a statement's fields.
func describe(m *pgtype.Map, fields []pgconn.FieldDescription) (cols []column, formats []int16, names []string, types []driver.ColumnType) {
	n := len(fields)
	cols, formats, names, types = make([]column, n), make([]int16, n), make([]string, n), make([]driver.ColumnType, n)
	for i, f := range fields {
		c := newColumn(f.DataTypeOID)
		cols[i], formats[i], names[i] = c, c.format(), f.Name
		types[i] = columnType(m, f, c)
	}
	return cols, formats, names, types
}

// columnType describes a column as database/sql's ColumnType does, the
// type modifier giving lengths, precisions and scales.
func columnType(m *pgtype.Map, f pgconn.FieldDescription, c column) driver.ColumnType {
	ct := driver.ColumnType{Name: f.Name, ScanType: goType(c.kind)}
	if c.kind == kArray {
		ct.ScanType = reflect.SliceOf(goType(c.elem))
	}
	if t, ok := m.TypeForOID(f.DataTypeOID); ok {
		ct.DatabaseType = strings.ToUpper(t.Name)
	} else {
		ct.DatabaseType = strconv.FormatUint(uint64(f.DataTypeOID), 10)
	}
	mod := int64(f.TypeModifier)
	switch f.DataTypeOID {
	case pgtype.TextOID, pgtype.ByteaOID:
		ct.Length, ct.HasLength = math.MaxInt64, true
	case pgtype.VarcharOID, pgtype.BPCharOID:
		ct.HasLength = true
		ct.Length = math.MaxInt64
		if mod > 4 {
			ct.Length = mod - 4 // the modifier holds the length + 4 (VARHDRSZ)
		}
	case pgtype.NumericOID:
		ct.HasPrecisionScale = true
		ct.Precision, ct.Scale = math.MaxInt64, math.MaxInt64
		if mod >= 4 {
			ct.Precision, ct.Scale = ((mod-4)>>16)&0xffff, (mod-4)&0xffff
		}
	}
	return ct
}

// decode returns one value of column c, sent in c's format; src is nil
// for NULL. The value holds no reference to src.
func decode(m *pgtype.Map, c column, src []byte) (driver.Value, error) {
	if src == nil {
		return nil, nil
	}
	if c.kind == kArray {
		return decodeArray(m, c, src)
	}
	return decodeScalar(m, c.kind, c.oid, src)
}

var errShort = errors.New("value shorter than its type")

func decodeScalar(m *pgtype.Map, k kind, oid uint32, src []byte) (driver.Value, error) {
	switch k {
	case kInt:
		switch len(src) {
		case 2:
			return int64(int16(binary.BigEndian.Uint16(src))), nil
		case 4:
			if oid == pgtype.OIDOID {
				return int64(binary.BigEndian.Uint32(src)), nil
			}
			return int64(int32(binary.BigEndian.Uint32(src))), nil
		case 8:
			return int64(binary.BigEndian.Uint64(src)), nil
		}
		return nil, errShort
	case kFloat:
		switch len(src) {
		case 4:
			return float64(math.Float32frombits(binary.BigEndian.Uint32(src))), nil
		case 8:
			return math.Float64frombits(binary.BigEndian.Uint64(src)), nil
		}
		return nil, errShort
	case kBool:
		if len(src) != 1 {
			return nil, errShort
		}
		return src[0] == 1, nil
	case kBytes, kJSON:
		return append(make([]byte, 0, len(src)), src...), nil
	case kJSONB:
		if len(src) == 0 || src[0] != 1 {
			return nil, fmt.Errorf("jsonb: unknown binary format version")
		}
		return append(make([]byte, 0, len(src)-1), src[1:]...), nil
	case kTimestamptz:
		var t pgtype.Timestamptz
		if err := m.Scan(pgtype.TimestamptzOID, pgtype.BinaryFormatCode, src, &t); err != nil {
			return nil, err
		}
		return timeValue(t.Time.UTC(), t.InfinityModifier), nil
	case kTimestamp:
		var t pgtype.Timestamp
		if err := m.Scan(pgtype.TimestampOID, pgtype.BinaryFormatCode, src, &t); err != nil {
			return nil, err
		}
		return timeValue(t.Time, t.InfinityModifier), nil
	case kDate:
		var t pgtype.Date
		if err := m.Scan(pgtype.DateOID, pgtype.BinaryFormatCode, src, &t); err != nil {
			return nil, err
		}
		return timeValue(t.Time, t.InfinityModifier), nil
	case kUUID:
		if len(src) != 16 {
			return nil, errShort
		}
		return [16]byte(src), nil
	}
	return string(src), nil // kString, kText
}

// timeValue is a time, or "infinity" / "-infinity", which time.Time
// cannot hold.
func timeValue(t time.Time, inf pgtype.InfinityModifier) driver.Value {
	switch inf {
	case pgtype.Infinity:
		return "infinity"
	case pgtype.NegativeInfinity:
		return "-infinity"
	}
	return t
}

// decodeArray decodes a binary array: a one-dimensional one becomes a
// typed slice ([]int64, []string, []float64, []bool, [][]byte,
// []time.Time, [][16]byte) unless it holds NULLs ([]any, nil for NULL);
// a multi-dimensional one becomes nested []any, one level per dimension.
func decodeArray(m *pgtype.Map, c column, src []byte) (driver.Value, error) {
	if len(src) < 12 {
		return nil, errShort
	}
	ndim := int(int32(binary.BigEndian.Uint32(src)))
	elemOID := binary.BigEndian.Uint32(src[8:])
	rest := src[12:]
	if ndim < 0 || ndim > 6 || len(rest) < 8*ndim {
		return nil, fmt.Errorf("array: bad header (%d dimensions)", ndim)
	}
	dims := make([]int, ndim)
	total := 1
	for i := range dims {
		n := int(int32(binary.BigEndian.Uint32(rest[8*i:])))
		if n < 0 || n > len(src) { // every element takes at least 4 bytes
			return nil, fmt.Errorf("array: bad dimension %d", n)
		}
		dims[i] = n
		total *= n
		if total > len(src) {
			return nil, fmt.Errorf("array: %v elements in %d bytes", dims, len(src))
		}
	}
	rest = rest[8*ndim:]
	if ndim == 0 {
		total = 0
	}
	vals := make([]driver.Value, total)
	nulls := false
	for i := range vals {
		if len(rest) < 4 {
			return nil, errShort
		}
		n := int(int32(binary.BigEndian.Uint32(rest)))
		rest = rest[4:]
		if n < 0 {
			nulls = true
			continue
		}
		if n > len(rest) {
			return nil, errShort
		}
		v, err := decodeScalar(m, c.elem, elemOID, rest[:n:n])
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		vals[i] = v
		rest = rest[n:]
	}
	if ndim > 1 {
		return nest(vals, dims), nil
	}
	if nulls {
		return []any(vals), nil
	}
	switch c.elem {
	case kInt:
		return typed[int64](vals), nil
	case kFloat:
		return typed[float64](vals), nil
	case kBool:
		return typed[bool](vals), nil
	case kBytes, kJSON, kJSONB:
		return typed[[]byte](vals), nil
	case kUUID:
		return typed[[16]byte](vals), nil
	case kTimestamptz, kTimestamp, kDate:
		for _, v := range vals {
			if _, ok := v.(time.Time); !ok {
				return []any(vals), nil // an infinity among the times
			}
		}
		return typed[time.Time](vals), nil
	}
	return typed[string](vals), nil
}

func typed[T any](vals []driver.Value) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = v.(T)
	}
	return out
}

// nest shapes flat row-major values into nested []any by dims.
func nest(vals []driver.Value, dims []int) []any {
	if len(dims) == 1 {
		return vals
	}
	out := make([]any, dims[0])
	step := len(vals) / max(dims[0], 1)
	for i := range out {
		out[i] = nest(vals[i*step:(i+1)*step], dims[1:])
	}
	return out
}
