// Package memory is tendril's in-process backend, registered as "memory".
//
// It speaks a Redis-compatible subset of commands (strings with expiry,
// hashes, KEYS, INFO, ...) with Redis' replies and error messages, so that
// an application can move between "memory://name" and "redis://host:port"
// without code changes. It is the embedded default of the CLI's demo and the
// reference backend of the conformance suite.
//
// The DSN's host is the server's name: every DB opened with the same name in
// one process talks to the same server, which is created on first use.
// Connections are real pooled objects (counted, closable), so pool limits
// and leaks show as they would on a network backend.
package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// params lists the driver-specific DSN keys; none yet.
var params = []string{}

// OpenConnector implements driver.Driver.
func (Driver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	for _, k := range slices.Sorted(maps.Keys(cfg.Params)) {
		return nil, &driver.ParamError{Key: k, Reason: "unknown key", Valid: params}
	}
	return &connector{cfg: cfg}, nil
}

type connector struct {
	cfg driver.Config
}

// Backend implements driver.Connector.
func (*connector) Backend() driver.Backend {
	return driver.Backend{
		System: "memory",
		Caps: driver.CapPing | driver.CapValidate | driver.CapBatch | driver.CapInfo |
			driver.CapTopology | driver.CapClusterName,
	}
}

// Route implements driver.Router.
func (*connector) Route(query string, args []driver.Value) (driver.Route, error) {
	argv, err := rediscmd.Append(nil, query, args)
	if err != nil {
		return driver.Route{}, err
	}
	return rediscmd.Route(argv), nil
}

// Connect implements driver.Connector. The server named addr is created on
// first use.
func (c *connector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := server(addr)
	s.dials.Add(1)
	s.open.Add(1)
	s.store.clientConnected()
	return &conn{srv: s}, nil
}

// Server is an in-process memory server.
type Server struct {
	name  string
	id    string
	store *store
	open  atomic.Int64 // connections open now
	dials atomic.Int64 // connections ever opened
}

var (
	mu      sync.Mutex
	servers = map[string]*Server{}
)

// server returns the server called name, creating it if needed.
func server(name string) *Server {
	mu.Lock()
	defer mu.Unlock()
	s := servers[name]
	if s == nil {
		s = &Server{name: name, id: fmt.Sprintf("memory-%s-%d", name, len(servers)+1), store: newStore(time.Now)}
		servers[name] = s
	}
	return s
}

// Lookup returns the server called name, or nil when no DB has used it.
func Lookup(name string) *Server {
	mu.Lock()
	defer mu.Unlock()
	return servers[name]
}

// Name returns the server's name, the DSN host that reaches it.
func (s *Server) Name() string { return s.name }

// OpenConns returns the number of connections to the server open now.
func (s *Server) OpenConns() int64 { return s.open.Load() }

// Dials returns the number of connections ever opened to the server.
func (s *Server) Dials() int64 { return s.dials.Load() }

// conn is one connection to a memory server.
type conn struct {
	srv    *Server
	closed atomic.Bool
}

// run executes one command line. DEBUG SLEEP, which Redis offers for
// tests, waits here, outside the store's lock, and honours ctx: it is the
// slow statement the cancellation tests need.
func (c *conn) run(ctx context.Context, query string, args []driver.Value) (rediscmd.Reply, error) {
	if c.closed.Load() {
		return nil, driver.ErrBadConn
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	argv, err := rediscmd.Append(nil, query, args)
	if err != nil {
		return nil, err
	}
	if len(argv) == 3 && strings.EqualFold(string(argv[0]), "DEBUG") && strings.EqualFold(string(argv[1]), "SLEEP") {
		return c.sleep(ctx, argv[2])
	}
	return c.srv.store.exec(argv), nil
}

func (c *conn) sleep(ctx context.Context, arg []byte) (rediscmd.Reply, error) {
	secs, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || secs < 0 {
		return &driver.ServerError{Code: "ERR", Msg: "ERR value is not a valid float"}, nil
	}
	t := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return rediscmd.Status("OK"), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Exec implements driver.Conn.
func (c *conn) Exec(ctx context.Context, query string, args []driver.Value) (driver.Result, error) {
	r, err := c.run(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rediscmd.Result(r)
}

// Query implements driver.Conn.
func (c *conn) Query(ctx context.Context, query string, args []driver.Value) (driver.Rows, error) {
	r, err := c.run(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rediscmd.Rows(r)
}

// Batch implements driver.Batcher.
func (c *conn) Batch(ctx context.Context, stmts []driver.Stmt) ([]driver.BatchResult, error) {
	out := make([]driver.BatchResult, len(stmts))
	for i, s := range stmts {
		r, err := c.run(ctx, s.Query, s.Args)
		if err != nil {
			if ctx.Err() != nil || c.closed.Load() {
				return nil, err
			}
			out[i].Err = err
			continue
		}
		out[i].Rows, out[i].Err = rediscmd.Rows(r)
	}
	return out, nil
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error {
	r, err := c.run(ctx, "PING", nil)
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
	r, err := c.run(ctx, cmd, nil)
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

// Probe implements driver.Prober: a memory server is a one-node cluster
// named after the server.
func (c *conn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	if err := ctx.Err(); err != nil {
		return driver.NodeStatus{}, err
	}
	return driver.NodeStatus{ID: c.srv.id, ClusterName: c.srv.name, Role: driver.RolePrimary, Healthy: true}, nil
}

// Peers implements driver.Prober.
func (c *conn) Peers(ctx context.Context) ([]driver.Peer, error) {
	return []driver.Peer{{ID: c.srv.id, Addr: c.srv.name, Role: driver.RolePrimary}}, ctx.Err()
}

// PartitionMap implements driver.Prober.
func (c *conn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	return driver.PartitionMap{
		Partitions: rediscmd.Slots,
		Shards:     []driver.Shard{{Ranges: [][2]int{{0, rediscmd.Slots - 1}}, Primary: c.srv.id}},
	}, ctx.Err()
}

// IsValid implements driver.Validator.
func (c *conn) IsValid() bool { return !c.closed.Load() }

// Close implements driver.Conn.
func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.srv.open.Add(-1)
		c.srv.store.clientDisconnected()
	}
	return nil
}
