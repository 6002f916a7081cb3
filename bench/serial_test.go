package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendril-db/tendril/internal/redistest"
)

// BenchmarkSerial runs every client's GET and SET from one goroutine on a
// 3-primary + 3-replica cluster, over 1000 keys on every primary: the
// 1-goroutine point of the harness, as a go test benchmark so that it can
// be profiled (-cpuprofile) and compared with benchstat.
func BenchmarkSerial(b *testing.B) {
	c := redistest.StartCluster(b, 3, 1)
	tg := target{seeds: c.Seeds()}
	ctx := context.Background()
	ks := newKeyspace(1000, 64)
	for _, spec := range clientSpecs {
		cl, err := spec.open(ctx, tg)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.close()
		for _, k := range ks.keys {
			if err := cl.set(ctx, k, ks.val); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("get/"+spec.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i = (i + 7) % len(ks.keys)
				if err := cl.get(ctx, ks.keys[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("set/"+spec.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i = (i + 7) % len(ks.keys)
				if err := cl.set(ctx, ks.keys[i], ks.val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatch runs every client's pipeline of 100 GETs (keys on every
// primary) from 32 goroutines per CPU (SetParallelism(32)), for profiling the batch path;
// client-cpu-ns/op is the CPU the clients' process spent per batch.
func BenchmarkBatch(b *testing.B) {
	c := redistest.StartCluster(b, 3, 0)
	tg := target{seeds: c.Seeds()}
	ctx := context.Background()
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%d", i)
	}
	for _, spec := range clientSpecs {
		cl, err := spec.open(ctx, tg)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.close()
		for _, k := range keys {
			if err := cl.set(ctx, k, []byte("value")); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(spec.name, func(b *testing.B) { batchParallel(b, ctx, cl, keys) })
	}
}

// BenchmarkBatchSize is BenchmarkBatch for tendril and rueidis with
// pipelines of 10, 100 and 1000 GETs, from one goroutine (serial) and from
// 32 per CPU (parallel): how a batch's cost grows with its size.
func BenchmarkBatchSize(b *testing.B) {
	c := redistest.StartCluster(b, 3, 0)
	tg := target{seeds: c.Seeds()}
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%d", i)
	}
	for _, spec := range clientSpecs {
		if spec.name == "go-redis" {
			continue
		}
		cl, err := spec.open(ctx, tg)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.close()
		for _, k := range keys {
			if err := cl.set(ctx, k, []byte("value")); err != nil {
				b.Fatal(err)
			}
		}
		for _, n := range []int{10, 100, 1000} {
			keys := keys[:n]
			b.Run(fmt.Sprintf("size=%d/serial/%s", n, spec.name), func(b *testing.B) {
				b.ReportAllocs()
				cpu := clientCPU()
				for b.Loop() {
					if err := cl.batch(ctx, keys); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(clientCPU()-cpu)/float64(b.N), "client-cpu-ns/op")
			})
			b.Run(fmt.Sprintf("size=%d/parallel/%s", n, spec.name), func(b *testing.B) { batchParallel(b, ctx, cl, keys) })
		}
	}
}

// batchParallel runs cl's pipeline of keys from 32 goroutines per CPU and
// reports the client's CPU per batch.
func batchParallel(b *testing.B, ctx context.Context, cl client, keys []string) {
	b.ReportAllocs()
	b.SetParallelism(32)
	cpu := clientCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := cl.batch(ctx, keys); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(clientCPU()-cpu)/float64(b.N), "client-cpu-ns/op")
}
