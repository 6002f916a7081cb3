package puddlepool

import (
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func newTestPool(t testing.TB, d *fakeDialer, mod func(*Config[*fakeConn])) *Pool[*fakeConn] {
	t.Helper()
	cfg := Config[*fakeConn]{
		Name:              "127.0.0.1:7000",
		Dial:              d.Dial,
		Close:             d.Close,
		Ping:              d.Ping,
		HealthCheckPeriod: time.Hour,
	}
	if mod != nil {
		mod(&cfg)
	}
	d.max = cfg.MaxSize
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidation(t *testing.T) {
	d := &fakeDialer{}
	bad := []Config[*fakeConn]{
		{},
		{Dial: d.Dial, MaxSize: -1},
		{Dial: d.Dial, MaxSize: 2, MinSize: 3},
		{Dial: d.Dial, MinSize: 3, MaxIdle: 2},
		{Dial: d.Dial, MaxLifetime: time.Second, LifetimeJitter: time.Second},
	}
	for i, c := range bad {
		if p, err := New(c); err == nil {
			p.Close()
			t.Errorf("config %d accepted", i)
		}
	}
}

func TestAcquireTimeoutMessage(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 1; c.AcquireTimeout = 20 * time.Millisecond })
	defer p.Close()
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	_, err = p.Acquire(context.Background())
	if !errors.Is(err, ErrAcquireTimeout) {
		t.Fatalf("got %v", err)
	}
	re := regexp.MustCompile(`^puddlepool: node 127\.0\.0\.1:7000: no connection within [0-9.]+m?s \(1 of max 1 in use, 0 waiting\): acquire timeout$`)
	if !re.MatchString(err.Error()) {
		t.Fatalf("message %q", err)
	}
}

func TestLifetimeJitterSpreadsExpiry(t *testing.T) {
	d := &fakeDialer{}
	const life, jitter = time.Hour, 30 * time.Minute
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxLifetime = life; c.LifetimeJitter = jitter })
	defer p.Close()
	var rs []*Resource[*fakeConn]
	seen := map[time.Duration]bool{}
	for range 20 {
		r, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		l := r.c.expiresAt.Sub(r.c.readyAt)
		if l <= life-jitter || l > life {
			t.Fatalf("lifetime %v outside (%v, %v]", l, life-jitter, life)
		}
		seen[l] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct lifetimes out of 20", len(seen))
	}
	for _, r := range rs {
		r.Release()
	}
}

// Close must not wait for a connection a user holds, must stop the
// maintainer before returning, and the last Release finishes the job.
func TestCloseDoesNotBlockOnInUse(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) {
		c.MinSize = 2
		c.HealthCheckPeriod = time.Millisecond
	})
	eventually(t, "MinSize", func() bool { return p.Stat().Idle == 2 })
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on an in-use connection")
	}
	// No goroutine of the pool is left although a connection is out.
	goleak.VerifyNone(t)
	if n := d.live.Load(); n != 1 {
		t.Fatalf("%d connections open, want only the in-use one", n)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
	r.Release()
	if n := d.live.Load(); n != 0 {
		t.Fatalf("%d connections open after the last Release", n)
	}
	if s := p.Stat(); s.Total != 0 || s.ClosedPoolClosed != 2 {
		t.Fatalf("stat %+v", s)
	}
	p.Close() // idempotent
}

func TestDoubleReleasePanics(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, nil)
	defer p.Close()
	r, _ := p.Acquire(context.Background())
	r.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	r.Release()
}

// OnEvent runs without pool locks: a handler may call back into the pool.
func TestOnEventMayCallPool(t *testing.T) {
	d := &fakeDialer{}
	var p *Pool[*fakeConn]
	var calls atomic.Int32
	var nested atomic.Bool
	p = newTestPool(t, d, func(c *Config[*fakeConn]) {
		c.MaxSize = 2
		c.OnEvent = func(e Event) {
			calls.Add(1)
			_ = p.Stat()
			if (e.Type == EventCheckedIn || e.Type == EventConnReady) && nested.CompareAndSwap(false, true) {
				// Re-entrant acquire from inside a handler.
				if r, err := p.Acquire(context.Background()); err == nil {
					r.Release()
				}
				nested.Store(false)
			}
		}
	})
	defer p.Close()
	for range 3 {
		r, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	if calls.Load() == 0 {
		t.Fatal("no events")
	}
}

func TestZeroAllocUncontended(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 4 })
	defer p.Close()
	ctx := context.Background()
	r, _ := p.Acquire(ctx)
	r.Release()
	allocs := testing.AllocsPerRun(1000, func() {
		r, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per Acquire/Release", allocs)
	}
}

// TestStress: 1000 goroutines on MaxSize 10 with random timeouts, cancels,
// destroys, dial failures and delays, failing pings, lifetimes and a Clear in
// the middle. The fake dialer checks open+opening <= MaxSize on every dial.
func TestStress(t *testing.T) {
	const (
		goroutines = 1000
		iters      = 20
		maxSize    = 10
	)
	d := &fakeDialer{}
	d.failFunc = func(n int64) error {
		if rand.IntN(50) == 0 {
			return errRefused
		}
		return nil
	}
	d.pingErr = func(c *fakeConn) error {
		if rand.IntN(20) == 0 {
			return errRefused
		}
		return nil
	}
	d.delay = 100 * time.Microsecond
	p := newTestPool(t, d, func(c *Config[*fakeConn]) {
		c.MaxSize = maxSize
		c.MinSize = 2
		c.MaxIdle = 8
		c.MaxConnecting = 3
		c.IdleTimeout = 5 * time.Millisecond
		c.MaxLifetime = 20 * time.Millisecond
		c.LifetimeJitter = 5 * time.Millisecond
		c.HealthCheckPeriod = 2 * time.Millisecond
		c.PingAfterIdle = time.Millisecond
		c.DialBackoffBase = 200 * time.Microsecond
		c.DialBackoffMax = 2 * time.Millisecond
		c.AcquireTimeout = 50 * time.Millisecond
	})

	var ok, failed, released, destroyed atomic.Int64
	var inUse atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range iters {
				if g == 500 && i == 2 {
					p.Clear(errNodeDown)
					time.Sleep(time.Millisecond)
					p.Ready()
				}
				var ctx context.Context = context.Background()
				var cancel context.CancelFunc = func() {}
				switch rand.IntN(3) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(3000))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					if rand.IntN(2) == 0 {
						time.AfterFunc(time.Duration(rand.IntN(1000))*time.Microsecond, cancel)
					}
				}
				r, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				if n := inUse.Add(1); n > maxSize {
					t.Errorf("%d resources checked out at once", n)
				}
				if r.Value().closed.Load() {
					t.Errorf("handed out a closed connection")
				}
				time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
				inUse.Add(-1)
				if rand.IntN(10) == 0 {
					destroyed.Add(1)
					r.Destroy()
				} else {
					released.Add(1)
					r.Release()
				}
			}
		})
	}
	close(start)
	wg.Wait()

	s := p.Stat()
	if s.InUse != 0 || s.Waiting != 0 {
		t.Errorf("at rest: %+v", s)
	}
	if s.Total != s.Idle+s.InUse+s.Constructing+s.Closing {
		t.Errorf("stats do not add up: %+v", s)
	}
	p.Close()
	s = p.Stat()
	if n := d.violations.Load(); n != 0 {
		t.Errorf("MaxSize exceeded %d times (peak %d)", n, d.peak.Load())
	}
	if n := d.live.Load(); n != 0 {
		t.Errorf("%d connections leaked", n)
	}
	if s.Total != 0 || s.Idle != 0 || s.Closing != 0 || s.Constructing != 0 {
		t.Errorf("gauges after Close: %+v", s)
	}
	if s.Acquired != ok.Load() || ok.Load() != released.Load()+destroyed.Load() {
		t.Errorf("acquired %d, ok %d, released %d, destroyed %d", s.Acquired, ok.Load(), released.Load(), destroyed.Load())
	}
	if s.Created != s.Closed() || s.Created != d.closes.Load() {
		t.Errorf("created %d, closed %d, dialer closes %d: %+v", s.Created, s.Closed(), d.closes.Load(), s)
	}
	if s.CheckOutErrors != failed.Load() {
		t.Errorf("checkout errors %d, failed %d", s.CheckOutErrors, failed.Load())
	}
	t.Logf("ok=%d failed=%d created=%d dialErrors=%d peak=%d stat=%+v", ok.Load(), failed.Load(), s.Created, s.DialErrors, d.peak.Load(), s)
}
