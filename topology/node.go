package topology

import (
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
)

// Node is one server of the cluster with its connection pool. A Node lives
// as long as the server is in the node table; snapshots share Nodes, so
// its health is read through atomics.
type Node struct {
	id   atomic.Pointer[string] // nil until the first successful probe
	addr string                 // what the pool dials (the alternate address when configured)
	pool *puddlepool.Pool[driver.Conn]

	role     atomic.Int32  // driver.Role
	epoch    atomic.Uint64 // the epoch the last probe reported
	healthy  atomic.Bool   // the last probe succeeded
	failures atomic.Int32  // consecutive failed probes

	// demotions counts Demote calls; vouched is the count a probe that
	// began after them had seen. While demotions > vouched, a write found
	// the node demoted and no probe has told its role since: it takes no
	// writes.
	demotions, vouched atomic.Uint64

	// breaker counts consecutive failed operations; at breakerLimit the
	// node stops being picked until a probe succeeds again.
	breaker atomic.Int32

	// owned by the tend loop
	probe        driver.Conn
	reported     driver.Role // the role the last probe reported
	peersGen     uint64
	partitionGen uint64
	cluster      string // the cluster name the node reports: generations are only comparable within one
	statusKnown  bool
	removedAt    time.Time
	removeTimer  *time.Timer
}

// breakerLimit is how many operations in a row may fail with a connection
// error before a node is considered down without waiting for the tender.
const breakerLimit = 5

// ID returns the node's id, or "" before it has answered a probe.
func (n *Node) ID() string {
	if p := n.id.Load(); p != nil {
		return *p
	}
	return ""
}

func (n *Node) setID(id string) {
	if id != "" && n.ID() != id {
		// A copy made here, not &id: taking the parameter's address would
		// move it to the heap on every call, i.e. every probe.
		p := new(string)
		*p = id
		n.id.Store(p)
	}
}

// Addr returns the address connections are made to.
func (n *Node) Addr() string { return n.addr }

// Name returns the id, or the address when the id is not known.
func (n *Node) Name() string {
	if id := n.ID(); id != "" {
		return id
	}
	return n.addr
}

// Role returns the node's role as its last probe reported it (or, when
// the probe reports none, as the last partition map said).
func (n *Node) Role() driver.Role { return driver.Role(n.role.Load()) }

// Epoch returns the epoch the node's last probe reported (a PostgreSQL
// timeline; 0 when the backend has none).
func (n *Node) Epoch() uint64 { return n.epoch.Load() }

// Demoted reports whether a write found the node demoted (see
// Tender.Demote) and no probe has told its role since: until one does, it
// takes no writes.
func (n *Node) Demoted() bool { return n.demotions.Load() > n.vouched.Load() }

// demote marks the node demoted and reports whether it was not already.
func (n *Node) demote() bool {
	for {
		d := n.demotions.Load()
		if d > n.vouched.Load() {
			return false
		}
		if n.demotions.CompareAndSwap(d, d+1) {
			return true
		}
	}
}

// vouch lifts the demotions made before a probe that began when
// demotions was d and then succeeded: that probe's role is newer than
// they are. Called by the tend loop.
func (n *Node) vouch(d uint64) {
	if d > n.vouched.Load() {
		n.vouched.Store(d)
	}
}

// Healthy reports whether the node answered its last probe and has not
// failed breakerLimit operations in a row since.
func (n *Node) Healthy() bool { return n.healthy.Load() && n.breaker.Load() < breakerLimit }

// Pool returns the node's connection pool.
func (n *Node) Pool() *puddlepool.Pool[driver.Conn] { return n.pool }

// Failures returns the number of consecutive failed probes.
func (n *Node) Failures() int { return int(n.failures.Load()) }

// Report records the outcome of an operation on the node for its circuit
// breaker: connection failures add up, any success resets the count.
func (n *Node) Report(connFailure bool) {
	if connFailure {
		n.breaker.Add(1)
	} else if n.breaker.Load() != 0 {
		n.breaker.Store(0)
	}
}

// BreakerOpen reports whether the circuit breaker stopped sending to the
// node.
func (n *Node) BreakerOpen() bool { return n.breaker.Load() >= breakerLimit }

// genKey names a view by generation within a cluster.
type genKey struct {
	gen     uint64
	cluster string
}

func (n *Node) peersKey() genKey { return genKey{n.peersGen, n.cluster} }
func (n *Node) mapKey() genKey   { return genKey{n.partitionGen, n.cluster} }

// setStatus records what a probe said and reports whether the node's view
// may have changed. Called by the tend loop.
func (n *Node) setStatus(st driver.NodeStatus) bool {
	changed := !n.statusKnown || st.PeersGen != n.peersGen || st.PartitionGen != n.partitionGen || st.ClusterName != n.cluster
	n.peersGen, n.partitionGen, n.cluster, n.statusKnown = st.PeersGen, st.PartitionGen, st.ClusterName, true
	n.setID(st.ID)
	return changed
}
