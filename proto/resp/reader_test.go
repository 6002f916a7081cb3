package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

type validCase struct {
	name string
	in   string
	want Value
}

var validCases = []validCase{
	// RESP2
	{"simple", "+OK\r\n", simple("OK")},
	{"simple empty", "+\r\n", simple("")},
	{"error", "-ERR unknown command 'FOO'\r\n", errv("ERR unknown command 'FOO'")},
	{"integer zero", ":0\r\n", integer(0)},
	{"integer negative", ":-42\r\n", integer(-42)},
	{"integer plus sign", ":+7\r\n", integer(7)},
	{"integer max", ":9223372036854775807\r\n", integer(math.MaxInt64)},
	{"integer min", ":-9223372036854775808\r\n", integer(math.MinInt64)},
	{"bulk", "$5\r\nhello\r\n", bulk("hello")},
	{"bulk empty", "$0\r\n\r\n", bulk("")},
	{"bulk binary with CRLF inside", "$6\r\na\r\nb\x00\xff\r\n", bulk("a\r\nb\x00\xff")},
	{"bulk null", "$-1\r\n", null()},
	{"array", "*2\r\n$3\r\nfoo\r\n:1\r\n", arr(bulk("foo"), integer(1))},
	{"array empty", "*0\r\n", arr()},
	{"array null", "*-1\r\n", null()},
	{"array with null bulk", "*3\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n", arr(bulk("a"), null(), bulk("b"))},
	{"array nested", "*2\r\n*1\r\n:1\r\n*0\r\n", arr(arr(integer(1)), arr())},
	{"array of errors", "*2\r\n+OK\r\n-WRONGTYPE Operation\r\n", arr(simple("OK"), errv("WRONGTYPE Operation"))},

	// RESP3
	{"null", "_\r\n", null()},
	{"true", "#t\r\n", boolean(true)},
	{"false", "#f\r\n", boolean(false)},
	{"double", ",1.5\r\n", doubleT(1.5, "1.5")},
	{"double negative exp", ",-2.5e-3\r\n", doubleT(-2.5e-3, "-2.5e-3")},
	{"double integral", ",10\r\n", doubleT(10, "10")},
	{"double negative zero", ",-0\r\n", doubleT(math.Copysign(0, -1), "-0")},
	{"double inf", ",inf\r\n", doubleT(math.Inf(1), "inf")},
	{"double -inf", ",-inf\r\n", doubleT(math.Inf(-1), "-inf")},
	{"double nan", ",nan\r\n", doubleT(math.NaN(), "nan")},
	{"double out of range", ",1e400\r\n", doubleT(math.Inf(1), "1e400")},
	{"big number", "(3492890328409238509324850943850943825024385\r\n", bignum("3492890328409238509324850943850943825024385")},
	{"big number negative", "(-3492890328409238509324850943850943825024385\r\n", bignum("-3492890328409238509324850943850943825024385")},
	{"bulk error", "!21\r\nSYNTAX invalid syntax\r\n", blobErr("SYNTAX invalid syntax")},
	{"bulk error with newline", "!7\r\nERR a\nb\r\n", blobErr("ERR a\nb")},
	{"verbatim", "=15\r\ntxt:Some string\r\n", verbatim("txt", "Some string")},
	{"verbatim empty", "=4\r\nmkd:\r\n", verbatim("mkd", "")},
	{"map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", mapv(simple("first"), integer(1), simple("second"), integer(2))},
	{"map empty", "%0\r\n", mapv()},
	{"set", "~3\r\n+a\r\n:1\r\n#t\r\n", set(simple("a"), integer(1), boolean(true))},
	{"push", ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", push(bulk("invalidate"), arr(bulk("k")))},
	{"map with aggregate values", "%1\r\n$1\r\nk\r\n*2\r\n,1\r\n_\r\n", mapv(bulk("k"), arr(doubleT(1, "1"), null()))},

	// Attributes
	{
		"attribute before array",
		"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
		withAttrs(arr(integer(2039123), integer(9543892)),
			simple("key-popularity"), mapv(bulk("a"), doubleT(0.1923, "0.1923"), bulk("b"), doubleT(0.0012, "0.0012"))),
	},
	{
		"attribute on element",
		"*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:2\r\n",
		arr(withAttrs(bulk("v"), simple("ttl"), integer(3600)), integer(2)),
	},
	{
		"consecutive attributes accumulate",
		"|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n+OK\r\n",
		withAttrs(simple("OK"), simple("a"), integer(1), simple("b"), integer(2)),
	},
	{"attribute streamed", "|?\r\n+k\r\n+v\r\n.\r\n:5\r\n", withAttrs(integer(5), simple("k"), simple("v"))},
	{"attribute before push", "|1\r\n+a\r\n+b\r\n>1\r\n+x\r\n", withAttrs(push(simple("x")), simple("a"), simple("b"))},

	// Streamed
	{"streamed string", "$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n", bulk("Hello word")},
	{"streamed string empty", "$?\r\n;0\r\n", bulk("")},
	{"streamed string binary chunk", "$?\r\n;2\r\n\r\n\r\n;0\r\n", bulk("\r\n")},
	{"streamed array", "*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", arr(integer(1), integer(2), integer(3))},
	{"streamed array empty", "*?\r\n.\r\n", arr()},
	{"streamed map", "%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", mapv(simple("a"), integer(1), simple("b"), integer(2))},
	{"streamed set", "~?\r\n+a\r\n+b\r\n.\r\n", set(simple("a"), simple("b"))},
	{"streamed push", ">?\r\n+pubsub\r\n.\r\n", push(simple("pubsub"))},
	{
		"streamed nested",
		"*?\r\n*?\r\n$?\r\n;1\r\nx\r\n;0\r\n.\r\n%1\r\n+k\r\n*?\r\n.\r\n.\r\n",
		arr(arr(bulk("x")), mapv(simple("k"), arr())),
	},
}

// readers returns, for one input, the io.Readers that must all decode it the
// same way: whole, one byte per Read, half reads, and data+EOF together.
func readers(in string) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return strings.NewReader(in) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"half":    func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
	}
}

func TestReadValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			for rname, mk := range readers(tc.in) {
				for _, size := range []int{MinBufferSize, DefaultBufferSize} {
					r := NewReaderSize(mk(), size)
					got, err := r.ReadReply()
					if err != nil {
						t.Fatalf("%s/%d: ReadReply(%q): %v", rname, size, tc.in, err)
					}
					if !equalValue(&got, &tc.want, false) {
						t.Fatalf("%s/%d: ReadReply(%q)\n got %v\nwant %v", rname, size, tc.in, got, tc.want)
					}
					if _, err := r.ReadReply(); err != io.EOF {
						t.Fatalf("%s/%d: after the reply: err = %v, want io.EOF (trailing input left?)", rname, size, err)
					}
				}
			}
		})
	}
}

// TestReadValueReuse decodes every case into one Value that still holds the
// previous case's data, so stale state left behind by reuse would show up.
func TestReadValueReuse(t *testing.T) {
	var all strings.Builder
	for _, tc := range validCases {
		all.WriteString(tc.in)
	}
	for pass := 0; pass < 2; pass++ { // second pass: every buffer is warm
		r := NewReader(strings.NewReader(all.String() + all.String()))
		var v Value
		for i := 0; i < 2; i++ {
			for _, tc := range validCases {
				if err := r.ReadValue(&v); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if !equalValue(&v, &tc.want, false) {
					t.Fatalf("%s: reused decode\n got %v\nwant %v", tc.name, v, tc.want)
				}
			}
		}
	}
}

// TestSkip checks that Skip consumes exactly one reply, whatever it is.
func TestSkip(t *testing.T) {
	for _, tc := range validCases {
		r := NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.in+":7\r\n")), MinBufferSize)
		if err := r.Skip(); err != nil {
			t.Fatalf("%s: Skip: %v", tc.name, err)
		}
		v, err := r.ReadReply()
		if err != nil || v.Kind != KindInteger || v.Int != 7 {
			t.Fatalf("%s: after Skip got %v, %v; want (integer) 7", tc.name, v, err)
		}
	}
	if err := NewReader(strings.NewReader("")).Skip(); err != io.EOF {
		t.Fatalf("Skip on empty input: %v, want io.EOF", err)
	}
	if err := NewReader(strings.NewReader("$3\r\nab")).Skip(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Skip on truncated bulk: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestEncodeValueRoundTrip re-encodes every case with AppendValue.
func TestEncodeValueRoundTrip(t *testing.T) {
	for _, tc := range validCases {
		enc := AppendValue(nil, &tc.want)
		got, err := NewReader(bytes.NewReader(enc)).ReadReply()
		if err != nil {
			t.Fatalf("%s: decoding %q: %v", tc.name, enc, err)
		}
		if !equalValue(&got, &tc.want, true) {
			t.Fatalf("%s: round trip via %q\n got %v\nwant %v", tc.name, enc, got, tc.want)
		}
	}
}

func TestPipelinedReplies(t *testing.T) {
	in := "+OK\r\n:1\r\n>2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n$3\r\nbar\r\n"
	r := NewReader(strings.NewReader(in))
	var v Value
	var kinds []Kind
	for {
		err := r.ReadValue(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, v.Kind)
		if v.IsPush() != (v.Kind == KindPush) {
			t.Fatal("IsPush disagrees with Kind")
		}
	}
	want := []Kind{KindSimpleString, KindInteger, KindPush, KindBulkString}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
}

type badCase struct {
	name string
	in   string
	msg  string // substring of the error
}

var malformedCases = []badCase{
	{"bad type byte", "?\r\n", `invalid type byte '?'`},
	{"lowercase type", "ok\r\n", `invalid type byte 'o'`},
	{"integer garbage", ":abc\r\n", `invalid integer "abc"`},
	{"integer empty", ":\r\n", `invalid integer ""`},
	{"integer sign only", ":-\r\n", `invalid integer "-"`},
	{"integer overflow", ":9223372036854775808\r\n", "invalid integer"},
	{"integer underflow", ":-9223372036854775809\r\n", "invalid integer"},
	{"integer too many digits", ":99999999999999999999\r\n", "invalid integer"},
	{"integer space", ": 1\r\n", "invalid integer"},
	{"bare LF", "+OK\n", "LF without CR"},
	{"CR inside simple string", "+O\rK\r\n", "simple string contains CR"},
	{"CR inside error", "-E\rR\r\n", "error contains CR"},
	{"bulk length negative", "$-2\r\n", `invalid bulk length "-2"`},
	{"bulk length garbage", "$abc\r\n", `invalid bulk length "abc"`},
	{"bulk length plus", "$+1\r\n", `invalid bulk length "+1"`},
	{"bulk length empty", "$\r\n", `invalid bulk length ""`},
	{"bulk length overflow", "$99999999999999999999\r\n", "invalid bulk length"},
	{"bulk missing CRLF", "$3\r\nabcd\r\n", "bulk payload not followed by CRLF"},
	{"bulk LF only", "$3\r\nabc\n\n", "bulk payload not followed by CRLF"},
	{"array length negative", "*-2\r\n", `invalid array length "-2"`},
	{"map null", "%-1\r\n", "map length -1 is not allowed"},
	{"set null", "~-1\r\n", "set length -1 is not allowed"},
	{"push null", ">-1\r\n", "push length -1 is not allowed"},
	{"attribute null", "|-1\r\n", "attribute length -1 is not allowed"},
	{"boolean bad", "#x\r\n", `invalid boolean "x"`},
	{"boolean long", "#tt\r\n", `invalid boolean "tt"`},
	{"boolean empty", "#\r\n", `invalid boolean ""`},
	{"null with payload", "_x\r\n", `invalid null "x"`},
	{"double garbage", ",abc\r\n", `invalid double "abc"`},
	{"double empty", ",\r\n", `invalid double ""`},
	{"big number garbage", "(12a\r\n", `invalid big number "12a"`},
	{"big number empty", "(\r\n", `invalid big number ""`},
	{"big number sign only", "(-\r\n", `invalid big number "-"`},
	{"verbatim too short", "=3\r\ntxt\r\n", "shorter than its format prefix"},
	{"verbatim no colon", "=5\r\ntxt-a\r\n", "lacks its colon"},
	{"verbatim null", "=-1\r\n", "verbatim string length -1 is not allowed"},
	{"bulk error null", "!-1\r\n", "bulk error length -1 is not allowed"},
	{"bulk error streamed", "!?\r\n", "streamed bulk error is not allowed"},
	{"verbatim streamed", "=?\r\n", "streamed verbatim string is not allowed"},
	{"end outside stream", ".\r\n", "unexpected end marker"},
	{"chunk outside stream", ";3\r\nabc\r\n", "unexpected chunk marker"},
	{"chunk without semicolon", "$?\r\n:1\r\n", "chunk starts with ':'"},
	{"chunk negative", "$?\r\n;-1\r\n", "invalid streamed string chunk length"},
	{"chunk streamed", "$?\r\n;?\r\n", "invalid streamed string chunk length"},
	{"chunk missing CRLF", "$?\r\n;1\r\nab\r\n", "chunk payload not followed by CRLF"},
	{"streamed map odd", "%?\r\n+a\r\n.\r\n", "ended between a key and its value"},
	{"end marker with payload", "*?\r\n.x\r\n", `invalid end marker "x"`},
	{"end after attribute", "*?\r\n|1\r\n+a\r\n+b\r\n.\r\n", "unexpected end marker"},
	{"nested error", "*2\r\n:1\r\n#q\r\n", `invalid boolean "q"`},
}

func TestReadMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			for rname, mk := range readers(tc.in) {
				for _, skip := range []bool{false, true} {
					r := NewReaderSize(mk(), MinBufferSize)
					var err error
					if skip {
						err = r.Skip()
					} else {
						_, err = r.ReadReply()
					}
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("%s skip=%v: %q: err = %v, want ErrProtocol", rname, skip, tc.in, err)
					}
					if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "resp: ") {
						t.Fatalf("%s skip=%v: %q: err = %q, want it to contain %q", rname, skip, tc.in, err, tc.msg)
					}
				}
			}
		})
	}
}

func TestReadIOErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", io.EOF},
		{"+OK", io.ErrUnexpectedEOF},
		{"+OK\r", io.ErrUnexpectedEOF},
		{"$3\r\nab", io.ErrUnexpectedEOF},
		{"$3\r\nabc", io.ErrUnexpectedEOF},
		{"*2\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"*?\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"$?\r\n;1\r\na\r\n", io.ErrUnexpectedEOF},
		{"|1\r\n+a\r\n+b\r\n", io.ErrUnexpectedEOF},
		{"=10\r\ntx", io.ErrUnexpectedEOF},
	} {
		for rname, mk := range readers(tc.in) {
			_, err := NewReaderSize(mk(), MinBufferSize).ReadReply()
			if err != tc.want {
				t.Errorf("%s: %q: err = %v, want %v", rname, tc.in, err, tc.want)
			}
		}
	}
	// Errors other than EOF from the underlying reader come back as they are.
	boom := errors.New("boom")
	_, err := NewReader(&errReader{data: []byte("*2\r\n:1\r\n"), err: boom}).ReadReply()
	if err != boom {
		t.Fatalf("err = %v, want boom", err)
	}
	// A large bulk read directly into the Value's storage sees the error too.
	_, err = NewReaderSize(&errReader{data: []byte("$100000\r\nabc"), err: boom}, MinBufferSize).ReadReply()
	if err != boom {
		t.Fatalf("large bulk: err = %v, want boom", err)
	}
	// Readers that break the io.Reader contract are reported, not obeyed.
	_, err = NewReader(iotest.ErrReader(nil)).ReadReply() // (0, nil) forever
	if err != io.ErrNoProgress {
		t.Fatalf("empty reads: err = %v, want io.ErrNoProgress", err)
	}
	_, err = NewReader(negReader{}).ReadReply()
	if err == nil || errors.Is(err, ErrProtocol) {
		t.Fatalf("negative read count: err = %v", err)
	}
}

type negReader struct{}

func (negReader) Read([]byte) (int, error) { return -1, nil }

// TestLongLines covers simple strings and errors longer than the buffer,
// which are legal (long error messages) and must be accumulated.
func TestLongLines(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, in := range []string{"+" + long + "\r\n", "-" + long + "\r\n", "(" + strings.Repeat("7", 1000) + "\r\n"} {
		for rname, mk := range readers(in) {
			v, err := NewReaderSize(mk(), MinBufferSize).ReadReply()
			if err != nil || len(v.Str) != 1000 {
				t.Fatalf("%s: long %c line: %v, len %d", rname, in[0], err, len(v.Str))
			}
		}
	}
	// CR just before the buffer boundary, LF just after it.
	for n := MinBufferSize - 4; n <= MinBufferSize+4; n++ {
		in := "+" + strings.Repeat("y", n) + "\r\n:1\r\n"
		r := NewReaderSize(strings.NewReader(in), MinBufferSize)
		v, err := r.ReadReply()
		if err != nil || len(v.Str) != n {
			t.Fatalf("n=%d: %v, len %d", n, err, len(v.Str))
		}
		if v, err := r.ReadReply(); err != nil || v.Int != 1 {
			t.Fatalf("n=%d: next reply %v, %v", n, v, err)
		}
	}
	// A CR inside a line that spans buffers is caught too.
	in := "+" + strings.Repeat("z", 100) + "\r" + strings.Repeat("z", 100) + "\r\n"
	if _, err := NewReaderSize(strings.NewReader(in), MinBufferSize).ReadReply(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("CR in long line: %v", err)
	}
	// Length and integer lines must fit in the buffer: nothing valid is longer.
	in = ":" + strings.Repeat("1", 200) + "\r\n"
	_, err := NewReaderSize(strings.NewReader(in), MinBufferSize).ReadReply()
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "integer line longer than the 64-byte read buffer") {
		t.Fatalf("long integer line: %v", err)
	}
	in = "*" + strings.Repeat("1", 200) + "\r\n"
	_, err = NewReaderSize(strings.NewReader(in), MinBufferSize).ReadReply()
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "array line longer") {
		t.Fatalf("long length line: %v", err)
	}
}

// TestLargeBulk exercises the paths that read bulk bodies bigger than the
// buffer, directly and through growth beyond the preallocation cap.
func TestLargeBulk(t *testing.T) {
	for _, n := range []int{MinBufferSize - 1, MinBufferSize, 5000, bulkPrealloc + 12345, 3*bulkPrealloc + 1} {
		body := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		in := append(AppendBulk(nil, body), ":1\r\n"...)
		for _, mk := range []func() io.Reader{
			func() io.Reader { return bytes.NewReader(in) },
			func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
		} {
			r := NewReaderSize(mk(), MinBufferSize)
			v, err := r.ReadReply()
			if err != nil || !bytes.Equal(v.Str, body) {
				t.Fatalf("n=%d: %v, len %d", n, err, len(v.Str))
			}
			if v, err := r.ReadReply(); err != nil || v.Int != 1 {
				t.Fatalf("n=%d: next reply %v, %v", n, v, err)
			}
			r = NewReaderSize(mk(), MinBufferSize)
			if err := r.Skip(); err != nil {
				t.Fatalf("n=%d: Skip: %v", n, err)
			}
		}
	}
}

func TestLimits(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("*1\r\n", n) + ":1\r\n" }
	for _, tc := range []struct {
		name string
		lim  Limits
		in   string
		msg  string // "" = must succeed
	}{
		{"bulk over default", Limits{}, "$9999999999999\r\n", "resp: bulk length 9999999999999 exceeds MaxBulkLen 536870912: protocol error"},
		{"bulk at limit", Limits{MaxBulkLen: 3}, "$3\r\nabc\r\n", ""},
		{"bulk over limit", Limits{MaxBulkLen: 3}, "$4\r\nabcd\r\n", "bulk length 4 exceeds MaxBulkLen 3"},
		{"bulk error over limit", Limits{MaxBulkLen: 3}, "!4\r\nabcd\r\n", "bulk error length 4 exceeds MaxBulkLen 3"},
		{"verbatim over limit", Limits{MaxBulkLen: 6}, "=7\r\ntxt:abc\r\n", "verbatim string length 7 exceeds MaxBulkLen 6"},
		{"simple at line limit", Limits{MaxLineLen: 3}, "+abc\r\n", ""},
		{"simple over line limit", Limits{MaxLineLen: 3}, "+abcd\r\n", "resp: simple string line longer than MaxLineLen 3: protocol error"},
		{"error over line limit", Limits{MaxLineLen: 3}, "-ERR x\r\n", "error line longer than MaxLineLen 3"},
		{"double over line limit", Limits{MaxLineLen: 3}, ",1.25\r\n", "double line longer than MaxLineLen 3"},
		{"big number over line limit", Limits{MaxLineLen: 3}, "(1234\r\n", "big number line longer than MaxLineLen 3"},
		{"long simple over line limit", Limits{MaxLineLen: 100}, "+" + strings.Repeat("a", 101) + "\r\n", "simple string line longer than MaxLineLen 100"},
		{"simple line over default", Limits{}, "+" + strings.Repeat("a", DefaultMaxLineLen+1) + "\r\n", "line longer than MaxLineLen 65536"},
		{"simple line at default", Limits{}, "+" + strings.Repeat("a", DefaultMaxLineLen) + "\r\n", ""},
		{"simple line without end", Limits{MaxLineLen: 100}, "+" + strings.Repeat("a", 102), "simple string line longer than MaxLineLen 100"},
		{"line limit is not the bulk limit", Limits{MaxLineLen: 3}, "$5\r\nabcde\r\n", ""},
		{"integer over line limit", Limits{MaxLineLen: 3}, ":1234\r\n", "integer line longer than MaxLineLen 3"},
		{"length over line limit", Limits{MaxLineLen: 3}, "*0001\r\n:1\r\n", "array line longer than MaxLineLen 3"},
		{"streamed string over limit", Limits{MaxBulkLen: 3}, "$?\r\n;2\r\nab\r\n;2\r\ncd\r\n;0\r\n", "streamed string length 4 exceeds MaxBulkLen 3"},
		{"array over default", Limits{}, "*99999999999\r\n", "array length 99999999999 exceeds MaxArrayLen 16777216"},
		{"array at limit", Limits{MaxArrayLen: 2}, "*2\r\n:1\r\n:2\r\n", ""},
		{"array over limit", Limits{MaxArrayLen: 2}, "*3\r\n:1\r\n:2\r\n:3\r\n", "array length 3 exceeds MaxArrayLen 2"},
		{"map pairs at limit", Limits{MaxArrayLen: 2}, "%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n", ""},
		{"map over limit", Limits{MaxArrayLen: 2}, "%3\r\n", "map length 3 exceeds MaxArrayLen 2"},
		{"set over limit", Limits{MaxArrayLen: 2}, "~3\r\n", "set length 3 exceeds MaxArrayLen 2"},
		{"push over limit", Limits{MaxArrayLen: 2}, ">3\r\n", "push length 3 exceeds MaxArrayLen 2"},
		{"attribute over limit", Limits{MaxArrayLen: 2}, "|3\r\n", "attribute length 3 exceeds MaxArrayLen 2"},
		{"streamed array over limit", Limits{MaxArrayLen: 2}, "*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", "streamed array longer than MaxArrayLen 2"},
		{"streamed array at limit", Limits{MaxArrayLen: 2}, "*?\r\n:1\r\n:2\r\n.\r\n", ""},
		{"streamed map over limit", Limits{MaxArrayLen: 1}, "%?\r\n:1\r\n:2\r\n:3\r\n:4\r\n.\r\n", "streamed map longer than MaxArrayLen 1"},
		{"depth at default", Limits{}, deep(DefaultMaxDepth), ""},
		{"depth over default", Limits{}, deep(DefaultMaxDepth + 1), "array nested deeper than MaxDepth 64"},
		{"depth at limit", Limits{MaxDepth: 2}, deep(2), ""},
		{"depth over limit", Limits{MaxDepth: 2}, deep(3), "nested deeper than MaxDepth 2"},
		{"depth counts attributes", Limits{MaxDepth: 1}, "*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", "attribute nested deeper than MaxDepth 1"},
		{"deep nesting bomb", Limits{}, strings.Repeat("*1\r\n", 100000), "nested deeper than MaxDepth 64"},
	} {
		for _, skip := range []bool{false, true} {
			r := NewReader(strings.NewReader(tc.in))
			r.SetLimits(tc.lim)
			var err error
			if skip {
				err = r.Skip()
			} else {
				_, err = r.ReadReply()
			}
			switch {
			case tc.msg == "" && err != nil:
				t.Errorf("%s skip=%v: unexpected error %v", tc.name, skip, err)
			case tc.msg != "" && (!errors.Is(err, ErrProtocol) || !strings.Contains(fmt.Sprint(err), tc.msg)):
				t.Errorf("%s skip=%v: err = %v, want ErrProtocol containing %q", tc.name, skip, err, tc.msg)
			}
		}
	}
	r := NewReader(nil)
	r.SetLimits(Limits{MaxBulkLen: 7})
	if got := r.Limits(); got.MaxBulkLen != 7 || got.MaxArrayLen != DefaultMaxArrayLen || got.MaxDepth != DefaultMaxDepth ||
		got.MaxLineLen != DefaultMaxLineLen || got.MaxReplyBytes != DefaultMaxReplyBytes {
		t.Fatalf("Limits() = %+v", got)
	}
}

// heapAlloc reports the bytes allocated while running f.
func heapAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeclaredLengthsDoNotAllocate checks the central safety property: a
// length header alone, however large, costs (next to) nothing.
func TestDeclaredLengthsDoNotAllocate(t *testing.T) {
	// Over the limit: rejected before anything is reserved. The only
	// allocations are the error itself.
	in := []byte("$9999999999999\r\n")
	br := bytes.NewReader(in)
	r := NewReader(br)
	var v Value
	allocs := testing.AllocsPerRun(100, func() {
		br.Reset(in)
		r.Reset(br)
		if err := r.ReadValue(&v); !errors.Is(err, ErrProtocol) {
			t.Fatal(err)
		}
	})
	if allocs > 8 && !raceEnabled { // fmt.Errorf: boxed arguments, message, wrapper
		t.Fatalf("over-limit bulk header: %v allocs per read, want only the error's", allocs)
	}
	n := heapAlloc(func() {
		for range 100 {
			br.Reset(in)
			r.Reset(br)
			_ = r.ReadValue(&v)
		}
	})
	if n > 100*1024 {
		t.Fatalf("over-limit bulk header: %d bytes allocated for 100 reads", n)
	}

	// Within (raised) limits but not backed by data: memory tracks what
	// arrives, not what was declared.
	for _, tc := range []struct {
		in  string
		lim Limits
		max uint64
	}{
		{"$9999999999999\r\nabc", Limits{MaxBulkLen: math.MaxInt64}, 2 * bulkPrealloc},
		{"$536870912\r\nabc", Limits{}, 2 * bulkPrealloc},
		{"=536870912\r\ntxt:abc", Limits{}, 2 * bulkPrealloc},
		{"*16777216\r\n:1\r\n", Limits{}, 1 << 20},
		{"%16777216\r\n:1\r\n", Limits{}, 1 << 20},
		{"*4611686018427387903\r\n:1\r\n", Limits{MaxArrayLen: math.MaxInt64}, 1 << 20},
		{strings.Repeat("*16777216\r\n", 64), Limits{}, 64 << 20},
	} {
		in := []byte(tc.in)
		n := heapAlloc(func() {
			r := NewReader(bytes.NewReader(in))
			r.SetLimits(tc.lim)
			if _, err := r.ReadReply(); err != io.ErrUnexpectedEOF {
				t.Fatalf("%q: err = %v, want io.ErrUnexpectedEOF", tc.in, err)
			}
		})
		if n > tc.max {
			t.Fatalf("%q: %d bytes allocated, want <= %d", tc.in, n, tc.max)
		}
	}
}

// TestZeroAllocReuse pins the allocation-free steady state of ReadValue
// into a reused Value for every scalar type and for aggregates of them.
func TestZeroAllocReuse(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"simple", "+OK\r\n"},
		{"error", "-ERR wrong number of arguments\r\n"},
		{"integer", ":12345\r\n"},
		{"null", "_\r\n"},
		{"null bulk", "$-1\r\n"},
		{"boolean", "#t\r\n"},
		{"double", ",3.14159\r\n"},
		{"double inf", ",inf\r\n"},
		{"big number", "(123456789012345678901234567890\r\n"},
		{"bulk", "$11\r\nhello world\r\n"},
		{"verbatim", "=15\r\ntxt:Some string\r\n"},
		{"array", "*3\r\n$1\r\na\r\n:1\r\n,1.5\r\n"},
		{"map", "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n#f\r\n"},
		{"attributed", "|1\r\n+k\r\n+v\r\n*1\r\n:1\r\n"},
		{"streamed", "*?\r\n$?\r\n;2\r\nab\r\n;0\r\n.\r\n"},
		{"push", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"},
	} {
		r := NewReader(&repeatReader{data: []byte(tc.in)})
		var v Value
		for range 10 { // warm v's buffers
			if err := r.ReadValue(&v); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if err := r.ReadValue(&v); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per ReadValue into a reused Value, want 0", tc.name, allocs)
		}
		allocs = testing.AllocsPerRun(1000, func() {
			if err := r.Skip(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Skip, want 0", tc.name, allocs)
		}
	}
}

func TestErrorReply(t *testing.T) {
	for _, tc := range []struct {
		in, code, msg string
	}{
		{"-MOVED 3999 127.0.0.1:6381\r\n", "MOVED", "3999 127.0.0.1:6381"},
		{"-ERR unknown command\r\n", "ERR", "unknown command"},
		{"-NOAUTH\r\n", "NOAUTH", ""},
		{"!21\r\nSYNTAX invalid syntax\r\n", "SYNTAX", "invalid syntax"},
	} {
		v, err := NewReader(strings.NewReader(tc.in)).ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		if !v.IsError() {
			t.Fatalf("%q: IsError false", tc.in)
		}
		var re *Error
		if !errors.As(v.Err(), &re) || re.Code != tc.code || re.Msg != tc.msg {
			t.Fatalf("%q: Err() = %#v, want Code %q Msg %q", tc.in, v.Err(), tc.code, tc.msg)
		}
		if want := strings.TrimSpace(tc.code + " " + tc.msg); re.Error() != want {
			t.Fatalf("%q: Error() = %q, want %q", tc.in, re.Error(), want)
		}
	}
	if err := simple("OK").Err(); err != nil {
		t.Fatalf("Err() on a simple string = %v", err)
	}
}

func TestValueHelpers(t *testing.T) {
	if !null().IsNull() || simple("").IsNull() {
		t.Fatal("IsNull")
	}
	if !boolean(true).Bool() || boolean(false).Bool() || integer(1).Bool() {
		t.Fatal("Bool")
	}
	if mapv(simple("a"), integer(1)).Len() != 1 || arr(null(), null()).Len() != 2 || bulk("abc").Len() != 0 {
		t.Fatal("Len")
	}
	for _, v := range []Value{arr(), mapv(), set(), push()} {
		if !v.IsAggregate() {
			t.Fatalf("%v: IsAggregate false", v.Kind)
		}
	}
	if bulk("x").IsAggregate() {
		t.Fatal("bulk IsAggregate")
	}
	for k := KindInvalid; k <= KindPush+1; k++ {
		if k.String() == "" {
			t.Fatalf("Kind(%d) has no name", k)
		}
	}
	v := withAttrs(arr(simple("OK"), errv("ERR x"), integer(1), bulk("b\n"), null(), boolean(true), boolean(false),
		double(math.Inf(-1)), double(0.5), bignum("12"), blobErr("E y"), verbatim("txt", "hi"),
		mapv(simple("k"), integer(2)), set(integer(3)), push(simple("p")), Value{}), simple("a"), integer(1))
	want := `|{a: (integer) 1}| [OK, (error) ERR x, (integer) 1, "b\n", (nil), (true), (false), (double) -inf, (double) 0.5, ` +
		`(big number) 12, (error) E y, (verbatim "txt") "hi", {k: (integer) 2}, ~[(integer) 3], >[p], (invalid)]`
	if got := v.String(); got != want {
		t.Fatalf("String()\n got %s\nwant %s", got, want)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	r := NewReader(&repeatReader{data: []byte("|1\r\n+a\r\n+b\r\n*2\r\n$3\r\nfoo\r\n%1\r\n+k\r\n$1\r\nv\r\n")})
	var v Value
	if err := r.ReadValue(&v); err != nil {
		t.Fatal(err)
	}
	c := v.Clone()
	want := c.String()
	// Scribble over v's buffers by decoding something else into it.
	r2 := NewReader(strings.NewReader("|1\r\n+x\r\n+y\r\n*2\r\n$3\r\nzzz\r\n%1\r\n+q\r\n$1\r\nw\r\n"))
	if err := r2.ReadValue(&v); err != nil {
		t.Fatal(err)
	}
	if c.String() != want || v.String() == want {
		t.Fatalf("clone changed with the original: %v", c)
	}
}

// TestRealRedisReplies decodes replies captured from redis-server 7.0.15
// (testdata/redis/*.resp: HELLO 2/3, CLUSTER SLOTS under RESP2 and RESP3, a
// MOVED redirect, INFO as a verbatim string, pub/sub and client-tracking
// pushes, and the DEBUG PROTOCOL samples of every RESP3 type).
func TestRealRedisReplies(t *testing.T) {
	files, err := filepath.Glob("testdata/redis/*.resp")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured replies: %v", err)
	}
	got := map[string][]Value{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for rname, mk := range readers(string(data)) {
			r := NewReaderSize(mk(), MinBufferSize)
			var vals []Value
			for {
				v, err := r.ReadReply()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s (%s): %v", f, rname, err)
				}
				vals = append(vals, v)
			}
			key := strings.TrimSuffix(filepath.Base(f), ".resp")
			if prev, ok := got[key]; ok && !equalValues(prev, vals, false) {
				t.Fatalf("%s: the %s reader decodes differently from another", f, rname)
			}
			got[key] = vals
		}
	}
	one := func(name string) Value {
		t.Helper()
		if len(got[name]) != 1 {
			t.Fatalf("%s: %d replies, want 1", name, len(got[name]))
		}
		return got[name][0]
	}

	hello := one("hello3")
	if hello.Kind != KindMap || hello.Len() != 7 {
		t.Fatalf("HELLO 3: %v", hello)
	}
	proto := false
	for i := 0; i < len(hello.Elems); i += 2 {
		if string(hello.Elems[i].Str) == "proto" && hello.Elems[i+1].Int == 3 {
			proto = true
		}
	}
	if !proto {
		t.Fatalf("HELLO 3 lacks proto 3: %v", hello)
	}
	if h2 := one("hello2"); h2.Kind != KindArray || len(h2.Elems) != 14 {
		t.Fatalf("HELLO 2: %v", h2)
	}
	for _, name := range []string{"cluster_slots", "cluster_slots3"} {
		cs := one(name)
		if cs.Kind != KindArray || len(cs.Elems) != 2 {
			t.Fatalf("%s: %v", name, cs)
		}
		node := cs.Elems[1].Elems[2]
		if cs.Elems[1].Elems[0].Int != 8192 || cs.Elems[1].Elems[1].Int != 16383 ||
			string(node.Elems[0].Str) != "127.0.0.1" || node.Elems[1].Int != 17002 {
			t.Fatalf("%s: unexpected layout %v", name, cs)
		}
	}
	var moved *Error
	if m := one("moved"); !errors.As(m.Err(), &moved) || moved.Code != "MOVED" || moved.Msg != "12182 127.0.0.1:17002" {
		t.Fatalf("MOVED: %v", m)
	}
	info := one("info_verbatim")
	if info.Kind != KindVerbatim || string(info.Format[:]) != "txt" || !bytes.HasPrefix(info.Str, []byte("# Server\r\nredis_version:7.0.15")) {
		t.Fatalf("INFO: %v", info)
	}
	if tr := got["tracking_push_set"]; len(tr) != 2 || tr[0].Kind != KindSimpleString || !tr[1].IsPush() ||
		string(tr[1].Elems[0].Str) != "invalidate" {
		t.Fatalf("tracking: %v", tr)
	}
	if sub := got["subscribe_push"]; len(sub) != 2 || !sub[0].IsPush() || sub[1].Elems[2].Int != 2 {
		t.Fatalf("subscribe: %v", sub)
	}
	attr := one("debug_attrib")
	if attr.Kind != KindBulkString || len(attr.Attributes()) != 2 || string(attr.Attributes()[0].Str) != "key-popularity" {
		t.Fatalf("attribute: %v", attr)
	}
	if v := one("debug_bignum"); v.Kind != KindBigNumber || string(v.Str) != "1234567999999999999999999999999999999" {
		t.Fatalf("bignum: %v", v)
	}
	if v := one("debug_double"); v.Kind != KindDouble || v.Float != 3.141 {
		t.Fatalf("double: %v", v)
	}
	if v := one("debug_verbatim"); v.Kind != KindVerbatim || string(v.Str) != "This is a verbatim\nstring" {
		t.Fatalf("verbatim: %v", v)
	}
	if v := one("debug_map"); v.Kind != KindMap || v.Len() != 3 || !v.Elems[3].Bool() {
		t.Fatalf("map: %v", v)
	}
	if v := one("debug_set"); v.Kind != KindSet || v.Len() != 3 {
		t.Fatalf("set: %v", v)
	}
	if !one("debug_null").IsNull() || !one("null3").IsNull() || !one("null_bulk2").IsNull() {
		t.Fatal("nulls")
	}
	if !one("debug_true").Bool() || one("debug_false").Bool() {
		t.Fatal("booleans")
	}
	if v := one("zrange_scores3"); !math.IsInf(v.Elems[1].Elems[1].Float, 1) || v.Elems[0].Elems[1].Float != 1.5 {
		t.Fatalf("ZRANGE WITHSCORES: %v", v)
	}
	if v := one("hgetall3"); v.Kind != KindMap || v.Len() != 2 {
		t.Fatalf("HGETALL: %v", v)
	}
}

func TestReset(t *testing.T) {
	r := NewReader(strings.NewReader("+a\r\n+b\r\n"))
	if v, _ := r.ReadReply(); string(v.Str) != "a" || r.Buffered() != 4 {
		t.Fatalf("first read: %v, buffered %d", v, r.Buffered())
	}
	r.Reset(strings.NewReader(":1\r\n"))
	if r.Buffered() != 0 {
		t.Fatal("Reset kept buffered input")
	}
	if v, err := r.ReadReply(); err != nil || v.Int != 1 {
		t.Fatalf("after Reset: %v, %v", v, err)
	}
}

// TestSkipReply checks that SkipReply skips every reply but a push, which
// it decodes (attributes included), and consumes exactly one message.
func TestSkipReply(t *testing.T) {
	for _, tc := range validCases {
		r := NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.in+":7\r\n")), MinBufferSize)
		var v Value
		skipped, err := r.SkipReply(&v)
		if err != nil {
			t.Fatalf("%s: SkipReply: %v", tc.name, err)
		}
		if push := tc.want.Kind == KindPush; skipped == push {
			t.Fatalf("%s: skipped = %v for a %v", tc.name, skipped, tc.want.Kind)
		}
		if !skipped && !equalValue(&v, &tc.want, false) {
			t.Fatalf("%s: push decoded as %v, want %v", tc.name, v, tc.want)
		}
		if skipped && (v.Kind != KindInvalid || len(v.Attributes()) != 0) {
			t.Fatalf("%s: a skipped reply left %v behind", tc.name, v)
		}
		v, err = r.ReadReply()
		if err != nil || v.Kind != KindInteger || v.Int != 7 {
			t.Fatalf("%s: after SkipReply got %v, %v; want (integer) 7", tc.name, v, err)
		}
	}
	var v Value
	if _, err := NewReader(strings.NewReader("")).SkipReply(&v); err != io.EOF {
		t.Fatalf("SkipReply on empty input: %v, want io.EOF", err)
	}
	for _, in := range []string{"|1\r\n+a\r\n", "|1\r\n+a\r\n+b\r\n", ">2\r\n+a\r\n", "*2\r\n:1\r\n"} {
		if _, err := NewReader(strings.NewReader(in)).SkipReply(&v); err != io.ErrUnexpectedEOF {
			t.Fatalf("SkipReply(%q): %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
	for _, tc := range malformedCases {
		if _, err := NewReader(strings.NewReader(tc.in)).SkipReply(&v); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%s: SkipReply: %v, want ErrProtocol", tc.name, err)
		}
	}
	// Skipping keeps nothing: a large reply costs no allocation.
	big := AppendArrayHeader(nil, 1000)
	for range 1000 {
		big = AppendBulkString(big, strings.Repeat("v", 1000))
	}
	big = AppendBulkString(big, strings.Repeat("w", 1<<20))
	r := NewReader(&repeatReader{data: big})
	allocs := testing.AllocsPerRun(50, func() {
		if skipped, err := r.SkipReply(&v); err != nil || !skipped {
			t.Fatal(skipped, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("SkipReply of a 2 MB reply: %v allocs, want 0", allocs)
	}
}
