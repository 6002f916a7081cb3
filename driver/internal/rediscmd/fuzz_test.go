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
