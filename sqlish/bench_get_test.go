package sqlish_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

// BenchmarkGETRoundTrip is a GET round trip on the memory backend through
// the whole stack, opened from a DSN alone: no provider configured, none
// set globally (telemetry's default, and the baseline to compare older
// versions with).
func BenchmarkGETRoundTrip(b *testing.B) {
	ctx := context.Background()
	db, err := sqlish.Connect(ctx, "memory", "memory://bench-get")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		db.Close()
		memory.Lookup("bench-get").Close()
	}()
	if _, err := db.Exec(ctx, "SET k value-of-sixteen"); err != nil {
		b.Fatal(err)
	}
	var v []byte
	b.ReportAllocs()
	for b.Loop() {
		if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGETScale is one GET through the whole stack on memory clusters
// of 6 to 1000 nodes (half primaries, half replicas), over 10000 keys
// spread on every slot: the target is the same cost (±10%) at every size
// (issue 14, item 5).
func BenchmarkGETScale(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{6, 60, 600, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			name := fmt.Sprintf("bench-get-scale-%d", n)
			db, err := sqlish.Connect(ctx, "memory", fmt.Sprintf("memory://%s?nodes=%d&replicas=1", name, n/2))
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				db.Close()
				memory.Lookup(name).Close()
			}()
			keys := make([]string, 10000)
			for i := range keys {
				keys[i] = fmt.Sprintf("key:%05d", i)
				if _, err := db.Exec(ctx, "SET ? ?", keys[i], "value-of-sixteen"); err != nil {
					b.Fatal(err)
				}
			}
			// Every pool has a connection before the clock starts: the
			// first GET on a node would count a dial.
			for _, k := range keys {
				if err := db.QueryRow(ctx, "GET ?", k).Scan(new([]byte)); err != nil {
					b.Fatal(err)
				}
			}
			var v []byte
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i = (i + 7919) % len(keys)
				if err := db.QueryRow(ctx, "GET ?", keys[i]).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
