// Package conformance is tendril's driver conformance suite: the promise of
// the user API (package sqlish), made executable. A driver author runs it
// from the driver's own tests, as testing/fstest.TestFS or slogtest.Run are
// used:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Config{
//			Driver:  "mydb",
//			DSN:     "mydb://127.0.0.1:7000",
//			Caps:    driver.CapPing | driver.CapBatch,
//			Dialect: myDialect, // how to write, read, delete, sleep and fail
//			Skip:    map[string]string{"Pool/MinConnsPerNode": "why it cannot pass"},
//		})
//	}
//
// Every check is a subtest with a stable name ("Open/BadDSN",
// "Rows/CloseIdempotent", "Pool/MaxConnsPerNode", "Topology/NodeKilled", ...;
// see Names). Check runs the same checks without a *testing.T and returns one
// Result per check, for command-line tools.
//
// The declared capabilities (Config.Caps) must equal the driver's
// Backend().Caps; a declared capability must be implemented by the driver's
// connections and work through the user API, and an undeclared one must make
// the user API return sqlish.ErrNotSupported. Topology checks need fault
// hooks (Config.Faults) and are skipped without them.
//
// The checks run one after another (never in parallel with each other or
// with other tests: the goroutine-leak check looks at the whole process).
package conformance

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
)

// Config describes the driver under test.
type Config struct {
	// Driver is the registered driver name.
	Driver string
	// DSN reaches a running database. Checks append their own query
	// parameters to it (pool limits, timeouts).
	DSN string
	// NewDSN, when set, returns a fresh DSN (isolated data) and is called
	// once at the start of every check; it overrides DSN. Faults and
	// ServerConns then refer to the database of the latest NewDSN.
	NewDSN func() string
	// UnreachableDSN is a DSN whose every seed refuses connections, for
	// the Connect error checks. When empty, one is made from the DSN with
	// its hosts replaced by closed local ports.
	UnreachableDSN string
	// Caps are the capabilities the driver declares: they must equal
	// Backend().Caps and be implemented.
	Caps driver.Caps
	// Dialect says how to write statements in the backend's language.
	Dialect Dialect
	// Faults are optional fault hooks; the topology checks skip without
	// them.
	Faults *Faults
	// ServerConns, when set, returns the number of client connections the
	// server(s) see open now (the suite's own connections only: not those
	// of the hook itself). It catches drivers that bypass the pool or leak
	// connections.
	ServerConns func() int
	// Skip maps check names (or a group such as "Topology") to the reason
	// they are skipped. A skip without a reason fails the run.
	Skip map[string]string
	// CheckTimeout bounds each check run by Check (default 2 minutes).
	CheckTimeout time.Duration
}

// Dialect builds statements in the backend's language. Each function
// returns a statement and its arguments for sqlish's Exec and Query.
type Dialect struct {
	// Setup statements run on every DB the suite opens, before it is used
	// (a SQL backend creates the table Set and Get use; they must be
	// idempotent: CREATE TABLE IF NOT EXISTS).
	Setup []string
	// Set writes value under key (a write, idempotent).
	Set func(key string, value any) (query string, args []any)
	// Get reads key: one row of one column, or no row when key is missing.
	Get func(key string) (query string, args []any)
	// GetMany reads keys: one row per key in order, with a nil value for a
	// missing key. The keys come from Colocated when it is set.
	GetMany func(keys ...string) (query string, args []any)
	// Del deletes key.
	Del func(key string) (query string, args []any)
	// Slow takes about d and honours cancellation.
	Slow func(d time.Duration) (query string, args []any)
	// ServerError is a statement the server rejects (a *sqlish.ServerError).
	ServerError func() (query string, args []any)
	// SetSession changes the connection's session state to value, in a way
	// Session reads back (Redis: CLIENT SETNAME; PostgreSQL: SET
	// application_name). Optional: the Session checks skip without it.
	SetSession func(value string) (query string, args []any)
	// Session reads the state SetSession changes: one row of one column,
	// or no row when it is unset.
	Session func() (query string, args []any)
	// Incr adds one to the integer at key, creating it at 1: a statement
	// that must not run twice (optional: Retry/NotRepeated skips without
	// it).
	Incr func(key string) (query string, args []any)
	// InReplica is a read whose one row says whether the node that served
	// it is a replica (PostgreSQL: SELECT pg_is_in_recovery()). Optional:
	// Routing/ReadIntent skips without it.
	InReplica func() (query string, args []any)
	// Key returns distinct key names spread over partitions (optional;
	// default "tendril-conformance:<i>"). i is unique within a process.
	Key func(i int) string
	// Colocated returns key names that one GetMany may read together (the
	// same partition, e.g. a Redis hash tag): key i of group (optional;
	// default Key).
	Colocated func(group string, i int) string
}

// Faults are fault-injection hooks on the database under test.
type Faults struct {
	// Nodes returns the nodes' addresses, as the driver reports them.
	Nodes func() []string
	// Kill stops a node (connections refused) until Restart.
	Kill, Restart func(addr string) error
	// Hang makes a node stop answering for d (or until Unhang).
	Hang func(addr string, d time.Duration) error
	// Unhang ends a Hang.
	Unhang func(addr string) error
	// PrimaryOf returns the address of the node serving key's writes.
	PrimaryOf func(key string) string
}

// Result is the outcome of one check run by Check.
type Result struct {
	Name            string
	Passed, Skipped bool
	// Reason is the skip reason, or the failure messages.
	Reason   string
	Duration time.Duration
}

// T is what a check needs of a test: *testing.T implements it, and so does
// the recorder Check uses. Fatalf and Skipf end the check (runtime.Goexit)
// and must be called from the check's goroutine; Errorf and Logf may be
// called from any goroutine.
type T interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	Context() context.Context
}

type check struct {
	name string
	run  func(t T, e *env)
}

// checks lists every check in run order. The topology checks come last:
// they break and repair the database.
var checks []check

func init() {
	checks = []check{
		{"Config/Valid", checkConfigValid},
		{"Registry/Registered", checkRegistered},
		{"Open/BadDSN", checkBadDSN},
		{"Open/NoDial", checkOpenNoDial},
		{"Connect/Deadline", checkConnectDeadline},
		{"Connect/JoinsSeedErrors", checkConnectSeedErrors},
		{"Values/RoundTrip", checkRoundTrip},
		{"Values/EmptyVsNil", checkEmptyVsNil},
		{"Values/ScanTargets", checkScanTargets},
		{"Rows/ErrNoRows", checkErrNoRows},
		{"Rows/CloseIdempotent", checkRowsClose},
		{"Batch/Order", checkBatchOrder},
		{"Cancel/Slow", checkCancel},
		{"Errors/ServerError", checkServerError},
		{"Pool/MaxConnsPerNode", checkMaxConns},
		{"Pool/MinConnsPerNode", checkMinConns},
		{"Pool/IdleTimeout", checkIdleTimeout},
		{"Pool/Timeout", checkPoolTimeout},
		{"Rows/ColumnTypes", checkColumnTypes},
		{"Tx/Isolation", checkIsolation},
		{"Routing/ReadIntent", checkReadIntent},
		{"Session/NotShared", checkSessionNotShared},
		{"Pinned/EveryPartition", checkPinnedEveryPartition},
		{"Close/InFlight", checkCloseInFlight},
		{"Close/ErrClosed", checkClosedErrors},
		{"Close/NoLeaks", checkCloseNoLeaks},
		{"Caps/Declared", checkCapsDeclared},
		{"Caps/Implemented", checkCapsImplemented},
		{"Caps/NotSupported", checkCapsNotSupported},
		{"Caps/Work", checkCapsWork},
		{"Topology/NodeKilled", checkNodeKilled},
		{"Topology/RetriesRightNode", checkRetriesRightNode},
		{"Topology/TotalTimeoutHolds", checkTotalTimeout},
		{"Topology/NotRepeated", checkNotRepeated},
	}
}

// Names returns the names of every check, in run order.
func Names() []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.name
	}
	return out
}

// skipReason returns why the check is skipped by cfg.Skip, by its own name
// or its group's.
func (cfg *Config) skipReason(name string) (reason string, skipped bool) {
	group, _, _ := strings.Cut(name, "/")
	for _, k := range []string{name, group} {
		if r, ok := cfg.Skip[k]; ok {
			if strings.TrimSpace(r) == "" {
				r = "(no reason given: Config/Valid fails)"
			}
			return r, true
		}
	}
	return "", false
}

// Run runs every check as a subtest of t: t.Run(group) then t.Run(name),
// so that "-run TestX/Pool/MaxConnsPerNode" selects one check.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	var group string
	var members []check
	flush := func() {
		if len(members) == 0 {
			return
		}
		ms := members
		t.Run(group, func(t *testing.T) {
			for _, c := range ms {
				_, sub, _ := strings.Cut(c.name, "/")
				t.Run(sub, func(t *testing.T) {
					if r, ok := cfg.skipReason(c.name); ok && c.name != "Config/Valid" {
						t.Skip(r)
					}
					c.run(t, newEnv(t, &cfg))
				})
			}
		})
		members = nil
	}
	for _, c := range checks {
		g, _, _ := strings.Cut(c.name, "/")
		if g != group {
			flush()
			group = g
		}
		members = append(members, c)
	}
	flush()
}

// Check runs every check without a *testing.T and returns one Result per
// check, in run order. It stops early (the remaining checks failed with
// ctx's error) when ctx ends.
func Check(ctx context.Context, cfg Config) []Result {
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			out = append(out, Result{Name: c.name, Reason: "not run: " + err.Error()})
			continue
		}
		if r, ok := cfg.skipReason(c.name); ok && c.name != "Config/Valid" {
			out = append(out, Result{Name: c.name, Skipped: true, Reason: r})
			continue
		}
		out = append(out, runRecorded(ctx, &cfg, c))
	}
	return out
}

// runRecorded runs one check in its own goroutine with a recorder.
func runRecorded(ctx context.Context, cfg *Config, c check) Result {
	timeout := cfg.CheckTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &recorder{name: c.name, ctx: cctx}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.runCleanups()
		defer func() {
			if p := recover(); p != nil {
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				r.Errorf("panic: %v\n%s", p, buf)
			}
		}()
		c.run(r, newEnv(r, cfg))
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		r.Errorf("check did not finish within %v (left running)", timeout)
	case <-ctx.Done():
		r.Errorf("abandoned: %v", ctx.Err())
	}
	res := Result{Name: c.name, Duration: time.Since(start)}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.failed:
		res.Reason = dedupe(r.msgs)
	case r.skipped:
		res.Skipped, res.Reason = true, r.skipReason
	default:
		res.Passed = true
	}
	return res
}

// recorder is the T of Check.
// dedupe joins a check's failure messages, each distinct one once and in
// order, with the number of times it was reported: a check that fails the
// same way for many operations says so in one line.
func dedupe(msgs []string) string {
	count := map[string]int{}
	var order []string
	for _, m := range msgs {
		if count[m] == 0 {
			order = append(order, m)
		}
		count[m]++
	}
	var b strings.Builder
	for i, m := range order {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m)
		if n := count[m]; n > 1 {
			fmt.Fprintf(&b, " (x%d)", n)
		}
	}
	return b.String()
}

type recorder struct {
	name string
	ctx  context.Context

	mu         sync.Mutex
	msgs       []string
	logs       []string
	failed     bool
	skipped    bool
	skipReason string
	cleanups   []func()
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped, r.skipReason = true, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *recorder) Context() context.Context { return r.ctx }

func (r *recorder) runCleanups() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.Errorf("panic in cleanup: %v", p)
				}
			}()
			f()
		}()
	}
}

// checkConfigValid checks the Config itself: the skip map, the dialect.
func checkConfigValid(t T, e *env) {
	cfg := e.cfg
	known := map[string]bool{}
	for _, c := range checks {
		known[c.name] = true
		g, _, _ := strings.Cut(c.name, "/")
		known[g] = true
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Skip)) {
		switch {
		case !known[k]:
			t.Errorf("Skip names %q, which is no check or group (see conformance.Names)", k)
		case strings.TrimSpace(cfg.Skip[k]) == "":
			t.Errorf("Skip[%q] has no reason: every skip must say why", k)
		case k == "Config/Valid" || k == "Config":
			t.Errorf("Config/Valid cannot be skipped")
		}
	}
	if cfg.Driver == "" {
		t.Errorf("Config.Driver is empty")
	}
	if cfg.DSN == "" && cfg.NewDSN == nil {
		t.Errorf("neither Config.DSN nor Config.NewDSN is set")
	}
	d := cfg.Dialect
	for name, missing := range map[string]bool{
		"Set": d.Set == nil, "Get": d.Get == nil, "GetMany": d.GetMany == nil, "Del": d.Del == nil,
		"Slow": d.Slow == nil, "ServerError": d.ServerError == nil,
	} {
		if missing {
			t.Errorf("Config.Dialect.%s is nil", name)
		}
	}
	if f := cfg.Faults; f != nil {
		if f.Nodes == nil || f.Kill == nil || f.Restart == nil || f.Hang == nil || f.Unhang == nil || f.PrimaryOf == nil {
			t.Errorf("Config.Faults is set but some of its hooks are nil (all are needed)")
		}
	}
}

// keySeq makes key numbers unique within the process and, thanks to the
// time-based start, across runs against one long-lived server.
var keySeq atomic.Int64

func init() { keySeq.Store(time.Now().UnixNano() % 1e12 * 1000) }
