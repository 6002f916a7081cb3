package topology

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/puddlepool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster returns a fresh memory cluster name for the test and a tender
// config for it; the cluster is created by the first resolve.
func cluster(t *testing.T, shards, replicas int, seeds ...string) (string, Config) {
	t.Helper()
	name := strings.NewReplacer("/", "-").Replace(t.Name())
	params := map[string]string{"nodes": itoa(shards), "replicas": itoa(replicas)}
	if len(seeds) == 0 {
		seeds = []string{name}
	}
	for i, s := range seeds {
		seeds[i] = strings.ReplaceAll(s, "NAME", name)
	}
	c, err := memory.Driver{}.OpenConnector(driver.Config{Hosts: seeds, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cl := memory.Lookup(name); cl != nil {
			cl.Close()
		}
	})
	return name, Config{
		Seeds: seeds, Connector: c, Timeout: 100 * time.Millisecond, TendInterval: 30 * time.Millisecond,
		Pool: puddlepool.Config[driver.Conn]{MaxSize: 4, Close: func(c driver.Conn) error { return c.Close() }},
	}
}

func itoa(n int) string { return string(rune('0'+n/10%10)) + string(rune('0'+n%10)) }

func start(t *testing.T, cfg Config) *Tender {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

// eventually polls cond every millisecond until it holds or d passes, and
// returns how long it took.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func healthyAddrs(s *Snapshot) []string {
	var out []string
	for _, n := range s.Nodes() {
		if n.Healthy() {
			out = append(out, n.Addr())
		}
	}
	return out
}

func TestDiscoversWholeClusterFromOneGoodSeed(t *testing.T) {
	name, cfg := cluster(t, 3, 1, "NAME:7999", "NAME:7002", "NAME:7998")
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := tr.Snapshot()
	if got := healthyAddrs(s); len(got) != 6 {
		t.Fatalf("healthy nodes %v, want all 6 of %s", got, name)
	}
	if s.Partitions() != 16384 {
		t.Fatalf("partitions %d", s.Partitions())
	}
	for p := range 16384 {
		if s.Primary(p) == nil {
			t.Fatalf("partition %d has no primary", p)
		}
	}
	cl := memory.Lookup(name)
	if owner := cl.SlotOwner(0); s.Primary(0).Addr() != owner {
		t.Fatalf("slot 0 primary %s, cluster says %s", s.Primary(0).Addr(), owner)
	}
}

func TestConnectsOnceNodesAnswer(t *testing.T) {
	name, cfg := cluster(t, 1, 0)
	cl := memory.Lookup(name)
	if cl != nil {
		t.Fatal("cluster exists before the tender resolves it")
	}
	// Create the cluster, then take every node down before the tender starts.
	cfg.Connector.(driver.Resolver).Resolve(context.Background(), name)
	cl = memory.Lookup(name)
	for _, n := range cl.Nodes() {
		cl.Kill(n.Addr)
	}
	tr := start(t, cfg)
	err := tr.WaitFirst(context.Background())
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("first tend with every node down: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v", err)
	}
	cancel()
	for _, n := range cl.Nodes() {
		cl.Restart(n.Addr)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := tr.Wait(ctx); err != nil {
		t.Fatalf("after the nodes came up: %v", err)
	}
}

func TestKilledNodeDetectedRemovedAndReadded(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	cfg.Pool.MinSize = 2
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	victim := cl.Nodes()[4].Addr // a replica
	n := tr.Snapshot().Node(victim)
	cl.Kill(victim)
	d := eventually(t, time.Second, "killed node marked down", func() bool { return !n.Healthy() })
	t.Logf("killed node detected after %v (tend interval %v)", d, cfg.TendInterval)
	if d > cfg.TendInterval+50*time.Millisecond {
		t.Errorf("detection took %v, more than one tend interval (%v)", d, cfg.TendInterval)
	}
	eventually(t, time.Second, "dead node removed", func() bool { return tr.Snapshot().Node(victim) == nil })
	if tr.Stats().NodesRemoved < 1 {
		t.Error("NodesRemoved not counted")
	}
	cl.Restart(victim)
	eventually(t, time.Second, "recovered node re-added", func() bool {
		n := tr.Snapshot().Node(victim)
		return n != nil && n.Healthy()
	})
	re := tr.Snapshot().Node(victim)
	eventually(t, time.Second, "pool refilled to MinSize", func() bool { return re.Pool().Stat().Idle >= 2 })
}

func TestHungNodeDoesNotDelayOthers(t *testing.T) {
	name, cfg := cluster(t, 3, 0)
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	victim := cl.Nodes()[1].Addr
	n := tr.Snapshot().Node(victim)
	cl.Hang(victim, time.Hour)
	defer cl.Unhang(victim)
	d := eventually(t, 2*time.Second, "hung node marked down", func() bool { return !n.Healthy() })
	t.Logf("hung node detected after %v (interval %v + timeout %v)", d, cfg.TendInterval, cfg.Timeout)
	if d > cfg.TendInterval+cfg.Timeout+50*time.Millisecond {
		t.Errorf("detection took %v", d)
	}
	// Tends keep their pace: each is bounded by the probe timeout, not by
	// the hung node.
	before, t0 := tr.Stats().Tends, time.Now()
	eventually(t, 2*time.Second, "three more tends", func() bool { return tr.Stats().Tends >= before+3 })
	if el := time.Since(t0); el > 3*(cfg.TendInterval+cfg.Timeout)+100*time.Millisecond {
		t.Errorf("three tends took %v with a hung node", el)
	}
	for _, o := range tr.Snapshot().Nodes() {
		if o != n && !o.Healthy() {
			t.Errorf("node %s marked down by another node's hang", o.Addr())
		}
	}
}

// With nothing changing, every tend probes each node once and fetches
// nothing else. The tender is driven by hand so the count is exact.
func TestStableClusterCostsOneProbePerNode(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.tend() // discovers everything
	tr.tend() // settles generations
	cl := memory.Lookup(name)
	before := cl.Nodes()
	const tends = 5
	for range tends {
		tr.tend()
	}
	after := cl.Nodes()
	for i := range before {
		b, a := before[i], after[i]
		if a.Probes-b.Probes != tends || a.PeerFetches != b.PeerFetches || a.MapFetches != b.MapFetches {
			t.Errorf("node %s over %d tends: %d probes, %d peer fetches, %d map fetches; want %d, 0, 0",
				a.Addr, tends, a.Probes-b.Probes, a.PeerFetches-b.PeerFetches, a.MapFetches-b.MapFetches, tends)
		}
	}
	// A change makes the next tend fetch again, once.
	cl.Failover(cl.Nodes()[3].Addr)
	st := tr.Stats()
	tr.tend()
	if s := tr.Stats(); s.MapFetches != st.MapFetches+1 || s.PeerFetches != st.PeerFetches+1 {
		t.Errorf("after a failover: %d map and %d peer fetches, want 1 each", s.MapFetches-st.MapFetches, s.PeerFetches-st.PeerFetches)
	}
	tr.tend()
	if s := tr.Stats(); s.MapFetches != st.MapFetches+1 {
		t.Errorf("fetched again with no change")
	}
}

func TestFailoverUpdatesPrimary(t *testing.T) {
	name, cfg := cluster(t, 3, 1)
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	old := tr.Snapshot().Primary(0).Addr()
	var replica string
	for _, n := range cl.Nodes() {
		if n.Role == driver.RoleReplica && strings.HasSuffix(n.PrimaryID, "-n1") {
			replica = n.Addr
		}
	}
	cl.Failover(replica)
	d := eventually(t, time.Second, "promotion seen", func() bool { return tr.Snapshot().Primary(0).Addr() == replica })
	t.Logf("promotion of %s over %s seen after %v", replica, old, d)
	if r := tr.Snapshot().Node(replica).Role(); r != driver.RolePrimary {
		t.Errorf("role %v", r)
	}
}

func TestRefreshStormIsBounded(t *testing.T) {
	_, cfg := cluster(t, 1, 0)
	cfg.TendInterval = time.Hour // only on-demand refreshes tend
	cfg.RefreshCooldown = 20 * time.Millisecond
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	const run = 500 * time.Millisecond
	var wg sync.WaitGroup
	var calls [8]int
	deadline := time.Now().Add(run)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				tr.Refresh()
				calls[g]++
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range calls {
		total += c
	}
	s := tr.Stats()
	limit := int64(run/cfg.RefreshCooldown) + 1
	t.Logf("%d refresh requests in %v (%.0f/s): %d started, %d suppressed, %d tends",
		total, run, float64(total)/run.Seconds(), s.RefreshesTriggered, s.RefreshesSuppressed, s.Tends)
	if total < int(run.Seconds()*10000) {
		t.Fatalf("storm too weak to test: %d requests", total)
	}
	if s.RefreshesTriggered > limit {
		t.Errorf("%d refreshes started in %v, limit %d (one per cooldown)", s.RefreshesTriggered, run, limit)
	}
	if s.RefreshesTriggered+s.RefreshesSuppressed != int64(total) {
		t.Errorf("started %d + suppressed %d != %d requests", s.RefreshesTriggered, s.RefreshesSuppressed, total)
	}
}

func TestClusterNameMismatch(t *testing.T) {
	name, cfg := cluster(t, 1, 0)
	cfg.ClusterName = "prod"
	tr := start(t, cfg)
	err := tr.WaitFirst(context.Background())
	if !errors.Is(err, ErrClusterNameMismatch) || !strings.Contains(err.Error(), `"prod"`) || !strings.Contains(err.Error(), `"`+name+`"`) {
		t.Fatalf("got %v", err)
	}
	if len(tr.Snapshot().Nodes()) != 0 {
		t.Fatal("a node of another cluster entered the table")
	}
}

func TestRenamedClusterIsRefused(t *testing.T) {
	name, cfg := cluster(t, 1, 0)
	cfg.ClusterName = name
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := tr.Snapshot().Nodes()[0]
	memory.Lookup(name).Rename("someone-else")
	eventually(t, time.Second, "renamed node refused", func() bool { return !n.Healthy() })
}

func TestAddressChangeReplacesNode(t *testing.T) {
	name, cfg := cluster(t, 2, 0)
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	old := cl.Nodes()[1]
	moved := name + ":9001"
	if err := cl.ChangeAddr(old.Addr, moved); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "node seen at its new address", func() bool {
		s := tr.Snapshot()
		n := s.Node(moved)
		return n != nil && n.Healthy() && n.ID() == old.ID && s.Node(old.Addr) == nil
	})
}

func TestUseServicesAlternate(t *testing.T) {
	_, cfg := cluster(t, 2, 0)
	cfg.UseAlternate = true
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "alternate addresses used", func() bool {
		s := tr.Snapshot()
		for _, n := range s.Nodes() {
			if !strings.HasPrefix(n.Addr(), "alt-") {
				return false
			}
		}
		return len(s.Nodes()) == 2
	})
}

func TestRedirectPatchesPartition(t *testing.T) {
	name, cfg := cluster(t, 2, 0)
	cfg.TendInterval = time.Hour
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := tr.Snapshot()
	from := s.Primary(0)
	var to *Node
	for _, n := range s.Nodes() {
		if n != from {
			to = n
		}
	}
	got := tr.Redirect(0, to.Addr(), false)
	if got != to || tr.Snapshot().Primary(0) != to || tr.Snapshot().Primary(1) != from {
		t.Fatalf("MOVED did not patch partition 0 only")
	}
	// ASK leaves the map alone.
	tr.Redirect(1, to.Addr(), true)
	if tr.Snapshot().Primary(1) != from {
		t.Fatal("ASK patched the map")
	}
	// A redirect to an unknown address adds the node for the next tend
	// to check.
	fresh := tr.Redirect(2, name+":7999", false)
	if tr.Snapshot().Node(name+":7999") != fresh || tr.Stats().Patches != 2 {
		t.Fatalf("redirect to a new address: %+v", tr.Stats())
	}
}

func TestCloseStopsEverything(t *testing.T) {
	_, cfg := cluster(t, 2, 1)
	cfg.Pool.MinSize = 1
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	tr.Close()   // idempotent
	tr.Refresh() // harmless after Close
	for _, n := range tr.Snapshot().Nodes() {
		if _, err := n.Pool().Acquire(context.Background()); err == nil {
			t.Fatalf("pool of %s still hands out connections after Close", n.Addr())
		}
	}
	goleak.VerifyNone(t)
}

// A dead primary that the partition map still names stays in the table,
// down: operations on its partitions find it (and wait for it, naming it)
// instead of finding no node. Once the cluster fails it over, it goes.
func TestDeadPrimaryStaysUntilFailedOver(t *testing.T) {
	name, cfg := cluster(t, 2, 1)
	tr := start(t, cfg)
	if err := tr.WaitFirst(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	slot := 0
	victim := cl.SlotOwner(slot)
	cl.Kill(victim)
	// Well past FailLimit probes.
	time.Sleep(time.Duration(cfg.FailLimit+3)*(cfg.TendInterval+cfg.Timeout) + 100*time.Millisecond)
	s := tr.Snapshot()
	n := s.Primary(slot)
	if n == nil || n.Addr() != victim || n.Healthy() {
		t.Fatalf("primary of slot %d after its node died: %v; want %s, down", slot, n, victim)
	}
	var replica string
	for _, ni := range cl.Nodes() {
		if ni.Role == driver.RoleReplica && ni.PrimaryID != "" && cl.SlotOwner(slot) == victim {
			if p, err := cl.Node(victim); err == nil && p.ID == ni.PrimaryID {
				replica = ni.Addr
			}
		}
	}
	if err := cl.Failover(replica); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "failed-over primary removed", func() bool {
		s := tr.Snapshot()
		p := s.Primary(slot)
		return s.Node(victim) == nil && p != nil && p.Healthy()
	})
}
