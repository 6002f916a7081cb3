package resp

import (
	"bytes"
	"strconv"
	"strings"
)

// Kind identifies the RESP type of a [Value].
//
// RESP2 null bulk strings ($-1) and null arrays (*-1) decode to KindNull, the
// same as the RESP3 null (_): RESP3 unified them and no Redis command gives
// the two RESP2 forms different meanings, so callers get one null to test for.
type Kind uint8

const (
	// KindInvalid is the zero Kind; a decoded Value never has it.
	KindInvalid Kind = iota
	// KindSimpleString is "+text": Str holds the text.
	KindSimpleString
	// KindError is "-CODE message": Str holds the text; see [Value.Err].
	KindError
	// KindInteger is ":n": Int holds the value.
	KindInteger
	// KindBulkString is "$len" (or a streamed "$?" string): Str holds the bytes.
	KindBulkString
	// KindArray is "*n" (or streamed "*?"): Elems holds the elements.
	KindArray
	// KindNull is "_", "$-1" or "*-1".
	KindNull
	// KindBoolean is "#t" / "#f": Int is 1 or 0; see [Value.Bool].
	KindBoolean
	// KindDouble is ",x": Float holds the value (inf, -inf and nan included)
	// and Str the text as sent.
	KindDouble
	// KindBigNumber is "(digits": Str holds the decimal text, sign included,
	// so the codec does not depend on math/big.
	KindBigNumber
	// KindBulkError is "!len": Str holds the text; see [Value.Err].
	KindBulkError
	// KindVerbatim is "=len" with a three-byte format prefix: Format holds the
	// format (e.g. "txt", "mkd") and Str the text after the colon.
	KindVerbatim
	// KindMap is "%n" (or streamed "%?"): Elems holds keys and values
	// interleaved, k0, v0, k1, v1, ... — a slice rather than a Go map so that
	// decoding allocates nothing and wire order is kept.
	KindMap
	// KindSet is "~n" (or streamed "~?"): Elems holds the members.
	KindSet
	// KindPush is ">n": an out-of-band message (pub/sub, client tracking
	// invalidation, ...). Elems holds the elements; Elems[0] is normally the
	// message kind such as "message" or "invalidate". A connection must route
	// these away from the request/reply queue.
	KindPush
)

var kindNames = [...]string{
	KindInvalid:      "invalid",
	KindSimpleString: "simple string",
	KindError:        "error",
	KindInteger:      "integer",
	KindBulkString:   "bulk string",
	KindArray:        "array",
	KindNull:         "null",
	KindBoolean:      "boolean",
	KindDouble:       "double",
	KindBigNumber:    "big number",
	KindBulkError:    "bulk error",
	KindVerbatim:     "verbatim string",
	KindMap:          "map",
	KindSet:          "set",
	KindPush:         "push",
}

// String returns the RESP3 specification's name for k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one decoded RESP reply (or one element of an aggregate reply).
//
// It is a flat struct rather than an interface so a reply tree is a few
// contiguous slices that can be decoded into again and again without
// allocating; which fields are meaningful depends on Kind (see the Kind
// constants).
type Value struct {
	// Kind says which of the fields below are meaningful.
	Kind Kind
	// Format is the verbatim string format ("txt", "mkd"); zero otherwise.
	Format [3]byte
	// Str holds the payload of the string-like kinds. After
	// [Reader.ReadValue] it is owned by this Value and overwritten by the
	// next ReadValue into it.
	Str []byte
	// Int holds an integer, or 1/0 for a boolean.
	Int int64
	// Float holds a double.
	Float float64
	// Elems holds the elements of an array, set or push, and the
	// interleaved keys and values of a map.
	Elems []Value
	// Attrs points to the interleaved keys and values of any RESP3
	// attribute ("|") that preceded this value on the wire; nil (or empty)
	// when there was none, see [Value.Attributes]. Attributes are metadata
	// about a reply (e.g. key popularity), so they ride along instead of
	// being returned as a reply of their own, which would desynchronise a
	// pipeline. No Redis command sends them unasked, hence a pointer
	// rather than a slice: every element of an aggregate is a Value, and
	// the 16 bytes saved make it 80 bytes instead of 96.
	Attrs *[]Value
}

// Attributes returns the interleaved keys and values of the attributes
// that preceded v, or nil.
func (v *Value) Attributes() []Value {
	if v.Attrs == nil {
		return nil
	}
	return *v.Attrs
}

// reset clears v's contents but keeps every buffer's capacity for reuse.
func (v *Value) reset() {
	v.Kind = KindInvalid
	v.Format = [3]byte{}
	v.Str = v.Str[:0]
	v.Int = 0
	v.Float = 0
	v.Elems = v.Elems[:0]
	if v.Attrs != nil {
		*v.Attrs = (*v.Attrs)[:0]
	}
}

// IsNull reports whether v is a null (RESP3 "_", RESP2 "$-1" or "*-1").
func (v Value) IsNull() bool { return v.Kind == KindNull }

// IsError reports whether v is a simple or bulk error.
func (v Value) IsError() bool { return v.Kind == KindError || v.Kind == KindBulkError }

// IsPush reports whether v is an out-of-band push message.
func (v Value) IsPush() bool { return v.Kind == KindPush }

// IsAggregate reports whether v has elements (array, map, set or push).
func (v Value) IsAggregate() bool {
	switch v.Kind {
	case KindArray, KindMap, KindSet, KindPush:
		return true
	}
	return false
}

// Bool reports whether v is the boolean true.
func (v Value) Bool() bool { return v.Kind == KindBoolean && v.Int != 0 }

// Len returns the number of elements of an aggregate, counting a map's
// key/value pairs once, and 0 for anything else.
func (v Value) Len() int {
	if v.Kind == KindMap {
		return len(v.Elems) / 2
	}
	return len(v.Elems)
}

// Err returns the reply as a *[Error] if v is an error reply and nil
// otherwise. It allocates, so it is meant for the (rare) error path; hot
// paths can test [Value.IsError] and look at Str directly.
func (v Value) Err() error {
	if !v.IsError() {
		return nil
	}
	return newError(v.Str)
}

// Clone returns a deep copy of v that shares no memory with it.
func (v Value) Clone() Value {
	c := v
	if v.Str != nil {
		c.Str = bytes.Clone(v.Str)
	}
	c.Elems = cloneValues(v.Elems)
	c.Attrs = nil
	if a := v.Attributes(); len(a) > 0 {
		ca := cloneValues(a)
		c.Attrs = &ca
	}
	return c
}

func cloneValues(s []Value) []Value {
	if s == nil {
		return nil
	}
	c := make([]Value, len(s))
	for i := range s {
		c[i] = s[i].Clone()
	}
	return c
}

// String renders v on one line for debugging and test failures, loosely in
// the style of redis-cli. It is not a wire format; see [AppendValue].
func (v Value) String() string {
	var sb strings.Builder
	v.format(&sb)
	return sb.String()
}

func (v *Value) format(sb *strings.Builder) {
	if a := v.Attributes(); len(a) > 0 {
		sb.WriteString("|")
		formatPairs(sb, a)
		sb.WriteString("| ")
	}
	switch v.Kind {
	case KindSimpleString:
		sb.WriteString(string(v.Str))
	case KindError, KindBulkError:
		sb.WriteString("(error) ")
		sb.WriteString(string(v.Str))
	case KindInteger:
		sb.WriteString("(integer) ")
		sb.WriteString(strconv.FormatInt(v.Int, 10))
	case KindBulkString:
		sb.WriteString(strconv.Quote(string(v.Str)))
	case KindNull:
		sb.WriteString("(nil)")
	case KindBoolean:
		if v.Int != 0 {
			sb.WriteString("(true)")
		} else {
			sb.WriteString("(false)")
		}
	case KindDouble:
		sb.WriteString("(double) ")
		sb.Write(appendFloat(nil, v.Float))
	case KindBigNumber:
		sb.WriteString("(big number) ")
		sb.WriteString(string(v.Str))
	case KindVerbatim:
		sb.WriteString("(verbatim ")
		sb.WriteString(strconv.Quote(string(v.Format[:])))
		sb.WriteString(") ")
		sb.WriteString(strconv.Quote(string(v.Str)))
	case KindArray, KindSet, KindPush:
		switch v.Kind {
		case KindSet:
			sb.WriteString("~")
		case KindPush:
			sb.WriteString(">")
		}
		sb.WriteString("[")
		for i := range v.Elems {
			if i > 0 {
				sb.WriteString(", ")
			}
			v.Elems[i].format(sb)
		}
		sb.WriteString("]")
	case KindMap:
		formatPairs(sb, v.Elems)
	default:
		sb.WriteString("(")
		sb.WriteString(v.Kind.String())
		sb.WriteString(")")
	}
}

func formatPairs(sb *strings.Builder, s []Value) {
	sb.WriteString("{")
	for i := range s {
		switch {
		case i%2 == 1:
			sb.WriteString(": ")
		case i > 0:
			sb.WriteString(", ")
		}
		s[i].format(sb)
	}
	sb.WriteString("}")
}

// Error is an error reply from the server ("-" or "!").
//
// Redis starts every error message with an upper-case code word (ERR,
// WRONGTYPE, MOVED, ASK, NOSCRIPT, ...); splitting it off lets callers switch
// on Code — e.g. to follow a MOVED redirect — without string parsing.
type Error struct {
	// Code is the first word of the message, e.g. "MOVED".
	Code string
	// Msg is the rest of the message after the first space, e.g.
	// "3999 127.0.0.1:6381"; empty if the message is a single word.
	Msg string
}

func newError(text []byte) *Error {
	code, msg, _ := bytes.Cut(text, []byte{' '})
	return &Error{Code: string(code), Msg: string(msg)}
}

// Error returns the message as the server sent it.
func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code
	}
	return e.Code + " " + e.Msg
}
