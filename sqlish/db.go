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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
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
	nodes     []*node

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
	db := &DB{cfg: cfg, connector: connector, backend: connector.Backend()}
	if cfg.ClusterName != "" && !db.backend.Caps.Has(driver.CapClusterName) {
		return nil, &ConfigError{Key: "cluster_name", Value: cfg.ClusterName,
			Reason: fmt.Sprintf("driver %s has no cluster name to check", driverName)}
	}
	for _, h := range cfg.Hosts {
		n, err := db.newNode(h)
		if err != nil {
			db.Close()
			return nil, err
		}
		db.nodes = append(db.nodes, n)
	}
	return db, nil
}

// Connect opens a DB and waits until at least one seed node answers, within
// ctx and the configured timeout. If none does, the error joins every
// seed's error.
func Connect(ctx context.Context, driverName, dsn string) (*DB, error) {
	db, err := Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	if err := db.connect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// connect pings every seed in parallel and returns at the first success.
func (db *DB) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.cfg.Timeout)
	defer cancel()
	errs := make(chan error, len(db.nodes))
	for _, n := range db.nodes {
		go func() { errs <- n.ping(ctx) }()
	}
	var all *multierror.Error
	var ok bool
	for range db.nodes {
		if err := <-errs; err == nil && !ok {
			ok = true
			cancel() // the other seeds need not answer
		} else if err != nil {
			all = multierror.Append(all, err)
		}
	}
	if ok {
		return nil
	}
	all.ErrorFormat = listErrors
	return fmt.Errorf("sqlish: no seed of %d answered within %v: %w", len(db.nodes), db.cfg.Timeout, all)
}

func listErrors(errs []error) string {
	s := fmt.Sprintf("%d errors:", len(errs))
	for _, e := range errs {
		s += "\n\t* " + e.Error()
	}
	return s
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
	var rows *Rows
	err := db.do(ctx, query, args, func(ctx context.Context, l *lease, dargs []driver.Value) error {
		dr, err := l.conn().Query(ctx, query, dargs)
		if err != nil {
			l.release(err)
			return err
		}
		rows = newRows(dr, l.release)
		return nil
	})
	return rows, err
}

// QueryRow runs a statement expected to return at most one row. Errors are
// deferred to Row.Scan, which returns ErrNoRows when there is no row.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *Row {
	rows, err := db.Query(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Ping checks that a node can be reached, dialling if needed.
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return ErrClosed
	}
	var all *multierror.Error
	for _, n := range db.pickOrder(0) {
		err := n.ping(ctx)
		if err == nil {
			return nil
		}
		all = multierror.Append(all, err)
		if ctx.Err() != nil {
			break
		}
	}
	all.ErrorFormat = listErrors
	return all
}

// Conn returns a connection pinned to one node until it is closed, for
// session state and transactions.
func (db *DB) Conn(ctx context.Context) (*Conn, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	var all *multierror.Error
	for _, n := range db.pickOrder(0) {
		l, err := n.acquire(ctx)
		if err == nil {
			return &Conn{db: db, l: l}, nil
		}
		all = multierror.Append(all, err)
		if ctx.Err() != nil {
			break
		}
	}
	all.ErrorFormat = listErrors
	return nil, all
}

// BeginTx starts a transaction on a pinned connection. It returns
// ErrNotSupported when the driver has no transactions.
func (db *DB) BeginTx(ctx context.Context, opts driver.TxOptions) (*Tx, error) {
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
	if db.closed.Load() {
		return false
	}
	for _, n := range db.nodes {
		if n.state.Load() == stateUp {
			return true
		}
	}
	return false
}

// Close closes the DB. Idle connections close now, connections in use
// close when they are returned, and work in flight is not cut. Every later
// call returns ErrClosed. Close does not wait for connections still in use
// (held by unclosed Rows, Conns or Txs).
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		for _, n := range db.nodes {
			n.pool.Close()
		}
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
	dargs, err := normalizeArgs(args)
	if err != nil {
		return err
	}
	route, err := db.connector.Route(query, dargs)
	if err != nil {
		return fmt.Errorf("sqlish: %w", err)
	}
	return db.run(ctx, route, dargs, fn)
}

// run is do once the statement is routed.
func (db *DB) run(ctx context.Context, route driver.Route, dargs []driver.Value, fn func(context.Context, *lease, []driver.Value) error) error {
	p := db.cfg.Policy
	if p.TotalTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.TotalTimeout)
		defer cancel()
	}
	var last error
	sleep := p.SleepBetweenRetries
	for attempt := 0; attempt <= p.MaxRetries; attempt++ {
		if attempt > 0 {
			if err := pause(ctx, sleep); err != nil {
				break
			}
			sleep *= 2
		}
		n := db.pick(route, attempt)
		l, err := n.acquire(ctx)
		if err != nil {
			last = err
			if ctx.Err() != nil || errors.Is(err, puddlepool.ErrPoolClosed) {
				break
			}
			continue // this node cannot serve now; try the next
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if p.SocketTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.SocketTimeout)
		}
		err = fn(actx, l, dargs)
		cancel()
		if err == nil {
			return nil
		}
		last = n.wrap(err)
		if !retryable(err, route, ctx) {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(last, ctx.Err()) {
		return fmt.Errorf("sqlish: %s: %w (last error: %v)", route.Op, ctx.Err(), last)
	}
	return last
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

// pick chooses the node for an attempt: the first node that is not known
// to be down, starting one further along for each retry.
func (db *DB) pick(route driver.Route, attempt int) *node {
	order := db.pickOrder(attempt)
	for _, n := range order {
		if n.state.Load() != stateDown {
			return n
		}
	}
	return order[0]
}

// pickOrder returns the nodes rotated by attempt.
func (db *DB) pickOrder(attempt int) []*node {
	k := attempt % len(db.nodes)
	if k == 0 {
		return db.nodes
	}
	return append(db.nodes[k:len(db.nodes):len(db.nodes)], db.nodes[:k]...)
}

// Node describes one node of the cluster.
type Node struct {
	ID      string // the node's id, or its address until it has answered
	Addr    string
	Role    string // "primary", "replica" or "unknown"
	Healthy bool   // answered and has not failed since
}

// Nodes returns the nodes the DB knows.
func (db *DB) Nodes() []Node {
	out := make([]Node, len(db.nodes))
	for i, n := range db.nodes {
		out[i] = n.describe()
	}
	return out
}

// NodeStats is one node's description and pool statistics.
type NodeStats struct {
	Node
	Pool puddlepool.Stat
}

// Stats describes the DB's nodes and pools.
type Stats struct {
	Nodes []NodeStats
	// Totals over all nodes.
	Open, Idle, InUse int
}

// Stats returns statistics of every node's pool.
func (db *DB) Stats() Stats {
	var s Stats
	for _, n := range db.nodes {
		ps := n.pool.Stat()
		s.Nodes = append(s.Nodes, NodeStats{Node: n.describe(), Pool: ps})
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
	type answer struct {
		addr, text string
		err        error
	}
	answers := make(chan answer, len(db.nodes))
	for _, n := range db.nodes {
		go func() {
			text, err := n.info(ctx, cmd)
			answers <- answer{n.addr, text, err}
		}()
	}
	out := make(map[string]string, len(db.nodes))
	var all *multierror.Error
	for range db.nodes {
		a := <-answers
		if a.err != nil {
			all = multierror.Append(all, a.err)
			continue
		}
		out[a.addr] = a.text
	}
	if all != nil {
		all.ErrorFormat = listErrors
		return out, fmt.Errorf("sqlish: InfoAll %q: %d of %d nodes failed: %w", cmd, len(all.Errors), len(db.nodes), all)
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
	var up []*node
	for _, n := range db.nodes {
		if n.state.Load() != stateDown {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return "", fmt.Errorf("sqlish: InfoRandomNode: all %d nodes are down: %w", len(db.nodes), ErrNoNodes)
	}
	return up[rand.IntN(len(up))].info(ctx, cmd)
}
