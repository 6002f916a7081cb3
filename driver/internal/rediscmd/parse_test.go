package rediscmd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
)

// argvString renders argv for failure messages, making nil and empty
// elements and binary bytes visible.
func argvString(argv [][]byte) string {
	if argv == nil {
		return "<nil argv>"
	}
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == nil {
			parts[i] = "<nil>"
		} else {
			parts[i] = fmt.Sprintf("%q", a)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func argvEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func vals(vs ...driver.Value) []driver.Value { return vs }

func TestAppend(t *testing.T) {
	bin := []byte{0, 'a', 0, ' ', '"', '\'', '?', 0xff, '\\', 'n', 0}
	tests := []struct {
		name  string
		query string
		args  []driver.Value
		want  [][]byte
	}{
		// Placeholders and extra arguments.
		{"no args", "PING", nil, bs("PING")},
		{"placeholder", "GET ?", vals("k"), bs("GET", "k")},
		{"placeholders in order", "SET ? ?", vals("k", "v"), bs("SET", "k", "v")},
		{"extra arg appended", "GET", vals("k"), bs("GET", "k")},
		{"extra args appended", "MSET", vals("a", "1", "b", "2"), bs("MSET", "a", "1", "b", "2")},
		{"placeholder then literal", "EXPIRE ? 60", vals("k"), bs("EXPIRE", "k", "60")},
		{"placeholder then extra", "SET ?", vals("k", "v"), bs("SET", "k", "v")},
		{"placeholder mid", "HSET h ? v", vals("f"), bs("HSET", "h", "f", "v")},
		{"literal ? in token", "GET a?b", nil, bs("GET", "a?b")},
		{"literal ? prefix", "GET ?b", nil, bs("GET", "?b")},
		{"literal ? suffix", "GET a?", nil, bs("GET", "a?")},
		{"literal ?? token", "GET ??", nil, bs("GET", "??")},
		{"literal ? in token with extra arg", "SET a?b", vals("v"), bs("SET", "a?b", "v")},
		{"quoted ? is literal", `GET "?"`, nil, bs("GET", "?")},
		{"single-quoted ? is literal", `GET '?'`, nil, bs("GET", "?")},
		{"quoted ? does not consume arg", `SET "?"`, vals("v"), bs("SET", "?", "v")},
		{"placeholder before tab", "GET ?\t", vals("k"), bs("GET", "k")},
		{"placeholder before newline", "SET ?\nv", vals("k"), bs("SET", "k", "v")},
		{"int64 arg", "INCRBY k ?", vals(int64(-5)), bs("INCRBY", "k", "-5")},
		{"placeholder after a container's subcommand", "CLIENT SETNAME ?", vals("x"), bs("CLIENT", "SETNAME", "x")},
		{"extra arg after a container's subcommand", "CONFIG GET", vals("maxmemory"), bs("CONFIG", "GET", "maxmemory")},
		{"quoted command", `"GET" ?`, vals("k"), bs("GET", "k")},
		{"quoted ? subcommand", `CLIENT "?"`, nil, bs("CLIENT", "?")},
		{"typed nil bytes are empty", "SET k ?", vals([]byte(nil)), bs("SET", "k", "")},

		// Whitespace.
		{"multiple spaces", "  SET   k    v  ", nil, bs("SET", "k", "v")},
		{"tabs", "SET\tk\t\tv", nil, bs("SET", "k", "v")},
		{"newlines", "SET\nk\r\nv\n", nil, bs("SET", "k", "v")},
		{"mixed whitespace", "\t \r\n GET \t\r\n k \n", nil, bs("GET", "k")},

		// Double quotes.
		{"double quoted with space", `SET k "a b"`, nil, bs("SET", "k", "a b")},
		{"double quoted escapes", `SET k "\n\r\t\b\a\\\""`, nil, bs("SET", "k", "\n\r\t\b\a\\\"")},
		{"double quoted hex", `SET k "\x41\x00\xff\xFe"`, nil, bs("SET", "k", "A\x00\xff\xfe")},
		{"double quoted invalid hex", `SET k "\xZZ"`, nil, bs("SET", "k", "xZZ")},
		{"double quoted half hex", `SET k "\x4"`, nil, bs("SET", "k", "x4")},
		{"double quoted hex at end", `SET k "\x"`, nil, bs("SET", "k", "x")},
		{"double quoted hex sign", `SET k "\x+1"`, nil, bs("SET", "k", "x+1")},
		{"double quoted unknown escape", `SET k "\q\?"`, nil, bs("SET", "k", "q?")},
		{"double quoted single quote", `SET k "it's"`, nil, bs("SET", "k", "it's")},
		{"double quoted then tab", "SET \"k\"\tv", nil, bs("SET", "k", "v")},
		{"double quoted at end", `GET "k"`, nil, bs("GET", "k")},
		{"double quoted with extra arg", `SET "k"`, vals("v"), bs("SET", "k", "v")},

		// Single quotes.
		{"single quoted", `SET k 'a b'`, nil, bs("SET", "k", "a b")},
		{"single quoted escaped quote", `SET k 'it\'s'`, nil, bs("SET", "k", "it's")},
		{"single quoted other escapes literal", `SET k 'a\nb\\c\x41'`, nil, bs("SET", "k", `a\nb\\c\x41`)},
		{"single quoted double quote", `SET k 'say "hi"'`, nil, bs("SET", "k", `say "hi"`)},

		// Quotes inside unquoted tokens are literal.
		{"quote inside token", `SET a"b c'd`, nil, bs("SET", `a"b`, `c'd`)},

		// Binary arguments bypass the tokenizer.
		{"binary arg placeholder", "SET k ?", vals(bin), [][]byte{[]byte("SET"), []byte("k"), bin}},
		{"binary arg appended", "SET k", vals(bin), [][]byte{[]byte("SET"), []byte("k"), bin}},
		{"binary string arg", "SET ? v", vals(string(bin)), [][]byte{[]byte("SET"), bin, []byte("v")}},
		{"arg with spaces and quotes", "SET k ?", vals(`a "b" 'c' ?`), bs("SET", "k", `a "b" 'c' ?`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Append(nil, tt.query, tt.args)
			if err != nil {
				t.Fatalf("Append(%q, %v) error: %v", tt.query, tt.args, err)
			}
			if !argvEqual(got, tt.want) {
				t.Errorf("Append(%q, %v) = %s, want %s", tt.query, tt.args, argvString(got), argvString(tt.want))
			}
		})
	}
}

func TestAppendEmptyQuotedTokenIsNonNil(t *testing.T) {
	for _, q := range []string{`SET k ""`, `SET k ''`, `SET "" v`, `SET '' v`} {
		got, err := Append(nil, q, nil)
		if err != nil {
			t.Fatalf("Append(%q) error: %v", q, err)
		}
		if len(got) != 3 {
			t.Fatalf("Append(%q) = %s, want 3 elements", q, argvString(got))
		}
		for i, a := range got {
			if a == nil {
				t.Errorf("Append(%q)[%d] is nil, want non-nil", q, i)
			}
		}
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := bs("MULTI")
	got, err := Append(prefix, "GET ?", vals("k"))
	if err != nil {
		t.Fatal(err)
	}
	if want := bs("MULTI", "GET", "k"); !argvEqual(got, want) {
		t.Errorf("got %s, want %s", argvString(got), argvString(want))
	}
}

// The argument bytes must not alias the caller's []byte: the caller may
// reuse its buffer after Append returns.
func TestAppendCopiesByteArgs(t *testing.T) {
	arg := []byte("value")
	got, err := Append(nil, "SET k ?", vals(arg))
	if err != nil {
		t.Fatal(err)
	}
	arg[0] = 'X'
	if string(got[2]) != "value" {
		t.Errorf("argv aliases the argument: got %q after modifying the argument", got[2])
	}
}

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		args    []driver.Value
		wantSub string
	}{
		{"empty", "", nil, "empty statement"},
		{"blank", " \t\r\n ", nil, "empty statement"},
		{"too few args zero", "GET ?", nil, "the 0 arguments"},
		{"too few args one", "SET ? ?", vals("k"), "the 1 arguments"},
		{"too few args two", "HSET ? ? ?", vals("h", "f"), "the 2 arguments"},
		{"unbalanced double", `SET k "abc`, nil, "unbalanced double quotes"},
		{"unbalanced double escaped quote", `SET k "abc\"`, nil, "unbalanced double quotes"},
		{"unbalanced double trailing backslash", `SET k "abc\`, nil, "unbalanced double quotes"},
		{"lone double quote", `SET k "`, nil, "unbalanced double quotes"},
		{"unbalanced single", `SET k 'abc`, nil, "unbalanced single quotes"},
		{"unbalanced single escaped quote", `SET k 'abc\'`, nil, "unbalanced single quotes"},
		{"lone single quote", `SET k '`, nil, "unbalanced single quotes"},
		{"double closing followed by char", `SET k "a"b`, nil, "closing quote must be followed by a space"},
		{"double closing followed by quote", `SET k "a""b"`, nil, "closing quote must be followed by a space"},
		{"single closing followed by char", `SET k 'a'b`, nil, "closing quote must be followed by a space"},
		{"empty double followed by char", `SET k ""x`, nil, "closing quote must be followed by a space"},
		{"NaN arg", "SET k ?", vals(math.NaN()), "argument 1"},
		{"NaN extra arg", "SET k", vals(math.NaN()), "argument 1"},
		{"unsupported second arg", "SET ? ?", vals("k", struct{}{}), "argument 2"},
		{"unsupported extra arg", "MSET", vals("a", "1", int(3)), "argument 3"},
		{"nil arg", "SET k ?", vals(nil), "argument 1 is nil: Redis has no null value"},
		{"nil second arg", "SET ? ?", vals("k", nil), "argument 2 is nil: Redis has no null value"},
		{"nil extra arg", "MSET", vals("a", "1", "b", nil), "argument 4 is nil: Redis has no null value"},
		// The command, and a container's subcommand, come from the text.
		{"placeholder command", "?", vals("FLUSHDB"), "the command must be in the statement text, not a ? placeholder"},
		{"placeholder command with args", "? k", vals("DEL"), "the command must be in the statement text"},
		{"placeholder command after blanks", "  \t?", vals("FLUSHALL"), "the command must be in the statement text"},
		{"placeholder subcommand", "CONFIG ?", vals("SET", "maxmemory", "1"), "the subcommand of CONFIG must be in the statement text, not a ? placeholder"},
		{"placeholder subcommand lower case", "client ? x", vals("KILL"), "the subcommand of CLIENT must be in the statement text"},
		{"appended subcommand", "CLIENT", vals("KILL", "ID", "1"), "the subcommand of CLIENT must be in the statement text, not an argument"},
		{"appended subcommand of XGROUP", "xgroup", vals("DESTROY", "s", "g"), "the subcommand of XGROUP must be in the statement text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Append(nil, tt.query, tt.args)
			if err == nil {
				t.Fatalf("Append(%q, %v) succeeded, want error containing %q", tt.query, tt.args, tt.wantSub)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("Append(%q, %v) error = %q, want it to contain %q", tt.query, tt.args, err, tt.wantSub)
			}
		})
	}
}

// An empty statement with arguments turns the first argument into the
// command name, which makes the command data-controlled.
func TestAppendEmptyStatementWithArgs(t *testing.T) {
	for _, q := range []string{"", "   "} {
		if got, err := Append(nil, q, vals("FLUSHALL")); err == nil {
			t.Errorf("Append(%q, FLUSHALL) = %s, want empty statement error", q, argvString(got))
		}
	}
}

func TestAppendValue(t *testing.T) {
	ts := time.Date(2024, 2, 29, 13, 4, 5, 123456789, time.FixedZone("", -7*3600))
	tests := []struct {
		name string
		v    driver.Value
		want string
	}{
		{"bytes", []byte("a\x00b"), "a\x00b"},
		{"empty bytes", []byte{}, ""},
		{"string", "héllo", "héllo"},
		{"empty string", "", ""},
		{"int64 zero", int64(0), "0"},
		{"int64 negative", int64(-42), "-42"},
		{"int64 min", int64(math.MinInt64), "-9223372036854775808"},
		{"int64 max", int64(math.MaxInt64), "9223372036854775807"},
		{"uint64 zero", uint64(0), "0"},
		{"uint64 max", uint64(math.MaxUint64), "18446744073709551615"},
		{"float 0.1", 0.1, "0.1"},
		{"float 1.5", 1.5, "1.5"},
		{"float integral", 3.0, "3"},
		{"float 1e21", 1e21, "1e+21"},
		{"float 1e-7", 1e-7, "1e-07"},
		{"float zero", 0.0, "0"},
		{"float neg zero", math.Copysign(0, -1), "-0"},
		{"float max", math.MaxFloat64, "1.7976931348623157e+308"},
		{"float +inf", math.Inf(1), "inf"},
		{"float -inf", math.Inf(-1), "-inf"},
		{"true", true, "1"},
		{"false", false, "0"},
		{"time", ts, "2024-02-29T13:04:05.123456789-07:00"},
		{"time utc", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "2000-01-01T00:00:00Z"},
		{"time trailing zeros trimmed", time.Date(2000, 1, 1, 0, 0, 0, 500000000, time.UTC), "2000-01-01T00:00:00.5Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendValue(nil, tt.v)
			if err != nil {
				t.Fatalf("AppendValue(%#v) error: %v", tt.v, err)
			}
			if string(got) != tt.want {
				t.Errorf("AppendValue(%#v) = %q, want %q", tt.v, got, tt.want)
			}
			// Appending to an existing buffer keeps its contents.
			got, err = AppendValue([]byte("pre:"), tt.v)
			if err != nil {
				t.Fatalf("AppendValue(pre, %#v) error: %v", tt.v, err)
			}
			if string(got) != "pre:"+tt.want {
				t.Errorf("AppendValue(pre, %#v) = %q, want %q", tt.v, got, "pre:"+tt.want)
			}
		})
	}
}

// nil is an error, not the empty string: Redis has no null value.
func TestAppendValueNil(t *testing.T) {
	got, err := AppendValue([]byte("pre"), nil)
	if !errors.Is(err, ErrNil) || string(got) != "pre" {
		t.Errorf("AppendValue(nil) = %q, %v, want the buffer unchanged and ErrNil", got, err)
	}
	_, err = Append(nil, "SET ? ?", vals("k", nil))
	if !errors.Is(err, ErrNil) {
		t.Errorf("Append with a nil argument: %v, want ErrNil", err)
	}
}

// Floats must read back as the same value.
func TestAppendValueFloatRoundTrip(t *testing.T) {
	for _, f := range []float64{0.1, 1.0 / 3, 1e21, 1e-300, 5e-324, -123.456, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		got, err := AppendValue(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		var back float64
		if _, err := fmt.Sscan(string(got), &back); err != nil || back != f {
			t.Errorf("AppendValue(%v) = %q reads back as %v (err %v)", f, got, back, err)
		}
	}
}

func TestAppendValueErrors(t *testing.T) {
	type myString string
	tests := []struct {
		name    string
		v       driver.Value
		wantSub string
	}{
		{"NaN", math.NaN(), "NaN"},
		{"int", int(1), "int"},
		{"int32", int32(1), "int32"},
		{"float32", float32(1), "float32"},
		{"named string", myString("x"), "rediscmd.myString"},
		{"struct", struct{ A int }{1}, "struct"},
		{"pointer", new(int64), "*int64"},
		{"slice", []string{"a"}, "[]string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendValue([]byte("pre"), tt.v)
			if err == nil {
				t.Fatalf("AppendValue(%#v) = %q, want error", tt.v, got)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("AppendValue(%#v) error = %q, want it to name %q", tt.v, err, tt.wantSub)
			}
			if string(got) != "pre" {
				t.Errorf("AppendValue(%#v) on error returned %q, want the buffer unchanged", tt.v, got)
			}
		})
	}
}

// A Cmd put back in the pool refers to no large argument of its last use
// (it would keep the caller's value alive); small ones it may keep until
// its next use, which saves clearing its slices on every Put.
func TestPutDropsLargeArguments(t *testing.T) {
	big := make([]byte, keepRefs+1)
	c := new(Cmd)
	if err := c.ParseRef("SET k ?", []driver.Value{big}, 1); err != nil {
		t.Fatal(err)
	}
	Put(c)
	for _, r := range c.refs[:cap(c.refs)] {
		if len(r.b) > 0 && &r.b[0] == &big[0] {
			t.Fatal("a Cmd in the pool still refers to a large argument (refs)")
		}
	}
	for _, a := range c.Argv[:cap(c.Argv)] {
		if len(a) > 0 && &a[0] == &big[0] {
			t.Fatal("a Cmd in the pool still refers to a large argument (Argv)")
		}
	}
}
