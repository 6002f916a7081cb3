package rediscmd

import (
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

// collect reads all rows, failing on any error but io.EOF.
func collect(t *testing.T, rs driver.Rows) [][]driver.Value {
	t.Helper()
	var out [][]driver.Value
	for range 1000 {
		dest := make([]driver.Value, len(rs.Columns()))
		err := rs.Next(dest)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, dest)
	}
	t.Fatal("Next never returned io.EOF")
	return nil
}

func TestRows(t *testing.T) {
	tests := []struct {
		name  string
		reply Reply
		cols  []string
		want  [][]driver.Value
	}{
		{"nil", nil, []string{"value"}, nil},
		{"bulk", []byte("v"), []string{"value"}, [][]driver.Value{{[]byte("v")}}},
		{"empty bulk", []byte{}, []string{"value"}, [][]driver.Value{{[]byte{}}}},
		{"status", Status("OK"), []string{"value"}, [][]driver.Value{{"OK"}}},
		{"int", int64(42), []string{"value"}, [][]driver.Value{{int64(42)}}},
		{"double", 1.5, []string{"value"}, [][]driver.Value{{1.5}}},
		{"bool", true, []string{"value"}, [][]driver.Value{{true}}},
		{"empty array", []any{}, []string{"value"}, nil},
		{"array", []any{[]byte("a"), nil, int64(3), Status("PONG"), []byte("b")}, []string{"value"},
			[][]driver.Value{{[]byte("a")}, {nil}, {int64(3)}, {"PONG"}, {[]byte("b")}}},
		{"array of nils", []any{nil, nil}, []string{"value"}, [][]driver.Value{{nil}, {nil}}},
		{"nested array", []any{[]any{[]byte("x"), int64(1)}}, []string{"value"},
			[][]driver.Value{{[]any{[]byte("x"), int64(1)}}}},
		{"nested map becomes array", []any{Map{[]byte("f"), []byte("v")}}, []string{"value"},
			[][]driver.Value{{[]any{[]byte("f"), []byte("v")}}}},
		{"empty map", Map{}, []string{"field", "value"}, nil},
		{"map", Map{[]byte("f1"), []byte("v1"), []byte("f2"), int64(2)}, []string{"field", "value"},
			[][]driver.Value{{[]byte("f1"), []byte("v1")}, {[]byte("f2"), int64(2)}}},
		{"map with status and nil", Map{Status("k"), nil}, []string{"field", "value"},
			[][]driver.Value{{"k", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Rows(tt.reply)
			if err != nil {
				t.Fatalf("Rows error: %v", err)
			}
			defer rs.Close()
			if got := rs.Columns(); !reflect.DeepEqual(got, tt.cols) {
				t.Errorf("Columns = %q, want %q", got, tt.cols)
			}
			got := collect(t, rs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows = %#v, want %#v", got, tt.want)
			}
			// Next after the end keeps returning io.EOF.
			for range 2 {
				if err := rs.Next(make([]driver.Value, len(tt.cols))); err != io.EOF {
					t.Errorf("Next after end = %v, want io.EOF", err)
				}
			}
		})
	}
}

func TestRowsStatusIsString(t *testing.T) {
	rs, err := Rows(Status("PONG"))
	if err != nil {
		t.Fatal(err)
	}
	dest := make([]driver.Value, 1)
	if err := rs.Next(dest); err != nil {
		t.Fatal(err)
	}
	if s, ok := dest[0].(string); !ok || s != "PONG" {
		t.Errorf("status value = %#v (%T), want string PONG", dest[0], dest[0])
	}
}

func TestRowsServerError(t *testing.T) {
	se := &driver.ServerError{Code: "WRONGTYPE", Msg: "WRONGTYPE Operation against a key holding the wrong kind of value"}
	rs, err := Rows(se)
	if rs != nil {
		t.Errorf("Rows(ServerError) rows = %v, want nil", rs)
	}
	var got *driver.ServerError
	if !errors.As(err, &got) || got != se {
		t.Errorf("Rows(ServerError) error = %v, want the same *ServerError", err)
	}
	// A server error nested in an array is a value, not the statement's error.
	rs, err = Rows([]any{se})
	if err != nil {
		t.Fatalf("Rows([ServerError]) error: %v", err)
	}
	if rows := collect(t, rs); len(rows) != 1 || rows[0][0] != se {
		t.Errorf("Rows([ServerError]) = %v, want one row holding the error", rows)
	}
}

func TestRowsClose(t *testing.T) {
	for _, reply := range []Reply{
		[]any{[]byte("a"), []byte("b"), []byte("c")},
		Map{[]byte("f"), []byte("v"), []byte("g"), []byte("w")},
		[]byte("x"),
		nil,
	} {
		rs, err := Rows(reply)
		if err != nil {
			t.Fatal(err)
		}
		dest := make([]driver.Value, len(rs.Columns()))
		if reply != nil {
			if err := rs.Next(dest); err != nil {
				t.Fatalf("first Next: %v", err)
			}
		}
		if err := rs.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := rs.Next(dest); err != io.EOF {
			t.Errorf("Next after Close on %#v = %v, want io.EOF", reply, err)
		}
		if err := rs.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

// A map reply with an odd number of elements must not panic.
func TestRowsOddMap(t *testing.T) {
	rs, err := Rows(Map{[]byte("f")})
	if err != nil {
		t.Fatal(err)
	}
	_ = rs.Next(make([]driver.Value, 2))
}

func TestResult(t *testing.T) {
	tests := []struct {
		name  string
		reply Reply
		want  int64
	}{
		{"nil", nil, 0},
		{"int", int64(7), 7},
		{"int zero", int64(0), 0},
		{"int negative", int64(-2), -2},
		{"status", Status("OK"), 1},
		{"bulk", []byte("v"), 1},
		{"empty bulk", []byte{}, 1},
		{"double", 2.5, 1},
		{"bool", false, 1},
		{"empty array", []any{}, 0},
		{"array", []any{[]byte("a"), nil, int64(3)}, 3},
		{"empty map", Map{}, 0},
		{"map", Map{[]byte("f1"), []byte("v1"), []byte("f2"), []byte("v2")}, 2},
		{"odd map", Map{[]byte("f1"), []byte("v1"), []byte("f2")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Result(tt.reply)
			if err != nil {
				t.Fatalf("Result error: %v", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				t.Fatalf("RowsAffected error: %v", err)
			}
			if n != tt.want {
				t.Errorf("RowsAffected = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestResultServerError(t *testing.T) {
	se := &driver.ServerError{Code: "ERR", Msg: "ERR value is not an integer or out of range"}
	res, err := Result(se)
	if res != nil {
		t.Errorf("Result(ServerError) result = %v, want nil", res)
	}
	if err != se {
		t.Errorf("Result(ServerError) error = %v, want the same *ServerError", err)
	}
}
