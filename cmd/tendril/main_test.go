package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestDemo(t *testing.T) {
	out, err := run(t, "demo", "--keys", "300", "--workers", "8")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"300 keys, 8 goroutines", "SET", "GET", "INCR", "counter = 300", "every value read back", "memory-demo", "primary"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "demo", "--workers", "0"); err == nil || !strings.Contains(err.Error(), "--workers") {
		t.Errorf("demo --workers 0: %v", err)
	}
}

func TestExec(t *testing.T) {
	if _, err := run(t, "exec", "memory://cli-exec", "FLUSHALL"); err != nil { // -count=N
		t.Fatal(err)
	}
	if out, err := run(t, "exec", "memory://cli-exec", "HSET ? a 1 b ?", "h", "two words"); err != nil || !strings.Contains(out, "2\n(1 row)") {
		t.Fatalf("HSET: %v\n%s", err, out)
	}
	out, err := run(t, "exec", "memory://cli-exec", "HGETALL h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "field  value") || !strings.Contains(out, "b      two words") || !strings.Contains(out, "(2 rows)") {
		t.Fatalf("HGETALL output:\n%s", out)
	}
	out, err = run(t, "exec", "memory://cli-exec", "MGET a h")
	if err != nil || !strings.Contains(out, "(nil)") {
		t.Fatalf("MGET: %v\n%s", err, out)
	}
}

func TestExecErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "memory://cli-err"}, "requires at least 2 arg"},
		{[]string{"exec", "nonsense", "PING"}, "want scheme://"},
		{[]string{"exec", "redis2://h:1", "PING"}, `unknown driver "redis2"`},
		{[]string{"exec", "memory://u:hunter2@cli-err?bogus=1", "PING"}, `unknown key "bogus"`},
		{[]string{"exec", "memory://cli-err", "GETX a"}, "ERR unknown command 'GETX'"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
		if strings.Contains(out+errString(err), "hunter2") {
			t.Errorf("%v: password printed", tc.args)
		}
	}
	if got := redactDSN("x://u:hunter2@h"); strings.Contains(got, "hunter2") {
		t.Errorf("redactDSN = %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestHelp(t *testing.T) {
	out, err := run(t, "--help")
	if err != nil || !strings.Contains(out, "demo") || !strings.Contains(out, "exec") || !strings.Contains(out, "memory://demo") {
		t.Fatalf("help: %v\n%s", err, out)
	}
}

func TestShellNodesInfo(t *testing.T) {
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetIn(strings.NewReader("SET greeting hello\nGET greeting\nGETX\n\\nodes\n\\info keyspace\n\\bogus\n\\stats\n\\q\nGET never-run\n"))
	root.SetArgs([]string{"shell", "memory://cli-shell?nodes=2"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("shell: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"OK", "hello", "error: sqlish: node", "ERR unknown command 'GETX'", "cli-shell:7001", "primary",
		"== cli-shell:7002", "# Keyspace", "unknown command \\bogus", "tends "} {
		if !strings.Contains(s, want) {
			t.Errorf("shell output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "never-run") {
		t.Error("the shell ran past \\q")
	}

	out2, err := run(t, "nodes", "memory://cli-shell?nodes=2", "--json")
	if err != nil || !strings.Contains(out2, `"Addr": "cli-shell:7001"`) || !strings.Contains(out2, `"Partitions": 8192`) {
		t.Fatalf("nodes --json: %v\n%s", err, out2)
	}
	out2, err = run(t, "nodes", "memory://cli-shell?nodes=2")
	if err != nil || !strings.Contains(out2, "cli-shell:7002") || !strings.Contains(out2, "8192") {
		t.Fatalf("nodes: %v\n%s", err, out2)
	}
	out2, err = run(t, "info", "memory://cli-shell?nodes=2", "server", "--json")
	if err != nil || !strings.Contains(out2, `"cli-shell:7001": "# Server`) {
		t.Fatalf("info --json: %v\n%s", err, out2)
	}
}

func TestDemoFaultPhase(t *testing.T) {
	t.Cleanup(func() {
		if cl := memory.Lookup("cli-fault"); cl != nil {
			cl.Close() // a fresh cluster for each run under -count=N
		}
	})
	out, err := run(t, "demo", "--keys", "100", "--workers", "4", "--fault", "600ms", "--dsn", "memory://cli-fault?nodes=2&replicas=1")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"fault demo", "killed cli-fault:", "restarted cli-fault:", "is back as a replica, healthy=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("fault demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestConform(t *testing.T) {
	out, err := run(t, "conform", "memory://cli-conform")
	if err != nil || !strings.Contains(out, "Rows/ErrNoRows") || !strings.Contains(out, "0 failed") {
		t.Fatalf("conform memory: %v\n%s", err, out)
	}
	srv := redistest.StartServer(t)
	out, err = run(t, "conform", "redis://"+srv.Addr)
	if err != nil || !strings.Contains(out, "Batch/Order") || !strings.Contains(out, "pass") || !strings.Contains(out, "0 failed") {
		t.Fatalf("conform redis: %v\n%s", err, out)
	}
	for _, dsn := range []string{"redis://127.0.0.1:1", "nosuch://h", "redis://h?bogus=1"} {
		if _, err := run(t, "conform", dsn); err == nil {
			t.Errorf("conform %s succeeded", dsn)
		}
	}
}

// The CLI on a real PostgreSQL server: typed rows with NULLs, a server
// error's SQLSTATE, and the conformance suite.
func TestPostgres(t *testing.T) {
	srv := pgtest.StartPrimary(t)
	dsn := srv.DSN()
	out, err := run(t, "exec", dsn, "SELECT 1::int AS n, 'it''s'::text AS s, NULL::int AS z, 2.5::float8 AS f")
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	for _, want := range []string{"n", "s", "z", "f", "it's", "(nil)", "2.5", "(1 row)"} {
		if !strings.Contains(out, want) {
			t.Errorf("exec output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run(t, "exec", dsn, "SELECT 1/0"); err == nil || !strings.Contains(err.Error()+out, "22012") && !strings.Contains(err.Error()+out, "division by zero") {
		t.Errorf("a server error: %v\n%s", err, out)
	}
	if strings.Contains(out, srv.Password) {
		t.Errorf("the password is in the output:\n%s", out)
	}
	out, err = run(t, "conform", dsn)
	if err != nil || !strings.Contains(out, "Tx/Isolation") || !strings.Contains(out, "0 failed") {
		t.Fatalf("conform postgres: %v\n%s", err, out)
	}
}
