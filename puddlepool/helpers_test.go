package puddlepool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeConn is the trivial connection handed out by fakeDialer.
type fakeConn struct {
	n      int64
	closed atomic.Bool
}

// fakeDialer is a scriptable dialer. live counts open+opening connections
// (incremented when a dial starts, decremented when it fails or when Close
// returns) and is checked against max on every dial, which is exactly the
// MaxSize invariant.
type fakeDialer struct {
	max        int32
	live       atomic.Int32
	peak       atomic.Int32
	violations atomic.Int32
	dialing    atomic.Int32 // dials in progress
	peakDial   atomic.Int32
	dials      atomic.Int64
	closes     atomic.Int64
	pings      atomic.Int64
	n          atomic.Int64

	mu        sync.Mutex
	gate      chan struct{} // when non-nil, dials wait for it (or ctx)
	closeGate chan struct{} // when non-nil, Close waits for it
	failErr   error         // when non-nil, dials fail with it
	failFunc  func(n int64) error
	delay     time.Duration
	pingErr   func(c *fakeConn) error
	started   chan int64 // when non-nil, receives the dial number as a dial starts
}

var errRefused = errors.New("connection refused")

func (d *fakeDialer) Dial(ctx context.Context) (*fakeConn, error) {
	n := d.n.Add(1)
	d.dials.Add(1)
	l := d.live.Add(1)
	if d.max > 0 && l > d.max {
		d.violations.Add(1)
	}
	setMax(&d.peak, l)
	setMax(&d.peakDial, d.dialing.Add(1))
	defer d.dialing.Add(-1)

	d.mu.Lock()
	gate, failErr, failFunc, delay, started := d.gate, d.failErr, d.failFunc, d.delay, d.started
	d.mu.Unlock()
	if started != nil {
		started <- n
	}
	fail := func(err error) (*fakeConn, error) {
		d.live.Add(-1)
		return nil, err
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		}
	}
	if failErr != nil {
		return fail(failErr)
	}
	if failFunc != nil {
		if err := failFunc(n); err != nil {
			return fail(err)
		}
	}
	return &fakeConn{n: n}, nil
}

func (d *fakeDialer) Close(c *fakeConn) error {
	d.mu.Lock()
	g := d.closeGate
	d.mu.Unlock()
	if g != nil {
		<-g
	}
	if c.closed.Swap(true) {
		panic("double close")
	}
	d.closes.Add(1)
	d.live.Add(-1)
	return nil
}

func (d *fakeDialer) Ping(ctx context.Context, c *fakeConn) error {
	d.pings.Add(1)
	d.mu.Lock()
	f := d.pingErr
	d.mu.Unlock()
	if f != nil {
		return f(c)
	}
	return nil
}

func (d *fakeDialer) set(f func(d *fakeDialer)) {
	d.mu.Lock()
	f(d)
	d.mu.Unlock()
}

func setMax(a *atomic.Int32, v int32) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// recorder collects events. It is safe for concurrent use and lets a test
// wait for a condition on the events seen so far.
type recorder struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{} // closed and replaced on every event
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) on(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.ch)
	r.ch = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// waitFor blocks until count(typ, reason) >= n (or fails after 5s).
func (r *recorder) waitFor(t testing.TB, typ EventType, reason Reason, n int) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		c := 0
		for _, e := range r.events {
			if e.Type == typ && (reason == "" || e.Reason == reason) {
				c++
			}
		}
		ch := r.ch
		r.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d %v(%s) events; have %d; events: %v", n, typ, reason, c, fmtEvents(r.snapshot()))
		}
	}
}

func fmtEvents(es []Event) string {
	s := "\n"
	for _, e := range es {
		s += fmt.Sprintf("  %v conn=%d reason=%q err=%v\n", e.Type, e.ConnID, e.Reason, e.Err)
	}
	return s
}

// eventually polls cond (cheaply) until it holds or 5s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
