package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPingPong(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	if got := doLine(t, c, echo("hello"), 1); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("got %q", got)
	}
	if c.RemoteAddr() != s.addr {
		t.Errorf("RemoteAddr = %q, want %q", c.RemoteAddr(), s.addr)
	}
	if c.Err() != nil || c.Pending() != 0 {
		t.Errorf("Err = %v, Pending = %d", c.Err(), c.Pending())
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed on an open Conn")
	default:
	}
}

// 1000 requests from 100 goroutines: each gets its own reply.
func TestConcurrentDo(t *testing.T) {
	s := newFakeServer(t)
	dial, gc := gateDialer(0)
	c := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
	const goroutines, each = 100, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := make([]byte, 0, 32)
			for i := range each {
				want := fmt.Sprintf("g%d-%d", g, i)
				frame = append(frame[:0], "ECHO "+want+"\n"...)
				got, err := c.Do(context.Background(), frame, 1)
				clear(frame) // Do copied it: scribbling must not matter
				if err != nil {
					errs <- err
					return
				}
				if len(got) != 1 || got[0] != want {
					errs <- fmt.Errorf("got %q, want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := c.Pending(); p != 0 {
		t.Errorf("Pending = %d after all replies", p)
	}
	t.Logf("%d requests in %d writes, %d server reads", goroutines*each, gc().writes.Load(), s.reads.Load())
}

// The writer coalesces everything queued during a write into the next one.
func TestCoalescing(t *testing.T) {
	t.Run("gated", func(t *testing.T) {
		s := newFakeServer(t)
		dial, gcOf := gateDialer(0)
		c := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
		gc := gcOf()
		gc.block()
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprint("r", i)
				got, err := c.Do(context.Background(), echo(want), 1)
				if err == nil && got[0] != want {
					err = fmt.Errorf("got %q, want %q", got, want)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		<-gc.entered // the first write is held at the gate
		waitFor(t, "all requests queued", func() bool { return c.Pending() == n })
		gc.unblock()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// The first write carried what was queued when the writer woke
		// (at least one frame), the second everything else.
		if w := gc.writes.Load(); w > 2 {
			t.Errorf("%d requests took %d writes, want <= 2", n, w)
		}
		if got := len(s.Lines()); got != n {
			t.Errorf("server received %d lines, want %d", got, n)
		}
	})
	t.Run("load", func(t *testing.T) {
		s := newFakeServer(t)
		// A slow write makes callers queue up behind it, as a busy
		// socket would.
		dial, gcOf := gateDialer(200 * time.Microsecond)
		c := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
		const goroutines, each = 100, 10
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := c.Do(context.Background(), echo("x"), 1); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		w := gcOf().writes.Load()
		t.Logf("%d requests, %d writes (%.1f frames/write), %d server reads",
			goroutines*each, w, float64(goroutines*each)/float64(w), s.reads.Load())
		if w*4 > goroutines*each {
			t.Errorf("%d requests took %d writes; want far fewer", goroutines*each, w)
		}
	})
}

func TestMultiReplyFrames(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	got := doLine(t, c, echo("a", "b", "c"), 3)
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("got %q", got)
	}
	// Concurrent multi-reply frames of different sizes stay separate.
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				k := 1 + (g+i)%5
				args := make([]string, k)
				for j := range args {
					args[j] = fmt.Sprintf("%d.%d.%d", g, i, j)
				}
				got, err := c.Do(context.Background(), echo(args...), k)
				if err != nil {
					t.Error(err)
					return
				}
				if strings.Join(got, " ") != strings.Join(args, " ") {
					t.Errorf("got %q, want %q", got, args)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestBadN(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	if _, err := c.Do(context.Background(), echo("x"), 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("n=0: err = %v, want ErrNotSent", err)
	}
	if got := doLine(t, c, echo("ok"), 1); got[0] != "ok" {
		t.Fatalf("got %q", got)
	}
}

// A caller cancelled while its frame waits in the write buffer: the frame is
// withdrawn (the server never sees it) and the error wraps ErrNotSent.
func TestCancelBeforeWrite(t *testing.T) {
	s := newFakeServer(t)
	dial, gcOf := gateDialer(0)
	c := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
	gc := gcOf()
	gc.block()

	type result struct {
		r   []string
		err error
	}
	resA := make(chan result, 1)
	go func() {
		r, err := c.Do(context.Background(), echo("a"), 1)
		resA <- result{r, err}
	}()
	<-gc.entered // A's frame is being written (held at the gate)

	ctx, cancel := context.WithCancel(context.Background())
	resB := make(chan result, 1)
	go func() {
		r, err := c.Do(ctx, echo("b", "b2"), 2)
		resB <- result{r, err}
	}()
	resC := make(chan result, 1)
	go func() {
		waitFor(t, "B queued", func() bool { return c.Pending() == 2 })
		r, err := c.Do(context.Background(), echo("c"), 1)
		resC <- result{r, err}
	}()
	waitFor(t, "A, B, C queued", func() bool { return c.Pending() == 3 })
	cancel()
	b := <-resB
	if !errors.Is(b.err, context.Canceled) || !errors.Is(b.err, ErrNotSent) {
		t.Fatalf("B: err = %v, want context.Canceled and ErrNotSent", b.err)
	}
	if p := c.Pending(); p != 2 {
		t.Errorf("Pending = %d after withdrawing B, want 2", p)
	}
	gc.unblock()
	if a := <-resA; a.err != nil || a.r[0] != "a" {
		t.Fatalf("A: %q, %v", a.r, a.err)
	}
	if cr := <-resC; cr.err != nil || cr.r[0] != "c" {
		t.Fatalf("C: %q, %v", cr.r, cr.err)
	}
	if got := doLine(t, c, echo("d"), 1); got[0] != "d" {
		t.Fatalf("D: %q", got)
	}
	if got, want := strings.Join(s.Lines(), "|"), "ECHO a|ECHO c|ECHO d"; got != want {
		t.Errorf("server saw %q, want %q", got, want)
	}
}

// A caller cancelled after its frame was written returns at once; the late
// reply is read and dropped; the next request gets its own reply.
func TestCancelAfterWrite(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, []byte("HOLD late\nECHO late2\n"), 2)
		errc <- err
	}()
	s.waitLines(1) // the server has the request
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrNotSent) {
		t.Fatalf("err = %v wraps ErrNotSent but the frame was written", err)
	}
	if p := c.Pending(); p != 1 {
		t.Errorf("Pending = %d, want 1 (abandoned slot)", p)
	}
	next := make(chan []string, 1)
	go func() { next <- doLine(t, c, echo("next"), 1) }()
	s.release <- struct{}{}
	if got := <-next; got[0] != "next" {
		t.Fatalf("next request got %q", got)
	}
	if p := c.Pending(); p != 0 {
		t.Errorf("Pending = %d, want 0", p)
	}
	if c.Err() != nil {
		t.Fatalf("Conn closed: %v", c.Err())
	}
}

// A deadline while waiting behaves like a cancel.
func TestDeadlineWhileWaiting(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, []byte("SILENT\n"), 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Do returned after %v", d)
	}
	// Already-expired context: not sent at all.
	if _, err := c.Do(ctx, echo("x"), 1); !errors.Is(err, ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired ctx: err = %v", err)
	}
}

// A reply nobody asked for closes the Conn out-of-sync, at the latest when
// the next request comes (nobody reads an idle Conn), and is never taken
// for that request's reply.
func TestUnsolicitedReply(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	doLine(t, c, echo("x"), 1)
	s.send(0, "surprise\n")
	time.Sleep(20 * time.Millisecond) // let it arrive
	_, err := c.Do(context.Background(), echo("y"), 1)
	if !errors.Is(err, ErrNotSent) || closeError(t, err).Reason != ReasonOutOfSync {
		t.Fatalf("Do after a stray reply: %v", err)
	}
	if ce := closeError(t, c.Err()); ce.Reason != ReasonOutOfSync {
		t.Fatalf("reason = %q, want out-of-sync (%v)", ce.Reason, ce)
	}

	// EXTRA's second reply arrives with the first, when nothing else is
	// pending: the Conn closes at once.
	s2 := newFakeServer(t)
	c2 := dialLine(t, Options{Addr: s2.addr}, nil)
	if got := doLine(t, c2, []byte("EXTRA z\n"), 1); got[0] != "z" {
		t.Fatalf("got %q", got)
	}
	select {
	case <-c2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the Conn did not close after a stray reply")
	}
	if ce := closeError(t, c2.Err()); ce.Reason != ReasonOutOfSync {
		t.Fatalf("reason = %q", ce.Reason)
	}
}

// A Conn the peer closed while it was idle fails the next request as not
// sent (safe to retry), with nothing written.
func TestPeerClosedWhileIdle(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	doLine(t, c, echo("x"), 1)
	s.conn(0).Close()
	time.Sleep(20 * time.Millisecond) // let the FIN arrive
	_, err := c.Do(context.Background(), echo("y"), 1)
	if !errors.Is(err, ErrNotSent) || closeError(t, err).Reason != ReasonBroken {
		t.Fatalf("Do on a connection closed by the peer: %v", err)
	}
}

// A protocol error fails every pending caller with the CloseError.
func TestProtocolErrorFailsPending(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Do(context.Background(), []byte("SILENT\n"), 1)
			errs <- err
		}()
	}
	s.waitLines(n)
	s.send(0, "!garbage\n")
	for range n {
		err := <-errs
		ce := closeError(t, err)
		if ce.Reason != ReasonOutOfSync || !errors.Is(err, errBadLine) {
			t.Errorf("err = %v, want out-of-sync wrapping the decoder's error", err)
		}
		if errors.Is(err, ErrNotSent) {
			t.Errorf("err = %v wraps ErrNotSent, but the request was written", err)
		}
	}
	if c.Pending() != 0 {
		t.Errorf("Pending = %d after close", c.Pending())
	}
}

// The server hangs up: broken, every pending caller fails.
func TestServerCloses(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Do(context.Background(), []byte("SILENT\n"), 1)
			errs <- err
		}()
	}
	s.waitLines(n)
	_, err := c.Do(context.Background(), []byte("CLOSE\n"), 1)
	ce := closeError(t, err)
	if ce.Reason != ReasonBroken || !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want broken with EOF", err)
	}
	want := fmt.Sprintf("conn %s: closed (broken): read: EOF", s.addr)
	if ce.Error() != want {
		t.Errorf("Error() = %q, want %q", ce.Error(), want)
	}
	for range n {
		if ce := closeError(t, <-errs); ce.Reason != ReasonBroken {
			t.Errorf("pending caller: reason %q", ce.Reason)
		}
	}
	if !errors.Is(c.Err(), io.EOF) {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestReadTimeout(t *testing.T) {
	const rt = 60 * time.Millisecond
	t.Run("pending", func(t *testing.T) {
		s := newFakeServer(t)
		c := dialLine(t, Options{Addr: s.addr, ReadTimeout: rt}, nil)
		doLine(t, c, echo("warm"), 1)
		start := time.Now()
		_, err := c.Do(context.Background(), []byte("SILENT\n"), 1)
		ce := closeError(t, err)
		if ce.Reason != ReasonTimeout || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want timeout", err)
		}
		if d := time.Since(start); d < rt {
			t.Errorf("timed out after %v < ReadTimeout %v", d, rt)
		}
		t.Log(err)
	})
	t.Run("idle", func(t *testing.T) {
		s := newFakeServer(t)
		c := dialLine(t, Options{Addr: s.addr, ReadTimeout: rt}, nil)
		doLine(t, c, echo("a"), 1)
		time.Sleep(4 * rt)
		if err := c.Err(); err != nil {
			t.Fatalf("idle Conn closed: %v", err)
		}
		doLine(t, c, echo("b"), 1)
		// A request sent after a long idle period (the reader is blocked
		// without a deadline) still times out.
		time.Sleep(2 * rt)
		_, err := c.Do(context.Background(), []byte("SILENT\n"), 1)
		if ce := closeError(t, err); ce.Reason != ReasonTimeout {
			t.Fatalf("err = %v, want timeout", err)
		}
	})
	t.Run("slow but steady", func(t *testing.T) {
		// Replies that each come within ReadTimeout keep the Conn open
		// even though the whole exchange takes much longer.
		const rt = 300 * time.Millisecond
		s := newFakeServer(t)
		c := dialLine(t, Options{Addr: s.addr, ReadTimeout: rt}, nil)
		var frame []byte
		for range 6 {
			frame = append(frame, "HOLD x\n"...)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Do(context.Background(), frame, 6)
			done <- err
		}()
		s.waitLines(1)
		for range 6 {
			time.Sleep(rt / 6)
			s.release <- struct{}{}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// A write that cannot complete (the server does not read) hits WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
		close(accepted)
	}()
	defer func() {
		ln.Close()
		if nc, ok := <-accepted; ok {
			nc.Close()
		}
	}()
	const wt = 50 * time.Millisecond
	dial, gate := gateDialer(0)
	c := dialLine(t, Options{Addr: ln.Addr().String(), WriteTimeout: wt, Dialer: dial}, nil)
	// A request written before the peer's buffers filled up, waiting for
	// its reply: it fails with the write's error too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pending := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, echo("small"), 1)
		pending <- err
	}()
	waitFor(t, "the small request to be pending", func() bool { return c.Pending() == 1 })
	big := make([]byte, 64<<20)
	_, err = c.Do(context.Background(), big, 1)
	// Counted from the write's start: copying 64 MiB into the write
	// buffer first takes seconds under -race.
	if d := time.Since(time.Unix(0, gate().started.Load())); d > wt+time.Second {
		t.Fatalf("the caller blocked in the write returned %v after it began, WriteTimeout %v", d, wt)
	}
	ce := closeError(t, err)
	if ce.Reason != ReasonTimeout || errors.Is(err, ErrNotSent) {
		t.Fatalf("err = %v, want timeout (maybe sent)", err)
	}
	// The error names the node and the limit.
	want := "conn " + ln.Addr().String() + ": closed (timeout): write of 67108864 bytes not done within WriteTimeout 50ms"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %q, want it to start with %q", err, want)
	}
	select {
	case perr := <-pending:
		if perr != err && perr.Error() != err.Error() {
			t.Fatalf("pending request: %v, want %v", perr, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pending request still waits after the write timed out")
	}
	if c.Usable() {
		t.Fatal("Conn usable after a write timeout")
	}
}

func TestPush(t *testing.T) {
	s := newFakeServer(t)
	pushes := make(chan string, 10)
	c := dialLine(t, Options{Addr: s.addr}, func(p string) { pushes <- p })
	got := doLine(t, c, []byte("PUSH >p1 a\nECHO b\n"), 2)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("replies %q", got)
	}
	if p := <-pushes; p != ">>p1" {
		t.Fatalf("push %q", p)
	}
	// A push while nothing is pending is not out-of-sync.
	s.send(0, ">idle\n")
	if p := <-pushes; p != ">idle" {
		t.Fatalf("push %q", p)
	}
	if got := doLine(t, c, echo("c"), 1); got[0] != "c" || c.Err() != nil {
		t.Fatalf("after push: %q, %v", got, c.Err())
	}

	// Without OnPush, pushes are dropped.
	s2 := newFakeServer(t)
	c2 := dialLine(t, Options{Addr: s2.addr}, nil)
	if got := doLine(t, c2, []byte("PUSH x y\n"), 1); got[0] != "y" {
		t.Fatalf("got %q", got)
	}
}

func TestDoAfterClose(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(context.Background(), echo("x"), 1)
	if !errors.Is(err, ErrNotSent) {
		t.Fatalf("err = %v, want ErrNotSent", err)
	}
	if ce := closeError(t, err); ce.Reason != ReasonShutdown || ce.Err != nil {
		t.Fatalf("close error %+v", ce)
	}
	want := fmt.Sprintf("conn %s: closed (shutdown)", s.addr)
	if c.Err().Error() != want {
		t.Errorf("Err() = %q, want %q", c.Err(), want)
	}
}

// Requests queued behind a write in progress fail with ErrNotSent when the
// Conn closes; the one being written does not.
func TestNotSentOnClose(t *testing.T) {
	s := newFakeServer(t)
	dial, gcOf := gateDialer(0)
	c := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
	gc := gcOf()
	gc.block()
	errA := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), echo("a"), 1)
		errA <- err
	}()
	<-gc.entered
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Do(context.Background(), echo("q"), 1)
			errs <- err
		}()
	}
	waitFor(t, "queued", func() bool { return c.Pending() == 3 })
	cause := errors.New("pool says bye")
	c.CloseWithReason(ReasonIdle, cause)
	err := <-errA
	if ce := closeError(t, err); ce.Reason != ReasonIdle || errors.Is(err, ErrNotSent) || !errors.Is(err, cause) {
		t.Fatalf("A (being written): %v", err)
	}
	for range 2 {
		err := <-errs
		if ce := closeError(t, err); ce.Reason != ReasonIdle || !errors.Is(err, ErrNotSent) {
			t.Fatalf("queued: %v", err)
		}
	}
	c.Close() // waits for the goroutines; still idempotent
	if ce := closeError(t, c.Err()); ce.Reason != ReasonIdle {
		t.Fatalf("Close after CloseWithReason changed the reason to %q", ce.Reason)
	}
}

func TestCloseConcurrentWithDo(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var wg sync.WaitGroup
	var ok, failed sync.Map
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				want := fmt.Sprint(g, ".", i)
				got, err := c.Do(context.Background(), echo(want), 1)
				if err != nil {
					var ce *CloseError
					if !errors.As(err, &ce) || ce.Reason != ReasonShutdown {
						t.Errorf("err = %v", err)
					}
					failed.Store(g, true)
					return
				}
				if got[0] != want {
					t.Errorf("got %q want %q", got, want)
					return
				}
				ok.Store(g, true)
			}
		}()
	}
	waitFor(t, "traffic", func() bool {
		n := 0
		ok.Range(func(any, any) bool { n++; return true })
		return n == 20
	})
	var closers sync.WaitGroup
	for range 5 {
		closers.Add(1)
		go func() {
			defer closers.Done()
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	closers.Wait()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	wg.Wait()
	if c.Pending() != 0 {
		t.Errorf("Pending = %d after close", c.Pending())
	}
}

func TestDialTimeout(t *testing.T) {
	blocking := func(ctx context.Context, network, addr string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	codec := lineCodec(nil)
	t.Run("DialTimeout", func(t *testing.T) {
		start := time.Now()
		_, err := Dial(context.Background(), Options{Addr: "192.0.2.1:1", DialTimeout: 50 * time.Millisecond, Dialer: blocking}, codec)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
			t.Fatalf("returned after %v", d)
		}
	})
	t.Run("ctx cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		_, err := Dial(ctx, Options{Addr: "192.0.2.1:1", Dialer: blocking}, codec)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = Dial(context.Background(), Options{Addr: addr, DialTimeout: time.Second}, codec)
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("TLS handshake bounded", func(t *testing.T) {
		// A server that accepts but never speaks TLS.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			nc, err := ln.Accept()
			if err == nil {
				accepted <- nc
			}
			close(accepted)
		}()
		start := time.Now()
		_, err = Dial(context.Background(), Options{
			Addr: ln.Addr().String(), DialTimeout: 100 * time.Millisecond,
			TLS: &tls.Config{InsecureSkipVerify: true},
		}, codec)
		ln.Close()
		if nc, ok := <-accepted; ok {
			nc.Close()
		}
		if err == nil {
			t.Fatal("handshake with a silent server succeeded")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("returned after %v", d)
		}
		t.Log(err)
	})
	t.Run("no decoder", func(t *testing.T) {
		if _, err := Dial(context.Background(), Options{Addr: "x"}, Codec[string]{}); err == nil {
			t.Fatal("Dial without NewDecoder succeeded")
		}
	})
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	s := serveFake(t, ln)
	c := dialLine(t, Options{Addr: s.addr, TLS: &tls.Config{RootCAs: pool}, ReadTimeout: time.Second}, nil)
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				want := fmt.Sprint(g, "/", i)
				got, err := c.Do(context.Background(), echo(want), 1)
				if err != nil || got[0] != want {
					t.Errorf("got %q, %v; want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()

	// An untrusted certificate fails the handshake.
	_, err = Dial(context.Background(), Options{Addr: s.addr, TLS: &tls.Config{}, DialTimeout: 5 * time.Second}, lineCodec(nil))
	if err == nil {
		t.Fatal("dial with an untrusted certificate succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Abandoned requests complete in the background without disturbing anyone:
// a stress mix of cancellations and normal requests.
func TestCancelStress(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprint(g, ":", i)
				ctx, cancel := context.WithCancel(context.Background())
				if i%3 == 0 {
					cancel() // sometimes before, sometimes during
				} else if i%3 == 1 {
					time.AfterFunc(time.Duration(i%7)*10*time.Microsecond, cancel)
				}
				got, err := c.Do(ctx, echo(want, want+"'"), 2)
				cancel()
				switch {
				case err == nil:
					if got[0] != want || got[1] != want+"'" {
						t.Errorf("got %q want %q", got, want)
						return
					}
				case errors.Is(err, context.Canceled):
				default:
					t.Errorf("err = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := doLine(t, c, echo("last"), 1); got[0] != "last" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, "abandoned replies drained", func() bool { return c.Pending() == 0 })
	// Completion follows the FIFO's update: give it a moment.
	waitFor(t, "no request counted as given up", func() bool { return c.ngone.Load() == 0 })
}

func TestShutdownLetsPendingFinish(t *testing.T) {
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), []byte("HOLD slow\n"), 1)
		done <- err
	}()
	srv.waitLines(1)
	start := time.Now()
	c.Shutdown(time.Second)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Shutdown waited %v", d)
	}
	if _, err := c.Do(context.Background(), echo("x"), 1); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Do after Shutdown: %v", err)
	}
	srv.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("pending request cut by Shutdown: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("not closed after the last reply")
	}
	if ce := c.Err().(*CloseError); ce.Reason != ReasonShutdown {
		t.Fatalf("reason %v", ce.Reason)
	}
	c.Close()
	// An idle Conn shuts down at once.
	c2 := dialLine(t, Options{Addr: srv.addr}, nil)
	c2.Shutdown(time.Second)
	select {
	case <-c2.Done():
	case <-time.After(time.Second):
		t.Fatal("idle Conn not closed by Shutdown")
	}
	c2.Close()
}

func TestDoTimeout(t *testing.T) {
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	start := time.Now()
	_, err := c.DoTimeout(context.Background(), []byte("SILENT\n"), 1, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotSent) {
		t.Fatalf("DoTimeout on a silent request: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Fatalf("gave up after %v, want ~50ms", d)
	}
	// The caller read its own reply (nobody else was waiting): nobody is
	// left to read the late reply, so the Conn closed.
	if ce := closeError(t, c.Err()); ce.Reason != ReasonTimeout {
		t.Fatalf("after a lone request timed out: reason %q", ce.Reason)
	}
	// A request read by the reader goroutine (here: its caller can be
	// cancelled) expires without closing the Conn at once: the request
	// stays pending, the Conn is retired (no new requests), and it closes
	// once the late reply is in (see TestTimeoutRetires for more).
	c2 := dialLine(t, Options{Addr: srv.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = c2.DoTimeout(ctx, []byte("HOLD late\n"), 1, 30*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held request: %v", err)
	}
	if c2.Usable() {
		t.Fatal("Conn usable after a request timed out on it")
	}
	if _, err := c2.DoTimeout(context.Background(), echo("next"), 1, time.Second); !errors.Is(err, ErrNotSent) {
		t.Fatalf("request on a retired Conn: %v, want ErrNotSent", err)
	}
	srv.release <- struct{}{}
	select {
	case <-c2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("retired Conn not closed after the late reply came")
	}
	// Many requests with timeouts that are answered in time never expire.
	c2 = dialLine(t, Options{Addr: srv.addr}, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c2.DoTimeout(context.Background(), echo("ok"), 1, 5*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if !c2.Usable() || c2.Err() != nil {
		t.Fatalf("Conn retired or closed though no request timed out: %v", c2.Err())
	}
}

func TestShutdownGrace(t *testing.T) {
	srv := newFakeServer(t)
	c := dialLine(t, Options{Addr: srv.addr}, nil)
	go c.Do(context.Background(), []byte("SILENT\n"), 1)
	for c.Pending() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Shutdown(50 * time.Millisecond)
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("a draining Conn whose reply never comes was not closed after its grace")
	}
	if ce := c.Err().(*CloseError); ce.Reason != ReasonTimeout {
		t.Fatalf("reason %v", ce.Reason)
	}
}

// The read token changes hands between lone callers, reader goroutines and
// cancellable callers under load, with idle gaps in between: every reply
// must reach the request it answers, nothing may hang, and nothing may be
// left pending.
func TestReadTokenStress(t *testing.T) {
	s := newFakeServer(t)
	s.record = false
	c := dialLine(t, Options{Addr: s.addr}, nil)
	const workers, ops = 16, 1500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				want := fmt.Sprintf("w%d-%d", w, i)
				var (
					r   []string
					err error
				)
				switch (w + i) % 4 {
				case 0, 1: // a caller that reads its own reply when the Conn is idle
					r, err = c.Do(context.Background(), echo(want), 1)
				case 2: // a cancellable caller, sometimes cancelled mid-flight
					ctx, cancel := context.WithCancel(context.Background())
					if i%3 == 0 {
						time.AfterFunc(time.Duration(i%50)*time.Microsecond, cancel)
					}
					r, err = c.Do(ctx, echo(want), 1)
					cancel()
					if errors.Is(err, context.Canceled) {
						continue
					}
				case 3: // an idle gap, then a lone request with a timeout
					if i%10 == 0 {
						time.Sleep(2 * time.Millisecond) // long enough for the idle peek
					}
					r, err = c.DoTimeout(context.Background(), echo(want), 1, 5*time.Second)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", want, err)
					return
				}
				if r[0] != want {
					errs <- fmt.Errorf("request %s got reply %q", want, r[0])
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("callers still waiting after 60s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "abandoned requests to be answered", func() bool { return c.Pending() == 0 })
	if err := c.Err(); err != nil {
		t.Fatalf("Conn closed: %v", err)
	}
	// Completion follows the FIFO's update: give it a moment.
	waitFor(t, "no request counted as given up", func() bool { return c.ngone.Load() == 0 })
}

// A write that fails before any byte of a request left (the peer reset
// the connection: ECONNRESET, EPIPE) leaves that request not sent, safe to
// retry anywhere; one whose bytes may have reached the peer is not.
func TestFailedWriteNotSent(t *testing.T) {
	srv := newFakeServer(t)
	for _, tc := range []struct {
		failAt  int
		notSent bool
	}{
		{0, true},   // nothing written
		{3, false},  // part of the frame may have reached the server
		{-1, false}, // (control: the write succeeds)
	} {
		dial, gcOf := gateDialer(0)
		c := dialLine(t, Options{Addr: srv.addr, Dialer: dial}, nil)
		doLine(t, c, echo("warm"), 1)
		gc := gcOf()
		gc.mu.Lock()
		gc.failAt = tc.failAt
		gc.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Do(ctx, echo("x"), 1)
		cancel()
		if tc.failAt < 0 {
			if err != nil {
				t.Fatalf("control: %v", err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("failAt %d: the request succeeded", tc.failAt)
		}
		if got := errors.Is(err, ErrNotSent); got != tc.notSent {
			t.Errorf("failAt %d: %v; ErrNotSent = %v, want %v", tc.failAt, err, got, tc.notSent)
		}
	}
}
