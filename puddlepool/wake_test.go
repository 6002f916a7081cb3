package puddlepool

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests cover how waits end. Callers wait inside puddle on their own
// context only; Pause/Clear/Close wake them through the marker (a caller
// queued in puddle's semaphore) or the dial placeholder (a caller waiting
// for its own dial). See the package doc.

// acquireAsync starts an Acquire and returns where its outcome arrives.
func acquireAsync(p *Pool[*fakeConn], ctx context.Context) <-chan acqResult {
	ch := make(chan acqResult, 1)
	go func() {
		r, err := p.Acquire(ctx)
		ch <- acqResult{r, err}
	}()
	return ch
}

// spin busy-waits n iterations: finer than time.Sleep.
func spin(n int) {
	for i := 0; i < n; i++ {
		spinSink.Add(1)
	}
}

var spinSink atomic.Int64

func waitResult(t *testing.T, ch <-chan acqResult, what string) acqResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still waiting after 5s", what)
		return acqResult{}
	}
}

// Pause, Clear and Close end every wait of callers queued while all
// connections are held, with and without a context of their own, with the
// pool's error; and they do not let the pool exceed MaxSize afterwards.
func TestPauseClearCloseWakeQueuedWaiters(t *testing.T) {
	const maxSize, waiters = 2, 20
	for _, tc := range []struct {
		name string
		op   func(p *Pool[*fakeConn])
		want []error
	}{
		{"Pause", (*Pool[*fakeConn]).Pause, []error{ErrPoolPaused}},
		{"Clear", func(p *Pool[*fakeConn]) { p.Clear(errNodeDown) }, []error{ErrPoolPaused, errNodeDown}},
		{"Close", (*Pool[*fakeConn]).Close, []error{ErrPoolClosed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDialer{}
			p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = maxSize })
			defer p.Close()
			var held []*Resource[*fakeConn]
			for range maxSize {
				r, err := p.Acquire(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, r)
			}
			var chs []<-chan acqResult
			for i := range waiters {
				ctx := context.Background()
				if i%2 == 1 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				chs = append(chs, acquireAsync(p, ctx))
			}
			eventually(t, "all waiting", func() bool { return p.Stat().Waiting == waiters })
			start := time.Now()
			tc.op(p)
			for i, ch := range chs {
				r := waitResult(t, ch, "waiter")
				if r.err == nil {
					r.r.Release()
					t.Fatalf("waiter %d got a connection", i)
				}
				for _, w := range tc.want {
					if !errors.Is(r.err, w) {
						t.Fatalf("waiter %d: %v does not wrap %v", i, r.err, w)
					}
				}
			}
			t.Logf("%d waiters woken in %v", waiters, time.Since(start))
			if s := p.Stat(); s.Waiting != 0 || s.CheckOutErrors != waiters {
				t.Fatalf("stat %+v", s)
			}
			for _, r := range held {
				r.Release()
			}
			if tc.name != "Close" {
				p.Ready()
				// Usable again, and MaxSize still holds.
				var rs []*Resource[*fakeConn]
				for range maxSize {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					r, err := p.Acquire(ctx)
					cancel()
					if err != nil {
						t.Fatal(err)
					}
					rs = append(rs, r)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				if r, err := p.Acquire(ctx); err == nil {
					r.Release()
					t.Fatal("acquired more than MaxSize")
				}
				cancel()
				for _, r := range rs {
					r.Release()
				}
			}
			p.Close()
			if n := d.violations.Load(); n != 0 {
				t.Fatalf("MaxSize exceeded %d times", n)
			}
			if n := d.live.Load(); n != 0 {
				t.Fatalf("%d connections open after Close", n)
			}
		})
	}
}

// A caller waiting for its own dial is woken by Pause/Close at once; the
// dial goes on, still counting against MaxSize, and what it yields is
// closed.
func TestPauseCloseWakeCallerWaitingForItsDial(t *testing.T) {
	for _, closing := range []bool{false, true} {
		name := "Pause"
		if closing {
			name = "Close"
		}
		t.Run(name, func(t *testing.T) {
			d := &fakeDialer{}
			rec := newRecorder()
			p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 1; c.OnEvent = rec.on })
			defer p.Close()
			gate := make(chan struct{})
			d.set(func(d *fakeDialer) { d.gate = gate })
			ch := acquireAsync(p, context.Background())
			rec.waitFor(t, EventConnCreated, "", 1)
			if closing {
				p.Close()
				if r := waitResult(t, ch, "caller"); !errors.Is(r.err, ErrPoolClosed) {
					t.Fatalf("got %v, want ErrPoolClosed", r.err)
				}
				// Close aborts the dial; nothing may stay open.
				eventually(t, "dial aborted", func() bool { return d.live.Load() == 0 && p.Stat().Total == 0 })
				return
			}
			p.Pause()
			if r := waitResult(t, ch, "caller"); !errors.Is(r.err, ErrPoolPaused) {
				t.Fatalf("got %v, want ErrPoolPaused", r.err)
			}
			p.Ready()
			// The dial still holds the only slot.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			_, err := p.Acquire(ctx)
			cancel()
			if !errors.Is(err, ErrAcquireTimeout) || d.dials.Load() != 1 {
				t.Fatalf("Acquire while the dial holds the slot: %v after %d dials", err, d.dials.Load())
			}
			d.set(func(d *fakeDialer) { d.gate = nil })
			close(gate)
			// The connection the dial yields is stale: never handed out.
			r, err := p.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.Value().n != 2 {
				t.Fatalf("got connection %d, want a new one", r.Value().n)
			}
			r.Release()
			rec.waitFor(t, EventConnClosed, ReasonCleared, 1)
			if s := p.Stat(); s.Total != 1 || s.Idle != 1 || s.ClosedCleared != 1 || s.Closing != 0 || s.Constructing != 0 {
				t.Fatalf("stat %+v", s)
			}
			if n := d.violations.Load(); n != 0 {
				t.Fatalf("MaxSize exceeded %d times", n)
			}
		})
	}
}

// An event handler may call Ready on the Pause event: no deadlock, and
// MaxSize still holds.
func TestReadyFromPauseEvent(t *testing.T) {
	d := &fakeDialer{}
	var p *Pool[*fakeConn]
	p = newTestPool(t, d, func(c *Config[*fakeConn]) {
		c.MaxSize = 1
		c.OnEvent = func(e Event) {
			if e.Type == EventPoolPaused {
				p.Ready()
			}
		}
	})
	defer p.Close()
	a, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := acquireAsync(p, context.Background())
	eventually(t, "waiting", func() bool { return p.Stat().Waiting == 1 })
	done := make(chan struct{})
	go func() { p.Pause(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Pause with Ready in its event handler deadlocked")
	}
	a.Release() // stale: closed
	// The waiter failed with the pause, or kept waiting in the pool that
	// was ready again and dialed anew.
	r := waitResult(t, w, "waiter")
	if r.err != nil && !errors.Is(r.err, ErrPoolPaused) {
		t.Fatalf("waiter: %v", r.err)
	}
	if r.err != nil {
		if r, err := p.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		} else {
			defer r.Release()
		}
	} else {
		defer r.r.Release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	if x, err := p.Acquire(ctx); err == nil {
		x.Release()
		t.Fatal("acquired more than MaxSize")
	}
	cancel()
	if n := d.violations.Load(); n != 0 {
		t.Fatalf("MaxSize exceeded %d times", n)
	}
}

// Waiters are served in the order they came.
func TestWaitersFIFO(t *testing.T) {
	const n = 8
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 1 })
	defer p.Close()
	a, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := p.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			r.Release()
		})
		eventually(t, "queued", func() bool { return p.Stat().Waiting == int32(i+1) })
	}
	a.Release()
	wg.Wait()
	for i, x := range order {
		if x != i {
			t.Fatalf("served in order %v", order)
		}
	}
}

// A waiter whose context ends just as a connection is handed to it either
// takes it or passes it on: nothing leaks and nothing is dialed twice.
func TestCancelAtHandOffDoesNotLeak(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 1 })
	defer p.Close()
	var got, cancelled int
	for i := range 3000 {
		tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
		a, err := p.Acquire(tctx)
		tcancel()
		if err != nil {
			t.Fatalf("the only slot leaked: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := acquireAsync(p, ctx)
		for deadline := time.Now().Add(5 * time.Second); p.Stat().Waiting != 1; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatal("no waiter")
			}
		}
		// Cancel around the hand-over: before, at once, or a little
		// after, so that every step of it meets a cancellation.
		switch i % 3 {
		case 0:
			var wg sync.WaitGroup
			wg.Go(cancel)
			wg.Go(a.Release)
			wg.Wait()
		case 1:
			a.Release()
			spin(rand.IntN(20000))
			cancel()
		case 2:
			go func() { spin(rand.IntN(20000)); cancel() }()
			a.Release()
		}
		cancel()
		r := waitResult(t, w, "waiter")
		if r.err == nil {
			got++
			r.r.Release()
		} else {
			cancelled++
		}
		if s := p.Stat(); s.InUse != 0 || s.Waiting != 0 {
			t.Fatalf("stat %+v", s)
		}
	}
	t.Logf("%d handed over, %d cancelled", got, cancelled)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("the only slot leaked: %v", err)
	}
	r.Release()
	if s := p.Stat(); s.Total != 1 || s.Idle != 1 || d.dials.Load() != 1 {
		t.Fatalf("%d dials, stat %+v", d.dials.Load(), s)
	}
}

// Pause/Clear/Ready in a tight loop under contention: MaxSize is never
// exceeded (the fake dialer checks every dial), no wait hangs, and the
// pool ends at rest.
func TestPauseReadyStress(t *testing.T) {
	const (
		maxSize    = 3
		goroutines = 64
	)
	d := &fakeDialer{}
	d.delay = 50 * time.Microsecond
	p := newTestPool(t, d, func(c *Config[*fakeConn]) {
		c.MaxSize = maxSize
		c.MaxConnecting = 2
		c.DialBackoffBase = 100 * time.Microsecond
	})
	stop := make(chan struct{})
	var toggles sync.WaitGroup
	toggles.Go(func() {
		for {
			select {
			case <-stop:
				p.Ready()
				return
			default:
			}
			if rand.IntN(2) == 0 {
				p.Pause()
			} else {
				p.Clear(errNodeDown)
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			p.Ready()
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
	})
	var ok atomic.Int64
	var mu sync.Mutex
	out := map[*fakeConn]bool{} // checked out now
	errs := map[string]int{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond)
	for range goroutines {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rand.IntN(4) == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Microsecond)
				}
				r, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					mu.Lock()
					errs[errKind(err)]++
					mu.Unlock()
					// As a client would: do not spin on a paused pool.
					time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
					continue
				}
				ok.Add(1)
				mu.Lock()
				if out[r.Value()] {
					t.Errorf("connection %d handed out twice", r.Value().n)
				}
				out[r.Value()] = true
				if len(out) > maxSize {
					ps := p.pp.Stat()
					t.Errorf("%d checked out at once; puddle: %d resources, %d acquired, %d idle",
						len(out), ps.TotalResources(), ps.AcquiredResources(), ps.IdleResources())
				}
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
				mu.Lock()
				delete(out, r.Value())
				mu.Unlock()
				r.Release()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("acquirers hung; stat %+v", p.Stat())
	}
	close(stop)
	toggles.Wait()
	eventually(t, "at rest", func() bool {
		s := p.Stat()
		return s.InUse == 0 && s.Waiting == 0 && s.Closing == 0 && s.Constructing == 0
	})
	p.Close()
	s := p.Stat()
	if n := d.violations.Load(); n != 0 {
		t.Errorf("MaxSize exceeded %d times (peak %d)", n, d.peak.Load())
	}
	if n := d.live.Load(); n != 0 {
		t.Errorf("%d connections leaked", n)
	}
	if s.Total != 0 || s.Created != s.Closed() {
		t.Errorf("after Close: %+v", s)
	}
	t.Logf("ok=%d errors=%v dials=%d peak=%d", ok.Load(), errs, d.dials.Load(), d.peak.Load())
}

func errKind(err error) string {
	switch {
	case errors.Is(err, ErrPoolClosed):
		return "closed"
	case errors.Is(err, ErrPoolPaused):
		return "paused"
	case errors.Is(err, ErrAcquireTimeout):
		return "timeout"
	case errors.Is(err, ErrDialBackoff):
		return "backoff"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return err.Error()
}
