package stdlib_test

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/stdlib"
)

// TestMain checks that no goroutine outlives the tests (database/sql's
// opener, tendril's tenders, pools and readers) once the shared server is
// shut down.
func TestMain(m *testing.M) { shared.Main(m) }

// shared is one PostgreSQL primary for the tests that need no server of
// their own.
var shared pgtest.Shared

// primary returns the shared server (see pgtest.Shared).
func primary(t testing.TB) *pgtest.Server {
	t.Helper()
	return shared.Primary(t)
}

// unique numbers the roles and names tests create on the shared server.
var unique atomic.Int64

// isolated gives the test a schema of its own on srv (see pgtest.Isolated).
func isolated(t *testing.T, srv *pgtest.Server) string {
	t.Helper()
	return pgtest.Isolated(t, srv)
}

// open opens a *sql.DB on dsn through the "tendril" driver, closed when
// the test ends.
func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(stdlib.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPG opens a *sql.DB on the shared server, in a schema of the test's
// own.
func openPG(t *testing.T, params ...string) (*sql.DB, *pgtest.Server) {
	t.Helper()
	srv := primary(t)
	db := open(t, srv.DSN(append(params, isolated(t, srv))...))
	if err := db.PingContext(ctx(t)); err != nil {
		t.Fatal(err)
	}
	return db, srv
}

// ctx returns a context bounded for one test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// inUse sums the connections the tendril pools behind db have lent out.
func inUse(t *testing.T, db *sql.DB) int {
	t.Helper()
	return underlying(t, db).Stats().InUse
}

// underlying returns the sqlish.DB behind a *sql.DB opened by openBridged.
func underlying(t *testing.T, db *sql.DB) *sqlish.DB {
	t.Helper()
	if d, ok := bridged.Load(db); ok {
		return d.(*sqlish.DB)
	}
	t.Fatal("underlying: the *sql.DB was not opened with openBridged")
	return nil
}

// bridged maps the *sql.DBs made by openBridged to their sqlish.DB.
var bridged sync.Map

// openBridged opens a sqlish.DB on dsn and a *sql.DB on it, so that the
// test can look at tendril's pools under database/sql.
func openBridged(t *testing.T, driverName, dsn string) (*sql.DB, *sqlish.DB) {
	t.Helper()
	sdb, err := sqlish.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromDB(sdb)
	bridged.Store(db, sdb)
	t.Cleanup(func() {
		db.Close()
		sdb.Close()
		bridged.Delete(db)
	})
	return db, sdb
}

// waitIdle waits until no tendril connection behind db is in use: a
// connection released asynchronously (a Tx ended by its context) takes a
// moment.
func waitIdle(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for inUse(t, db) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tendril connections still in use", inUse(t, db))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
