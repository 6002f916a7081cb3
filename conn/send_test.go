package conn

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Send returns before the reply comes, from a caller that cannot be
// cancelled too (it reads its replies in Wait, and nobody reads them
// before): one goroutine sends to two Conns, both frames reach the servers
// before it waits for either, and it may wait in any order.
func TestSendWait(t *testing.T) {
	s := newFakeServer(t)
	a := dialLine(t, Options{Addr: s.addr}, nil)
	b := dialLine(t, Options{Addr: s.addr}, nil)
	ctx := context.Background() // Done() == nil
	var ra, rb [2]string
	ca, err := a.Send(ctx, []byte("HOLD a1\nECHO a2\n"), ra[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Send(ctx, echo("b1", "b2"), rb[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	s.waitLines(3) // both frames are on the wire (a2 waits behind the HOLD): nobody has waited yet
	done := make(chan error, 1)
	go func() { done <- cb.Wait(ctx) }()
	select {
	case err := <-done: // a's reply is held: b's must not wait for it
		if err != nil || rb != [2]string{"b1", "b2"} {
			t.Fatalf("b: %q, %v", rb, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait on b did not return while a's reply was held")
	}
	if ra != [2]string{} {
		t.Fatalf("a's replies stored before its Wait: %q", ra)
	}
	s.release <- struct{}{}
	if err := ca.Wait(ctx); err != nil || ra != [2]string{"a1", "a2"} {
		t.Fatalf("a: %q, %v", ra, err)
	}
	if err := ca.Wait(ctx); err == nil {
		t.Fatal("a second Wait on a Call succeeded")
	}
	if a.Pending() != 0 || b.Pending() != 0 {
		t.Fatalf("pending after the waits: %d, %d", a.Pending(), b.Pending())
	}
}

// A Wait whose ctx ends after the frame was written returns at once; the
// late reply is dropped and the Conn goes on serving requests. One whose
// frame is still queued withdraws it: not sent.
func TestSendWaitCancelled(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var r [1]string
	call, err := c.Send(ctx, []byte("HOLD late\n"), r[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	s.waitLines(1)
	cancel()
	start := time.Now()
	err = call.Wait(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) {
		t.Fatalf("Wait after cancel: %v; want context.Canceled, sent", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Wait returned after %v", d)
	}
	s.release <- struct{}{}
	if got := doLine(t, c, echo("next"), 1); got[0] != "next" {
		t.Fatalf("next request got %q", got)
	}
	if r[0] != "" {
		t.Fatalf("a late reply was stored in the abandoned Call's dst: %q", r[0])
	}

	// Not written yet (the write is held at a gate): withdrawn.
	dial, gcOf := gateDialer(0)
	c2 := dialLine(t, Options{Addr: s.addr, Dialer: dial}, nil)
	gc := gcOf()
	gc.block()
	first := make(chan error, 1)
	go func() { // its frame is being written, held at the gate
		_, err := c2.Do(context.Background(), echo("first"), 1)
		first <- err
	}()
	<-gc.entered
	ctx2, cancel2 := context.WithCancel(context.Background())
	call2, err := c2.Send(ctx2, echo("withdrawn"), r[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	if err := call2.Wait(ctx2); !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a frame not written: %v; want ErrNotSent and context.Canceled", err)
	}
	gc.unblock()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, l := range s.Lines() {
		if strings.Contains(l, "withdrawn") {
			t.Fatalf("the server received a withdrawn frame: %q", s.Lines())
		}
	}
}

// A Call's timeout retires the Conn as DoTimeout's does when a reader
// goroutine reads its replies, and closes it when its caller reads them
// itself (nobody else would read the late reply); Send on a closed or
// retired Conn fails with ErrNotSent.
func TestSendTimeoutAndClosed(t *testing.T) {
	s := newFakeServer(t)
	lone := dialLine(t, Options{Addr: s.addr}, nil)
	var r [1]string
	call, err := lone.Send(context.Background(), []byte("HOLD late\n"), r[:], 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want DeadlineExceeded", err)
	}
	if ce := closeError(t, lone.Err()); ce.Reason != ReasonTimeout {
		t.Fatalf("a lone Call's timeout: Conn closed with %v, want timeout", ce)
	}
	s.release <- struct{}{}

	c := dialLine(t, Options{Addr: s.addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	call, err = c.Send(ctx, []byte("HOLD late\n"), r[:], 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want DeadlineExceeded", err)
	}
	if c.Usable() || c.Err() != nil {
		t.Fatalf("Conn after a Call timed out on it: usable %v, err %v; want retired, open", c.Usable(), c.Err())
	}
	if _, err := c.Send(context.Background(), echo("x"), r[:], 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Send on a retired Conn: %v, want ErrNotSent", err)
	}
	s.release <- struct{}{}
	c.Close()
	if _, err := c.Send(context.Background(), echo("x"), r[:], 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Send on a closed Conn: %v, want ErrNotSent", err)
	}
	if _, err := c.Send(context.Background(), echo("x"), nil, 0); !errors.Is(err, ErrNotSent) {
		t.Fatalf("Send with no room for a reply: %v", err)
	}
}

// readerRunning reports whether a reader goroutine of the package runs.
func readerRunning() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), ".readLoop(")
}

// A Call whose caller cannot be cancelled is read by that caller, in
// Wait: nobody reads the Conn before, so no reader goroutine runs between
// Send and Wait.
func TestSendLoneReadsInWait(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var r [1]string
	call, err := c.Send(context.Background(), []byte("HOLD mine\n"), r[:], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.waitLines(1)
	time.Sleep(20 * time.Millisecond) // a reader goroutine would be waiting for the reply by now
	if readerRunning() {
		t.Fatal("a reader goroutine runs for a Call whose caller reads its own replies")
	}
	s.release <- struct{}{}
	if err := call.Wait(context.Background()); err != nil || r[0] != "mine" {
		t.Fatalf("Wait: %q, %v", r[0], err)
	}
}

// A request queued behind a Call whose caller will read its replies
// itself, but has not begun to, does not wait for that caller: here the
// same goroutine sends, then does a request on the same Conn before it
// waits, which would wait forever for itself otherwise.
func TestSendThenDoOnTheSameConn(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	ctx := context.Background()
	var r [1]string
	call, err := c.Send(ctx, echo("sent"), r[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	var d [1]string
	if err := c.DoInto(ctx, echo("done"), d[:], 5*time.Second); err != nil || d[0] != "done" {
		t.Fatalf("Do behind an unwaited Call: %q, %v", d[0], err)
	}
	if err := call.Wait(ctx); err != nil || r[0] != "sent" {
		t.Fatalf("Wait: %q, %v", r[0], err)
	}
	// Again with a second Send behind the first, and the waits reversed.
	var r2 [1]string
	call, err = c.Send(ctx, echo("first"), r[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	call2, err := c.Send(ctx, echo("second"), r2[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := call2.Wait(ctx); err != nil || r2[0] != "second" {
		t.Fatalf("second Wait: %q, %v", r2[0], err)
	}
	if err := call.Wait(ctx); err != nil || r[0] != "first" {
		t.Fatalf("first Wait: %q, %v", r[0], err)
	}
	if got := doLine(t, c, echo("after"), 1); got[0] != "after" {
		t.Fatalf("after: %q", got)
	}
}

// A Call sent by a caller that cannot be cancelled and waited for with a
// ctx that can: the replies go to a reader goroutine, so that the Wait
// ends with its ctx; the late reply is dropped and the Conn serves on.
func TestSendLoneWaitCancelled(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var r [1]string
	call, err := c.Send(context.Background(), []byte("HOLD late\n"), r[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	s.waitLines(1)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { done <- call.Wait(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait: %v, want context.Canceled", err)
		}
		s.release <- struct{}{}
	case <-time.After(5 * time.Second):
		s.release <- struct{}{}
		<-done
		t.Fatal("Wait did not end with its ctx")
	}
	if got := doLine(t, c, echo("next"), 1); got[0] != "next" {
		t.Fatalf("next request got %q", got)
	}
	if r[0] != "" {
		t.Fatalf("a late reply was stored in the abandoned Call's dst: %q", r[0])
	}
}

// A Call whose caller reads its own replies, waited for only after its
// timeout passed (the caller was busy elsewhere: a slow write to another
// Conn), gets the replies that came in time instead of timing out on a
// reply nobody read; one whose reply did not come still times out.
func TestSendLoneWaitAfterTimeout(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var r [1]string
	call, err := c.Send(context.Background(), echo("in time"), r[:], 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if err := call.Wait(context.Background()); err != nil || r[0] != "in time" {
		t.Fatalf("Wait after the timeout, reply in: %q, %v", r[0], err)
	}
	if !c.Usable() {
		t.Fatalf("Conn unusable after a reply that came in time: %v", c.Err())
	}
	call, err = c.Send(context.Background(), []byte("HOLD late\n"), r[:], 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if err := call.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait after the timeout, no reply: %v; want DeadlineExceeded", err)
	}
	s.release <- struct{}{}
}
