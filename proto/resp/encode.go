package resp

import (
	"bytes"
	"math"
	"slices"
	"strconv"
)

// Commands go to Redis as a RESP array of bulk strings, the only request
// form every server version accepts. Every function here appends to dst and
// returns the extended slice, like strconv.Append*, so a connection can keep
// one buffer per pipeline and encode into it without allocating.

// AppendArrayHeader appends the header "*n\r\n" of an array of n elements.
// Follow it with exactly n encoded elements (e.g. [AppendBulk]).
func AppendArrayHeader(dst []byte, n int) []byte {
	return appendHeader(dst, '*', int64(n))
}

// AppendBulk appends b as a bulk string: "$len\r\n" b "\r\n".
func AppendBulk(dst, b []byte) []byte { return appendBlob(dst, '$', b) }

// AppendBulkString is [AppendBulk] for a string, without converting it.
func AppendBulkString(dst []byte, s string) []byte {
	dst = appendHeader(dst, '$', int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendBulkInt appends the decimal form of n as a bulk string, which is how
// Redis expects numeric arguments (EXPIRE k 10, INCRBY k -3).
func AppendBulkInt(dst []byte, n int64) []byte {
	var buf [20]byte
	return AppendBulk(dst, strconv.AppendInt(buf[:0], n, 10))
}

// AppendBulkUint is [AppendBulkInt] for unsigned values.
func AppendBulkUint(dst []byte, n uint64) []byte {
	var buf [20]byte
	return AppendBulk(dst, strconv.AppendUint(buf[:0], n, 10))
}

// AppendBulkFloat appends f as a bulk string in the shortest form that
// parses back to f, using "inf", "-inf" and "nan" for the special values
// because that is what Redis's own float parsing accepts (INCRBYFLOAT,
// ZADD scores).
func AppendBulkFloat(dst []byte, f float64) []byte {
	var buf [32]byte
	return AppendBulk(dst, appendFloat(buf[:0], f))
}

// AppendCommand appends argv as one command: an array of bulk strings. It
// reserves the exact space needed up front, so it allocates at most once, and
// not at all when dst has room.
func AppendCommand(dst []byte, argv ...[]byte) []byte {
	need := headerLen(int64(len(argv)))
	for _, a := range argv {
		need += headerLen(int64(len(a))) + len(a) + 2
	}
	dst = reserve(dst, need)
	dst = appendHeader(dst, '*', int64(len(argv)))
	for _, a := range argv {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendCommandV is [AppendCommand] for a vectored write: an argument of
// big bytes or more is not copied. It returns dst with the frame's copied
// parts appended, and pieces with the frame in order: dst's parts (from
// its start, so anything dst held before goes first) and those arguments
// in turn. The pieces alias dst and the arguments. With no big argument
// pieces gets dst alone.
func AppendCommandV(dst []byte, pieces [][]byte, big int, argv ...[]byte) ([]byte, [][]byte) {
	need := headerLen(int64(len(argv)))
	for _, a := range argv {
		need += headerLen(int64(len(a))) + 2
		if len(a) < big {
			need += len(a)
		}
	}
	dst = reserve(dst, need) // dst does not move below: the pieces stay valid
	dst = appendHeader(dst, '*', int64(len(argv)))
	from := 0
	for _, a := range argv {
		if len(a) < big {
			dst = AppendBulk(dst, a)
			continue
		}
		dst = appendHeader(dst, '$', int64(len(a)))
		pieces = append(pieces, dst[from:len(dst):len(dst)], a)
		dst = append(dst, '\r', '\n')
		from = len(dst) - 2
	}
	return dst, append(pieces, dst[from:len(dst):len(dst)])
}

// AppendCommandString is [AppendCommand] for string arguments.
func AppendCommandString(dst []byte, argv ...string) []byte {
	need := headerLen(int64(len(argv)))
	for _, a := range argv {
		need += headerLen(int64(len(a))) + len(a) + 2
	}
	dst = reserve(dst, need)
	dst = appendHeader(dst, '*', int64(len(argv)))
	for _, a := range argv {
		dst = AppendBulkString(dst, a)
	}
	return dst
}

// AppendValue appends v in RESP3 form, attributes first. It exists for fake
// servers, proxies and tests; clients send commands with [AppendCommand].
//
// Values that RESP cannot carry as they are are made safe rather than
// corrupting the stream: a simple string or simple error containing CR or LF
// is written as a bulk string or bulk error, a map with an odd number of
// Elems gets a null as its last value, a verbatim string with a zero Format
// is written as "txt", and KindInvalid is written as a null.
func AppendValue(dst []byte, v *Value) []byte {
	if a := v.Attributes(); len(a) > 0 {
		dst = appendPairs(dst, '|', a)
	}
	switch v.Kind {
	case KindSimpleString, KindError:
		if bytes.ContainsAny(v.Str, "\r\n") {
			t := byte('$')
			if v.Kind == KindError {
				t = '!'
			}
			return appendBlob(dst, t, v.Str)
		}
		t := byte('+')
		if v.Kind == KindError {
			t = '-'
		}
		dst = append(dst, t)
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case KindInteger:
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, v.Int, 10)
		return append(dst, '\r', '\n')
	case KindBulkString:
		return appendBlob(dst, '$', v.Str)
	case KindBulkError:
		return appendBlob(dst, '!', v.Str)
	case KindBoolean:
		if v.Int != 0 {
			return append(dst, "#t\r\n"...)
		}
		return append(dst, "#f\r\n"...)
	case KindDouble:
		dst = append(dst, ',')
		dst = appendFloat(dst, v.Float)
		return append(dst, '\r', '\n')
	case KindBigNumber:
		dst = append(dst, '(')
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case KindVerbatim:
		format := v.Format
		if format == [3]byte{} {
			format = [3]byte{'t', 'x', 't'}
		}
		dst = appendHeader(dst, '=', int64(len(v.Str)+4))
		dst = append(dst, format[:]...)
		dst = append(dst, ':')
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case KindArray, KindSet, KindPush:
		t := byte('*')
		switch v.Kind {
		case KindSet:
			t = '~'
		case KindPush:
			t = '>'
		}
		dst = appendHeader(dst, t, int64(len(v.Elems)))
		for i := range v.Elems {
			dst = AppendValue(dst, &v.Elems[i])
		}
		return dst
	case KindMap:
		return appendPairs(dst, '%', v.Elems)
	default: // KindNull, KindInvalid
		return append(dst, "_\r\n"...)
	}
}

func appendPairs(dst []byte, t byte, s []Value) []byte {
	n := (len(s) + 1) / 2
	dst = appendHeader(dst, t, int64(n))
	for i := range s {
		dst = AppendValue(dst, &s[i])
	}
	if len(s)%2 == 1 {
		dst = append(dst, "_\r\n"...)
	}
	return dst
}

func appendBlob(dst []byte, t byte, b []byte) []byte {
	dst = appendHeader(dst, t, int64(len(b)))
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

func appendHeader(dst []byte, t byte, n int64) []byte {
	if uint64(n) < 10 {
		return append(dst, t, byte('0'+n), '\r', '\n')
	}
	dst = append(dst, t)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// headerLen is the encoded size of a header ("*n\r\n" / "$n\r\n") for n >= 0.
func headerLen(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return 1 + d + 2
}

// reserve makes sure dst has room for need more bytes, growing it once
// instead of letting a long command grow it append by append.
func reserve(dst []byte, need int) []byte {
	if cap(dst)-len(dst) >= need {
		return dst
	}
	return slices.Grow(dst, need)
}

func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case math.IsNaN(f):
		return append(dst, "nan"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}
