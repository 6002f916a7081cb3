package errlist

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	for _, c := range []struct {
		errs []error
		want string
	}{
		{nil, "no errors"},
		{[]error{a}, "a"}, // never "1 errors: a"
		{[]error{a, b}, "2 errors: a; b"},
		{[]error{a, b, errors.New("c")}, "3 errors: a; b; c"},
		{[]error{a, b, a, a}, "4 errors: a (x3); b"},
	} {
		if got := Format(c.errs); got != c.want {
			t.Errorf("Format(%v) = %q, want %q", c.errs, got, c.want)
		}
	}
}

// TestJoin: Join skips nils, is nil when nothing failed, prints one error
// as itself, and errors.Is/As reach every joined error.
func TestJoin(t *testing.T) {
	if err := Join(nil, nil); err != nil {
		t.Fatalf("Join(nil, nil) = %v", err)
	}
	if err := Join(nil, io.EOF, nil); err == nil || err.Error() != "EOF" {
		t.Fatalf("Join of one error = %v, want EOF", err)
	}
	pe := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	err := Join(fmt.Errorf("first: %w", io.EOF), pe, Join(io.ErrUnexpectedEOF, fs.ErrClosed))
	if got, want := err.Error(), "4 errors: first: EOF; open /x: file does not exist; unexpected EOF; file already closed"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, target := range []error{io.EOF, fs.ErrNotExist, io.ErrUnexpectedEOF, fs.ErrClosed} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v) = false", target)
		}
	}
	var got *fs.PathError
	if !errors.As(err, &got) || got != pe {
		t.Errorf("errors.As did not find the *fs.PathError")
	}
	if errors.Is(Join(io.EOF), fs.ErrClosed) {
		t.Errorf("errors.Is found an error that was not joined")
	}
}

// TestFormatRepeatedPrefix: a layer that repeats the one below it ("dial
// tcp X: dial tcp X: ...") is shown once; different segments stay.
func TestFormatRepeatedPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"conn: dial tcp 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused": "conn: dial tcp 127.0.0.1:1: connect: connection refused",
		"a: a: a: b":                  "a: b",
		"node a: node b: refused":     "node a: node b: refused",
		"x: y: x: y":                  "x: y: x: y", // not adjacent: kept
		"no separator":                "no separator",
		"trailing: ":                  "trailing: ",
		"127.0.0.1:1:127.0.0.1:1: up": "127.0.0.1:1:127.0.0.1:1: up",
	} {
		if got := Format([]error{errors.New(in)}); got != want {
			t.Errorf("Format(%q) = %q, want %q", in, got, want)
		}
	}
	got := Format([]error{errors.New("node a: dial a: dial a: refused"), errors.New("node b: dial b: dial b: refused")})
	if want := "2 errors: node a: dial a: refused; node b: dial b: refused"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFormatCapped(t *testing.T) {
	var errs []error
	for i := range 20 {
		errs = append(errs, fmt.Errorf("seed %d: refused", i))
	}
	got := Format(errs)
	want := "20 errors: seed 0: refused; seed 1: refused; seed 2: refused; seed 3: refused; seed 4: refused; seed 5: refused; seed 6: refused; seed 7: refused; and 12 more"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestFormat10000: 10,000 seed errors make a short text that still says
// how many failed, and every one of them stays reachable.
func TestFormat10000(t *testing.T) {
	var m error
	for i := range 10_000 {
		m = Append(m, fmt.Errorf("node 10.0.%d.%d:7000: %w", i/256, i%256, io.EOF))
	}
	s := m.Error()
	if len(s) > 8<<10 {
		t.Errorf("formatted list is %d bytes, want < 8 KB", len(s))
	}
	if !strings.HasPrefix(s, "10000 errors: node 10.0.0.0:7000: EOF; ") || !strings.HasSuffix(s, "; and 9992 more") {
		t.Errorf("unexpected text: %.300s", s)
	}
	if n := len(m.(interface{ WrappedErrors() []error }).WrappedErrors()); n != 10_000 {
		t.Errorf("%d errors kept, want 10000", n)
	}
}

// TestFormatLinear guards against the quadratic string building that made
// 10,000 seed errors cost seconds and a megabyte.
func TestFormatLinear(t *testing.T) {
	var m error
	for i := range 100_000 {
		m = Append(m, fmt.Errorf("node 10.0.%d.%d:7000: connection refused", i/256, i%256))
	}
	start := time.Now()
	s := m.Error()
	if d := time.Since(start); d > time.Second {
		t.Errorf("formatting 100,000 errors took %v", d)
	}
	if len(s) > 2*MaxShown*maxMessage {
		t.Errorf("formatted list is %d bytes, want it capped", len(s))
	}
	if !strings.HasPrefix(s, "100000 errors: ") || !strings.HasSuffix(s, "and 99992 more") {
		t.Errorf("unexpected text: %.200s", s)
	}
}

func TestFormatClipsHugeMessage(t *testing.T) {
	s := Format([]error{errors.New(strings.Repeat("x", 1<<20)), errors.New("y")})
	if len(s) > 2*maxMessage {
		t.Errorf("got %d bytes", len(s))
	}
}
