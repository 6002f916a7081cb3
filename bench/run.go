package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type workload string

const (
	wlGet   workload = "get"
	wlSet   workload = "set"
	wlMix   workload = "mix"
	wlBatch workload = "batch"
)

var allWorkloads = []workload{wlGet, wlSet, wlMix, wlBatch}

func (w workload) describe() string {
	switch w {
	case wlGet:
		return "GET of an existing key"
	case wlSet:
		return "SET of an existing key"
	case wlMix:
		return "80 % GET / 20 % SET"
	case wlBatch:
		return fmt.Sprintf("pipeline of %d GETs (one op = one pipeline)", *batchSize)
	}
	return string(w)
}

// keyspace is what every client works on: the same keys, the same value.
type keyspace struct {
	keys []string
	val  []byte
}

func newKeyspace(n, size int) *keyspace {
	ks := &keyspace{keys: make([]string, n), val: make([]byte, size)}
	for i := range ks.keys {
		ks.keys[i] = fmt.Sprintf("bench:key:%06d", i)
	}
	for i := range ks.val {
		ks.val[i] = 'a' + byte(i%26)
	}
	return ks
}

// worker is one goroutine's state. Workers are allocated once and reused
// by every point so that a point allocates nothing for its bookkeeping.
type worker struct {
	h        hist
	ops      uint64 // successful, measured
	errs     uint64 // failed, measured
	rng      uint64
	batch    []string
	firstErr error
}

// next is splitmix64: cheap, no allocation, and the same sequence for
// every client (each worker is seeded with its index).
func (w *worker) next() uint64 {
	w.rng += 0x9e3779b97f4a7c15
	z := w.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

type pointResult struct {
	ops, errs uint64
	elapsed   time.Duration
	mallocs   uint64
	bytes     uint64        // TotalAlloc delta
	srv       time.Duration // the servers' CPU time, when serverCPU is set
	h         hist
	firstErr  error
}

func (r *pointResult) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r *pointResult) allocsPerOp() float64 {
	if r.ops == 0 {
		return 0
	}
	return float64(r.mallocs) / float64(r.ops)
}

// srvPerOp is the servers' CPU time per operation, 0 when not measured.
func (r *pointResult) srvPerOp() time.Duration {
	if r.ops == 0 {
		return 0
	}
	return r.srv / time.Duration(r.ops)
}

func (r *pointResult) bytesPerOp() float64 {
	if r.ops == 0 {
		return 0
	}
	return float64(r.bytes) / float64(r.ops)
}

// op runs one operation of workload wl.
func op(ctx context.Context, c client, wl workload, w *worker, ks *keyspace) error {
	r := w.next()
	n := uint64(len(ks.keys))
	switch wl {
	case wlGet:
		return c.get(ctx, ks.keys[r%n])
	case wlSet:
		return c.set(ctx, ks.keys[r%n], ks.val)
	case wlMix:
		if (r>>32)%5 == 0 {
			return c.set(ctx, ks.keys[r%n], ks.val)
		}
		return c.get(ctx, ks.keys[r%n])
	default:
		for i := range w.batch {
			w.batch[i] = ks.keys[w.next()%n]
		}
		return c.batch(ctx, w.batch)
	}
}

// runPoint runs workload wl with g goroutines on c: warmup without
// recording, then dur of measurement. Every goroutine records the latency
// of each successful operation into its own histogram (two clock reads and
// an increment per operation, the same for every client); allocations are
// the process's Mallocs delta over the measurement, divided by the
// successful operations.
func runPoint(c client, wl workload, g int, warmup, dur time.Duration, ws []*worker, ks *keyspace) pointResult {
	return runFunc(func(ctx context.Context, w *worker) error { return op(ctx, c, wl, w, ks) }, g, warmup, dur, ws)
}

// runFunc is runPoint for any operation fn.
func runFunc(fn func(context.Context, *worker) error, g int, warmup, dur time.Duration, ws []*worker) pointResult {
	ctx := context.Background()
	var phase atomic.Int32
	var wg sync.WaitGroup
	for i := range g {
		w := ws[i]
		w.h.reset()
		w.ops, w.errs, w.firstErr = 0, 0, nil
		w.rng = uint64(i+1) * 0x2545f4914f6cdd1d
		if cap(w.batch) < *batchSize {
			w.batch = make([]string, *batchSize)
		}
		w.batch = w.batch[:*batchSize]
	}
	runtime.GC()
	wg.Add(g)
	for i := range g {
		w := ws[i]
		go func() {
			defer wg.Done()
			for phase.Load() != phaseStop {
				t0 := time.Now()
				err := fn(ctx, w)
				d := time.Since(t0)
				if phase.Load() != phaseMeasure {
					continue
				}
				if err != nil {
					w.errs++
					if w.firstErr == nil {
						w.firstErr = err
					}
					continue
				}
				w.ops++
				w.h.record(d)
			}
		}()
	}
	time.Sleep(warmup)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	s0 := serverCPU()
	start := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(dur)
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	s1 := serverCPU()
	runtime.ReadMemStats(&m1)
	wg.Wait()

	res := pointResult{elapsed: elapsed, mallocs: m1.Mallocs - m0.Mallocs, bytes: m1.TotalAlloc - m0.TotalAlloc, srv: s1 - s0}
	for _, w := range ws[:g] {
		res.ops += w.ops
		res.errs += w.errs
		res.h.merge(&w.h)
		if res.firstErr == nil {
			res.firstErr = w.firstErr
		}
	}
	return res
}

// serverCPU returns the CPU time the local servers have used so far (0
// when the servers are not ours to watch): a client that makes the server
// work harder per operation shows it here, not in its own CPU.
var serverCPU = func() time.Duration { return 0 }

// procsCPU returns a serverCPU for the processes pids: the user and
// system time /proc gives for each, in clock ticks of 10 ms (Linux's
// USER_HZ). A process that cannot be read counts 0.
func procsCPU(pids func() []int) func() time.Duration {
	return func() time.Duration {
		var ticks int64
		for _, pid := range pids() {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			// The fields after the command's name, which is in parentheses
			// and may hold spaces: state is the 1st, utime the 12th, stime
			// the 13th.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(b[i+1:]))
			if len(f) < 13 {
				continue
			}
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + k
		}
		return time.Duration(ticks) * 10 * time.Millisecond
	}
}
