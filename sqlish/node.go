package sqlish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
	"github.com/tendril-db/tendril/topology"
)

// poolConfig is the template of every node's pool.
func (c *Config) poolConfig() puddlepool.Config[driver.Conn] {
	return puddlepool.Config[driver.Conn]{
		Close: func(cn driver.Conn) error { return cn.Close() },
		Valid: func(cn driver.Conn) bool {
			v, ok := cn.(driver.Validator)
			return !ok || v.IsValid()
		},
		Ping: func(ctx context.Context, cn driver.Conn) error {
			if p, ok := cn.(driver.Pinger); ok {
				return p.Ping(ctx)
			}
			return nil
		},
		MaxSize:        int32(c.MaxConnsPerNode),
		MinSize:        int32(c.MinConnsPerNode),
		MaxIdle:        int32(c.MaxIdleConnsPerNode),
		MaxConnecting:  int32(c.MaxConnecting),
		IdleTimeout:    c.IdleTimeout,
		MaxLifetime:    c.MaxConnLifetime,
		LifetimeJitter: c.MaxConnLifetime / 10,
		DialTimeout:    c.Timeout,
		// A connection idle for half the idle timeout may have been cut by
		// the server or a firewall: check it before handing it out.
		PingAfterIdle: c.IdleTimeout / 2,
	}
}

// nodeErr attaches the node to err, unless it already names one.
func nodeErr(n *topology.Node, err error) error {
	var ne *NodeError
	if err == nil || errors.As(err, &ne) {
		return err
	}
	return &NodeError{Node: n.Name(), Addr: n.Addr(), Err: err}
}

// acquire borrows a connection from n's pool.
func (db *DB) acquire(ctx context.Context, n *topology.Node) (*lease, error) {
	res, err := n.Pool().Acquire(ctx)
	if err != nil {
		return nil, nodeErr(n, err)
	}
	return db.newLease(ctx, n, res), nil
}

// acquireExclusive borrows a connection for the caller's use alone: on a
// multiplexed backend it waits until the shared users it was lent to are
// done with it, so that none of their requests can land inside the
// exclusive use (a transaction, a blocking command).
func (db *DB) acquireExclusive(ctx context.Context, n *topology.Node) (*lease, error) {
	l, err := db.acquire(ctx, n)
	if err != nil {
		return nil, err
	}
	if db.multiplexed {
		if err := l.res.WaitLoans(ctx); err != nil {
			l.release(nil)
			return nil, nodeErr(n, err)
		}
	}
	return l, nil
}

// tryAcquire borrows an idle connection if one is at hand, without waiting.
func (db *DB) tryAcquire(ctx context.Context, n *topology.Node) *lease {
	if res := n.Pool().TryAcquire(); res != nil {
		return db.newLease(ctx, n, res)
	}
	return nil
}

func (db *DB) newLease(ctx context.Context, n *topology.Node, res *puddlepool.Resource[driver.Conn]) *lease {
	l := leasePool.Get().(*lease)
	*l = lease{n: n, res: res, db: db}
	if db.tel.meterOn && db.tel.useTime.Enabled(ctx) {
		l.start = monotonic()
	}
	return l
}

// leasePool recycles the leases of statements on multiplexed connections,
// which end with the statement (see runAttempts).
var leasePool = sync.Pool{New: func() any { return new(lease) }}

func (db *DB) recycle(l *lease) {
	*l = lease{}
	leasePool.Put(l)
}

// ping pings the node on a connection of its pool.
func (db *DB) ping(ctx context.Context, n *topology.Node) error {
	l, err := db.acquire(ctx, n)
	if err != nil {
		return err
	}
	if db.multiplexed {
		l.share()
	}
	var perr error
	if p, ok := l.conn().(driver.Pinger); ok {
		perr = p.Ping(ctx)
	}
	l.release(perr)
	return nodeErr(n, perr)
}

// info runs an info command on n.
func (db *DB) info(ctx context.Context, n *topology.Node, cmd string) (string, error) {
	l, err := db.acquire(ctx, n)
	if err != nil {
		return "", err
	}
	if db.multiplexed {
		l.share()
	}
	in, ok := l.conn().(driver.Infoer)
	if !ok {
		l.release(nil)
		return "", nodeErr(n, ErrNotSupported)
	}
	text, err := in.Info(ctx, cmd)
	l.release(err)
	return text, nodeErr(n, err)
}

// lease is a connection borrowed from a node's pool: for the borrower's
// use alone (res), or, on a multiplexed backend, lent for one statement
// alongside other callers (loan).
type lease struct {
	n   *topology.Node
	db  *DB
	res *puddlepool.Resource[driver.Conn]
	// loan is set, and res nil, while the connection is lent (see share).
	loan   puddlepool.Loan[driver.Conn]
	shared bool
	// spread is set when a multiplexed connection serves one shared
	// statement alone (driver.Spreader): it stays checked out until the
	// statement is done, so other callers take another, and then goes
	// back as a lent one does.
	spread bool
	// dirty is set when a statement that changes the session state ran
	// on the connection: it is reset, or closed, before it is reused.
	dirty bool
	// start is set (see monotonic) when db.client.connection.use_time
	// records: the use ends at release (for a multiplexed connection,
	// when the statement that borrowed it is done).
	start int64
}

// epoch is the origin of monotonic.
var epoch = time.Now()

// monotonic returns a monotonic clock reading in nanoseconds, never 0.
func monotonic() int64 { return int64(time.Since(epoch)) | 1 }

// recordUse records the connection's use time.
func (l *lease) recordUse() {
	if l.start != 0 {
		tel := l.db.tel
		d := time.Duration(monotonic() - l.start)
		tel.useTime.Record(context.Background(), d.Seconds(), tel.node(l.n.Addr()).pool)
		l.start = 0
	}
}

func (l *lease) conn() driver.Conn {
	if l.shared {
		return l.loan.Value()
	}
	return l.res.Value()
}

// share lends a multiplexed connection: it goes back to the pool at once
// and other callers use it too, while this one sends its statement. A
// connection that breaks reports itself invalid at its next checkout.
func (l *lease) share() {
	l.loan = l.res.Lend()
	l.res = nil
	l.shared = true
}

// release ends the lease. A lent connection's loan is returned. A
// connection used alone goes back to its pool only when it can be trusted
// to carry nothing of this use: err leaves it in sync (nil, a server error,
// no rows), the driver reset its session (SessionResetter; a connection
// that ran a session-changing statement and cannot be reset is closed), and
// the driver's Validator says it is usable. Otherwise it is closed.
func (l *lease) release(err error) {
	l.recordUse()
	if l.shared {
		if l.loan != (puddlepool.Loan[driver.Conn]{}) {
			l.loan.Return()
			l.loan = puddlepool.Loan[driver.Conn]{}
		}
		return
	}
	if l.spread {
		// As for a loan: a statement on the DB changes no session, and a
		// connection that broke is found invalid at its next checkout.
		l.res.Release()
		l.res = nil
		return
	}
	trusted := err == nil || keepsConn(err)
	reuse := trusted && !errors.Is(err, driver.ErrBadConn)
	cn := l.res.Value()
	if reuse {
		if r, ok := cn.(driver.SessionResetter); ok {
			// No deadline of ours: a reset with nothing to do must cost
			// nothing, and one that does I/O is bounded by the driver
			// (see driver.SessionResetter).
			if rerr := r.ResetSession(context.Background()); rerr != nil {
				reuse = false
				l.db.log.Debug("tendril: connection closed: its session could not be reset", "addr", l.n.Addr(), "err", rerr)
			}
		} else if l.dirty {
			reuse = false // the driver cannot undo what the statement changed
		}
	}
	if reuse {
		if v, ok := cn.(driver.Validator); ok {
			reuse = v.IsValid()
		}
	}
	if reuse {
		l.res.Release()
		l.res = nil
		return
	}
	if !trusted && !errors.Is(err, driver.ErrBadConn) {
		// A failure mid-request (a timeout, a cut connection) may leave
		// replies unread: the connection is out of sync and is closed.
		errType, _ := classify(err)
		l.db.log.Warn("tendril: connection closed, possibly out of sync after an error", "addr", l.n.Addr(), "error.type", errType)
	}
	l.res.Destroy()
	l.res = nil
}

// crowded reports that the driver would rather cn served one statement
// alone now (see driver.Spreader).
func crowded(cn driver.Conn) bool {
	s, ok := cn.(driver.Spreader)
	return ok && s.Crowded()
}

func keepsConn(err error) bool {
	var se *driver.ServerError
	return errors.As(err, &se) || errors.Is(err, ErrNoRows) || errors.Is(err, ErrNotSupported)
}

// Node describes one node of the cluster.
type Node struct {
	ID          string // the node's id, or its address until it has answered
	Addr        string
	Role        string // "primary", "replica" or "unknown"
	Healthy     bool   // answered its last probe and its breaker is closed
	Partitions  int    // partitions (slots) it is primary for
	Failures    int    // consecutive failed probes
	BreakerOpen bool   // too many operations failed in a row
}

func describe(s *topology.Snapshot, n *topology.Node) Node {
	return Node{
		ID: n.Name(), Addr: n.Addr(), Role: n.Role().String(), Healthy: n.Healthy(),
		Partitions: s.Owned(n), Failures: n.Failures(), BreakerOpen: n.BreakerOpen(),
	}
}

func (n Node) String() string {
	return fmt.Sprintf("%s %s %s healthy=%v", n.ID, n.Addr, n.Role, n.Healthy)
}
