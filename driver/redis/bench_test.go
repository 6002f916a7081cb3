package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// BenchmarkGET measures a GET round trip through the whole stack (sqlish,
// routing, pool, multiplexed connection, RESP) on one connection to a
// standalone server.
func BenchmarkGET(b *testing.B) {
	srv := redistest.StartServer(b)
	db, err := sqlish.Connect(context.Background(), "redis", "redis://"+srv.Addr+"?max_conns_per_node=1")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.Exec(ctx, "SET k value-of-sixteen")
	var v []byte
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			var v []byte
			for pb.Next() {
				if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkBatch100 measures SendBatch of 100 GETs read back with
// QueryRow.Scan.
func BenchmarkBatch100(b *testing.B) {
	srv := redistest.StartServer(b)
	ctx := context.Background()
	db, err := sqlish.Connect(ctx, "redis", "redis://"+srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		db.Exec(ctx, "SET ? v", keys[i])
	}
	var v []byte
	b.ReportAllocs()
	for b.Loop() {
		var batch sqlish.Batch
		for _, k := range keys {
			batch.Queue("GET ?", k)
		}
		br := db.SendBatch(ctx, &batch)
		for range keys {
			if err := br.QueryRow().Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
		br.Close()
	}
}

// BenchmarkLargeValue measures SET and GET of values from 1 KB to 1 MB
// through the whole stack, 8 goroutines: B/op against the value's size
// says how often the value is copied on its way.
func BenchmarkLargeValue(b *testing.B) {
	srv := redistest.StartServer(b)
	ctx := context.Background()
	db, err := sqlish.Connect(ctx, "redis", "redis://"+srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, size := range []int{1 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		val := bytes.Repeat([]byte{'v'}, size)
		name := fmt.Sprintf("%dKB", size>>10)
		b.Run("SET/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Exec(ctx, "SET ? ?", name, val); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run("GET/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				var v []byte
				for pb.Next() {
					if err := db.QueryRow(ctx, "GET ?", name).Scan(&v); err != nil || len(v) != size {
						b.Fatalf("GET %s: %d bytes, %v", name, len(v), err)
					}
				}
			})
		})
	}
}

// BenchmarkCachedGET compares a GET served from the client-side cache with
// one from the server (on a DB whose cache is on, and one whose is off),
// through the whole stack, one goroutine, the value scanned into a
// []byte (which a cached value is copied into).
func BenchmarkCachedGET(b *testing.B) {
	srv := redistest.StartServer(b)
	ctx := context.Background()
	for _, c := range []struct{ name, query string }{
		{"uncached", ""},
		{"uncached-cache-on", "&cache_size=1048576"},
		{"cached", "&cache_size=1048576&cache_ttl=1h"},
	} {
		db, err := sqlish.Connect(ctx, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1"+c.query)
		if err != nil {
			b.Fatal(err)
		}
		db.Exec(ctx, "SET k value-of-sixteen")
		var v []byte
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
		db.Close()
	}
}
