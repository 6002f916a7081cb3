package sqlish

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
)

// Node states: unknown until the first dial, then up or down.
const (
	stateUnknown int32 = iota
	stateUp
	stateDown
)

// node is one server and its pool.
type node struct {
	addr  string
	id    atomic.Pointer[string]
	role  atomic.Int32 // driver.Role
	state atomic.Int32
	pool  *puddlepool.Pool[driver.Conn]
}

func (db *DB) newNode(addr string) (*node, error) {
	n := &node{addr: addr}
	c := &db.cfg
	pool, err := puddlepool.New(puddlepool.Config[driver.Conn]{
		Name: addr,
		Dial: func(ctx context.Context) (driver.Conn, error) {
			cn, err := db.connector.Connect(ctx, addr)
			if err != nil {
				n.state.Store(stateDown)
				return nil, err
			}
			if err := n.learn(ctx, cn, c.ClusterName); err != nil {
				cn.Close()
				n.state.Store(stateDown)
				return nil, err
			}
			n.state.Store(stateUp)
			return cn, nil
		},
		Close: func(cn driver.Conn) error { return cn.Close() },
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
		// A connection idle for a whole tend interval may have been cut
		// by the server or a firewall: check it before handing it out.
		PingAfterIdle: c.IdleTimeout / 2,
	})
	if err != nil {
		return nil, fmt.Errorf("sqlish: node %s: %w", addr, err)
	}
	n.pool = pool
	return n, nil
}

// learn records what a new connection's node says of itself and refuses a
// node of another cluster than the configured one.
func (n *node) learn(ctx context.Context, cn driver.Conn, cluster string) error {
	p, ok := cn.(driver.Prober)
	if !ok || (n.id.Load() != nil && cluster == "") {
		return nil
	}
	st, err := p.Probe(ctx)
	if err != nil {
		return err
	}
	if cluster != "" && st.ClusterName != cluster {
		return fmt.Errorf("%w: node reports cluster %q, want %q", ErrClusterNameMismatch, st.ClusterName, cluster)
	}
	if st.ID != "" {
		n.id.Store(&st.ID)
	}
	n.role.Store(int32(st.Role))
	return nil
}

func (n *node) describe() Node {
	d := Node{ID: n.addr, Addr: n.addr, Role: driver.Role(n.role.Load()).String(), Healthy: n.state.Load() == stateUp}
	if id := n.id.Load(); id != nil {
		d.ID = *id
	}
	return d
}

// wrap attaches the node to err, unless it already names one.
func (n *node) wrap(err error) error {
	var ne *NodeError
	if err == nil || errors.As(err, &ne) {
		return err
	}
	d := n.describe()
	return &NodeError{Node: d.ID, Addr: n.addr, Err: err}
}

// acquire borrows a connection, wrapping failures with the node.
func (n *node) acquire(ctx context.Context) (*lease, error) {
	res, err := n.pool.Acquire(ctx)
	if err != nil {
		return nil, n.wrap(err)
	}
	return &lease{n: n, res: res}, nil
}

// ping borrows a connection and pings the node.
func (n *node) ping(ctx context.Context) error {
	l, err := n.acquire(ctx)
	if err != nil {
		return err
	}
	var perr error
	if p, ok := l.conn().(driver.Pinger); ok {
		perr = p.Ping(ctx)
	}
	l.release(perr)
	return n.wrap(perr)
}

// info runs an info command on the node.
func (n *node) info(ctx context.Context, cmd string) (string, error) {
	l, err := n.acquire(ctx)
	if err != nil {
		return "", err
	}
	in, ok := l.conn().(driver.Infoer)
	if !ok {
		l.release(nil)
		return "", n.wrap(ErrNotSupported)
	}
	text, err := in.Info(ctx, cmd)
	l.release(err)
	return text, n.wrap(err)
}

// lease is a connection borrowed from a node's pool.
type lease struct {
	n   *node
	res *puddlepool.Resource[driver.Conn]
}

func (l *lease) conn() driver.Conn { return l.res.Value() }

// release returns the connection to its pool, or destroys it when err
// says it may be unusable. A driver's Validator has the last word; without
// one, only a server error or no rows leaves a connection trusted (a
// network error or a timeout mid-request may leave it out of sync).
func (l *lease) release(err error) {
	reuse := err == nil || keepsConn(err)
	if v, ok := l.conn().(driver.Validator); ok {
		reuse = v.IsValid()
	}
	if reuse && !errors.Is(err, driver.ErrBadConn) {
		l.res.Release()
		return
	}
	l.res.Destroy()
}

func keepsConn(err error) bool {
	var se *driver.ServerError
	return errors.As(err, &se) || errors.Is(err, ErrNoRows) || errors.Is(err, ErrNotSupported)
}
