// Package memory is tendril's in-process backend, registered as "memory".
//
// It speaks a Redis-compatible subset of commands (strings with expiry,
// hashes, KEYS, INFO, ...) with Redis' replies and error messages, so that
// an application can move between "memory://name" and "redis://host:port"
// without code changes. It is the embedded default of the CLI's demo and the
// reference backend of the conformance suite.
//
// The DSN's host is a cluster's name: every DB opened with the same name in
// one process talks to the same simulated Redis Cluster (see Cluster),
// created the first time a connector connects to or resolves one of its
// seeds. The driver-specific keys shape it:
//
//	nodes     number of shards (primaries), 1 to 1000; default 1
//	replicas  replicas per shard, 0 to 15; default 0
//
// so memory://shop?nodes=3&replicas=1 is six nodes, shop:7001 to shop:7006.
// Nodes behave as Redis Cluster nodes do: MOVED and ASK redirections,
// CROSSSLOT (on clusters of more than one shard), READONLY replicas. A
// one-shard cluster (the default) is as lenient as a standalone Redis with
// multi-key commands. Connections are real pooled objects (counted,
// closable), so pool limits and leaks show as they would on a network
// backend, and Lookup returns a handle to inject faults.
package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
)

func init() {
	driver.Register("memory", Driver{})
}

// Driver is the memory driver.
type Driver struct{}

// params lists the driver-specific DSN keys.
var params = []string{"nodes", "replicas"}

// Params implements driver.ParamLister.
func (Driver) Params() []string { return params }

// OpenConnector implements driver.Driver.
func (Driver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	c := &connector{cfg: cfg, shards: 1, wantShards: -1, wantReplicas: -1}
	for _, k := range slices.Sorted(maps.Keys(cfg.Params)) {
		v := cfg.Params[k]
		switch k {
		case "nodes":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "not a positive integer"}
			}
			if n > maxShards {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: fmt.Sprintf("at most %d", maxShards)}
			}
			c.shards, c.wantShards = n, n
		case "replicas":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "not a non-negative integer"}
			}
			if n > maxReplicas {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: fmt.Sprintf("at most %d", maxReplicas)}
			}
			c.replicas, c.wantReplicas = n, n
		default:
			return nil, &driver.ParamError{Key: k, Value: v, Reason: "unknown key", Valid: params}
		}
	}
	// Joining an existing cluster of another shape is a configuration
	// error, found without dialling.
	for _, h := range cfg.Hosts {
		if cl := Lookup(hostOf(h)); cl != nil {
			if err := cl.checkShape(c.wantShards, c.wantReplicas); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

type connector struct {
	cfg                      driver.Config
	shards, replicas         int
	wantShards, wantReplicas int // as given in the DSN, -1 when not
}

// hostOf returns the host of a host:port address, or addr itself.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Backend implements driver.Connector.
func (*connector) Backend() driver.Backend {
	return driver.Backend{
		System: "memory",
		Caps: driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapInfo |
			driver.CapTopology | driver.CapClusterName,
	}
}

// Classify implements driver.Classifier with Redis' rules: the simulated
// cluster answers CLUSTERDOWN, TRYAGAIN, READONLY... as Redis does.
func (*connector) Classify(err error) driver.Retry { return rediscmd.Classify(err) }

// Route implements driver.Router.
func (*connector) Route(query string, args []driver.Value) (driver.Route, error) {
	return rediscmd.RouteOf(query, args)
}

// isSeed reports whether addr is one of the configured seeds, or the name
// of one of their hosts.
func (c *connector) isSeed(addr string) bool {
	for _, h := range c.cfg.Hosts {
		if h == addr || hostOf(h) == addr {
			return true
		}
	}
	return false
}

// cluster returns the cluster called name, creating it when name is one of
// the configured seeds; nil when there is none.
func (c *connector) cluster(name string) (*Cluster, error) {
	return joinCluster(name, c.isSeed(name), c.shards, c.replicas, c.wantShards, c.wantReplicas)
}

// Resolve implements driver.Resolver: the bare cluster name stands for the
// address of every live node; a host:port address resolves to itself; an
// unknown name is a *net.DNSError.
func (c *connector) Resolve(ctx context.Context, seed string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(seed); err == nil {
		return []string{seed}, nil
	}
	cl, err := c.cluster(seed)
	if err != nil {
		return nil, err
	}
	if cl == nil {
		return nil, errNoHost(seed)
	}
	addrs := cl.liveAddrs()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("memory: cluster %q has no live node", seed)
	}
	return addrs, nil
}

// locate finds the node addr reaches.
func (c *connector) locate(addr string) (*node, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil { // a bare cluster name: its first live node
		cl, err := c.cluster(addr)
		if err != nil {
			return nil, err
		}
		if cl == nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errNoHost(addr)}
		}
		if n := cl.firstLive(); n != nil {
			return n, nil
		}
		return nil, errRefused(addr)
	}
	reg.Lock()
	n := reg.addrs[addr]
	reg.Unlock()
	if n == nil && c.isSeed(addr) {
		if _, err := c.cluster(host); err != nil {
			return nil, err
		}
		reg.Lock()
		n = reg.addrs[addr]
		reg.Unlock()
	}
	if n == nil {
		if !knownHost(host) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errNoHost(host)}
		}
		return nil, errRefused(addr)
	}
	return n, nil
}

// knownHost reports whether host is that of a cluster or of an address.
func knownHost(host string) bool {
	reg.Lock()
	defer reg.Unlock()
	if reg.clusters[host] != nil || reg.clusters[strings.TrimPrefix(host, "alt-")] != nil {
		return true
	}
	for a := range reg.addrs {
		if hostOf(a) == host {
			return true
		}
	}
	return false
}

// Connect implements driver.Connector. addr is a node's address or
// alternate address, or the bare cluster name for its first live node.
// The cluster is created when addr is one of the configured seeds.
func (c *connector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := c.locate(addr)
	if err != nil {
		return nil, err
	}
	cl := n.cl
	cl.mu.RLock()
	d, unhang, down := n.hang, n.unhang, n.down
	cl.mu.RUnlock()
	if d > 0 { // a hung node is slow to accept too
		if err := wait(ctx, d, unhang, down); err != nil && err != errKilled {
			return nil, err
		}
	}
	cl.mu.RLock()
	alive, down := n.alive, n.down
	cl.mu.RUnlock()
	if !alive {
		return nil, errRefused(addr)
	}
	cl.dials.Add(1)
	cl.open.Add(1)
	n.dials.Add(1)
	n.open.Add(1)
	n.shard.store.clientConnected()
	return &conn{n: n, down: down, readonly: c.cfg.ReplicaReads, replicaReads: c.cfg.ReplicaReads}, nil
}

var errKilled = errors.New("memory: node killed")

// wait sleeps d, or until ctx ends (ctx.Err()), unhang is closed (nil) or
// down is closed (errKilled).
func wait(ctx context.Context, d time.Duration, unhang, down <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-unhang:
		return nil
	case <-down:
		return errKilled
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conn is one connection to one node of a memory cluster.
type conn struct {
	n      *node
	down   <-chan struct{} // the node's down channel when we connected
	closed atomic.Bool
	broken atomic.Bool // the node died under us

	// Session state, used by one goroutine at a time.
	readonly bool   // READONLY: reads may be served by a replica
	asking   bool   // ASKING: the next command may run on an importing slot
	name     []byte // CLIENT SETNAME
	// replicaReads is the read mode the connection was made with, which
	// ResetSession restores.
	replicaReads bool
}

// begin checks the connection before a statement is sent: a connection
// known to be dead gives ErrBadConn (nothing was sent); one whose node died
// since the last call gives a reset error, as the statement was sent.
func (c *conn) begin(ctx context.Context) error {
	if c.closed.Load() {
		return driver.ErrBadConn
	}
	if c.broken.Load() {
		return fmt.Errorf("%w: connection to %s was reset", driver.ErrBadConn, c.addr())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.down:
		return c.reset()
	default:
		return nil
	}
}

func (c *conn) reset() error {
	c.broken.Store(true)
	return errReset(c.addr())
}

func (c *conn) addr() string {
	c.n.cl.mu.RLock()
	defer c.n.cl.mu.RUnlock()
	return c.n.addr
}

// reply delays the reply while the node hangs.
func (c *conn) reply(ctx context.Context) error {
	cl := c.n.cl
	cl.mu.RLock()
	d, unhang := c.n.hang, c.n.unhang
	cl.mu.RUnlock()
	if d <= 0 {
		return nil
	}
	if err := wait(ctx, d, unhang, c.down); err != nil {
		if err == errKilled {
			return c.reset()
		}
		return err
	}
	return nil
}

// run executes one command line on the node. DEBUG SLEEP, which Redis
// offers for tests, waits here, outside every lock, and honours ctx: it is
// the slow statement the cancellation tests need.
func (c *conn) run(ctx context.Context, argv [][]byte) (rediscmd.Reply, error) {
	c.n.commands.Add(1)
	name, _ := rediscmd.Lookup(argv)
	switch name {
	case "READONLY", "READWRITE", "ASKING":
		if len(argv) != 1 {
			return errArity(strings.ToLower(name)), nil
		}
		switch name {
		case "READONLY":
			c.readonly = true
		case "READWRITE":
			c.readonly = false
		case "ASKING":
			c.asking = true
			return rediscmd.Status("OK"), nil
		}
		c.asking = false
		return rediscmd.Status("OK"), nil
	}
	asking := c.asking || driver.IsAsk(ctx)
	c.asking = false
	if len(argv) == 3 && name == "DEBUG" && strings.EqualFold(string(argv[1]), "SLEEP") {
		return c.sleep(ctx, argv[2])
	}
	switch name {
	case "BLPOP", "BRPOP":
		return c.blockingPop(ctx, argv, asking)
	case "CLIENT", "CLIENT SETNAME", "CLIENT GETNAME":
		return c.client(argv), nil
	}
	return c.n.cl.exec(c.n, argv, c.readonly, asking)
}

// client is the connection's part of CLIENT: its name and id.
func (c *conn) client(argv [][]byte) rediscmd.Reply {
	if len(argv) < 2 {
		return errArity("client")
	}
	sub := strings.ToUpper(string(argv[1]))
	switch {
	case sub == "SETNAME" && len(argv) == 3:
		for _, b := range argv[2] {
			if b <= ' ' || b > '~' {
				return serverError("ERR Client names cannot contain spaces, newlines or special characters.")
			}
		}
		c.name = clone(argv[2])
		if len(c.name) == 0 {
			c.name = nil
		}
		return rediscmd.Status("OK")
	case sub == "GETNAME" && len(argv) == 2:
		if c.name == nil {
			return nil
		}
		return clone(c.name)
	case sub == "SETNAME" || sub == "GETNAME":
		return serverError(fmt.Sprintf("ERR wrong number of arguments for 'client|%s' command", strings.ToLower(sub)))
	}
	return serverError(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", cString(argv[1], 128)))
}

// ResetSession implements driver.SessionResetter: the name, the read mode
// and ASKING go back to what the connection was made with.
func (c *conn) ResetSession(context.Context) error {
	if !c.IsValid() {
		return driver.ErrBadConn
	}
	c.name, c.readonly, c.asking = nil, c.replicaReads, false
	return nil
}

// blockingPop is BLPOP and BRPOP for a store without lists: a key that
// exists holds another type (WRONGTYPE); otherwise nothing can be pushed,
// so it waits out its timeout (0: until ctx ends) and replies nil, as
// Redis does for keys that stay empty. It is the conformance suite's slow
// statement on stock servers, so it routes like Redis (MOVED, CROSSSLOT).
func (c *conn) blockingPop(ctx context.Context, argv [][]byte, asking bool) (rediscmd.Reply, error) {
	if len(argv) < 3 {
		return errArity(strings.ToLower(string(argv[0]))), nil
	}
	secs, err := strconv.ParseFloat(string(argv[len(argv)-1]), 64)
	if err != nil || secs < 0 || math.IsInf(secs, 0) || math.IsNaN(secs) {
		return serverError("ERR timeout is not a float or out of range"), nil
	}
	keys := argv[1 : len(argv)-1]
	// EXISTS checks the keys' slots (one node, one slot) as Redis would.
	r, err := c.n.cl.exec(c.n, append([][]byte{[]byte("EXISTS")}, keys...), c.readonly, asking)
	if err != nil {
		return nil, err
	}
	switch r := r.(type) {
	case error:
		return r, nil
	case int64:
		if r > 0 {
			return errWrongType(), nil
		}
	}
	d := time.Duration(secs * float64(time.Second))
	if secs == 0 {
		d = math.MaxInt64
	}
	switch err := wait(ctx, d, nil, c.down); err {
	case nil:
		return nil, nil
	case errKilled:
		return nil, c.reset()
	default:
		return nil, err
	}
}

func (c *conn) sleep(ctx context.Context, arg []byte) (rediscmd.Reply, error) {
	secs, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || secs < 0 {
		return &driver.ServerError{Code: "ERR", Msg: "ERR value is not a valid float"}, nil
	}
	switch err := wait(ctx, time.Duration(secs*float64(time.Second)), nil, c.down); err {
	case nil:
		return rediscmd.Status("OK"), nil
	case errKilled:
		return nil, c.reset()
	default:
		return nil, err
	}
}

// do runs one statement and waits for its reply.
func (c *conn) do(ctx context.Context, query string, args []driver.Value) (rediscmd.Reply, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd) // the store copies what it keeps
	if err := cmd.Parse(query, args); err != nil {
		return nil, err
	}
	r, err := c.run(ctx, cmd.Argv)
	if err != nil && (c.broken.Load() || ctx.Err() != nil) {
		return nil, err
	}
	if werr := c.reply(ctx); werr != nil {
		return nil, werr
	}
	return r, err
}

// Exec implements driver.Conn.
func (c *conn) Exec(ctx context.Context, query string, args []driver.Value) (driver.Result, error) {
	r, err := c.do(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rediscmd.Result(r)
}

// Query implements driver.Conn.
func (c *conn) Query(ctx context.Context, query string, args []driver.Value) (driver.Rows, error) {
	r, err := c.do(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rediscmd.Rows(r)
}

// Batch implements driver.Batcher: the statements are pipelined, so a hung
// node delays the whole batch once.
func (c *conn) Batch(ctx context.Context, stmts []driver.Stmt, out []driver.BatchResult) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd)
	for i, s := range stmts {
		if err := cmd.Parse(s.Query, s.Args); err != nil {
			out[i].Err = err
			continue
		}
		r, err := c.run(ctx, cmd.Argv)
		if err != nil {
			if ctx.Err() != nil || c.broken.Load() {
				return err
			}
			out[i].Err = err
			continue
		}
		out[i].Rows, out[i].Err = rediscmd.Rows(r)
	}
	return c.reply(ctx)
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error {
	r, err := c.do(ctx, "PING", nil)
	if err == nil {
		if se, ok := r.(*driver.ServerError); ok {
			err = se
		}
	}
	return err
}

// Info implements driver.Infoer: cmd is an INFO section ("", "server",
// "keyspace") or a whole INFO command line.
func (c *conn) Info(ctx context.Context, cmd string) (string, error) {
	if f := strings.Fields(cmd); len(f) == 0 || !strings.EqualFold(f[0], "INFO") {
		cmd = "INFO " + cmd
	}
	r, err := c.do(ctx, cmd, nil)
	if err != nil {
		return "", err
	}
	switch r := r.(type) {
	case []byte:
		return string(r), nil
	case *driver.ServerError:
		return "", r
	}
	return "", fmt.Errorf("unexpected INFO reply %T", r)
}

// prober runs one Prober call: f computes the answer when the node is up,
// and the reply waits while the node hangs.
func prober[T any](c *conn, ctx context.Context, counter *atomic.Int64, f func() T) (T, error) {
	var zero T
	if err := c.begin(ctx); err != nil {
		return zero, err
	}
	counter.Add(1)
	v := f()
	if err := c.reply(ctx); err != nil {
		return zero, err
	}
	return v, nil
}

// Probe implements driver.Prober.
func (c *conn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	return prober(c, ctx, &c.n.probes, func() driver.NodeStatus { return c.n.cl.status(c.n) })
}

// Peers implements driver.Prober: every node of the cluster, killed ones
// included, until they are forgotten (as the node sees it: see Lag and
// Reset).
func (c *conn) Peers(ctx context.Context) ([]driver.Peer, error) {
	return prober(c, ctx, &c.n.peerFetches, func() []driver.Peer { return c.n.cl.peersOf(c.n) })
}

// PartitionMap implements driver.Prober (as the node sees it: see Lag and
// Reset).
func (c *conn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	return prober(c, ctx, &c.n.mapFetches, func() driver.PartitionMap { return c.n.cl.mapOf(c.n) })
}

// IsValid implements driver.Validator.
func (c *conn) IsValid() bool { return !c.closed.Load() && !c.broken.Load() }

// Close implements driver.Conn.
func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.n.cl.open.Add(-1)
		c.n.open.Add(-1)
		c.n.shard.store.clientDisconnected()
	}
	return nil
}
