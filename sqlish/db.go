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
	tel            *telemetry
	log            *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
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
	var rows *Rows
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
		if l.shared != nil {
			// The connection is not held by the rows (a multiplexed
			// connection's rows are read already): done with it.
			l.release(nil)
			rows.init(dr, nil)
		} else {
			rows.init(dr, l.release)
		}
		return nil
	})
	return rows, err
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

// Conn returns a connection pinned to one node until it is closed, for
// session state and transactions.
func (db *DB) Conn(ctx context.Context) (*Conn, error) {
	var c *Conn
	_, err := db.anyNode(ctx, func(ctx context.Context, n *topology.Node) error {
		l, err := db.acquire(ctx, n)
		if err == nil {
			c = &Conn{db: db, l: l}
		}
		return err
	})
	return c, err
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
		all = multierror.Append(all, err)
		if ctx.Err() != nil {
			break
		}
	}
	if all == nil {
		return nil, fmt.Errorf("sqlish: %w", ErrNoNodes)
	}
	all.ErrorFormat = errlist.Format
	return nil, all
}

// BeginTx starts a transaction on a pinned connection. It returns
// ErrNotSupported when the driver has no transactions.
func (db *DB) BeginTx(ctx context.Context, opts driver.TxOptions) (*Tx, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if !db.backend.Caps.Has(driver.CapTx) {
		return nil, fmt.Errorf("sqlish: BeginTx on %s: %w", db.backend.System, ErrNotSupported)
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	tx.ownsConn = true
	return tx, nil
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
	var dargs []driver.Value
	if n := len(args); n > 0 && n <= len(argBuf{}) {
		// Drivers keep no args past the call (see driver.Conn): the
		// slice goes back to the pool when the statement is done.
		buf := argBufs.Get().(*argBuf)
		defer func() {
			clear(buf[:n])
			argBufs.Put(buf)
		}()
		dargs = buf[:n:n]
		if err := normalizeInto(dargs, args); err != nil {
			return err
		}
	} else {
		var err error
		if dargs, err = normalizeArgs(args); err != nil {
			return err
		}
	}
	route, err := db.connector.Route(query, dargs)
	if err != nil {
		return fmt.Errorf("sqlish: %w", err)
	}
	return db.run(ctx, route, stmtInfo{query: query}, dargs, fn)
}

// argBuf holds the driver values of a statement's arguments.
type argBuf [8]driver.Value

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
	err := db.runAttempts(ctx, route, dargs, fn, &ob)
	db.tel.finish(ctx, &ob, route, err)
	return err
}

// runAttempts runs the attempts of a statement. Each attempt picks its
// node from the current topology snapshot; a redirect goes straight to the
// node it names, a connection failure triggers a topology refresh.
func (db *DB) runAttempts(ctx context.Context, route driver.Route, dargs []driver.Value, fn func(context.Context, *lease, []driver.Value) error, ob *observation) error {
	p := db.cfg.Policy
	// total_timeout costs a context (and a timer) per operation unless it
	// can be avoided. A driver with CapRequestTimeout bounds each request by
	// socket_timeout itself; then, when socket_timeout is within
	// total_timeout, an attempt that needs no waiting cannot outlive the
	// total, and the context is made only before something that may wait
	// (for the topology, for a connection) or retry, with what is left.
	driverTimeout := db.requestTimeout && !route.Exclusive
	start := time.Now()
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
	if !driverTimeout || p.SocketTimeout <= 0 || p.SocketTimeout > p.TotalTimeout {
		bound()
	}
	var (
		last     error
		target   *topology.Node // set by a redirect
		ask      bool
		sleep    = p.SleepBetweenRetries
		attempts int
	)
	for attempts = 1; attempts <= 1+p.MaxRetries; attempts++ {
		if attempts > 1 {
			if err := bound(); err != nil {
				last = err
				break
			}
		}
		if attempts > 1 && target == nil {
			if err := pause(ctx, sleep); err != nil {
				break
			}
			// Exponential backoff, capped so that a long retry budget keeps
			// polling for a recovering node instead of sleeping past it.
			sleep = min(sleep*2, max(p.SleepBetweenRetries, maxBackoff))
		}
		if ob.active() {
			db.tel.attempt(ctx, ob, route, attempts, last)
		}
		n := target
		if n == nil {
			if n = db.tender.Snapshot().Pick(route, db.pref, attempts-1); n == nil || !n.Healthy() {
				n = nil // db.pick waits for the topology: bound it first
				if err := bound(); err != nil {
					last = err
					break
				}
			}
		}
		if n == nil {
			var err error
			if n, err = db.pick(ctx, route, attempts-1); err != nil {
				last = err
				if ctx.Err() != nil {
					break
				}
				continue
			}
		}
		target = nil
		if ob.active() {
			ob.node = n
		}
		l := db.tryAcquire(ctx, n)
		var err error
		if l == nil {
			if err = bound(); err == nil {
				l, err = db.acquire(ctx, n)
			}
		}
		if err != nil {
			last = err
			if ctx.Err() != nil || errors.Is(err, puddlepool.ErrPoolClosed) && db.closed.Load() {
				break
			}
			db.tender.Refresh()
			continue // nothing was sent: try again, on the next node if any
		}
		if db.multiplexed && !route.Exclusive {
			l.share()
		}
		actx, cancel := ctx, context.CancelFunc(noop)
		if p.SocketTimeout > 0 && !driverTimeout {
			actx, cancel = context.WithTimeout(actx, p.SocketTimeout)
		}
		if ask {
			actx, ask = driver.WithAsk(actx), false
		}
		err = fn(actx, l, dargs)
		if l.shared != nil {
			db.recycle(l) // released by fn, and held by no Rows
		}
		cancel()
		if err == nil {
			n.Report(false)
			return nil
		}
		last = nodeErr(n, err)
		var re *driver.RedirectError
		if errors.As(err, &re) {
			n.Report(false)
			if ob.active() {
				db.tel.redirected(ctx, ob, route, n, re)
			}
			target, ask = db.tender.Redirect(re.Partition, re.Addr, re.Ask), re.Ask
			continue
		}
		if !keepsConn(err) && ctx.Err() == nil {
			// The node may be gone: count it against its breaker and have
			// the tender look now rather than at the next interval.
			n.Report(true)
			db.tender.Refresh()
		} else {
			n.Report(false)
		}
		if !retryable(err, route, ctx) {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(last, ctx.Err()) {
		return fmt.Errorf("sqlish: %s: %w (after %d attempts, last error: %v)", route.Op, ctx.Err(), min(attempts, 1+p.MaxRetries), last)
	}
	return last
}

func noop() {}

// maxBackoff caps the doubling of sleep_between_retries.
const maxBackoff = 50 * time.Millisecond

// pick returns the node for an attempt, waiting for the topology when no
// node is known to be healthy yet.
func (db *DB) pick(ctx context.Context, route driver.Route, attempt int) (*topology.Node, error) {
	s := db.tender.Snapshot()
	n := s.Pick(route, db.pref, attempt)
	if n != nil && n.Healthy() {
		return n, nil
	}
	if !s.HasHealthy() {
		var err error
		if s, err = db.tender.Wait(ctx); err != nil {
			return nil, fmt.Errorf("sqlish: %s: %w", route.Op, err)
		}
		n = s.Pick(route, db.pref, attempt)
	}
	if n == nil {
		db.tender.Refresh()
		return nil, fmt.Errorf("sqlish: %s: no node serves partition %d: %w", route.Op, route.Partition, ErrNoNodes)
	}
	return n, nil // possibly unhealthy: the attempt will say why
}

// retryable reports whether an attempt that failed with err may be tried
// again: never for server errors or once the caller's context is done; for
// a connection found bad before sending, always; for other failures (the
// request may have reached the server) only when the statement is
// idempotent.
func retryable(err error, route driver.Route, ctx context.Context) bool {
	var se *driver.ServerError
	switch {
	case ctx.Err() != nil, errors.As(err, &se), errors.Is(err, ErrNoRows):
		return false
	case errors.Is(err, driver.ErrBadConn):
		return true
	}
	return route.Idempotent
}

// pause sleeps for d or until ctx is done.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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
}

// Stats returns statistics of every node's pool and of the tender.
func (db *DB) Stats() Stats {
	snap := db.tender.Snapshot()
	s := Stats{Topology: db.tender.Stats()}
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
			all = multierror.Append(all, a.err)
			continue
		}
		out[a.addr] = a.text
	}
	if all != nil {
		all.ErrorFormat = errlist.Format
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
