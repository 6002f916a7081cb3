package sqlish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	_ "github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// observed is a DB whose spans and metrics are recorded in memory.
type observed struct {
	db     *sqlish.DB
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

func openObserved(t *testing.T, driverName, dsn string, configure func(*sqlish.Config)) *observed {
	t.Helper()
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	cfg.TracerProvider, cfg.MeterProvider = tp, mp
	if configure != nil {
		configure(&cfg)
	}
	o.db, err = sqlish.ConnectConfig(context.Background(), driverName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.db.Close()
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	return o
}

// memoryName returns a memory cluster name private to the test, closed
// at its end.
func memoryName(t *testing.T) string {
	name := strings.NewReplacer("/", "-", "#", "-").Replace(t.Name())
	t.Cleanup(func() {
		if cl := memory.Lookup(name); cl != nil {
			cl.Close()
		}
	})
	return name
}

// lastSpan returns the last ended span named name.
func (o *observed) lastSpan(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	ended := o.spans.Ended()
	for i := len(ended) - 1; i >= 0; i-- {
		if ended[i].Name() == name {
			return ended[i]
		}
	}
	var names []string
	for _, s := range ended {
		names = append(names, s.Name())
	}
	t.Fatalf("no span %q among %v", name, names)
	return nil
}

func attrs(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// wantAttrs checks attributes: a string, an int or nil (must be absent).
func wantAttrs(t *testing.T, what string, got []attribute.KeyValue, want map[string]any) {
	t.Helper()
	m := attrs(got)
	for k, w := range want {
		v, ok := m[k]
		switch w := w.(type) {
		case nil:
			if ok {
				t.Errorf("%s: attribute %s = %v, want none", what, k, v.String())
			}
		case string:
			if !ok || v.Type() != attribute.STRING || v.AsString() != w {
				t.Errorf("%s: attribute %s = %v, want %q", what, k, v.String(), w)
			}
		case int:
			if !ok || v.Type() != attribute.INT64 || v.AsInt64() != int64(w) {
				t.Errorf("%s: attribute %s = %v, want %d", what, k, v.String(), w)
			}
		}
	}
}

func (o *observed) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != sqlish.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func metricNamed(t *testing.T, ms map[string]metricdata.Metrics, name, unit string) metricdata.Metrics {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s (have %v)", name, slices.Sorted(func(yield func(string) bool) {
			for k := range ms {
				if !yield(k) {
					return
				}
			}
		}))
	}
	if m.Unit != unit {
		t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
	}
	return m
}

func str(set attribute.Set, k string) string {
	v, _ := set.Value(attribute.Key(k))
	return v.AsString()
}

func hostPort(t *testing.T, addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestTelemetryMemory(t *testing.T) {
	ctx := context.Background()
	name := memoryName(t)
	o := openObserved(t, "memory", "memory://"+name+"?nodes=3&replicas=1&tend_interval=1h&cluster_name="+name+"&min_conns_per_node=1", nil)
	db := o.db
	cl := memory.Lookup(name)

	// A statement: span name, kind, attributes, query text with values
	// masked, literal or passed as arguments.
	if _, err := db.Exec(ctx, "SET ? ?", "user:1", "secret-value"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "SET user:2 literal-secret EX 60"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow(ctx, "GET", "user:1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	owner := cl.SlotOwner(memory.KeySlot("user:1"))
	host, port := hostPort(t, owner)
	get := o.lastSpan(t, "GET")
	if get.SpanKind() != trace.SpanKindClient {
		t.Errorf("GET span kind %v", get.SpanKind())
	}
	wantAttrs(t, "GET span", get.Attributes(), map[string]any{
		"db.system.name": "memory", "db.operation.name": "GET", "db.query.text": "GET ?",
		"server.address": host, "server.port": port, "tendril.attempts": 1, "tendril.cluster.name": name,
		"error.type": nil, "db.response.status_code": nil, "db.namespace": nil,
	})
	if get.Status().Code == codes.Error {
		t.Errorf("GET span status %v", get.Status())
	}
	var texts []string
	for _, s := range o.spans.Ended() {
		if s.Name() == "SET" {
			texts = append(texts, attrs(s.Attributes())["db.query.text"].AsString())
		}
	}
	if !slices.Equal(texts, []string{"SET ? ?", "SET ? ? ? ?"}) {
		t.Errorf("SET query texts %q", texts)
	}
	for _, s := range o.spans.Ended() {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.String(), "secret") || strings.Contains(s.Name(), "secret") {
				t.Errorf("span %s shows a value: %s=%s", s.Name(), kv.Key, kv.Value.String())
			}
		}
	}

	// A server error.
	if _, err := db.Exec(ctx, "HSET user:1 f x"); err == nil {
		t.Fatal("HSET on a string succeeded")
	}
	hset := o.lastSpan(t, "HSET")
	wantAttrs(t, "HSET span", hset.Attributes(), map[string]any{
		"error.type": "WRONGTYPE", "db.response.status_code": "WRONGTYPE", "db.query.text": "HSET ? ? ?",
		"server.address": host, "server.port": port,
	})
	if hset.Status().Code != codes.Error {
		t.Errorf("HSET span status %v", hset.Status())
	}

	// MOVED: a redirect event, two attempts, the final node's address.
	slot := memory.KeySlot("user:1")
	var other string
	for _, n := range cl.Nodes() {
		if n.Role == driver.RolePrimary && n.Addr != owner {
			other = n.Addr
			break
		}
	}
	if err := cl.MigrateSlot(slot, other); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, "GET user:1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	moved := o.lastSpan(t, "GET")
	oh, op := hostPort(t, other)
	wantAttrs(t, "GET after MOVED", moved.Attributes(), map[string]any{
		"tendril.attempts": 2, "server.address": oh, "server.port": op, "error.type": nil,
	})
	if ev := moved.Events(); len(ev) != 1 || ev[0].Name != sqlish.EventRedirect {
		t.Fatalf("GET after MOVED: events %v", ev)
	} else {
		wantAttrs(t, "redirect event", ev[0].Attributes, map[string]any{
			"tendril.redirect.kind": "moved", "tendril.partition": slot, "server.address": oh, "server.port": op,
		})
	}

	// A batch: one BATCH span with its size.
	var b sqlish.Batch
	for i := range 20 {
		b.Queue("SET ? ?", "batch:"+strconv.Itoa(i), i)
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		t.Fatal(err)
	}
	batch := o.lastSpan(t, "BATCH")
	wantAttrs(t, "BATCH span", batch.Attributes(), map[string]any{
		"db.operation.name": "BATCH", "db.operation.batch.size": 20, "db.system.name": "memory", "tendril.attempts": 1,
	})
	if batch.SpanKind() != trace.SpanKindClient {
		t.Errorf("BATCH span kind %v", batch.SpanKind())
	}

	// Metrics. A tend's duration is recorded when the tend ends, which on
	// a loaded machine can be after the statements above.
	ms := o.collect(t)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, ok := ms["tendril.tend.duration"]; ok {
			break
		}
		ms = o.collect(t)
	}
	dur := metricNamed(t, ms, "db.client.operation.duration", "s")
	h, ok := dur.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("db.client.operation.duration is %T", dur.Data)
	}
	seen := map[string]bool{}
	for _, dp := range h.DataPoints {
		if !slices.Equal(dp.Bounds, sqlish.DurationBuckets) {
			t.Errorf("duration buckets %v", dp.Bounds)
		}
		if str(dp.Attributes, "db.system.name") != "memory" {
			t.Errorf("duration point without db.system.name: %v", dp.Attributes.ToSlice())
		}
		op := str(dp.Attributes, "db.operation.name")
		seen[op+"/"+str(dp.Attributes, "error.type")] = true
		if op == "HSET" && str(dp.Attributes, "db.response.status_code") != "WRONGTYPE" {
			t.Errorf("HSET point %v", dp.Attributes.ToSlice())
		}
	}
	for _, want := range []string{"GET/", "SET/", "HSET/WRONGTYPE", "BATCH/"} {
		if !seen[want] {
			t.Errorf("no duration point for %s (have %v)", want, seen)
		}
	}
	redirects := metricNamed(t, ms, "tendril.operation.redirects", "{redirect}").Data.(metricdata.Sum[int64])
	if len(redirects.DataPoints) != 1 || redirects.DataPoints[0].Value != 1 || str(redirects.DataPoints[0].Attributes, "tendril.redirect.kind") != "moved" {
		t.Errorf("redirects %+v", redirects.DataPoints)
	}

	// Pools at rest: idle + used == open for every node, and every pool
	// gauge for every node.
	checkPools(t, db, o)
	for _, name := range []string{"db.client.connection.create_time", "db.client.connection.wait_time", "db.client.connection.use_time"} {
		hist := metricNamed(t, ms, name, "s").Data.(metricdata.Histogram[float64])
		if len(hist.DataPoints) == 0 || str(hist.DataPoints[0].Attributes, "db.client.connection.pool.name") == "" {
			t.Errorf("%s: points %v", name, hist.DataPoints)
		}
	}
	for name, unit := range map[string]string{
		"tendril.tends": "{tend}", "tendril.tend.duration": "s", "tendril.topology.changes": "{change}",
		"tendril.topology.refreshes": "{refresh}", "tendril.node.breaker.open": "1", "tendril.nodes": "{node}",
	} {
		metricNamed(t, ms, name, unit)
	}
	changes := ms["tendril.topology.changes"].Data.(metricdata.Sum[int64])
	if !changes.IsMonotonic {
		t.Error("tendril.topology.changes is not monotonic")
	}
	for _, dp := range changes.DataPoints {
		if str(dp.Attributes, "tendril.topology.change") == "node_added" && dp.Value != 6 {
			t.Errorf("node_added = %d, want 6", dp.Value)
		}
	}
}

// checkPools checks the pool metrics of every node against db.Stats().
func checkPools(t *testing.T, db *sqlish.DB, o *observed) {
	t.Helper()
	// The metrics and db.Stats are two snapshots: a background dial (a
	// replica's pool filling) may land between them, so compare snapshots
	// taken while the pools are at rest, trying again for a while.
	var (
		ms       map[string]metricdata.Metrics
		st       sqlish.Stats
		mismatch []string
	)
	for deadline := time.Now().Add(3 * time.Second); ; {
		ms = o.collect(t)
		st = db.Stats()
		count := metricNamed(t, ms, "db.client.connection.count", "{connection}").Data.(metricdata.Sum[int64])
		if count.IsMonotonic {
			t.Error("db.client.connection.count is monotonic; want an up-down counter")
		}
		byPool := map[string]map[string]int64{}
		for _, dp := range count.DataPoints {
			p := str(dp.Attributes, "db.client.connection.pool.name")
			if byPool[p] == nil {
				byPool[p] = map[string]int64{}
			}
			byPool[p][str(dp.Attributes, "db.client.connection.state")] = dp.Value
		}
		if len(st.Nodes) == 0 {
			t.Fatal("no nodes")
		}
		mismatch = mismatch[:0]
		for _, n := range st.Nodes {
			got := byPool[n.Addr]
			if got == nil {
				mismatch = append(mismatch, "no db.client.connection.count for "+n.Addr)
				continue
			}
			if got["idle"]+got["used"] != int64(n.Pool.Total) {
				mismatch = append(mismatch, fmt.Sprintf("%s: idle %d + used %d != open %d", n.Addr, got["idle"], got["used"], n.Pool.Total))
			}
		}
		if len(mismatch) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range mismatch {
		t.Error(m)
	}
	for name, unit := range map[string]string{
		"db.client.connection.idle.max": "{connection}", "db.client.connection.idle.min": "{connection}",
		"db.client.connection.max": "{connection}", "db.client.connection.pending_requests": "{request}",
	} {
		sum := metricNamed(t, ms, name, unit).Data.(metricdata.Sum[int64])
		pools := map[string]bool{}
		for _, dp := range sum.DataPoints {
			pools[str(dp.Attributes, "db.client.connection.pool.name")] = true
		}
		for _, n := range st.Nodes {
			if !pools[n.Addr] {
				t.Errorf("%s: no point for %s", name, n.Addr)
			}
		}
	}
}

func TestTelemetryRetry(t *testing.T) {
	ctx := context.Background()
	name := memoryName(t)
	// Connections dialled before the hang let each attempt reach the node
	// (one that timed out is closed; a hung node accepts no new one).
	o := openObserved(t, "memory", "memory://"+name+"?nodes=1&socket_timeout=20ms&max_retries=2&sleep_between_retries=1ms&timeout=1s&min_conns_per_node=4", nil)
	waitFor(t, 5*time.Second, "4 idle connections", func() bool { return o.db.Stats().Idle >= 4 })
	cl := memory.Lookup(name)
	primary := cl.SlotOwner(0)
	if err := cl.Hang(primary, time.Hour); err != nil {
		t.Fatal(err)
	}
	defer cl.Unhang(primary)
	if _, err := o.db.Exec(ctx, "SET x 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SET on a hung node: %v", err)
	}
	span := o.lastSpan(t, "SET")
	host, port := hostPort(t, primary)
	wantAttrs(t, "SET span", span.Attributes(), map[string]any{
		"tendril.attempts": 3, "error.type": "timeout", "server.address": host, "server.port": port, "db.response.status_code": nil,
	})
	if span.Status().Code != codes.Error {
		t.Errorf("status %v", span.Status())
	}
	var retries []int64
	for _, ev := range span.Events() {
		if ev.Name == sqlish.EventRetry {
			retries = append(retries, attrs(ev.Attributes)["tendril.attempt"].AsInt64())
			wantAttrs(t, "retry event", ev.Attributes, map[string]any{"error.type": "timeout", "db.operation.name": "SET"})
		}
	}
	if !slices.Equal(retries, []int64{2, 3}) {
		t.Errorf("retry events for attempts %v, want [2 3]", retries)
	}
	ms := o.collect(t)
	r := metricNamed(t, ms, "tendril.operation.retries", "{retry}").Data.(metricdata.Sum[int64])
	if len(r.DataPoints) != 1 || r.DataPoints[0].Value != 2 {
		t.Errorf("retries %+v", r.DataPoints)
	}
	dur := ms["db.client.operation.duration"].Data.(metricdata.Histogram[float64])
	if len(dur.DataPoints) != 1 || str(dur.DataPoints[0].Attributes, "error.type") != "timeout" || dur.DataPoints[0].Count != 1 {
		t.Errorf("duration points %+v", dur.DataPoints)
	}
	cl.Unhang(primary)
	closed := metricNamed(t, ms, "tendril.connection.closed", "{connection}").Data.(metricdata.Sum[int64])
	var n int64
	for _, dp := range closed.DataPoints {
		if str(dp.Attributes, "tendril.connection.close_reason") == "error" {
			n += dp.Value
		}
	}
	if n == 0 {
		t.Errorf("no connection closed for an error: %+v", closed.DataPoints)
	}
}

func TestTelemetryRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	o := openObserved(t, "redis", "redis://"+srv.Addr+"/0?min_conns_per_node=1", nil)
	if _, err := o.db.Exec(ctx, "SET ? ?", "k", "secret-value"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := o.db.QueryRow(ctx, "GET k").Scan(&v); err != nil || v != "secret-value" {
		t.Fatalf("GET = %q %v", v, err)
	}
	if _, err := o.db.Exec(ctx, "LPUSH k x"); err == nil {
		t.Fatal("LPUSH on a string succeeded")
	}
	host, port := hostPort(t, srv.Addr)
	get := o.lastSpan(t, "GET") // the namespace stays out of Redis span names
	if get.SpanKind() != trace.SpanKindClient {
		t.Errorf("kind %v", get.SpanKind())
	}
	wantAttrs(t, "GET span", get.Attributes(), map[string]any{
		"db.system.name": "redis", "db.namespace": "0", "db.operation.name": "GET", "db.query.text": "GET ?",
		"server.address": host, "server.port": port, "tendril.attempts": 1, "error.type": nil,
	})
	wantAttrs(t, "SET span", o.lastSpan(t, "SET").Attributes(), map[string]any{"db.query.text": "SET ? ?"})
	lpush := o.lastSpan(t, "LPUSH")
	wantAttrs(t, "LPUSH span", lpush.Attributes(), map[string]any{
		"error.type": "WRONGTYPE", "db.response.status_code": "WRONGTYPE", "server.address": host, "server.port": port,
	})
	// A server error that echoes the statement's values stays out of the
	// span: no attribute, event or status carries them.
	if _, err := o.db.Exec(ctx, "XNOSUCH ? ?", "k", "secret-argument"); err == nil || !strings.Contains(err.Error(), "secret-argument") {
		t.Fatalf("the unknown command's error (%v) does not echo its argument: the test proves nothing", err)
	}
	bad := o.lastSpan(t, "XNOSUCH")
	if d := bad.Status().Description; strings.Contains(d, "secret") || d == "" {
		t.Errorf("span status %q: want the error type, without the statement's values", d)
	}
	for _, kv := range bad.Attributes() {
		if strings.Contains(kv.Value.Emit(), "secret") {
			t.Errorf("span attribute %s = %q carries a statement value", kv.Key, kv.Value.Emit())
		}
	}
	ms := o.collect(t)
	dur := metricNamed(t, ms, "db.client.operation.duration", "s").Data.(metricdata.Histogram[float64])
	found := false
	for _, dp := range dur.DataPoints {
		if str(dp.Attributes, "db.operation.name") == "LPUSH" {
			found = true
			if str(dp.Attributes, "db.system.name") != "redis" || str(dp.Attributes, "db.namespace") != "0" ||
				str(dp.Attributes, "server.address") != host || str(dp.Attributes, "error.type") != "WRONGTYPE" {
				t.Errorf("LPUSH point %v", dp.Attributes.ToSlice())
			}
		}
	}
	if !found {
		t.Error("no LPUSH duration point")
	}
	checkPools(t, o.db, o)
}

// TestTelemetryCloseUnregisters: after Close the DB's instruments record
// nothing more.
func TestTelemetryCloseUnregisters(t *testing.T) {
	name := memoryName(t)
	o := openObserved(t, "memory", "memory://"+name, nil)
	if err := o.db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.collect(t)["db.client.connection.count"]; !ok {
		t.Fatal("no pool metrics while open")
	}
	o.db.Close()
	if _, ok := o.collect(t)["db.client.connection.count"]; ok {
		t.Error("pool metrics still observed after Close")
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogging(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		level     string
		wantTrace bool
		wantWarn  bool
	}{
		{"trace", true, true},
		{"debug", false, true},
		{"warn", false, true},
		{"off", false, false},
	} {
		t.Run(tc.level, func(t *testing.T) {
			name := memoryName(t)
			var buf syncBuffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: sqlish.LevelTrace}))
			dsn := "memory://u:hunter2@" + name + "?nodes=2&replicas=1&tend_interval=20ms&timeout=50ms&log_level=" + tc.level
			o := openObserved(t, "memory", dsn, func(c *sqlish.Config) { c.Logger = logger })
			if _, err := o.db.Exec(ctx, "SET ? ?", "k", "secret-value"); err != nil {
				t.Fatal(err)
			}
			cl := memory.Lookup(name)
			// A replica: a primary stays in the table, down, while the map
			// still gives it partitions.
			var victim string
			for _, n := range cl.Nodes() {
				if n.Role == driver.RoleReplica {
					victim = n.Addr
				}
			}
			cl.Kill(victim)
			waitFor(t, 2*time.Second, "node removed", func() bool { return !hasNode(o.db, victim, false) && !hasNode(o.db, victim, true) })
			if tc.wantWarn {
				waitFor(t, 2*time.Second, "removal logged", func() bool { return strings.Contains(buf.String(), "node removed") })
			}
			out := buf.String()
			if got := strings.Contains(out, "level=DEBUG-4") && strings.Contains(out, `msg="tendril: operation" op=SET`); got != tc.wantTrace {
				t.Errorf("per-operation TRACE record: %v, want %v\n%s", got, tc.wantTrace, out)
			}
			for _, msg := range []string{"node down, pool cleared", "node removed"} {
				if got := strings.Contains(out, "level=WARN msg=\"tendril: "+msg); got != tc.wantWarn {
					t.Errorf("WARN %q: %v, want %v\n%s", msg, got, tc.wantWarn, out)
				}
			}
			if strings.Contains(out, "hunter2") || strings.Contains(out, "secret-value") {
				t.Errorf("log shows a password or a value:\n%s", out)
			}
		})
	}
}

func TestLogLevelKey(t *testing.T) {
	c, err := sqlish.ParseDSN("memory://x?log_level=trace")
	if err != nil || c.LogLevel != sqlish.LogTrace {
		t.Fatalf("log_level=trace: %v %v", c.LogLevel, err)
	}
	if !strings.Contains(c.String(), "log_level=trace") {
		t.Errorf("String() = %s", c)
	}
	if _, err := sqlish.ParseDSN("memory://x?log_level=loud"); err == nil || !strings.Contains(err.Error(), "off, error, warn, info, debug, trace") {
		t.Errorf("log_level=loud: %v", err)
	}
}

// InfoAll with one node killed returns the others' answers and an error
// aggregating the failed node's.
func TestInfoAllPartialFailure(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=3&tend_interval=1h")
	victim := cl.Nodes()[1].Addr
	if err := cl.Kill(victim); err != nil {
		t.Fatal(err)
	}
	out, err := db.InfoAll(ctx, "server")
	if err == nil {
		t.Fatal("InfoAll with a node killed: no error")
	}
	if len(out) != 2 {
		t.Errorf("%d answers, want 2: %v", len(out), out)
	}
	if _, ok := out[victim]; ok {
		t.Error("an answer from the killed node")
	}
	var me *multierror.Error
	if !errors.As(err, &me) || len(me.Errors) != 1 {
		t.Fatalf("error is not a multierror of 1: %T %v", err, err)
	}
	var ne *sqlish.NodeError
	if !errors.As(me.Errors[0], &ne) || ne.Addr != victim {
		t.Errorf("per-node error %v does not name %s", me.Errors[0], victim)
	}
	if msg := err.Error(); !strings.Contains(msg, "1 of 3 nodes failed: ") || strings.Contains(msg, "1 error") || strings.Contains(msg, "occurred") {
		t.Errorf("error text: %v (want one error shown as itself)", err)
	}
	// Two nodes down: "2 errors: a; b", each node named once.
	if err := cl.Kill(cl.Nodes()[2].Addr); err != nil {
		t.Fatal(err)
	}
	_, err = db.InfoAll(ctx, "server")
	t.Log(err)
	if msg := err.Error(); !strings.Contains(msg, "2 of 3 nodes failed: 2 errors: ") || strings.Count(msg, "; ") != 1 {
		t.Errorf("error text: %v (want \"2 errors: a; b\")", err)
	}
}
