package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// TestServerErrors: the server's error reaches the application as a
// *sqlish.ServerError with its SQLSTATE and fields, and the connection
// stays in the pool.
func TestServerErrors(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE dup (id int CONSTRAINT dup_pk PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(c, "INSERT INTO dup VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	var pid1, pid2 int
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	_, err := db.Exec(c, "INSERT INTO dup VALUES ($1)", 1)
	var se *sqlish.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("duplicate key: %v (%T), want a *sqlish.ServerError", err, err)
	}
	if se.Code != "23505" || se.Constraint != "dup_pk" || se.Table != "dup" || !strings.HasPrefix(se.Schema, "testservererrors_") || se.Severity != "ERROR" ||
		!strings.Contains(se.Detail, "(id)=(1)") || !strings.Contains(se.Msg, "duplicate key") {
		t.Fatalf("ServerError = %+v", se)
	}
	if r := (&connector{}).Classify(err); r != driver.RetryNever {
		t.Errorf("Classify(23505) = %v, want never", r)
	}
	_, err = db.Exec(c, "SELECT * FROM nosuchtable WHERE x = $1", 1)
	if !errors.As(err, &se) || se.Code != "42P01" || se.Position == 0 {
		t.Fatalf("missing table: %v", err)
	}
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid2); err != nil || pid2 != pid1 {
		t.Fatalf("after server errors the backend is %d (%v), was %d: the connection was not kept", pid2, err, pid1)
	}
}

// TestTx: commit, rollback, isolation levels and access modes as the
// server sees them, and a COMMIT answered with ROLLBACK.
func TestTx(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN(isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE txt (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := db.QueryRow(c, "SELECT count(*) FROM txt").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tx, err := db.BeginTx(c, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO txt VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(c); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows after Rollback", n)
	}
	tx, _ = db.BeginTx(c, driver.TxOptions{})
	tx.Exec(c, "INSERT INTO txt VALUES ($1)", 1)
	if err := tx.Commit(c); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows after Commit", n)
	}
	for _, tc := range []struct {
		opts          driver.TxOptions
		level, rdonly string
		deferrable    string
	}{
		{driver.TxOptions{}, "read committed", "off", "off"},
		{driver.TxOptions{Isolation: driver.LevelSerializable}, "serializable", "off", "off"},
		{driver.TxOptions{Isolation: driver.LevelRepeatableRead, ReadOnly: true}, "repeatable read", "on", "off"},
		{driver.TxOptions{Isolation: driver.LevelSerializable, ReadOnly: true, Deferrable: true}, "serializable", "on", "on"},
		{driver.TxOptions{Isolation: driver.LevelReadCommitted}, "read committed", "off", "off"},
	} {
		tx, err := db.BeginTx(c, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var level, rdonly, def string
		if err := tx.QueryRow(c, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only'), current_setting('transaction_deferrable')").
			Scan(&level, &rdonly, &def); err != nil {
			t.Fatal(err)
		}
		var shown string
		if err := tx.QueryRow(c, "SHOW transaction_isolation").Scan(&shown); err != nil || shown != level {
			t.Fatalf("SHOW transaction_isolation = %q, %v", shown, err)
		}
		tx.Rollback(c)
		if level != tc.level || rdonly != tc.rdonly || def != tc.deferrable {
			t.Errorf("%+v: isolation %q read only %q deferrable %q, want %q %q %q", tc.opts, level, rdonly, def, tc.level, tc.rdonly, tc.deferrable)
		}
	}
	if _, err := db.BeginTx(c, driver.TxOptions{Isolation: driver.LevelSnapshot}); !errors.Is(err, sqlish.ErrNotSupported) {
		t.Errorf("snapshot isolation: %v, want ErrNotSupported", err)
	}
	// A failed statement aborts the transaction: COMMIT rolls it back.
	tx, _ = db.BeginTx(c, driver.TxOptions{})
	tx.Exec(c, "INSERT INTO txt VALUES ($1)", 2)
	if _, err := tx.Exec(c, "INSERT INTO txt VALUES ($1)", 1); err == nil {
		t.Fatal("duplicate key accepted")
	}
	err = tx.Commit(c)
	var se *sqlish.ServerError
	if !errors.Is(err, ErrCommitRollback) || !errors.As(err, &se) || se.Code != "25P02" {
		t.Fatalf("Commit of a failed transaction = %v, want ErrCommitRollback", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows after a rolled-back Commit, want 1", n)
	}
	// A read-only transaction that writes: 25006, final on a primary.
	tx, _ = db.BeginTx(c, driver.TxOptions{ReadOnly: true})
	_, err = tx.Exec(c, "INSERT INTO txt VALUES ($1)", 3)
	tx.Rollback(c)
	if !errors.As(err, &se) || se.Code != "25006" {
		t.Fatalf("write in a read-only transaction: %v", err)
	}
	if r := (&connector{}).Classify(err); r != driver.RetryNever {
		t.Errorf("Classify(25006 on a primary) = %v, want never", r)
	}
}

// TestCancel: a statement whose context ends is cancelled on the server,
// returns at once with the context's error, and its connection is used
// again (the same backend answers next).
func TestCancel(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1"))
	c := ctx(t)
	var pid int
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"Exec", "QueryRow", "Query", "Conn"} {
		cctx, cancel := context.WithTimeout(c, 50*time.Millisecond)
		start := time.Now()
		var err error
		switch how {
		case "Exec":
			_, err = db.Exec(cctx, "SELECT pg_sleep(10)")
		case "QueryRow":
			var s string
			err = db.QueryRow(cctx, "SELECT pg_sleep($1)::text", 10).Scan(&s)
		case "Query":
			var rows *sqlish.Rows
			if rows, err = db.Query(cctx, "SELECT pg_sleep($1)", 10); err == nil {
				rows.Close()
			}
		case "Conn":
			cn, cerr := db.Conn(c)
			if cerr != nil {
				t.Fatal(cerr)
			}
			_, err = cn.Exec(cctx, "SELECT pg_sleep($1)", 10)
			cn.Close()
		}
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: cancelled pg_sleep: %v, want context.DeadlineExceeded", how, err)
		}
		t.Logf("%s: cancelled after 50ms, returned after %v: %v", how, took.Round(time.Millisecond), err)
		if took > 50*time.Millisecond+time.Second/2 {
			t.Errorf("%s: a statement cancelled after 50ms returned after %v", how, took)
		}
		var again int
		if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&again); err != nil || again != pid {
			t.Fatalf("%s: after the cancel, backend %d (%v), was %d: the connection was not reused", how, again, err, pid)
		}
	}
}

// TestRowsStream: rows read after Query returned are not cut when the
// statement's attempt context ends (the user API cancels it as soon as
// Query returns), and closing rows early leaves the connection usable.
func TestRowsStream(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1"))
	c := ctx(t)
	const n = 200000
	rows, err := db.Query(c, "SELECT i, repeat('x', 100) FROM generate_series(1, $1) AS i", n)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rows.Next() {
		var i int
		var s string
		if err := rows.Scan(&i, &s); err != nil {
			t.Fatal(err)
		}
		got++
		if i != got {
			t.Fatalf("row %d holds %d", got, i)
		}
		if got == 1 {
			time.Sleep(100 * time.Millisecond) // the server is ahead; its output waits
		}
	}
	if err := rows.Err(); err != nil || got != n {
		t.Fatalf("%d rows of %d, %v", got, n, err)
	}
	rows, err = db.Query(c, "SELECT generate_series(1, $1)", n)
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	rows.Close()
	var one int
	if err := db.QueryRow(c, "SELECT $1::int", 1).Scan(&one); err != nil || one != 1 {
		t.Fatalf("after rows closed early: %d, %v", one, err)
	}
}

// TestStatementCache: a cached statement whose result type changed (ALTER
// TABLE) is prepared again; the cache keeps statement_cache_size
// statements on the server, closing those it evicts.
func TestStatementCache(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", "statement_cache_size=3", isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE sc (id int, a text); INSERT INTO sc VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	cols := func() []string {
		rows, err := db.Query(c, "SELECT * FROM sc WHERE id = $1", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		return rows.Columns()
	}
	if got := cols(); len(got) != 2 {
		t.Fatalf("columns %v", got)
	}
	var pid int
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(c, "ALTER TABLE sc ADD COLUMN b int DEFAULT 7"); err != nil {
		t.Fatal(err)
	}
	if got := cols(); len(got) != 3 || got[2] != "b" {
		t.Fatalf("after ALTER TABLE: columns %v", got)
	}
	var a string
	var b int
	if err := db.QueryRow(c, "SELECT a, b FROM sc WHERE id = $1", 1).Scan(&a, &b); err != nil || b != 7 {
		t.Fatalf("QueryRow = %q %d, %v", a, b, err)
	}
	// In a batch too: the statement is prepared again and run alone.
	if _, err := db.Exec(c, "ALTER TABLE sc DROP COLUMN b"); err != nil {
		t.Fatal(err)
	}
	var b2 sqlish.Batch
	b2.Queue("SELECT * FROM sc WHERE id = $1", 1)
	b2.Queue("SELECT $1::int", 5)
	br := db.SendBatch(c, &b2)
	rows, err := br.Query()
	if err != nil {
		t.Fatalf("batch after ALTER TABLE: %v", err)
	}
	if got := rows.Columns(); len(got) != 2 {
		t.Fatalf("batch after ALTER TABLE: columns %v", got)
	}
	rows.Close()
	if err := br.QueryRow().Scan(&b); err != nil || b != 5 {
		t.Fatalf("batch after ALTER TABLE: %d, %v", b, err)
	}
	var again int
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&again); err != nil || again != pid {
		t.Fatalf("backend %d (%v) after the statements were prepared again, was %d: the connection was not kept", again, err, pid)
	}
	// Six statements through a cache of three: the server holds three.
	for i := range 6 {
		if _, err := db.Exec(c, fmt.Sprintf("SELECT %d + $1", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(c, "SELECT count(*) FROM pg_prepared_statements WHERE $1 > 0", 1).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 3 {
		t.Fatalf("%d statements prepared on the server with statement_cache_size=3", n)
	}
	// Without a cache nothing stays prepared.
	nc := connect(t, srv.DSN("max_conns_per_node=1", "statement_cache_size=0"))
	for range 3 {
		if err := nc.QueryRow(c, "SELECT count(*) FROM pg_prepared_statements WHERE $1 > 0", 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if n != 0 {
		t.Fatalf("%d statements prepared with statement_cache_size=0", n)
	}
}

// TestSessionReset: what a pinned Conn changed does not reach the next
// user of its connection, and a Conn closed in a transaction rolls it
// back.
func TestSessionReset(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", "application_name=tendril-test", isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE SCHEMA IF NOT EXISTS other; CREATE TABLE sr (id int)"); err != nil {
		t.Fatal(err)
	}
	show := func(what string) string {
		var v string
		if err := db.QueryRow(c, "SELECT current_setting($1)", what).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	var pid int
	db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid)
	path, app := show("search_path"), show("application_name")
	if app != "tendril-test" {
		t.Fatalf("application_name = %q, want the DSN's", app)
	}
	cn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET search_path TO other", "SET application_name = 'leak'", "CREATE TEMP TABLE tmp (x int)", "LISTEN ch"} {
		if _, err := cn.Exec(c, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var inConn string
	cn.QueryRow(c, "SELECT current_setting('search_path')").Scan(&inConn)
	if inConn != "other" {
		t.Fatalf("search_path on the Conn = %q", inConn)
	}
	if _, err := db.Exec(c, "SET search_path TO other"); !errors.Is(err, sqlish.ErrSessionState) {
		t.Fatalf("SET on the DB: %v, want ErrSessionState", err)
	}
	cn.Close()
	if got := show("search_path"); got != path {
		t.Errorf("search_path after the Conn = %q, want %q", got, path)
	}
	if got := show("application_name"); got != "tendril-test" {
		t.Errorf("application_name after the Conn = %q, want the DSN's", got)
	}
	var temps int
	if err := db.QueryRow(c, "SELECT count(*) FROM pg_tables WHERE tablename = $1", "tmp").Scan(&temps); err != nil || temps != 0 {
		t.Errorf("temporary table after the Conn: %d (%v)", temps, err)
	}
	var again int
	if db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&again); again != pid {
		t.Errorf("backend %d after the reset, was %d: the connection was not reset and reused", again, pid)
	}
	// A Conn closed inside a transaction rolls it back.
	cn, _ = db.Conn(c)
	tx, err := cn.BeginTx(c, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "INSERT INTO sr VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	cn.Close()
	var n int
	if err := db.QueryRow(c, "SELECT count(*) FROM sr").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows (%v) after a Conn closed in its transaction", n, err)
	}
	// BEGIN on a pinned Conn, not closed by COMMIT: reset at Close.
	cn, _ = db.Conn(c)
	cn.Exec(c, "BEGIN")
	cn.Exec(c, "INSERT INTO sr VALUES ($1)", 2)
	cn.Close()
	if err := db.QueryRow(c, "SELECT count(*) FROM sr").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows (%v) after a Conn closed after BEGIN", n, err)
	}
	// Prepared statements survive nothing of a reset: the cache follows.
	for range 2 {
		if err := db.QueryRow(c, "SELECT count(*) FROM sr WHERE id > $1", 0).Scan(&n); err != nil {
			t.Fatal(err)
		}
		cn, _ = db.Conn(c)
		cn.Exec(c, "SET work_mem = '8MB'")
		cn.Close()
	}
}

// TestSessionSideWays: statements that change the session in a roundabout
// way (a temporary object made without the word TEMP, a setting changed
// by a DO block, a quoted or commented function name) are refused on the
// DB's shared pool, or run there and have their connection reset before
// the next caller gets it: the next caller reads the real table and a
// clean setting. (Found by an adversarial review; each case reached the
// next caller before.)
func TestSessionSideWays(t *testing.T) {
	srv := primary(t)
	iso := isolated(t, srv)
	db := connect(t, srv.DSN("max_conns_per_node=1", iso))
	c := ctx(t)
	if _, err := db.Exec(c, "CREATE TABLE accounts (owner text); INSERT INTO accounts VALUES ('alice')"); err != nil {
		t.Fatal(err)
	}
	const owner, tenant = "SELECT owner FROM accounts", "SELECT coalesce(current_setting('app.tenant', true), '')"
	var path string
	if err := db.QueryRow(c, "SELECT current_setting('search_path')").Scan(&path); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, probe, clean string }{
		{"CREATE OR REPLACE TEMP VIEW accounts AS SELECT 'evil'::text AS owner", owner, "alice"},
		{"CREATE TABLE pg_temp.accounts AS SELECT 'evil'::text AS owner", owner, "alice"},
		{`CREATE TABLE "pg_temp" . accounts AS SELECT 'evil'::text AS owner`, owner, "alice"},
		{"SELECT 'evil'::text AS owner INTO pg_temp.accounts", owner, "alice"},
		{"EXPLAIN ANALYZE CREATE TEMP TABLE accounts AS SELECT 'evil'::text AS owner", owner, "alice"},
		{"EXPLAIN (ANALYZE, COSTS OFF) CREATE TEMP TABLE accounts AS SELECT 'evil'::text AS owner", owner, "alice"},
		{"DO $$BEGIN PERFORM set_config('app.tenant', 'evil', false); END$$", tenant, ""},
		{"DO $$BEGIN EXECUTE 'SET app.tenant = evil'; END$$", tenant, ""},
		{`SELECT "set_config"('app.tenant', 'evil', false)`, tenant, ""},
		{"SELECT set_config/**/('app.tenant', 'evil', false)", tenant, ""},
		{"SELECT pg_catalog.set_config -- x\n ('app.tenant', 'evil', false)", tenant, ""},
		{"UPDATE pg_settings SET setting = 'evil' WHERE name = 'search_path'", "SELECT current_setting('search_path')", path},
	} {
		// A pool of its own: a case that leaks does not fail the next.
		db := connect(t, srv.DSN("max_conns_per_node=1", iso))
		var before, after int
		db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&before)
		_, err := db.Exec(c, tc.q)
		if err != nil && !errors.Is(err, sqlish.ErrSessionState) {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		var got string
		if err := db.QueryRow(c, tc.probe).Scan(&got); err != nil {
			t.Errorf("%s, then %s: %v", tc.q, tc.probe, err)
			continue
		}
		db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&after)
		if got != tc.clean {
			t.Errorf("%s (refused: %v), then on the same pool (backend %d, then %d): %s = %q, want %q",
				tc.q, err != nil, before, after, tc.probe, got, tc.clean)
		}
		db.Close()
	}
	// A DO block may DEALLOCATE ALL: the statement cache is cleared with
	// the reset, so a cached statement still runs in a transaction (where
	// a statement the server dropped is not prepared again).
	var n int
	const q = "SELECT count(*) FROM accounts WHERE owner = $1"
	if err := db.QueryRow(c, q, "alice").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(c, "DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(c, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(c)
	if err := tx.QueryRow(c, q, "alice").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a cached statement in a transaction after a DO block ran DEALLOCATE ALL: %d, %v", n, err)
	}
}

// socket_timeout bounds a statement with a deadline on the socket (the
// driver declares CapRequestTimeout, so the user API makes no context for
// it): a statement that outlives it fails with context.DeadlineExceeded
// naming the limit, its connection is closed, and the next statement runs
// on a new one.
func TestSocketTimeout(t *testing.T) {
	srv := primary(t)
	ctx := context.Background()
	db, err := sqlish.Open("postgres", srv.DSN("socket_timeout=200ms", "max_conns_per_node=1", "max_retries=0"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = db.Exec(ctx, "SELECT pg_sleep($1)", 2)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "socket_timeout 200ms") {
		t.Fatalf("a statement longer than socket_timeout: %v", err)
	}
	if took > time.Second {
		t.Errorf("the statement returned after %v, want about socket_timeout (200ms)", took)
	}
	var n int
	if err := db.QueryRow(ctx, "SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("the next statement: %d, %v", n, err)
	}
	if st := db.Stats().Nodes[0].Pool; st.ClosedError < 1 {
		t.Errorf("the timed-out connection was not closed: %+v", st)
	}
	// Rows stream under the same deadline: a slow result is cut.
	rows, err := db.Query(ctx, "SELECT i, pg_sleep(0.1) FROM generate_series(1, 10) AS i")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("rows slower than socket_timeout: %v; want context.DeadlineExceeded", err)
	}
}

// TestStaleLocalized: a cached plan whose result type changed is known by
// the routine that reports it, also when the server's messages are not in
// English (as a server with lc_messages = 'de_DE.UTF-8' sends it: every
// caller of that connection failed with 0A000 until it closed).
func TestStaleLocalized(t *testing.T) {
	for _, tc := range []struct {
		pe   pgconn.PgError
		want bool
	}{
		{pgconn.PgError{Code: "0A000", Message: "gecachter Plan darf den Ergebnistyp nicht ändern", Routine: "RevalidateCachedQuery"}, true},
		{pgconn.PgError{Code: "0A000", Message: "cached plan must not change result type"}, true},
		{pgconn.PgError{Code: "0A000", Message: "cannot use column reference in DEFAULT expression", Routine: "transformColumnRef"}, false},
		{pgconn.PgError{Code: "26000", Message: "prepared statement \"tendril_1\" does not exist"}, true},
		{pgconn.PgError{Code: "42P01"}, false},
	} {
		if got := stale(fmt.Errorf("wrapped: %w", &tc.pe)); got != tc.want {
			t.Errorf("stale(%s %q, routine %q) = %v, want %v", tc.pe.Code, tc.pe.Message, tc.pe.Routine, got, tc.want)
		}
	}
}

// TestCursorColumnsVary: FETCH from a cursor a function opened (the
// refcursor pattern of PostgreSQL's manual) is prepared once per
// connection, but the cursor behind the name changes from one transaction
// to the next — another caller's, on the same pooled connection — and the
// server does not say so, as it does for a plannable statement (0A000).
// The rows must be read as the cursor's columns are now: the amount 12.5
// came back as the int8 bits of the first cursor's column. A cursor with
// more columns, bound with the first one's binary format for all, fails
// with an error the first time (a numeric in binary) and reads right the
// next.
func TestCursorColumnsVary(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN("max_conns_per_node=1", isolated(t, srv)))
	c := ctx(t)
	for _, q := range []string{
		"CREATE TABLE orders (id bigint, amount float8, total numeric, note text)",
		"INSERT INTO orders VALUES (7, 12.5, 99.25, 'n')",
		"CREATE FUNCTION open_cur(c refcursor, what text) RETURNS refcursor LANGUAGE plpgsql AS $$ BEGIN OPEN c FOR EXECUTE 'SELECT ' || what || ' FROM orders'; RETURN c; END $$",
	} {
		if _, err := db.Exec(c, q); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(what string) ([]any, error) {
		tx, err := db.BeginTx(c, driver.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(c)
		if _, err := tx.Exec(c, "SELECT open_cur('cur', $1)", what); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(c, "FETCH ALL IN cur")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var got []any
		for rows.Next() {
			vals := make([]any, len(rows.Columns()))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return nil, err
			}
			got = append(got, vals...)
		}
		return got, rows.Err()
	}
	for _, tc := range []struct {
		what    string
		want    string
		mayFail bool
	}{
		{"id", "[7]", false},
		{"amount", "[12.5]", false},
		{"note", "[n]", false},
		{"id", "[7]", false},
		{"id, amount", "[7 12.5]", false},
		{"amount", "[12.5]", false},
		{"total, id", "[99.25 7]", true}, // numeric bound in binary: an error, then right
	} {
		got, err := fetch(tc.what)
		if err != nil && tc.mayFail && strings.Contains(err.Error(), "changed since it was prepared") {
			t.Logf("FETCH of %s: %v", tc.what, err)
			got, err = fetch(tc.what)
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("FETCH of a cursor on %s: %v (%T...), %v; want %s", tc.what, got, got, err, tc.want)
		}
	}
}
