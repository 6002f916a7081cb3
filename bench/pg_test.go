package main

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
)

// BenchmarkPG runs every -pg client's select from 16 goroutines with 16
// connections, and its 100-statement batch from one goroutine, as go test
// benchmarks for profiling. Beside ns/op it reports client-cpu-ns/op: the
// CPU this process (the clients, not the server) spent per operation, a
// figure far steadier than throughput on a machine the server shares.
func BenchmarkPG(b *testing.B) {
	srv := pgtest.StartPrimary(b, pgtest.WithConfig("max_connections = 300"))
	ctx := context.Background()
	clients, err := openPGClients(ctx, srv, 16)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range clients {
		defer c.close()
	}
	for _, c := range clients {
		b.Run("select16/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
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
		if c.batch == nil {
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
}

// clientCPU is the user and system CPU time this process has used.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
