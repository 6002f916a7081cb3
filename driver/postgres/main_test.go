package postgres

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestMain checks that no goroutine outlives the tests once the shared
// server is shut down.
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

// connect opens a DB on dsn and waits for its first node.
func connect(t *testing.T, dsn string) *sqlish.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	db, err := sqlish.Connect(ctx, "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counter counts the sockets connectors make and the writes on them,
// through the test hook: a write is a round trip, the protocol being
// request and response.
type counter struct {
	conns, writes atomic.Int64
}

// hook makes the connectors opened until the test ends wrap their sockets
// in c. Tests that use it do not run in parallel.
func (c *counter) hook(t *testing.T) {
	testWrap = func(nc net.Conn) net.Conn {
		c.conns.Add(1)
		return &countConn{Conn: nc, c: c}
	}
	t.Cleanup(func() { testWrap = nil })
}

type countConn struct {
	net.Conn
	c *counter
}

func (cc *countConn) Write(b []byte) (int, error) {
	cc.c.writes.Add(1)
	return cc.Conn.Write(b)
}

// ctx returns a context bounded for one test step.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
