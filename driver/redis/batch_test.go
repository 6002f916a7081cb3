package redis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// The results a batch handed out (a Row not scanned yet, Rows not read yet)
// stay as they were after Close, while later batches reuse the memory the
// driver's results were kept in.
func TestBatchResultsOutliveClose(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	for i := range 3 {
		db.Exec(ctx, "SET ? ?", fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	var b sqlish.Batch
	b.Queue("GET k0")
	b.Queue("GET k1")
	br := db.SendBatch(ctx, &b)
	row := br.QueryRow()
	rows, err := br.Query()
	if err != nil {
		t.Fatal(err)
	}
	br.Close()
	for range 20 { // overwrite whatever was pooled
		var b2 sqlish.Batch
		b2.Queue("GET k2")
		b2.Queue("GET k2")
		br2 := db.SendBatch(ctx, &b2)
		var s string
		if err := br2.QueryRow().Scan(&s); err != nil || s != "v2" {
			t.Fatalf("a later batch: %q, %v", s, err)
		}
		br2.Close()
	}
	var s0, s1 string
	if err := row.Scan(&s0); err != nil || s0 != "v0" {
		t.Errorf("a Row scanned after Close: %q, %v; want v0", s0, err)
	}
	if !rows.Next() {
		t.Fatalf("Rows read after Close: no row (%v)", rows.Err())
	}
	if err := rows.Scan(&s1); err != nil || s1 != "v1" {
		t.Errorf("Rows read after Close: %q, %v; want v1", s1, err)
	}
	rows.Close()
}
