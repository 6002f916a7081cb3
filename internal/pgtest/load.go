package pgtest

import (
	"sync"
	"sync/atomic"
	"time"
)

// Load is a write load for failover tests: n writers call write in a loop
// until Stop, and every call is recorded (its duration, its error, when a
// successful one was acknowledged).
type Load struct {
	stop    atomic.Bool
	wg      sync.WaitGroup
	unknown func(error) bool
	maxCall atomic.Int64

	mu  sync.Mutex
	res LoadResult
}

// LoadResult is what a Load saw.
type LoadResult struct {
	OK, Failed int
	// Unknown counts the failures unknown says may have run.
	Unknown  int
	FirstErr error
	MaxCall  time.Duration // the longest call, failed or not
	acks     []time.Time   // when each successful call returned, in order per writer
}

// StartLoad starts n writers calling write(w), w the writer's number.
// unknown tells a failure of unknown outcome (the statement may have run).
func StartLoad(n int, write func(w int) error, unknown func(error) bool) *Load {
	l := &Load{unknown: unknown}
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				start := time.Now()
				err := write(w)
				end := time.Now()
				for d, m := int64(end.Sub(start)), l.maxCall.Load(); d > m && !l.maxCall.CompareAndSwap(m, d); m = l.maxCall.Load() {
				}
				l.mu.Lock()
				if err != nil {
					l.res.Failed++
					if l.unknown(err) {
						l.res.Unknown++
					}
					if l.res.FirstErr == nil {
						l.res.FirstErr = err
					}
				} else {
					l.res.OK++
					l.res.acks = append(l.res.acks, end)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Stop stops the writers, waits for their calls in flight, and returns
// what the load saw.
func (l *Load) Stop() LoadResult {
	l.stop.Store(true)
	l.wg.Wait()
	l.res.MaxCall = time.Duration(l.maxCall.Load())
	return l.res
}

// FirstAckAfter is how long after t the first write was acknowledged, -1
// if none was.
func (r LoadResult) FirstAckAfter(t time.Time) time.Duration {
	first := time.Duration(-1)
	for _, at := range r.acks {
		if d := at.Sub(t); d > 0 && (first < 0 || d < first) {
			first = d
		}
	}
	return first
}

// Acks counts the writes acknowledged after from and before to.
func (r LoadResult) Acks(from, to time.Time) int {
	n := 0
	for _, at := range r.acks {
		if at.After(from) && at.Before(to) {
			n++
		}
	}
	return n
}
