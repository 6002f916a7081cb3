package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func fakeScale() []*scaleResult {
	var out []*scaleResult
	for i, n := range []int{6, 60, 600, 1000} {
		out = append(out, &scaleResult{
			nodes: n, probes: float64(n),
			cpu:    []time.Duration{time.Duration(n) * 2 * time.Microsecond, time.Duration(n) * 3 * time.Microsecond},
			allocs: []float64{float64(n), float64(n)}, bytes: []float64{1, 2},
			pick: []float64{5, 5.2}, pickHot: []float64{5, 5}, get: []float64{3000 + 100*float64(i), 3100}, getHot: []float64{3000, 3000},
			nodesCall: []float64{1}, mem0: 5000, mem2: 6000,
			fail:    convergence{tends: 1, took: 100 * time.Millisecond, fetches: 2, removed: 3},
			reshard: convergence{tends: 1, took: 100 * time.Millisecond, fetches: 1, moved: 1000},
		})
	}
	return out
}

func TestScaleTargets(t *testing.T) {
	res := fakeScale()
	for _, tg := range scaleTargets(res) {
		if !tg.met {
			t.Errorf("%s: not met on figures that meet it (%s)", tg.what, tg.detail)
		}
	}
	res[2].probes, res[3].fetches, res[1].reshard.tends = 601, 0.5, 3
	res[3].get = []float64{4000, 4000}
	missed := map[string]bool{}
	for _, tg := range scaleTargets(res) {
		if !tg.met {
			missed[tg.what] = tg.counted
		}
	}
	for _, want := range []string{"a stable cluster costs one probe per node per tend", "and no fetch",
		"convergence within two tends after a 1000-slot reshard", "a GET costs the same (±10%) at 6 and 1000 nodes"} {
		if _, ok := missed[want]; !ok {
			t.Errorf("%q not reported missed (missed: %v)", want, missed)
		}
	}
	if missed["a GET costs the same (±10%) at 6 and 1000 nodes"] {
		t.Error("a timed target counted as a count, so -short would fail on the machine's load")
	}
}

// The report has every size's row and the plot is well-formed SVG.
func TestScaleReport(t *testing.T) {
	res := fakeScale()
	md := scaleMarkdown(res, time.Second)
	for _, want := range []string{"| 6 | 6.00 |", "| 1000 | 1000.00 |", "## Convergence", "## Targets", "scale.svg"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, rs := range [][]*scaleResult{res, res[:1], nil} {
		d := xml.NewDecoder(strings.NewReader(scaleSVG(rs)))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%d sizes: the SVG does not parse: %v", len(rs), err)
			}
		}
	}
}
