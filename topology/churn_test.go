package topology

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
)

// logBuf collects a tender's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func capture(cfg *Config) *logBuf {
	l := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

// manual returns a tender that the test tends by hand, so that "within two
// tends" is exact.
func manual(t *testing.T, cfg Config) *Tender {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func addrs(s *Snapshot) []string {
	var out []string
	for _, n := range s.Nodes() {
		out = append(out, n.Addr())
	}
	return out
}

// wantCluster checks that the table holds exactly the cluster's live
// members, all healthy, and that every partition's primary is the node the
// cluster says serves it.
func wantCluster(t *testing.T, tr *Tender, cl *memory.Cluster, when string) {
	t.Helper()
	s := tr.Snapshot()
	var want []string
	for _, n := range cl.Nodes() {
		if n.Alive {
			want = append(want, n.Addr)
		}
	}
	if got := healthyAddrs(s); !slices.Equal(got, want) || len(s.Nodes()) != len(want) {
		t.Fatalf("%s: table %v (healthy %v), want the cluster's live nodes %v", when, addrs(s), got, want)
	}
	for p := 0; p < s.Partitions(); p += 97 {
		if n := s.Primary(p); n == nil || n.Addr() != cl.SlotOwner(p) {
			t.Fatalf("%s: partition %d served by %v, the cluster says %s", when, p, n, cl.SlotOwner(p))
		}
	}
}

// A replica is reset (CLUSTER RESET SOFT) while the others still list it:
// its view names only itself and owns no slots. The tender keeps the whole
// cluster, removes the reset node within two tends, closes its connections
// and does not probe it once the cluster forgot it.
func TestResetNodeLeavesNotTheCluster(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	cfg.Pool.MinSize = 1
	logs := capture(&cfg)
	tr := manual(t, cfg)
	tr.tend()
	tr.tend()
	cl := memory.Lookup(name)
	wantCluster(t, tr, cl, "before")
	victim := cl.Nodes()[4].Addr // a replica
	eventually(t, time.Second, "victim's pool filled", func() bool {
		ni, _ := cl.Node(victim)
		return ni.Open >= 2 // the tend connection and the pool's
	})
	if err := cl.Reset(victim); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		tr.tend()
		// Never, not even for one tend, the reset node alone.
		s := tr.Snapshot()
		if len(s.Nodes()) < 5 {
			t.Fatalf("tend %d after the reset: the table kept %v", i+1, addrs(s))
		}
	}
	s := tr.Snapshot()
	if s.Node(victim) != nil {
		t.Fatalf("the reset node %s is still in the table after two tends: %v", victim, addrs(s))
	}
	if got := len(healthyAddrs(s)); got != 5 {
		t.Fatalf("%d healthy nodes, want the 5 others: %v", got, addrs(s))
	}
	for p := 0; p < s.Partitions(); p += 97 {
		if n := s.Primary(p); n == nil || n.Addr() != cl.SlotOwner(p) {
			t.Fatalf("partition %d served by %v, the cluster says %s", p, n, cl.SlotOwner(p))
		}
	}
	if st := tr.Stats(); st.NodesRemoved != 1 {
		t.Errorf("%d nodes removed, want 1", st.NodesRemoved)
	}
	eventually(t, time.Second, "the reset node's connections closed", func() bool {
		ni, _ := cl.Node(victim)
		return ni.Open == 0
	})
	if l := logs.String(); !strings.Contains(l, "node removed") || !strings.Contains(l, victim) || !strings.Contains(l, "it left the cluster") {
		t.Errorf("the removal is not logged with its reason:\n%s", l)
	}

	// The cluster forgets it; the node keeps running and is not probed.
	if err := cl.Forget(victim); err != nil {
		t.Fatal(err)
	}
	tr.tend()
	before, _ := cl.Node(victim)
	for range 5 {
		tr.tend()
	}
	after, _ := cl.Node(victim)
	if after.Probes != before.Probes || after.Open != 0 {
		t.Errorf("the deleted node is still probed (%d probes) or connected (%d open)", after.Probes-before.Probes, after.Open)
	}
	wantCluster(t, tr, cl, "after forget")
}

// redis-cli --cluster del-node's own order: the others forget the node
// while it still lists everyone, then it is reset. Repeated over every
// replica, the table follows the cluster down, node by node.
func TestDelNodeOrder(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	tr := manual(t, cfg)
	tr.tend()
	tr.tend()
	cl := memory.Lookup(name)
	for _, victim := range []string{cl.Nodes()[3].Addr, cl.Nodes()[4].Addr, cl.Nodes()[5].Addr} {
		if err := cl.Lag(victim); err != nil {
			t.Fatal(err)
		}
		if err := cl.Forget(victim); err != nil {
			t.Fatal(err)
		}
		tr.tend()
		tr.tend()
		wantCluster(t, tr, cl, "forgotten "+victim)
		if err := cl.Reset(victim); err != nil {
			t.Fatal(err)
		}
		tr.tend()
		tr.tend()
		wantCluster(t, tr, cl, "reset "+victim)
	}
	if len(tr.Snapshot().Nodes()) != 3 {
		t.Fatalf("table %v, want the 3 primaries", addrs(tr.Snapshot()))
	}
}

// The smallest case: a primary and its replica, the replica the only
// seed. The replica, reset, reports a view without its primary; the table
// keeps the primary.
func TestLoneViewDoesNotEmptyTable(t *testing.T) {
	name, cfg := cluster(t, 1, 1, "NAME:7002")
	tr := manual(t, cfg)
	tr.tend()
	tr.tend()
	cl := memory.Lookup(name)
	wantCluster(t, tr, cl, "before")
	primary, replica := cl.Nodes()[0].Addr, cl.Nodes()[1].Addr
	if err := cl.Reset(replica); err != nil {
		t.Fatal(err)
	}
	tr.tend()
	tr.tend()
	s := tr.Snapshot()
	if got := addrs(s); !slices.Equal(got, []string{primary}) {
		t.Fatalf("table %v, want the primary %s alone", got, primary)
	}
	if p := s.Primary(0); p == nil || p.Addr() != primary || !p.Healthy() {
		t.Fatalf("partition 0 served by %v", p)
	}
}

// When the table holds only a healthy node that serves nothing (here a
// reset node is all the first tend found), the seeds are probed again,
// without waiting for every known node to fail, and bring the cluster
// back; and they are probed a few at a time, not every tend.
func TestSeedsBringBackTheCluster(t *testing.T) {
	name, cfg := cluster(t, 2, 1, "NAME:7003", "NAME:7001")
	cfg.Connector.(driver.Resolver).Resolve(context.Background(), name) // create the cluster
	cl := memory.Lookup(name)
	reset, primary := cl.Nodes()[2].Addr, cl.Nodes()[0].Addr
	if err := cl.Reset(reset); err != nil {
		t.Fatal(err)
	}
	if err := cl.Kill(primary); err != nil {
		t.Fatal(err)
	}
	tr := start(t, cfg)
	tr.WaitFirst(context.Background())
	if got := addrs(tr.Snapshot()); !slices.Equal(got, []string{reset}) {
		t.Fatalf("first tend: table %v, want the reset node alone", got)
	}
	// While the seed is down, it is retried every few tend intervals.
	time.Sleep(20 * cfg.TendInterval)
	st := tr.Stats()
	seedProbes := st.Probes - st.Tends // one probe per tend is the reset node's
	t.Logf("%d tends, %d probes of the dead seed", st.Tends, seedProbes)
	if seedProbes < 2 || seedProbes > st.Tends/2 {
		t.Errorf("the dead seed was probed %d times in %d tends: want a few, not every tend", seedProbes, st.Tends)
	}
	if err := cl.Restart(primary); err != nil {
		t.Fatal(err)
	}
	from := tr.Stats().Tends
	eventually(t, 2*time.Second, "the cluster found through the seeds", func() bool {
		s := tr.Snapshot()
		return s.Node(reset) == nil && len(healthyAddrs(s)) == 3 && s.Primary(0) != nil
	})
	tends := tr.Stats().Tends - from
	t.Logf("cluster back after %d tends", tends)
	if lim := int64(tr.seedEvery()/cfg.TendInterval) + 3; tends > lim {
		t.Errorf("the cluster came back after %d tends, want at most %d", tends, lim)
	}
}

// Views differ for a moment during a failover while gossip spreads. When
// the primary died, the promoted replica's view wins as soon as one node
// holds it (it serves every partition); a graceful failover seen by a
// minority leaves the map alone until the majority sees it. Either way no
// node is removed, every partition keeps a primary, and a stable
// disagreement costs no fetches.
func TestViewsDisagreeDuringFailover(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	tr := manual(t, cfg)
	tr.tend()
	tr.tend()
	cl := memory.Lookup(name)
	nodes := cl.Nodes() // 7001-7003 primaries, 7004-7006 their replicas
	p1, r1 := nodes[0].Addr, nodes[3].Addr

	// Killed primary: everyone but the promoted replica lags.
	cl.Kill(p1)
	for _, n := range nodes[1:] {
		if n.Addr != r1 {
			cl.Lag(n.Addr)
		}
	}
	if err := cl.Failover(r1); err != nil {
		t.Fatal(err)
	}
	tr.tend()
	if p := tr.Snapshot().Primary(0); p == nil || p.Addr() != r1 {
		t.Fatalf("partition 0 served by %v one tend after %s was promoted", p, r1)
	}
	if n := len(tr.Snapshot().Nodes()); n != 6 {
		t.Fatalf("table %v during the failover", addrs(tr.Snapshot()))
	}
	for _, n := range nodes {
		cl.Unlag(n.Addr)
	}
	cl.Restart(p1)
	tr.tend()
	tr.tend()
	wantCluster(t, tr, cl, "after the failover")

	// Graceful failover seen by two nodes of six: the old map stays (the
	// old primary redirects meanwhile), nothing is removed.
	p2, r2 := nodes[1].Addr, nodes[4].Addr
	for _, n := range cl.Nodes() {
		if n.Addr != p2 && n.Addr != r2 {
			cl.Lag(n.Addr)
		}
	}
	if err := cl.Failover(r2); err != nil {
		t.Fatal(err)
	}
	tr.tend()
	s := tr.Snapshot()
	if len(healthyAddrs(s)) != 6 {
		t.Fatalf("table %v during a graceful failover", addrs(s))
	}
	for p := 0; p < s.Partitions(); p += 97 {
		if s.Primary(p) == nil || !s.Primary(p).Healthy() {
			t.Fatalf("partition %d without a healthy primary during a graceful failover", p)
		}
	}
	fetches := tr.Stats().PeerFetches + tr.Stats().MapFetches
	for range 3 {
		tr.tend()
	}
	if f := tr.Stats().PeerFetches + tr.Stats().MapFetches; f != fetches {
		t.Errorf("%d fetches in 3 tends while the views disagree but do not change", f-fetches)
	}
	for _, n := range cl.Nodes() {
		cl.Unlag(n.Addr)
	}
	tr.tend()
	tr.tend()
	wantCluster(t, tr, cl, "after the graceful failover")
	if st := tr.Stats(); st.NodesRemoved != 0 {
		t.Errorf("%d nodes removed by failovers", st.NodesRemoved)
	}
}

// Another cluster's node (a wrong seed) is not admitted, and the cluster
// is followed.
func TestForeignSeedRefused(t *testing.T) {
	name, cfg := cluster(t, 3, 0)
	other := name + "-other"
	oc, err := memory.Driver{}.OpenConnector(driver.Config{Hosts: []string{other}, Params: map[string]string{"nodes": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	oc.(driver.Resolver).Resolve(context.Background(), other)
	defer memory.Lookup(other).Close()
	cfg.Seeds = []string{name, other + ":7001"}
	logs := capture(&cfg)
	tr := manual(t, cfg)
	for range 3 {
		tr.tend()
	}
	wantCluster(t, tr, memory.Lookup(name), "with a foreign seed")
	if !strings.Contains(logs.String(), "node refused") {
		t.Errorf("the foreign node's refusal is not logged:\n%s", logs.String())
	}
}

// The confirmation rule, driven directly: a view held by one node that
// would remove most of the healthy nodes removes nothing (and says so
// once) until a second node, or a seed, holds it.
func TestUnconfirmedMassRemovalWaits(t *testing.T) {
	_, cfg := cluster(t, 1, 0)
	logs := capture(&cfg)
	tr := manual(t, cfg)
	mk := func(addrs ...string) (out []*Node) {
		for _, a := range addrs {
			n := tr.newNode(a, "id-"+a)
			n.healthy.Store(true)
			tr.mu.Lock()
			tr.add(n)
			tr.mu.Unlock()
			out = append(out, n)
		}
		return out
	}
	table := func() []string {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return slices.Sorted(maps.Keys(tr.nodes))
	}
	view := func(holders []*Node, names ...*Node) *candidate {
		var peers []driver.Peer
		for _, n := range names {
			peers = append(peers, driver.Peer{ID: n.ID(), Addr: n.addr, Role: driver.RolePrimary})
		}
		pv := tr.newPeersView(peers)
		mv := newMapView(driver.PartitionMap{Partitions: 4, Shards: []driver.Shard{{Ranges: [][2]int{{0, 3}}, Primary: names[0].ID()}}})
		return &candidate{key: viewKey{pv.digest, mv.digest}, pv: pv, mv: mv, holders: holders}
	}
	ns := mk("h:1", "h:2", "h:3", "h:4")
	a, b := ns[0], ns[1]

	// a's view names a alone: removing 3 of 4 healthy nodes waits.
	lone := view([]*Node{a}, a)
	for range 2 {
		tr.removeExcluded(lone, []*candidate{lone}, nil)
	}
	if got := table(); len(got) != 4 {
		t.Fatalf("an unconfirmed view removed nodes: %v left", got)
	}
	if n := strings.Count(logs.String(), "would remove most nodes"); n != 1 {
		t.Errorf("the wait is logged %d times, want once:\n%s", n, logs.String())
	}
	if !tr.wantSeeds {
		t.Error("the seeds are not asked to confirm")
	}
	// Half is not most: a view naming a and b removes the other two.
	pair := view([]*Node{a}, a, b)
	tr.removeExcluded(pair, []*candidate{pair}, nil)
	if got := table(); !slices.Equal(got, []string{"h:1", "h:2"}) {
		t.Fatalf("removing half: %v left", got)
	}
	// Most, confirmed by a second holder.
	mk("h:5", "h:6", "h:7")
	both := view([]*Node{a, b}, a, b)
	tr.removeExcluded(both, []*candidate{both}, nil)
	if got := table(); !slices.Equal(got, []string{"h:1", "h:2"}) {
		t.Fatalf("confirmed by two holders: %v left", got)
	}
	// Most, confirmed by a seed holding it.
	seed := mk("h:8", "h:9")[0]
	byseed := view([]*Node{seed}, seed)
	tr.removeExcluded(byseed, []*candidate{byseed}, map[*Node]bool{seed: true})
	if got := table(); !slices.Equal(got, []string{"h:8"}) {
		t.Fatalf("confirmed by a seed: %v left", got)
	}
	if r := tr.Stats().NodesRemoved; r != 8 {
		t.Errorf("NodesRemoved %d, want 8", r)
	}
}
