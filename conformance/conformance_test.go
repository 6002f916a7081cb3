package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/conformance"
	_ "github.com/tendril-db/tendril/driver/memory"
)

// only skips every check but names.
func only(cfg conformance.Config, names ...string) conformance.Config {
	cfg.Skip = map[string]string{}
	for _, n := range conformance.Names() {
		if n != "Config/Valid" && !slices.Contains(names, n) {
			cfg.Skip[n] = "not under test here"
		}
	}
	return cfg
}

func results(t *testing.T, cfg conformance.Config) map[string]conformance.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out := map[string]conformance.Result{}
	for _, r := range conformance.Check(ctx, cfg) {
		out[r.Name] = r
	}
	return out
}

// The wrapper without a defect passes every check: the checks that catch
// the defects below do not fail a correct driver.
func TestBrokenDriverWithoutDefectPasses(t *testing.T) {
	for _, r := range conformance.Check(t.Context(), brokenConfig(none)) {
		if r.Name == "Routing/ReadIntent" && r.Skipped { // the Redis dialect has no InReplica
			continue
		}
		if !r.Passed {
			t.Errorf("%s: passed=%v skipped=%v: %s", r.Name, r.Passed, r.Skipped, r.Reason)
		}
	}
}

// Every seeded defect is reported by the check meant to catch it.
func TestSeededDefectsAreCaught(t *testing.T) {
	cases := []struct {
		d        defect
		caughtBy []string // each of these checks must fail
	}{
		{leakConns, []string{"Pool/IdleTimeout", "Close/NoLeaks", "Close/InFlight"}},
		{ignoreCancel, []string{"Cancel/Slow"}},
		{batchReversed, []string{"Batch/Order"}},
		{undeclaredCap, []string{"Caps/Implemented", "Caps/Work"}},
		{nilAsEmptyRow, []string{"Rows/ErrNoRows"}},
		{hiddenConn, []string{"Pool/MaxConnsPerNode"}},
		{wrongCapsInCfg, []string{"Caps/Declared"}},
		{skipReset, []string{"Session/NotShared"}},
		{allIdempotent, []string{"Topology/NotRepeated"}},
		{keyless, []string{"Pinned/EveryPartition"}},
	}
	for _, c := range cases {
		t.Run(string(c.d), func(t *testing.T) {
			res := results(t, only(brokenConfig(c.d), c.caughtBy...))
			if r := res["Config/Valid"]; !r.Passed {
				t.Fatalf("Config/Valid: %s", r.Reason)
			}
			for _, name := range c.caughtBy {
				r, ok := res[name]
				switch {
				case !ok:
					t.Errorf("no result for %s", name)
				case r.Passed || r.Skipped:
					t.Errorf("defect %s not caught by %s (passed=%v skipped=%v %s)", c.d, name, r.Passed, r.Skipped, r.Reason)
				default:
					t.Logf("%s caught %s in %v: %s", name, c.d, r.Duration.Round(time.Millisecond), firstLine(r.Reason))
				}
			}
		})
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Run (not only Check) reports a defect: the test binary runs itself with a
// broken driver and must fail in the expected subtest.
func TestRunReportsDefect(t *testing.T) {
	if os.Getenv("CONFORMANCE_RUN_BROKEN") != "" {
		conformance.Run(t, only(brokenConfig(batchReversed), "Batch/Order", "Values/RoundTrip"))
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestRunReportsDefect$", "-test.v")
	cmd.Env = append(os.Environ(), "CONFORMANCE_RUN_BROKEN=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Run with a driver returning batch results out of order passed:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestRunReportsDefect/Batch/Order",
		"--- PASS: TestRunReportsDefect/Values/RoundTrip",
		"--- SKIP: TestRunReportsDefect/Pool/MaxConnsPerNode",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSkipNeedsReason(t *testing.T) {
	cfg := only(brokenConfig(none), "Registry/Registered")
	cfg.Skip["Caps/Declared"] = ""
	cfg.Skip["No/SuchCheck"] = "typo"
	res := results(t, cfg)
	r := res["Config/Valid"]
	if r.Passed || !strings.Contains(r.Reason, `Skip["Caps/Declared"] has no reason`) || !strings.Contains(r.Reason, "No/SuchCheck") {
		t.Errorf("Config/Valid with a reasonless skip and an unknown name: %+v", r)
	}
	if r := res["Caps/Declared"]; !r.Skipped {
		t.Errorf("Caps/Declared: %+v", r)
	}
}

func TestNames(t *testing.T) {
	names := conformance.Names()
	for _, want := range []string{"Open/BadDSN", "Rows/CloseIdempotent", "Pool/MaxConnsPerNode", "Topology/NodeKilled"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || strings.Count(n, "/") != 1 {
			t.Errorf("bad or duplicate check name %q", n)
		}
		seen[n] = true
	}
}

func TestAppendParams(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"memory://a", "memory://a?x=1&y=2"},
		{"memory://a?", "memory://a?x=1&y=2"},
		{"memory://a?nodes=3", "memory://a?nodes=3&x=1&y=2"},
		{"redis://u:p@h:1/0?protocol=2&", "redis://u:p@h:1/0?protocol=2&x=1&y=2"},
	} {
		if got := conformance.AppendParams(c.dsn, "x=1", "", "y=2"); got != c.want {
			t.Errorf("AppendParams(%q) = %q, want %q", c.dsn, got, c.want)
		}
	}
}

// As the CLI runs it: one DSN, no fault hooks, no server connection count.
func TestCheckWithDSNOnly(t *testing.T) {
	cfg := conformance.Config{
		Driver:  "memory",
		DSN:     "memory://conform-dsn-only?nodes=3",
		Caps:    memCaps,
		Dialect: conformance.RedisDialect(),
	}
	for _, r := range conformance.Check(t.Context(), cfg) {
		switch {
		case strings.HasPrefix(r.Name, "Topology/"):
			if !r.Skipped {
				t.Errorf("%s without fault hooks: %+v", r.Name, r)
			}
		case r.Name == "Routing/ReadIntent" && r.Skipped: // the Redis dialect has no InReplica
		case !r.Passed:
			t.Errorf("%s: %s", r.Name, r.Reason)
		}
	}
}
