package sqlish

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/errlist"
	"github.com/tendril-db/tendril/puddlepool"
	"github.com/tendril-db/tendril/topology"
)

// ScopeName is the instrumentation scope of tendril's spans and metrics.
const ScopeName = "github.com/tendril-db/tendril/sqlish"

// DurationBuckets are the bucket boundaries, in seconds, of the
// db.client.operation.duration histogram, as the OpenTelemetry database
// semantic conventions advise them; the pool's time histograms
// (db.client.connection.create_time, .wait_time, .use_time) and
// tendril.tend.duration use them too.
var DurationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// Attribute keys of tendril's own, outside the semantic conventions.
const (
	// AttrClusterName is the configured cluster_name (spans and metrics).
	AttrClusterName = attribute.Key("tendril.cluster.name")
	// AttrAttempts is the number of attempts an operation made (spans).
	AttrAttempts = attribute.Key("tendril.attempts")
	// AttrAttempt numbers the attempt a retry event starts (span events).
	AttrAttempt = attribute.Key("tendril.attempt")
	// AttrRedirectKind is "moved" or "ask" (redirect events and counter).
	AttrRedirectKind = attribute.Key("tendril.redirect.kind")
	// AttrPartition is the partition (Redis: slot) a redirect names.
	AttrPartition = attribute.Key("tendril.partition")
	// AttrCloseReason says why a connection closed: idle, stale, error,
	// cleared or pool_closed.
	AttrCloseReason = attribute.Key("tendril.connection.close_reason")
	// AttrChange is the kind of a topology change: node_added,
	// node_removed, map_updated or map_patched.
	AttrChange = attribute.Key("tendril.topology.change")
	// AttrRefresh says whether an on-demand refresh was triggered or
	// suppressed.
	AttrRefresh = attribute.Key("tendril.refresh.outcome")
	// AttrTendRequest is the kind of a tend request: probe, peers or map.
	AttrTendRequest = attribute.Key("tendril.tend.request")
	// AttrTendOutcome is "ok" when a tend left a healthy node, else
	// "failed".
	AttrTendOutcome = attribute.Key("tendril.tend.outcome")
)

// Names of span events.
const (
	EventRetry    = "tendril.retry"
	EventRedirect = "tendril.redirect"
)

// unsetGlobalTP is the global tracer provider as long as none was set:
// otel's delegating provider, whose spans record nothing. An operation
// that finds it still in place skips tracing altogether. Nil when the
// provider in place at init is another (then it is always followed).
var unsetGlobalTP = func() trace.TracerProvider {
	tp := otel.GetTracerProvider()
	if t := reflect.TypeOf(tp); t != nil && t.String() == "*global.tracerProvider" {
		return tp
	}
	return nil
}()

// telemetry holds a DB's tracer, instruments and logger.
type telemetry struct {
	system    string
	namespace string
	cluster   string
	// spanNS puts the namespace in span names; not for Redis-like
	// systems, whose namespace is a database number.
	spanNS bool

	tracer       trace.Tracer // nil: tracing off
	followGlobal bool         // tracer of the global provider: off while it is unset

	meterOn      bool // false for a no-op MeterProvider
	opDuration   metric.Float64Histogram
	createTime   metric.Float64Histogram
	waitTime     metric.Float64Histogram
	useTime      metric.Float64Histogram
	timeouts     metric.Int64Counter
	closed       metric.Int64Counter
	retries      metric.Int64Counter
	redirects    metric.Int64Counter
	tendDuration metric.Float64Histogram
	reg          metric.Registration
	movedOpt     metric.MeasurementOption
	askOpt       metric.MeasurementOption
	tendOK       metric.MeasurementOption
	tendFailed   metric.MeasurementOption

	base []attribute.KeyValue // db.system.name, db.namespace, tendril.cluster.name

	log      *slog.Logger
	traceLog bool // log at LevelTrace may be on

	mu    sync.Mutex // serialises writers of nodes
	nodes atomic.Pointer[map[string]*nodeTel]
	texts sync.Map // statement -> sanitized db.query.text
	ntext atomic.Int32
}

// nodeTel is the precomputed telemetry of one node (one pool).
type nodeTel struct {
	addr string
	host string
	port int
	pool metric.MeasurementOption // db.client.connection.pool.name
	idle metric.MeasurementOption // pool name + state idle
	used metric.MeasurementOption // pool name + state used

	mu  sync.Mutex
	ops atomic.Pointer[map[opKey]metric.MeasurementOption]
	cls atomic.Pointer[map[puddlepool.Reason]metric.MeasurementOption]
}

type opKey struct{ op, errType, status string }

const maxCachedTexts = 4096

func newTelemetry(cfg *Config, backend driver.Backend, log *slog.Logger) (*telemetry, error) {
	t := &telemetry{
		system: backend.System, namespace: cfg.Namespace, cluster: cfg.ClusterName,
		spanNS: !redisLike(backend.System), log: log,
	}
	t.traceLog = log.Enabled(context.Background(), LevelTrace)
	t.nodes.Store(&map[string]*nodeTel{})
	t.base = append(t.base, semconv.DBSystemNameKey.String(t.system))
	if t.namespace != "" {
		t.base = append(t.base, semconv.DBNamespace(t.namespace))
	}
	if t.cluster != "" {
		t.base = append(t.base, AttrClusterName.String(t.cluster))
	}

	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
		t.followGlobal = unsetGlobalTP != nil
	}
	switch tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
	default:
		t.tracer = tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
	}

	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	switch mp.(type) {
	case metricnoop.MeterProvider, *metricnoop.MeterProvider:
		mp = metricnoop.NewMeterProvider()
	default:
		t.meterOn = true
	}
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	buckets := metric.WithExplicitBucketBoundaries(DurationBuckets...)
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	od, err := dbconv.NewClientOperationDuration(m, buckets)
	check(err)
	t.opDuration = od.Inst()
	ct, err := dbconv.NewClientConnectionCreateTime(m, buckets)
	check(err)
	t.createTime = ct.Inst()
	wt, err := dbconv.NewClientConnectionWaitTime(m, buckets)
	check(err)
	t.waitTime = wt.Inst()
	ut, err := dbconv.NewClientConnectionUseTime(m, buckets)
	check(err)
	t.useTime = ut.Inst()
	to, err := dbconv.NewClientConnectionTimeouts(m)
	check(err)
	t.timeouts = to.Inst()
	t.closed, err = m.Int64Counter("tendril.connection.closed", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections closed, by node and reason."))
	check(err)
	t.retries, err = m.Int64Counter("tendril.operation.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Attempts of operations after a failed attempt."))
	check(err)
	t.redirects, err = m.Int64Counter("tendril.operation.redirects", metric.WithUnit("{redirect}"),
		metric.WithDescription("Redirects (MOVED, ASK) followed by operations."))
	check(err)
	t.tendDuration, err = m.Float64Histogram("tendril.tend.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of topology tends."))
	check(err)
	if len(errs) > 0 {
		return nil, errlist.Join(errs...)
	}
	t.movedOpt = metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{AttrRedirectKind.String("moved")}, t.base...)...))
	t.askOpt = metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{AttrRedirectKind.String("ask")}, t.base...)...))
	t.tendOK = metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{AttrTendOutcome.String("ok")}, t.base...)...))
	t.tendFailed = metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{AttrTendOutcome.String("failed")}, t.base...)...))
	return t, nil
}

// redisLike reports whether system's namespace is a database number, to
// be kept out of span names (as the Redis conventions ask).
func redisLike(system string) bool {
	switch system {
	case "redis", "valkey", "memory":
		return true
	}
	return false
}

// registerObservers registers the callbacks that read the pools and the
// tender; DB.Close unregisters them.
func (t *telemetry) registerObservers(mp metric.MeterProvider, db *DB) error {
	if !t.meterOn {
		return nil
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	count, err := dbconv.NewClientConnectionCountObservable(m)
	check(err)
	idleMax, err := dbconv.NewClientConnectionIdleMaxObservable(m)
	check(err)
	idleMin, err := dbconv.NewClientConnectionIdleMinObservable(m)
	check(err)
	maxConns, err := dbconv.NewClientConnectionMaxObservable(m)
	check(err)
	pending, err := dbconv.NewClientConnectionPendingRequestsObservable(m)
	check(err)
	breaker, err := m.Int64ObservableGauge("tendril.node.breaker.open", metric.WithUnit("1"),
		metric.WithDescription("1 when the node's circuit breaker is open (the node is not picked), else 0."))
	check(err)
	healthy, err := m.Int64ObservableGauge("tendril.node.healthy", metric.WithUnit("1"),
		metric.WithDescription("1 when the node answered its last probe and its breaker is closed, else 0."))
	check(err)
	nodes, err := m.Int64ObservableUpDownCounter("tendril.nodes", metric.WithUnit("{node}"),
		metric.WithDescription("Nodes in the topology table."))
	check(err)
	tends, err := m.Int64ObservableCounter("tendril.tends", metric.WithUnit("{tend}"),
		metric.WithDescription("Topology tends started."))
	check(err)
	tendFailed, err := m.Int64ObservableCounter("tendril.tend.failures", metric.WithUnit("{tend}"),
		metric.WithDescription("Tends that left no healthy node."))
	check(err)
	overruns, err := m.Int64ObservableCounter("tendril.tend.overruns", metric.WithUnit("{tend}"),
		metric.WithDescription("Tends that took longer than tend_interval."))
	check(err)
	requests, err := m.Int64ObservableCounter("tendril.tend.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests made by the tender, by kind: probe, peers, map."))
	check(err)
	changes, err := m.Int64ObservableCounter("tendril.topology.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Topology changes: nodes added and removed, partition map updates and redirect patches."))
	check(err)
	refreshes, err := m.Int64ObservableCounter("tendril.topology.refreshes", metric.WithUnit("{refresh}"),
		metric.WithDescription("On-demand topology refreshes, triggered or suppressed (cooldown, or one already pending)."))
	check(err)
	if len(errs) > 0 {
		return errlist.Join(errs...)
	}
	set := func(kvs ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kvs, t.base...)...))
	}
	var (
		probeOpt, peersOpt, mapOpt              = set(AttrTendRequest.String("probe")), set(AttrTendRequest.String("peers")), set(AttrTendRequest.String("map"))
		addedOpt, removedOpt                    = set(AttrChange.String("node_added")), set(AttrChange.String("node_removed"))
		updatedOpt, patchedOpt                  = set(AttrChange.String("map_updated")), set(AttrChange.String("map_patched"))
		triggeredOpt, suppressedOpt, bare       = set(AttrRefresh.String("triggered")), set(AttrRefresh.String("suppressed")), set()
		cfg                                     = db.cfg
		maxSize, maxIdle, minIdle         int64 = int64(cfg.MaxConnsPerNode), int64(cfg.MaxIdleConnsPerNode), int64(cfg.MinConnsPerNode)
	)
	if maxIdle == 0 {
		maxIdle = maxSize
	}
	t.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		snap := db.tender.Snapshot()
		for _, n := range snap.Nodes() {
			nt := t.node(n.Addr())
			st := n.Pool().Stat()
			o.ObserveInt64(count.Inst(), int64(st.Idle), nt.idle)
			o.ObserveInt64(count.Inst(), int64(st.InUse), nt.used)
			o.ObserveInt64(pending.Inst(), int64(st.Waiting), nt.pool)
			o.ObserveInt64(idleMin.Inst(), minIdle, nt.pool)
			if maxSize > 0 { // 0 is unlimited: no maximum to report
				o.ObserveInt64(maxConns.Inst(), maxSize, nt.pool)
				o.ObserveInt64(idleMax.Inst(), maxIdle, nt.pool)
			}
			o.ObserveInt64(breaker, b2i(n.BreakerOpen()), nt.pool)
			o.ObserveInt64(healthy, b2i(n.Healthy()), nt.pool)
		}
		o.ObserveInt64(nodes, int64(len(snap.Nodes())), bare)
		ts := db.tender.Stats()
		o.ObserveInt64(tends, ts.Tends, bare)
		o.ObserveInt64(tendFailed, ts.TendsFailed, bare)
		o.ObserveInt64(overruns, ts.TendOverruns, bare)
		o.ObserveInt64(requests, ts.Probes, probeOpt)
		o.ObserveInt64(requests, ts.PeerFetches, peersOpt)
		o.ObserveInt64(requests, ts.MapFetches, mapOpt)
		o.ObserveInt64(changes, ts.NodesAdded, addedOpt)
		o.ObserveInt64(changes, ts.NodesRemoved, removedOpt)
		o.ObserveInt64(changes, ts.MapUpdates, updatedOpt)
		o.ObserveInt64(changes, ts.Patches, patchedOpt)
		o.ObserveInt64(refreshes, ts.RefreshesTriggered, triggeredOpt)
		o.ObserveInt64(refreshes, ts.RefreshesSuppressed, suppressedOpt)
		return nil
	}, count.Inst(), idleMax.Inst(), idleMin.Inst(), maxConns.Inst(), pending.Inst(), breaker, healthy, nodes,
		tends, tendFailed, overruns, requests, changes, refreshes)
	return err
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// close unregisters the observable callbacks.
func (t *telemetry) close() {
	if t.reg != nil {
		t.reg.Unregister()
	}
}

// node returns the telemetry of the node at addr, creating it once.
func (t *telemetry) node(addr string) *nodeTel {
	if nt := (*t.nodes.Load())[addr]; nt != nil {
		return nt
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.nodes.Load()
	if nt := old[addr]; nt != nil {
		return nt
	}
	nt := &nodeTel{addr: addr, host: addr}
	if h, p, err := net.SplitHostPort(addr); err == nil {
		nt.host = h
		nt.port, _ = strconv.Atoi(p)
	}
	pool := dbconv.ClientConnectionCountObservable{}.AttrClientConnectionPoolName(addr)
	withBase := func(kvs ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kvs, t.base...)...))
	}
	nt.pool = withBase(pool)
	nt.idle = withBase(pool, dbconv.ClientConnectionCountObservable{}.AttrClientConnectionState(dbconv.ClientConnectionStateIdle))
	nt.used = withBase(pool, dbconv.ClientConnectionCountObservable{}.AttrClientConnectionState(dbconv.ClientConnectionStateUsed))
	nt.ops.Store(&map[opKey]metric.MeasurementOption{})
	nt.cls.Store(&map[puddlepool.Reason]metric.MeasurementOption{})
	next := make(map[string]*nodeTel, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[addr] = nt
	t.nodes.Store(&next)
	return nt
}

// opOption returns the attributes of db.client.operation.duration for an
// operation served by nt (nil: no node was reached).
func (t *telemetry) opOption(nt *nodeTel, op, errType, status string) metric.MeasurementOption {
	if nt == nil {
		nt = t.node("")
	}
	k := opKey{op, errType, status}
	if o := (*nt.ops.Load())[k]; o != nil {
		return o
	}
	kvs := append([]attribute.KeyValue{semconv.DBOperationName(op)}, t.base...)
	if nt.addr != "" {
		kvs = append(kvs, semconv.ServerAddress(nt.host))
		if nt.port != 0 {
			kvs = append(kvs, semconv.ServerPort(nt.port))
		}
	}
	if errType != "" {
		kvs = append(kvs, semconv.ErrorTypeKey.String(errType))
	}
	if status != "" {
		kvs = append(kvs, semconv.DBResponseStatusCode(status))
	}
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	nt.mu.Lock()
	defer nt.mu.Unlock()
	old := *nt.ops.Load()
	if len(old) >= 4096 { // unbounded status codes: stop caching
		return o
	}
	next := make(map[opKey]metric.MeasurementOption, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = o
	nt.ops.Store(&next)
	return o
}

// closeOption returns the attributes of tendril.connection.closed.
func (t *telemetry) closeOption(nt *nodeTel, r puddlepool.Reason) metric.MeasurementOption {
	if o := (*nt.cls.Load())[r]; o != nil {
		return o
	}
	o := metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{
		dbconv.ClientConnectionCountObservable{}.AttrClientConnectionPoolName(nt.addr), AttrCloseReason.String(string(r))}, t.base...)...))
	nt.mu.Lock()
	defer nt.mu.Unlock()
	old := *nt.cls.Load()
	next := make(map[puddlepool.Reason]metric.MeasurementOption, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[r] = o
	nt.cls.Store(&next)
	return o
}

// onPoolEvent turns pool events into metrics and log records. It runs on
// the goroutine that caused the event.
func (t *telemetry) onPoolEvent(ev puddlepool.Event) {
	ctx := context.Background()
	switch ev.Type {
	case puddlepool.EventCheckedOut:
		if t.waitTime.Enabled(ctx) {
			t.waitTime.Record(ctx, ev.Duration.Seconds(), t.node(ev.Pool).pool)
		}
	case puddlepool.EventCheckOutFailed:
		if t.waitTime.Enabled(ctx) {
			t.waitTime.Record(ctx, ev.Duration.Seconds(), t.node(ev.Pool).pool)
		}
		if ev.Reason == puddlepool.ReasonTimeout && t.timeouts.Enabled(ctx) {
			t.timeouts.Add(ctx, 1, t.node(ev.Pool).pool)
		}
	case puddlepool.EventConnReady:
		if t.createTime.Enabled(ctx) {
			t.createTime.Record(ctx, ev.Duration.Seconds(), t.node(ev.Pool).pool)
		}
	case puddlepool.EventConnClosed:
		if ev.ConnID != 0 && t.closed.Enabled(ctx) {
			nt := t.node(ev.Pool)
			t.closed.Add(ctx, 1, t.closeOption(nt, ev.Reason))
		}
		if ev.Err != nil {
			switch {
			case errors.Is(ev.Err, driver.ErrAuthFailed):
				t.log.Error("tendril: authentication failed", "addr", ev.Pool, "err", ev.Err)
			case t.log.Enabled(ctx, slog.LevelDebug):
				t.log.Debug("tendril: connection closed", "addr", ev.Pool, "reason", string(ev.Reason), "err", ev.Err)
			}
		}
	case puddlepool.EventPoolCleared:
		t.log.Warn("tendril: pool cleared", "addr", ev.Pool, "err", ev.Err)
	}
}

// activeTracer returns the tracer, or nil when spans would record nothing.
func (t *telemetry) activeTracer() trace.Tracer {
	if t.tracer == nil || t.followGlobal && otel.GetTracerProvider() == unsetGlobalTP {
		return nil
	}
	return t.tracer
}

// on reports whether an operation would be observed at all.
func (t *telemetry) on(ctx context.Context) bool {
	return t.meterOn && t.opDuration.Enabled(ctx) || t.traceLog || t.activeTracer() != nil
}

// observation follows one operation (or one node group of a batch).
type observation struct {
	start    time.Time
	span     trace.Span // nil unless recording
	metrics  bool
	trace    bool // log at LevelTrace
	group    *batchObs
	node     *topology.Node // served the final attempt
	attempts int
	redirect bool // the next attempt follows a redirect
}

func (ob *observation) active() bool { return !ob.start.IsZero() }

// batchObs is the observation of a whole batch, shared by its groups.
type batchObs struct {
	observation
	mu    sync.Mutex
	nodes map[*topology.Node]bool
	err   error // the first group's error
}

// beginBatch starts the BATCH span of a batch of size statements.
func (t *telemetry) beginBatch(ctx context.Context, size int) (context.Context, *batchObs) {
	bo := &batchObs{}
	tr := t.activeTracer()
	if tr == nil {
		return ctx, bo
	}
	const op = "BATCH"
	bo.start = time.Now()
	bo.nodes = map[*topology.Node]bool{}
	var span trace.Span
	ctx, span = tr.Start(ctx, t.spanName(op), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(t.startAttrs(op), semconv.DBOperationBatchSize(size))...))
	if span.IsRecording() {
		bo.span = span
	}
	return ctx, bo
}

// finishBatch ends the BATCH span: server.address when one node served
// every group, the most attempts a group made, the first group error.
func (t *telemetry) finishBatch(bo *batchObs) {
	if bo.span == nil {
		return
	}
	bo.mu.Lock()
	defer bo.mu.Unlock()
	var nt *nodeTel
	if len(bo.nodes) == 1 {
		for n := range bo.nodes {
			nt = t.node(n.Addr())
		}
	}
	errType, status := classify(bo.err)
	endSpan(bo.span, nt, bo.attempts, bo.err, errType, status)
}

// begin starts observing an operation: a span named after it (unless it
// is part of a batch) and a start time when anything records.
func (t *telemetry) begin(ctx context.Context, ob *observation, route driver.Route, query string, nargs int) context.Context {
	ob.metrics = t.meterOn && t.opDuration.Enabled(ctx)
	ob.trace = t.traceLog && t.log.Enabled(ctx, LevelTrace)
	var tr trace.Tracer
	if ob.group == nil {
		tr = t.activeTracer()
	} else if ob.group.span != nil {
		ob.span = ob.group.span
	}
	if tr == nil && !ob.metrics && !ob.trace && ob.span == nil {
		return ctx
	}
	ob.start = time.Now()
	if tr != nil {
		var span trace.Span
		ctx, span = tr.Start(ctx, t.spanName(route.Op), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(t.startAttrs(route.Op)...))
		if span.IsRecording() {
			ob.span = span
			if query != "" {
				span.SetAttributes(semconv.DBQueryText(t.queryText(query, nargs)))
			}
		}
	}
	return ctx
}

func (t *telemetry) spanName(op string) string {
	if t.spanNS && t.namespace != "" {
		return op + " " + t.namespace
	}
	return op
}

func (t *telemetry) startAttrs(op string) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, len(t.base)+2)
	kvs = append(kvs, t.base...)
	return append(kvs, semconv.DBOperationName(op))
}

// attempt records that an attempt is about to run on n; attempt counts
// from 1 and prev is the error of the previous attempt.
func (t *telemetry) attempt(ctx context.Context, ob *observation, route driver.Route, attempt int, prev error) {
	if attempt > 1 && !ob.redirect {
		errType, _ := classify(prev)
		if ob.metrics && t.retries.Enabled(ctx) {
			t.retries.Add(ctx, 1, t.opOption(nil, route.Op, "", ""))
		}
		if ob.span != nil {
			ob.span.AddEvent(EventRetry, trace.WithAttributes(AttrAttempt.Int(attempt), semconv.DBOperationName(route.Op),
				semconv.ErrorTypeKey.String(errType)))
		}
		if ob.trace {
			t.log.Log(ctx, LevelTrace, "tendril: retrying", "op", route.Op, "attempt", attempt, "error.type", errType)
		}
	}
	ob.redirect = false
	ob.attempts = attempt
}

// redirected records a redirect to re.Addr.
func (t *telemetry) redirected(ctx context.Context, ob *observation, route driver.Route, from *topology.Node, re *driver.RedirectError) {
	ob.redirect = true
	kind := "moved"
	if re.Ask {
		kind = "ask"
	}
	if ob.metrics && t.redirects.Enabled(ctx) {
		t.redirects.Add(ctx, 1, t.redirectOption(kind))
	}
	if ob.span != nil {
		nt := t.node(re.Addr)
		ob.span.AddEvent(EventRedirect, trace.WithAttributes(AttrRedirectKind.String(kind), AttrPartition.Int(re.Partition),
			semconv.ServerAddress(nt.host), semconv.ServerPort(nt.port), semconv.DBOperationName(route.Op)))
	}
	if ob.trace {
		t.log.Log(ctx, LevelTrace, "tendril: redirected", "op", route.Op, "kind", kind, "partition", re.Partition,
			"from", from.Addr(), "to", re.Addr)
	}
}

func (t *telemetry) tendOption(healthy bool) metric.MeasurementOption {
	if healthy {
		return t.tendOK
	}
	return t.tendFailed
}

func (t *telemetry) redirectOption(kind string) metric.MeasurementOption {
	if kind == "ask" {
		return t.askOpt
	}
	return t.movedOpt
}

// finish ends the observation of an operation that ended with err.
func (t *telemetry) finish(ctx context.Context, ob *observation, route driver.Route, err error) {
	if !ob.active() {
		return
	}
	d := time.Since(ob.start)
	var errType, status string
	if err != nil {
		errType, status = classify(err)
	}
	var nt *nodeTel
	if ob.node != nil {
		nt = t.node(ob.node.Addr())
	}
	if ob.metrics {
		t.opDuration.Record(ctx, d.Seconds(), t.opOption(nt, route.Op, errType, status))
	}
	if g := ob.group; g != nil {
		if g.span != nil {
			g.mu.Lock()
			if ob.node != nil {
				g.nodes[ob.node] = true
			}
			g.attempts = max(g.attempts, ob.attempts)
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	} else if ob.span != nil {
		endSpan(ob.span, nt, ob.attempts, err, errType, status)
	}
	if ob.trace {
		addr := ""
		if nt != nil {
			addr = nt.addr
		}
		t.log.Log(ctx, LevelTrace, "tendril: operation", "op", route.Op, "addr", addr, "attempts", ob.attempts,
			"duration", d, "error.type", errType)
	}
}

func endSpan(span trace.Span, nt *nodeTel, attempts int, err error, errType, status string) {
	kvs := make([]attribute.KeyValue, 0, 6)
	if nt != nil && nt.addr != "" {
		kvs = append(kvs, semconv.ServerAddress(nt.host))
		if nt.port != 0 {
			kvs = append(kvs, semconv.ServerPort(nt.port))
		}
	}
	kvs = append(kvs, AttrAttempts.Int(attempts))
	if err != nil {
		kvs = append(kvs, semconv.ErrorTypeKey.String(errType))
		if status != "" {
			kvs = append(kvs, semconv.DBResponseStatusCode(status))
		}
		// Not err.Error(): a server error may echo the statement's
		// values (ERR unknown command 'VALUE'), which spans never carry.
		span.SetStatus(codes.Error, errType)
	}
	span.SetAttributes(kvs...)
	span.End()
}

// classify returns the error.type of err and, for a server error, its
// db.response.status_code. Values are few and fixed, fit for metric
// attributes: the server's error prefix (WRONGTYPE, ERR, ...), timeout,
// canceled, closed, no_nodes, pool_timeout, pool_paused, auth_failed,
// not_supported, redirect, connection, or _OTHER.
func classify(err error) (errType, status string) {
	if err == nil {
		return "", ""
	}
	var se *driver.ServerError
	var re *driver.RedirectError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return "redirect", ""
	case errors.As(err, &se):
		if se.Code == "" {
			return semconv.ErrorTypeOther.Value.AsString(), ""
		}
		return se.Code, se.Code
	case errors.Is(err, ErrPoolTimeout):
		return "pool_timeout", ""
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", ""
	case errors.Is(err, context.Canceled):
		return "canceled", ""
	case errors.Is(err, ErrClosed), errors.Is(err, puddlepool.ErrPoolClosed):
		return "closed", ""
	case errors.Is(err, driver.ErrAuthFailed):
		return "auth_failed", ""
	case errors.Is(err, ErrNoNodes):
		return "no_nodes", ""
	case errors.Is(err, puddlepool.ErrPoolPaused), errors.Is(err, puddlepool.ErrDialBackoff):
		return "pool_paused", ""
	case errors.Is(err, ErrNotSupported):
		return "not_supported", ""
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout", ""
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), ne != nil:
		return "connection", ""
	}
	return semconv.ErrorTypeOther.Value.AsString(), ""
}

// queryText returns the statement as db.query.text: the command name
// kept, every literal replaced by ?, a ? appended for each argument
// beyond the placeholders. Results are cached by statement.
func (t *telemetry) queryText(query string, nargs int) string {
	type key struct {
		q string
		n int
	}
	k := key{query, nargs}
	if v, ok := t.texts.Load(k); ok {
		return v.(string)
	}
	var s string
	if t.spanNS {
		s = sanitizeSQL(query)
	} else {
		s = sanitizeCommand(query, nargs)
	}
	if t.ntext.Add(1) <= maxCachedTexts {
		t.texts.Store(k, s)
	}
	return s
}

// sanitizeCommand masks a command line ("SET k v EX 60" -> "SET ? ? ? ?"):
// the first word is the command and stays, every other word (quoted
// strings included) becomes ?, and arguments beyond the placeholders
// are appended as ?.
func sanitizeCommand(query string, nargs int) string {
	var b strings.Builder
	words, holes := 0, 0
	for i := 0; i < len(query); {
		c := query[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		j := i
		if c == '"' || c == '\'' {
			j++
			for j < len(query) && query[j] != c {
				if query[j] == '\\' && c == '"' {
					j++
				}
				j++
			}
			j++
		} else {
			for j < len(query) && !strings.ContainsRune(" \t\r\n", rune(query[j])) {
				j++
			}
		}
		j = min(j, len(query))
		word := query[i:j]
		if words > 0 {
			b.WriteByte(' ')
		}
		if words == 0 && c != '"' && c != '\'' && word != "?" {
			b.WriteString(word)
		} else {
			b.WriteByte('?')
			if word == "?" {
				holes++
			}
		}
		words++
		i = j
	}
	for range max(nargs-holes, 0) {
		b.WriteString(" ?")
	}
	return b.String()
}

// sanitizeSQL masks the literals of a SQL statement: every string
// constant ('...', E'...' with backslash escapes, B'...', X'...', N'...',
// U&'...', $$...$$ and $tag$...$tag$) and number (42, 3.5, 1e10, .5)
// becomes ?. Comments (-- and nested /* */) are dropped: they may hold
// anything. Placeholders ($1) and quoted identifiers ("a b") are kept.
// An unterminated literal or comment masks the rest of the statement.
func sanitizeSQL(query string) string {
	var b strings.Builder
	b.Grow(len(query))
	prevIdent := false // the byte before is part of an identifier or keyword
	q := query
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			prevIdent = false
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			depth := 0
			for i < len(q) {
				if q[i] == '/' && i+1 < len(q) && q[i+1] == '*' {
					depth++
					i += 2
				} else if q[i] == '*' && i+1 < len(q) && q[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			if !strings.HasSuffix(b.String(), " ") {
				b.WriteByte(' ')
			}
			prevIdent = false
		case c == '"':
			j := i + 1
			for j < len(q) && (q[j] != '"' || j+1 < len(q) && q[j+1] == '"') {
				if q[j] == '"' {
					j++ // a doubled quote
				}
				j++
			}
			j = min(j+1, len(q))
			b.WriteString(q[i:j])
			i = j
			prevIdent = true
		case c == '\'':
			i = skipQuoted(q, i, false)
			b.WriteByte('?')
			prevIdent = false
		case !prevIdent && i+1 < len(q) && q[i+1] == '\'' && strings.IndexByte("EeBbXxNn", c) >= 0:
			i = skipQuoted(q, i+1, c == 'E' || c == 'e')
			b.WriteByte('?')
			prevIdent = false
		case !prevIdent && (c == 'U' || c == 'u') && strings.HasPrefix(q[i+1:], "&'"):
			i = skipQuoted(q, i+2, false)
			b.WriteByte('?')
			prevIdent = false
		case c == '$' && !prevIdent && dollarTag(q, i) > 0:
			n := dollarTag(q, i)
			tag := q[i : i+n]
			if end := strings.Index(q[i+n:], tag); end >= 0 {
				i += n + end + n
			} else {
				i = len(q)
			}
			b.WriteByte('?')
			prevIdent = false
		case !prevIdent && (c >= '0' && c <= '9' || c == '.' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9'):
			i++
			for i < len(q) {
				d := q[i]
				if d >= '0' && d <= '9' || d == '.' || d == '_' || d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' {
					i++ // digits, a fraction, an exponent, 0x1F, 1_000
				} else if (d == '+' || d == '-') && (q[i-1] == 'e' || q[i-1] == 'E') {
					i++
				} else {
					break
				}
			}
			b.WriteByte('?')
			prevIdent = false
		default:
			b.WriteByte(c)
			prevIdent = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '$' || c >= 0x80
			i++
		}
	}
	return b.String()
}

// skipQuoted returns the index after the literal quoted at q[i] (a ');
// a doubled quote stands for itself, and with backslash a backslash
// escapes the next byte (E'...').
func skipQuoted(q string, i int, backslash bool) int {
	for j := i + 1; j < len(q); j++ {
		switch {
		case backslash && q[j] == '\\':
			j++
		case q[j] == '\'' && j+1 < len(q) && q[j+1] == '\'':
			j++
		case q[j] == '\'':
			return j + 1
		}
	}
	return len(q)
}

// dollarTag returns the length of the dollar-quote tag at q[i] ("$$" or
// "$name$"), or 0 when there is none ($1 is a placeholder).
func dollarTag(q string, i int) int {
	j := i + 1
	for j < len(q) {
		c := q[j]
		switch {
		case c == '$':
			return j + 1 - i
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || c >= '0' && c <= '9' && j > i+1:
			j++
		default:
			return 0
		}
	}
	return 0
}
