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
	for _, tc := range []struct{ q, want string }{
		{"SELECT a1 FROM t WHERE id = 42 AND name = 'O''Brien' AND x = $1", "SELECT a1 FROM t WHERE id = ? AND name = ? AND x = $1"},
		{"SELECT $$secret$$, $tag$x 'y' $ z$tag$ FROM t WHERE a = $1 AND b = $12", "SELECT ?, ? FROM t WHERE a = $1 AND b = $12"},
		{`SELECT E'it\'s secret', e'\\', x FROM t WHERE b = 'ok'`, "SELECT ?, ?, x FROM t WHERE b = ?"},
		{"SELECT B'0101', X'1F', N'n', U&'d\\0061t' FROM t", "SELECT ?, ?, ?, ? FROM t"},
		{"SELECT 1 -- it's a secret 42\nFROM t WHERE c = 'v'", "SELECT ? \nFROM t WHERE c = ?"},
		{"SELECT /* pw 'x /* nested */ still */a FROM t WHERE d = 2", "SELECT a FROM t WHERE d = ?"},
		{`SELECT "it's", "a""b" FROM "t1" WHERE e = 'x'`, `SELECT "it's", "a""b" FROM "t1" WHERE e = ?`},
		{"SELECT x FROM t WHERE y = 3.5e10 AND z = -1.5E-3 AND w = .5 AND v = 1_000 AND u = 0x1F", "SELECT x FROM t WHERE y = ? AND z = -? AND w = ? AND v = ? AND u = ?"},
		{"SELECT a$b, t2.c3 FROM t$$x", "SELECT a$b, t2.c3 FROM t$$x"},
		{"SELECT 'unterminated", "SELECT ?"},
		{"SELECT $$unterminated", "SELECT ?"},
		{"SELECT 1 /* unterminated", "SELECT ? "},
	} {
		if got := sanitizeSQL(tc.q); got != tc.want {
			t.Errorf("sanitizeSQL(%q) = %q, want %q", tc.q, got, tc.want)
		}
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
