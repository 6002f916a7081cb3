package resp

import (
	"bytes"
	"io"
	"math"
)

// Constructors that keep the expectation tables readable.

func simple(s string) Value  { return Value{Kind: KindSimpleString, Str: []byte(s)} }
func errv(s string) Value    { return Value{Kind: KindError, Str: []byte(s)} }
func blobErr(s string) Value { return Value{Kind: KindBulkError, Str: []byte(s)} }
func bulk(s string) Value    { return Value{Kind: KindBulkString, Str: []byte(s)} }
func integer(n int64) Value  { return Value{Kind: KindInteger, Int: n} }
func null() Value            { return Value{Kind: KindNull} }
func boolean(b bool) Value   { v := Value{Kind: KindBoolean}; v.Int = b2i(b); return v }
func bignum(s string) Value  { return Value{Kind: KindBigNumber, Str: []byte(s)} }
func arr(e ...Value) Value   { return Value{Kind: KindArray, Elems: e} }
func set(e ...Value) Value   { return Value{Kind: KindSet, Elems: e} }
func push(e ...Value) Value  { return Value{Kind: KindPush, Elems: e} }
func mapv(kv ...Value) Value { return Value{Kind: KindMap, Elems: kv} }
func double(f float64) Value { return Value{Kind: KindDouble, Float: f} }
func doubleT(f float64, text string) Value {
	return Value{Kind: KindDouble, Float: f, Str: []byte(text)}
}

func verbatim(format, s string) Value {
	v := Value{Kind: KindVerbatim, Str: []byte(s)}
	copy(v.Format[:], format)
	return v
}

func withAttrs(v Value, kv ...Value) Value { v.Attrs = &kv; return v }

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// equalValue compares two values structurally. A nil and an empty slice are
// equal (reuse leaves empty non-nil slices behind), NaN equals NaN, and with
// loose set the text of doubles is ignored, because re-encoding a double
// normalises its text ("1.50" -> "1.5").
func equalValue(a, b *Value, loose bool) bool {
	if a.Kind != b.Kind || a.Format != b.Format || a.Int != b.Int {
		return false
	}
	if !(loose && a.Kind == KindDouble) && !bytes.Equal(a.Str, b.Str) {
		return false
	}
	if a.Float != b.Float && !(math.IsNaN(a.Float) && math.IsNaN(b.Float)) {
		return false
	}
	if math.Signbit(a.Float) != math.Signbit(b.Float) && !math.IsNaN(a.Float) {
		return false
	}
	return equalValues(a.Elems, b.Elems, loose) && equalValues(a.Attributes(), b.Attributes(), loose)
}

func equalValues(a, b []Value, loose bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalValue(&a[i], &b[i], loose) {
			return false
		}
	}
	return true
}

// repeatReader serves data over and over, forever, so benchmarks and
// allocation tests can decode without resetting anything.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.data[r.off:])
		n += k
		r.off += k
		if r.off == len(r.data) {
			r.off = 0
		}
	}
	return n, nil
}

// errReader fails with err after serving data.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var _ io.Reader = (*repeatReader)(nil)
