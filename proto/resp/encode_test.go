package resp

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestAppendExactBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"command", AppendCommand(nil, []byte("SET"), []byte("k"), []byte("v")), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"},
		{"command string", AppendCommandString(nil, "GET", "key"), "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"},
		{"command empty arg", AppendCommandString(nil, "ECHO", ""), "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"},
		{"command no args", AppendCommand(nil), "*0\r\n"},
		{"header", AppendArrayHeader(nil, 12), "*12\r\n"},
		{"header zero", AppendArrayHeader(nil, 0), "*0\r\n"},
		{"bulk", AppendBulk(nil, []byte("a\r\nb")), "$4\r\na\r\nb\r\n"},
		{"bulk nil", AppendBulk(nil, nil), "$0\r\n\r\n"},
		{"bulk string", AppendBulkString([]byte("x"), "hello"), "x$5\r\nhello\r\n"},
		{"bulk int", AppendBulkInt(nil, -12), "$3\r\n-12\r\n"},
		{"bulk int min", AppendBulkInt(nil, math.MinInt64), "$20\r\n-9223372036854775808\r\n"},
		{"bulk uint max", AppendBulkUint(nil, math.MaxUint64), "$20\r\n18446744073709551615\r\n"},
		{"bulk float", AppendBulkFloat(nil, 1.5), "$3\r\n1.5\r\n"},
		{"bulk float inf", AppendBulkFloat(nil, math.Inf(1)), "$3\r\ninf\r\n"},
		{"bulk float -inf", AppendBulkFloat(nil, math.Inf(-1)), "$4\r\n-inf\r\n"},
		{"bulk float big", AppendBulkFloat(nil, 1e300), "$6\r\n1e+300\r\n"},
		{"value simple with LF", AppendValue(nil, &Value{Kind: KindSimpleString, Str: []byte("a\nb")}), "$3\r\na\nb\r\n"},
		{"value error with CR", AppendValue(nil, &Value{Kind: KindError, Str: []byte("E\rx")}), "!3\r\nE\rx\r\n"},
		{"value odd map", AppendValue(nil, &Value{Kind: KindMap, Elems: []Value{simple("k")}}), "%1\r\n+k\r\n_\r\n"},
		{"value verbatim default format", AppendValue(nil, &Value{Kind: KindVerbatim, Str: []byte("hi")}), "=6\r\ntxt:hi\r\n"},
		{"value invalid", AppendValue(nil, &Value{}), "_\r\n"},
		{"value attrs", AppendValue(nil, &Value{Kind: KindInteger, Int: 1, Attrs: &[]Value{simple("a"), simple("b")}}), "|1\r\n+a\r\n+b\r\n:1\r\n"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestCommandRoundTrip encodes commands every way a caller can and decodes
// them back, over byte-at-a-time reads as a server would see them.
func TestCommandRoundTrip(t *testing.T) {
	big := strings.Repeat("v", 100000)
	argvs := [][]string{
		{"PING"},
		{"GET", "k"},
		{"SET", "key:{user}:1", big, "EX", "10"},
		{"HSET", "h", "", "\r\n", "\x00\xff"},
		{"MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6"},
	}
	var buf []byte
	for _, argv := range argvs {
		bs := make([][]byte, len(argv))
		for i, a := range argv {
			bs[i] = []byte(a)
		}
		byHand := AppendArrayHeader(nil, len(argv))
		for _, a := range argv {
			byHand = AppendBulkString(byHand, a)
		}
		buf = AppendCommand(buf, bs...)
		if s := AppendCommandString(nil, argv...); !bytes.Equal(s, AppendCommand(nil, bs...)) || !bytes.Equal(s, byHand) {
			t.Fatalf("%q: encoders disagree", argv[0])
		}
	}
	buf = AppendArrayHeader(buf, 4)
	buf = AppendBulkString(buf, "ZADD")
	buf = AppendBulkInt(buf, -7)
	buf = AppendBulkUint(buf, 42)
	buf = AppendBulkFloat(buf, 0.1)

	for rname, mk := range readers(string(buf)) {
		r := NewReaderSize(mk(), MinBufferSize)
		var v Value
		for _, argv := range argvs {
			if err := r.ReadValue(&v); err != nil {
				t.Fatalf("%s: %v", rname, err)
			}
			if v.Kind != KindArray || len(v.Elems) != len(argv) {
				t.Fatalf("%s: %q decoded as %v", rname, argv[0], v.Kind)
			}
			for i, a := range argv {
				if e := v.Elems[i]; e.Kind != KindBulkString || string(e.Str) != a {
					t.Fatalf("%s: %q arg %d = %.40v", rname, argv[0], i, e)
				}
			}
		}
		if err := r.ReadValue(&v); err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(string(v.Elems[1].Str), 10, 64)
		u, _ := strconv.ParseUint(string(v.Elems[2].Str), 10, 64)
		f, _ := strconv.ParseFloat(string(v.Elems[3].Str), 64)
		if n != -7 || u != 42 || f != 0.1 {
			t.Fatalf("%s: numeric args decoded as %v", rname, v)
		}
	}
}

func TestAppendCommandZeroAlloc(t *testing.T) {
	buf := make([]byte, 0, 256)
	get, set, k, v := []byte("GET"), []byte("SET"), []byte("key:1"), []byte("value")
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendCommand(buf[:0], get, k)
		buf = AppendCommand(buf, set, k, v)
		buf = AppendCommandString(buf, "SET", "key:1", "value")
		buf = AppendArrayHeader(buf, 3)
		buf = AppendBulkString(buf, "EXPIRE")
		buf = AppendBulk(buf, k)
		buf = AppendBulkInt(buf, 3600)
		buf = AppendBulkUint(buf, 1)
		buf = AppendBulkFloat(buf, 2.5)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per run, want 0", allocs)
	}
	// Without capacity, one allocation per command, not one per argument.
	allocs = testing.AllocsPerRun(100, func() {
		_ = AppendCommandString(nil, "MSET", "a", "1", "b", "2", "c", "3", "d", "4")
	})
	if allocs != 1 && !raceEnabled {
		t.Fatalf("AppendCommandString(nil, ...): %v allocs, want 1", allocs)
	}
}

// AppendCommandV's pieces, joined, are AppendCommand's frame, with big
// arguments referenced, not copied, and a prefix already in dst first.
func TestAppendCommandV(t *testing.T) {
	big1, big2 := bytes.Repeat([]byte{'a'}, 40), bytes.Repeat([]byte{'b'}, 100)
	for _, argv := range [][][]byte{
		{[]byte("GET"), []byte("k")},
		{[]byte("SET"), []byte("k"), big1},
		{[]byte("MSET"), []byte("k1"), big1, []byte("k2"), big2},
		{[]byte("ECHO"), big2},
		{big1, big2},
	} {
		prefix := AppendCommandString(nil, "ASKING")
		want := AppendCommand(append([]byte(nil), prefix...), argv...)
		dst, pieces := AppendCommandV(prefix, nil, 32, argv...)
		if got := bytes.Join(pieces, nil); !bytes.Equal(got, want) {
			t.Errorf("%q: pieces join to %q, want %q", argv, got, want)
		}
		if bytes.Contains(dst, big1) || bytes.Contains(dst, big2) {
			t.Errorf("%q: a big argument was copied into dst", argv)
		}
		var bigs [][]byte
		for _, a := range argv {
			if len(a) >= 32 {
				bigs = append(bigs, a)
			}
		}
		if len(pieces) != 1+2*len(bigs) {
			t.Fatalf("%q: %d pieces, want %d", argv, len(pieces), 1+2*len(bigs))
		}
		for i, b := range bigs {
			if p := pieces[1+2*i]; &p[0] != &b[0] {
				t.Errorf("%q: piece %d is not the big argument itself", argv, 1+2*i)
			}
		}
	}
}
