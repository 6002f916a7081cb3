package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/proto/resp"
)

// ---- A fake RESP server --------------------------------------------------

// respServer answers each command with whatever handle writes, on the
// connection's own goroutine; handle may block (a hung server).
type respServer struct {
	ln   net.Listener
	addr string
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	nc   []net.Conn
}

func newRESPServer(t *testing.T, handle func(w io.Writer, args []string)) *respServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &respServer{ln: ln, addr: ln.Addr().String(), quit: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.nc = append(s.nc, nc)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				r := resp.NewReader(nc)
				for {
					v, err := r.ReadReply()
					if err != nil {
						return
					}
					args := make([]string, len(v.Elems))
					for i, e := range v.Elems {
						args[i] = string(e.Str)
					}
					handle(nc, args)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.quit)
		ln.Close()
		s.mu.Lock()
		for _, nc := range s.nc {
			nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func dialRESP(t *testing.T, addr string, opts Options, onPush func(resp.Value)) *Conn[resp.Value] {
	t.Helper()
	opts.Addr = addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, opts, respCodec(onPush))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func cmd(args ...string) []byte { return resp.AppendCommandString(nil, args...) }

// totalAlloc returns the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// ---- Replies nobody waits for --------------------------------------------

// The reply of an abandoned request is skipped, not decoded: a 32 MiB reply
// costs (next to) no memory, and a push that arrives first, attributes and
// all, still reaches OnPush instead of being taken for that reply.
func TestAbandonedReplySkipped(t *testing.T) {
	big := resp.AppendArrayHeader(nil, 2)
	big = resp.AppendBulk(big, bytes.Repeat([]byte("x"), 16<<20))
	big = resp.AppendBulk(big, bytes.Repeat([]byte("y"), 16<<20))
	release := make(chan struct{})
	got := make(chan struct{}, 1)
	srv := newRESPServer(t, func(w io.Writer, args []string) {
		switch args[0] {
		case "BIG":
			got <- struct{}{}
			<-release
			io.WriteString(w, "|1\r\n+ttl\r\n:5\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n")
			w.Write(big)
		case "PING":
			io.WriteString(w, "+PONG\r\n")
		}
	})
	pushes := make(chan resp.Value, 4)
	c := dialRESP(t, srv.addr, Options{}, func(v resp.Value) { pushes <- v })

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, cmd("BIG"), 1)
		errc <- err
	}()
	<-got // written and read by the server: cancelling abandons it
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) {
		t.Fatalf("cancelled BIG: %v", err)
	}
	if !c.Usable() {
		t.Fatal("an abandoned request retired the Conn")
	}

	runtime.GC()
	before := totalAlloc()
	close(release)
	var push resp.Value
	select {
	case push = <-pushes:
	case <-time.After(10 * time.Second):
		t.Fatal("the push sent while the head request was abandoned never reached OnPush")
	}
	waitFor(t, "the abandoned reply to be read", func() bool { return c.Pending() == 0 })
	alloc := totalAlloc() - before
	if push.Kind != resp.KindPush || len(push.Elems) != 3 || string(push.Elems[2].Str) != "hi" || len(push.Attributes()) != 2 {
		t.Fatalf("push = %v", push)
	}
	if alloc > 1<<20 {
		t.Fatalf("an abandoned 32 MiB reply cost %d bytes of allocation, want it skipped", alloc)
	}
	t.Logf("abandoned 32 MiB reply skipped with %d bytes allocated", alloc)

	// The stream is in sync: the next request gets its own reply.
	r, err := c.Do(context.Background(), cmd("PING"), 1)
	if err != nil || string(r[0].Str) != "PONG" {
		t.Fatalf("after the skipped reply: %v, %v", r, err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// ---- A request that times out retires the Conn ---------------------------

// A reply that never comes (a slow-loris server; XREAD BLOCK 0 sent on a
// shared connection) must not hold up the Conn's other callers forever: the
// request that timed out retires the Conn, new requests fail at once as not
// sent (retry elsewhere), and the requests stuck behind it fail once the
// grace has passed.
func TestTimeoutRetires(t *testing.T) {
	const timeout = 50 * time.Millisecond
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	doLine(t, c, echo("warm"), 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	stuck := make(chan error, 1)
	go func() {
		// Queued behind the request that will hang, no timeout of its own.
		srv.waitLines(2)
		_, err := c.Do(ctx, echo("behind"), 1)
		stuck <- err
	}()
	_, err := c.DoTimeout(ctx, []byte("HOLD never\n"), 1, timeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung request: %v", err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Fatalf("hung request returned after %v", d)
	}
	if c.Usable() {
		t.Fatal("Conn still usable after a request timed out on it")
	}
	if c.Err() != nil {
		t.Fatalf("Conn closed at once: %v (pending requests may still get replies)", c.Err())
	}

	// New requests fail at once, as not sent, saying why.
	t0 := time.Now()
	_, err = c.DoTimeout(context.Background(), echo("new"), 1, time.Second)
	if !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), "retired: a request got no reply within 50ms") {
		t.Fatalf("request on a retired Conn: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("a request on a retired Conn failed after %v", d)
	}

	// The request stuck behind the hung one fails after the grace.
	select {
	case err = <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("the request behind the hung one still waits after 5s")
	}
	ce := closeError(t, err)
	if ce.Reason != ReasonTimeout || !strings.Contains(err.Error(), "retired after a request got no reply within 50ms") {
		t.Fatalf("request behind the hung one: %v", err)
	}
	if d := time.Since(start); d < 2*timeout || d > 2*timeout+2*time.Second {
		t.Fatalf("closed %v after the hung request, want ~%v", d, 2*timeout)
	}
	<-c.Done()
	t.Log(c.Err())

	// Callers recover on a new connection.
	c2 := dialLine(t, Options{Addr: srv.addr}, nil)
	if got := doLine(t, c2, echo("fresh"), 1); got[0] != "fresh" {
		t.Fatalf("new Conn: %q", got)
	}
}

// When the late reply does come within the grace, the requests behind it
// get their replies, the late one is skipped, and the retired Conn closes
// once nothing is pending.
func TestTimeoutRetiresLateReply(t *testing.T) {
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	behind := make(chan []string, 1)
	go func() {
		srv.waitLines(1)
		r, err := c.Do(ctx, echo("behind"), 1)
		if err != nil {
			t.Error(err)
		}
		behind <- r
	}()
	_, err := c.DoTimeout(ctx, []byte("HOLD late\n"), 1, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held request: %v", err)
	}
	skipped := linesSkipped.Load()
	srv.release <- struct{}{}
	if r := <-behind; len(r) != 1 || r[0] != "behind" {
		t.Fatalf("request behind the late one got %q", r)
	}
	if n := linesSkipped.Load() - skipped; n != 1 {
		t.Fatalf("%d replies skipped, want the late one", n)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("retired Conn not closed once its replies were in")
	}
	if ce := closeError(t, c.Err()); ce.Reason != ReasonTimeout || !strings.Contains(ce.Error(), "closed once the pending replies were in") {
		t.Fatalf("close error: %v", ce)
	}
}

// A cancelled caller does not retire the Conn: its reply is expected to
// come, and is skipped when it does.
func TestAbandonDoesNotRetire(t *testing.T) {
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, []byte("HOLD late\n"), 1)
		errc <- err
	}()
	srv.waitLines(1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if !c.Usable() {
		t.Fatal("a cancelled request retired the Conn")
	}
	srv.release <- struct{}{}
	if got := doLine(t, c, echo("next"), 1); got[0] != "next" {
		t.Fatalf("after an abandoned request: %q", got)
	}
	if !c.Usable() || c.Err() != nil || c.Pending() != 0 {
		t.Fatalf("usable %v, err %v, pending %d", c.Usable(), c.Err(), c.Pending())
	}
}
