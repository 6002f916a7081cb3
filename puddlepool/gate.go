package puddlepool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// errRetryIdle is returned by the constructor when, while it was queued for a
// dial slot, a connection was released to the idle set. puddle then discards
// the placeholder and hands the error to the acquirer, whose loop simply calls
// puddle's Acquire again and picks up the idle connection: the caller does not
// wait for a dial it no longer needs (HikariCP/CMAP behaviour).
var errRetryIdle = errors.New("puddlepool: connection released while waiting for a dial slot")

const (
	sigSlot = 1 // the waiter now owns a dial slot
	sigIdle = 2 // a connection went idle; the waiter should go and take it
)

type gateWaiter struct {
	ch         chan uint8 // buffered(1); written at most once, under gate.mu
	forAcquire bool       // a caller waits for this dial (not a MinSize fill)
}

// dialGate bounds concurrent dials to max (Config.MaxConnecting). It is a FIFO
// counting semaphore with one extra operation, wakeIdle, that tells the
// longest-waiting dialer to give up its place because a released connection
// can serve its caller instead.
//
// Slots are handed over directly to the next waiter on release, so a late
// arrival can never overtake the queue.
type dialGate struct {
	mu      sync.Mutex
	active  int32
	max     int32
	waiters []*gateWaiter
	// nwait counts waiters with forAcquire set so that Release can skip
	// the mutex when no caller waits for a dial slot (the uncontended path).
	nwait atomic.Int32
}

// acquire takes a dial slot. It returns errRetryIdle if woken by wakeIdle, or
// the cause of stop/ctx when either fires first.
func (g *dialGate) acquire(ctx context.Context, stop <-chan struct{}, stopErr func() error, forAcquire bool) error {
	g.mu.Lock()
	if g.active < g.max && len(g.waiters) == 0 {
		g.active++
		g.mu.Unlock()
		return nil
	}
	w := &gateWaiter{ch: make(chan uint8, 1), forAcquire: forAcquire}
	g.waiters = append(g.waiters, w)
	if forAcquire {
		g.nwait.Add(1)
	}
	g.mu.Unlock()

	var err error
	select {
	case s := <-w.ch:
		if s == sigSlot {
			return nil
		}
		return errRetryIdle
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-stop:
		err = stopErr()
	}

	g.mu.Lock()
	if g.remove(w) {
		g.mu.Unlock()
		return err
	}
	// Already signalled: the signal is in the buffer. If it was a slot we must
	// pass it on, otherwise it would leak.
	s := <-w.ch
	g.mu.Unlock()
	if s == sigSlot {
		g.release()
	}
	return err
}

func (g *dialGate) remove(w *gateWaiter) bool {
	for i, x := range g.waiters {
		if x == w {
			g.removeAt(i)
			return true
		}
	}
	return false
}

func (g *dialGate) removeAt(i int) *gateWaiter {
	w := g.waiters[i]
	copy(g.waiters[i:], g.waiters[i+1:])
	g.waiters[len(g.waiters)-1] = nil
	g.waiters = g.waiters[:len(g.waiters)-1]
	if w.forAcquire {
		g.nwait.Add(-1)
	}
	return w
}

func (g *dialGate) release() {
	g.mu.Lock()
	if len(g.waiters) > 0 {
		g.removeAt(0).ch <- sigSlot
	} else {
		g.active--
	}
	g.mu.Unlock()
}

// wakeIdle tells the longest-waiting dialer that has a caller behind it that
// an idle connection exists. Background (MinSize) dials are not woken: an
// idle connection does not satisfy them.
func (g *dialGate) wakeIdle() {
	if g.nwait.Load() == 0 {
		return
	}
	g.mu.Lock()
	for i, w := range g.waiters {
		if w.forAcquire {
			g.removeAt(i).ch <- sigIdle
			break
		}
	}
	g.mu.Unlock()
}
