package sqlish

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
)

type myString string
type myInt int16

func TestScanConversions(t *testing.T) {
	ts := time.Date(2026, 11, 21, 23, 0, 0, 123456789, time.UTC)
	ptr := func(v any) any { // a fresh pointer to the zero value of v's type
		return reflect.New(reflect.TypeOf(v)).Interface()
	}
	for _, tc := range []struct {
		src  driver.Value
		dest any // zero value of the destination type
		want any
	}{
		{[]byte("hello"), "", "hello"},
		{"hello", "", "hello"},
		{int64(-42), "", "-42"},
		{uint64(math.MaxUint64), "", "18446744073709551615"},
		{1.5, "", "1.5"},
		{true, "", "true"},
		{ts, "", "2026-11-21T23:00:00.123456789Z"},
		{[]byte("a\x00b"), []byte(nil), []byte("a\x00b")},
		{"text", []byte(nil), []byte("text")},
		{int64(7), []byte(nil), []byte("7")},
		{nil, []byte(nil), []byte(nil)},
		{[]byte("9223372036854775807"), int64(0), int64(math.MaxInt64)},
		{[]byte("-9223372036854775808"), int64(0), int64(math.MinInt64)},
		{int64(12), int64(0), int64(12)},
		{uint64(12), int64(0), int64(12)},
		{3.0, int64(0), int64(3)},
		{true, int64(0), int64(1)},
		{[]byte("123"), 0, 123},
		{int64(-5), 0, -5},
		{[]byte("2.5"), 0.0, 2.5},
		{[]byte("inf"), 0.0, math.Inf(1)},
		{[]byte("-inf"), 0.0, math.Inf(-1)},
		{int64(2), 0.0, 2.0},
		{1.25, 0.0, 1.25},
		{[]byte("1"), false, true},
		{[]byte("0"), false, false},
		{[]byte("true"), false, true},
		{int64(1), false, true},
		{true, false, true},
		{[]byte("2026-11-21T23:00:00.123456789Z"), time.Time{}, ts},
		{ts, time.Time{}, ts},
		{[]byte("x"), myString(""), myString("x")},
		{[]byte("-300"), myInt(0), myInt(-300)},
		{[]byte("255"), uint8(0), uint8(255)},
		{int64(65535), uint16(0), uint16(65535)},
		{[]byte("4294967295"), uint32(0), uint32(math.MaxUint32)},
		{[]byte("-128"), int8(0), int8(-128)},
		{[]byte("2147483647"), int32(0), int32(math.MaxInt32)},
		{[]byte("1.5"), float32(0), float32(1.5)},
		{float64(math.MaxFloat32), float32(0), float32(math.MaxFloat32)},
		{-1e-300, float32(0), float32(0)}, // underflow: rounds to zero, as database/sql's
		{math.Inf(-1), float32(0), float32(math.Inf(-1))},
		{uint64(math.MaxUint64), uint64(0), uint64(math.MaxUint64)},
	} {
		dest := ptr(tc.dest)
		if err := convertAssign(dest, tc.src); err != nil {
			t.Errorf("scan %T(%v) into %T: %v", tc.src, tc.src, dest, err)
			continue
		}
		if got := reflect.ValueOf(dest).Elem().Interface(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("scan %T(%v) into %T = %#v, want %#v", tc.src, tc.src, dest, got, tc.want)
		}
	}
}

func TestScanErrors(t *testing.T) {
	for _, tc := range []struct {
		src  driver.Value
		dest any
		want string
	}{
		{nil, new(string), "cannot scan nil into string (use sqlish.Null[string]"},
		{nil, new(int64), "nil into int64"},
		{nil, new(float64), "nil into float64"},
		{nil, new(bool), "nil into bool"},
		{nil, new(time.Time), "nil into time.Time"},
		{[]byte("abc"), new(int64), `cannot scan "abc" into int64`},
		{[]byte("9223372036854775808"), new(int64), "out of range"},
		{[]byte("300"), new(int8), "out of range"},
		{int64(300), new(uint8), "overflows uint8"},
		{int64(-1), new(uint64), "overflows uint64"},
		{uint64(math.MaxUint64), new(int64), "overflows int64"},
		{int64(math.MaxInt64), new(int32), "overflows int32"},
		{1.5, new(int64), "not representable"},
		{[]byte("x"), new(float64), `cannot scan "x" into float64`},
		{1e300, new(float32), "value 1e+300 overflows float32"}, // not +Inf
		{-1e39, new(float32), "value -1e+39 overflows float32"},
		{[]byte("1e300"), new(float32), `cannot scan "1e300" into float32: value out of range`},
		{[]byte("maybe"), new(bool), `cannot scan "maybe" into bool`},
		{int64(2), new(bool), "want 0 or 1"},
		{[]byte("yesterday"), new(time.Time), "want RFC 3339"},
		{[]byte("x"), new(struct{}), "unsupported Scan destination"},
		{[]byte("x"), "not a pointer", "must be a pointer"},
		{[]byte("x"), nil, "nil"},
		{[]byte("x"), (*string)(nil), "nil"},
		{[]any{int64(1)}, new(string), "cannot scan []interface {} into string"},
	} {
		err := convertAssign(tc.dest, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scan %T(%v) into %T: error %v, want one containing %q", tc.src, tc.src, tc.dest, err, tc.want)
		}
	}
}

func TestScanAnyAndBytesCopy(t *testing.T) {
	src := []byte("shared")
	var a any
	var b []byte
	if err := convertAssign(&a, src); err != nil {
		t.Fatal(err)
	}
	if err := convertAssign(&b, src); err != nil {
		t.Fatal(err)
	}
	copy(src, "XXXXXX") // the driver reuses its buffer
	if !bytes.Equal(a.([]byte), []byte("shared")) || string(b) != "shared" {
		t.Fatalf("scanned values alias the driver's buffer: %q %q", a, b)
	}
	// Not the caller's (a cached reply): nested []byte are copied too.
	nested := []any{[]byte("member"), 1.5, []any{[]byte("inner")}}
	var n any
	var ns []any
	if err := convertAssign(&n, nested); err != nil {
		t.Fatal(err)
	}
	if err := convertAssign(&ns, nested); err != nil {
		t.Fatal(err)
	}
	copy(nested[0].([]byte), "XXXXXX")
	copy(nested[2].([]any)[0].([]byte), "XXXXX")
	want := []any{[]byte("member"), 1.5, []any{[]byte("inner")}}
	if !reflect.DeepEqual(n, want) || !reflect.DeepEqual(ns, want) {
		t.Fatalf("scanned values alias the nested bytes of the driver's: %q %q", n, ns)
	}
	for _, v := range []driver.Value{nil, int64(1), 2.5, true, "s", []any{int64(1), nil}} {
		var got any
		if err := convertAssign(&got, v); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("*any from %#v = %#v, %v", v, got, err)
		}
	}
}

func TestNull(t *testing.T) {
	var s Null[string]
	if err := s.Scan(nil); err != nil || s.Valid {
		t.Fatalf("Null from nil: %+v %v", s, err)
	}
	if err := s.Scan([]byte("x")); err != nil || !s.Valid || s.V != "x" {
		t.Fatalf("Null from bytes: %+v %v", s, err)
	}
	if err := s.Scan(nil); err != nil || s.Valid || s.V != "" {
		t.Fatalf("Null reset by nil: %+v %v", s, err)
	}
	var n Null[int64]
	if err := convertAssign(&n, []byte("42")); err != nil || !n.Valid || n.V != 42 {
		t.Fatalf("Null[int64]: %+v %v", n, err)
	}
	if err := convertAssign(&n, []byte("x")); err == nil {
		t.Fatal("Null[int64] from x: no error")
	}
	var tm Null[time.Time]
	if err := convertAssign(&tm, nil); err != nil || tm.Valid {
		t.Fatalf("Null[time.Time]: %+v %v", tm, err)
	}
	// Null as an argument.
	for _, tc := range []struct {
		arg  any
		want driver.Value
	}{
		{Null[string]{}, nil},
		{Null[string]{V: "a", Valid: true}, "a"},
		{Null[int]{V: 5, Valid: true}, int64(5)},
	} {
		got, err := normalize(tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("normalize(%#v) = %#v, %v; want %#v", tc.arg, got, err, tc.want)
		}
	}
}

type valuer struct{ v any }

func (v valuer) Value() (driver.Value, error) { return v.v, nil }

func TestNormalizeArgs(t *testing.T) {
	s := "ptr"
	var nilp *int
	ts := time.Unix(1, 0)
	for _, tc := range []struct {
		arg  any
		want driver.Value
	}{
		{nil, nil}, {"s", "s"}, {[]byte("b"), []byte("b")}, {int64(1), int64(1)}, {1, int64(1)},
		{int8(-8), int64(-8)}, {int16(16), int64(16)}, {int32(32), int64(32)}, {uint8(8), uint64(8)},
		{uint16(16), uint64(16)}, {uint32(32), int64(32)}, {uint(7), uint64(7)},
		{uint64(math.MaxUint64), uint64(math.MaxUint64)}, {float32(0.5), 0.5}, {2.5, 2.5}, {true, true},
		{ts, ts}, {myString("m"), "m"}, {myInt(3), int64(3)}, {&s, "ptr"}, {nilp, nil}, {valuer{"v"}, "v"},
		{(*Null[string])(nil), nil}, {(*valuer)(nil), nil}, {&Null[int]{V: 4, Valid: true}, int64(4)},
	} {
		got, err := normalize(tc.arg)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("normalize(%#v) = %#v, %v; want %#v", tc.arg, got, err, tc.want)
		}
	}
	_, err := normalizeArgs(nil, []any{"ok", make(chan int)})
	if err == nil || !strings.Contains(err.Error(), "argument 2: unsupported type chan int") {
		t.Fatalf("unsupported argument: %v", err)
	}
}
