package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
)

// BenchmarkPG runs every -pg client's select from 16 and 64 goroutines with
// as many connections, and its 100-statement batch from one goroutine, as go test
// benchmarks for profiling. Beside ns/op it reports client-cpu-ns/op: the
// CPU this process (the clients, not the server) spent per operation, a
// figure far steadier than throughput on a machine the server shares.
func BenchmarkPG(b *testing.B) {
	srv := pgtest.StartPrimary(b, pgtest.WithConfig("max_connections = 300"))
	ctx := context.Background()
	for _, g := range []int{16, 64} {
		clients, err := openPGClients(ctx, srv, g)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range clients {
			b.Run(fmt.Sprintf("select%d/%s", g, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(g / runtime.GOMAXPROCS(0))
				var n atomic.Int32
				cpu := clientCPU()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := c.sel(ctx, n.Add(1)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(clientCPU()-cpu)/float64(b.N), "client-cpu-ns/op")
			})
			if c.batch == nil || g != 16 {
				continue
			}
			b.Run("batch100/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := clientCPU()
				var n int32
				for b.Loop() {
					n += 100
					if err := c.batch(ctx, n, 100); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(clientCPU()-cpu)/float64(b.N), "client-cpu-ns/op")
			})
		}
		for _, c := range clients {
			c.close()
		}
	}
}

// clientCPU is the user and system CPU time this process has used.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
