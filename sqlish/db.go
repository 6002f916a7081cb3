// Package sqlish is tendril's user API: a database/sql-like handle on a
// clustered database, opened by driver name and DSN.
//
//	db, err := sqlish.Open("memory", "memory://demo")
//	...
//	defer db.Close()
//	if _, err := db.Exec(ctx, "SET ? ?", "greeting", "hello"); err != nil { ... }
//	var s string
//	err = db.QueryRow(ctx, "GET ?", "greeting").Scan(&s)
//
// Swapping the backend is a matter of the driver name and DSN
// ("redis", "redis://127.0.0.1:7000,127.0.0.1:7001"): the code stays the
// same. Every node gets its own connection pool; operations are routed by
// the driver, bounded by the Policy's timeouts and retried within it.
package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/errlist"
	"github.com/tendril-db/tendril/puddlepool"
	"github.com/tendril-db/tendril/topology"
)

// Register makes a driver available under name. It panics if d is nil or
// name is taken. Backend packages register themselves when imported:
//
//	import _ "github.com/tendril-db/tendril/driver/memory"
func Register(name string, d driver.Driver) { driver.Register(name, d) }

// Drivers returns the sorted names of the registered drivers.
func Drivers() []string { return driver.Drivers() }

// DB is a handle on a cluster: a pool of connections per node. It is safe
// for concurrent use; open it once and share it.
type DB struct {
	cfg       Config
	connector driver.Connector
	backend   driver.Backend
	tender    *topology.Tender
	pref      topology.ReadPreference
	// multiplexed is set when the driver's connections serve many callers
	// at once (driver.CapMultiplex).
	multiplexed bool
	// requestTimeout is set when the driver bounds each request by
	// socket_timeout itself (driver.CapRequestTimeout).
	requestTimeout bool
	classifier     driver.Classifier     // nil when the driver classifies no error
	converter      driver.ValueConverter // nil when the driver takes the default conversion
	tel            *telemetry
	log            *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
	// cacher answers QueryRows from the driver's client-side cache, when
	// it has one that can (see cachedRow).
	cacher driver.RowCacher
	pick   func(driver.Route) string // pickCached
	// noBatchSend is set once a connection turned out not to be a
	// driver.BatchSender (see SendBatch).
	noBatchSend atomic.Bool
	preparer    driver.PrepareRouter // nil when the driver routes batches as statements
}

// Open validates the DSN and returns a DB. It never blocks on the network:
// connections are made when first needed (and min_conns_per_node in the
// background). Use Connect or Ping to wait for the cluster.
func Open(driverName, dsn string) (*DB, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return OpenConfig(driverName, cfg)
}

// OpenConfig is Open with a Config (from DefaultConfig or ParseDSN).
func OpenConfig(driverName string, cfg Config) (*DB, error) {
	d, ok := driver.Lookup(driverName)
	if !ok {
		return nil, fmt.Errorf("sqlish: unknown driver %q (registered: %v; forgotten import?)", driverName, driver.Drivers())
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dc, err := cfg.driverConfig()
	if err != nil {
		return nil, err
	}
	connector, err := d.OpenConnector(dc)
	if err != nil {
		var pe *driver.ParamError
		if errors.As(err, &pe) && pe.Reason == "unknown key" {
			return nil, &ConfigError{Key: pe.Key, Reason: "unknown key", Valid: append(Keys(), pe.Valid...), Driver: driverName}
		}
		return nil, fmt.Errorf("sqlish: driver %s: %w", driverName, err)
	}
	db := &DB{cfg: cfg, connector: connector, backend: connector.Backend(), pref: readPreference(cfg.Policy.ReadPreference)}
	db.multiplexed = db.backend.Caps.Has(driver.CapMultiplex)
	db.requestTimeout = db.backend.Caps.Has(driver.CapRequestTimeout)
	db.classifier, _ = connector.(driver.Classifier)
	db.converter, _ = connector.(driver.ValueConverter)
	db.cacher, _ = connector.(driver.RowCacher)
	db.pick = db.pickCached // made once: a method value passed on allocates
	db.preparer, _ = connector.(driver.PrepareRouter)
	if cfg.ClusterName != "" && !db.backend.Caps.Has(driver.CapClusterName) {
		return nil, &ConfigError{Key: "cluster_name", Value: cfg.ClusterName,
			Reason: fmt.Sprintf("driver %s has no cluster name to check", driverName)}
	}
	db.log = newLogger(cfg.Logger, cfg.LogLevel)
	if db.tel, err = newTelemetry(&cfg, db.backend, db.log); err != nil {
		return nil, fmt.Errorf("sqlish: telemetry: %w", err)
	}
	pool := cfg.poolConfig()
	if db.tel.meterOn || db.log.Enabled(context.Background(), slog.LevelError) {
		pool.OnEvent = db.tel.onPoolEvent
	}
	tel := db.tel
	db.tender, err = topology.New(topology.Config{
		Seeds:        cfg.Hosts,
		Connector:    connector,
		ClusterName:  cfg.ClusterName,
		Timeout:      cfg.Timeout,
		TendInterval: cfg.TendInterval,
		UseAlternate: cfg.UseServicesAlternate,
		Pool:         pool,
		Logger:       db.log,
		OnTend: func(d time.Duration, healthy bool) {
			ctx := context.Background()
			if tel.tendDuration.Enabled(ctx) {
				tel.tendDuration.Record(ctx, d.Seconds(), tel.tendOption(healthy))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sqlish: %w", err)
	}
	if err := db.tel.registerObservers(cfg.MeterProvider, db); err != nil {
		db.tender.Close()
		return nil, fmt.Errorf("sqlish: telemetry: %w", err)
	}
	db.tender.Start()
	return db, nil
}

// ConnectConfig is Connect with a Config (from DefaultConfig or ParseDSN),
// for settings a DSN cannot carry: Logger, TracerProvider, MeterProvider.
func ConnectConfig(ctx context.Context, driverName string, cfg Config) (*DB, error) {
	db, err := OpenConfig(driverName, cfg)
	if err != nil {
		return nil, err
	}
	if err := db.connect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func readPreference(p ReadPreference) topology.ReadPreference {
	switch p {
	case PreferReplica:
		return topology.PreferReplica
	case Replica:
		return topology.Replica
	}
	return topology.Primary
}

// Connect opens a DB and waits until at least one seed node answers, within
// ctx and the configured timeout. If none does, the error joins every
// seed's error.
func Connect(ctx context.Context, driverName, dsn string) (*DB, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return ConnectConfig(ctx, driverName, cfg)
}

// connect waits for the first tend: it succeeds when a seed answered, and
// otherwise fails with every seed's error.
func (db *DB) connect(ctx context.Context) error {
	if err := db.tender.WaitFirst(ctx); err != nil {
		return fmt.Errorf("sqlish: no seed of %d answered: %w", len(db.cfg.Hosts), err)
	}
	return nil
}

// String describes the DB: its backend and its configuration as a DSN,
// the password redacted.
func (db *DB) String() string {
	return "sqlish.DB(" + db.backend.System + ", " + db.cfg.String() + ")"
}

// Format prints String whatever the verb, so that no verb (%v, %+v, %#v,
// %d...) can print the configuration's password.
func (db *DB) Format(f fmt.State, _ rune) { io.WriteString(f, db.String()) }

// Config returns the configuration the DB was opened with.
func (db *DB) Config() Config { return db.cfg }

// Backend describes the driver's backend.
func (db *DB) Backend() driver.Backend { return db.backend }

// Exec runs a statement and discards its rows.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (Result, error) {
	var res Result
	err := db.do(ctx, query, args, func(ctx context.Context, l *lease, dargs []driver.Value) error {
		r, err := l.conn().Exec(ctx, query, dargs)
		l.release(err)
		res = r
		return err
	})
	return res, err
}

// Query runs a statement and returns its rows, which hold a connection
// until they are closed.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	return db.query(ctx, query, args, nil)
}

// query is Query; into, when not nil, is the Rows to fill in.
func (db *DB) query(ctx context.Context, query string, args []any, into *Rows) (*Rows, error) {
	if into != nil && db.cacher != nil {
		if hit, err := db.cachedRow(ctx, query, args, into); hit {
			return into, err
		}
	}
	var rows *Rows
	caller := ctx
	err := db.do(ctx, query, args, func(ctx context.Context, l *lease, dargs []driver.Value) error {
		if rq, ok := l.conn().(driver.RowQueryer); ok && into != nil {
			// QueryRow's fast path: the row comes back in into, and the
			// connection is not held.
			*into = Rows{}
			err := rq.QueryRow(ctx, query, dargs, &into.first)
			none := err == io.EOF
			if none {
				err = nil
			}
			l.release(err)
			if err != nil {
				return err
			}
			rows = into
			return into.initFirst(none)
		}
		dr, err := l.conn().Query(ctx, query, dargs)
		if err != nil {
			l.release(err)
			return err
		}
		rows = into
		if rows == nil {
			rows = new(Rows)
		}
		if l.shared {
			// The connection is not held by the rows (a multiplexed
			// connection's rows are read already): done with it.
			l.release(nil)
			rows.init(dr, nil)
		} else {
			rows.init(dr, l.release)
			if into == nil {
				// Rows holding a connection are closed when the caller's
				// context ends. Not a Row's: it is pooled, and a watcher
				// could fire on its next use.
				rows.watch(caller)
			}
		}
		return nil
	})
	return rows, err
}

// cachedRow answers a QueryRow from the driver's client-side cache
// (driver.RowCacher) before any connection is taken: the statement is
// routed, the node that would serve it picked, and the driver asked for
// that node's cached row. A hit is no operation for the telemetry: while
// it records operations (metrics, spans, the trace log), hits take the
// statement's usual path, where the driver's connection finds them in the
// same cache.
func (db *DB) cachedRow(ctx context.Context, query string, args []any, into *Rows) (bool, error) {
	if db.closed.Load() || ctx.Err() != nil || db.tel.on(ctx) {
		return false, nil
	}
	dargs, buf, err := db.driverArgs(args)
	defer putArgs(buf, len(dargs))
	if err != nil {
		return false, nil // the statement's usual path reports it
	}
	*into = Rows{}
	hit, err := db.cacher.CachedRow(ctx, query, dargs, db.pick, &into.first)
	if !hit {
		return false, nil
	}
	none := err == io.EOF
	if none {
		err = nil
	}
	if err == nil {
		err = into.initFirst(none)
	}
	return true, err
}

// pickCached is cachedRow's node pick (see driver.RowCacher): the node that
// would serve a read, if it is healthy; "" for anything else.
func (db *DB) pickCached(route driver.Route) string {
	if route.Session || route.Exclusive || route.Intent != driver.Read {
		return ""
	}
	n := db.tender.Snapshot().Pick(route, db.pref, 0)
	if n == nil || !n.Healthy() {
		return ""
	}
	return n.Addr()
}

// QueryRow runs a statement expected to return at most one row. Errors are
// deferred to Row.Scan, which returns ErrNoRows when there is no row.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *Row {
	// Small enough to be inlined, so that a Row scanned at once need not
	// live on the heap.
	r := &Row{}
	db.queryRow(ctx, r, query, args)
	return r
}

func (db *DB) queryRow(ctx context.Context, r *Row, query string, args []any) {
	into := rowsPool.Get().(*Rows)
	rows, err := db.query(ctx, query, args, into)
	if rows == nil {
		rowsPool.Put(into)
	}
	r.rows, r.err, r.pooled = rows, err, rows != nil
}

// Ping checks that a node can be reached, waiting for the topology and
// dialling if needed.
func (db *DB) Ping(ctx context.Context) error {
	_, err := db.anyNode(ctx, func(ctx context.Context, n *topology.Node) error { return db.ping(ctx, n) })
	return err
}

// anyNode runs fn on healthy nodes in turn until it succeeds.
func (db *DB) anyNode(ctx context.Context, fn func(context.Context, *topology.Node) error) (*topology.Node, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	s, err := db.tender.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlish: %w", err)
	}
	var all *multierror.Error
	for _, n := range s.Nodes() {
		if !n.Healthy() {
			continue
		}
		err := fn(ctx, n)
		if err == nil {
			return n, nil
		}
		all = errlist.Append(all, err)
		if ctx.Err() != nil {
			break
		}
	}
	if all == nil {
		return nil, fmt.Errorf("sqlish: %w", ErrNoNodes)
	}
	return nil, all
}

// IsConnected reports whether the DB is open and at least one node has
// answered and not failed since.
func (db *DB) IsConnected() bool {
	return !db.closed.Load() && db.tender.Snapshot().HasHealthy()
}

// Close closes the DB. Idle connections close now, connections in use
// close when they are returned, and work in flight is not cut. Every later
// call returns ErrClosed. Close does not wait for connections still in use
// (held by unclosed Rows, Conns or Txs).
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		db.tel.close()
		db.tender.Close()
	})
	return nil
}

// do runs one statement by the policy: route it, pick a node, run fn on a
// connection, and retry on the next node when the failure is safe to retry.
// fn must release the lease unless it hands it to Rows.
func (db *DB) do(ctx context.Context, query string, args []any, fn func(context.Context, *lease, []driver.Value) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	dargs, buf, err := db.driverArgs(args)
	defer putArgs(buf, len(dargs))
	if err != nil {
		return err
	}
	route, err := db.connector.Route(query, dargs)
	if err != nil {
		return fmt.Errorf("sqlish: %w", err)
	}
	if route.Session {
		return sessionErr(route)
	}
	if route.Unsure && readIntent(ctx) {
		route.Intent, route.Idempotent = driver.Read, true // a read may run twice
	}
	return db.run(ctx, route, stmtInfo{query: query}, dargs, fn)
}

// sessionErr is the error of a session-changing statement run on the DB.
func sessionErr(route driver.Route) error {
	return fmt.Errorf("%w: %s would change it for every caller of the DB's shared connections; "+
		"run it on a pinned Conn (DB.Conn), use BeginTx for a transaction, or set the database in the DSN", ErrSessionState, route.Op)
}

// argBuf holds the driver values of a statement's arguments.
type argBuf [8]driver.Value

// driverArgs converts args for the driver: up to eight of them into a
// pooled argBuf, returned for putArgs once the statement is done (drivers
// keep no args past the call, see driver.Conn).
func (db *DB) driverArgs(args []any) ([]driver.Value, *argBuf, error) {
	n := len(args)
	if n == 0 || n > len(argBuf{}) {
		dargs, err := normalizeArgs(db.converter, args)
		return dargs, nil, err
	}
	buf := argBufs.Get().(*argBuf)
	dargs := buf[:n:n]
	return dargs, buf, normalizeInto(db.converter, dargs, args)
}

// putArgs gives buf, the first n of whose values were used, back to the
// pool.
func putArgs(buf *argBuf, n int) {
	if buf != nil {
		clear(buf[:n])
		argBufs.Put(buf)
	}
}

var argBufs = sync.Pool{New: func() any { return new(argBuf) }}

// stmtInfo is what telemetry needs of a statement besides its route.
type stmtInfo struct {
	query string    // the statement as written, for db.query.text ("" for none)
	group *batchObs // the batch the statement's group belongs to
}

// run is do once the statement is routed, observed by the telemetry: a
// span (unless it is part of a batch), the duration metric, the trace log.
func (db *DB) run(ctx context.Context, route driver.Route, st stmtInfo, dargs []driver.Value, fn func(context.Context, *lease, []driver.Value) error) error {
	ob := observation{group: st.group}
	ctx = db.tel.begin(ctx, &ob, route, st.query, len(dargs))
	err := db.runAttempts(ctx, route, dargs, fn, &ob, nil)
	db.tel.finish(ctx, &ob, route, err)
	return err
}

// boundAtOnce reports whether an operation makes its total_timeout context
// at its start. That context costs a timer per operation, avoided where it
// can be: a driver with CapRequestTimeout bounds each request by
// socket_timeout itself (driverTimeout), so when socket_timeout is within
// total_timeout a run that needs no waiting cannot outlive the total, and
// the context is made only before something that may wait (for the
// topology, for a connection) or retry, with what is left.
func (db *DB) boundAtOnce(driverTimeout bool) bool {
	p := db.cfg.Policy
	return !driverTimeout || p.SocketTimeout <= 0 || p.SocketTimeout > p.TotalTimeout
}

// runAttempts runs the attempts of a statement by the retry policy (see
// policy.go). Each attempt picks its node from the current topology
// snapshot; a redirect goes straight to the node it names. first, when not
// nil, is the lease of the first attempt, taken by the caller (a batch
// sends every node's group on such leases before it waits for any): that
// attempt runs on it, whatever the topology says by now.
func (db *DB) runAttempts(ctx context.Context, route driver.Route, dargs []driver.Value, fn func(context.Context, *lease, []driver.Value) error, ob *observation, first *lease) error {
	p := db.cfg.Policy
	driverTimeout := db.requestTimeout && !route.Exclusive
	exclusive := !db.multiplexed || route.Exclusive
	start := time.Now()
	_, hasDeadline := ctx.Deadline()
	bounded := p.TotalTimeout <= 0
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	bound := func() error {
		if bounded {
			return nil
		}
		bounded = true
		left := p.TotalTimeout - time.Since(start)
		if left <= 0 {
			return fmt.Errorf("%w (total_timeout %v spent)", context.DeadlineExceeded, p.TotalTimeout)
		}
		ctx, cancel = context.WithTimeout(ctx, left)
		return nil
	}
	if db.boundAtOnce(driverTimeout) {
		bound()
	}
	b := newBudget(p, p.TotalTimeout > 0 || hasDeadline)
	var (
		last     error
		target   *topology.Node // set by a redirect
		ask      bool
		attempts int
	)
	for {
		pre := first
		first = nil
		if pre == nil && db.closed.Load() {
			last = ErrClosed
			break
		}
		n := target
		if pre != nil {
			n = pre.n
		} else if n == nil {
			if n = db.tender.Snapshot().Pick(route, db.pref, attempts); n == nil || !n.Healthy() {
				// No healthy node serves the partition (a node is down,
				// a failover under way): wait for the tender, bounded.
				if err := bound(); err != nil {
					last = err
					break
				}
				if last == nil || attempts == 0 {
					last = db.noNode(route, n)
				}
				if err := db.awaitNode(ctx, &b); err != nil {
					if err != ctx.Err() && !errors.Is(err, ErrNoNodes) {
						// The tender says why no node is healthy.
						last = fmt.Errorf("sqlish: %s: %w", route.Op, err)
					}
					break
				}
				continue
			}
		}
		target = nil
		attempts++
		if attempts > 1 {
			if err := bound(); err != nil {
				last = err
				break
			}
		}
		if ob.active() {
			db.tel.attempt(ctx, ob, route, attempts, last)
			ob.node = n
		}
		var l *lease
		var err error
		switch {
		case pre != nil:
			l = pre
		case exclusive && db.multiplexed:
			if err = bound(); err == nil {
				l, err = db.acquireExclusive(ctx, n)
			}
		default: // shared, or a driver whose connections are never lent
			if l = db.tryAcquire(ctx, n); l == nil {
				if err = bound(); err == nil {
					l, err = db.acquire(ctx, n)
				}
			}
		}
		sent := err == nil
		if err == nil {
			if !exclusive && !l.shared {
				if crowded(l.conn()) && n.Pool().Room() {
					l.spread = true
				} else {
					l.share()
				}
			}
			actx, cancel := ctx, context.CancelFunc(noop)
			if p.SocketTimeout > 0 && !driverTimeout && !blocking(route) {
				actx, cancel = context.WithTimeout(actx, p.SocketTimeout)
			}
			if ask {
				actx, ask = driver.WithAsk(actx), false
			}
			err = fn(actx, l, dargs)
			if l.shared || l.res == nil {
				db.recycle(l) // released by fn, and held by no Rows
			}
			cancel()
			if err == nil {
				n.Report(false)
				return nil
			}
		}
		last = nodeErr(n, err)
		if ctx.Err() != nil {
			break
		}
		class := db.classify(err)
		if class == driver.RetryDemoted && n.Role() == driver.RoleReplica {
			// A write sent where the caller said a read may go (WithRead):
			// the replica refusing it is the statement's own outcome.
			class = driver.RetryNever
		}
		v := judge(err, sent, idempotent(ctx, route), class)
		switch {
		case class == driver.RetryDemoted:
			// A write met a node that no longer takes writes: none goes
			// there until a probe says it is a primary again.
			db.tender.Demote(n, err)
		case v == follow:
			var re *driver.RedirectError
			errors.As(err, &re)
			n.Report(false)
			if ob.active() {
				db.tel.redirected(ctx, ob, route, n, re)
			}
			target, ask = db.tender.Redirect(re.Partition, re.Addr, re.Ask), re.Ask
		case sent && !keepsConn(err) && v != again:
			// The node may be gone: count it against its breaker; the
			// tender looks now rather than at the next interval.
			n.Report(true)
			db.tender.Refresh()
		default:
			n.Report(false)
		}
		if !b.allow(v) {
			if v == unknown {
				last = fmt.Errorf("sqlish: %s: %w (not retried: not idempotent): %w", route.Op, ErrOutcomeUnknown, last)
			}
			break
		}
		if err := db.await(ctx, v, &b); err != nil {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(last, ctx.Err()) {
		return fmt.Errorf("sqlish: %s: %w%s (after %d attempts, last error: %w)", route.Op, ctx.Err(), db.spent(start), attempts, last)
	}
	return last
}

// spent describes the deadline that ended an operation when it was
// total_timeout's.
func (db *DB) spent(start time.Time) string {
	if t := db.cfg.Policy.TotalTimeout; t > 0 && time.Since(start) >= t {
		return fmt.Sprintf(" (total_timeout %v)", t)
	}
	return ""
}

// classify asks the driver what err means for a retry.
func (db *DB) classify(err error) driver.Retry {
	if db.classifier == nil {
		return driver.RetryDefault
	}
	return db.classifier.Classify(err)
}

// noNode is the error of an operation whose partition has no healthy
// node: n is the unhealthy node picked, or nil.
func (db *DB) noNode(route driver.Route, n *topology.Node) error {
	what := "the statement"
	snap := db.tender.Snapshot()
	if n == nil && snap.Partitions() == 0 && route.Intent == driver.Write {
		// A primary/standby backend: name the primary that is down.
		for _, x := range snap.Nodes() {
			if x.Role() == driver.RolePrimary && !x.Healthy() {
				n = x
				break
			}
		}
	}
	if route.Partition != driver.AnyPartition && snap.Partitions() > 0 {
		what = fmt.Sprintf("partition %d", route.Partition)
	}
	if n != nil {
		return nodeErr(n, fmt.Errorf("%s: node is down, waiting for a healthy node to serve %s: %w", route.Op, what, ErrNoNodes))
	}
	return fmt.Errorf("sqlish: %s: no node serves %s: %w", route.Op, what, ErrNoNodes)
}

// awaitNode waits for a node to serve an operation's partition: for a
// first healthy node when none is known (tender.Wait, which says why when
// ctx ends), else for the next tend, which costs a retry when nothing
// bounds the operation (see budget).
func (db *DB) awaitNode(ctx context.Context, b *budget) error {
	if !db.tender.Snapshot().HasHealthy() {
		_, err := db.tender.Wait(ctx)
		return err
	}
	if !b.allow(refresh) {
		return ErrNoNodes
	}
	return db.await(ctx, refresh, b)
}

func noop() {}

// blocking reports whether route's statement waits on the server as long
// as its own timeout says (BLPOP, XREAD BLOCK, WAIT): socket_timeout does
// not bound it, total_timeout and the context do.
func blocking(route driver.Route) bool { return route.Exclusive && !route.Session }

// Nodes returns the nodes of the live topology.
func (db *DB) Nodes() []Node {
	s := db.tender.Snapshot()
	out := make([]Node, 0, len(s.Nodes()))
	for _, n := range s.Nodes() {
		out = append(out, describe(s, n))
	}
	return out
}

// NodeStats is one node's description and pool statistics.
type NodeStats struct {
	Node
	Pool puddlepool.Stat
}

// Stats describes the DB's nodes, pools and topology tending.
type Stats struct {
	Nodes []NodeStats
	// Totals over all nodes.
	Open, Idle, InUse int
	// Topology counts tends, probes, fetches, node changes and refreshes.
	Topology topology.Stats
	// Cache counts the driver's client-side cache's work (see WithCache);
	// zero without one.
	Cache driver.CacheStats
}

// Stats returns statistics of every node's pool and of the tender.
func (db *DB) Stats() Stats {
	snap := db.tender.Snapshot()
	s := Stats{Topology: db.tender.Stats()}
	if cs, ok := db.connector.(driver.CacheStatser); ok {
		s.Cache = cs.CacheStats()
	}
	for _, n := range snap.Nodes() {
		ps := n.Pool().Stat()
		s.Nodes = append(s.Nodes, NodeStats{Node: describe(snap, n), Pool: ps})
		s.Open += int(ps.Total)
		s.Idle += int(ps.Idle)
		s.InUse += int(ps.InUse)
	}
	return s
}

// InfoAll runs an info command (for Redis: INFO [section]) on every node in
// parallel. It returns the answers by node address and, when some nodes
// failed, an error joining their errors: callers get both.
func (db *DB) InfoAll(ctx context.Context, cmd string) (map[string]string, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if !db.backend.Caps.Has(driver.CapInfo) {
		return nil, fmt.Errorf("sqlish: InfoAll on %s: %w", db.backend.System, ErrNotSupported)
	}
	snap, err := db.tender.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlish: InfoAll: %w", err)
	}
	nodes := snap.Nodes()
	type answer struct {
		addr, text string
		err        error
	}
	answers := make(chan answer, len(nodes))
	for _, n := range nodes {
		go func() {
			text, err := db.info(ctx, n, cmd)
			answers <- answer{n.Addr(), text, err}
		}()
	}
	out := make(map[string]string, len(nodes))
	var all *multierror.Error
	for range nodes {
		a := <-answers
		if a.err != nil {
			all = errlist.Append(all, a.err)
			continue
		}
		out[a.addr] = a.text
	}
	if all != nil {
		return out, fmt.Errorf("sqlish: InfoAll %q: %d of %d nodes failed: %w", cmd, len(all.Errors), len(nodes), all)
	}
	return out, nil
}

// InfoRandomNode runs an info command on one healthy node chosen at random.
func (db *DB) InfoRandomNode(ctx context.Context, cmd string) (string, error) {
	if db.closed.Load() {
		return "", ErrClosed
	}
	if !db.backend.Caps.Has(driver.CapInfo) {
		return "", fmt.Errorf("sqlish: InfoRandomNode on %s: %w", db.backend.System, ErrNotSupported)
	}
	snap, err := db.tender.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("sqlish: InfoRandomNode: %w", err)
	}
	var up []*topology.Node
	for _, n := range snap.Nodes() {
		if n.Healthy() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return "", fmt.Errorf("sqlish: InfoRandomNode: none of %d nodes is healthy: %w", len(snap.Nodes()), ErrNoNodes)
	}
	return db.info(ctx, up[rand.IntN(len(up))], cmd)
}
