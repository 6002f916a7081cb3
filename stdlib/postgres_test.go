package stdlib_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	tdriver "github.com/tendril-db/tendril/driver"
	_ "github.com/tendril-db/tendril/driver/postgres"
	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

type person struct {
	ID    int64          `db:"id"`
	Name  string         `db:"name"`
	Nick  sql.NullString `db:"nick"`
	Born  time.Time      `db:"born"`
	Score sql.NullString `db:"score"` // numeric: exact, as text
}

const peopleDDL = `CREATE TABLE people (id bigserial PRIMARY KEY, name text NOT NULL, nick text,
	born timestamptz NOT NULL, score numeric(6,2))`

// TestPostgresSQLX: sqlx over the bridge on PostgreSQL: NamedExec (one row
// and a batch), Select and Get into structs with sql.NullString and
// time.Time fields, sqlx.In rebound to $n, NamedQuery.
func TestPostgresSQLX(t *testing.T) {
	sdb, _ := openPG(t)
	db := sqlx.NewDb(sdb, "postgres") // binds $1
	c := ctx(t)
	db.MustExecContext(c, peopleDDL)
	born := time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)
	ada := person{Name: "Ada", Nick: sql.NullString{String: "Enchantress", Valid: true}, Born: born, Score: sql.NullString{String: "99.50", Valid: true}}
	if _, err := db.NamedExecContext(c, `INSERT INTO people (name, nick, born, score) VALUES (:name, :nick, :born, :score)`, ada); err != nil {
		t.Fatal(err)
	}
	batch := []person{
		{Name: "Charles", Born: time.Date(1791, 12, 26, 12, 30, 0, 0, time.UTC)},
		{Name: "Grace", Nick: sql.NullString{String: "Amazing", Valid: true}, Born: time.Date(1906, 12, 9, 0, 0, 0, 0, time.UTC)},
	}
	res, err := db.NamedExecContext(c, `INSERT INTO people (name, nick, born, score) VALUES (:name, :nick, :born, :score)`, batch)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); n != 2 || err != nil {
		t.Errorf("batch insert: RowsAffected %d, %v; want 2", n, err)
	}

	var all []person
	if err := db.SelectContext(c, &all, "SELECT id, name, nick, born, score FROM people ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("Select: %d people, want 3: %+v", len(all), all)
	}
	if got := all[0]; got.Name != "Ada" || got.Nick != ada.Nick || !got.Born.Equal(born) || got.Score.String != "99.50" {
		t.Errorf("Select: %+v, want %+v", got, ada)
	}
	if got := all[1]; got.Nick.Valid || got.Score.Valid || !got.Born.Equal(batch[0].Born) {
		t.Errorf("Select: NULLs of %+v not NULL", got)
	}

	var grace person
	if err := db.GetContext(c, &grace, "SELECT * FROM people WHERE name = $1", "Grace"); err != nil {
		t.Fatal(err)
	}
	if grace.Nick.String != "Amazing" || grace.Born.Year() != 1906 {
		t.Errorf("Get: %+v", grace)
	}
	var missing person
	if err := db.GetContext(c, &missing, "SELECT * FROM people WHERE name = $1", "Nobody"); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("Get of no row: %v, want sql.ErrNoRows", err)
	}

	q, args, err := sqlx.In("SELECT name FROM people WHERE id IN (?) AND name <> ? ORDER BY id", []int64{all[0].ID, all[2].ID}, "x")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := db.SelectContext(c, &names, db.Rebind(q), args...); err != nil {
		t.Fatalf("sqlx.In %q: %v", db.Rebind(q), err)
	}
	if fmt.Sprint(names) != "[Ada Grace]" {
		t.Errorf("sqlx.In: %v", names)
	}

	rows, err := db.NamedQueryContext(c, "SELECT id, name FROM people WHERE born < :before ORDER BY born", map[string]any{"before": time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for rows.Next() {
		var p struct {
			ID   int64  `db:"id"`
			Name string `db:"name"`
		}
		if err := rows.StructScan(&p); err != nil {
			t.Fatal(err)
		}
		names = append(names, p.Name)
	}
	if err := rows.Err(); err != nil || fmt.Sprint(names) != "[Charles Ada]" {
		t.Errorf("NamedQuery: %v, %v", names, err)
	}

	// A server error keeps its SQLSTATE through database/sql.
	_, err = db.ExecContext(c, "INSERT INTO people (id, name, born) VALUES ($1, 'dup', now())", all[0].ID)
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "23505" {
		t.Errorf("duplicate key: %v, want a ServerError with SQLSTATE 23505", err)
	}
}

// TestTransactions: isolation levels and read-only mapped to BEGIN (seen
// with SHOW inside), a serializable transaction rolled back leaves
// nothing, levels PostgreSQL lacks are refused with ErrNotSupported, and
// database/sql's own rules: ErrTxDone after Commit, a transaction rolled
// back when its context ends.
func TestTransactions(t *testing.T) {
	db, _ := openPG(t)
	c := ctx(t)
	if _, err := db.ExecContext(c, "CREATE TABLE acct (id int PRIMARY KEY, bal int)"); err != nil {
		t.Fatal(err)
	}
	show := func(tx *sql.Tx, what string) string {
		t.Helper()
		var s string
		if err := tx.QueryRowContext(c, "SHOW "+what).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	count := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(c, "SELECT count(*) FROM acct").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	tx, err := db.BeginTx(c, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		t.Fatal(err)
	}
	if got := show(tx, "transaction_isolation"); got != "serializable" {
		t.Errorf("serializable transaction runs at %q", got)
	}
	if _, err := tx.ExecContext(c, "INSERT INTO acct VALUES ($1, $2)", 1, 100); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d rows after the rollback, want 0", n)
	}

	for level, want := range map[sql.IsolationLevel]string{
		sql.LevelDefault:         "read committed",
		sql.LevelReadUncommitted: "read uncommitted",
		sql.LevelReadCommitted:   "read committed",
		sql.LevelRepeatableRead:  "repeatable read",
	} {
		tx, err := db.BeginTx(c, &sql.TxOptions{Isolation: level})
		if err != nil {
			t.Fatalf("%v: %v", level, err)
		}
		if got := show(tx, "transaction_isolation"); got != want {
			t.Errorf("%v runs at %q, want %q", level, got, want)
		}
		tx.Rollback()
	}
	for _, level := range []sql.IsolationLevel{sql.LevelSnapshot, sql.LevelLinearizable, sql.LevelWriteCommitted} {
		if _, err := db.BeginTx(c, &sql.TxOptions{Isolation: level}); !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("%v: %v, want ErrNotSupported", level, err)
		}
	}

	tx, err = db.BeginTx(c, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := show(tx, "transaction_read_only"); got != "on" {
		t.Errorf("read-only transaction: transaction_read_only %q", got)
	}
	_, err = tx.ExecContext(c, "INSERT INTO acct VALUES (2, 1)")
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "25006" {
		t.Errorf("write in a read-only transaction: %v, want SQLSTATE 25006", err)
	}
	tx.Rollback()

	// Commit, then database/sql's ErrTxDone for everything after.
	tx, err = db.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "INSERT INTO acct VALUES (3, 30)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "INSERT INTO acct VALUES (4, 40)"); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("Exec after Commit: %v, want sql.ErrTxDone", err)
	}
	if err := tx.Commit(); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("Commit after Commit: %v, want sql.ErrTxDone", err)
	}
	if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("Rollback after Commit: %v, want sql.ErrTxDone", err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d rows after the commit, want 1", n)
	}

	// A transaction whose context ends is rolled back by database/sql.
	tctx, cancel := context.WithCancel(c)
	tx, err = db.BeginTx(tctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(tctx, "INSERT INTO acct VALUES (5, 50)"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := tx.Commit(); err == nil {
		t.Error("Commit after the context ended succeeded")
	}
	if n := count(); n != 1 {
		t.Errorf("%d rows after a transaction whose context ended, want 1", n)
	}
}

// TestCommitWhileRowsOpen guards sqlish's Tx against ending on the
// client only: a Commit refused because Rows of its Conn are open leaves
// the transaction open, to Commit once they are closed, and a Rollback
// while they are open rolls back when they close. Were the Tx marked done
// with the server transaction still open, the Conn's later autocommit
// statements would run in it and vanish at Close.
func TestCommitWhileRowsOpen(t *testing.T) {
	srv := primary(t)
	c := ctx(t)
	db, err := sqlish.Open("postgres", srv.DSN(isolated(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(c, "CREATE TABLE busy (v int)"); err != nil {
		t.Fatal(err)
	}
	count := func(v int) int64 { // seen from another connection
		t.Helper()
		var n int64
		if err := db.QueryRow(c, "SELECT count(*) FROM busy WHERE v = $1", v).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Commit refused, then Commit again.
	tx, err := conn.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO busy VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(c, "SELECT v FROM busy")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(c); err == nil || !strings.Contains(err.Error(), "busy with open Rows") {
		t.Fatalf("Commit with Rows open: %v, want the Conn busy", err)
	}
	rows.Close()
	if err := tx.Commit(c); err != nil {
		t.Fatalf("Commit once the Rows are closed: %v", err)
	}
	if err := tx.Rollback(c); !errors.Is(err, sqlish.ErrTxDone) {
		t.Errorf("Rollback after Commit: %v, want ErrTxDone", err)
	}
	if n := count(1); n != 1 {
		t.Errorf("count(v=1) = %d after the second Commit, want 1", n)
	}

	// Rollback while Rows are open: done when they close, before the
	// Conn's next statement.
	tx, err = conn.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO busy VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if rows, err = tx.Query(c, "SELECT v FROM busy"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(c); err != nil {
		t.Fatalf("Rollback with Rows open: %v", err)
	}
	if err := tx.Commit(c); !errors.Is(err, sqlish.ErrTxDone) {
		t.Errorf("Commit after Rollback: %v, want ErrTxDone", err)
	}
	rows.Close()
	if _, err := conn.Exec(c, "INSERT INTO busy VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	if n2, n3 := count(2), count(3); n2 != 0 || n3 != 1 {
		t.Errorf("count(v=2) = %d, count(v=3) = %d, want 0 (rolled back) and 1 (autocommit): the Conn is still in the transaction", n2, n3)
	}

	// A DB.BeginTx's Tx keeps its connection until it really ends.
	tx, err = db.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO busy VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	if rows, err = tx.Query(c, "SELECT v FROM busy"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(c); err == nil {
		t.Fatal("Commit with Rows open succeeded")
	}
	rows.Close()
	if err := tx.Commit(c); err != nil {
		t.Fatalf("Commit once the Rows are closed: %v", err)
	}
	if n := count(4); n != 1 {
		t.Errorf("count(v=4) = %d, want 1", n)
	}
	conn.Close()
	if s := db.Stats(); s.InUse != 0 {
		t.Errorf("%d connections in use once every Tx and Conn ended", s.InUse)
	}
}

// TestCommitWhileConnRowsOpen guards the bridge against the same through
// database/sql, which ends a Tx whatever Commit returns: a Commit refused
// because Rows opened on the *sql.Conn during the Tx are open (the bridge
// runs them in the Tx) rolls the transaction back once they close, so
// the *sql.Conn's later statements run outside it and last.
func TestCommitWhileConnRowsOpen(t *testing.T) {
	db, _ := openPG(t)
	c := ctx(t)
	if _, err := db.ExecContext(c, "CREATE TABLE busy (v int)"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "SET application_name = 'busy'"); err != nil { // a session: the *sql.Conn pins
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "INSERT INTO busy VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(c, "SELECT v FROM busy")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("Commit with Rows open succeeded")
	}
	rows.Close()
	if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("Rollback after the failed Commit: %v, want sql.ErrTxDone", err)
	}
	if _, err := conn.ExecContext(c, "INSERT INTO busy VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	var n1, n2 int
	if err := db.QueryRowContext(c, "SELECT count(*) FILTER (WHERE v = 1), count(*) FILTER (WHERE v = 2) FROM busy").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	if n1 != 0 || n2 != 1 {
		t.Errorf("count(v=1) = %d, count(v=2) = %d, want 0 (rolled back) and 1 (autocommit): the *sql.Conn is still in the transaction", n1, n2)
	}
}

// TestCommitTimeoutOutcomeUnknown guards the contract that an error after
// which a statement may have run says so: a COMMIT whose reply does not
// come within socket_timeout (the server frozen) may have committed, so
// its error wraps ErrOutcomeUnknown (and still the timeout), through
// sqlish and database/sql alike; a COMMIT the server answered does not.
func TestCommitTimeoutOutcomeUnknown(t *testing.T) {
	srv := pgtest.StartPrimary(t) // frozen below: not the shared one
	c := ctx(t)
	sdb, err := sqlish.Open("postgres", srv.DSN("socket_timeout=500ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	if _, err := sdb.Exec(c, "CREATE TABLE lost (v int)"); err != nil {
		t.Fatal(err)
	}
	frozen := func(commit func() error) error {
		t.Helper()
		srv.Stop()
		defer srv.Cont()
		return commit()
	}
	check := func(via string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: Commit with the server frozen succeeded", via)
		}
		if !errors.Is(err, sqlish.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Commit timed out with %q: want ErrOutcomeUnknown and context.DeadlineExceeded", via, err)
		}
	}

	tx, err := sdb.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO lost VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	check("sqlish", frozen(func() error { return tx.Commit(c) }))

	db := open(t, srv.DSN("socket_timeout=500ms"))
	stx, err := db.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stx.ExecContext(c, "INSERT INTO lost VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	check("database/sql", frozen(stx.Commit))

	// Answered: a COMMIT that rolled back a failed transaction.
	tx, err = sdb.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "SELECT 1/0"); err == nil {
		t.Fatal("SELECT 1/0 succeeded")
	}
	if err := tx.Commit(c); err == nil || errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("COMMIT answered by ROLLBACK: %v, want an error whose outcome is known", err)
	}
}

// TestScanFloat32Overflow guards sqlish's Scan of a float8 into a
// *float32: a finite value beyond float32's range is an error naming it,
// as database/sql's "value out of range", not a silent ±Inf.
func TestScanFloat32Overflow(t *testing.T) {
	srv := primary(t)
	c := ctx(t)
	db, err := sqlish.Open("postgres", srv.DSN(isolated(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var f float32
	if err := db.QueryRow(c, "SELECT -1e300::float8").Scan(&f); err == nil || !strings.Contains(err.Error(), "-1e+300 overflows float32") {
		t.Errorf("-1e300 scanned into a float32: %v (err %v), want an overflow error", f, err)
	}
	if err := db.QueryRow(c, "SELECT 1.5::float8").Scan(&f); err != nil || f != 1.5 {
		t.Errorf("1.5 scanned into a float32: %v, %v", f, err)
	}
}

// TestPreparedStatements: one prepared statement reused by many calls from
// many goroutines (database/sql prepares it on each handle; the driver
// caches the server's), inside a transaction too (Tx.Stmt).
func TestPreparedStatements(t *testing.T) {
	db, _ := openBridged(t, "postgres", primaryDSN(t))
	c := ctx(t)
	if _, err := db.ExecContext(c, "CREATE TABLE nums (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ins, err := db.PrepareContext(c, "INSERT INTO nums VALUES ($1)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	sel, err := db.PrepareContext(c, "SELECT n * 2 FROM nums WHERE n = $1")
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				if _, err := ins.ExecContext(c, n); err != nil {
					errs <- err
					return
				}
				var d int
				if err := sel.QueryRowContext(c, n).Scan(&d); err != nil || d != 2*n {
					errs <- fmt.Errorf("select %d: %d, %v", n, d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tx, err := db.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	txIns := tx.StmtContext(c, ins)
	for n := 1000; n < 1010; n++ {
		if _, err := txIns.ExecContext(c, n); err != nil {
			t.Fatal(err)
		}
	}
	tx.Rollback()
	var total int
	if err := db.QueryRowContext(c, "SELECT count(*) FROM nums").Scan(&total); err != nil || total != workers*each {
		t.Errorf("count %d (%v), want %d: the rolled-back inserts must not count", total, err, workers*each)
	}
	waitIdle(t, db)
}

// TestColumnTypes: database/sql's ColumnTypes from the driver's column
// descriptions.
func TestColumnTypes(t *testing.T) {
	db, _ := openPG(t)
	c := ctx(t)
	rows, err := db.QueryContext(c, `SELECT 1::int8 AS a, 'x'::text AS b, now() AS c, 1.5::numeric(10,2) AS d,
		'abc'::varchar(10) AS e, NULL::int4 AS f, true AS g, '\x01'::bytea AS h, 2.5::float8 AS i, ARRAY[1,2]::int8[] AS j`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, db string
		scan     reflect.Type
	}{
		{"a", "INT8", reflect.TypeFor[int64]()},
		{"b", "TEXT", reflect.TypeFor[string]()},
		{"c", "TIMESTAMPTZ", reflect.TypeFor[time.Time]()},
		{"d", "NUMERIC", reflect.TypeFor[string]()},
		{"e", "VARCHAR", reflect.TypeFor[string]()},
		{"f", "INT4", reflect.TypeFor[int64]()},
		{"g", "BOOL", reflect.TypeFor[bool]()},
		{"h", "BYTEA", reflect.TypeFor[[]byte]()},
		{"i", "FLOAT8", reflect.TypeFor[float64]()},
		{"j", "_INT8", reflect.TypeFor[[]int64]()},
	}
	if len(cts) != len(want) {
		t.Fatalf("%d column types, want %d", len(cts), len(want))
	}
	for i, w := range want {
		ct := cts[i]
		if ct.Name() != w.name || ct.DatabaseTypeName() != w.db || ct.ScanType() != w.scan {
			t.Errorf("column %d: %s %s %v, want %s %s %v", i, ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), w.name, w.db, w.scan)
		}
	}
	if n, ok := cts[4].Length(); !ok || n != 10 {
		t.Errorf("varchar(10): Length %d, %v", n, ok)
	}
	if p, s, ok := cts[3].DecimalSize(); !ok || p != 10 || s != 2 {
		t.Errorf("numeric(10,2): DecimalSize %d, %d, %v", p, s, ok)
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	var (
		a    int64
		b    string
		tm   time.Time
		d    string
		e    string
		f    sql.NullInt32
		g    bool
		h    []byte
		i    float64
		j    any
		anyA any
	)
	if err := rows.Scan(&anyA, &b, &tm, &d, &e, &f, &g, &h, &i, &j); err != nil {
		t.Fatal(err)
	}
	a = anyA.(int64)
	if a != 1 || b != "x" || time.Since(tm) > time.Minute || d != "1.50" || e != "abc" || f.Valid || !g || string(h) != "\x01" || i != 2.5 || fmt.Sprint(j) != "[1 2]" {
		t.Errorf("row: %v %q %v %q %q %v %v %q %v %v", a, b, tm, d, e, f, g, h, i, j)
	}
}

// TestContextCancel: Rows whose context ends are closed and give their
// connection back; a statement cut by its deadline returns soon after it,
// cancelled on the server; the DB carries on.
func TestContextCancel(t *testing.T) {
	db, _ := openBridged(t, "postgres", primaryDSN(t))
	db.SetMaxOpenConns(2)
	c := ctx(t)
	qctx, cancel := context.WithCancel(c)
	rows, err := db.QueryContext(qctx, "SELECT generate_series(1, 1000000)")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
	}
	cancel()
	for rows.Next() { // database/sql closes the rows when the context ends
	}
	if err := rows.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Rows.Err after cancel: %v, want context.Canceled", err)
	}
	waitIdle(t, db)

	// Rows closed mid-iteration give their connection back (the driver
	// reads and discards the rest).
	rows, err = db.QueryContext(c, "SELECT generate_series(1, 100000)")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
	}
	start := time.Now()
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Rows.Close after 2 of 100000 rows: %v", time.Since(start))
	if n := inUse(t, db); n != 0 {
		t.Errorf("%d tendril connections in use after Rows.Close, want 0", n)
	}

	dctx, cancel := context.WithTimeout(c, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = db.ExecContext(dctx, "SELECT pg_sleep(10)")
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d > 2*time.Second {
		t.Errorf("pg_sleep(10) with a 200ms deadline: %v after %v, want DeadlineExceeded soon", err, d)
	}
	var n int
	if err := db.QueryRowContext(c, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Errorf("after the cancellations: %d, %v", n, err)
	}
	waitIdle(t, db)
}

// primaryDSN is the shared server's DSN, in a schema of the test's own.
func primaryDSN(t *testing.T, params ...string) string {
	srv := primary(t)
	return srv.DSN(append(params, isolated(t, srv))...)
}

// TestSessionOnConn: a *sql.Conn keeps its session from its first session
// statement until Close, transactions included; nothing leaks to the
// *sql.DB's other callers, nor from a session statement on the *sql.DB.
func TestSessionOnConn(t *testing.T) {
	dsn := primaryDSN(t)
	db, _ := openBridged(t, "postgres", dsn)
	c := ctx(t)
	var def string
	if err := db.QueryRowContext(c, "SHOW search_path").Scan(&def); err != nil {
		t.Fatal(err)
	}
	other := fmt.Sprintf("other_%d", unique.Add(1)) // -count=2 runs it again
	if _, err := db.ExecContext(c, fmt.Sprintf("CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.marker (v text); INSERT INTO %[1]s.marker VALUES ('other')", other)); err != nil {
		t.Fatal(err)
	}

	// On the *sql.DB the SET runs, and lasts for itself.
	if _, err := db.ExecContext(c, "SET search_path TO "+other); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		var got string
		if err := db.QueryRowContext(c, "SHOW search_path").Scan(&got); err != nil || got != def {
			t.Fatalf("search_path on the *sql.DB after a SET on it: %q (%v), want %q: the session leaked", got, err, def)
		}
	}

	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(c, "SET search_path TO "+other); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRowContext(c, "SELECT v FROM marker").Scan(&v); err != nil || v != "other" {
		t.Fatalf("the *sql.Conn's session: %q, %v", v, err)
	}
	tx, err := conn.BeginTx(c, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(c, "SELECT v FROM marker").Scan(&v); err != nil || v != "other" {
		t.Fatalf("a transaction on the *sql.Conn does not run in its session: %q, %v", v, err)
	}
	if _, err := tx.ExecContext(c, "SET LOCAL statement_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(c, "SHOW search_path").Scan(&v); err != nil || v != other {
		t.Fatalf("the session after the transaction: %q, %v", v, err)
	}
	// Meanwhile the *sql.DB's other callers see the default.
	var got string
	if err := db.QueryRowContext(c, "SHOW search_path").Scan(&got); err != nil || got != def {
		t.Errorf("the *sql.DB while a *sql.Conn has a session: %q (%v), want %q", got, err, def)
	}
	conn.Close()
	waitIdle(t, db)
	db.SetMaxOpenConns(1)
	for range 3 {
		if err := db.QueryRowContext(c, "SHOW search_path").Scan(&got); err != nil || got != def {
			t.Errorf("after the *sql.Conn closed: %q (%v), want %q", got, err, def)
		}
	}

	// A transaction begun by SQL on a *sql.Conn and left open by Close is
	// rolled back: later statements do not run inside it, as they would
	// with a driver whose ResetSession does not look at the transaction.
	if _, err := db.ExecContext(c, "CREATE TABLE leak (v int)"); err != nil {
		t.Fatal(err)
	}
	conn, err = db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"BEGIN", "INSERT INTO leak VALUES (1)"} {
		if _, err := conn.ExecContext(c, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close() // no COMMIT
	if _, err := db.ExecContext(c, "INSERT INTO leak VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(c, "SELECT count(*) FROM leak WHERE v = 2").Scan(&n); err != nil || n != 1 {
		t.Errorf("a statement after the *sql.Conn left a transaction open: count %d (%v), want 1 (committed)", n, err)
	}
	if err := db.QueryRowContext(c, "SELECT count(*) FROM leak WHERE v = 1").Scan(&n); err != nil || n != 0 {
		t.Errorf("the transaction left open was not rolled back: count %d (%v)", n, err)
	}
	waitIdle(t, db)
}

// TestPostgresBadConn: the connection of a *sql.Conn's session is killed
// by the server: the next statement was sent and fails with the
// connection's error; the one after is database/sql's ErrBadConn (nothing
// sent), and database/sql closes the *sql.Conn. The *sql.DB is unharmed.
func TestPostgresBadConn(t *testing.T) {
	db, _ := openBridged(t, "postgres", primaryDSN(t))
	srv := primary(t)
	c := ctx(t)
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "SET application_name = 'doomed'"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRowContext(c, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(c, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid)); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(c, "SELECT 1")
	if err == nil || errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("first statement on the killed session: %v, want its error, not ErrBadConn", err)
	}
	_, err = conn.ExecContext(c, "SELECT 1")
	if !errors.Is(err, driver.ErrBadConn) || !errors.Is(err, tdriver.ErrBadConn) {
		t.Fatalf("second statement on the killed session: %v, want ErrBadConn", err)
	}
	if _, err := conn.ExecContext(c, "SELECT 1"); !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("after ErrBadConn: %v, want sql.ErrConnDone", err)
	}
	var n int
	if err := db.QueryRowContext(c, "SELECT 2").Scan(&n); err != nil || n != 2 {
		t.Errorf("the *sql.DB after a session was killed: %v", err)
	}
	waitIdle(t, db)
}

// TestPasswordNotInErrors: a refused password fails Ping at once (not
// retried), with tendril's ErrAuthFailed, and the password shows nowhere.
func TestPasswordNotInErrors(t *testing.T) {
	srv := primary(t)
	const secret = "Wr0ng-s3cret-pw"
	dsn := strings.Replace(srv.DSN("total_timeout=3s"), ":"+pgtest.DefaultPassword+"@", ":"+secret+"@", 1)
	if !strings.Contains(dsn, secret) {
		t.Fatalf("could not put the wrong password in %s", srv.DSN())
	}
	db := open(t, dsn)
	c := ctx(t)
	start := time.Now()
	err := db.PingContext(c)
	if !errors.Is(err, tdriver.ErrAuthFailed) {
		t.Fatalf("Ping with a wrong password: %v, want ErrAuthFailed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Ping took %v: a refused password must not be retried", d)
	}
	_, err2 := db.ExecContext(c, "SELECT 1")
	_, err3 := db.BeginTx(c, nil)
	for _, e := range []error{err, err2, err3} {
		if e == nil {
			t.Errorf("a call with a wrong password succeeded")
			continue
		}
		if s := fmt.Sprintf("%v %+v %#v", e, e, e); strings.Contains(s, secret) {
			t.Errorf("the error shows the password: %s", s)
		}
	}
	t.Log(err)
}

// TestCommitNotSentEndsTx: a Commit whose context was done already is
// never sent: the transaction must not stay open on the server, or the
// Conn's next statements run in it and vanish with it at Close (an
// autocommit INSERT reported done was gone). The Commit's error says the
// outcome is unknown (the driver cannot tell a COMMIT not sent from one
// whose reply was lost); the Conn's connection is left out of any
// transaction.
func TestCommitNotSentEndsTx(t *testing.T) {
	srv := primary(t)
	c := ctx(t)
	db, err := sqlish.Open("postgres", srv.DSN("max_conns_per_node=1", isolated(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(c, "CREATE TABLE unsent (v int)"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO unsent VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(c)
	cancel()
	if err := tx.Commit(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with its context done: %v", err)
	}
	if _, err := conn.Exec(c, "INSERT INTO unsent VALUES ($1)", 2); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	var n1, n2 int64
	if err := db.QueryRow(c, "SELECT count(*) FILTER (WHERE v = 1), count(*) FILTER (WHERE v = 2) FROM unsent").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	if n1 != 0 || n2 != 1 {
		t.Errorf("v=1: %d, v=2: %d; want 0 (not committed) and 1 (the autocommit INSERT after it)", n1, n2)
	}
}
