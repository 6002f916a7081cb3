package postgres

import (
	"context"
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
