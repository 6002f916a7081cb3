package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzLimits keep each exec cheap while still letting the fuzzer cross every
// limit; the allocation behaviour under default limits is covered by
// TestDeclaredLengthsDoNotAllocate. MaxLineLen is below the smallest buffer
// used, so whether a line fits does not depend on the buffer size, and
// MaxReplyBytes is out of reach here (a reused Value spends less of it than
// a fresh one, and Skip none): fuzzBudget checks it separately.
var fuzzLimits = Limits{MaxBulkLen: 1 << 16, MaxArrayLen: 1 << 12, MaxDepth: 16, MaxLineLen: 1 << 10, MaxReplyBytes: 1 << 40}

// fuzzBudget is the MaxReplyBytes of the run that checks the budget.
const fuzzBudget = 4 << 10

// limitSeeds cross each limit of fuzzLimits and fuzzBudget.
var limitSeeds = []struct{ name, in string }{
	{"line over limit", "+" + strings.Repeat("a", 1<<10+1) + "\r\n"},
	{"line at limit", "-" + strings.Repeat("E", 1<<10) + "\r\n:1\r\n"},
	{"line without end", "+" + strings.Repeat("a", 3000)},
	{"length line over limit", "*" + strings.Repeat("0", 1<<10+1) + "1\r\n:1\r\n"},
	{"integers over budget", "*100\r\n" + strings.Repeat(":1\r\n", 100)},
	{"map of small bulks over budget", "%40\r\n" + strings.Repeat("$1\r\nk\r\n$1\r\nv\r\n", 40)},
	{"bulk over budget", "$5000\r\n" + strings.Repeat("b", 5000) + "\r\n"},
	{"nesting over budget", strings.Repeat("*2\r\n", 15) + ":1\r\n"},
	{"streamed string over budget", "$?\r\n" + strings.Repeat(";1000\r\n"+strings.Repeat("c", 1000)+"\r\n", 5) + ";0\r\n"},
}

const fuzzMaxReplies = 64

type fuzzResult struct {
	vals []Value
	err  error
}

// decodeStream decodes up to fuzzMaxReplies replies and the error that
// ended the stream, either into one reused Value (cloned for keeping) or
// with ReadReply.
func decodeStream(rd io.Reader, size int, reuse bool) fuzzResult {
	r := NewReaderSize(rd, size)
	r.SetLimits(fuzzLimits)
	var res fuzzResult
	var v Value
	for range fuzzMaxReplies {
		var err error
		if reuse {
			err = r.ReadValue(&v)
			if err == nil {
				res.vals = append(res.vals, v.Clone())
			}
		} else {
			var got Value
			got, err = r.ReadReply()
			if err == nil {
				res.vals = append(res.vals, got)
			}
		}
		if err != nil {
			res.err = err
			break
		}
	}
	return res
}

func sameResult(a, b fuzzResult) bool {
	if len(a.vals) != len(b.vals) || errString(a.err) != errString(b.err) {
		return false
	}
	return equalValues(a.vals, b.vals, false)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzReader feeds arbitrary bytes to the decoder. Beyond "never panics"
// it checks that:
//   - every error is a protocol error or an EOF,
//   - decoding into a reused Value, into fresh Values, through a minimal
//     buffer and one byte per Read all agree, value for value and error
//     for error,
//   - Skip and SkipReply accept and reject exactly what ReadValue does, and
//     SkipReply decodes the pushes and only them,
//   - every decoded value survives AppendValue -> decode unchanged, and
//     re-encoding is then a fixed point,
//   - under a small MaxReplyBytes the decoder gives the same replies up to
//     the first it rejects, and rejects only for that limit.
func FuzzReader(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range malformedCases {
		f.Add([]byte(tc.in))
	}
	files, _ := filepath.Glob("testdata/redis/*.resp")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, tc := range limitSeeds {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte("$9999999999999\r\n"))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n+OK\r\n:1\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		base := decodeStream(bytes.NewReader(data), DefaultBufferSize, false)
		if err := base.err; err != nil && err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if errors.Is(base.err, ErrProtocol) && !bytes.HasPrefix([]byte(base.err.Error()), []byte("resp: ")) {
			t.Fatalf("protocol error without prefix: %v", base.err)
		}
		if reused := decodeStream(bytes.NewReader(data), DefaultBufferSize, true); !sameResult(base, reused) {
			t.Fatalf("reused Value disagrees: %v / %v vs %v / %v", base.vals, base.err, reused.vals, reused.err)
		}
		// One byte per Read is slow: short inputs only.
		if len(data) < 4096 {
			small := decodeStream(iotest.OneByteReader(bytes.NewReader(data)), 1<<12, true)
			if !sameResult(base, small) {
				t.Fatalf("one-byte reads disagree: %v / %v vs %v / %v", base.vals, base.err, small.vals, small.err)
			}
		}

		// Skip must stop at the same reply with the same error.
		r := NewReader(bytes.NewReader(data))
		r.SetLimits(fuzzLimits)
		skipped := 0
		var skipErr error
		for range fuzzMaxReplies {
			if skipErr = r.Skip(); skipErr != nil {
				break
			}
			skipped++
		}
		if skipped != len(base.vals) || errString(skipErr) != errString(base.err) {
			t.Fatalf("Skip: %d replies, err %v; ReadReply: %d replies, err %v", skipped, skipErr, len(base.vals), base.err)
		}

		// SkipReply too, and it decodes exactly the pushes.
		r = NewReader(bytes.NewReader(data))
		r.SetLimits(fuzzLimits)
		for i := range fuzzMaxReplies {
			var v Value
			skipped, err := r.SkipReply(&v)
			if i == len(base.vals) || err != nil {
				if i != len(base.vals) || errString(err) != errString(base.err) {
					t.Fatalf("SkipReply: reply %d: err %v; ReadReply: %d replies, err %v", i, err, len(base.vals), base.err)
				}
				break
			}
			if want := &base.vals[i]; skipped == (want.Kind == KindPush) || !skipped && !equalValue(&v, want, false) {
				t.Fatalf("SkipReply: reply %d: skipped=%v, %v; want %v", i, skipped, v, want)
			}
		}

		// A small budget cuts the stream short, never changes a reply.
		r = NewReader(bytes.NewReader(data))
		lim := fuzzLimits
		lim.MaxReplyBytes = fuzzBudget
		r.SetLimits(lim)
		for i := range fuzzMaxReplies {
			got, err := r.ReadReply()
			if i == len(base.vals) {
				if errString(err) != errString(base.err) && (!errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "MaxReplyBytes")) {
					t.Fatalf("budget: reply %d: err %v, want %v", i, err, base.err)
				}
				break
			}
			if err != nil {
				if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "MaxReplyBytes") {
					t.Fatalf("budget: reply %d: %v, want a MaxReplyBytes error or %v", i, err, base.vals[i])
				}
				break
			}
			if !equalValue(&got, &base.vals[i], false) {
				t.Fatalf("budget: reply %d: %v, want %v", i, got, base.vals[i])
			}
		}

		for i := range base.vals {
			v := &base.vals[i]
			enc := AppendValue(nil, v)
			r := NewReader(bytes.NewReader(enc))
			r.SetLimits(Limits{MaxBulkLen: math.MaxInt64, MaxArrayLen: math.MaxInt64, MaxDepth: 1 << 20})
			got, err := r.ReadReply()
			if err != nil {
				t.Fatalf("re-decoding %q (from %v): %v", enc, v, err)
			}
			if !equalValue(&got, v, true) {
				t.Fatalf("round trip changed the value:\n was %v\n now %v\nwire %q", v, got, enc)
			}
			if enc2 := AppendValue(nil, &got); !bytes.Equal(enc, enc2) {
				t.Fatalf("re-encoding is not stable: %q vs %q", enc, enc2)
			}
		}
	})
}

// FuzzCommandRoundTrip encodes arbitrary arguments with every encoder and
// checks that the decoder gives them back byte for byte.
func FuzzCommandRoundTrip(f *testing.F) {
	f.Add([]byte("SET k v"), byte(' '), int64(0), uint64(0), 0.0)
	f.Add([]byte("GET\x00key"), byte(0), int64(-1), uint64(1), 1.5)
	f.Add([]byte("HSET h f\r\n v\r\n"), byte(' '), int64(math.MinInt64), uint64(math.MaxUint64), math.Inf(1))
	f.Add([]byte(""), byte('x'), int64(math.MaxInt64), uint64(10), math.NaN())
	f.Add([]byte("*1\r\n$1\r\nx\r\n"), byte('\n'), int64(9), uint64(99), -1e-300)

	f.Fuzz(func(t *testing.T, blob []byte, sep byte, n int64, u uint64, fl float64) {
		argv := bytes.Split(blob, []byte{sep})
		strs := make([]string, len(argv))
		for i, a := range argv {
			strs[i] = string(a)
		}
		buf := AppendCommand(nil, argv...)
		if s := AppendCommandString(nil, strs...); !bytes.Equal(buf, s) {
			t.Fatalf("AppendCommand and AppendCommandString disagree: %q vs %q", buf, s)
		}
		buf = AppendArrayHeader(buf, 4)
		buf = AppendBulk(buf, blob)
		buf = AppendBulkInt(buf, n)
		buf = AppendBulkUint(buf, u)
		buf = AppendBulkFloat(buf, fl)

		for _, rd := range []io.Reader{bytes.NewReader(buf), iotest.OneByteReader(bytes.NewReader(buf))} {
			r := NewReaderSize(rd, MinBufferSize)
			var v Value
			if err := r.ReadValue(&v); err != nil {
				t.Fatal(err)
			}
			if v.Kind != KindArray || len(v.Elems) != len(argv) {
				t.Fatalf("decoded %v, want array of %d", v.Kind, len(argv))
			}
			for i, a := range argv {
				if e := v.Elems[i]; e.Kind != KindBulkString || !bytes.Equal(e.Str, a) {
					t.Fatalf("arg %d: got %v, want %q", i, e, a)
				}
			}
			if err := r.ReadValue(&v); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v.Elems[0].Str, blob) {
				t.Fatalf("blob: got %q, want %q", v.Elems[0].Str, blob)
			}
			if got, err := strconv.ParseInt(string(v.Elems[1].Str), 10, 64); err != nil || got != n {
				t.Fatalf("int: got %q, want %d", v.Elems[1].Str, n)
			}
			if got, err := strconv.ParseUint(string(v.Elems[2].Str), 10, 64); err != nil || got != u {
				t.Fatalf("uint: got %q, want %d", v.Elems[2].Str, u)
			}
			got, err := strconv.ParseFloat(string(v.Elems[3].Str), 64)
			if err != nil || (got != fl && !(math.IsNaN(got) && math.IsNaN(fl))) || math.Signbit(got) != math.Signbit(fl) && !math.IsNaN(fl) {
				t.Fatalf("float: got %q, want %v", v.Elems[3].Str, fl)
			}
			if _, err := r.ReadReply(); err != io.EOF {
				t.Fatalf("trailing input: %v", err)
			}
		}
	})
}
