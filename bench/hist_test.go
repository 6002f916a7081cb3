package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsMonotonicAndPrecise(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<20 + 1, 1 << 40, math.MaxUint64} {
		b := bucketOf(v)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d (previous %d, %d buckets)", v, b, prev, histBuckets)
		}
		prev = b
		if v < 1<<62 {
			got := bucketValue(b)
			if diff := math.Abs(float64(got) - float64(v)); diff > float64(v)/subCount+1 {
				t.Fatalf("bucketValue(bucketOf(%d)) = %d: off by %.0f", v, got, diff)
			}
		}
	}
}

func TestQuantileAgainstSort(t *testing.T) {
	var h hist
	var vs []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		vs = append(vs, d)
		h.record(d)
	}
	slices.Sort(vs)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vs[int(math.Ceil(q*float64(len(vs))))-1]
		got := h.quantile(q)
		if math.Abs(float64(got-want)) > float64(want)/subCount+1 {
			t.Errorf("quantile(%v) = %v, exact %v", q, got, want)
		}
	}
	var m hist
	m.merge(&h)
	m.merge(&h)
	if m.n != 2*h.n || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge: n %d, p50 %v; want %d, %v", m.n, m.quantile(0.5), 2*h.n, h.quantile(0.5))
	}
}
