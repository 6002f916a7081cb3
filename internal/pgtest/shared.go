package pgtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// Shared is one primary for a test binary's tests that need no server of
// their own (each works in a schema of its own, see [Isolated]): an initdb
// costs a second or two, and CI has two cores for every package. The
// server starts on first use; TestMain calls Close after the tests.
type Shared struct {
	Opts []Option // for StartPrimary

	once sync.Once
	fx   *fixture
	srv  *Server
}

// Primary returns the shared server, starting it on first use. Without
// PostgreSQL the test is skipped, or fails when CI=true (see [Require]).
func (s *Shared) Primary(t TB) *Server {
	t.Helper()
	s.once.Do(func() {
		s.fx = &fixture{}
		done := make(chan struct{})
		go func() { // the fixture's Fatal ends this goroutine, not the test's
			defer close(done)
			s.srv = StartPrimary(s.fx, s.Opts...)
		}()
		<-done
	})
	switch fx := s.fx; {
	case fx.skipped:
		t.Skipf("%s", fx.msg)
	case s.srv == nil || fx.failed:
		t.Fatalf("starting the shared PostgreSQL server: %s", fx.msg)
	}
	return s.srv
}

// Close stops the shared server, if it was started.
func (s *Shared) Close() {
	if s.fx != nil {
		s.fx.cleanup()
	}
}

// Main is a TestMain for a package whose tests share s: it runs them,
// stops the server, then fails the run if a goroutine outlived the tests
// (tenders, pools, readers...), and exits.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	s.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fixture is the TB of a shared server: it lives as long as the test
// binary, and its cleanups run at Shared.Close.
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

// Isolated creates a schema of the test's own on srv and returns the DSN
// parameter that makes it the first entry of the search_path: the test's
// tables then meet no other test's, nor its own of an earlier run (go
// test -count=N).
func Isolated(t interface {
	TB
	Name() string
}, srv *Server) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), unique.Add(1))
	if err := srv.Exec(context.Background(), "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return "search_path=" + name
}
