package conformance_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/internal/redistest"
)

// A broken driver: the memory driver with one seeded defect.
type defect string

const (
	none           defect = "none"             // no defect: every check passes
	leakConns      defect = "leak-conns"       // Conn.Close does nothing
	ignoreCancel   defect = "ignore-cancel"    // the slow statement ignores its context
	batchReversed  defect = "batch-reversed"   // batch results come back in reverse order
	undeclaredCap  defect = "undeclared-cap"   // declares CapTx without implementing Beginner
	nilAsEmptyRow  defect = "nil-as-empty-row" // a nil reply comes back as one empty row
	hiddenConn     defect = "hidden-conn"      // each statement opens a hidden extra connection
	wrongCapsInCfg defect = "wrong-caps"       // (a Config error) Config.Caps differs from Backend().Caps
	skipReset      defect = "skip-reset"       // ResetSession does nothing
	allIdempotent  defect = "all-idempotent"   // every statement is routed as idempotent
	keyless        defect = "keyless"          // statements are routed without their key's partition
)

var defects = []defect{none, leakConns, ignoreCancel, batchReversed, undeclaredCap, nilAsEmptyRow, hiddenConn, wrongCapsInCfg,
	skipReset, allIdempotent, keyless}

func init() {
	for _, d := range defects {
		driver.Register("broken-"+string(d), brokenDriver{d})
	}
}

var memCaps = driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapInfo |
	driver.CapTopology | driver.CapClusterName

type brokenDriver struct{ d defect }

func (b brokenDriver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	inner, err := memory.Driver{}.OpenConnector(cfg)
	if err != nil {
		return nil, err
	}
	return &brokenConnector{inner: inner, d: b.d}, nil
}

type brokenConnector struct {
	inner driver.Connector
	d     defect
}

func (c *brokenConnector) Backend() driver.Backend {
	b := c.inner.Backend()
	if c.d == undeclaredCap {
		b.Caps |= driver.CapTx
	}
	return b
}

func (c *brokenConnector) Route(q string, args []driver.Value) (driver.Route, error) {
	r, err := c.inner.Route(q, args)
	switch c.d {
	case allIdempotent:
		r.Idempotent = true
	case keyless:
		r.Partition = driver.AnyPartition
	}
	return r, err
}

func (c *brokenConnector) Resolve(ctx context.Context, seed string) ([]string, error) {
	return c.inner.(driver.Resolver).Resolve(ctx, seed)
}

func (c *brokenConnector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	cn, err := c.inner.Connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &brokenConn{inner: cn, c: c, addr: addr}, nil
}

type brokenConn struct {
	inner driver.Conn
	c     *brokenConnector
	addr  string
}

func isSlow(q string) bool { return strings.HasPrefix(strings.ToUpper(q), "BLPOP") }

// statement runs f as the defect has it.
func (b *brokenConn) statement(ctx context.Context, q string, f func(context.Context) error) error {
	switch b.c.d {
	case ignoreCancel:
		if isSlow(q) {
			ctx = context.Background()
		}
	case hiddenConn:
		extra, err := b.c.inner.Connect(ctx, b.addr)
		if err == nil {
			defer extra.Close()
		}
	}
	return f(ctx)
}

func (b *brokenConn) Exec(ctx context.Context, q string, args []driver.Value) (driver.Result, error) {
	var r driver.Result
	err := b.statement(ctx, q, func(ctx context.Context) (err error) {
		r, err = b.inner.Exec(ctx, q, args)
		return err
	})
	return r, err
}

func (b *brokenConn) Query(ctx context.Context, q string, args []driver.Value) (driver.Rows, error) {
	var r driver.Rows
	err := b.statement(ctx, q, func(ctx context.Context) (err error) {
		r, err = b.inner.Query(ctx, q, args)
		return err
	})
	if err == nil && b.c.d == nilAsEmptyRow {
		r = &emptyRow{Rows: r}
	}
	return r, err
}

func (b *brokenConn) Close() error {
	if b.c.d == leakConns {
		return nil
	}
	return b.inner.Close()
}

func (b *brokenConn) Batch(ctx context.Context, stmts []driver.Stmt, res []driver.BatchResult) error {
	err := b.inner.(driver.Batcher).Batch(ctx, stmts, res)
	if err == nil && b.c.d == batchReversed {
		for i, j := 0, len(res)-1; i < j; i, j = i+1, j-1 {
			res[i], res[j] = res[j], res[i]
		}
	}
	return err
}

func (b *brokenConn) ResetSession(ctx context.Context) error {
	if b.c.d == skipReset {
		return nil
	}
	return b.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (b *brokenConn) Ping(ctx context.Context) error { return b.inner.(driver.Pinger).Ping(ctx) }
func (b *brokenConn) IsValid() bool                  { return b.inner.(driver.Validator).IsValid() }
func (b *brokenConn) Info(ctx context.Context, cmd string) (string, error) {
	return b.inner.(driver.Infoer).Info(ctx, cmd)
}
func (b *brokenConn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	return b.inner.(driver.Prober).Probe(ctx)
}
func (b *brokenConn) Peers(ctx context.Context) ([]driver.Peer, error) {
	return b.inner.(driver.Prober).Peers(ctx)
}
func (b *brokenConn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	return b.inner.(driver.Prober).PartitionMap(ctx)
}

// emptyRow turns "no row" into one row holding an empty value, as a driver
// mapping a nil reply to "" would.
type emptyRow struct {
	driver.Rows
	n int
}

func (r *emptyRow) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	r.n++
	if err == io.EOF && r.n == 1 {
		for i := range dest {
			dest[i] = []byte{}
		}
		return nil
	}
	return err
}

var clusterSeq atomic.Int64

// brokenConfig is a suite configuration for the broken driver with defect d
// on a fresh memory cluster per check.
func brokenConfig(d defect) conformance.Config {
	var (
		mu      sync.Mutex
		current string
	)
	cluster := func() *memory.Cluster {
		mu.Lock()
		defer mu.Unlock()
		return memory.Lookup(current)
	}
	caps := memCaps
	switch d {
	case undeclaredCap:
		caps |= driver.CapTx // what the driver declares
	case wrongCapsInCfg:
		caps &^= driver.CapBatch
	}
	return conformance.Config{
		Driver: "broken-" + string(d),
		NewDSN: func() string {
			name := fmt.Sprintf("broken%d", clusterSeq.Add(1))
			mu.Lock()
			current = name
			mu.Unlock()
			return "memory://" + name + ":7001?nodes=2&replicas=1"
		},
		UnreachableDSN: "memory://broken-unreachable-a:7099,broken-unreachable-b:7099",
		Caps:           caps,
		Dialect:        conformance.RedisDialect(),
		Faults: &conformance.Faults{
			Nodes: func() []string {
				var out []string
				for _, n := range cluster().Nodes() {
					out = append(out, n.Addr)
				}
				return out
			},
			Kill:      func(a string) error { return cluster().Kill(a) },
			Restart:   func(a string) error { return cluster().Restart(a) },
			Hang:      func(a string, d time.Duration) error { return cluster().Hang(a, d) },
			Unhang:    func(a string) error { return cluster().Unhang(a) },
			PrimaryOf: func(k string) string { return cluster().SlotOwner(redistest.Slot(k)) },
		},
		ServerConns: func() int {
			if cl := cluster(); cl != nil {
				return int(cl.OpenConns())
			}
			return 0
		},
	}
}
