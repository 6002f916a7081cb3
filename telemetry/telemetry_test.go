package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPrometheusScrape scrapes /metrics over HTTP and finds the operation
// histogram and the pool gauges of every node.
func TestPrometheusScrape(t *testing.T) {
	ctx := context.Background()
	prom, err := telemetry.NewPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := prom.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop(ctx)
	cfg, err := sqlish.ParseDSN("memory://prom-scrape?nodes=3&replicas=1&min_conns_per_node=1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MeterProvider = prom.MeterProvider()
	db, err := sqlish.ConnectConfig(ctx, "memory", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		db.Close()
		memory.Lookup("prom-scrape").Close()
	}()
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := db.Exec(ctx, "SET ? 1", k); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE db_client_operation_duration_seconds histogram",
		`db_client_operation_duration_seconds_bucket{db_operation_name="SET",db_system_name="memory"`,
		`le="0.001"`, `le="10"`,
		"# TYPE db_client_connection_count gauge",
		"tendril_tends_total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	nodes := db.Nodes()
	if len(nodes) != 6 {
		t.Fatalf("%d nodes", len(nodes))
	}
	for _, n := range nodes {
		for _, m := range []string{"db_client_connection_count", "db_client_connection_max", "db_client_connection_idle_max",
			"db_client_connection_idle_min", "db_client_connection_pending_requests"} {
			if !lineWith(text, m+"{", `db_client_connection_pool_name="`+n.Addr+`"`) {
				t.Errorf("/metrics has no %s for %s", m, n.Addr)
			}
		}
		for _, state := range []string{"idle", "used"} {
			if !lineWith(text, "db_client_connection_count{", `db_client_connection_pool_name="`+n.Addr+`"`, `db_client_connection_state="`+state+`"`) {
				t.Errorf("no %s connection count for %s", state, n.Addr)
			}
		}
	}
	// Text renders the same registry.
	got, err := prom.Text()
	if err != nil || !strings.Contains(got, "db_client_operation_duration_seconds_count") {
		t.Errorf("Text: %v\n%.300s", err, got)
	}
	if err := prom.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr.String() + "/metrics"); err == nil {
		t.Error("/metrics still served after Stop")
	}
}

func lineWith(text string, parts ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestSetupFromEnv(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_SERVICE_NAME", "tendril-test")
	shutdown, err := telemetry.SetupFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}
