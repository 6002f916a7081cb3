package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// scaleMarkdown renders the scale run: the figures per size, then each
// target of issue 14 item 5 with whether this run met it.
func scaleMarkdown(res []*scaleResult, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tendril at scale: the memory backend's simulated cluster\n\n%s\n\n", machineLine())
	fmt.Fprintf(&b, "`%s` (%s). Each size is a memory cluster of N nodes, half primaries and half replicas "+
		"(`memory://scale-N?nodes=N/2&replicas=1`), %d round(s); a figure with a range is the median (lowest–highest round). "+
		"The simulated servers run in this process: their side of each probe is in the CPU and allocation figures.\n\n",
		commandLine(), took.Round(time.Second), *scaleRounds)

	fmt.Fprintf(&b, "## Cost\n\n")
	fmt.Fprintf(&b, "Per tend of a stable cluster (%d tends a round, back to back: a tender asked to refresh, without cooldown, as soon as "+
		"a tend ends, so that idle time between tends is not counted): probes and fetches from the tender's "+
		"counters; CPU = process CPU (getrusage) ÷ tends; allocations from runtime.MemStats. Pick = `Snapshot.Pick` of a keyed "+
		"read or write; GET = `db.QueryRow(ctx, \"GET ?\", key).Scan(&v)` over 10000 keys on every slot; the same on one slot and one "+
		"key (what routing costs when the operations do not spread over the whole cluster's memory); all in process CPU "+
		"per operation, the sizes interleaved round by round. db.Nodes() = one call, CPU µs. Memory = live heap + goroutine stacks per node of a DB once the "+
		"whole cluster is in its table and its pools at their minimum (tend_interval %s).\n\n", *scaleTends, *scaleTend)
	b.WriteString("| nodes | probes/tend | fetches/tend | CPU/tend | CPU/tend/node | allocs/tend | allocs/tend/node | KiB/tend | Pick ns | Pick, one slot | GET ns | GET, one key | GET allocs | db.Nodes() µs | memory/node, min_conns 0 | min_conns 2 |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res {
		cpuNode := make([]float64, len(r.cpu))
		for i, c := range r.cpu {
			cpuNode[i] = float64(c) / float64(r.nodes) / 1e3
		}
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %s | %s µs | %.0f | %.1f | %.0f | %s | %s | %s | %s | %.1f | %s | %s | %s |\n",
			r.nodes, r.probes, r.fetches, fmtDurs(r.cpu), fmtRange(cpuNode, "%.2f"),
			median(r.allocs), median(r.allocs)/float64(r.nodes), median(r.bytes)/1024,
			fmtRange(r.pick, "%.1f"), fmtRange(r.pickHot, "%.1f"), fmtRange(r.get, "%.0f"), fmtRange(r.getHot, "%.0f"),
			r.getAllocs, fmtRange(r.nodesCall, "%.0f"), fmtBytes(r.mem0), fmtBytes(r.mem2))
	}

	fmt.Fprintf(&b, "\n## Convergence\n\n")
	fmt.Fprintf(&b, "10%% of the nodes fail at once (every other one a primary, its replica promoted at the same moment, as the "+
		"cluster's failover would), right after a tend ended: converged when the failed nodes are down or gone from the table "+
		"and every slot's primary is the one the cluster has, healthy. Reshard: 1000 slots spread over the slot space each "+
		"move to the next shard, right after a tend ended: converged when the client's map gives every slot the cluster's "+
		"primary. The tender tends every %s. Tends = tends started after the change up to the one that converged; ms = from the change to the end of "+
		"that tend (about one tend_interval plus the tend). Removed = tends until the failed nodes left the table (after "+
		"3 failed probes in a row, by design).\n\n", *scaleTend)
	b.WriteString("| nodes | failed | converged: tends | ms | fetches | removed: tends | slots moved | converged: tends | ms | fetches |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res {
		fmt.Fprintf(&b, "| %d | %d | %d | %.0f | %d | %d | %d | %d | %.0f | %d |\n",
			r.nodes, max(1, (r.nodes+5)/10), r.fail.tends, ms(r.fail.took), r.fail.fetches, r.fail.removed,
			r.reshard.moved, r.reshard.tends, ms(r.reshard.took), r.reshard.fetches)
	}

	b.WriteString("\n## Targets\n\n")
	for _, t := range scaleTargets(res) {
		mark := "met"
		if !t.met {
			mark = "**not met**"
		}
		fmt.Fprintf(&b, "- %s: %s — %s\n", t.what, mark, t.detail)
	}
	b.WriteString("\n![cost per tend and per operation vs nodes](scale.svg)\n")
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

type scaleTarget struct {
	what    string
	met     bool
	detail  string
	counted bool // a target on counts (probes, fetches, tends), not on time
}

// scaleTargets checks this run's figures against issue 14 item 5's
// targets. Linear CPU: the CPU per node of a tend at the largest size is
// at most 1.5 times that at the smallest size (the small sizes carry the
// tend's fixed cost, so a linear cost shows as a falling or flat figure).
// Same cost: the largest size's median within ±10% of the smallest's.
func scaleTargets(res []*scaleResult) []scaleTarget {
	var out []scaleTarget
	var probes, fetches []string
	probesOK, fetchesOK := true, true
	for _, r := range res {
		probes = append(probes, fmt.Sprintf("%.2f at %d", r.probes/float64(r.nodes), r.nodes))
		fetches = append(fetches, fmt.Sprintf("%.2f at %d", r.fetches, r.nodes))
		probesOK = probesOK && r.probes == float64(r.nodes)
		fetchesOK = fetchesOK && r.fetches == 0
	}
	out = append(out, scaleTarget{"a stable cluster costs one probe per node per tend", probesOK, "probes per node per tend: " + strings.Join(probes, ", "), true})
	out = append(out, scaleTarget{"and no fetch", fetchesOK, "fetches per tend: " + strings.Join(fetches, ", "), true})
	if len(res) < 2 {
		return out
	}
	lo, hi := res[0], res[len(res)-1]
	perNode := func(r *scaleResult) float64 { return durMedian(r.cpu) / float64(r.nodes) }
	g := perNode(hi) / perNode(lo)
	out = append(out, scaleTarget{"CPU per tend linear in nodes", g <= 1.5,
		fmt.Sprintf("CPU per node per tend %.2f µs at %d nodes, %.2f µs at %d (×%.2f); allocations per node per tend %.1f and %.1f",
			perNode(lo)/1e3, lo.nodes, perNode(hi)/1e3, hi.nodes, g, median(lo.allocs)/float64(lo.nodes), median(hi.allocs)/float64(hi.nodes)), false})
	// Per-operation costs are judged on each size's best round: load from
	// elsewhere on the machine only ever adds to a round's cost, so the
	// best round is the nearest to what the operation costs; the medians
	// and the per-round ratios say how much the load moved them.
	same := func(what string, f func(*scaleResult) []float64) {
		if len(f(lo)) == 0 || len(f(hi)) == 0 {
			return
		}
		a, z := slices.Min(f(lo)), slices.Min(f(hi))
		var per []float64
		for i := range min(len(f(lo)), len(f(hi))) {
			per = append(per, f(hi)[i]/f(lo)[i])
		}
		q := z / a
		detail := fmt.Sprintf("best round %.1f ns at %d nodes, %.1f ns at %d: ×%.2f; medians %.1f and %.1f ns: ×%.2f",
			a, lo.nodes, z, hi.nodes, q, median(f(lo)), median(f(hi)), median(f(hi))/median(f(lo)))
		if len(per) > 1 {
			detail += fmt.Sprintf("; per round ×%.2f–×%.2f", slices.Min(per), slices.Max(per))
		}
		out = append(out, scaleTarget{what, math.Abs(q-1) <= 0.10, detail, false})
	}
	same(fmt.Sprintf("Pick costs the same (±10%%) at %d and %d nodes", lo.nodes, hi.nodes), func(r *scaleResult) []float64 { return r.pick })
	same(fmt.Sprintf("a GET costs the same (±10%%) at %d and %d nodes", lo.nodes, hi.nodes), func(r *scaleResult) []float64 { return r.get })
	same(fmt.Sprintf("a GET of one key costs the same (±10%%) at %d and %d nodes", lo.nodes, hi.nodes), func(r *scaleResult) []float64 { return r.getHot })
	var fail, resh []string
	failOK, reshOK := true, true
	for _, r := range res {
		fail = append(fail, fmt.Sprintf("%d at %d", r.fail.tends, r.nodes))
		resh = append(resh, fmt.Sprintf("%d at %d", r.reshard.tends, r.nodes))
		failOK = failOK && r.fail.tends <= 2
		reshOK = reshOK && r.reshard.tends <= 2
	}
	out = append(out, scaleTarget{"convergence within two tends after 10% of the nodes fail", failOK, "tends: " + strings.Join(fail, ", "), true})
	out = append(out, scaleTarget{"convergence within two tends after a 1000-slot reshard", reshOK, "tends: " + strings.Join(resh, ", "), true})
	return out
}

// scaleSVG draws two panels over the node count (log scale): the CPU and
// the allocations of one tend (log scale, with a line of slope 1 through
// the smallest size: linear cost follows it), and the CPU of Pick and of a
// GET per operation in each size's best round, relative to the smallest
// size (flat within the ±10% band is the target). Hand-written SVG, so the harness needs no plotting
// dependency.
func scaleSVG(res []*scaleResult) string {
	const (
		w, h             = 960, 380
		pw, ph           = 340, 250 // plot area of a panel
		left1, left2, tp = 80, 530, 60
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	if len(res) == 0 {
		b.WriteString("</svg>\n")
		return b.String()
	}
	nodes := make([]float64, len(res))
	for i, r := range res {
		nodes[i] = float64(r.nodes)
	}
	xlo, xhi := logBounds(slices.Min(nodes), slices.Max(nodes))
	xAt := func(left float64, n float64) float64 {
		return left + pw*(math.Log10(n)-xlo)/(xhi-xlo)
	}

	// Panel 1: cost per tend, log-log.
	cpu := make([]float64, len(res)) // µs
	allocs := make([]float64, len(res))
	for i, r := range res {
		cpu[i] = durMedian(r.cpu) / 1e3
		allocs[i] = median(r.allocs)
	}
	all := slices.Concat(cpu, allocs)
	ylo, yhi := logBounds(math.Max(slices.Min(all), 1), math.Max(slices.Max(all), 10))
	yAt1 := func(v float64) float64 { return tp + ph - ph*(math.Log10(math.Max(v, 1e-9))-ylo)/(yhi-ylo) }
	panel(&b, left1, tp, pw, ph, "Cost of one tend (stable cluster)", "nodes", "per tend (log)")
	for e := xlo; e <= xhi+1e-9; e++ {
		x := xAt(left1, math.Pow(10, e))
		tick(&b, x, tp+ph, fmt.Sprintf("%g", math.Pow(10, e)), true)
	}
	for e := ylo; e <= yhi+1e-9; e++ {
		tick(&b, left1, yAt1(math.Pow(10, e)), fmt.Sprintf("%g", math.Pow(10, e)), false)
	}
	// The reference: linear growth from the smallest size's CPU.
	ref := func(n float64) float64 { return cpu[0] * n / nodes[0] }
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 3"/>`+"\n",
		xAt(left1, nodes[0]), yAt1(ref(nodes[0])), xAt(left1, nodes[len(nodes)-1]), yAt1(ref(nodes[len(nodes)-1])))
	series(&b, nodes, cpu, func(n float64) float64 { return xAt(left1, n) }, yAt1, "#d62728", "%.0f")
	series(&b, nodes, allocs, func(n float64) float64 { return xAt(left1, n) }, yAt1, "#1f77b4", "%.0f")
	legend(&b, left1+10, tp+12, [][2]string{{"#d62728", "CPU µs per tend"}, {"#1f77b4", "allocations per tend"}, {"#999", "linear in nodes (from the smallest)"}})

	// Panel 2: Pick and GET per operation, relative to the smallest size,
	// with the ±10% band of the target; the points say the absolute cost.
	ops := []struct {
		color, name string
		f           func(*scaleResult) []float64
	}{
		{"#2ca02c", "GET, keys on every slot", func(r *scaleResult) []float64 { return r.get }},
		{"#17becf", "GET, one key", func(r *scaleResult) []float64 { return r.getHot }},
		{"#9467bd", "Snapshot.Pick, every slot", func(r *scaleResult) []float64 { return r.pick }},
	}
	rel := make([][]float64, len(ops))
	lo2, hi2 := 0.8, 1.3
	best := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return slices.Min(xs)
	}
	for i, o := range ops {
		base := best(o.f(res[0]))
		for _, r := range res {
			q := 1.0
			if base > 0 {
				q = best(o.f(r)) / base
			}
			rel[i] = append(rel[i], q)
			lo2, hi2 = math.Min(lo2, q-0.05), math.Max(hi2, q+0.05)
		}
	}
	lo2, hi2 = math.Floor(lo2*10)/10, math.Ceil(hi2*10)/10
	yAt2 := func(v float64) float64 { return tp + ph - ph*(v-lo2)/(hi2-lo2) }
	panel(&b, left2, tp, pw, ph, "Cost of one operation (best round)", "nodes", fmt.Sprintf("CPU per op ÷ at %d nodes", res[0].nodes))
	fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#eee"/>`+"\n", left2, yAt2(1.1), pw, yAt2(0.9)-yAt2(1.1))
	for e := xlo; e <= xhi+1e-9; e++ {
		tick(&b, xAt(left2, math.Pow(10, e)), tp+ph, fmt.Sprintf("%g", math.Pow(10, e)), true)
	}
	for v := lo2; v <= hi2+1e-9; v += 0.1 {
		tick(&b, left2, yAt2(v), fmt.Sprintf("%.1f", v), false)
	}
	var items [][2]string
	for i, o := range ops {
		abs := make([]float64, len(res))
		for j, r := range res {
			abs[j] = best(o.f(r))
		}
		f := "%.0f ns"
		if slices.Max(abs) < 100 {
			f = "%.1f ns"
		}
		// Labels of the series one under the other: the points start
		// together at 1.0.
		seriesLabeled(&b, nodes, rel[i], abs, func(n float64) float64 { return xAt(left2, n) }, yAt2, o.color, f, float64(16+12*i))
		items = append(items, [2]string{o.color, o.name})
	}
	items = append(items, [2]string{"#ccc", "±10% (the target)"})
	legend(&b, left2+10, tp+12, items)
	b.WriteString("</svg>\n")
	return b.String()
}

// logBounds returns whole decades around lo..hi, as base-10 exponents.
func logBounds(lo, hi float64) (float64, float64) {
	a, z := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if z <= a {
		z = a + 1
	}
	return a, z
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func panel(b *strings.Builder, x, y, w, h float64, title, xlabel, ylabel string) {
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", x, y, w, h)
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", x+w/2, y-20, title)
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x+w/2, y+h+36, xlabel)
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" transform="rotate(-90 %.0f %.0f)">%s</text>`+"\n", x-55, y+h/2, x-55, y+h/2, ylabel)
}

func tick(b *strings.Builder, x, y float64, label string, xAxis bool) {
	if xAxis {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, y, x, y+5, x, y+18, label)
		return
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x-5, y, x, y, x-8, y+4, label)
}

func series(b *strings.Builder, xs, ys []float64, xAt, yAt func(float64) float64, color, f string) {
	seriesLabeled(b, xs, ys, ys, xAt, yAt, color, f, -6)
}

// seriesLabeled draws ys over xs and labels each point with its value in
// labels, dy above (below, when positive) the point.
func seriesLabeled(b *strings.Builder, xs, ys, labels []float64, xAt, yAt func(float64) float64, color, f string, dy float64) {
	pts := make([]string, len(xs))
	for i := range xs {
		pts[i] = fmt.Sprintf("%.1f,%.1f", xAt(xs[i]), yAt(ys[i]))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
	for i := range xs {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/><text x="%.1f" y="%.1f" font-size="10" fill="%s">`+f+`</text>`+"\n",
			xAt(xs[i]), yAt(ys[i]), color, xAt(xs[i])+5, yAt(ys[i])+dy, color, labels[i])
	}
}

func legend(b *strings.Builder, x, y float64, items [][2]string) {
	for i, it := range items {
		yy := y + float64(i)*16
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			x, yy, x+18, yy, it[0], x+24, yy+4, it[1])
	}
}
