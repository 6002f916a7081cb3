package puddlepool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitLoans: a connection lent to shared users and acquired again for
// exclusive use is not used exclusively until every loan is returned, and
// the waiter is woken by the last Return.
func TestWaitLoans(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 1 })
	defer p.Close()
	ctx := context.Background()
	r, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l1 := r.Lend()
	r, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l2 := r.Lend()
	if l1.Value() != l2.Value() {
		t.Fatal("MaxSize 1 lent two connections")
	}
	ex, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := ex.Loans(); n != 2 {
		t.Fatalf("Loans = %d, want 2", n)
	}
	var done atomic.Bool
	waited := make(chan error)
	go func() {
		err := ex.WaitLoans(ctx)
		done.Store(true)
		waited <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l1.Return()
	time.Sleep(20 * time.Millisecond)
	if done.Load() {
		t.Fatal("WaitLoans returned with a loan still out")
	}
	l2.Return()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitLoans was not woken by the last Return")
	}
	// A deadline ends the wait with an error naming what was waited for.
	l3 := ex.Lend()
	ex, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := ex.WaitLoans(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLoans with a loan out and a deadline: %v", err)
	}
	l3.Return()
	if err := ex.WaitLoans(ctx); err != nil {
		t.Fatal(err)
	}
	ex.Release()
}

// TestLoansRace hammers lends and exclusive acquires: an exclusive holder
// must never see a lent user inside its use.
func TestLoansRace(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 2 })
	defer p.Close()
	ctx := context.Background()
	type state struct {
		shared    atomic.Int32
		exclusive atomic.Int32
	}
	var mu sync.Mutex
	states := map[*fakeConn]*state{}
	stateOf := func(c *fakeConn) *state {
		mu.Lock()
		defer mu.Unlock()
		if states[c] == nil {
			states[c] = &state{}
		}
		return states[c]
	}
	var bad atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				r, err := p.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if g%4 == 0 { // exclusive
					if err := r.WaitLoans(ctx); err != nil {
						t.Error(err)
					}
					s := stateOf(r.Value())
					s.exclusive.Add(1)
					if s.shared.Load() != 0 {
						bad.Add(1)
					}
					s.exclusive.Add(-1)
					r.Release()
					continue
				}
				l := r.Lend()
				s := stateOf(l.Value())
				s.shared.Add(1)
				if s.exclusive.Load() != 0 {
					bad.Add(1)
				}
				s.shared.Add(-1)
				l.Return()
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d times a lent and an exclusive user overlapped", n)
	}
}

// Room holds while fewer than MaxSize connections are open or dialing,
// whether or not they are checked out, and always without a MaxSize.
func TestRoom(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(t, d, func(c *Config[*fakeConn]) { c.MaxSize = 2 })
	defer p.Close()
	ctx := context.Background()
	if !p.Room() {
		t.Fatal("an empty pool of 2 has no room")
	}
	r1, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Room() {
		t.Fatal("a pool of 2 with 1 open has no room")
	}
	r2, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Room() {
		t.Fatal("a pool of 2 with 2 checked out has room")
	}
	r1.Release()
	if p.Room() {
		t.Fatal("a pool of 2 with 2 open (1 idle) has room")
	}
	r2.Destroy()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Room() {
		if time.Now().After(deadline) {
			t.Fatal("no room after a connection was destroyed")
		}
		time.Sleep(time.Millisecond)
	}
	u := newTestPool(t, &fakeDialer{}, func(c *Config[*fakeConn]) { c.MaxSize = 0 })
	defer u.Close()
	if r, err := u.Acquire(ctx); err != nil || !u.Room() {
		t.Fatalf("an unbounded pool has no room (%v)", err)
	} else {
		r.Release()
	}
}
