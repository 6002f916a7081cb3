package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	out, err := run(t, "stats", "memory://cli-stats?nodes=2&replicas=1")
	if err != nil {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	for _, want := range []string{"cli-stats:7001", "cli-stats:7004", "primary", "replica", "topology:"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "stats", "--json", "memory://cli-stats?nodes=2&replicas=1")
	if err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	var s jsonStats
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("stats --json is not JSON: %v\n%s", err, out)
	}
	if len(s.Nodes) != 4 || s.Topology.Tends < 1 || s.Nodes[0].Pool.Max != 100 || s.Nodes[0].Addr == "" {
		t.Errorf("stats --json: %+v", s)
	}
	if _, err := run(t, "stats"); err == nil {
		t.Error("stats without a DSN succeeded")
	}
}

// lockedBuffer is an output buffer read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoMetricsAddr runs the demo with --metrics-addr, scrapes /metrics
// while it waits, then interrupts it.
func TestDemoMetricsAddr(t *testing.T) {
	var out lockedBuffer
	root := newRoot(&out, &out)
	root.SetArgs([]string{"demo", "--keys", "200", "--workers", "4", "--fault", "0", "--metrics-addr", "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	re := regexp.MustCompile(`until interrupted \(Ctrl-C\)`)
	addrRe := regexp.MustCompile(`serving metrics on (http://\S+/metrics)`)
	deadline := time.Now().Add(20 * time.Second)
	for !re.MatchString(out.String()) {
		select {
		case err := <-done:
			t.Fatalf("demo ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not finish:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := addrRe.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no metrics address:\n%s", out.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`db_client_operation_duration_seconds_bucket{db_operation_name="GET"`, `db_client_connection_pool_name="demo:7001"`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v", err)
	}
}
