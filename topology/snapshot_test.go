package topology

import (
	"sync"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

func testNode(addr string, role driver.Role, healthy bool) *Node {
	n := &Node{addr: addr}
	n.role.Store(int32(role))
	n.healthy.Store(healthy)
	return n
}

func TestPick(t *testing.T) {
	p1 := testNode("p1", driver.RolePrimary, true)
	r1 := testNode("r1", driver.RoleReplica, true)
	r2 := testNode("r2", driver.RoleReplica, true)
	p2 := testNode("p2", driver.RolePrimary, true)
	down := testNode("r3", driver.RoleReplica, false)
	s := &Snapshot{
		nodes:  []*Node{p1, p2, r1, r2, down},
		parts:  []int32{0, 0, 1, -1},
		shards: []shard{{primary: p1, replicas: []*Node{r1, r2}}, {primary: p2, replicas: []*Node{down}}},
	}
	write := driver.Route{Partition: 0, Intent: driver.Write}
	read := driver.Route{Partition: 0, Intent: driver.Read}
	read1 := driver.Route{Partition: 2, Intent: driver.Read}
	for _, tc := range []struct {
		name    string
		route   driver.Route
		pref    ReadPreference
		attempt int
		want    *Node
	}{
		{"write goes to the primary", write, PreferReplica, 0, p1},
		{"write retries stay on the primary", write, Replica, 3, p1},
		{"read with primary preference", read, Primary, 0, p1},
		{"read prefers a replica", read, PreferReplica, 0, r1},
		{"read moves to the next replica on retry", read, PreferReplica, 1, r2},
		{"and wraps around", read, Replica, 2, r1},
		{"no healthy replica: primary for prefer_replica", read1, PreferReplica, 0, p2},
		{"no healthy replica: replica only still tries one", read1, Replica, 0, down},
		{"unowned partition", driver.Route{Partition: 3}, Primary, 0, nil},
		{"out of range partition", driver.Route{Partition: 99}, Primary, 0, nil},
		{"keyless goes to a healthy primary", driver.Route{Partition: driver.AnyPartition}, Primary, 0, p1},
		{"keyless rotates on retry", driver.Route{Partition: driver.AnyPartition}, Primary, 1, p2},
	} {
		if got := s.Pick(tc.route, tc.pref, tc.attempt); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, addrOf(got), addrOf(tc.want))
		}
	}
	if s.Primary(2) != p2 || s.Primary(3) != nil || s.Owned(p1) != 2 || s.Owned(r1) != 0 {
		t.Error("Primary/Owned")
	}
	// Without a partition map (a standalone server) every statement goes
	// to a healthy node.
	solo := &Snapshot{nodes: []*Node{down, p1}}
	if got := solo.Pick(write, Primary, 0); got != p1 {
		t.Errorf("standalone pick %v", addrOf(got))
	}
	if !solo.HasHealthy() || (&Snapshot{nodes: []*Node{down}}).HasHealthy() {
		t.Error("HasHealthy")
	}
}

func TestBreaker(t *testing.T) {
	n := testNode("n", driver.RolePrimary, true)
	for range breakerLimit - 1 {
		n.Report(true)
	}
	if !n.Healthy() {
		t.Fatal("breaker opened early")
	}
	n.Report(false) // a success resets the count
	for range breakerLimit - 1 {
		n.Report(true)
	}
	if !n.Healthy() {
		t.Fatal("a success did not reset the count")
	}
	n.Report(true)
	if n.Healthy() || !n.BreakerOpen() {
		t.Fatal("breaker did not open")
	}
}

func addrOf(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	return n.addr
}

// Without a partition map, on a backend whose nodes report roles, writes
// go to the elected primary alone and reads follow the preference.
func TestPickByRole(t *testing.T) {
	p := testNode("p", driver.RolePrimary, true)
	r1 := testNode("r1", driver.RoleReplica, true)
	r2 := testNode("r2", driver.RoleReplica, false)
	u := testNode("u", driver.RoleUnknown, true)
	s := &Snapshot{nodes: []*Node{p, r1, r2, u}, roles: true, primary: p, standbys: []*Node{r1, r2}}
	anyRead := driver.Route{Partition: driver.AnyPartition, Intent: driver.Read}
	anyWrite := driver.Route{Partition: driver.AnyPartition, Intent: driver.Write}
	keyed := driver.Route{Partition: 7, Intent: driver.Write} // a router that computes a slot anyway
	for _, tc := range []struct {
		name  string
		route driver.Route
		pref  ReadPreference
		want  *Node
	}{
		{"write", anyWrite, Replica, p},
		{"keyed write", keyed, PreferReplica, p},
		{"read, primary", anyRead, Primary, p},
		{"read, prefer replica", anyRead, PreferReplica, r1},
		{"read, replica", anyRead, Replica, r1},
	} {
		for attempt := range 3 {
			if got := s.Pick(tc.route, tc.pref, attempt); got != tc.want {
				t.Errorf("%s, attempt %d: got %v, want %v", tc.name, attempt, addrOf(got), addrOf(tc.want))
			}
		}
	}
	if s.Primary(driver.AnyPartition) != p || s.Primary(3) != p {
		t.Error("Primary")
	}
	r1.healthy.Store(false)
	if got := s.Pick(anyRead, PreferReplica, 0); got != p {
		t.Errorf("no standby up, prefer replica: %v", addrOf(got))
	}
	if got := s.Pick(anyRead, Replica, 0); got != nil {
		t.Errorf("no standby up, replica: %v", addrOf(got))
	}
	p.demotions.Add(1) // a write found it demoted
	if got := s.Pick(anyWrite, Primary, 0); got != nil {
		t.Errorf("write to a demoted primary: %v", addrOf(got))
	}
	p.vouch(1)
	p.healthy.Store(false)
	if got := s.Pick(anyWrite, Primary, 0); got != nil {
		t.Errorf("write to a primary that is down: %v", addrOf(got))
	}
	none := &Snapshot{nodes: []*Node{r1, u}, roles: true, standbys: []*Node{r1}}
	if got := none.Pick(anyWrite, Primary, 0); got != nil {
		t.Errorf("no primary elected: %v", addrOf(got))
	}
}

// Owned counts every partition of a primary, across all the shards that
// name it (a patched map can), from any number of goroutines at once.
func TestOwned(t *testing.T) {
	p1 := testNode("p1", driver.RolePrimary, true)
	p2 := testNode("p2", driver.RolePrimary, true)
	r1 := testNode("r1", driver.RoleReplica, true)
	s := &Snapshot{
		nodes:  []*Node{p1, p2, r1},
		parts:  []int32{0, 1, 2, -1, 2, 0, 3},
		shards: []shard{{primary: p1, replicas: []*Node{r1}}, {primary: p2}, {primary: p1}, {}},
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got := [3]int{s.Owned(p1), s.Owned(p2), s.Owned(r1)}; got != [3]int{4, 1, 0} {
				t.Errorf("Owned p1, p2, r1 = %v, want [4 1 0]", got)
			}
		})
	}
	wg.Wait()
	if (&Snapshot{}).Owned(p1) != 0 {
		t.Error("a snapshot without a map gives a node partitions")
	}
}
