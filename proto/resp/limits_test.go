package resp

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// endless serves head, then body over and over, forever: a hostile peer
// that never ends its reply. It counts what it served.
type endless struct {
	head, body []byte
	off        int
	n          int64
}

func (e *endless) Read(p []byte) (int, error) {
	k := 0
	for k < len(p) {
		if len(e.head) > 0 {
			c := copy(p[k:], e.head)
			e.head = e.head[c:]
			k += c
			continue
		}
		c := copy(p[k:], e.body[e.off:])
		k += c
		e.off = (e.off + c) % len(e.body)
	}
	e.n += int64(k)
	return k, nil
}

// hostile is a reply crafted to make a decoder allocate: its head, then
// body repeated forever.
type hostile struct {
	name       string
	head, body string
}

var hostileReplies = []hostile{
	{"simple string without CRLF", "+", strings.Repeat("a", 4096)},
	{"16M-element integer array", "*16777216\r\n", ":1\r\n"},
	{"deep nesting", "", "*1\r\n"},
	{"deep nesting of wide arrays", "", "*16777216\r\n"},
	{"map of small bulk strings", "%8388608\r\n", "$1\r\nk\r\n$1\r\nv\r\n"},
	{"endless bulk string", "$536870912\r\n", strings.Repeat("x", 4096)},
	{"streamed array of nulls", "*?\r\n", "_\r\n"},
	{"streamed string of 1-byte chunks", "$?\r\n", ";1\r\nx\r\n"},
}

// decodeHostile decodes one hostile reply and reports the error, the bytes
// allocated meanwhile and the bytes the reader consumed from the wire.
func decodeHostile(h hostile, lim Limits) (err error, alloc uint64, wire int64) {
	src := &endless{head: []byte(h.head), body: []byte(h.body)}
	r := NewReader(src)
	r.SetLimits(lim)
	alloc = heapAlloc(func() {
		var v Value
		err = r.ReadValue(&v)
	})
	return err, alloc, src.n - int64(r.Buffered())
}

// TestHostileRepliesBounded feeds replies that never end and checks that
// each fails with the limit that stops it, after memory within a small
// bound: a line at MaxLineLen, anything else at MaxReplyBytes (lowered here
// to keep the test light; the default is DefaultMaxReplyBytes) or MaxDepth.
// Growing geometrically leaves garbage behind: what is allocated in all
// stays within three times the budget.
func TestHostileRepliesBounded(t *testing.T) {
	const budget = 8 << 20
	for _, tc := range []struct {
		h     hostile
		limit string
		max   uint64 // bytes allocated, at most
	}{
		{hostileReplies[0], "simple string line longer than MaxLineLen 65536", 256 << 10},
		{hostileReplies[1], "MaxReplyBytes 8388608", 3*budget + 1<<20},
		{hostileReplies[2], "array nested deeper than MaxDepth 64", 64 << 10},
		// The outermost array's slots are justified by the bytes
		// buffered behind its header (32 KiB: ~11k slots, 1 MiB), which
		// turn out to be the headers of the nested arrays; nested
		// arrays get elemsPrealloc slots each.
		{hostileReplies[3], "array nested deeper than MaxDepth 64", 32*DefaultBufferSize + 64<<10},
		{hostileReplies[4], "MaxReplyBytes 8388608", 3*budget + 1<<20},
		{hostileReplies[5], "MaxReplyBytes 8388608", 3*budget + 1<<20},
		{hostileReplies[6], "MaxReplyBytes 8388608", 3*budget + 1<<20},
		{hostileReplies[7], "MaxReplyBytes 8388608", 3*budget + 1<<20},
	} {
		err, alloc, wire := decodeHostile(tc.h, Limits{MaxReplyBytes: budget})
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.limit) {
			t.Errorf("%s: err = %v, want ErrProtocol naming %q", tc.h.name, err, tc.limit)
			continue
		}
		if alloc > tc.max {
			t.Errorf("%s: %d bytes allocated for %d wire bytes before failing, want <= %d", tc.h.name, alloc, wire, tc.max)
		}
		t.Logf("%s: %v after %d wire bytes, %d bytes allocated (%.1fx)", tc.h.name, err, wire, alloc, float64(alloc)/float64(wire))
	}
}

// TestReplyBudget checks MaxReplyBytes against replies that just fit and
// just do not, and that the budget is per reply.
func TestReplyBudget(t *testing.T) {
	ints := func(n int) string { return "*" + strconv.Itoa(n) + "\r\n" + strings.Repeat(":1\r\n", n) }
	slots := func(n int) int64 { return int64(n) * ValueSize }
	for _, tc := range []struct {
		name   string
		budget int64
		in     string
		ok     bool
	}{
		// Memory is counted as allocated: the allocator rounds 100 slots
		// up to 101.
		{"array within budget", slots(102), ints(100), true},
		{"array over budget", slots(100) - 1, ints(100), false},
		{"streamed array within budget", slots(3000), "*?\r\n" + strings.Repeat(":1\r\n", 2000) + ".\r\n", true},
		{"streamed array over budget", slots(1000), "*?\r\n" + strings.Repeat(":1\r\n", 2000) + ".\r\n", false},
		{"bulk at budget", 1 << 20, "$1048576\r\n" + strings.Repeat("b", 1<<20) + "\r\n", true},
		{"bulk over budget", 1<<20 - 1, "$1048576\r\n" + strings.Repeat("b", 1<<20) + "\r\n", false},
		{"big bulk grows to the budget", 3 << 20, "$3145728\r\n" + strings.Repeat("b", 3<<20) + "\r\n", true},
		{"strings count", slots(2) + 15, "*2\r\n$8\r\nabcdefgh\r\n$8\r\nabcdefgh\r\n", false},
		{"strings at budget", slots(2) + 16, "*2\r\n$8\r\nabcdefgh\r\n$8\r\nabcdefgh\r\n", true},
		{"attributes count", slots(2) - 1, "|1\r\n+k\r\n+v\r\n:1\r\n", false},
		{"nested slots count", slots(4) - 1, "*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", false},
		{"nested at budget", slots(4), "*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n", true},
	} {
		for _, rd := range []func() io.Reader{
			func() io.Reader { return strings.NewReader(tc.in) },
			func() io.Reader { return &oneByte{strings.NewReader(tc.in)} },
		} {
			r := NewReaderSize(rd(), MinBufferSize)
			r.SetLimits(Limits{MaxReplyBytes: tc.budget})
			_, err := r.ReadReply()
			if tc.ok && err != nil || !tc.ok && (!errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "MaxReplyBytes")) {
				t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
			}
			// Skip keeps nothing: the budget does not apply.
			r = NewReaderSize(rd(), MinBufferSize)
			r.SetLimits(Limits{MaxReplyBytes: tc.budget})
			if err := r.Skip(); err != nil {
				t.Errorf("%s: Skip: %v", tc.name, err)
			}
		}
	}
	// The budget is per reply: many replies that each fit all decode.
	r := NewReader(&repeatReader{data: []byte(ints(100))})
	r.SetLimits(Limits{MaxReplyBytes: slots(102)})
	for range 1000 {
		if _, err := r.ReadReply(); err != nil {
			t.Fatal(err)
		}
	}
	// Buffers a reused Value holds cost nothing: a reply that fits once
	// fits again into the same Value.
	var v Value
	for range 3 {
		if err := r.ReadValue(&v); err != nil {
			t.Fatal(err)
		}
	}
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// TestHostileMemoryRatios measures, under the default limits, how much
// memory each hostile reply makes the decoder allocate (in all, and still
// held by the Value when decoding stops) per wire byte. It allocates up to
// ~1.5 GiB, so it runs only when asked:
//
//	RESP_MEASURE=1 go test -run TestHostileMemoryRatios -v ./proto/resp/
func TestHostileMemoryRatios(t *testing.T) {
	if os.Getenv("RESP_MEASURE") == "" {
		t.Skip("set RESP_MEASURE=1 to measure")
	}
	for _, h := range hostileReplies {
		src := &endless{head: []byte(h.head), body: []byte(h.body)}
		r := NewReader(src)
		var v Value
		var before, after, held runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := r.ReadValue(&v)
		runtime.ReadMemStats(&after)
		runtime.GC()
		runtime.ReadMemStats(&held)
		runtime.KeepAlive(&v)
		wire := src.n - int64(r.Buffered())
		alloc := after.TotalAlloc - before.TotalAlloc
		kept := int64(held.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%-34s wire %11d B  allocated %11d B (%6.2fx)  held %11d B (%6.2fx)  %v",
			h.name, wire, alloc, float64(alloc)/float64(wire), kept, float64(kept)/float64(wire), err)
		v = Value{}
	}
}
