package stdlib_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/stdlib"
)

// The tests in this file run on the in-process memory backend: no server
// needed.

// memDSN names a memory cluster of the test's own.
func memDSN(t *testing.T, params string) string {
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + fmt.Sprint(unique.Add(1))
	if params != "" {
		return "memory://" + name + "?" + params
	}
	return "memory://" + name
}

// nullPtr's Value has a value receiver: called through a nil *nullPtr it
// would dereference it.
type nullPtr struct{ s string }

func (n nullPtr) Value() (driver.Value, error) { return n.s, nil }

// ptrValuer's Value has a pointer receiver and handles nil itself.
type ptrValuer struct{}

func (p *ptrValuer) Value() (driver.Value, error) {
	if p == nil {
		return "nil-receiver", nil
	}
	return "set", nil
}

// TestArguments: database/sql Valuers, tendril's sqlish.Null, nil pointers
// of either, and plain values reach the backend as database/sql would
// convert them; named arguments and sql.Out are refused before anything is
// sent, naming the problem.
func TestArguments(t *testing.T) {
	db := open(t, memDSN(t, ""))
	c := ctx(t)
	var nilString *string
	var nilNull *sqlish.Null[string]
	var nilSQL *sql.NullString
	var nilValue *nullPtr
	var nilPtrValuer *ptrValuer
	cases := []struct {
		arg  any
		want sql.NullString
	}{
		{sql.NullString{String: "ns", Valid: true}, sql.NullString{String: "ns", Valid: true}},
		{sql.NullInt64{Int64: 7, Valid: true}, sql.NullString{String: "7", Valid: true}},
		{sql.NullTime{Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Valid: true}, sql.NullString{String: "2024-01-02T03:04:05Z", Valid: true}},
		{sqlish.Null[int64]{V: 9, Valid: true}, sql.NullString{String: "9", Valid: true}},
		{int16(-3), sql.NullString{String: "-3", Valid: true}},
		{uint8(200), sql.NullString{String: "200", Valid: true}},
		{float32(1.5), sql.NullString{String: "1.5", Valid: true}},
		{[]byte("raw"), sql.NullString{String: "raw", Valid: true}},
		{&nullPtr{"p"}, sql.NullString{String: "p", Valid: true}},
		{nilPtrValuer, sql.NullString{String: "nil-receiver", Valid: true}},
	}
	for i, tc := range cases {
		key := fmt.Sprintf("arg%d", i)
		if _, err := db.ExecContext(c, "SET ? ?", key, tc.arg); err != nil {
			t.Fatalf("%T: %v", tc.arg, err)
		}
		var got sql.NullString
		if err := db.QueryRowContext(c, "GET ?", key).Scan(&got); err != nil {
			t.Fatalf("%T: %v", tc.arg, err)
		}
		if got != tc.want {
			t.Errorf("%T %v: stored %+v, want %+v", tc.arg, tc.arg, got, tc.want)
		}
	}
	// NULL arguments reach sqlish as nil, without a Value method called
	// on a nil pointer (a panic): Redis has no NULL, and sqlish says so.
	for _, arg := range []any{nil, nilString, nilNull, nilSQL, nilValue, sql.NullString{}} {
		_, err := db.ExecContext(c, "SET ? ?", "nullkey", arg)
		if err == nil || !strings.Contains(err.Error(), "argument 2 is nil") {
			t.Errorf("%T(nil): %v, want sqlish's refusal of a nil argument", arg, err)
		}
	}

	_, err := db.ExecContext(c, "SET ? ?", "k", sql.Named("v", 1))
	if err == nil || !errors.Is(err, sqlish.ErrNotSupported) || !strings.Contains(err.Error(), "named argument") {
		t.Errorf("sql.Named: %v, want an error wrapping ErrNotSupported naming the problem", err)
	}
	var out string
	_, err = db.ExecContext(c, "GET ?", sql.Out{Dest: &out})
	if err == nil || !errors.Is(err, sqlish.ErrNotSupported) {
		t.Errorf("sql.Out: %v, want an error wrapping ErrNotSupported", err)
	}
	_, err = db.ExecContext(c, "SET ? ?", "k", struct{ X int }{1})
	if err == nil || !strings.Contains(err.Error(), "unsupported type") {
		t.Errorf("a struct: %v, want sqlish's unsupported type", err)
	}
	res, err := db.ExecContext(c, "SET k v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.LastInsertId(); !errors.Is(err, sqlish.ErrNotSupported) {
		t.Errorf("LastInsertId: %v, want ErrNotSupported", err)
	}
	if n, err := res.RowsAffected(); n != 1 || err != nil {
		t.Errorf("RowsAffected of SET = %d, %v; want 1", n, err)
	}
}

// TestSessionPinsHandle: a session statement (SELECT) refused by sqlish on
// its shared pools makes the handle pin a connection. On a *sql.Conn the
// session continues until Close; then the pinned connection goes back,
// reset, and database/sql discards the handle. On the *sql.DB it lasts for
// the statement.
func TestSessionPinsHandle(t *testing.T) {
	db, sdb := openBridged(t, "memory", memDSN(t, ""))
	c := ctx(t)
	if _, err := sdb.Exec(c, "SELECT 0"); !errors.Is(err, sqlish.ErrSessionState) {
		t.Fatalf("sqlish on its DB: %v, want ErrSessionState", err)
	}
	// On the *sql.DB: it runs (pinned for the statement), and holds nothing.
	if _, err := db.ExecContext(c, "SELECT 0"); err != nil {
		t.Fatalf("SELECT 0 on the *sql.DB: %v", err)
	}
	if n := inUse(t, db); n != 0 {
		t.Errorf("%d tendril connections in use after a session statement on the *sql.DB, want 0", n)
	}
	if s := db.Stats(); s.OpenConnections != 0 {
		t.Errorf("database/sql keeps %d handles open after a session statement, want the pinned one discarded", s.OpenConnections)
	}

	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(c, "SET ? ?", "k", "v"); err != nil { // before any session: routed
		t.Fatal(err)
	}
	if n := inUse(t, db); n != 0 {
		t.Errorf("%d tendril connections in use by a *sql.Conn without a session, want 0", n)
	}
	if _, err := conn.ExecContext(c, "SELECT 0"); err != nil {
		t.Fatal(err)
	}
	if n := inUse(t, db); n != 1 {
		t.Errorf("%d tendril connections in use by a *sql.Conn with a session, want 1 (pinned)", n)
	}
	var v string
	if err := conn.QueryRowContext(c, "GET k").Scan(&v); err != nil || v != "v" {
		t.Errorf("GET on the pinned session: %q, %v", v, err)
	}
	// The session's connection is busy while Rows are open on it: a
	// statement meanwhile fails, naming why, and works once they close.
	rows, err := conn.QueryContext(c, "KEYS *")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(c, "SET k v2"); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a statement while the session's Rows are open: %v, want a busy error", err)
	}
	rows.Close()
	if _, err := conn.ExecContext(c, "SET k v2"); err != nil {
		t.Errorf("after the Rows closed: %v", err)
	}
	if err := conn.PingContext(c); err != nil {
		t.Errorf("Ping on the pinned session: %v", err)
	}
	conn.Close()
	if n := inUse(t, db); n != 0 {
		t.Errorf("%d tendril connections in use after the *sql.Conn closed, want 0", n)
	}
	if s := db.Stats(); s.OpenConnections != 0 {
		t.Errorf("database/sql kept the handle that held a session (%d open)", s.OpenConnections)
	}
}

// TestRowsCloseMidIteration: Rows closed before their end give their
// handle back to database/sql (one allowed) and their connection back to
// tendril's pool.
func TestRowsCloseMidIteration(t *testing.T) {
	db, sdb := openBridged(t, "memory", memDSN(t, ""))
	db.SetMaxOpenConns(1)
	c := ctx(t)
	for i := range 50 {
		if _, err := sdb.Exec(c, "SET ? ?", fmt.Sprintf("key%02d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		rows, err := db.QueryContext(c, "KEYS *")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if !rows.Next() {
				t.Fatalf("no row: %v", rows.Err())
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// With one handle allowed, this waits forever unless Close
		// returned it.
		short, cancel := context.WithTimeout(c, 2*time.Second)
		var n int
		err = db.QueryRowContext(short, "DBSIZE").Scan(&n)
		cancel()
		if err != nil || n != 50 {
			t.Fatalf("after Rows.Close: DBSIZE %d, %v", n, err)
		}
	}
	if n := inUse(t, db); n != 0 {
		t.Errorf("%d tendril connections in use after Rows.Close, want 0", n)
	}
}

// TestNoTransactions: a backend without transactions says so, with an
// error wrapping ErrNotSupported, and the handle stays usable.
func TestNoTransactions(t *testing.T) {
	db := open(t, memDSN(t, ""))
	c := ctx(t)
	_, err := db.BeginTx(c, nil)
	if !errors.Is(err, sqlish.ErrNotSupported) {
		t.Fatalf("BeginTx on memory: %v, want ErrNotSupported", err)
	}
	_, err = db.BeginTx(c, &sql.TxOptions{Isolation: sql.IsolationLevel(42)})
	if !errors.Is(err, sqlish.ErrNotSupported) || !strings.Contains(err.Error(), "isolation") {
		t.Fatalf("BeginTx with an unknown level: %v, want ErrNotSupported naming the isolation level", err)
	}
	if _, err := db.ExecContext(c, "SET a b"); err != nil {
		t.Fatal(err)
	}
}

// TestDSNErrorsHidePassword: a bad DSN or an unknown backend fails
// sql.Open, naming the problem, never the password.
func TestDSNErrorsHidePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	for _, dsn := range []string{
		"memory://u:" + secret + "@x?bogus_key=1",
		"memory://u:" + secret + "@x?timeout=forever",
		"nosuchdriver://u:" + secret + "@x",
		"memory://u:" + secret + "@",
		"u:" + secret + "@x",
		"memory://u:" + secret + "/x@host",
	} {
		db, err := sql.Open(stdlib.DriverName, dsn)
		if err == nil {
			db.Close()
			t.Errorf("%q: no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
			t.Errorf("the error shows the password: %v", err)
		}
		t.Logf("%v", err)
	}
	if _, err := stdlib.OpenDB("nosuchdriver", sqlish.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "unknown driver") {
		t.Errorf("OpenDB with an unknown driver: %v", err)
	}
}

// TestClosed: after DB.Close every call fails with database/sql's error,
// the sqlish.DB behind it is closed, and OpenDBFromDB's sqlish.DB is not.
func TestClosed(t *testing.T) {
	db, err := sql.Open(stdlib.DriverName, memDSN(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if err := db.PingContext(c); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.ExecContext(c, "SET a b"); err == nil {
		t.Error("Exec after Close succeeded")
	}

	// A connection opened by the driver alone owns a sqlish.DB of its own,
	// closed with it (goleak in TestMain sees a tender left running).
	cn, err := db.Driver().Open(memDSN(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.(driver.Pinger).Ping(c); err != nil {
		t.Error(err)
	}
	cn.Close()

	sdb, err := sqlish.Open("memory", memDSN(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	db = stdlib.OpenDBFromDB(sdb)
	if _, err := db.ExecContext(c, "SET a b"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sdb.Exec(c, "SET a c"); err != nil {
		t.Errorf("the shared sqlish.DB after the *sql.DB closed: %v", err)
	}
	// Closing the sqlish.DB ends a *sql.DB that shares it.
	db = stdlib.OpenDBFromDB(sdb)
	defer db.Close()
	sdb.Close()
	if _, err := db.ExecContext(c, "SET a b"); !errors.Is(err, sqlish.ErrClosed) {
		t.Errorf("Exec on a closed shared sqlish.DB: %v, want ErrClosed", err)
	}
}

// TestBadConn: a pinned session whose node died: the first statement was
// sent and fails with the network's error (not ErrBadConn: it may have
// run); the next finds the connection broken before sending, which is
// database/sql's driver.ErrBadConn, and database/sql closes the *sql.Conn.
// The *sql.DB, routed by tendril, carries on once the node is back.
func TestBadConn(t *testing.T) {
	dsn := memDSN(t, "tend_interval=50ms&total_timeout=3s")
	db, _ := openBridged(t, "memory", dsn)
	c := ctx(t)
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "SELECT 0"); err != nil { // pins
		t.Fatal(err)
	}
	cl := memory.Lookup(strings.TrimPrefix(strings.Split(dsn, "?")[0], "memory://"))
	addr := cl.Nodes()[0].Addr
	if err := cl.Kill(addr); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(c, "SET a b")
	if err == nil || errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("first statement after the kill: %v, want the network's error, not ErrBadConn", err)
	}
	_, err = conn.ExecContext(c, "SET a b")
	if !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("second statement after the kill: %v, want driver.ErrBadConn", err)
	}
	if _, err := conn.ExecContext(c, "SET a b"); !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("after ErrBadConn: %v, want database/sql to have closed the *sql.Conn (ErrConnDone)", err)
	}
	if err := cl.Restart(addr); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(c, "SET a c"); err != nil {
		t.Errorf("the *sql.DB after the node came back: %v", err)
	}
	waitIdle(t, db)
}

// TestCancelledContext: a cancelled context fails a call before anything
// is sent, and leaves nothing held.
func TestCancelledContext(t *testing.T) {
	db := open(t, memDSN(t, ""))
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, err := db.ExecContext(c, "SET a b"); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec: %v, want context.Canceled", err)
	}
	if _, err := db.QueryContext(c, "GET a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Query: %v, want context.Canceled", err)
	}
	if err := db.PingContext(c); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping: %v, want context.Canceled", err)
	}
	if _, err := db.ExecContext(ctx(t), "SET a b"); err != nil {
		t.Errorf("Exec with a live context: %v", err)
	}
}
