package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tendril-db/tendril/sqlish"
)

// TestBatch: a 100-statement batch is one round trip once its statements
// are prepared (two the first time: one to prepare them all), its
// results come in order, and a statement that fails reports its error
// while the others run and commit.
func TestBatch(t *testing.T) {
	srv := primary(t)
	var cnt counter
	cnt.hook(t)
	// No tend during the batches: a probe would be a write too.
	db := connect(t, srv.DSN("max_conns_per_node=1", "tend_interval=1h", isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE bt (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	const n, bad = 100, 37
	run := func(round int) int64 {
		var b sqlish.Batch
		for i := range n {
			id := round*1000 + i
			if i == bad {
				id = round*1000 + bad - 1 // a duplicate of the statement before
			}
			if i%10 == 9 {
				b.Queue("SELECT v, $1::int AS i FROM bt WHERE id = $2", i, round*1000+i-1)
				continue
			}
			b.Queue("INSERT INTO bt VALUES ($1, $2)", id, fmt.Sprint("v", id))
		}
		before := cnt.writes.Load()
		br := db.SendBatch(c, &b)
		writes := cnt.writes.Load() - before
		for i := range n {
			switch {
			case i%10 == 9:
				var v string
				var got int
				err := br.QueryRow().Scan(&v, &got)
				want := fmt.Sprint("v", round*1000+i-1)
				if i-1 == bad {
					if !errors.Is(err, sqlish.ErrNoRows) {
						t.Errorf("statement %d: %v, want ErrNoRows (the row of the failed insert)", i, err)
					}
					continue
				}
				if err != nil || v != want || got != i {
					t.Errorf("statement %d: %q %d, %v; want %q %d", i, v, got, err, want, i)
				}
			default:
				res, err := br.Exec()
				if i == bad {
					var se *sqlish.ServerError
					if !errors.As(err, &se) || se.Code != "23505" {
						t.Errorf("statement %d: %v, want its duplicate key error", i, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("statement %d: %v", i, err)
				} else if k, _ := res.RowsAffected(); k != 1 {
					t.Errorf("statement %d: RowsAffected %d", i, k)
				}
			}
		}
		br.Close()
		return writes
	}
	if w := run(1); w != 2 {
		t.Errorf("first batch: %d round trips, want 2 (prepare, run)", w)
	}
	if w := run(2); w != 1 {
		t.Errorf("second batch: %d round trips, want 1", w)
	}
	var rows int
	if err := db.QueryRow(c, "SELECT count(*) FROM bt").Scan(&rows); err != nil || rows != 2*(n-n/10-1) {
		t.Fatalf("%d rows (%v), want %d: the statements after the failed one must run", rows, err, 2*(n-n/10-1))
	}
	t.Logf("%d connections, %d writes in all", cnt.conns.Load(), cnt.writes.Load())

	// A statement that cannot be prepared fails alone; without a cache
	// the batch's statements are prepared under temporary names and
	// closed after it.
	nc := connect(t, srv.DSN("max_conns_per_node=1", "statement_cache_size=0"))
	var b sqlish.Batch
	b.Queue("SELECT $1::int", 1)
	b.Queue("SELEC 2")
	b.Queue("SELECT count(*) FROM pg_prepared_statements")
	br := nc.SendBatch(c, &b)
	var one, prepared int
	if err := br.QueryRow().Scan(&one); err != nil || one != 1 {
		t.Errorf("statement 0: %d, %v", one, err)
	}
	var se *sqlish.ServerError
	if _, err := br.Exec(); !errors.As(err, &se) || se.Code != "42601" {
		t.Errorf("statement 1: %v, want a syntax error", err)
	}
	if err := br.QueryRow().Scan(&prepared); err != nil || prepared != 2 {
		t.Errorf("statement 2: %d prepared statements during the batch, %v", prepared, err)
	}
	if err := nc.QueryRow(c, "SELECT count(*) FROM pg_prepared_statements").Scan(&prepared); err != nil || prepared != 0 {
		t.Errorf("%d prepared statements after the batch, %v", prepared, err)
	}
}
