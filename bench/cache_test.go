package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// BenchmarkCached compares reads served by a client-side cache: tendril's
// (cache_size, sqlish.WithCache) and rueidis' (DoCache), both assisted by
// the server's CLIENT TRACKING, on a 3-primary + 3-replica cluster over
// 1000 keys that every read finds cached after the first pass (the
// "uncached" runs are the same clients reading from the server). go-redis
// has no client-side cache.
func BenchmarkCached(b *testing.B) {
	c := redistest.StartCluster(b, 3, 1)
	tg := target{seeds: c.Seeds()}
	ctx := context.Background()
	ks := newKeyspace(1000, 64)
	db, err := sqlish.Connect(ctx, "redis", tendrilDSN(tg)+"&cache_size=67108864")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: tg.seeds})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	for _, k := range ks.keys {
		if _, err := db.Exec(ctx, "SET ? ?", k, ks.val); err != nil {
			b.Fatal(err)
		}
	}
	cached := sqlish.WithCache(ctx, time.Hour)
	reads := map[string]func(key string) error{
		"tendril": func(key string) error {
			var v []byte
			return db.QueryRow(cached, "GET ?", key).Scan(&v)
		},
		"tendril-uncached": func(key string) error {
			var v []byte
			return db.QueryRow(ctx, "GET ?", key).Scan(&v)
		},
		"rueidis": func(key string) error {
			_, err := rc.DoCache(ctx, rc.B().Get().Key(key).Cache(), time.Hour).AsBytes()
			return err
		},
		"rueidis-uncached": func(key string) error {
			_, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
			return err
		},
	}
	for _, name := range []string{"tendril", "rueidis", "tendril-uncached", "rueidis-uncached"} {
		read := reads[name]
		for _, k := range ks.keys { // fill the cache
			if err := read(k); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("serial/"+name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i = (i + 7) % len(ks.keys)
				if err := read(ks.keys[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i = (i + 7) % len(ks.keys)
					if err := read(ks.keys[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
