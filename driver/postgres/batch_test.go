package postgres

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tendril-db/tendril/sqlish"
)

// TestBatch: a batch's results come in order, and a statement that fails
// reports its error while the others run and commit.
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
	// The statements are plain DML: they are sent under one Sync first;
	// one fails, so that implicit transaction rolls back and the batch
	// runs again with a Sync per statement.
	if w := run(1); w != 3 {
		t.Errorf("first batch: %d round trips, want 3 (prepare, run grouped, run again)", w)
	}
	if w := run(2); w != 2 {
		t.Errorf("second batch: %d round trips, want 2", w)
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

// TestBatchGrouped: a batch of plain DML outside a transaction is one
// round trip under one Sync, its statements in one implicit transaction
// (they see one now()); a failure, even one the commit finds (a deferred
// constraint), runs the batch again statement by statement, so that each
// statement's outcome is its own; a batch with a statement that changes
// the session, or in a transaction, is never grouped.
func TestBatchGrouped(t *testing.T) {
	srv := primary(t)
	var cnt counter
	cnt.hook(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", "tend_interval=1h", isolated(t, srv)))
	c := ctx(t)
	for _, q := range []string{
		"CREATE TABLE gp (id int PRIMARY KEY)",
		"CREATE TABLE gc (id int PRIMARY KEY, p int REFERENCES gp DEFERRABLE INITIALLY DEFERRED)",
		"INSERT INTO gp VALUES (1)",
	} {
		if _, err := db.Exec(c, q); err != nil {
			t.Fatal(err)
		}
	}
	send := func(b *sqlish.Batch) (*sqlish.BatchResults, int64) {
		before := cnt.writes.Load()
		br := db.SendBatch(c, b)
		return br, cnt.writes.Load() - before
	}
	warm := func(qs ...string) { // prepared, so that a batch is one round trip
		for _, q := range qs {
			var b sqlish.Batch
			b.Queue(q, 0)
			db.SendBatch(c, &b).Close()
		}
	}
	warm("SELECT now(), $1::int", "INSERT INTO gc VALUES ($1, 1)", "INSERT INTO gc VALUES ($1, 2)")
	db.Exec(c, "DELETE FROM gc")

	var b sqlish.Batch
	b.Queue("SELECT now(), $1::int", 1)
	b.Queue("INSERT INTO gc VALUES ($1, 1)", 10)
	b.Queue("SELECT now(), $1::int", 2)
	br, w := send(&b)
	var t1, t2 time.Time
	var i int
	err1 := br.QueryRow().Scan(&t1, &i)
	_, err2 := br.Exec()
	err3 := br.QueryRow().Scan(&t2, &i)
	br.Close()
	if err1 != nil || err2 != nil || err3 != nil || w != 1 || !t1.Equal(t2) {
		t.Errorf("plain batch: %d round trips, now() %v then %v, errors %v %v %v; want one round trip, one transaction",
			w, t1, t2, err1, err2, err3)
	}

	// Results of zero, one and several rows, narrow and wide.
	b = sqlish.Batch{}
	b.Queue("SELECT i, i * 10, -i FROM generate_series(1, $1::int) AS i", 3)
	b.Queue("SELECT i, i * 10, -i FROM generate_series(1, $1::int) AS i", 1)
	b.Queue("SELECT i FROM generate_series(1, $1::int) AS i", 0)
	br = db.SendBatch(c, &b)
	for _, want := range []int{3, 1, 0} {
		rows, err := br.Query()
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for rows.Next() {
			var a, b, c int
			if want == 0 {
				rows.Scan(&a)
			} else if err := rows.Scan(&a, &b, &c); err != nil || b != 10*a || c != -a {
				t.Errorf("row %d %d %d: %v", a, b, c, err)
			}
			got = append(got, a)
		}
		if rows.Close(); len(got) != want || want > 0 && got[want-1] != want {
			t.Errorf("rows %v, want 1..%d", got, want)
		}
	}
	br.Close()

	// 11 breaks the deferred foreign key: the commit fails, which rolls
	// back 12 and 13 too; run again alone, they commit.
	b = sqlish.Batch{}
	b.Queue("INSERT INTO gc VALUES ($1, 1)", 12)
	b.Queue("INSERT INTO gc VALUES ($1, 2)", 11)
	b.Queue("INSERT INTO gc VALUES ($1, 1)", 13)
	br, w = send(&b)
	_, err1 = br.Exec()
	_, err2 = br.Exec()
	_, err3 = br.Exec()
	br.Close()
	var se *sqlish.ServerError
	if err1 != nil || !errors.As(err2, &se) || se.Code != "23503" || err3 != nil || w != 2 {
		t.Errorf("deferred failure: %v / %v / %v in %d round trips; want only the second to fail (23503), in 2", err1, err2, err3, w)
	}
	var ids []int
	rows, err := db.Query(c, "SELECT id FROM gc ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if fmt.Sprint(ids) != "[10 12 13]" {
		t.Errorf("rows %v, want [10 12 13]", ids)
	}

	// A statement other than plain DML (here VACUUM, which refuses to run
	// in a transaction block): a Sync each, as if alone.
	b = sqlish.Batch{}
	b.Queue("SELECT now(), $1::int", 1)
	b.Queue("VACUUM gc")
	b.Queue("SELECT now(), $1::int", 2)
	br = db.SendBatch(c, &b)
	err1 = br.QueryRow().Scan(&t1, &i)
	_, err2 = br.Exec()
	err3 = br.QueryRow().Scan(&t2, &i)
	br.Close()
	if err1 != nil || err2 != nil || err3 != nil || t1.Equal(t2) {
		t.Errorf("a batch with VACUUM: now() %v then %v, errors %v %v %v; want three transactions", t1, t2, err1, err2, err3)
	}
}

// TestBatchStalePlanKeepsOrder: a batch statement whose cached plan went
// stale (SELECT * after an ALTER TABLE, a migration while the application
// runs) is not run again after the statements queued behind it: it read
// the balance after the withdrawal queued after it (40, want 70). Grouped,
// the statement is prepared again before the batch runs statement by
// statement; with a Sync per statement the others ran already, so only
// the last statement is run again, and one before it reports its error
// (the next batch prepares it again).
func TestBatchStalePlanKeepsOrder(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE acct (id int PRIMARY KEY, balance int); INSERT INTO acct VALUES (1, 1000)"+
		"; CREATE PROCEDURE withdraw(n int) LANGUAGE sql AS $$ UPDATE acct SET balance = balance - n WHERE id = 1 $$"); err != nil {
		t.Fatal(err)
	}
	const read = "SELECT * FROM acct WHERE id = $1"
	balance := func() int {
		var b int
		if err := db.QueryRow(c, "SELECT balance FROM acct WHERE id = 1").Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// run sends the batch and returns the balance its read saw.
	run := func(withdraw string, readLast bool) (int, error) {
		var b sqlish.Batch
		if !readLast {
			b.Queue(read, 1)
		}
		b.Queue(withdraw, 30)
		if readLast {
			b.Queue(read, 1)
		}
		br := db.SendBatch(c, &b)
		defer br.Close()
		var rows *sqlish.Rows
		var err error
		if !readLast {
			rows, err = br.Query()
		}
		if _, werr := br.Exec(); werr != nil {
			t.Fatalf("withdrawal: %v", werr)
		}
		if readLast {
			rows, err = br.Query()
		}
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		vals := make([]any, len(rows.Columns()))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if !rows.Next() {
			return 0, fmt.Errorf("no row: %v", rows.Err())
		}
		if err := rows.Scan(ptrs...); err != nil {
			return 0, err
		}
		return int(vals[1].(int64)), nil
	}
	for i, tc := range []struct {
		name, withdraw string
		readLast       bool
	}{
		{"grouped", "UPDATE acct SET balance = balance - $1 WHERE id = 1", false},
		{"a Sync per statement", "CALL withdraw($1)", false},
		{"a Sync per statement, the read last", "CALL withdraw($1)", true},
	} {
		if _, err := run(tc.withdraw, tc.readLast); err != nil { // caches the read
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, err := db.Exec(c, fmt.Sprintf("ALTER TABLE acct ADD COLUMN note%d text", i)); err != nil {
			t.Fatal(err)
		}
		before := balance()
		want := before
		if tc.readLast {
			want -= 30
		}
		got, err := run(tc.withdraw, tc.readLast)
		switch {
		case err == nil && got != want:
			t.Errorf("%s: the batch's read saw balance %d, want %d (the balance %s the withdrawal queued %s it)",
				tc.name, got, want, map[bool]string{false: "before", true: "after"}[tc.readLast], map[bool]string{false: "after", true: "before"}[tc.readLast])
		case err != nil && (tc.name == "grouped" || tc.readLast):
			t.Errorf("%s: the stale read failed: %v; want it prepared again and run", tc.name, err)
		case err != nil:
			var se *sqlish.ServerError
			if !errors.As(err, &se) || se.Code != "0A000" {
				t.Errorf("%s: the stale read failed with %v, want its 0A000", tc.name, err)
			}
			if got, err := run(tc.withdraw, false); err != nil || got != before-30 {
				t.Errorf("%s: the batch run again read %d, %v; want %d", tc.name, got, err, before-30)
			}
		}
	}
}
