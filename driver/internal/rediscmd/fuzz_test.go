package rediscmd

import (
	"bytes"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

func FuzzAppend(f *testing.F) {
	for _, s := range []struct {
		q   string
		arg []byte
	}{
		{"SET k ?", []byte("v")},
		{"GET ?", []byte{}},
		{"EXPIRE ? 60", []byte("k")},
		{"GET", []byte("k\x00")},
		{`SET "a b" ?`, []byte(`"?"`)},
		{`SET k "\x41\n\"" ?`, []byte("\xff\x00 ?")},
		{`SET 'it\'s' ?`, []byte("'")},
		{"SET a?b ? ?", []byte("x")},
		{`SET k "unbalanced`, []byte("v")},
		{`SET k "a"b`, []byte("v")},
		{"", []byte("v")},
		{" \t\r\n", nil},
	} {
		f.Add(s.q, s.arg)
	}
	f.Fuzz(func(t *testing.T, query string, arg []byte) {
		orig := bytes.Clone(arg)
		argv, err := Append(nil, query, []driver.Value{arg})
		if err == nil {
			if len(argv) == 0 {
				t.Fatalf("Append(%q) returned empty argv and no error", query)
			}
			// A parsed line routes without panicking.
			r := Route(argv)
			if r.Key != nil && (r.Partition < 0 || r.Partition >= Slots) {
				t.Fatalf("Route(%q) partition %d out of range", query, r.Partition)
			}
		}
		if !bytes.Equal(arg, orig) {
			t.Fatalf("Append modified its argument: %q, was %q", arg, orig)
		}

		argv, err = Append(nil, "SET k ?", []driver.Value{arg})
		if err != nil {
			t.Fatalf("Append(SET k ?, %q) error: %v", arg, err)
		}
		if len(argv) != 3 || !bytes.Equal(argv[2], arg) {
			t.Fatalf("Append(SET k ?, %q) = %q, want last element equal to the argument", arg, argv)
		}

		// The same holds for the argument given as a string.
		argv, err = Append(nil, "SET k ?", []driver.Value{string(arg)})
		if err != nil || len(argv) != 3 || !bytes.Equal(argv[2], arg) {
			t.Fatalf("Append(SET k ?, string %q) = %q, %v", arg, argv, err)
		}
	})
}

// FuzzRoute routes arbitrary command lines (arguments separated by NUL):
// no panic, every key is an argument after the command name, and the
// partition is a slot.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"GET\x00k", "XREAD\x00BLOCK\x000\x00STREAMS\x00s\x00$", "EVAL\x00s\x002\x00a", "EVAL\x00s\x00-1",
		"BLMPOP\x000\x0099999999999\x00l", "ZUNIONSTORE\x00d\x002\x00a\x00b", "SORT\x00k\x00STORE",
		"MIGRATE\x00h\x00p\x00\x000\x001\x00KEYS\x00a", "client\x00setname\x00x", "CLIENT", "xreadgroup\x00group\x00g\x00c\x00streams",
		"GEOSEARCH\x00g\x00FROMMEMBER\x00WITHCOORD", "ZADD\x00z\x00INCR", "SET\x00k\x00v\x00nx", "LTRIM\x00l\x00-1\x00-1",
		"EXPIREAT\x00k\x009999999999999999999999", "MIGRATE\x00h\x00p\x00\x000\x001\x00AUTH2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		argv := bytes.Split([]byte(line), []byte{0})
		r := Route(argv)
		if r.Key != nil && (r.Partition < 0 || r.Partition >= Slots) {
			t.Fatalf("Route(%q) partition %d out of range", argv, r.Partition)
		}
		_, s := Lookup(argv)
		s.ReplyShape(argv)
		s.eachKey(argv, func(i int, _ KeyFlags) bool {
			if i < 1 || i >= len(argv) {
				t.Fatalf("Keys(%q): index %d", argv, i)
			}
			return true
		})
	})
}
