package postgres

import (
	"context"
	"runtime"
	"testing"

	"github.com/tendril-db/tendril/sqlish"
)

// BenchmarkSelect is the select point of `bench -pg` through the user API
// on one connection: SELECT $1::int, the result checked.
func BenchmarkSelect(b *testing.B) {
	srv := primary(b)
	db, err := sqlish.Open("postgres", srv.DSN("max_conns_per_node=1"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	var n int32
	for b.Loop() {
		n++
		var got int32
		if err := db.QueryRow(ctx, "SELECT $1::int", n).Scan(&got); err != nil || got != n {
			b.Fatalf("got %d, %v", got, err)
		}
	}
}

// BenchmarkSelectParallel is the select point at 16 goroutines with 16
// connections, for profiles of the client's cost under concurrency.
func BenchmarkSelectParallel(b *testing.B) {
	srv := primary(b)
	db, err := sqlish.Open("postgres", srv.DSN("max_conns_per_node=16", "min_conns_per_node=16"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16 / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		var n int32
		for pb.Next() {
			n++
			var got int32
			if err := db.QueryRow(ctx, "SELECT $1::int", n).Scan(&got); err != nil || got != n {
				b.Errorf("got %d, %v", got, err)
				return
			}
		}
	})
}
