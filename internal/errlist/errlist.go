// Package errlist formats lists of errors in one style for the whole
// module: "3 errors: a; b; c". Identical messages are shown once with a
// count, at most MaxShown distinct messages are spelled out, and the text
// is built in linear time however many errors there are.
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
// cannot make the list huge.
const maxMessage = 512

// Format is a multierror.ErrorFormatFunc: "a" for one error, "3 errors: a;
// b (x2)" for several, "40 errors: a; b; ...; and 32 more" beyond MaxShown
// distinct messages.
func Format(errs []error) string {
	switch len(errs) {
	case 0:
		return "no errors"
	case 1:
		return clip(errs[0].Error())
	}
	type entry struct {
		msg string
		n   int
	}
	var order []*entry
	seen := make(map[string]*entry, min(len(errs), 64))
	for _, err := range errs {
		msg := "<nil>"
		if err != nil {
			msg = clip(err.Error())
		}
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
