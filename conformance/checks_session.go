package conformance

import (
	"errors"
	"fmt"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// checkSessionNotShared: what a pinned Conn changed of its session does
// not follow its connection back to the pool, and a session-changing
// statement run on the DB itself is refused (or leaves nothing behind).
func checkSessionNotShared(t T, e *env) {
	if e.d.SetSession == nil || e.d.Session == nil {
		t.Skipf("Dialect.SetSession and Dialect.Session are not set")
	}
	// One connection per node: the next statement on the node gets the
	// very connection the Conn used.
	db := e.connect("max_conns_per_node=1", "max_retries=0")
	ctx := e.ctx(20 * time.Second)
	session := func() string {
		t.Helper()
		q, args := e.d.Session()
		var s sqlish.Null[string]
		err := db.QueryRow(ctx, q, args...).Scan(&s)
		if err != nil && !errors.Is(err, sqlish.ErrNoRows) {
			t.Fatalf("Session(): %v", err)
		}
		return s.V
	}
	before := session()
	for i := range 3 {
		value := fmt.Sprintf("tendril-conformance-leak-%d", i)
		cn, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		// Keyless, the statement binds the Conn to the node keyless
		// statements on the DB go to.
		q, args := e.d.SetSession(value)
		if _, err := cn.Exec(ctx, q, args...); err != nil {
			cn.Close()
			t.Fatalf("SetSession on a Conn: %v", err)
		}
		q, args = e.d.Session()
		var got sqlish.Null[string]
		if err := cn.QueryRow(ctx, q, args...).Scan(&got); err != nil || got.V != value {
			t.Errorf("Session() on the Conn that set it: %q, %v; want %q (the dialect's SetSession and Session disagree)", got.V, err, value)
		}
		cn.Close()
		if s := session(); s == value {
			t.Fatalf("a Conn's session state (%q) reached the next caller of its connection: the connection was not reset", value)
		} else if s != before {
			t.Errorf("Session() = %q after a Conn was closed, want %q as before", s, before)
		}
	}
	q, args := e.d.SetSession("tendril-conformance-shared")
	_, err := db.Exec(ctx, q, args...)
	if err != nil && !errors.Is(err, sqlish.ErrSessionState) {
		t.Errorf("SetSession on the DB: %v; want success or sqlish.ErrSessionState", errString(err))
	}
	if s := session(); s == "tendril-conformance-shared" {
		t.Errorf("a session-changing statement run on the DB changed its shared connections' session")
	}
}

// checkPinnedEveryPartition: a pinned Conn and a transaction work on keys
// of every partition, whichever node serves it.
func checkPinnedEveryPartition(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(30 * time.Second)
	var failed []string
	for i := range 24 {
		k := e.key()
		cn, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		q, args := e.d.Set(k, i)
		_, err = cn.Exec(ctx, q, args...)
		var n int
		if err == nil {
			q, args = e.d.Get(k)
			err = cn.QueryRow(ctx, q, args...).Scan(&n)
		}
		cn.Close()
		if err != nil || n != i {
			failed = append(failed, fmt.Sprintf("Conn: key %s: %d, %v", k, n, errString(err)))
		}
		if !e.cfg.Caps.Has(driver.CapTx) {
			continue
		}
		tx, err := db.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			t.Fatalf("BeginTx: %v", err)
		}
		q, args = e.d.Set(k, i+1000)
		if _, err = tx.Exec(ctx, q, args...); err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Rollback(ctx)
		}
		if err == nil {
			err = e.get(ctx, db, k, &n)
		}
		if err != nil || n != i+1000 {
			failed = append(failed, fmt.Sprintf("Tx: key %s: %d, %v", k, n, errString(err)))
		}
	}
	for _, f := range failed {
		t.Errorf("a pinned connection failed on a key: %s", f)
	}
}

// checkNotRepeated: a statement that must not run twice is not retried
// after an attempt that may have reached the server; its error says the
// outcome is unknown. A statement that may run twice is retried.
func checkNotRepeated(t T, e *env) {
	if e.d.Incr == nil {
		t.Skipf("Dialect.Incr is not set")
	}
	f := e.needFaults()
	db := e.connect("socket_timeout=100ms", "total_timeout=2s", "max_retries=3", "sleep_between_retries=10ms")
	ctx := e.ctx(30 * time.Second)
	k := e.key()
	primary := f.PrimaryOf(k)
	if primary == "" {
		t.Fatalf("Faults.PrimaryOf(%q) is empty", k)
	}
	// A connection to the node, made before it hangs: the statement is
	// sent, then the node hangs for longer than socket_timeout and
	// recovers within total_timeout, so that a retry would succeed.
	e.set(ctx, db, k, 0)
	if err := f.Hang(primary, 400*time.Millisecond); err != nil {
		t.Fatalf("Faults.Hang(%s): %v", primary, err)
	}
	q, args := e.d.Incr(k)
	_, err := db.Exec(ctx, q, args...)
	if err == nil {
		t.Errorf("Incr on a node that hangs past socket_timeout succeeded: it was retried")
	} else if !errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("Incr that timed out: %v; want an error wrapping sqlish.ErrOutcomeUnknown", errString(err))
	}
	f.Unhang(primary)
	// The statement ran once, or not at all (a SQL server may cancel it
	// when its caller gives up); never twice.
	var n int
	eventually(2*time.Second, func() bool { return e.get(ctx, db, k, &n) == nil && n >= 1 })
	time.Sleep(200 * time.Millisecond) // a repeat would land after the first
	if err := e.get(ctx, db, k, &n); err != nil || n > 1 {
		t.Errorf("after one Incr that timed out the value is %d (%v), want at most 1: the statement ran more than once", n, errString(err))
	}
}

// checkColumnTypes: Rows.ColumnTypes describes every column, by name at
// least; a type the driver names comes with the Go type it scans as.
func checkColumnTypes(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	k := e.key()
	e.set(ctx, db, k, "v")
	q, args := e.d.Get(k)
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rows.Close()
	cols, types := rows.Columns(), rows.ColumnTypes()
	if len(types) != len(cols) {
		t.Fatalf("ColumnTypes has %d entries for %d columns", len(types), len(cols))
	}
	for i, ct := range types {
		if ct.Name != cols[i] {
			t.Errorf("column %d: ColumnTypes names %q, Columns %q", i, ct.Name, cols[i])
		}
		if ct.DatabaseType != "" && ct.ScanType == nil {
			t.Errorf("column %s: type %s without a ScanType", ct.Name, ct.DatabaseType)
		}
	}
	if !rows.Next() {
		t.Fatalf("Get returned no row: %v", rows.Err())
	}
}

// checkIsolation: a transaction at each isolation level either works or
// is refused with ErrNotSupported, never something else.
func checkIsolation(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	if !e.cfg.Caps.Has(driver.CapTx) {
		if _, err := db.BeginTx(ctx, driver.TxOptions{Isolation: driver.LevelSerializable}); !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("BeginTx without CapTx: %v; want sqlish.ErrNotSupported", errString(err))
		}
		return
	}
	for _, opts := range []driver.TxOptions{
		{Isolation: driver.LevelSerializable}, {Isolation: driver.LevelRepeatableRead},
		{Isolation: driver.LevelReadCommitted}, {ReadOnly: true},
	} {
		k := e.key()
		tx, err := db.BeginTx(ctx, opts)
		if err == nil {
			q, args := e.d.Get(k)
			_, err = tx.Exec(ctx, q, args...)
			if err == nil {
				err = tx.Commit(ctx)
			} else {
				tx.Rollback(ctx)
			}
		}
		if err != nil && !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("transaction %+v: %v; want success or sqlish.ErrNotSupported", opts, errString(err))
		}
	}
}

// checkReadIntent: with read_preference=replica, statements declared reads
// (sqlish.WithRead) are served by replicas, and the others by a primary.
func checkReadIntent(t T, e *env) {
	if e.d.InReplica == nil {
		t.Skipf("Dialect.InReplica is not set")
	}
	db := e.connect("read_preference=replica")
	ctx := e.ctx(20 * time.Second)
	replicas := 0
	for _, n := range db.Nodes() {
		if n.Role == "replica" && n.Healthy {
			replicas++
		}
	}
	if replicas == 0 {
		t.Skipf("no healthy replica: %v", db.Nodes())
	}
	q, args := e.d.InReplica()
	for i := range 10 {
		var onReplica bool
		if err := db.QueryRow(sqlish.WithRead(ctx), q, args...).Scan(&onReplica); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !onReplica {
			t.Errorf("read %d declared with WithRead was served by a primary (read_preference=replica)", i)
		}
		if err := db.QueryRow(ctx, q, args...).Scan(&onReplica); err != nil {
			t.Fatalf("statement %d: %v", i, err)
		}
		if onReplica {
			t.Errorf("statement %d not declared a read was served by a replica", i)
		}
	}
}
