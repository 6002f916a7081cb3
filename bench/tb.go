package main

import (
	"fmt"
	"log"
	"os"
	"sync"
)

// runTB implements redistest.TB for a program that is not a test: Logf goes
// to the log, Fatal/Fatalf/Skipf panic with a fatal value that main recovers
// (after running every cleanup), Cleanup functions run LIFO when done is
// called (or when the program dies of a fatal error or a signal), TempDir
// directories are removed last.
//
// The redistest helpers must be called from the goroutine that runs main's
// deferred recovery (they are: only main's goroutine starts, kills and
// waits for clusters).
type runTB struct {
	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	finished bool
}

type fatal struct{ msg string }

func (f fatal) Error() string { return f.msg }

var (
	liveMu sync.Mutex
	live   = map[*runTB]bool{}
)

func newTB(name string) *runTB {
	t := &runTB{name: name}
	liveMu.Lock()
	live[t] = true
	liveMu.Unlock()
	return t
}

func (t *runTB) Helper() {}

func (t *runTB) Logf(format string, args ...any) {
	if *verbose {
		log.Printf("[%s] "+format, append([]any{t.name}, args...)...)
	}
}

func (t *runTB) Fatal(args ...any) { t.fail(fmt.Sprint(args...)) }

// Errorf is as fatal as Fatalf for the harness: a helper that reports an
// error cannot be trusted to have done its job.
func (t *runTB) Errorf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

func (t *runTB) Fatalf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

// Skipf happens when redis-server or redis-cli is missing (or TLS is
// unsupported): for the harness that is as fatal as any other failure.
func (t *runTB) Skipf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

func (t *runTB) fail(msg string) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	panic(fatal{fmt.Sprintf("%s: %s", t.name, msg)})
}

func (t *runTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *runTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *runTB) TempDir() string {
	dir, err := os.MkdirTemp("", "tendril-bench-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// done runs the cleanups, last registered first. It is idempotent.
func (t *runTB) done() {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.finished = true
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	liveMu.Lock()
	delete(live, t)
	liveMu.Unlock()
}

// cleanupAll runs the cleanups of every TB not done yet (fatal error,
// signal).
func cleanupAll() {
	liveMu.Lock()
	var ts []*runTB
	for t := range live {
		ts = append(ts, t)
	}
	liveMu.Unlock()
	for _, t := range ts {
		t.done()
	}
}
