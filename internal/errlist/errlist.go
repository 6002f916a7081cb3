// Package errlist is the module's one way to join errors: a
// *multierror.Error (github.com/hashicorp/go-multierror) printed as "3
// errors: a; b; c". One error prints as itself (never "1 errors: a"),
// identical messages are shown once with a count, a message that repeats
// its own prefix ("dial tcp X: dial tcp X: refused") is shown once, at
// most MaxShown distinct messages are spelled out and the rest counted
// ("and 12 more"), and the text is built in linear time however many
// errors there are. errors.Is and errors.As see every joined error.
package errlist

import (
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// MaxShown is the number of distinct messages Format spells out; the rest
// are counted.
const MaxShown = 8

// maxMessage bounds one message in the list, so that one huge error
// cannot make the list huge: the whole text stays below about
// MaxShown*maxMessage bytes.
const maxMessage = 512

// Format is a multierror.ErrorFormatFunc: "a" for one error, "3 errors: a;
// b (x2)" for several, "40 errors: a; b; ...; and 32 more" beyond MaxShown
// distinct messages.
func Format(errs []error) string {
	switch len(errs) {
	case 0:
		return "no errors"
	case 1:
		return message(errs[0])
	}
	type entry struct {
		msg string
		n   int
	}
	var order []*entry
	seen := make(map[string]*entry, min(len(errs), 64))
	for _, err := range errs {
		msg := message(err)
		if e := seen[msg]; e != nil {
			e.n++
			continue
		}
		e := &entry{msg: msg, n: 1}
		seen[msg] = e
		order = append(order, e)
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(errs)))
	b.WriteString(" errors: ")
	shown := 0
	for i, e := range order {
		if i == MaxShown {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.msg)
		if e.n > 1 {
			b.WriteString(" (x")
			b.WriteString(strconv.Itoa(e.n))
			b.WriteByte(')')
		}
		shown += e.n
	}
	if rest := len(errs) - shown; rest > 0 {
		b.WriteString("; and ")
		b.WriteString(strconv.Itoa(rest))
		b.WriteString(" more")
	}
	return b.String()
}

// message is err's text, its repeated segments dropped and clipped.
func message(err error) string {
	if err == nil {
		return "<nil>"
	}
	return clip(squeeze(err.Error()))
}

// squeeze drops a ": "-separated segment equal to the one before it:
// layers that each name what they did wrap one another into "dial tcp X:
// dial tcp X: connection refused", which says nothing twice as long.
// Segments are compared whole, so "node a: node b" stays as it is.
func squeeze(s string) string {
	if strings.Count(s, ": ") < 1 {
		return s
	}
	var b strings.Builder
	prev, rest, first := "", s, true
	for {
		seg, tail, more := strings.Cut(rest, ": ")
		if first || seg != prev {
			if !first {
				b.WriteString(": ")
			}
			b.WriteString(seg)
		}
		first, prev = false, seg
		if !more {
			break
		}
		rest = tail
	}
	return b.String()
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "..."
}

// Append is multierror.Append that formats the result with Format.
func Append(err error, errs ...error) *multierror.Error {
	m := multierror.Append(err, errs...)
	m.ErrorFormat = Format
	return m
}

// Join joins the errors that are not nil, as errors.Join does, into a
// *multierror.Error printed by Format; nil when every error is nil.
func Join(errs ...error) error {
	var m *multierror.Error
	for _, err := range errs {
		if err != nil {
			m = Append(m, err)
		}
	}
	return m.ErrorOrNil()
}
