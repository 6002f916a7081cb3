package sqlish

import (
	"context"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tendril-db/tendril/driver"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		q    string
		n    int
		want string
	}{
		{"SET k v", 0, "SET ? ?"},
		{"SET ? ?", 2, "SET ? ?"},
		{"SET", 2, "SET ? ?"},
		{"SET ? 'two words' EX 60", 1, "SET ? ? ? ?"},
		{`HSET h "a \" b" ?`, 1, "HSET ? ? ?"},
		{"  GET   k ", 0, "GET ?"},
		{"", 0, ""},
	} {
		if got := sanitizeCommand(tc.q, tc.n); got != tc.want {
			t.Errorf("sanitizeCommand(%q, %d) = %q, want %q", tc.q, tc.n, got, tc.want)
		}
	}
	if got := sanitizeSQL("SELECT a1 FROM t WHERE id = 42 AND name = 'O''Brien' AND x = $1"); got != "SELECT a1 FROM t WHERE id = ? AND name = ? AND x = $1" {
		t.Errorf("sanitizeSQL = %q", got)
	}
}

// BenchmarkObserveNoop is the instrumentation of one operation alone
// (begin, one attempt, finish) with the no-op providers.
func BenchmarkObserveNoop(b *testing.B) {
	cfg := DefaultConfig()
	cfg.TracerProvider, cfg.MeterProvider = tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
	tel, err := newTelemetry(&cfg, driver.Backend{System: "memory"}, newLogger(nil, LogWarn))
	if err != nil {
		b.Fatal(err)
	}
	benchObserve(b, tel)
}

// BenchmarkObserveUnset is the same with no provider given and none set
// globally.
func BenchmarkObserveUnset(b *testing.B) {
	cfg := DefaultConfig()
	tel, err := newTelemetry(&cfg, driver.Backend{System: "memory"}, newLogger(nil, LogWarn))
	if err != nil {
		b.Fatal(err)
	}
	benchObserve(b, tel)
}

func benchObserve(b *testing.B, tel *telemetry) {
	ctx := context.Background()
	route := driver.Route{Op: "GET", Partition: 1}
	b.ReportAllocs()
	for b.Loop() {
		ob := observation{}
		c := tel.begin(ctx, &ob, route, "GET k", 0)
		if ob.active() {
			tel.attempt(c, &ob, route, 1, nil)
		}
		tel.finish(c, &ob, route, nil)
	}
}
