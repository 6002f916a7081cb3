package rediscmd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tendril-db/tendril/driver"
)

// Append parses query as a command line and appends its arguments to argv.
//
// Tokens are separated by spaces; double-quoted tokens take the escapes
// redis-cli knows (\n, \r, \t, \b, \a, \\, \", \xHH) and single-quoted ones
// are literal but for \'. An unquoted "?" is a placeholder that takes the
// next argument; arguments beyond the placeholders are appended, so
// ("GET ?", k), ("GET", k) and ("EXPIRE ? 60", k) all work. Arguments are
// binary safe: they never pass through the tokenizer.
func Append(argv [][]byte, query string, args []driver.Value) ([][]byte, error) {
	if strings.TrimLeft(query, " \t\r\n") == "" {
		// The command must come from the statement text, never from an
		// argument: that would let data choose the command.
		return argv, errors.New("empty statement: the command must be in the statement text")
	}
	next := 0
	i := 0
	for {
		for i < len(query) && isSpace(query[i]) {
			i++
		}
		if i == len(query) {
			break
		}
		if query[i] == '?' && (i+1 == len(query) || isSpace(query[i+1])) {
			if next == len(args) {
				return argv, fmt.Errorf("statement has more ? placeholders than the %d arguments given", len(args))
			}
			a, err := AppendValue(nil, args[next])
			if err != nil {
				return argv, fmt.Errorf("argument %d: %w", next+1, err)
			}
			argv = append(argv, a)
			next++
			i++
			continue
		}
		tok, n, err := token(query[i:])
		if err != nil {
			return argv, err
		}
		argv = append(argv, tok)
		i += n
	}
	for ; next < len(args); next++ {
		a, err := AppendValue(nil, args[next])
		if err != nil {
			return argv, fmt.Errorf("argument %d: %w", next+1, err)
		}
		argv = append(argv, a)
	}
	return argv, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// token reads one token from s (which starts with a non-space) and returns
// it with the number of bytes consumed.
func token(s string) ([]byte, int, error) {
	switch s[0] {
	case '"':
		var b []byte
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					b = append(b, '\n')
				case 'r':
					b = append(b, '\r')
				case 't':
					b = append(b, '\t')
				case 'b':
					b = append(b, '\b')
				case 'a':
					b = append(b, '\a')
				case 'x':
					if i+2 < len(s) {
						if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
							b = append(b, byte(v))
							i += 2
							continue
						}
					}
					b = append(b, 'x')
				default:
					b = append(b, s[i])
				}
			case c == '"':
				if i+1 < len(s) && !isSpace(s[i+1]) {
					return nil, 0, errors.New("closing quote must be followed by a space")
				}
				if b == nil {
					b = []byte{}
				}
				return b, i + 1, nil
			default:
				b = append(b, c)
			}
		}
		return nil, 0, errors.New("unbalanced double quotes in statement")
	case '\'':
		var b []byte
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && s[i+1] == '\'':
				b = append(b, '\'')
				i++
			case c == '\'':
				if i+1 < len(s) && !isSpace(s[i+1]) {
					return nil, 0, errors.New("closing quote must be followed by a space")
				}
				if b == nil {
					b = []byte{}
				}
				return b, i + 1, nil
			default:
				b = append(b, c)
			}
		}
		return nil, 0, errors.New("unbalanced single quotes in statement")
	}
	n := 0
	for n < len(s) && !isSpace(s[n]) {
		n++
	}
	return []byte(s[:n]), n, nil
}

// AppendValue appends the wire form of v: strings and bytes as they are,
// integers in decimal, floats in the shortest form that reads back the same
// (inf and -inf as Redis spells them), booleans as 1 and 0 and times in
// RFC 3339 with nanoseconds. nil is the empty string: Redis has no null
// argument.
func AppendValue(b []byte, v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		if b == nil {
			b = []byte{}
		}
		return b, nil
	case []byte:
		if b == nil {
			b = make([]byte, 0, len(v))
		}
		return append(b, v...), nil
	case string:
		if b == nil {
			b = make([]byte, 0, len(v))
		}
		return append(b, v...), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float64:
		switch {
		case math.IsInf(v, 1):
			return append(b, "inf"...), nil
		case math.IsInf(v, -1):
			return append(b, "-inf"...), nil
		case math.IsNaN(v):
			return b, errors.New("NaN cannot be sent to Redis")
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64), nil
	case bool:
		if v {
			return append(b, '1'), nil
		}
		return append(b, '0'), nil
	case time.Time:
		return v.AppendFormat(b, time.RFC3339Nano), nil
	}
	return b, fmt.Errorf("unsupported argument type %T", v)
}
