package postgres

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestMain checks that no goroutine outlives the tests, once the shared
// server is shut down.
func TestMain(m *testing.M) {
	code := m.Run()
	shared.close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is one PostgreSQL primary for the tests that do not need a server
// of their own (each uses tables of its own): an initdb costs a second or
// two, and CI has two cores for every package.
var shared sharedServer

type sharedServer struct {
	once sync.Once
	fx   *fixture
	srv  *pgtest.Server
}

// primary returns the shared server, started on first use. Without
// PostgreSQL the test is skipped, or fails when CI=true (pgtest.Require).
func primary(t testing.TB) *pgtest.Server {
	t.Helper()
	shared.once.Do(func() {
		shared.fx = &fixture{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			shared.srv = pgtest.StartPrimary(shared.fx)
		}()
		<-done
	})
	fx := shared.fx
	switch {
	case fx.skipped:
		t.Skip(fx.msg)
	case shared.srv == nil || fx.failed:
		t.Fatalf("starting the shared PostgreSQL server: %s", fx.msg)
	}
	return shared.srv
}

func (s *sharedServer) close() {
	if s.fx != nil {
		s.fx.cleanup()
	}
}

// fixture is the pgtest.TB of the shared server: it lives for the whole
// test binary, its cleanups run after the tests.
type fixture struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	msg      string
}

func (f *fixture) Helper()                         {}
func (f *fixture) Logf(format string, args ...any) {}
func (f *fixture) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fixture) Fatal(args ...any) {
	f.Errorf("%s", fmt.Sprint(args...))
	runtime.Goexit()
}
func (f *fixture) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}
func (f *fixture) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fixture) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fixture) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *fixture) cleanup() {
	f.mu.Lock()
	fns := slices.Clone(f.cleanups)
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

var unique atomic.Int64

// isolated returns the DSN parameter that gives the test a schema of its
// own on the shared server (its first search_path entry), so that its
// tables meet no other test's, nor its own of an earlier run (go test
// -count=N).
func isolated(t *testing.T, srv *pgtest.Server) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", strings.ToLower(t.Name()), unique.Add(1))
	if err := srv.Exec(context.Background(), "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return "search_path=" + name
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
