package errlist

import (
	"errors"
	"fmt"
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
		{[]error{a}, "a"},
		{[]error{a, b}, "2 errors: a; b"},
		{[]error{a, b, a, a}, "4 errors: a (x3); b"},
	} {
		if got := Format(c.errs); got != c.want {
			t.Errorf("Format(%v) = %q, want %q", c.errs, got, c.want)
		}
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
