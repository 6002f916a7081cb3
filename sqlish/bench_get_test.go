package sqlish_test

import (
	"context"
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
