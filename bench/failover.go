package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
)

// failoverResult is one client's failover run.
type failoverResult struct {
	client string
	// times relative to the kill (the moment the SIGKILLed process had
	// exited)
	promoted   time.Duration // the promotion became visible (redistest WaitPromoted)
	firstWrite time.Duration // first successful SET on a key of the killed primary's slots, started after the kill; <0: none
	lastFail   time.Duration // last failed operation (completion); <0: none
	failed     uint64        // failed operations during the whole run
	failedW    uint64        // of which SETs
	ops        uint64        // successful operations during the whole run
	opsBefore  float64       // ops/s before the kill
	opsAfter   float64       // ops/s from promotion+1s to the end
	firstErr   error
	timeline   []bucketCount
	affected   float64 // share of the keys on the killed primary
	maxCall    time.Duration
	unknown    uint64         // failed writes whose error says the outcome is unknown
	kinds      map[string]int // failures by kind
}

// counterKey is the key -failover-write=incr increments for key k (the
// same slot: a hash tag of k).
func counterKey(k string) string { return "{" + k + "}:n" }

type bucketCount struct{ ok, failed uint64 }

const timelineStep = 250 * time.Millisecond

func runFailoverBench() error {
	if *dsn != "" {
		return errors.New("-failover kills a primary of a local cluster it starts; it cannot use -dsn")
	}
	specs, err := selectedClients()
	if err != nil {
		return err
	}
	var results []failoverResult
	for _, s := range specs {
		r, err := runFailover(s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		results = append(results, r)
		log.Printf("%s: promotion visible %s after the kill; first write on its slots %s after that; %d failed ops (%d writes, %d of unknown outcome), last failure at %s; longest call %s; failures: %v",
			r.client, fmtDur(r.promoted), fmtRel(r.firstWrite, r.promoted), r.failed, r.failedW, r.unknown, fmtRel(r.lastFail, r.promoted), fmtDur(r.maxCall), r.kinds)
	}
	md := failoverMarkdown(results)
	fmt.Print(md)
	if *out != "" {
		name := *out
		if !isFlagSet("out") {
			name = "failover.md"
		}
		if err := os.WriteFile(name, []byte(md), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", name)
	}
	return nil
}

func isFlagSet(name string) bool {
	found := false
	flagVisit(func(n string) {
		if n == name {
			found = true
		}
	})
	return found
}

// fmtRel formats t (relative to the kill) relative to the promotion.
func fmtRel(t, promoted time.Duration) string {
	if t < 0 {
		return "never"
	}
	d := t - promoted
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// slotRanges returns the slot ranges s serves as a primary, from its
// CLUSTER SLOTS.
func slotRanges(s *redistest.Server) ([][2]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := s.DoValue(ctx, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, err
	}
	var out [][2]int
	entries, _ := v.([]any)
	for _, e := range entries {
		r, _ := e.([]any)
		if len(r) < 3 {
			continue
		}
		lo, _ := r[0].(int64)
		hi, _ := r[1].(int64)
		if nd, ok := r[2].([]any); ok && len(nd) >= 2 {
			if p, _ := nd[1].(int64); int(p) == s.Port {
				out = append(out, [2]int{int(lo), int(hi)})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s serves no slot according to its CLUSTER SLOTS", s.Addr)
	}
	return out, nil
}

// runFailover: a fresh cluster, the client, a GET/SET (80/20) load of
// -failover-goroutines goroutines over all keys; after -failover-before
// the primary of the first key's slot is SIGKILLed; WaitPromoted tells when
// a replica serves its slots; the load goes on for -failover-after (longer,
// up to 90 s, while no write on those slots has succeeded yet).
func runFailover(spec clientSpec) (failoverResult, error) {
	res := failoverResult{client: spec.name, firstWrite: -1, lastFail: -1}
	tb, cl := startCluster("failover-"+spec.name,
		redistest.WithConfig("cluster-node-timeout "+strconv.Itoa(int(*foNodeTimeout/time.Millisecond))))
	defer tb.done()
	tg := target{seeds: cl.Seeds()}
	ks := newKeyspace(*numKeys, *valueSize)
	ctx := context.Background()
	if err := loadKeys(ctx, tg, ks.keys, ks.val); err != nil {
		return res, err
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := spec.open(octx, tg)
	cancel()
	if err != nil {
		return res, err
	}
	defer c.close()

	slot := redistest.Slot(ks.keys[0])
	victim := cl.PrimaryFor(slot)
	ranges, err := slotRanges(victim)
	if err != nil {
		return res, err
	}
	affected := make([]bool, len(ks.keys))
	naff := 0
	for i, k := range ks.keys {
		sl := redistest.Slot(k)
		for _, r := range ranges {
			if sl >= r[0] && sl <= r[1] {
				affected[i] = true
				naff++
				break
			}
		}
	}
	res.affected = float64(naff) / float64(len(ks.keys))

	var (
		stop      atomic.Bool
		killAt    atomic.Int64 // UnixNano; 0 before the kill
		startAt   = time.Now()
		recovered atomic.Bool // some worker saw its first write
		timeline  []bucketCount
		wg        sync.WaitGroup
	)
	type wstate struct {
		firstWrite time.Time // first successful affected SET started after the kill
		lastFail   time.Time
		failed     uint64
		failedW    uint64
		ok         uint64
		firstErr   error
		tl         []bucketCount
		maxCall    time.Duration
		unknown    uint64
		kinds      map[string]int
	}
	incr := *foWrite == "incr"
	states := make([]*wstate, *foGoroutines)
	g := *foGoroutines
	wg.Add(g)
	for i := range g {
		st := &wstate{}
		states[i] = st
		w := &worker{rng: uint64(i+1) * 0x2545f4914f6cdd1d}
		go func() {
			defer wg.Done()
			n := uint64(len(ks.keys))
			for !stop.Load() {
				r := w.next()
				ki := r % n
				isSet := (r>>32)%5 == 0
				t0 := time.Now()
				var err error
				switch {
				case isSet && incr:
					err = c.incr(ctx, counterKey(ks.keys[ki]))
				case isSet:
					err = c.set(ctx, ks.keys[ki], ks.val)
				default:
					err = c.get(ctx, ks.keys[ki])
				}
				t1 := time.Now()
				if d := t1.Sub(t0); d > st.maxCall {
					st.maxCall = d
				}
				b := int(t1.Sub(startAt) / timelineStep)
				for len(st.tl) <= b {
					st.tl = append(st.tl, bucketCount{})
				}
				if err != nil {
					st.failed++
					st.tl[b].failed++
					if isSet {
						st.failedW++
						if strings.Contains(err.Error(), "outcome unknown") {
							st.unknown++
						}
					}
					if st.kinds == nil {
						st.kinds = map[string]int{}
					}
					st.kinds[errorKind(err)]++
					st.lastFail = t1
					if st.firstErr == nil {
						st.firstErr = err
					}
					continue
				}
				st.ok++
				st.tl[b].ok++
				if isSet && affected[ki] && st.firstWrite.IsZero() {
					if k := killAt.Load(); k != 0 && t0.UnixNano() >= k {
						st.firstWrite = t1
						recovered.Store(true)
					}
				}
			}
		}()
	}

	time.Sleep(*foBefore)
	killed := cl.KillPrimary(slot)
	kill := time.Now()
	killAt.Store(kill.UnixNano())
	log.Printf("%s: killed primary %s (slots %v, %.0f%% of the keys) under a load of %d goroutines",
		spec.name, killed.Addr, ranges, 100*res.affected, g)
	promotedNode, promotedAt := cl.WaitPromoted(slot, 60*time.Second)
	res.promoted = promotedAt.Sub(kill)
	log.Printf("%s: %s serves slot %d, visible %s after the kill", spec.name, promotedNode.Addr, slot, fmtDur(res.promoted))
	end := promotedAt.Add(*foAfter)
	hardEnd := promotedAt.Add(90 * time.Second)
	for now := time.Now(); now.Before(hardEnd); now = time.Now() {
		if now.After(end) && recovered.Load() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	total := time.Since(startAt)

	var first, last time.Time
	for _, st := range states {
		res.failed += st.failed
		res.failedW += st.failedW
		res.ops += st.ok
		if !st.firstWrite.IsZero() && (first.IsZero() || st.firstWrite.Before(first)) {
			first = st.firstWrite
		}
		if st.lastFail.After(last) {
			last = st.lastFail
		}
		if res.firstErr == nil {
			res.firstErr = st.firstErr
		}
		res.maxCall = max(res.maxCall, st.maxCall)
		res.unknown += st.unknown
		for k, n := range st.kinds {
			if res.kinds == nil {
				res.kinds = map[string]int{}
			}
			res.kinds[k] += n
		}
		for i, b := range st.tl {
			for len(timeline) <= i {
				timeline = append(timeline, bucketCount{})
			}
			timeline[i].ok += b.ok
			timeline[i].failed += b.failed
		}
	}
	if !first.IsZero() {
		res.firstWrite = first.Sub(kill)
	}
	if !last.IsZero() {
		res.lastFail = last.Sub(kill)
	}
	res.timeline = timeline
	// throughput before the kill and after promotion+1s, from the timeline
	rate := func(from, to time.Duration) float64 {
		var n uint64
		for i, b := range timeline {
			t := time.Duration(i) * timelineStep
			if t >= from && t+timelineStep <= to {
				n += b.ok
			}
		}
		if to-from <= 0 {
			return 0
		}
		return float64(n) / (to - from).Seconds()
	}
	killOff := kill.Sub(startAt)
	res.opsBefore = rate(timelineStep, (killOff/timelineStep)*timelineStep)
	from := ((promotedAt.Sub(startAt)+time.Second)/timelineStep + 1) * timelineStep
	res.opsAfter = rate(from, (total/timelineStep)*timelineStep)
	return res, nil
}

func failoverMarkdown(rs []failoverResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tendril failover recovery benchmark\n\n")
	fmt.Fprintf(&b, "%s\n\n", machineLine())
	fmt.Fprintf(&b, "Per client a fresh local cluster (3 primaries + 3 replicas, cluster-node-timeout %v), %d keys of %d bytes, "+
		"a load of %d goroutines doing 80 %% GET / 20 %% %s over all keys; after %s the primary of slot %d is SIGKILLed "+
		"and the load goes on until %s after the promotion became visible (redistest WaitPromoted, polled every 25 ms). "+
		"Times are from the kill (the process had exited). *Recovery* is the time from the promotion becoming visible "+
		"to the completion of the first successful SET, started after the kill, on a key of the killed primary's slots "+
		"(negative: the client got there before the 25 ms poll saw it). *Failed ops* are operations that returned an error "+
		"during the whole run, *last failure* the completion of the last one relative to the promotion.\n\n",
		*foNodeTimeout, *numKeys, *valueSize, *foGoroutines, strings.ToUpper(*foWrite), *foBefore, redistest.Slot(newKeyspace(1, 0).keys[0]), *foAfter)
	b.WriteString("| client | promotion visible after kill | recovery (promotion → first write) | kill → first write | failed ops (of which writes) | last failure | longest call | ops/s before | ops/s after |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		kf := "never"
		if r.firstWrite >= 0 {
			kf = fmtDur(r.firstWrite)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d (%d) | %s | %s | %s | %s |\n", r.client, fmtDur(r.promoted),
			fmtRel(r.firstWrite, r.promoted), kf, r.failed, r.failedW, fmtRel(r.lastFail, r.promoted), fmtDur(r.maxCall),
			fmtRate(r.opsBefore), fmtRate(r.opsAfter))
	}
	b.WriteString("\nNote: go-redis' ClusterClient reloads its slot map on a MOVED/ASK reply and every ClusterStateReloadInterval " +
		"(default 60 s); errors from the dead primary (connection refused) mark the node failing but do not reload the map, " +
		"so writes to the lost slots keep going to the dead node until the periodic reload.\n")
	b.WriteString("\nFailures by kind:\n\n")
	for _, r := range rs {
		kinds := make([]string, 0, len(r.kinds))
		for k, n := range r.kinds {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		slices.Sort(kinds)
		if len(kinds) == 0 {
			kinds = []string{"none"}
		}
		fmt.Fprintf(&b, "- %s: %s (writes of unknown outcome: %d)\n", r.client, strings.Join(kinds, "; "), r.unknown)
	}
	b.WriteString("\nFirst error seen per client:\n\n")
	for _, r := range rs {
		e := "none"
		if r.firstErr != nil {
			e = strings.ReplaceAll(r.firstErr.Error(), "|", "\\|")
		}
		fmt.Fprintf(&b, "- %s: `%s`\n", r.client, e)
	}
	b.WriteString("\nClient configuration: " + configText() + "\n")
	return b.String()
}
