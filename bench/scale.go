package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/puddlepool"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/topology"
)

// The scale run (-scale, issue 14 item 5): the memory backend's simulated
// Redis Cluster at several sizes, half primaries and half replicas
// (nodes=N/2&replicas=1), and what the client costs as it grows:
//
//   - per tend of a stable cluster: probes, peer and map fetches (counts
//     from topology.Stats, independent of load), process CPU and
//     allocations (the simulated servers' side of each probe runs in this
//     process and is included);
//   - Pick of a keyed read or write, and one GET through the whole stack
//     (sqlish QueryRow over the memory driver), in CPU ns per operation,
//     sizes interleaved round by round so that load from elsewhere on the
//     machine hits them all alike;
//   - memory per node (live heap + goroutine stacks) of a DB with
//     min_conns_per_node=0 and =2;
//   - convergence after 10% of the nodes fail at once (the failed
//     primaries' replicas promoted, as the cluster would) and after a
//     reshard that moves 1000 slots, in tends and milliseconds.
//
// Tend cost and convergence use a topology.Tender directly (what a DB
// runs), so that every tend's end is seen (Tended) and the map checked
// slot by slot: for the cost one that tends back to back when asked (no
// idle time counted), for convergence one that tends every -scale-tend.
// GET and memory use sqlish DBs.

var (
	scale       = flag.Bool("scale", false, "scale run instead of throughput: the memory backend's simulated cluster at -scale-nodes sizes; writes scale.md and scale.svg")
	scaleNodesF = flag.String("scale-nodes", "6,60,600,1000", "-scale: comma-separated node counts (even, at most 2000): half primaries, half replicas")
	scaleTend   = flag.Duration("scale-tend", 100*time.Millisecond, "-scale: tend_interval of the clients")
	scaleTends  = flag.Int("scale-tends", 20, "-scale: tends measured per round of the stable-cluster cost")
	scaleRounds = flag.Int("scale-rounds", 5, "-scale: rounds of every measurement (ranges are reported)")
)

// scaleResult is what one cluster size measured.
type scaleResult struct {
	nodes int
	// stable cluster, per tend
	probes, fetches float64
	cpu             []time.Duration // per round
	allocs, bytes   []float64       // per round
	// per operation, per round
	pick, get []float64 // CPU ns
	// the same on one slot, one key: what routing costs when the
	// operations do not spread over the cluster's memory
	pickHot, getHot []float64
	nodesCall       []float64 // CPU µs of one db.Nodes()
	getAllocs       float64
	mem0, mem2      float64 // bytes per node
	fail            convergence
	reshard         convergence
}

type convergence struct {
	tends   int64         // tends started after the change, up to the one that converged
	took    time.Duration // from the change to the end of that tend
	fetches int64         // peer + map fetches meanwhile
	removed int64         // for the failure: tends until the failed nodes left the table (0: not measured)
	moved   int           // for the reshard: slots moved
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mallocs() (n, bytes uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}

// liveBytes is the live heap and the goroutine stacks after a full GC.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}

func scaleParams(nodes int) map[string]string {
	return map[string]string{"nodes": fmt.Sprint(nodes / 2), "replicas": "1"}
}

func scaleName(nodes int) string { return fmt.Sprintf("scale-%d", nodes) }

func runScale() error {
	sizes, err := parseInts(*scaleNodesF)
	if err != nil {
		return err
	}
	for _, n := range sizes {
		if n%2 != 0 || n > 2000 {
			return fmt.Errorf("-scale-nodes: %d is not an even count of at most 2000 (half primaries, half replicas)", n)
		}
	}
	if *scaleTends < 1 || *scaleRounds < 1 || *scaleTend <= 0 {
		return errors.New("-scale-tends and -scale-rounds must be >= 1, -scale-tend > 0")
	}
	ctx := context.Background()
	start := time.Now()
	res := make([]*scaleResult, len(sizes))
	defer func() {
		for _, n := range sizes {
			if cl := memory.Lookup(scaleName(n)); cl != nil {
				cl.Close()
			}
		}
	}()
	// What a process allocates once, at its first DB (telemetry, pools of
	// buffers), is not any size's memory per node.
	if db, err := sqlish.Connect(ctx, "memory", "memory://scale-warmup"); err == nil {
		db.Close()
	}
	defer func() {
		if cl := memory.Lookup("scale-warmup"); cl != nil {
			cl.Close()
		}
	}()
	// One size at a time: process CPU and allocations are only this
	// size's while it is measured.
	for i, n := range sizes {
		r := &scaleResult{nodes: n}
		res[i] = r
		if err := scaleMemory(ctx, r); err != nil {
			return fmt.Errorf("%d nodes: memory: %w", n, err)
		}
		if err := scaleTending(r); err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
	}
	if err := scaleOps(ctx, res); err != nil {
		return err
	}
	md := scaleMarkdown(res, time.Since(start))
	fmt.Print(md)
	if err := writeScale(md, res); err != nil {
		return err
	}
	// The counts do not depend on the machine's load: the CI smoke run
	// holds them as the targets they are.
	if *short {
		for _, t := range scaleTargets(res) {
			if t.counted && !t.met {
				return fmt.Errorf("-scale -short: %s: not met (%s)", t.what, t.detail)
			}
		}
	}
	return nil
}

// writeScale writes the report to -out (default scale.md) and the plot
// next to it (scale.svg).
func writeScale(md string, res []*scaleResult) error {
	name := *out
	if !isFlagSet("out") {
		name = "scale.md"
	}
	if name == "" {
		return nil
	}
	if err := os.WriteFile(name, []byte(md), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	svg := strings.TrimSuffix(name, ".md") + ".svg"
	if err := os.WriteFile(svg, []byte(scaleSVG(res)), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", svg, err)
	}
	log.Printf("wrote %s and %s", name, svg)
	return nil
}

// scaleMemory measures the memory per node of a DB with
// min_conns_per_node=0 and =2, against a baseline taken with the cluster
// created and no client open.
func scaleMemory(ctx context.Context, r *scaleResult) error {
	name := scaleName(r.nodes)
	c, err := memory.Driver{}.OpenConnector(driver.Config{Hosts: []string{name}, Params: scaleParams(r.nodes)})
	if err != nil {
		return err
	}
	if _, err := c.(driver.Resolver).Resolve(ctx, name); err != nil { // creates the cluster
		return err
	}
	for _, minConns := range []int{0, 2} {
		base := liveBytes()
		dsn := fmt.Sprintf("memory://%s?nodes=%d&replicas=1&tend_interval=%s&min_conns_per_node=%d",
			name, r.nodes/2, *scaleTend, minConns)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		db, err := sqlish.Connect(cctx, "memory", dsn)
		cancel()
		if err != nil {
			return err
		}
		// The whole cluster in the table, and the pools at their minimum.
		err = waitFor(time.Minute, func() bool {
			st := db.Stats()
			healthy := 0
			for _, n := range st.Nodes {
				if n.Healthy {
					healthy++
				}
			}
			return healthy == r.nodes && st.Idle >= minConns*r.nodes
		})
		if err != nil {
			db.Close()
			return fmt.Errorf("min_conns_per_node=%d: %w: %d nodes, %d idle connections", minConns, err, len(db.Nodes()), db.Stats().Idle)
		}
		per := float64(liveBytes()-base) / float64(r.nodes)
		if minConns == 0 {
			r.mem0 = per
		} else {
			r.mem2 = per
		}
		db.Close()
		log.Printf("scale %4d nodes: %s per node with min_conns_per_node=%d", r.nodes, fmtBytes(per), minConns)
	}
	return nil
}

func waitFor(d time.Duration, cond func() bool) error {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
	}
	return nil
}

// scaleTender is a started tender on one size's cluster. A driven one
// tends only when asked (Refresh, no cooldown), back to back: its tends
// cost what a tend costs, without the idle time between them.
type scaleTender struct {
	*topology.Tender
	driven bool
}

// newScaleTender returns a started tender on the size's cluster, tending
// every interval (0: driven), once it follows the whole cluster.
func newScaleTender(nodes int, interval time.Duration) (*scaleTender, error) {
	name := scaleName(nodes)
	c, err := memory.Driver{}.OpenConnector(driver.Config{Hosts: []string{name}, Params: scaleParams(nodes)})
	if err != nil {
		return nil, err
	}
	cfg := topology.Config{
		Seeds: []string{name}, Connector: c, Timeout: time.Second, TendInterval: interval,
		Pool: puddlepool.Config[driver.Conn]{MaxSize: 100, Close: func(c driver.Conn) error { return c.Close() }},
	}
	if interval == 0 {
		cfg.TendInterval, cfg.RefreshCooldown = time.Hour, time.Nanosecond
	}
	tr, err := topology.New(cfg)
	if err != nil {
		return nil, err
	}
	first := tr.Tended()
	tr.Start()
	// A driven tender is asked for a tend only between tends, so that
	// none is queued behind the one running and every count is whole.
	<-first
	st := &scaleTender{Tender: tr, driven: interval == 0}
	cl := memory.Lookup(name)
	whole := func() bool { return following(tr.Snapshot(), cl, nil) }
	if err := st.await(50, whole); !whole() {
		tr.Close()
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return st, nil
}

// next waits for the end of the next tend (or of the one running).
func (t *scaleTender) next() {
	ch := t.Tended()
	if t.driven {
		t.Refresh()
	}
	<-ch
}

// await waits for tends to end until cond holds after one of them, at most
// max tends.
func (t *scaleTender) await(max int, cond func() bool) error {
	for range max {
		t.next()
		if cond() {
			return nil
		}
	}
	return fmt.Errorf("not after %d tends", max)
}

// following reports whether the snapshot holds every live node of the
// cluster, healthy, none of gone, and every slot's primary as the cluster
// has it (owners, when not nil, is that, precomputed).
func following(s *topology.Snapshot, cl *memory.Cluster, gone []string) bool {
	for _, a := range gone {
		if n := s.Node(a); n != nil && n.Healthy() {
			return false
		}
	}
	live := 0
	for _, ni := range cl.Nodes() {
		if !ni.Alive {
			continue
		}
		live++
		if n := s.Node(ni.Addr); n == nil || !n.Healthy() {
			return false
		}
	}
	if live == 0 || s.Partitions() != 16384 {
		return false
	}
	for p := range 16384 {
		if n := s.Primary(p); n == nil || !n.Healthy() || n.Addr() != cl.SlotOwner(p) {
			return false
		}
	}
	return true
}

// scaleTender measures a stable cluster's cost per tend, then convergence
// after 10% of the nodes fail and after a 1000-slot reshard.
func scaleTending(r *scaleResult) error {
	tr, err := newScaleTender(r.nodes, 0)
	if err != nil {
		return err
	}
	// Stable: rounds of tends back to back.
	var probes, fetches, tends int64
	for range *scaleRounds {
		st0, cpu0 := tr.Stats(), processCPU()
		m0, b0 := mallocs()
		for range *scaleTends {
			tr.next()
		}
		st1, cpu1 := tr.Stats(), processCPU()
		m1, b1 := mallocs()
		k := st1.Tends - st0.Tends
		tends += k
		probes += st1.Probes - st0.Probes
		fetches += st1.PeerFetches - st0.PeerFetches + st1.MapFetches - st0.MapFetches
		r.cpu = append(r.cpu, (cpu1-cpu0)/time.Duration(k))
		r.allocs = append(r.allocs, float64(m1-m0)/float64(k))
		r.bytes = append(r.bytes, float64(b1-b0)/float64(k))
	}
	r.probes, r.fetches = float64(probes)/float64(tends), float64(fetches)/float64(tends)
	log.Printf("scale %4d nodes: per tend %.1f probes, %.2f fetches, CPU %s, %.0f allocs",
		r.nodes, r.probes, r.fetches, fmtDurs(r.cpu), median(r.allocs))
	tr.Close()

	// Convergence, with the tend interval of the run.
	if tr, err = newScaleTender(r.nodes, *scaleTend); err != nil {
		return err
	}
	defer tr.Close()
	cl := memory.Lookup(scaleName(r.nodes))
	if err := scaleFailure(tr, cl, r); err != nil {
		return fmt.Errorf("10%% failure: %w", err)
	}
	if err := scaleReshard(tr, cl, r); err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	return nil
}

// scaleFailure kills 10% of the nodes at once, right after a tend ended:
// every other victim a primary, whose replica is promoted at the same
// moment (the cluster's own failover, which the memory cluster leaves to
// the caller), the others replicas, each of a different shard so that
// every slot keeps a live node. Converged: the victims are down or out of
// the table and every slot's primary is the promoted or surviving one,
// healthy. Then the victims are restarted and the table waited for.
func scaleFailure(tr *scaleTender, cl *memory.Cluster, r *scaleResult) error {
	k := max(1, (r.nodes+5)/10)
	var primaries []memory.NodeInfo
	replicaOf := map[string]string{}
	for _, ni := range cl.Nodes() {
		if ni.Role == driver.RolePrimary {
			primaries = append(primaries, ni)
		} else {
			replicaOf[ni.PrimaryID] = ni.Addr
		}
	}
	var victims, promote []string
	for i := range k {
		p := primaries[i%len(primaries)]
		if i%2 == 0 {
			victims = append(victims, p.Addr)
			promote = append(promote, replicaOf[p.ID])
		} else {
			victims = append(victims, replicaOf[p.ID])
		}
	}
	tr.next()
	st0, t0 := tr.Stats(), time.Now()
	for _, v := range victims {
		if err := cl.Kill(v); err != nil {
			return err
		}
	}
	for _, a := range promote {
		if err := cl.Failover(a); err != nil {
			return err
		}
	}
	if err := tr.await(20, func() bool { return following(tr.Snapshot(), cl, victims) }); err != nil {
		return err
	}
	st1 := tr.Stats()
	r.fail = convergence{tends: st1.Tends - st0.Tends, took: time.Since(t0),
		fetches: st1.PeerFetches - st0.PeerFetches + st1.MapFetches - st0.MapFetches}
	gone := func() bool {
		s := tr.Snapshot()
		return !slices.ContainsFunc(victims, func(a string) bool { return s.Node(a) != nil })
	}
	if err := tr.await(20, gone); err != nil {
		return fmt.Errorf("the failed nodes still in the table: %w", err)
	}
	r.fail.removed = tr.Stats().Tends - st0.Tends
	log.Printf("scale %4d nodes: %d nodes failed: converged after %d tend(s), %s; removed after %d tends",
		r.nodes, k, r.fail.tends, r.fail.took.Round(time.Millisecond), r.fail.removed)
	for _, v := range victims {
		if err := cl.Restart(v); err != nil {
			return err
		}
	}
	if err := tr.await(20, func() bool { return following(tr.Snapshot(), cl, nil) }); err != nil {
		return fmt.Errorf("after restarting the failed nodes: %w", err)
	}
	return nil
}

// scaleReshard moves 1000 slots, spread over the slot space, each to the
// next shard's primary, right after a tend ended; converged: the client's
// map gives every slot the primary the cluster has.
func scaleReshard(tr *scaleTender, cl *memory.Cluster, r *scaleResult) error {
	var primaries []string
	for _, ni := range cl.Nodes() {
		if ni.Role == driver.RolePrimary {
			primaries = append(primaries, ni.Addr)
		}
	}
	if len(primaries) < 2 {
		return errors.New("a reshard needs two primaries")
	}
	const moves = 1000
	tr.next()
	st0 := tr.Stats()
	for i := range moves {
		slot := i * 16384 / moves
		to := primaries[(slices.Index(primaries, cl.SlotOwner(slot))+1)%len(primaries)]
		if err := cl.MigrateSlot(slot, to); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := tr.await(20, func() bool { return following(tr.Snapshot(), cl, nil) }); err != nil {
		return err
	}
	st1 := tr.Stats()
	r.reshard = convergence{tends: st1.Tends - st0.Tends, took: time.Since(t0), moved: moves,
		fetches: st1.PeerFetches - st0.PeerFetches + st1.MapFetches - st0.MapFetches}
	log.Printf("scale %4d nodes: %d slots moved: converged after %d tend(s), %s, %d fetches",
		r.nodes, moves, r.reshard.tends, r.reshard.took.Round(time.Millisecond), r.reshard.fetches)
	return nil
}

// scaleOps measures Pick and one GET through the stack at every size,
// sizes interleaved round by round (each round in another order), in
// process CPU per operation. The clients tend once an hour here: their
// background cost is measured above, not here.
func scaleOps(ctx context.Context, res []*scaleResult) error {
	type sized struct {
		r    *scaleResult
		db   *sqlish.DB
		tr   *scaleTender
		keys []string
	}
	var all []*sized
	defer func() {
		for _, s := range all {
			s.db.Close()
			s.tr.Close()
		}
	}()
	const nkeys = 10000
	for _, r := range res {
		tr, err := newScaleTender(r.nodes, 0)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", r.nodes, err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		db, err := sqlish.Connect(cctx, "memory", fmt.Sprintf("memory://%s?nodes=%d&replicas=1&tend_interval=1h", scaleName(r.nodes), r.nodes/2))
		cancel()
		if err != nil {
			tr.Close()
			return fmt.Errorf("%d nodes: %w", r.nodes, err)
		}
		s := &sized{r: r, db: db, tr: tr, keys: make([]string, nkeys)}
		all = append(all, s)
		if err := waitFor(time.Minute, func() bool { return len(db.Nodes()) == r.nodes }); err != nil {
			return fmt.Errorf("%d nodes: the DB's table: %w", r.nodes, err)
		}
		// Keys on every slot; each read once, so that every pool has its
		// connection before anything is measured.
		for i := range s.keys {
			s.keys[i] = fmt.Sprintf("scale:%05d", i)
			if _, err := db.Exec(ctx, "SET ? ?", s.keys[i], "value-of-sixteen"); err != nil {
				return fmt.Errorf("%d nodes: SET: %w", r.nodes, err)
			}
		}
		for _, k := range s.keys {
			if err := db.QueryRow(ctx, "GET ?", k).Scan(new([]byte)); err != nil {
				return fmt.Errorf("%d nodes: GET: %w", r.nodes, err)
			}
		}
	}
	picks, gets := 10_000_000, 100_000
	if *short {
		picks, gets = 1_000_000, 10_000
	}
	for round := range *scaleRounds + 2 {
		for j := range all {
			s := all[(j+round)%len(all)]
			snap := s.tr.Snapshot()
			pickAt := func(slot func(i int) int) (float64, error) {
				runtime.GC()
				c0 := processCPU()
				for i := range picks {
					route := driver.Route{Partition: slot(i), Intent: driver.Intent(i & 1)}
					if snap.Pick(route, topology.PreferReplica, 0) == nil {
						return 0, fmt.Errorf("%d nodes: Pick found no node for slot %d", s.r.nodes, route.Partition)
					}
				}
				return float64(processCPU()-c0) / float64(picks), nil
			}
			var v []byte
			getOf := func(key func(i int) string) (float64, float64, error) {
				runtime.GC()
				m0, _ := mallocs()
				c0 := processCPU()
				for i := range gets {
					k := key(i)
					if err := s.db.QueryRow(ctx, "GET ?", k).Scan(&v); err != nil {
						return 0, 0, fmt.Errorf("%d nodes: GET %s: %w", s.r.nodes, k, err)
					}
				}
				m1, _ := mallocs()
				return float64(processCPU()-c0) / float64(gets), float64(m1-m0) / float64(gets), nil
			}
			pick, err := pickAt(func(i int) int { return (i * 7919) & 16383 })
			if err != nil {
				return err
			}
			pickHot, err := pickAt(func(int) int { return 4242 })
			if err != nil {
				return err
			}
			get, allocs, err := getOf(func(i int) string { return s.keys[(i*7919)%len(s.keys)] })
			if err != nil {
				return err
			}
			getHot, _, err := getOf(func(int) string { return s.keys[42] })
			if err != nil {
				return err
			}
			c0 := processCPU()
			calls := 0
			for processCPU()-c0 < 20*time.Millisecond || calls < 3 {
				s.db.Nodes()
				calls++
			}
			nodesCall := float64(processCPU()-c0) / float64(calls) / 1e3
			if round < 2 && *scaleRounds > 1 {
				continue // warm-up rounds
			}
			s.r.pick = append(s.r.pick, pick)
			s.r.pickHot = append(s.r.pickHot, pickHot)
			s.r.get = append(s.r.get, get)
			s.r.getHot = append(s.r.getHot, getHot)
			s.r.getAllocs = allocs
			s.r.nodesCall = append(s.r.nodesCall, nodesCall)
		}
	}
	for _, s := range all {
		log.Printf("scale %4d nodes: Pick %s ns (one slot %s), GET %s ns (one key %s) (CPU per op); db.Nodes() %s µs",
			s.r.nodes, fmtRange(s.r.pick, "%.1f"), fmtRange(s.r.pickHot, "%.1f"), fmtRange(s.r.get, "%.0f"), fmtRange(s.r.getHot, "%.0f"), fmtRange(s.r.nodesCall, "%.0f"))
	}
	return nil
}

func fmtRange(xs []float64, f string) string {
	if len(xs) == 0 {
		return "—"
	}
	m := fmt.Sprintf(f, median(xs))
	if len(xs) == 1 {
		return m
	}
	return fmt.Sprintf("%s ("+f+"–"+f+")", m, slices.Min(xs), slices.Max(xs))
}

func fmtDurs(ds []time.Duration) string {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d) / 1e3
	}
	return fmtRange(xs, "%.0f") + " µs"
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func durMedian(ds []time.Duration) float64 {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return median(xs)
}
