package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
)

// sim is a primary/standby cluster as PostgreSQL streaming replication
// shows itself to a tender: no partition map, every node lists only itself
// as a peer, and reports its role, its epoch (the timeline) and its
// identity (the system identifier, as the cluster name). The test sets
// them, and takes nodes down and up, at will; the tender is the thing
// under test.
type sim struct {
	mu    sync.Mutex
	nodes map[string]*simNode
	dials map[string]int // Connect calls by address
}

type simNode struct {
	id    string
	ident string
	role  driver.Role
	epoch uint64
	down  bool
}

func newSim() *sim { return &sim{nodes: map[string]*simNode{}, dials: map[string]int{}} }

// add creates a node at addr; its id is "id-"+addr.
func (s *sim) add(addr, ident string, role driver.Role, epoch uint64) *sim {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[addr] = &simNode{id: "id-" + addr, ident: ident, role: role, epoch: epoch}
	return s
}

// set changes the node at addr.
func (s *sim) set(addr string, f func(n *simNode)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.nodes[addr])
}

// promote makes addr the primary of a new timeline (the highest epoch
// plus one) and leaves the other nodes as they are: the old primary has
// not seen the failover.
func (s *sim) promote(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var top uint64
	for _, n := range s.nodes {
		top = max(top, n.epoch)
	}
	n := s.nodes[addr]
	n.role, n.epoch = driver.RolePrimary, top+1
}

func (s *sim) dialed(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials[addr]
}

func (s *sim) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials[addr]++
	if n := s.nodes[addr]; n == nil || n.down {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	return &simConn{s: s, addr: addr}, ctx.Err()
}

func (s *sim) Backend() driver.Backend {
	return driver.Backend{System: "sim", Caps: driver.CapTopology | driver.CapPing}
}

func (s *sim) Route(q string, _ []driver.Value) (driver.Route, error) {
	return driver.Route{Op: q, Partition: driver.AnyPartition}, nil
}

func (s *sim) Resolve(_ context.Context, seed string) ([]string, error) { return []string{seed}, nil }

type simConn struct {
	s    *sim
	addr string
}

func (c *simConn) node() (simNode, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	n := c.s.nodes[c.addr]
	if n == nil || n.down {
		return simNode{}, fmt.Errorf("%s: connection reset by peer", c.addr)
	}
	return *n, nil
}

func (c *simConn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	n, err := c.node()
	return driver.NodeStatus{ID: n.id, ClusterName: n.ident, Role: n.role, Epoch: n.epoch, Healthy: true}, err
}

func (c *simConn) Peers(ctx context.Context) ([]driver.Peer, error) {
	n, err := c.node()
	return []driver.Peer{{ID: n.id, Addr: c.addr, Role: n.role}}, err
}

func (c *simConn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	_, err := c.node()
	return driver.PartitionMap{}, err
}

func (c *simConn) Ping(ctx context.Context) error { _, err := c.node(); return err }

func (c *simConn) Exec(context.Context, string, []driver.Value) (driver.Result, error) {
	return nil, errors.New("sim: no statements")
}

func (c *simConn) Query(context.Context, string, []driver.Value) (driver.Rows, error) {
	return nil, errors.New("sim: no statements")
}

func (c *simConn) Close() error { return nil }

// simTender returns a tender of s over seeds, tended by hand, and its log.
func simTender(t *testing.T, s *sim, seeds ...string) (*Tender, *logBuf) {
	t.Helper()
	cfg := Config{
		Seeds: seeds, Connector: s, Timeout: 100 * time.Millisecond, TendInterval: 30 * time.Millisecond,
		Pool: puddlepool.Config[driver.Conn]{MaxSize: 4, Close: func(c driver.Conn) error { return c.Close() }},
	}
	logs := capture(&cfg)
	return manual(t, cfg), logs
}

var (
	write = driver.Route{Op: "INSERT", Partition: driver.AnyPartition, Intent: driver.Write}
	read  = driver.Route{Op: "SELECT", Partition: driver.AnyPartition, Intent: driver.Read}
)

// wantPick checks what Pick returns for route and pref over a few
// attempts: want, or any of them when several are given ("" for nil).
func wantPick(t *testing.T, tr *Tender, when string, route driver.Route, pref ReadPreference, want ...string) {
	t.Helper()
	for attempt := range 4 {
		got := addrOf(tr.Snapshot().Pick(route, pref, attempt))
		if got == "<nil>" {
			got = ""
		}
		ok := false
		for _, w := range want {
			ok = ok || got == w
		}
		if !ok {
			t.Fatalf("%s: %s with preference %d, attempt %d: picked %q, want one of %q", when, route.Intent, pref, attempt, got, want)
		}
	}
}

func tends(tr *Tender, n int) {
	for range n {
		tr.tend()
	}
}

// Roles follow the probes: a standby promoted takes the writes, the old
// primary back as a standby serves reads.
func TestRoleFollowsProbes(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	tr, _ := simTender(t, s, "a:1", "b:1")
	tends(tr, 2)
	wantPick(t, tr, "at start", write, Primary, "a:1")
	wantPick(t, tr, "at start", read, Primary, "a:1")
	wantPick(t, tr, "at start", read, PreferReplica, "b:1")
	wantPick(t, tr, "at start", read, Replica, "b:1")

	// Failover: a dies, b is promoted to timeline 2.
	s.set("a:1", func(n *simNode) { n.down = true })
	s.promote("b:1")
	tr.tend()
	if r := tr.Snapshot().Node("b:1").Role(); r != driver.RolePrimary {
		t.Fatalf("promoted standby's role: %v", r)
	}
	wantPick(t, tr, "after the promotion", write, Primary, "b:1")
	wantPick(t, tr, "after the promotion", read, PreferReplica, "b:1")
	wantPick(t, tr, "after the promotion, no standby up", read, Replica, "")

	// a comes back, rewound, as a standby of timeline 2.
	s.set("a:1", func(n *simNode) { n.down, n.role, n.epoch = false, driver.RoleReplica, 2 })
	tr.tend()
	if n := tr.Snapshot().Node("a:1"); n == nil || !n.Healthy() || n.Role() != driver.RoleReplica {
		t.Fatalf("old primary back as a standby: %+v", n)
	}
	wantPick(t, tr, "old primary back as a standby", write, PreferReplica, "b:1")
	wantPick(t, tr, "old primary back as a standby", read, Replica, "a:1")
}

// A write never goes to a standby nor to a node of unknown role, whatever
// the attempt; with no healthy primary, Pick says so (nil).
func TestWritesOnlyToThePrimary(t *testing.T) {
	s := newSim().
		add("a:1", "sys1", driver.RoleReplica, 1).
		add("b:1", "sys1", driver.RoleReplica, 1).
		add("c:1", "sys1", driver.RoleUnknown, 1)
	tr, _ := simTender(t, s, "a:1", "b:1", "c:1")
	tends(tr, 2)
	if got := healthyAddrs(tr.Snapshot()); len(got) != 3 {
		t.Fatalf("healthy nodes %v, want all 3", got)
	}
	for _, pref := range []ReadPreference{Primary, PreferReplica, Replica} {
		wantPick(t, tr, "no primary", write, pref, "")
	}
	wantPick(t, tr, "no primary", read, Primary, "")
	wantPick(t, tr, "no primary", read, PreferReplica, "a:1", "b:1")
	wantPick(t, tr, "no primary", read, Replica, "a:1", "b:1")

	s.promote("a:1")
	tr.tend()
	wantPick(t, tr, "a promoted", write, Replica, "a:1")

	// The primary's breaker opens: writes wait rather than go elsewhere.
	a := tr.Snapshot().Node("a:1")
	for range breakerLimit {
		a.Report(true)
	}
	wantPick(t, tr, "primary's breaker open", write, Primary, "")
	wantPick(t, tr, "primary's breaker open", read, PreferReplica, "b:1")
	a.Report(false)

	// The primary dies: nothing takes writes until another is promoted.
	s.set("a:1", func(n *simNode) { n.down = true })
	tends(tr, 4)
	wantPick(t, tr, "primary down", write, Primary, "")
	s.set("c:1", func(n *simNode) { n.role = driver.RolePrimary; n.epoch = 2 })
	tr.tend()
	wantPick(t, tr, "c promoted", write, Primary, "c:1")
}

// Two primaries: the newer epoch takes the writes; equal epochs, neither
// until one steps down. Each episode is logged once, naming both nodes
// and their epochs.
func TestTwoPrimaries(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	tr, logs := simTender(t, s, "a:1", "b:1")
	tends(tr, 2)
	wantPick(t, tr, "at start", write, Primary, "a:1")

	// b is promoted while a, cut off from b but not from the client, still
	// claims to be the primary of timeline 1.
	s.promote("b:1")
	tends(tr, 3)
	wantPick(t, tr, "newer epoch", write, Primary, "b:1")
	wantPick(t, tr, "newer epoch", read, Primary, "b:1")
	if n := strings.Count(logs.String(), "two primaries"); n != 1 {
		t.Fatalf("the episode is logged %d times, want once:\n%s", n, logs)
	}
	if line := lineOf(logs.String(), "two primaries"); !strings.Contains(line, "a:1 (epoch 1)") || !strings.Contains(line, "b:1 (epoch 2)") || !strings.Contains(line, "WARN") {
		t.Errorf("the episode's log line does not name both nodes and epochs: %s", line)
	}
	// a lost the writes while it still answers: its pool was cleared.
	if line := lineOf(logs.String(), "pool cleared"); !strings.Contains(line, "a:1") || !strings.Contains(line, "fenced") {
		t.Errorf("the fenced primary's pool is not cleared: %q\n%s", line, logs)
	}

	// Equal epochs: nothing tells which is the real one.
	s.set("a:1", func(n *simNode) { n.epoch = 2 })
	tends(tr, 3)
	wantPick(t, tr, "equal epochs", write, Primary, "")
	wantPick(t, tr, "equal epochs", read, Primary, "")
	wantPick(t, tr, "equal epochs", read, PreferReplica, "")
	if n := strings.Count(logs.String(), "two primaries of the same epoch"); n != 1 {
		t.Fatalf("the equal-epoch episode is logged %d times, want once:\n%s", n, logs)
	}
	if line := lineOf(logs.String(), "same epoch"); !strings.Contains(line, "a:1 (epoch 2)") || !strings.Contains(line, "b:1 (epoch 2)") {
		t.Errorf("the equal-epoch log line does not name both nodes and epochs: %s", line)
	}

	// a steps down: b takes the writes again, a serves reads.
	s.set("a:1", func(n *simNode) { n.role = driver.RoleReplica })
	tr.tend()
	wantPick(t, tr, "resolved", write, Primary, "b:1")
	wantPick(t, tr, "resolved", read, Replica, "a:1")
	if !strings.Contains(logs.String(), "one primary again") {
		t.Errorf("the end of the episode is not logged:\n%s", logs)
	}

	// b dies; a, not rewound, comes back as the primary of timeline 1:
	// the newer primary, though down, fences it.
	s.set("b:1", func(n *simNode) { n.down = true })
	s.set("a:1", func(n *simNode) { n.role, n.epoch = driver.RolePrimary, 1 })
	tends(tr, 4)
	wantPick(t, tr, "old primary back while the newer one is down", write, Primary, "")
	if line := lineOf(logs.String(), "newer one is down"); !strings.Contains(line, "a:1 (epoch 1)") || !strings.Contains(line, "b:1 (epoch 2)") {
		t.Errorf("the fenced primary is not logged with both nodes: %q\n%s", line, logs)
	}
}

// lineOf returns the first line of logs that contains s.
func lineOf(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// A primary that becomes a standby has its pool cleared: idle connections
// close now, busy ones when they are returned, and none made while it was
// the primary is handed out again.
func TestDemotedPrimaryPoolCleared(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	tr, logs := simTender(t, s, "a:1", "b:1")
	tends(tr, 2)
	a := tr.Snapshot().Node("a:1")
	ctx := context.Background()
	busy, err := a.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := a.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle.Release()

	s.set("a:1", func(n *simNode) { n.role = driver.RoleReplica })
	s.promote("b:1")
	tr.tend()
	st := a.Pool().Stat()
	if st.Idle != 0 {
		t.Fatalf("demoted primary's pool: %d idle; want 0", st.Idle)
	}
	eventually(t, time.Second, "the idle connection closed", func() bool { return a.Pool().Stat().ClosedCleared == 1 })
	busy.Release()
	eventually(t, time.Second, "the busy connection closed on its return", func() bool {
		st := a.Pool().Stat()
		return st.Idle == 0 && st.Closed() == 2 && st.Closing == 0
	})
	if !strings.Contains(logs.String(), "demoted") || !strings.Contains(lineOf(logs.String(), "demoted"), "WARN") {
		t.Errorf("the demotion is not logged at WARN:\n%s", logs)
	}
	// The pool serves the standby's reads.
	c, err := a.Pool().Acquire(ctx)
	if err != nil {
		t.Fatalf("the demoted node's pool after the demotion: %v", err)
	}
	c.Release()
	wantPick(t, tr, "after the demotion", write, Primary, "b:1")
}

// Without cluster_name, the servers of two databases in one DSN are not
// mixed: the identity most of the first nodes report wins (the first seed
// on a tie), another is refused with an error naming both, and servers of
// another database that answer later do not take over.
func TestIdentityMismatchRefused(t *testing.T) {
	s := newSim().
		add("a:1", "sysA", driver.RolePrimary, 1).
		add("b:1", "sysA", driver.RoleReplica, 1).
		add("c:1", "sysB", driver.RolePrimary, 7).
		add("d:1", "sysB", driver.RoleReplica, 7).
		add("e:1", "sysB", driver.RoleReplica, 7)
	tr, logs := simTender(t, s, "c:1", "a:1", "b:1", "d:1", "e:1")
	s.set("d:1", func(n *simNode) { n.down = true })
	s.set("e:1", func(n *simNode) { n.down = true })
	tends(tr, 2)
	if got := addrs(tr.Snapshot()); !equal(got, "a:1", "b:1") {
		t.Fatalf("table %v, want the two nodes of sysA", got)
	}
	line := lineOf(logs.String(), "node refused")
	if !strings.Contains(line, "c:1") || !strings.Contains(line, "sysA") || !strings.Contains(line, "sysB") || !strings.Contains(line, ErrClusterNameMismatch.Error()) {
		t.Fatalf("refusal of c:1 does not name both identities: %q\n%s", line, logs)
	}
	wantPick(t, tr, "with another database's primary in the DSN", write, Primary, "a:1")
	tends(tr, 2)
	if n := strings.Count(logs.String(), "node refused"); n != 1 {
		t.Errorf("the refusal is logged %d times, want once:\n%s", n, logs)
	}

	// sysB's standbys come up: sysB is now the majority of the DSN, but
	// the identity followed stays.
	s.set("d:1", func(n *simNode) { n.down = false })
	s.set("e:1", func(n *simNode) { n.down = false })
	tends(tr, 3)
	if got := addrs(tr.Snapshot()); !equal(got, "a:1", "b:1") {
		t.Fatalf("table %v after sysB's nodes came up, want sysA's", got)
	}
	// A node of the table that reports another identity is failed.
	s.set("b:1", func(n *simNode) { n.ident = "sysB" })
	tr.tend()
	if n := tr.Snapshot().Node("b:1"); n.Healthy() {
		t.Fatal("a node now reporting another identity is still healthy")
	}
	wantPick(t, tr, "b reports sysB", read, Replica, "")

	// A tie goes to the first seed; every error names both identities.
	s2 := newSim().add("x:1", "sysX", driver.RolePrimary, 1).add("y:1", "sysY", driver.RolePrimary, 1)
	tr2, _ := simTender(t, s2, "y:1", "x:1")
	res := tr2.probeAll(context.Background(), []*Node{tr2.newProbeNode("x:1"), tr2.newProbeNode("y:1")})
	if res[1].err != nil || !errors.Is(res[0].err, ErrClusterNameMismatch) ||
		!strings.Contains(res[0].err.Error(), `"sysX"`) || !strings.Contains(res[0].err.Error(), `"sysY"`) {
		t.Fatalf("tie: x:1 %v, y:1 %v; want x:1 refused naming both", res[0].err, res[1].err)
	}
	closeProbes([]*Node{res[0].n, res[1].n})

	// Nodes that report no identity (Redis) are all admitted.
	s3 := newSim().add("p:1", "", driver.RolePrimary, 0).add("q:1", "", driver.RoleReplica, 0)
	tr3, _ := simTender(t, s3, "p:1", "q:1")
	tends(tr3, 2)
	if got := healthyAddrs(tr3.Snapshot()); !equal(got, "p:1", "q:1") {
		t.Fatalf("nodes without an identity: %v", got)
	}
	wantPick(t, tr3, "nodes without an identity", write, Primary, "p:1")
}

func equal(got []string, want ...string) bool {
	return strings.Join(got, " ") == strings.Join(want, " ")
}

// A DSN host down at start is probed every tend and joins when it
// answers; a long DSN costs a bounded number of probes a tend.
func TestDownHostJoinsWhenItAnswers(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	s.set("b:1", func(n *simNode) { n.down = true })
	tr, _ := simTender(t, s, "a:1", "b:1")
	tends(tr, 3)
	if got := addrs(tr.Snapshot()); !equal(got, "a:1") {
		t.Fatalf("table %v, want a:1 alone while b:1 is down", got)
	}
	if d := s.dialed("b:1"); d != 3 {
		t.Fatalf("b:1 dialled %d times in 3 tends, want every tend", d)
	}
	s.set("b:1", func(n *simNode) { n.down = false })
	tr.tend()
	n := tr.Snapshot().Node("b:1")
	if n == nil || !n.Healthy() || n.Role() != driver.RoleReplica {
		t.Fatalf("b:1 after it came up: %v", addrs(tr.Snapshot()))
	}
	wantPick(t, tr, "b joined", read, Replica, "b:1")

	// A node that fails stays in the table, down, and is probed every
	// tend: the DSN says it is a member.
	s.set("b:1", func(n *simNode) { n.down = true })
	tends(tr, 6)
	if n := tr.Snapshot().Node("b:1"); n == nil || n.Healthy() {
		t.Fatalf("a failed DSN host left the table (or is healthy): %v", addrs(tr.Snapshot()))
	}
	s.set("b:1", func(n *simNode) { n.down = false })
	tr.tend()
	if n := tr.Snapshot().Node("b:1"); n == nil || !n.Healthy() {
		t.Fatal("a failed DSN host did not recover")
	}

	// A long DSN: a few hosts a tend, all of them in turn.
	seeds := []string{"a:1"}
	for i := range 40 { // hosts that do not answer
		seeds = append(seeds, fmt.Sprintf("gone:%d", i))
	}
	tr2, _ := simTender(t, s, seeds...)
	tr2.tend() // the first tend tries them all
	dials := func() (n int) {
		for i := range 40 {
			n += s.dialed(fmt.Sprintf("gone:%d", i))
		}
		return n
	}
	before := dials()
	for range 3 {
		d := dials()
		tr2.tend()
		if got := dials() - d; got > maxSeedProbes {
			t.Errorf("one tend dialled %d missing hosts, bound %d", got, maxSeedProbes)
		}
	}
	for i := range 40 {
		if a := fmt.Sprintf("gone:%d", i); s.dialed(a) < 2 {
			t.Fatalf("%s not tried again in 3 tends (%d dials in all)", a, dials()-before)
		}
	}
}

// Two DSN hosts reaching one server do not become two nodes (which would
// be two primaries).
func TestAliasHostsAreOneNode(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1)
	s.nodes["localhost:1"] = s.nodes["a:1"] // the same server
	tr, _ := simTender(t, s, "a:1", "localhost:1")
	tr.tend()
	n := tr.Snapshot().Node("a:1")
	for range 4 {
		tr.tend()
		if got := addrs(tr.Snapshot()); !equal(got, "a:1") || tr.Snapshot().Node("a:1") != n {
			t.Fatalf("table %v, want the first node at the first seed's address, kept", got)
		}
	}
	if st := tr.Stats(); st.NodesAdded != 1 || st.NodesRemoved != 0 {
		t.Fatalf("%d nodes added, %d removed: the aliases flip", st.NodesAdded, st.NodesRemoved)
	}
	wantPick(t, tr, "one server at two addresses", write, Primary, "a:1")
}

// A write that found the primary demoted stops writes to it at once,
// clears its pool and asks for a refresh; a probe begun after it lifts it.
func TestDemote(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	tr, logs := simTender(t, s, "a:1", "b:1")
	tends(tr, 2)
	a := tr.Snapshot().Node("a:1")
	c, err := a.Pool().Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	before := tr.Stats()
	beganBefore := a.demotions.Load() // a probe in flight during the Demote

	tr.Demote(a, errors.New("ERROR: cannot execute INSERT in a read-only transaction (SQLSTATE 25006)"))
	if !a.Demoted() {
		t.Fatal("not marked demoted")
	}
	wantPick(t, tr, "demoted", write, Primary, "")
	wantPick(t, tr, "demoted", read, Primary, "")
	wantPick(t, tr, "demoted", read, PreferReplica, "b:1")
	if st := a.Pool().Stat(); st.Idle != 0 {
		t.Fatalf("pool after Demote: %+v", st)
	}
	eventually(t, time.Second, "the idle connection closed", func() bool { return a.Pool().Stat().ClosedCleared == 1 })
	if got := tr.Stats().RefreshesTriggered; got != before.RefreshesTriggered+1 {
		t.Fatalf("refreshes %d, want %d", got, before.RefreshesTriggered+1)
	}
	if !strings.Contains(lineOf(logs.String(), "demoted"), "25006") {
		t.Errorf("the demotion's log does not say what the write met:\n%s", logs)
	}
	tr.Demote(a, errors.New("again"))
	if st := a.Pool().Stat(); st.ClosedCleared != 1 || strings.Count(logs.String(), "found the primary demoted") != 1 {
		t.Fatal("a second Demote cleared or logged again")
	}

	// A probe that began before the Demote does not lift it.
	tr.observe(a, driver.NodeStatus{ID: a.ID(), Role: driver.RolePrimary, Epoch: 1, Healthy: true}, beganBefore)
	if !a.Demoted() {
		t.Fatal("a probe begun before Demote lifted it")
	}
	// One begun after it does: a is still the primary (57P01 was a
	// restart, say).
	tr.tend()
	if a.Demoted() {
		t.Fatal("a probe begun after Demote did not lift it")
	}
	wantPick(t, tr, "still the primary", write, Primary, "a:1")

	// Demoted for good: the next tend sees the failover.
	tr.Demote(a, errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"))
	wantPick(t, tr, "demoted again", write, Primary, "")
	s.set("a:1", func(n *simNode) { n.role = driver.RoleReplica })
	s.promote("b:1")
	tr.tend()
	wantPick(t, tr, "after the failover", write, Primary, "b:1")
	wantPick(t, tr, "after the failover", read, Replica, "a:1")
}

// With the tend loop running: writes move to a promoted standby within
// 500 ms of the promotion becoming visible, and never go to the old
// primary once it says it is a standby.
func TestPromotionFollowedByTheLoop(t *testing.T) {
	s := newSim().add("a:1", "sys1", driver.RolePrimary, 1).add("b:1", "sys1", driver.RoleReplica, 1)
	cfg := Config{
		Seeds: []string{"a:1", "b:1"}, Connector: s, Timeout: 100 * time.Millisecond, TendInterval: 30 * time.Millisecond,
		Pool: puddlepool.Config[driver.Conn]{MaxSize: 4, Close: func(c driver.Conn) error { return c.Close() }},
	}
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "both nodes in the table", func() bool { return len(healthyAddrs(tr.Snapshot())) == 2 })
	s.set("a:1", func(n *simNode) { n.role = driver.RoleReplica })
	s.promote("b:1")
	d := eventually(t, time.Second, "writes to the promoted standby", func() bool {
		return addrOf(tr.Snapshot().Pick(write, Primary, 0)) == "b:1"
	})
	if d > 500*time.Millisecond {
		t.Errorf("writes followed the promotion after %v", d)
	}
	for range 20 {
		if got := addrOf(tr.Snapshot().Pick(write, Primary, 0)); got != "b:1" {
			t.Fatalf("write picked %s after the promotion", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
