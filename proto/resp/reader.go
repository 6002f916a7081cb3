package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unsafe"
)

// ErrProtocol is wrapped by every error caused by malformed or over-limit
// input, as opposed to errors from the underlying io.Reader. Test with
// errors.Is; the message of the wrapping error says what was wrong.
var ErrProtocol = errors.New("protocol error")

const (
	// DefaultBufferSize is the read buffer size used by [NewReader]. 32 KiB
	// holds a typical pipelined batch of small replies in one read syscall.
	DefaultBufferSize = 32 << 10
	// MinBufferSize is the smallest buffer [NewReaderSize] will use: every
	// valid length or integer line must fit in the buffer.
	MinBufferSize = 64

	// DefaultMaxBulkLen mirrors Redis's own proto-max-bulk-len default.
	DefaultMaxBulkLen = 512 << 20
	// DefaultMaxArrayLen bounds aggregate lengths (map pairs count once).
	// It is generous because memory is committed only as elements actually
	// arrive (see the package documentation), and legitimate replies such as
	// LRANGE 0 -1 on a big list can run to millions of elements.
	DefaultMaxArrayLen = 1 << 24
	// DefaultMaxDepth bounds nesting. Real Redis replies nest a handful of
	// levels (XINFO STREAM FULL is among the deepest); 64 leaves ample room
	// while keeping the recursive decoder's stack small.
	DefaultMaxDepth = 64
	// DefaultMaxLineLen bounds simple strings, errors, doubles, big numbers
	// and length lines. Servers keep these short (Redis truncates the
	// arguments it echoes in error messages), so a longer line is a broken
	// or hostile peer, not data.
	DefaultMaxLineLen = 64 << 10
	// DefaultMaxReplyBytes bounds the memory one decoded reply may hold
	// (see Limits.MaxReplyBytes). It is the size of the largest bulk
	// string (DefaultMaxBulkLen, Redis's largest value), so a GET of any
	// value still decodes, while an array of small elements stops at a few
	// million of them instead of taking ~1.3 GB for its 16M-element limit.
	DefaultMaxReplyBytes = DefaultMaxBulkLen
)

// ValueSize is the memory one element slot of an aggregate costs, as
// counted against Limits.MaxReplyBytes.
const ValueSize = int64(unsafe.Sizeof(Value{}))

// Growth policy for declared lengths the peer has not backed with bytes yet.
// A bulk string gets what was declared up to bulkPrealloc (or what is
// buffered already), then grows geometrically as data arrives. An aggregate
// gets a slot for each element whose bytes may be buffered already (every
// element takes minElemBytes on the wire at least; bytes that justified the
// slots of an enclosing aggregate do not count again), and at least
// elemsPrealloc, then grows geometrically: a slot costs ValueSize bytes, 27
// times the smallest element, so a header alone must not buy many.
const (
	bulkPrealloc  = 1 << 20
	bulkJump      = 16 // see appendN
	elemsPrealloc = 8
	minElemBytes  = 3 // "_\r\n"
)

// Limits bounds what a [Reader] accepts. A zero field means the default.
// Lengths beyond a limit are rejected with an error wrapping [ErrProtocol]
// (whose message names the limit) before any memory is reserved for them.
type Limits struct {
	// MaxBulkLen is the largest bulk string, bulk error, verbatim string or
	// streamed string (total of its chunks), in bytes.
	MaxBulkLen int64
	// MaxArrayLen is the largest number of elements of an array, set or
	// push, or of key/value pairs of a map or attribute, declared or
	// streamed.
	MaxArrayLen int64
	// MaxDepth is the deepest nesting of aggregates (and attributes)
	// accepted; a top-level array of scalars has depth 1.
	MaxDepth int
	// MaxLineLen is the longest line, in bytes without its CRLF: simple
	// string, error, double and big number lines, and the length and
	// integer lines (which must also fit in the read buffer).
	MaxLineLen int64
	// MaxReplyBytes bounds the memory a decoded reply may hold: every
	// element slot of its aggregates counts [ValueSize] bytes and every
	// string the capacity of its buffer, as they are allocated. Buffers a
	// reused Value already holds cost nothing, and [Reader.Skip] keeps
	// nothing, so neither counts. Slices grow geometrically as bytes
	// arrive: the garbage left by growing (collectable at once) can add up
	// to twice as much again, so a hostile reply makes the decoder allocate
	// at most about three times MaxReplyBytes in all.
	MaxReplyBytes int64
}

// DefaultLimits returns the limits used when none are set.
func DefaultLimits() Limits {
	return Limits{
		MaxBulkLen: DefaultMaxBulkLen, MaxArrayLen: DefaultMaxArrayLen, MaxDepth: DefaultMaxDepth,
		MaxLineLen: DefaultMaxLineLen, MaxReplyBytes: DefaultMaxReplyBytes,
	}
}

func (l Limits) withDefaults() Limits {
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = DefaultMaxBulkLen
	}
	if l.MaxArrayLen <= 0 {
		l.MaxArrayLen = DefaultMaxArrayLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxLineLen <= 0 {
		l.MaxLineLen = DefaultMaxLineLen
	}
	if l.MaxReplyBytes <= 0 {
		l.MaxReplyBytes = DefaultMaxReplyBytes
	}
	// Keep lengths convertible to int (and 2*pairs, and len+CRLF) on every
	// platform, so that a limit set to "unlimited" cannot overflow.
	if l.MaxBulkLen > math.MaxInt-2 {
		l.MaxBulkLen = math.MaxInt - 2
	}
	if l.MaxLineLen > math.MaxInt-2 {
		l.MaxLineLen = math.MaxInt - 2
	}
	if l.MaxArrayLen > math.MaxInt/2 {
		l.MaxArrayLen = math.MaxInt / 2
	}
	return l
}

// Reader decodes RESP2 and RESP3 replies from an io.Reader. It buffers its
// input, so it must be the only reader of the underlying stream. A Reader is
// not safe for concurrent use.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int   // buf[r:w] is buffered, unread input
	err  error // read error to report once buffered input is used up
	lim  Limits
	// maxLine is the most bytes a line may have before its LF (the line
	// and its CR): lim.MaxLineLen+1.
	maxLine int
	// claimed: buf[:claimed] justified the slots preallocated for the
	// elements of some aggregate (see elemsPrealloc).
	claimed int
	// left is what remains of the current reply's MaxReplyBytes. Memory
	// is counted as allocated (the allocator's rounding included), so it
	// may dip below zero by one allocation before the reply fails.
	left int64

	scratch Value // target of Skip, so skipping allocates nothing in steady state
}

// NewReader returns a Reader with a [DefaultBufferSize] buffer and default
// [Limits].
func NewReader(rd io.Reader) *Reader {
	return NewReaderSize(rd, DefaultBufferSize)
}

// NewReaderSize returns a Reader with a buffer of size bytes (at least
// [MinBufferSize]) and default [Limits]. A larger buffer means fewer read
// syscalls for large pipelines; values larger than the buffer are still
// decoded, read directly into their own storage.
func NewReaderSize(rd io.Reader, size int) *Reader {
	if size < MinBufferSize {
		size = MinBufferSize
	}
	r := &Reader{rd: rd, buf: make([]byte, size)}
	r.SetLimits(Limits{})
	return r
}

// SetLimits replaces the limits; zero fields take their defaults.
func (r *Reader) SetLimits(l Limits) {
	r.lim = l.withDefaults()
	r.maxLine = int(r.lim.MaxLineLen) + 1
}

// Limits returns the limits in force, defaults filled in.
func (r *Reader) Limits() Limits { return r.lim }

// Reset discards any buffered input and makes r read from rd, keeping its
// buffer and limits, so a pooled connection can reuse its Reader.
func (r *Reader) Reset(rd io.Reader) {
	r.rd = rd
	r.r, r.w, r.claimed = 0, 0, 0
	r.err = nil
}

// Buffered returns the number of bytes that have been read from the
// underlying reader but not yet decoded. A connection can use it to tell
// whether another reply is ready without blocking.
func (r *Reader) Buffered() int { return r.w - r.r }

// Peek returns the first byte of the next message (its RESP type byte)
// without consuming it, waiting for it to arrive if need be. It lets a
// connection choose how to read a message only once the message begins:
// by then whoever waited for the reply may have given up on it, and
// [Reader.SkipReply] can drop it. It returns io.EOF if the stream ended
// cleanly before the message.
func (r *Reader) Peek() (byte, error) {
	for r.r == r.w {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	return r.buf[r.r], nil
}

// ReadValue decodes the next reply into v, reusing v's buffers (see the
// package documentation for what that means for ownership).
//
// It returns io.EOF only if the stream ended cleanly before the first byte
// of a reply, io.ErrUnexpectedEOF if it ended inside one, an error wrapping
// [ErrProtocol] for malformed or over-limit input, and otherwise whatever
// the underlying reader returned. On error v's contents are unspecified.
//
// Attributes preceding the reply are stored in v.Attrs; push messages come
// back as ordinary replies of Kind [KindPush], for the caller to route.
func (r *Reader) ReadValue(v *Value) error {
	v.reset()
	r.left = r.lim.MaxReplyBytes
	t, err := r.readByte()
	if err != nil {
		return err
	}
	if err := r.decode(v, t, 0, false); err != nil {
		return noEOF(err)
	}
	if r.left < 0 { // the last allocation overshot (see bulkFast)
		return r.overBudget()
	}
	return nil
}

// ReadReply decodes the next reply into a new Value whose memory is owned by
// the caller and shared with nothing else. It is the convenient, allocating
// counterpart of [Reader.ReadValue].
func (r *Reader) ReadReply() (Value, error) {
	var v Value
	if err := r.ReadValue(&v); err != nil {
		return Value{}, err
	}
	return v, nil
}

// Skip consumes the next reply without keeping it, validating it exactly as
// ReadValue would. Bulk payloads are discarded straight from the buffer, so
// skipping (e.g. the replies of a fire-and-forget pipeline) never allocates
// for them.
func (r *Reader) Skip() error {
	t, err := r.readByte()
	if err != nil {
		return err
	}
	return r.skip(t)
}

// SkipReply consumes the next message like [Reader.Skip] unless it is a
// push message, which it decodes into v as [Reader.ReadValue] would,
// attributes included, and reports false. It is for a connection that
// drops the reply of a request nobody waits for any more: pushes answer no
// request and are interleaved with replies, so they must still be
// delivered, and must not be taken for the dropped reply. It reports true
// when it skipped a reply; v then holds nothing.
func (r *Reader) SkipReply(v *Value) (skipped bool, err error) {
	v.reset()
	r.left = r.lim.MaxReplyBytes
	t, err := r.readByte()
	if err != nil {
		return false, err
	}
	// Attributes come before the message they describe: keep them until
	// the message's type says whether it is a push.
	for t == '|' {
		if err := r.decodeAttrs(v, 0, false); err != nil {
			return false, noEOF(err)
		}
		if t, err = r.readByte(); err != nil {
			return false, noEOF(err)
		}
	}
	if t == '>' {
		if err := r.decode(v, t, 0, false); err != nil {
			return false, noEOF(err)
		}
		if r.left < 0 {
			return false, r.overBudget()
		}
		return false, nil
	}
	if v.Attrs != nil {
		*v.Attrs = (*v.Attrs)[:0]
	}
	return true, r.skip(t)
}

// skip consumes the rest of a message whose type byte t has been read.
func (r *Reader) skip(t byte) error {
	r.left = r.lim.MaxReplyBytes
	s := &r.scratch
	s.reset()
	err := noEOF(r.decode(s, t, 0, true))
	if cap(s.Str) > 64<<10 { // do not pin a huge one-off line
		s.Str = nil
	}
	return err
}

// noEOF turns an EOF met inside a reply into io.ErrUnexpectedEOF: only the
// caller's first byte may legitimately hit the end of the stream.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func protoErrf(format string, args ...any) error {
	return fmt.Errorf("resp: "+format+": %w", append(args, ErrProtocol)...)
}

// Lines that do not fit: over MaxLineLen, or over the read buffer (which
// the string line types may exceed, the length lines may not).
var (
	errLineTooLong = errors.New("resp: line longer than MaxLineLen")
	errLineBuffer  = errors.New("resp: line longer than the read buffer")
)

// overBudget is the error of a reply that would exceed MaxReplyBytes.
func (r *Reader) overBudget() error {
	return protoErrf("decoded reply would exceed MaxReplyBytes %d", r.lim.MaxReplyBytes)
}

// spend counts k bytes just allocated against the reply's budget.
func (r *Reader) spend(k int) error {
	if r.left -= int64(k); r.left < 0 {
		return r.overBudget()
	}
	return nil
}

// typeName names the type byte t for error messages.
func typeName(t byte) string {
	switch t {
	case '+':
		return "simple string"
	case '-':
		return "error"
	case ':':
		return "integer"
	case '$':
		return "bulk"
	case '*':
		return "array"
	case '_':
		return "null"
	case '#':
		return "boolean"
	case ',':
		return "double"
	case '(':
		return "big number"
	case '!':
		return "bulk error"
	case '=':
		return "verbatim string"
	case '%':
		return "map"
	case '~':
		return "set"
	case '|':
		return "attribute"
	case '>':
		return "push"
	case ';':
		return "chunk"
	case '.':
		return "end"
	}
	return fmt.Sprintf("type %q", t)
}

// decode decodes one value whose type byte t has been read. It does not
// reset v, so attributes read by the caller are kept. With discard set the
// value is validated and consumed but not stored: v is used as scratch for
// every nested value and bulk payloads are skipped in place.
func (r *Reader) decode(v *Value, t byte, depth int, discard bool) error {
	for t == '|' {
		if err := r.decodeAttrs(v, depth, discard); err != nil {
			return err
		}
		var err error
		if t, err = r.readByte(); err != nil {
			return err
		}
	}
	switch t {
	case '+', '-', '(', ',':
		return r.decodeLine(v, t)
	case ':':
		line, err := r.line()
		if err != nil {
			return r.lineErr(err, t)
		}
		n, ok := parseInt(line)
		if !ok {
			return protoErrf("invalid integer %q", line)
		}
		v.Kind, v.Int = KindInteger, n
		return nil
	case '$':
		if r.bulkFast(v, discard) {
			return nil
		}
		return r.decodeBlob(v, t, discard)
	case '!', '=':
		return r.decodeBlob(v, t, discard)
	case '*', '~', '>', '%':
		return r.decodeAggregate(v, t, depth, discard)
	case '_':
		line, err := r.line()
		if err != nil {
			return r.lineErr(err, t)
		}
		if len(line) != 0 {
			return protoErrf("invalid null %q", line)
		}
		v.Kind = KindNull
		return nil
	case '#':
		line, err := r.line()
		if err != nil {
			return r.lineErr(err, t)
		}
		if len(line) != 1 || (line[0] != 't' && line[0] != 'f') {
			return protoErrf("invalid boolean %q", line)
		}
		v.Kind = KindBoolean
		if line[0] == 't' {
			v.Int = 1
		}
		return nil
	case '.', ';':
		return protoErrf("unexpected %s marker outside a streamed value", typeName(t))
	}
	return protoErrf("invalid type byte %q", t)
}

// lineErr names the line that could not be read when it was too long.
func (r *Reader) lineErr(err error, t byte) error {
	switch err {
	case errLineTooLong:
		return protoErrf("%s line longer than MaxLineLen %d", typeName(t), r.lim.MaxLineLen)
	case errLineBuffer:
		return protoErrf("%s line longer than the %d-byte read buffer", typeName(t), len(r.buf))
	}
	return err
}

// decodeLine decodes the line-terminated string types: simple string,
// simple error, big number and double. These may legitimately be longer
// than the buffer (a long error message), so they are accumulated in Str,
// up to MaxLineLen.
func (r *Reader) decodeLine(v *Value, t byte) error {
	var err error
	if v.Str, err = r.appendLine(v.Str[:0], t); err != nil {
		return err
	}
	switch t {
	case '+':
		v.Kind = KindSimpleString
	case '-':
		v.Kind = KindError
	case '(':
		if !validBigNumber(v.Str) {
			return protoErrf("invalid big number %q", v.Str)
		}
		v.Kind = KindBigNumber
	case ',':
		f, ok := parseDouble(v.Str)
		if !ok {
			return protoErrf("invalid double %q", v.Str)
		}
		v.Kind, v.Float = KindDouble, f
	}
	return nil
}

// bulkFast decodes a bulk string whose header, body and CRLF are all
// buffered already — the usual case for pipelined replies and array
// elements — in one pass over the buffer. It consumes nothing and reports
// false whenever anything is unusual (null, streamed, long length, not all
// buffered, malformed), leaving decodeBlob to handle or reject it.
func (r *Reader) bulkFast(v *Value, discard bool) bool {
	b := r.buf[r.r:r.w]
	n, i := 0, 0
	for ; i < len(b) && i < 9; i++ { // at most 9 digits: no overflow
		d := b[i] - '0'
		if d > 9 {
			break
		}
		n = n*10 + int(d)
	}
	end := i + 2 + n + 2
	if i == 0 || end > len(b) || b[i] != '\r' || b[i+1] != '\n' ||
		b[end-2] != '\r' || b[end-1] != '\n' || int64(n) > r.lim.MaxBulkLen {
		return false
	}
	if !discard {
		if c := cap(v.Str); n > c {
			if int64(n) > r.left {
				return false // decodeBlob reports it
			}
			v.Str = append(v.Str[:0], b[i+2:i+2+n]...)
			// Rounding may overshoot the budget by a few bytes: the
			// next allocation, or the end of ReadValue, reports it.
			r.left -= int64(cap(v.Str) - c)
		} else {
			v.Str = append(v.Str[:0], b[i+2:i+2+n]...)
		}
	}
	v.Kind = KindBulkString
	r.r += end
	return true
}

// decodeBlob decodes the length-prefixed string types: bulk string (maybe
// null or streamed), bulk error and verbatim string.
func (r *Reader) decodeBlob(v *Value, t byte, discard bool) error {
	n, streamed, err := r.readLen(t)
	if err != nil {
		return err
	}
	if streamed {
		if t != '$' {
			return protoErrf("streamed %s is not allowed", typeName(t))
		}
		return r.decodeChunks(v, discard)
	}
	if n < 0 {
		if t == '$' {
			v.Kind = KindNull
			return nil
		}
		return protoErrf("%s length -1 is not allowed", typeName(t))
	}
	if n > r.lim.MaxBulkLen {
		return protoErrf("%s length %d exceeds MaxBulkLen %d", typeName(t), n, r.lim.MaxBulkLen)
	}
	size := int(n)
	switch t {
	case '$':
		v.Kind = KindBulkString
	case '!':
		v.Kind = KindBulkError
	case '=':
		// "=len\r\nfmt:text\r\n": the length covers the format prefix,
		// which we peel off here so Str holds only the text.
		if size < 4 {
			return protoErrf("verbatim string length %d is shorter than its format prefix", n)
		}
		if err := r.ensure(4); err != nil {
			return err
		}
		p := r.buf[r.r : r.r+4]
		if p[3] != ':' {
			return protoErrf("verbatim string format %q lacks its colon", p)
		}
		v.Kind = KindVerbatim
		copy(v.Format[:], p[:3])
		r.r += 4
		size -= 4
	}
	if discard {
		err = r.discardN(size)
	} else {
		v.Str, err = r.appendN(v.Str[:0], size)
	}
	if err != nil {
		return err
	}
	return r.expectCRLF(t)
}

// decodeChunks decodes the chunks of a streamed string ("$?") into Str:
// ";len\r\ndata\r\n" repeated, ended by ";0\r\n".
func (r *Reader) decodeChunks(v *Value, discard bool) error {
	v.Kind = KindBulkString
	var total int64
	for {
		t, err := r.readByte()
		if err != nil {
			return err
		}
		if t != ';' {
			return protoErrf("streamed string chunk starts with %q, not ';'", t)
		}
		n, streamed, err := r.readLen(t)
		if err != nil {
			return err
		}
		if streamed || n < 0 {
			return protoErrf("invalid streamed string chunk length")
		}
		if n == 0 {
			return nil
		}
		if total += n; total > r.lim.MaxBulkLen {
			return protoErrf("streamed string length %d exceeds MaxBulkLen %d", total, r.lim.MaxBulkLen)
		}
		if discard {
			err = r.discardN(int(n))
		} else {
			v.Str, err = r.appendN(v.Str, int(n))
		}
		if err != nil {
			return err
		}
		if err := r.expectCRLF(t); err != nil {
			return err
		}
	}
}

// decodeAggregate decodes an array, set, push or map, declared or streamed.
func (r *Reader) decodeAggregate(v *Value, t byte, depth int, discard bool) error {
	n, streamed, err := r.readLen(t)
	if err != nil {
		return err
	}
	if n < 0 {
		if t == '*' {
			v.Kind = KindNull
			return nil
		}
		return protoErrf("%s length -1 is not allowed", typeName(t))
	}
	switch t {
	case '*':
		v.Kind = KindArray
	case '~':
		v.Kind = KindSet
	case '>':
		v.Kind = KindPush
	case '%':
		v.Kind = KindMap
	}
	if !discard {
		v.Elems = v.Elems[:0]
	}
	elems, err := r.decodeElems(v.Elems, v, t, n, streamed, depth, discard)
	if !discard {
		v.Elems = elems
	}
	return err
}

// decodeAttrs decodes an attribute ("|") into v.Attrs, appending to any
// attribute already read for v. The slice header v.Attrs points to is
// allocated once and kept for reuse.
func (r *Reader) decodeAttrs(v *Value, depth int, discard bool) error {
	n, streamed, err := r.readLen('|')
	if err != nil {
		return err
	}
	if n < 0 {
		return protoErrf("attribute length -1 is not allowed")
	}
	if discard {
		_, err := r.decodeElems(nil, v, '|', n, streamed, depth, true)
		return err
	}
	if v.Attrs == nil {
		if err := r.spend(int(unsafe.Sizeof([]Value(nil)))); err != nil { // the slice header
			return err
		}
		v.Attrs = new([]Value)
	}
	*v.Attrs, err = r.decodeElems(*v.Attrs, v, '|', n, streamed, depth, false)
	return err
}

// decodeElems appends the n elements (n key/value pairs for maps and
// attributes) of an aggregate of type t to dst, or, if streamed, the
// elements up to the "." end marker. Slots in dst's spare capacity are
// decoded into in place so their buffers are reused. In discard mode
// every element is decoded into scratch and dst is returned untouched.
func (r *Reader) decodeElems(dst []Value, scratch *Value, t byte, n int64, streamed bool, depth int, discard bool) ([]Value, error) {
	if depth >= r.lim.MaxDepth {
		return dst, protoErrf("%s nested deeper than MaxDepth %d", typeName(t), r.lim.MaxDepth)
	}
	per := 1
	if t == '%' || t == '|' {
		per = 2
	}
	if !streamed && n > r.lim.MaxArrayLen {
		return dst, protoErrf("%s length %d exceeds MaxArrayLen %d", typeName(t), n, r.lim.MaxArrayLen)
	}
	total := int(n) * per // no overflow: MaxArrayLen <= MaxInt/2
	if !discard && !streamed {
		if want := len(dst) + total; want > cap(dst) {
			var err error
			from := max(r.r, r.claimed)
			k := min(total, max(elemsPrealloc, (r.w-from)/minElemBytes))
			r.claimed = min(r.w, from+k*minElemBytes)
			if dst, err = r.growValues(dst, len(dst)+k); err != nil {
				return dst, err
			}
		}
	}
	maxTotal := int(r.lim.MaxArrayLen) * per
	for i := 0; streamed || i < total; i++ {
		et, err := r.readByte()
		if err != nil {
			return dst, err
		}
		if streamed {
			if et == '.' {
				if i%per != 0 {
					return dst, protoErrf("streamed %s ended between a key and its value", typeName(t))
				}
				return dst, r.expectEmptyLine('.')
			}
			if i >= maxTotal {
				return dst, protoErrf("streamed %s longer than MaxArrayLen %d", typeName(t), r.lim.MaxArrayLen)
			}
		}
		slot := scratch
		if !discard {
			if len(dst) == cap(dst) {
				c := 2*cap(dst) + 8
				if !streamed {
					c = min(c, len(dst)+total-i) // never past the declared size
				}
				if dst, err = r.growValues(dst, c); err != nil {
					return dst, err
				}
			}
			dst = dst[:len(dst)+1]
			slot = &dst[len(dst)-1]
		}
		slot.reset()
		if err := r.decode(slot, et, depth+1, discard); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// growValues returns s with capacity at least c, carrying over the Values
// in s's spare capacity too so their buffers stay available for reuse.
// The new slots count against MaxReplyBytes: when c slots would not fit,
// it grows only as far as the budget allows, and fails when not even one
// more slot fits.
func (r *Reader) growValues(s []Value, c int) ([]Value, error) {
	if c <= cap(s) {
		return s, nil
	}
	if fit := r.left / ValueSize; int64(c-cap(s)) > fit {
		if fit <= 0 {
			return s, r.overBudget()
		}
		c = cap(s) + int(fit)
	}
	n := make([]Value, c)
	copy(n, s[:cap(s)])
	return n[:len(s)], r.spend((cap(n) - cap(s)) * int(ValueSize))
}

// readLen reads the length line of a type t: a decimal length, -1 (null),
// or "?" (streamed). Other negative values, signs and garbage are errors.
func (r *Reader) readLen(t byte) (n int64, streamed bool, err error) {
	line, err := r.line()
	if err != nil {
		return 0, false, r.lineErr(err, t)
	}
	if len(line) == 1 {
		if d := line[0] - '0'; d <= 9 {
			return int64(d), false, nil
		}
		if line[0] == '?' {
			return 0, true, nil
		}
	}
	if len(line) == 2 && line[0] == '-' && line[1] == '1' {
		return -1, false, nil
	}
	if len(line) == 0 || line[0] < '0' || line[0] > '9' {
		return 0, false, protoErrf("invalid %s length %q", typeName(t), line)
	}
	n, ok := parseInt(line)
	if !ok {
		return 0, false, protoErrf("invalid %s length %q", typeName(t), line)
	}
	return n, false, nil
}

// parseInt parses an optionally signed decimal int64, rejecting overflow.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		d := c - '0'
		if d > 9 {
			return 0, false
		}
		u = u*10 + uint64(d) // cannot overflow uint64 with <= 19 digits
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

func parseDouble(b []byte) (float64, bool) {
	switch string(b) {
	case "inf", "+inf":
		return math.Inf(1), true
	case "-inf":
		return math.Inf(-1), true
	case "nan", "-nan":
		return math.NaN(), true
	}
	if len(b) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		// Out of range values arrive as ±Inf or ±0 with ErrRange: that
		// is the nearest double, which is the best a double can say.
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func validBigNumber(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c-'0' > 9 {
			return false
		}
	}
	return true
}

// --- buffer management ---

func (r *Reader) readByte() (byte, error) {
	if r.r < r.w {
		b := r.buf[r.r]
		r.r++
		return b, nil
	}
	return r.readByteSlow()
}

func (r *Reader) readByteSlow() (byte, error) {
	for r.r == r.w {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.r]
	r.r++
	return b, nil
}

const maxEmptyReads = 100

var errBadRead = errors.New("resp: underlying reader returned an invalid count")

// fill compacts the buffer and reads at least one more byte into it, or
// returns an error (the buffer must not be full).
func (r *Reader) fill() error {
	if r.err != nil {
		err := r.err
		r.err = nil
		return err
	}
	if r.r > 0 {
		copy(r.buf, r.buf[r.r:r.w])
		r.w -= r.r
		r.claimed = max(0, r.claimed-r.r)
		r.r = 0
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			return errBadRead
		}
		r.w += n
		if n > 0 {
			r.err = err // report after the data
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// ensure makes at least k (<= len(buf)) bytes available in buf[r.r:].
func (r *Reader) ensure(k int) error {
	for r.w-r.r < k {
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// line returns the next CRLF-terminated line without its terminator, as a
// slice of the buffer valid until the next read. A line longer than
// MaxLineLen yields errLineTooLong, as soon as that many bytes are in
// whether or not its end is; one that does not fit in the buffer yields
// errLineBuffer; a bare LF is a protocol error.
func (r *Reader) line() ([]byte, error) {
	if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
		if i > r.maxLine {
			return nil, errLineTooLong
		}
		return r.cutLine(i)
	}
	return r.lineSlow()
}

func (r *Reader) lineSlow() ([]byte, error) {
	scanned := r.w - r.r
	for {
		switch {
		case scanned > r.maxLine:
			return nil, errLineTooLong
		case r.r == 0 && r.w == len(r.buf):
			return nil, errLineBuffer
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(r.buf[r.r+scanned:r.w], '\n'); i >= 0 {
			if i += scanned; i > r.maxLine {
				return nil, errLineTooLong
			}
			return r.cutLine(i)
		}
		scanned = r.w - r.r
	}
}

// cutLine consumes the line whose LF is at buf[r.r+i].
func (r *Reader) cutLine(i int) ([]byte, error) {
	start := r.r
	if i == 0 || r.buf[start+i-1] != '\r' {
		return nil, protoErrf("line ends in LF without CR")
	}
	r.r = start + i + 1
	return r.buf[start : start+i-1], nil
}

// appendLine appends the next line of a string type t to dst, which may
// exceed the buffer; it must not contain CR and is bounded by MaxLineLen.
func (r *Reader) appendLine(dst []byte, t byte) ([]byte, error) {
	for {
		line, err := r.line()
		if err == nil {
			if len(dst)+len(line) > r.maxLine-1 {
				return dst, r.lineErr(errLineTooLong, t)
			}
			if bytes.IndexByte(line, '\r') >= 0 {
				return dst, protoErrf("%s contains CR", typeName(t))
			}
			if len(dst)+len(line) <= cap(dst) { // the reuse path
				return append(dst, line...), nil
			}
			return r.appendGrow(dst, line)
		}
		if err != errLineBuffer {
			return dst, r.lineErr(err, t)
		}
		// The buffer is full and holds no LF. Move all but its last byte
		// (which may be the CR of the terminator) into dst and read on.
		chunk := r.buf[r.r : r.w-1]
		if len(dst)+len(chunk) > r.maxLine-1 {
			return dst, r.lineErr(errLineTooLong, t)
		}
		if bytes.IndexByte(chunk, '\r') >= 0 {
			return dst, protoErrf("%s contains CR", typeName(t))
		}
		if dst, err = r.appendBytes(dst, chunk); err != nil {
			return dst, err
		}
		r.r = r.w - 1
	}
}

// appendBytes appends p to dst, growing dst geometrically (a streamed
// string comes in many small chunks) and counting its growth against
// MaxReplyBytes.
func (r *Reader) appendBytes(dst, p []byte) ([]byte, error) {
	if len(dst)+len(p) <= cap(dst) {
		return append(dst, p...), nil
	}
	return r.appendGrow(dst, p)
}

func (r *Reader) appendGrow(dst, p []byte) ([]byte, error) {
	want := len(dst) + len(p)
	dst, err := r.growBytes(dst, max(want, 2*cap(dst)))
	if err != nil {
		return dst, err
	}
	if want > cap(dst) { // the budget held less than p
		return dst, r.overBudget()
	}
	return append(dst, p...), nil
}

// expectCRLF consumes the CRLF that ends a bulk payload.
func (r *Reader) expectCRLF(t byte) error {
	if err := r.ensure(2); err != nil {
		return err
	}
	if r.buf[r.r] != '\r' || r.buf[r.r+1] != '\n' {
		return protoErrf("%s payload not followed by CRLF", typeName(t))
	}
	r.r += 2
	return nil
}

// expectEmptyLine consumes the CRLF that ends a "_" or "." line.
func (r *Reader) expectEmptyLine(t byte) error {
	line, err := r.line()
	if err != nil {
		return r.lineErr(err, t)
	}
	if len(line) != 0 {
		return protoErrf("invalid %s marker %q", typeName(t), line)
	}
	return nil
}

// appendN appends exactly n bytes of input to dst. It reuses dst's spare
// capacity when that suffices; otherwise it allocates what was declared only
// up to bulkPrealloc (or what is already buffered) and grows geometrically
// beyond that as bytes arrive, up to the whole declared length once a 16th
// of it has come, so a declared length costs memory only once the peer has
// actually sent a good part of it. Large payloads are read straight from the
// underlying reader into dst, skipping the buffer copy.
func (r *Reader) appendN(dst []byte, n int) ([]byte, error) {
	if avail := r.w - r.r; avail >= n {
		dst, err := r.appendBytes(dst, r.buf[r.r:r.r+n])
		r.r += n
		return dst, err
	}
	if want := len(dst) + n; want > cap(dst) {
		var err error
		if dst, err = r.growBytes(dst, min(want, len(dst)+max(bulkPrealloc, r.w-r.r))); err != nil {
			return dst, err
		}
	}
	for n > 0 {
		if len(dst) == cap(dst) {
			// Double, until the peer has sent a 16th of what it declared:
			// then take the rest at once. A large value costs ~1.15 times
			// its size in all (doubling to the end cost twice), and a
			// declared length buys at most 16 times the bytes sent.
			grow := min(n, max(cap(dst), bulkPrealloc))
			if len(dst) >= (len(dst)+n)/bulkJump {
				grow = n
			}
			var err error
			if dst, err = r.growBytes(dst, len(dst)+grow); err != nil {
				return dst, err
			}
		}
		room := min(n, cap(dst)-len(dst))
		if r.r < r.w {
			k := copy(dst[len(dst):len(dst)+room], r.buf[r.r:r.w])
			dst = dst[:len(dst)+k]
			r.r += k
			n -= k
			continue
		}
		if room >= len(r.buf) {
			// Big enough to bypass the buffer.
			k, err := r.readDirect(dst[len(dst) : len(dst)+room])
			dst = dst[:len(dst)+k]
			n -= k
			if err != nil && n > 0 {
				return dst, err
			}
			continue
		}
		if err := r.fill(); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// growBytes returns dst with capacity c > cap(dst), or less when only
// that much of MaxReplyBytes is left, failing when not even one more byte
// fits.
func (r *Reader) growBytes(dst []byte, c int) ([]byte, error) {
	if int64(c-cap(dst)) > r.left {
		if r.left <= 0 {
			return dst, r.overBudget()
		}
		c = cap(dst) + int(r.left)
	}
	nd := make([]byte, len(dst), c)
	copy(nd, dst)
	return nd, r.spend(cap(nd) - cap(dst))
}

// readDirect reads into p from the underlying reader, after any pending
// read error has been reported.
func (r *Reader) readDirect(p []byte) (int, error) {
	if r.err != nil {
		err := r.err
		r.err = nil
		return 0, err
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(p)
		if n < 0 || n > len(p) {
			return 0, errBadRead
		}
		if n > 0 || err != nil {
			if n > 0 && err != nil {
				r.err = err
				err = nil
			}
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// discardN consumes n bytes of input without keeping them.
func (r *Reader) discardN(n int) error {
	for {
		k := min(n, r.w-r.r)
		r.r += k
		n -= k
		if n == 0 {
			return nil
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}
