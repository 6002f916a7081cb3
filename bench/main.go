// Command bench compares tendril with go-redis v9 (ClusterClient) and
// rueidis on the same Redis Cluster, side by side. See README.md for the
// flags, what is measured and how each client is configured.
//
//	cd bench && go run .                 # full run, writes results.md (~10 min)
//	cd bench && go run . -short          # seconds: CI smoke run
//	cd bench && go run . -failover       # failover recovery benchmark
//	cd bench && go run . -scale          # cost vs cluster size (memory backend), writes scale.md, scale.svg
//	cd bench && go run . -dsn redis://127.0.0.1:7000,127.0.0.1:7001
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
)

var (
	dsn           = flag.String("dsn", "", "seeds of an existing Redis Cluster, redis://[user[:password]@]h1:p1[,h2:p2...]; default: start a local 3-primary + 3-replica cluster with redistest")
	duration      = flag.Duration("duration", 3*time.Second, "measured time per point (client x workload x goroutines x round)")
	warmupFlag    = flag.Duration("warmup", 500*time.Millisecond, "unmeasured run before each point's measurement")
	rounds        = flag.Int("rounds", 3, "times every point is repeated (interleaved); the median is reported")
	goroutinesF   = flag.String("goroutines", "1,16,64,256,1024", "comma-separated concurrency levels")
	workloadsF    = flag.String("workloads", "get,set,mix,batch", "comma-separated workloads: get, set, mix (80/20 GET/SET), batch")
	clientsF      = flag.String("clients", "tendril,go-redis,rueidis", "comma-separated clients to run, tendril first (ratios are tendril's)")
	numKeys       = flag.Int("keys", 10000, "number of keys, loaded before the run")
	valueSize     = flag.Int("value-size", 64, "value size in bytes")
	valueSizes    = flag.String("value-sizes", "", "value-size sweep instead: comma-separated sizes in bytes (e.g. 1024,16384,262144,1048576), each a throughput run of -workloads (default get,set) at -goroutines (default 8); writes sizes.md")
	batchSize     = flag.Int("batch-size", 100, "GETs per pipeline in the batch workload")
	out           = flag.String("out", "results.md", "markdown file to write the results to (empty: none)")
	short         = flag.Bool("short", false, "smoke mode for CI: 1 round, 200ms per point (50ms warmup), goroutines 1 and 16, GET only; fails on any error")
	failover      = flag.Bool("failover", false, "failover recovery benchmark instead of throughput: per client a fresh local cluster, a GET/SET load, a primary killed")
	foGoroutines  = flag.Int("failover-goroutines", 64, "goroutines of the -failover load")
	foBefore      = flag.Duration("failover-before", 3*time.Second, "-failover: load before the primary is killed")
	foAfter       = flag.Duration("failover-after", 10*time.Second, "-failover: load after the promotion became visible (longer while a client has not written to the failed slots yet, up to 90s)")
	foNodeTimeout = flag.Duration("failover-node-timeout", 2*time.Second, "-failover: cluster-node-timeout of the servers")
	foWrite       = flag.String("failover-write", "set", "-failover: the write of the 80/20 load: set (idempotent) or incr (must not be repeated)")
	verbose       = flag.Bool("v", false, "log redistest's and go-redis' messages")

	pgBench      = flag.Bool("pg", false, "PostgreSQL comparison instead: tendril vs pgxpool vs database/sql+pgx on a local PostgreSQL 15 (SELECT $1::int and 100-statement batches)")
	pgGoroutines = flag.String("pg-goroutines", "1,16,64", "-pg: comma-separated concurrency levels (each client gets as many connections)")

	chaos            = flag.Bool("chaos", false, "chaos run instead of throughput: tendril under a checked GET/SET load while random nodes are killed, restarted, stopped and continued")
	chaosDuration    = flag.Duration("chaos-duration", 60*time.Second, "-chaos: length of the run")
	chaosGoroutines  = flag.Int("chaos-goroutines", 64, "-chaos: goroutines of the load")
	chaosNodeTimeout = flag.Duration("chaos-node-timeout", 2*time.Second, "-chaos: cluster-node-timeout of the servers")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run . [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *short {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { *rounds = 1 })
		def("duration", func() { *duration = 200 * time.Millisecond })
		def("warmup", func() { *warmupFlag = 50 * time.Millisecond })
		def("goroutines", func() { *goroutinesF = "1,16" })
		def("workloads", func() { *workloadsF = "get" })
		def("pg-goroutines", func() { *pgGoroutines = "1,16" })
		def("scale-nodes", func() { *scaleNodesF = "6,60" })
		def("scale-tends", func() { *scaleTends = 3 })
		def("scale-rounds", func() { *scaleRounds = 1 })
	}

	// Cleanups (killing redis-server processes, removing temp dirs) run on
	// every way out: normal end, fatal error, signal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		log.Printf("%v: cleaning up", s)
		cleanupAll()
		os.Exit(130)
	}()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				cleanupAll()
				var f fatal
				if e, ok := r.(fatal); ok {
					f = e
				} else {
					panic(r)
				}
				log.Printf("fatal: %s", f.msg)
				code = 1
			}
		}()
		var err error
		switch {
		case *scale:
			err = runScale()
		case *pgBench:
			err = runPG()
		case *valueSizes != "":
			err = runSizes()
		case *chaos:
			err = runChaos()
		case *failover:
			err = runFailoverBench()
		default:
			err = runThroughput()
		}
		cleanupAll()
		if err != nil {
			log.Printf("error: %v", err)
			code = 1
		}
	}()
	os.Exit(code)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad goroutine count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func selectedClients() ([]clientSpec, error) {
	var out []clientSpec
	for _, name := range strings.Split(*clientsF, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(clientSpecs, func(c clientSpec) bool { return c.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown client %q (have tendril, go-redis, rueidis)", name)
		}
		out = append(out, clientSpecs[i])
	}
	return out, nil
}

func selectedWorkloads() ([]workload, error) {
	var out []workload
	for _, name := range strings.Split(*workloadsF, ",") {
		w := workload(strings.TrimSpace(name))
		if !slices.Contains(allWorkloads, w) {
			return nil, fmt.Errorf("unknown workload %q (have get, set, mix, batch)", name)
		}
		out = append(out, w)
	}
	return out, nil
}

// startCluster starts a local 3+3 cluster owned by a new TB; done() on the
// TB kills it.
func startCluster(name string, opts ...redistest.Option) (*runTB, *redistest.Cluster) {
	tb := newTB(name)
	t0 := time.Now()
	c := redistest.StartCluster(tb, 3, 1, opts...)
	log.Printf("%s: local cluster of 3 primaries + 3 replicas up in %s: %s", name,
		time.Since(t0).Round(time.Millisecond), strings.Join(c.Seeds(), ","))
	return tb, c
}

func runThroughput() error {
	_, err := throughput()
	return err
}

// throughput runs the side-by-side comparison of the flags and writes its
// report; it fails when any client failed an operation.
func throughput() (*report, error) {
	gs, err := parseInts(*goroutinesF)
	if err != nil {
		return nil, err
	}
	specs, err := selectedClients()
	if err != nil {
		return nil, err
	}
	wls, err := selectedWorkloads()
	if err != nil {
		return nil, err
	}
	if *rounds < 1 || *numKeys < 1 || *valueSize < 0 || *batchSize < 1 {
		return nil, errors.New("-rounds, -keys and -batch-size must be >= 1, -value-size >= 0")
	}
	ctx := context.Background()

	var tg target
	var serverVersion string
	if *dsn != "" {
		if tg, err = parseDSN(*dsn); err != nil {
			return nil, err
		}
		serverVersion = "(external cluster, see -dsn)"
	} else {
		tb, c := startCluster("cluster")
		defer tb.done()
		tg = target{seeds: c.Seeds()}
		serverVersion = redisVersion(c.Nodes[0])
		serverCPU = procsCPU(func() (pids []int) {
			for _, s := range c.Nodes {
				pids = append(pids, s.PID())
			}
			return pids
		})
		defer func() { serverCPU = func() time.Duration { return 0 } }()
	}
	ks := newKeyspace(*numKeys, *valueSize)
	t0 := time.Now()
	if err := loadKeys(ctx, tg, ks.keys, ks.val); err != nil {
		return nil, err
	}
	log.Printf("loaded %d keys of %d bytes in %s", len(ks.keys), len(ks.val), time.Since(t0).Round(time.Millisecond))

	clients := make([]client, len(specs))
	for i, s := range specs {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := s.open(octx, tg)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", s.name, err)
		}
		defer c.close()
		clients[i] = c
	}

	ws := make([]*worker, slices.Max(gs))
	for i := range ws {
		ws[i] = &worker{}
	}
	// results[workload][goroutines][client] = one result per round
	res := map[workload]map[int][][]pointResult{}
	for _, wl := range wls {
		res[wl] = map[int][][]pointResult{}
		for _, g := range gs {
			res[wl][g] = make([][]pointResult, len(specs))
		}
	}
	npoints := *rounds * len(wls) * len(gs) * len(specs)
	log.Printf("%d points of %s (+%s warmup): about %s", npoints, *duration, *warmupFlag,
		(time.Duration(npoints) * (*duration + *warmupFlag + 100*time.Millisecond)).Round(time.Second))
	start := time.Now()
	point := 0
	for r := range *rounds {
		for _, wl := range wls {
			for _, g := range gs {
				// Round-robin: every client runs this point before the
				// next point starts; the first client rotates so that no
				// client always goes first.
				for k := range specs {
					ci := (k + point) % len(specs)
					pr := runPoint(clients[ci], wl, g, *warmupFlag, *duration, ws, ks)
					res[wl][g][ci] = append(res[wl][g][ci], pr)
					msg := ""
					if d := pr.srvPerOp(); d > 0 {
						msg = fmt.Sprintf("  srv %5.1fµs/op", d.Seconds()*1e6)
					}
					if pr.errs > 0 {
						msg += fmt.Sprintf(" errors %d (first: %v)", pr.errs, pr.firstErr)
					}
					log.Printf("round %d/%d %-5s g=%-4d %-8s %10.0f ops/s  p50 %8s  p99 %8s  p999 %8s  %6.1f allocs/op%s",
						r+1, *rounds, wl, g, specs[ci].name, pr.opsPerSec(), fmtDur(pr.h.quantile(0.5)),
						fmtDur(pr.h.quantile(0.99)), fmtDur(pr.h.quantile(0.999)), pr.allocsPerOp(), msg)
				}
				point++
			}
		}
	}
	rep := report{
		specs: specs, wls: wls, gs: gs, res: res,
		seeds: tg.seeds, serverVersion: serverVersion, took: time.Since(start),
	}
	md := rep.markdown()
	fmt.Print(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			return nil, err
		}
		log.Printf("wrote %s", *out)
	}
	var errs uint64
	for _, wl := range wls {
		for _, g := range gs {
			for _, rs := range res[wl][g] {
				for _, r := range rs {
					errs += r.errs
				}
			}
		}
	}
	if errs > 0 {
		// A figure from a client that failed operations is not a figure.
		return &rep, fmt.Errorf("%d operations failed (see the errors column of %s)", errs, *out)
	}
	for _, wl := range wls {
		for _, g := range gs {
			for ci, rs := range res[wl][g] {
				for _, r := range rs {
					if r.ops == 0 {
						return &rep, fmt.Errorf("%s %s g=%d: no successful operation (first error: %v)", specs[ci].name, wl, g, r.firstErr)
					}
				}
			}
		}
	}
	return &rep, nil
}

func redisVersion(s *redistest.Server) string {
	text, err := s.Do("INFO", "server")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return "Redis " + v
		}
	}
	return "?"
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}

// runSizes is the value-size sweep: a throughput run per size, and a
// table of tendril's ratios and of every client's bytes allocated per
// operation against the value's size.
func runSizes() error {
	sizes, err := parseInts(*valueSizes)
	if err != nil {
		return err
	}
	if !isFlagSet("workloads") {
		*workloadsF = "get,set"
	}
	if !isFlagSet("goroutines") {
		*goroutinesF = "8"
	}
	if !isFlagSet("keys") {
		*numKeys = 100 // 100 keys of 1 MB is 100 MB per node set
	}
	base := strings.TrimSuffix(*out, ".md")
	if !isFlagSet("out") {
		base = "sizes"
	}
	write := base != "" // -out "": print only, as for the other runs
	var b strings.Builder
	b.WriteString("# Value sizes: tendril vs go-redis vs rueidis\n\n")
	fmt.Fprintf(&b, "%s Command: `cd bench && %s`. Per size, a throughput run (its full report in %s-SIZE.md): "+
		"%d round(s) of %s, medians; in brackets the lowest and highest ratio within one round; "+
		"KB/op is the process's allocation per operation (TotalAlloc delta), against the value's size; "+
		"srv µs/op the CPU time the local servers (all six) spent per operation, from /proc.\n\n",
		machineLine(), commandLine(), base, *rounds, *duration)
	var reps []*report
	for _, size := range sizes {
		*valueSize = size
		if write {
			*out = fmt.Sprintf("%s-%d.md", base, size)
		}
		log.Printf("value size %d bytes", size)
		rep, err := throughput()
		if err != nil {
			return fmt.Errorf("value size %d: %w", size, err)
		}
		reps = append(reps, rep)
	}
	rep := reps[0]
	b.WriteString("| value | workload | goroutines |")
	for _, s := range rep.specs {
		fmt.Fprintf(&b, " %s ops/s | KB/op | srv µs/op |", s.name)
	}
	b.WriteString(" tendril ÷ go-redis | tendril ÷ rueidis |\n|---:|---|---:|")
	for range rep.specs {
		b.WriteString("---:|---:|---:|")
	}
	b.WriteString("---:|---:|\n")
	for k, r := range reps {
		for _, wl := range r.wls {
			for _, g := range r.gs {
				fmt.Fprintf(&b, "| %s | %s | %d |", fmtSize(sizes[k]), wl, g)
				ops := map[string][]pointResult{}
				for i, s := range r.specs {
					rs := r.res[wl][g][i]
					ops[s.name] = rs
					var kb, srv []float64
					for _, x := range rs {
						kb = append(kb, x.bytesPerOp()/1024)
						srv = append(srv, x.srvPerOp().Seconds()*1e6)
					}
					fmt.Fprintf(&b, " %s | %.1f | %s |", fmtRate(summarize(rs).ops), median(kb), fmtSrv(median(srv)))
				}
				for _, peer := range []string{"go-redis", "rueidis"} {
					if ops[peer] == nil || ops["tendril"] == nil {
						b.WriteString(" — |")
						continue
					}
					fmt.Fprintf(&b, " %s%s |", ratio(summarize(ops["tendril"]).ops, summarize(ops[peer]).ops), spread(ops["tendril"], ops[peer]))
				}
				b.WriteString("\n")
			}
		}
	}
	md := b.String()
	fmt.Print(md)
	if !write {
		return nil
	}
	name := base + ".md"
	if err := os.WriteFile(name, []byte(md), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", name)
	return nil
}

// fmtSrv formats the servers' CPU per operation in µs, "—" when it was
// not measured (an external cluster).
func fmtSrv(us float64) string {
	if us <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", us)
}

func fmtSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
