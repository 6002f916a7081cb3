package rediscmd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/tendril-db/tendril/driver"
)

// Cmd is a parsed command line. Its arguments live in one buffer that is
// reused from parse to parse, so a pooled Cmd parses without allocating.
type Cmd struct {
	Argv [][]byte // valid until the next Parse or Put
	// Frame is scratch space for the caller, e.g. to encode Argv for the
	// wire; it is kept with the Cmd in the pool.
	Frame []byte
	buf   []byte
	ends  []int
	refs  []ref // arguments not copied into buf, in order (ParseRef)
	held  int   // the bytes refs refer to
}

// keepRefs is how many bytes of the caller's arguments a Cmd back in the
// pool may still refer to (until its next use, or until the pool is
// emptied by the GC) rather than cost clearing its slices (write
// barriers) on every Put.
const keepRefs = 4 << 10

var cmdPool = sync.Pool{New: func() any { return new(Cmd) }}

// reset empties c for a parse: its storage stays.
func (c *Cmd) reset() {
	c.buf, c.ends, c.Argv, c.refs, c.held = c.buf[:0], c.ends[:0], c.Argv[:0], c.refs[:0], 0
}

// Get returns a Cmd from the pool.
func Get() *Cmd { return cmdPool.Get().(*Cmd) }

// Put returns c to the pool; c.Argv must not be used after.
func Put(c *Cmd) {
	if c.held > keepRefs { // the pool must not keep the caller's large values alive
		clear(c.refs)
		clear(c.Argv) // the other arguments are in c.buf
		c.held = 0
	}
	if cap(c.buf) > 64<<10 || cap(c.Frame) > 64<<10 { // do not keep a huge value's buffers around
		return
	}
	cmdPool.Put(c)
}

// Append parses query (see Cmd.Parse) and appends the arguments, in memory
// of their own, to argv.
func Append(argv [][]byte, query string, args []driver.Value) ([][]byte, error) {
	var c Cmd
	if err := c.Parse(query, args); err != nil {
		return argv, err
	}
	return append(argv, c.Argv...), nil
}

// Parse parses query as a command line into c.Argv.
//
// Tokens are separated by spaces; double-quoted tokens take the escapes
// redis-cli knows (\n, \r, \t, \b, \a, \\, \", \xHH) and single-quoted ones
// are literal but for \'. An unquoted "?" is a placeholder that takes the
// next argument; arguments beyond the placeholders are appended, so
// ("GET ?", k), ("GET", k) and ("EXPIRE ? 60", k) all work. Arguments are
// binary safe: they never pass through the tokenizer. The command, and the
// subcommand of a container command (CLIENT SETNAME), must be in the
// statement text: an argument is never taken for them. A nil argument is
// an error (ErrNil).
func (c *Cmd) Parse(query string, args []driver.Value) error {
	return c.parse(query, args, 0)
}

// ParseRef is Parse that does not copy a []byte or string argument of big
// bytes or more: its element of Argv is the argument's own memory (read
// only, a string's too), valid while the caller does not change it. It
// saves copying a large value on its way to the socket (see
// resp.AppendCommandV).
func (c *Cmd) ParseRef(query string, args []driver.Value, big int) error {
	return c.parse(query, args, big)
}

// BigArg is the size from which the redis driver passes a []byte or
// string argument by reference (ParseRef, then a vectored write from the
// caller's memory) instead of copying it into the frame and then into the
// connection's write buffer: below it, a copy costs less than the extra
// write segment.
const BigArg = 32 << 10

// ref is an argument of Argv that ParseRef did not copy: Argv[i] is b.
type ref struct {
	i int
	b []byte
}

// bigArg returns v's bytes without copying when v is a []byte or string of
// big bytes or more (big > 0).
func bigArg(v driver.Value, big int) ([]byte, bool) {
	if big <= 0 {
		return nil, false
	}
	switch v := v.(type) {
	case []byte:
		return v, len(v) >= big
	case string:
		return unsafe.Slice(unsafe.StringData(v), len(v)), len(v) >= big
	}
	return nil, false
}

func (c *Cmd) parse(query string, args []driver.Value, big int) error {
	c.reset()
	if blank(query) {
		// The command must come from the statement text, never from an
		// argument: that would let data choose the command.
		return errors.New("empty statement: the command must be in the statement text")
	}
	next := 0
	i := 0
	var err error
	for {
		for i < len(query) && isSpace(query[i]) {
			i++
		}
		if i == len(query) {
			break
		}
		if query[i] == '?' && (i+1 == len(query) || isSpace(query[i+1])) {
			if len(c.ends) < 2 {
				if err := c.checkVerb("a ? placeholder"); err != nil {
					return err
				}
			}
			if next == len(args) {
				return tooFewArgs(len(args))
			}
			if err := c.appendArg(args[next], big); err != nil {
				return argError(next+1, err)
			}
			next++
			i++
			continue
		}
		var n int
		if c.buf, n, err = appendToken(c.buf, query[i:]); err != nil {
			return err
		}
		c.ends = append(c.ends, len(c.buf))
		i += n
	}
	if next < len(args) && len(c.ends) < 2 {
		if err := c.checkVerb("an argument"); err != nil {
			return err
		}
	}
	for ; next < len(args); next++ {
		if err := c.appendArg(args[next], big); err != nil {
			return argError(next+1, err)
		}
	}
	c.slice()
	return nil
}

func tooFewArgs(n int) error {
	return fmt.Errorf("statement has more ? placeholders than the %d arguments given", n)
}

// slice makes Argv of what parse put in buf, ends and refs. Only once
// every argument is in: buf may have moved while growing.
func (c *Cmd) slice() {
	start, refs := 0, c.refs
	for i, end := range c.ends {
		if len(refs) > 0 && refs[0].i == i {
			c.Argv = append(c.Argv, refs[0].b)
			refs = refs[1:]
			continue // it took no room in buf: start stays
		}
		c.Argv = append(c.Argv, c.buf[start:end:end])
		start = end
	}
}

// appendArg adds an argument to Argv: copied into buf, or, when big
// enough (see ParseRef), referenced.
func (c *Cmd) appendArg(v driver.Value, big int) error {
	if b, ok := bigArg(v, big); ok {
		c.refs = append(c.refs, ref{len(c.ends), b})
		c.held += len(b)
		c.ends = append(c.ends, len(c.buf))
		return nil
	}
	var err error
	if c.buf, err = AppendValue(c.buf, v); err != nil {
		return err
	}
	c.ends = append(c.ends, len(c.buf))
	return nil
}

// checkVerb refuses to take the next token from what (a placeholder's or
// an appended argument's value) when it would be the command, or the
// subcommand of a container command: data must never choose what runs
// (Exec(ctx, "?", "FLUSHDB"), Exec(ctx, "CONFIG ?", "SET", ...)).
func (c *Cmd) checkVerb(what string) error {
	switch {
	case len(c.ends) > 1:
		return nil
	case len(c.ends) == 0:
		return fmt.Errorf("the command must be in the statement text, not %s", what)
	case len(c.ends) == 1 && isContainer(c.buf[:c.ends[0]]):
		return fmt.Errorf("the subcommand of %s must be in the statement text, not %s", upper(c.buf[:c.ends[0]]), what)
	}
	return nil
}

// argError wraps the error of argument n (1-based).
func argError(n int, err error) error {
	if errors.Is(err, ErrNil) {
		return fmt.Errorf("argument %d is nil: %w", n, ErrNil)
	}
	return fmt.Errorf("argument %d: %w", n, err)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendToken appends one token read from s (which starts with a
// non-space) to b and returns the number of bytes of s consumed.
func appendToken(b []byte, s string) ([]byte, int, error) {
	switch s[0] {
	case '"':
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
					return b, 0, errors.New("closing quote must be followed by a space")
				}
				return b, i + 1, nil
			default:
				b = append(b, c)
			}
		}
		return b, 0, errors.New("unbalanced double quotes in statement")
	case '\'':
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && s[i+1] == '\'':
				b = append(b, '\'')
				i++
			case c == '\'':
				if i+1 < len(s) && !isSpace(s[i+1]) {
					return b, 0, errors.New("closing quote must be followed by a space")
				}
				return b, i + 1, nil
			default:
				b = append(b, c)
			}
		}
		return b, 0, errors.New("unbalanced single quotes in statement")
	}
	n := 0
	for n < len(s) && !isSpace(s[n]) {
		n++
	}
	return append(b, s[:n]...), n, nil
}

// ErrNil is wrapped by the error for a nil argument. Redis has no null
// value, and sending "" in its place would store an empty string the
// caller did not ask for.
var ErrNil = errors.New("Redis has no null value")

var errNilValue = fmt.Errorf("nil value: %w", ErrNil)

// AppendValue appends the wire form of v: strings and bytes as they are,
// integers in decimal, floats in the shortest form that reads back the same
// (inf and -inf as Redis spells them), booleans as 1 and 0 and times in
// RFC 3339 with nanoseconds. nil is an error wrapping ErrNil (a nil []byte
// is a value: the empty string).
func AppendValue(b []byte, v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return b, errNilValue
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

// blank reports whether s has nothing but spaces (strings.TrimLeft with a
// cutset costs more than the whole parse of a short statement).
func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}
