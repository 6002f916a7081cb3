package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
