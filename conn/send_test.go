package conn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Send returns before the reply comes, from a caller that cannot be
// cancelled too (its replies are read by a reader goroutine, not by the
// caller, which may wait on another Conn first): one goroutine sends to
// two Conns, both frames reach the servers before it waits for either,
// and it may wait in any order.
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

// A Call's timeout retires the Conn as DoTimeout's does (its replies are
// read by a reader goroutine), and Send on a closed or retired Conn fails
// with ErrNotSent.
func TestSendTimeoutAndClosed(t *testing.T) {
	s := newFakeServer(t)
	c := dialLine(t, Options{Addr: s.addr}, nil)
	var r [1]string
	call, err := c.Send(context.Background(), []byte("HOLD late\n"), r[:], 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want DeadlineExceeded", err)
	}
	if c.Usable() {
		t.Fatal("Conn usable after a Call timed out on it")
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
