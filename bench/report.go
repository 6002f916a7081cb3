package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

type report struct {
	specs         []clientSpec
	wls           []workload
	gs            []int
	res           map[workload]map[int][][]pointResult
	seeds         []string
	serverVersion string
	took          time.Duration
}

// summary is the median over the rounds of each figure, taken separately.
type summary struct {
	ops, p50, p99, p999, allocs float64
	errs                        uint64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(rs []pointResult) summary {
	var ops, p50, p99, p999, allocs []float64
	var s summary
	for _, r := range rs {
		ops = append(ops, r.opsPerSec())
		p50 = append(p50, float64(r.h.quantile(0.5)))
		p99 = append(p99, float64(r.h.quantile(0.99)))
		p999 = append(p999, float64(r.h.quantile(0.999)))
		allocs = append(allocs, r.allocsPerOp())
		s.errs += r.errs
	}
	s.ops, s.p50, s.p99, s.p999, s.allocs = median(ops), median(p50), median(p99), median(p999), median(allocs)
	return s
}

// spread is the lowest and highest ratio of a's ops/s to b's within one
// round (the clients ran seconds apart): how far the medians' ratio can be
// trusted on a machine whose speed drifts.
func spread(a, b []pointResult) string {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i].opsPerSec() > 0 {
			rs = append(rs, a[i].opsPerSec()/b[i].opsPerSec())
		}
	}
	if len(rs) < 2 {
		return ""
	}
	return fmt.Sprintf(" (%.2f–%.2f)", slices.Min(rs), slices.Max(rs))
}

func fmtRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	default:
		return fmt.Sprintf("%.0f", x)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func flagVisit(f func(name string)) {
	flag.Visit(func(fl *flag.Flag) { f(fl.Name) })
}

// commandLine is how this run was started, to reproduce it.
func commandLine() string {
	args := []string{"go", "run", "."}
	flag.Visit(func(fl *flag.Flag) {
		if fl.Name == "dsn" {
			args = append(args, "-dsn", "redis://...")
			return
		}
		args = append(args, fmt.Sprintf("-%s=%s", fl.Name, fl.Value.String()))
	})
	return strings.Join(args, " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(out))
}

func machineLine() string {
	return fmt.Sprintf("Machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s; clients and servers on the same machine.",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), kernel(), runtime.Version())
}

func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return "local checkout " + gitDescribe(d.Replace.Path)
			}
			return d.Version
		}
	}
	return "?"
}

func configText() string {
	return fmt.Sprintf("tendril (%s) with `%s` (else defaults); go-redis %s ClusterClient with defaults "+
		"(MaxRedirects 3, backoff 10ms..1s, 5s timeouts) and PoolSize %d per node; rueidis %s with defaults "+
		"(cluster client, auto-pipelining).",
		depVersion("github.com/tendril-db/tendril"), tendrilOptions, depVersion("github.com/redis/go-redis/v9"),
		goredisPoolSize, depVersion("github.com/redis/rueidis"))
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("# tendril vs go-redis vs rueidis on one Redis Cluster\n\n")
	fmt.Fprintf(&b, "%s %s, cluster: ", machineLine(), r.serverVersion)
	if *dsn != "" {
		fmt.Fprintf(&b, "external (%d seeds).\n\n", len(r.seeds))
	} else {
		b.WriteString("local, 3 primaries + 3 replicas started by internal/redistest.\n\n")
	}
	fmt.Fprintf(&b, "Command: `cd bench && %s` (took %s, %s).\n\n", commandLine(), r.took.Round(time.Second),
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Each point (workload × goroutines) ran every client in turn (round-robin, first client rotating), "+
		"%d round(s) of %s after %s of warmup; the figures are the medians over the rounds. "+
		"%d keys of %d bytes, keys picked uniformly at random (the same sequence for every client). "+
		"ops/s counts successful operations (a batch of %d GETs is one op); p50/p99/p999 are per operation "+
		"(log-linear histogram, ~3 %% precision); allocs/op is the process's Mallocs delta divided by ops, "+
		"so it includes the client's background work and the harness's own allocations (none per op: buffers are reused, the same for every client). "+
		"The ratio columns are tendril's ops/s divided by the peer's.\n\n",
		*rounds, *duration, *warmupFlag, *numKeys, *valueSize, *batchSize)
	b.WriteString("Workloads: ")
	for i, wl := range r.wls {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "`%s` = %s", wl, wl.describe())
	}
	b.WriteString(".\n\n")
	b.WriteString("Clients: " + configText() + "\n\n")

	// Ratios first: the headline.
	tendril := slices.IndexFunc(r.specs, func(c clientSpec) bool { return c.name == "tendril" })
	if tendril >= 0 && len(r.specs) > 1 {
		b.WriteString("## tendril ÷ peer, ops/s\n\nMedian ratio; in brackets the lowest and highest ratio within one round.\n\n| workload | goroutines |")
		for i, s := range r.specs {
			if i != tendril {
				fmt.Fprintf(&b, " vs %s |", s.name)
			}
		}
		b.WriteString("\n|---|---:|")
		for range len(r.specs) - 1 {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, wl := range r.wls {
			for _, g := range r.gs {
				t := summarize(r.res[wl][g][tendril])
				fmt.Fprintf(&b, "| %s | %d |", wl, g)
				for i := range r.specs {
					if i != tendril {
						fmt.Fprintf(&b, " %s%s |", ratio(t.ops, summarize(r.res[wl][g][i]).ops), spread(r.res[wl][g][tendril], r.res[wl][g][i]))
					}
				}
				b.WriteString("\n")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("## All figures\n\n")
	b.WriteString("| workload | goroutines | client | ops/s | p50 | p99 | p999 | allocs/op | errors | tendril ÷ client |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, wl := range r.wls {
		for _, g := range r.gs {
			var t summary
			if tendril >= 0 {
				t = summarize(r.res[wl][g][tendril])
			}
			for i, s := range r.specs {
				x := summarize(r.res[wl][g][i])
				rat := "—"
				if tendril >= 0 && i != tendril {
					rat = ratio(t.ops, x.ops)
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %.1f | %d | %s |\n", wl, g, s.name, fmtRate(x.ops),
					fmtDur(time.Duration(x.p50)), fmtDur(time.Duration(x.p99)), fmtDur(time.Duration(x.p999)), x.allocs, x.errs, rat)
			}
		}
	}
	return b.String()
}

// gitDescribe names the commit of the checkout at dir (relative to the
// bench directory), with "+changes" when the work tree differs from it.
func gitDescribe(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return dir
	}
	s := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += "+changes"
	}
	return s
}
