package memory

import (
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
)

// A Cluster is a simulated Redis Cluster living in the process: shards
// (a primary and its replicas) over Redis' 16384 hash slots. Every node of
// a shard shares the shard's store, so replication is instant and killing
// a node loses nothing.
//
// Addresses: the cluster "name" has nodes "name:7001", "name:7002", ...:
// the first `nodes` are the primaries of shards 0, 1, ..., the next ones
// their replicas (as redis-cli --cluster create lays them out). Node k has
// the id "memory-name-nk" and the alternate address "alt-name:700k", which
// reaches the same node. The bare name "name" is a seed alias for the
// first live node (see Connector.Resolve for the list of them all).
//
// The fault methods (Kill, Restart, Hang, Failover, MigrateSlot, ...) take
// a node's address, alternate address or id, and act at once; each method's
// comment says what it does to calls in flight and to new ones. In short:
//
//   - a call on a connection whose node died since its previous call fails
//     with a connection-reset *net.OpError (ECONNRESET; not ErrBadConn: it
//     was sent), and every later call with driver.ErrBadConn; Connect to a
//     dead or unknown address fails with ECONNREFUSED, to an unknown host
//     with a *net.DNSError;
//   - a hung node runs commands at once but delays their replies, and
//     Connect, until the caller's ctx ends (or Unhang, or Kill);
//   - Probe's PeersGen and PartitionGen move exactly when Peers' and
//     PartitionMap's answers change: Failover (both), ChangeAddr (peers),
//     Forget (both), FinishMigration and MigrateSlot (partitions). Kill,
//     Restart, Hang, Rename and BeginMigration/MoveKeys change neither;
//   - every node answers with the cluster's view, except a node that lags
//     (Lag: it keeps the view it had, with its generations, until Unlag)
//     and a node that was reset (Reset: it lists only itself and owns no
//     slots, with generations of its own). Equal generations on two nodes
//     always mean equal answers, as with Redis, where they are a hash of
//     CLUSTER SHARDS.
type Cluster struct {
	name              string // the name it was created and is looked up by
	nShards, replicas int

	open  atomic.Int64 // connections open now
	dials atomic.Int64 // connections ever opened

	// mu guards the configuration below. Commands hold it for reading while
	// they route and run on a store (which is quick); configuration changes
	// hold it for writing. It is never held while sleeping or waiting.
	mu       sync.RWMutex
	current  string // the cluster name nodes report
	epoch    uint64 // config epoch: bumped on failover and slot moves
	peersGen uint64 // bumped whenever Peers' answer changes
	partGen  uint64 // bumped whenever PartitionMap's answer changes
	shards   []*shard
	nodes    []*node // in port order; forgotten nodes are removed
	// detached holds reset nodes that were forgotten: no longer members,
	// still running and reachable (as redis-cli --cluster del-node leaves
	// them), until Close.
	detached  []*node
	owner     [rediscmd.Slots]int32
	migrating map[int]*migration
	closed    bool
}

type shard struct {
	idx      int
	store    *store
	primary  *node   // guarded by Cluster.mu
	replicas []*node // guarded by Cluster.mu
}

type migration struct{ from, to *shard }

type node struct {
	cl    *Cluster
	id    string
	seq   int
	shard *shard // fixed: a failover swaps roles within the shard

	// guarded by cl.mu
	addr, alt string
	alive     bool
	forgotten bool
	down      chan struct{} // closed when the node dies (Kill, Forget, Close)
	hang      time.Duration
	unhang    chan struct{} // closed by Unhang (or a new Hang)
	// view, when set, is what the node answers instead of the cluster's
	// view: a lagging node's old view or a reset node's view of itself.
	view *nodeView
	// reset: CLUSTER RESET SOFT ran on the node; it owns no slots and
	// keeps keyless commands' data in own instead of its shard's store.
	reset bool
	own   *store

	open, dials, probes, peerFetches, mapFetches, commands atomic.Int64
}

// nodeView is one node's own answer to Probe's generations, Peers and
// PartitionMap.
type nodeView struct {
	peersGen, partGen uint64
	peers             []driver.Peer
	pm                driver.PartitionMap
}

// resetGens numbers the generations of reset nodes' views: far above the
// cluster's counters, so they never meet.
var resetGens atomic.Uint64

func init() { resetGens.Store(1 << 40) }

// basePort is the port before the first node's.
const basePort = 7000

// limits of the DSN parameters, so that ports stay valid.
const (
	maxShards   = 1000
	maxReplicas = 15
)

var reg = struct {
	sync.Mutex
	clusters map[string]*Cluster // by creation name
	addrs    map[string]*node    // by address and alternate address
}{clusters: map[string]*Cluster{}, addrs: map[string]*node{}}

// Lookup returns the cluster created under name, or nil when none was.
// A renamed cluster is still found under its original name.
func Lookup(name string) *Cluster {
	reg.Lock()
	defer reg.Unlock()
	return reg.clusters[name]
}

// joinCluster returns the cluster called name, creating it with the given
// shape when create is set. want* are the explicitly requested nodes and
// replicas (-1 when not given); an existing cluster of another shape is a
// *driver.ParamError.
func joinCluster(name string, create bool, shards, replicas, wantShards, wantReplicas int) (*Cluster, error) {
	reg.Lock()
	defer reg.Unlock()
	cl := reg.clusters[name]
	if cl == nil {
		if !create {
			return nil, nil
		}
		cl = newCluster(name, shards, replicas)
		reg.clusters[name] = cl
		for _, n := range cl.nodes {
			reg.addrs[n.addr] = n
			reg.addrs[n.alt] = n
		}
		return cl, nil
	}
	return cl, cl.checkShape(wantShards, wantReplicas)
}

func (cl *Cluster) checkShape(wantShards, wantReplicas int) error {
	if wantShards >= 0 && wantShards != cl.nShards {
		return &driver.ParamError{Key: "nodes", Value: fmt.Sprint(wantShards),
			Reason: fmt.Sprintf("memory cluster %q already exists with nodes=%d", cl.name, cl.nShards)}
	}
	if wantReplicas >= 0 && wantReplicas != cl.replicas {
		return &driver.ParamError{Key: "replicas", Value: fmt.Sprint(wantReplicas),
			Reason: fmt.Sprintf("memory cluster %q already exists with replicas=%d", cl.name, cl.replicas)}
	}
	return nil
}

func newCluster(name string, shards, replicas int) *Cluster {
	cl := &Cluster{
		name: name, nShards: shards, replicas: replicas,
		current: name, epoch: 1, peersGen: 1, partGen: 1,
		migrating: map[int]*migration{},
	}
	for i := range shards {
		cl.shards = append(cl.shards, &shard{idx: i, store: newStore(time.Now)})
	}
	for k := 1; k <= shards*(1+replicas); k++ {
		addr := fmt.Sprintf("%s:%d", name, basePort+k)
		n := &node{
			cl: cl, id: fmt.Sprintf("memory-%s-n%d", name, k), seq: k,
			addr: addr, alt: "alt-" + addr, alive: true, down: make(chan struct{}),
		}
		if k <= shards {
			n.shard = cl.shards[k-1]
			n.shard.primary = n
		} else {
			n.shard = cl.shards[(k-1-shards)%shards]
			n.shard.replicas = append(n.shard.replicas, n)
		}
		cl.nodes = append(cl.nodes, n)
	}
	for i, r := range splitSlots(shards) {
		for s := r[0]; s <= r[1]; s++ {
			cl.owner[s] = int32(i)
		}
	}
	return cl
}

// splitSlots splits the hash slots over n shards as redis-cli --cluster
// create does.
func splitSlots(n int) [][2]int {
	per := float64(rediscmd.Slots) / float64(n)
	out := make([][2]int, 0, n)
	first, cursor := 0, 0.0
	for i := range n {
		last := int(math.Round(cursor + per - 1))
		if last > rediscmd.Slots-1 || i == n-1 {
			last = rediscmd.Slots - 1
		}
		if last < first {
			last = first
		}
		out = append(out, [2]int{first, last})
		first = last + 1
		cursor += per
	}
	return out
}

// --- network-like errors ------------------------------------------------------

type netAddr string

func (a netAddr) Network() string { return "tcp" }
func (a netAddr) String() string  { return string(a) }

func errRefused(addr string) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: netAddr(addr), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

func errReset(addr string) error {
	return &net.OpError{Op: "read", Net: "tcp", Addr: netAddr(addr), Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

func errNoHost(host string) *net.DNSError {
	return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// --- lookups -------------------------------------------------------------------

// find returns the node with the given address, alternate address or id.
// cl.mu must be held.
func (cl *Cluster) find(addr string) (*node, error) {
	for _, list := range [][]*node{cl.nodes, cl.detached} {
		for _, n := range list {
			if n.addr == addr || n.alt == addr || n.id == addr {
				return n, nil
			}
		}
	}
	return nil, fmt.Errorf("memory: cluster %q has no node %q", cl.name, addr)
}

// firstLive returns the first live node in port order, or nil.
func (cl *Cluster) firstLive() *node {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	for _, n := range cl.nodes {
		if n.alive {
			return n
		}
	}
	return nil
}

// liveAddrs returns the addresses of the live nodes in port order.
func (cl *Cluster) liveAddrs() []string {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	var out []string
	for _, n := range cl.nodes {
		if n.alive {
			out = append(out, n.addr)
		}
	}
	return out
}

func (n *node) role() driver.Role {
	if n.shard.primary == n {
		return driver.RolePrimary
	}
	return driver.RoleReplica
}

// --- what nodes answer -------------------------------------------------------

func (cl *Cluster) status(n *node) driver.NodeStatus {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	st := driver.NodeStatus{
		ID: n.id, ClusterName: cl.current, Role: n.role(),
		PeersGen: cl.peersGen, PartitionGen: cl.partGen, Healthy: true,
	}
	if v := n.view; v != nil {
		st.PeersGen, st.PartitionGen = v.peersGen, v.partGen
	}
	if n.reset {
		st.Role = driver.RolePrimary
	}
	return st
}

// peersOf is what n answers to Peers.
func (cl *Cluster) peersOf(n *node) []driver.Peer {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if n.view != nil {
		return slices.Clone(n.view.peers)
	}
	return cl.peers()
}

// mapOf is what n answers to PartitionMap.
func (cl *Cluster) mapOf(n *node) driver.PartitionMap {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if n.view != nil {
		return cloneMap(n.view.pm)
	}
	return cl.partitionMap()
}

func cloneMap(pm driver.PartitionMap) driver.PartitionMap {
	pm.Shards = slices.Clone(pm.Shards)
	for i, s := range pm.Shards {
		pm.Shards[i].Ranges = slices.Clone(s.Ranges)
		pm.Shards[i].Replicas = slices.Clone(s.Replicas)
	}
	return pm
}

// peers is the cluster's peer list. cl.mu must be held.
func (cl *Cluster) peers() []driver.Peer {
	out := make([]driver.Peer, 0, len(cl.nodes))
	for _, n := range cl.nodes {
		p := driver.Peer{ID: n.id, Addr: n.addr, AltAddr: n.alt, Role: n.role()}
		if p.Role == driver.RoleReplica {
			p.PrimaryID = n.shard.primary.id
		}
		out = append(out, p)
	}
	return out
}

// partitionMap is the cluster's partition map. cl.mu must be held.
func (cl *Cluster) partitionMap() driver.PartitionMap {
	pm := driver.PartitionMap{Partitions: rediscmd.Slots, Shards: make([]driver.Shard, len(cl.shards))}
	for i, sh := range cl.shards {
		pm.Shards[i].Primary = sh.primary.id
		for _, r := range sh.replicas {
			pm.Shards[i].Replicas = append(pm.Shards[i].Replicas, r.id)
		}
	}
	for s := 0; s < rediscmd.Slots; {
		o := cl.owner[s]
		e := s
		for e+1 < rediscmd.Slots && cl.owner[e+1] == o {
			e++
		}
		pm.Shards[o].Ranges = append(pm.Shards[o].Ranges, [2]int{s, e})
		s = e + 1
	}
	return pm
}

// exec routes and runs one command on node n, as a Redis Cluster node
// would: CROSSSLOT, MOVED and ASK redirections, READONLY replicas.
func (cl *Cluster) exec(n *node, argv [][]byte, readonly, asking bool) (rediscmd.Reply, error) {
	cl.mu.RLock()
	st := n.shard.store
	if n.own != nil {
		st = n.own
	}
	cl.mu.RUnlock()
	cmd := lookupCommand(argv[0])
	if cmd == nil || (cmd.arity > 0 && len(argv) != cmd.arity) || len(argv) < -cmd.arity {
		return st.exec(argv), nil // unknown command and arity errors come first
	}
	name, spec := rediscmd.Lookup(argv)
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	slot, cross := -1, false
	var keys [][]byte
	spec.Keys(argv, func(k []byte) {
		keys = append(keys, k)
		s := int(rediscmd.Slot(k))
		if slot < 0 {
			slot = s
		} else if s != slot {
			cross = true
		}
	})
	if n.reset {
		// A reset node serves no slot, and knows no node to redirect to.
		if slot < 0 {
			return st.exec(argv), nil
		}
		return serverError("CLUSTERDOWN Hash slot not served"), nil
	}
	// A one-shard cluster (the default) is as lenient as a standalone
	// Redis with multi-key commands.
	if cross && len(cl.shards) > 1 {
		return serverError("CROSSSLOT Keys in request don't hash to the same slot"), nil
	}
	sh := n.shard
	replica := sh.primary != n
	write := !spec.ReadOnly
	if slot < 0 {
		if replica && (name == "FLUSHALL" || name == "FLUSHDB") {
			return serverError("READONLY You can't write against a read only replica."), nil
		}
		r := st.exec(argv)
		if name == "INFO" {
			r = cl.adjustInfo(n, r)
		}
		return r, nil
	}
	owner := cl.shards[cl.owner[slot]]
	mig := cl.migrating[slot]
	switch {
	case owner == sh:
		if replica && (write || !readonly) {
			return nil, redirect(slot, sh.primary, false)
		}
		if mig != nil {
			switch found := st.countExisting(keys); {
			case found == 0:
				return nil, redirect(slot, mig.to.primary, true)
			case found < len(keys):
				return serverError("TRYAGAIN Multiple keys request during rehashing of slot"), nil
			}
		}
	case mig != nil && mig.to == sh && asking && (!replica || (readonly && !write)):
		if len(keys) > 1 && st.countExisting(keys) != len(keys) {
			return serverError("TRYAGAIN Multiple keys request during rehashing of slot"), nil
		}
	default:
		return nil, redirect(slot, owner.primary, false)
	}
	return st.exec(argv), nil
}

// redirect builds a MOVED or ASK error to node to. cl.mu must be held.
func redirect(slot int, to *node, ask bool) error {
	code := "MOVED"
	if ask {
		code = "ASK"
	}
	return &driver.RedirectError{
		Partition: slot, Addr: to.addr, Ask: ask,
		Err: &driver.ServerError{Code: code, Msg: fmt.Sprintf("%s %d %s", code, slot, to.addr)},
	}
}

// adjustInfo makes the shared store's INFO answer describe node n.
// cl.mu must be held.
func (cl *Cluster) adjustInfo(n *node, r rediscmd.Reply) rediscmd.Reply {
	b, ok := r.([]byte)
	if !ok {
		return r
	}
	s := string(b)
	if len(cl.nodes) > 1 {
		s = replaceOnce(s, "redis_mode:standalone\r\n", "redis_mode:cluster\r\n")
	}
	if n.shard.primary != n && !n.reset {
		s = replaceOnce(s, "role:master\r\n", "role:slave\r\n")
	}
	return []byte(s)
}

func replaceOnce(s, old, repl string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + repl + s[i+len(old):]
		}
	}
	return s
}

// --- the fault handle ----------------------------------------------------------

// NodeInfo describes one node of a Cluster, for tests.
type NodeInfo struct {
	ID        string
	Addr      string
	AltAddr   string
	Role      driver.Role
	PrimaryID string // for a replica
	Shard     int    // index of the node's shard in PartitionMap.Shards
	Alive     bool   // false after Kill, until Restart
	Hung      bool   // between Hang and Unhang
	Lagging   bool   // between Lag and Unlag
	Reset     bool   // after Reset (Role is then primary: its own view)

	Open        int64 // connections open now
	Dials       int64 // connections ever opened
	Probes      int64 // Probe calls served
	PeerFetches int64 // Peers calls served
	MapFetches  int64 // PartitionMap calls served
	Commands    int64 // statements received (including redirected ones)
}

// Name returns the name the cluster was created under (and is looked up by).
func (cl *Cluster) Name() string { return cl.name }

// ClusterName returns the cluster name nodes report now (see Rename).
func (cl *Cluster) ClusterName() string {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	return cl.current
}

// OpenConns returns the number of connections to the cluster open now.
func (cl *Cluster) OpenConns() int64 { return cl.open.Load() }

// Dials returns the number of connections ever opened to the cluster.
func (cl *Cluster) Dials() int64 { return cl.dials.Load() }

// Epoch returns the cluster's config epoch, bumped by Failover and by slot
// moves (MigrateSlot, FinishMigration).
func (cl *Cluster) Epoch() uint64 {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	return cl.epoch
}

// Gens returns the generations Probe reports: PeersGen and PartitionGen.
func (cl *Cluster) Gens() (peers, partitions uint64) {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	return cl.peersGen, cl.partGen
}

// Nodes describes every node of the cluster (forgotten ones excepted) in
// port order.
func (cl *Cluster) Nodes() []NodeInfo {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	out := make([]NodeInfo, 0, len(cl.nodes))
	for _, n := range cl.nodes {
		out = append(out, cl.describe(n))
	}
	return out
}

// describe returns what NodeInfo says of n. cl.mu must be held.
func (cl *Cluster) describe(n *node) NodeInfo {
	ni := NodeInfo{
		ID: n.id, Addr: n.addr, AltAddr: n.alt, Role: n.role(), Shard: n.shard.idx,
		Alive: n.alive, Hung: n.hang > 0, Lagging: n.view != nil && !n.reset, Reset: n.reset,
		Open: n.open.Load(), Dials: n.dials.Load(), Probes: n.probes.Load(),
		PeerFetches: n.peerFetches.Load(), MapFetches: n.mapFetches.Load(), Commands: n.commands.Load(),
	}
	if n.reset {
		ni.Role = driver.RolePrimary
	}
	if ni.Role == driver.RoleReplica {
		ni.PrimaryID = n.shard.primary.id
	}
	return ni
}

// Node describes the node with the given address, alternate address or id:
// a member, or a reset node that was forgotten (it still runs). A
// forgotten node that was not reset is gone.
func (cl *Cluster) Node(addr string) (NodeInfo, error) {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	n, err := cl.find(addr)
	if err != nil {
		return NodeInfo{}, err
	}
	return cl.describe(n), nil
}

// SlotOwner returns the address of the primary serving slot.
func (cl *Cluster) SlotOwner(slot int) string {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	return cl.shards[cl.owner[slot&(rediscmd.Slots-1)]].primary.addr
}

// Kill stops a node: its open connections fail their next call with a
// connection-reset error (and ErrBadConn after that), and new connections
// are refused, until Restart. Its data is kept (it is the shard's). Peers
// and the partition map still list it, as Redis does until FORGET.
func (cl *Cluster) Kill(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil || !n.alive {
		return err
	}
	n.alive = false
	close(n.down)
	return nil
}

// Restart starts a killed node again, in the role it has now (a primary
// that was failed over comes back as a replica). Connections made before
// the Kill stay broken.
func (cl *Cluster) Restart(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil || n.alive {
		return err
	}
	if cl.closed {
		return fmt.Errorf("memory: cluster %q is closed", cl.name)
	}
	n.alive = true
	n.down = make(chan struct{})
	return nil
}

// Hang makes a node slow: every reply (after the command ran) and every
// Connect handshake is delayed by d, or until the caller's ctx ends, Unhang
// is called or the node is killed. A new Hang replaces the previous one.
func (cl *Cluster) Hang(addr string, d time.Duration) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	if n.unhang != nil {
		close(n.unhang)
		n.unhang = nil
	}
	n.hang = d
	if d > 0 {
		n.unhang = make(chan struct{})
	}
	return nil
}

// Unhang ends a Hang; delayed replies are released at once.
func (cl *Cluster) Unhang(addr string) error { return cl.Hang(addr, 0) }

// Failover promotes the replica at addr to primary of its shard; the old
// primary (alive or not) becomes its replica. The epoch and both
// generations are bumped. Open connections are unaffected, but on the old
// primary writes now get MOVED, and so do reads without READONLY.
func (cl *Cluster) Failover(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	sh := n.shard
	if n.reset {
		return fmt.Errorf("memory: node %s was reset and belongs to no shard", addr)
	}
	if sh.primary == n {
		return fmt.Errorf("memory: node %s is already a primary", addr)
	}
	if !n.alive {
		return fmt.Errorf("memory: node %s is down and cannot be promoted", addr)
	}
	i := slices.Index(sh.replicas, n)
	sh.replicas[i] = sh.primary
	sh.primary = n
	cl.epoch++
	cl.peersGen++
	cl.partGen++
	return nil
}

// shardOf returns the shard of the node at addr and checks slot.
func (cl *Cluster) shardOf(slot int, addr string) (*shard, error) {
	if slot < 0 || slot >= rediscmd.Slots {
		return nil, fmt.Errorf("memory: slot %d out of range", slot)
	}
	n, err := cl.find(addr)
	if err != nil {
		return nil, err
	}
	return n.shard, nil
}

// BeginMigration starts moving slot to the shard of the node at toAddr
// (Redis' SETSLOT MIGRATING / IMPORTING). Until FinishMigration the owner
// keeps serving the keys it still has and answers ASK for the others; the
// target serves the slot only to attempts marked driver.WithAsk (or after
// ASKING). The partition map does not change yet.
func (cl *Cluster) BeginMigration(slot int, toAddr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	to, err := cl.shardOf(slot, toAddr)
	if err != nil {
		return err
	}
	from := cl.shards[cl.owner[slot]]
	if from == to {
		return fmt.Errorf("memory: slot %d is already served by %s", slot, toAddr)
	}
	if cl.migrating[slot] != nil {
		return fmt.Errorf("memory: slot %d is already migrating", slot)
	}
	cl.migrating[slot] = &migration{from: from, to: to}
	return nil
}

// MoveKeys moves up to n keys (all when n <= 0) of a migrating slot, in key
// order, and returns how many moved and how many are left.
func (cl *Cluster) MoveKeys(slot, n int) (moved, left int, err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	m := cl.migrating[slot]
	if m == nil {
		return 0, 0, fmt.Errorf("memory: slot %d is not migrating", slot)
	}
	keys := m.from.store.takeSlotKeys(uint16(slot), n)
	m.to.store.putKeys(keys)
	return len(keys), m.from.store.countSlotKeys(uint16(slot)), nil
}

// FinishMigration moves the slot's remaining keys and assigns the slot to
// the target shard (SETSLOT NODE): the epoch and PartitionGen are bumped
// and the old owner answers MOVED from now on.
func (cl *Cluster) FinishMigration(slot int) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	m := cl.migrating[slot]
	if m == nil {
		return fmt.Errorf("memory: slot %d is not migrating", slot)
	}
	m.to.store.putKeys(m.from.store.takeSlotKeys(uint16(slot), 0))
	delete(cl.migrating, slot)
	cl.owner[slot] = int32(m.to.idx)
	cl.epoch++
	cl.partGen++
	return nil
}

// MigrateSlot moves slot, keys and all, to the shard of the node at toAddr
// at once.
func (cl *Cluster) MigrateSlot(slot int, toAddr string) error {
	if err := cl.BeginMigration(slot, toAddr); err != nil {
		return err
	}
	return cl.FinishMigration(slot)
}

// Rename changes the cluster name nodes report in Probe. The cluster is
// still looked up, and its seed alias resolved, by its original name.
func (cl *Cluster) Rename(newName string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.current = newName
}

// ChangeAddr moves a node to a new address: it keeps its id, connections
// to the old address are refused (connections already open keep working),
// and Peers lists the new one (PeersGen is bumped). The alternate address
// does not change.
func (cl *Cluster) ChangeAddr(oldAddr, newAddr string) error {
	if _, _, err := net.SplitHostPort(newAddr); err != nil {
		return fmt.Errorf("memory: new address %q: %w", newAddr, err)
	}
	reg.Lock()
	defer reg.Unlock()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, used := reg.addrs[newAddr]; used {
		return fmt.Errorf("memory: address %q is in use", newAddr)
	}
	var n *node
	for _, x := range cl.nodes {
		if x.addr == oldAddr {
			n = x
		}
	}
	if n == nil {
		return fmt.Errorf("memory: cluster %q has no node at %q", cl.name, oldAddr)
	}
	if reg.addrs[oldAddr] == n {
		delete(reg.addrs, oldAddr)
	}
	if !cl.closed {
		reg.addrs[newAddr] = n
	}
	n.addr = newAddr
	cl.peersGen++
	return nil
}

// Forget removes a replica from the cluster (Redis' CLUSTER FORGET on
// every node): it leaves Peers and the partition map (both generations are
// bumped), its addresses refuse connections and its open connections break
// as if it were killed. A primary cannot be forgotten: fail it over first.
//
// A node that was Reset, or that lags (see Lag), is forgotten as
// redis-cli --cluster del-node treats it: it leaves the others' Peers and
// map but keeps running, reachable at its addresses, until the cluster is
// closed; Node still describes it, Nodes no longer lists it. A lagging
// node forgotten so still lists everyone (it has not heard), until Reset:
// del-node's own order, FORGET on the others and then CLUSTER RESET.
func (cl *Cluster) Forget(addr string) error {
	reg.Lock()
	defer reg.Unlock()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	if !slices.Contains(cl.nodes, n) {
		return fmt.Errorf("memory: node %s was already forgotten", addr)
	}
	if n.shard.primary == n {
		return fmt.Errorf("memory: node %s is a primary: fail it over before forgetting it", addr)
	}
	if n.reset || n.view != nil {
		cl.detached = append(cl.detached, n)
	} else {
		cl.drop(n)
		n.forgotten = true
	}
	n.shard.replicas = slices.DeleteFunc(n.shard.replicas, func(x *node) bool { return x == n })
	cl.nodes = slices.DeleteFunc(cl.nodes, func(x *node) bool { return x == n })
	cl.peersGen++
	cl.partGen++
	return nil
}

// Reset runs CLUSTER RESET SOFT on a replica, as redis-cli --cluster
// del-node does on the node it deletes: the node forgets the cluster and
// answers as a primary that owns no slots and knows only itself (Peers
// lists it alone, PartitionMap assigns no partition, and its generations
// are its own); keyed commands get CLUSTERDOWN, keyless ones run on an
// empty store of its own. It keeps running and its connections stay open.
// The others still list it as they did (a replica of its shard) until
// Forget. A primary cannot be reset: fail it over first.
func (cl *Cluster) Reset(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	if n.reset {
		return nil
	}
	if n.shard.primary == n {
		return fmt.Errorf("memory: node %s is a primary: fail it over before resetting it", addr)
	}
	g := resetGens.Add(1)
	n.reset = true
	n.own = newStore(time.Now)
	n.view = &nodeView{
		peersGen: g, partGen: g,
		peers: []driver.Peer{{ID: n.id, Addr: n.addr, AltAddr: n.alt, Role: driver.RolePrimary}},
		pm:    driver.PartitionMap{Partitions: rediscmd.Slots, Shards: []driver.Shard{{Primary: n.id}}},
	}
	return nil
}

// Lag makes a node's view lag behind the cluster's, as while gossip has
// not reached it: until Unlag it answers Probe's generations, Peers and
// PartitionMap as they are now, whatever changes. Commands are still
// routed by the cluster's real slot map.
func (cl *Cluster) Lag(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	if n.reset {
		return fmt.Errorf("memory: node %s was reset", addr)
	}
	if n.view == nil {
		n.view = &nodeView{peersGen: cl.peersGen, partGen: cl.partGen, peers: cl.peers(), pm: cl.partitionMap()}
	}
	return nil
}

// Unlag ends a Lag: the node answers with the cluster's view again (a
// forgotten node keeps its view: it is no longer a member).
func (cl *Cluster) Unlag(addr string) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n, err := cl.find(addr)
	if err != nil {
		return err
	}
	if !n.reset && slices.Contains(cl.nodes, n) {
		n.view = nil
	}
	return nil
}

// drop kills n and removes its addresses. reg and cl.mu must be held.
func (cl *Cluster) drop(n *node) {
	for _, a := range []string{n.addr, n.alt} {
		if reg.addrs[a] == n {
			delete(reg.addrs, a)
		}
	}
	if n.alive {
		n.alive = false
		close(n.down)
	}
}

// Close deletes the cluster: every node dies (open connections break) and
// the name is free for a new cluster.
func (cl *Cluster) Close() error {
	reg.Lock()
	defer reg.Unlock()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return nil
	}
	cl.closed = true
	if reg.clusters[cl.name] == cl {
		delete(reg.clusters, cl.name)
	}
	for _, n := range slices.Concat(cl.nodes, cl.detached) {
		cl.drop(n)
	}
	return nil
}
