package redistest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func itoa(i int) string { return strconv.Itoa(i) }

func keyInSlot(slot int) string {
	for i := 0; ; i++ {
		if k := "key:" + itoa(i); Slot(k) == slot {
			return k
		}
	}
}

// slotsCovered checks CLUSTER SLOTS of s covers every slot exactly once.
func slotsCovered(t *testing.T, s *Server) {
	t.Helper()
	v, err := s.DoValue(context.Background(), "CLUSTER", "SLOTS")
	if err != nil {
		t.Fatalf("%s: CLUSTER SLOTS: %v", s.Addr, err)
	}
	var covered [NumSlots]int
	for _, e := range v.([]any) {
		r := e.([]any)
		lo, hi := r[0].(int64), r[1].(int64)
		if len(r) < 4 {
			t.Errorf("%s: range %d-%d has no replica: %v", s.Addr, lo, hi, r)
		}
		for i := lo; i <= hi; i++ {
			covered[i]++
		}
	}
	for i, n := range covered {
		if n != 1 {
			t.Fatalf("%s: slot %d covered %d times", s.Addr, i, n)
		}
	}
}

func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, 3, 1)
	t.Logf("StartCluster(3, 1) took %s", time.Since(start).Round(time.Millisecond))

	if len(c.Nodes) != 6 || len(c.Seeds()) != 6 {
		t.Fatalf("%d nodes, %d seeds", len(c.Nodes), len(c.Seeds()))
	}
	for _, s := range c.Nodes {
		info := parseInfo(s.MustDo("CLUSTER", "INFO"))
		if info["cluster_state"] != "ok" || info["cluster_slots_assigned"] != "16384" || info["cluster_known_nodes"] != "6" {
			t.Fatalf("%s: CLUSTER INFO %v", s.Addr, info)
		}
	}
	slotsCovered(t, c.Nodes[0])
	primaries := c.Primaries()
	if len(primaries) != 3 {
		t.Fatalf("%d primaries", len(primaries))
	}
	for _, p := range primaries {
		if rs := c.ReplicasOf(p); len(rs) != 1 {
			t.Fatalf("primary %s has %d replicas", p.Addr, len(rs))
		}
	}

	// Slot agrees with the server, and PrimaryFor routes correctly.
	for _, key := range []string{"foo", "bar", "{user:1}:name", "x"} {
		want, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", key)
		if err != nil || want != itoa(Slot(key)) {
			t.Fatalf("CLUSTER KEYSLOT %q = %s, %v; Slot = %d", key, want, err, Slot(key))
		}
		p := c.PrimaryFor(Slot(key))
		if _, err := p.Do("SET", key, "v"); err != nil {
			t.Fatalf("SET %q on PrimaryFor(%d) = %s: %v", key, Slot(key), p.Addr, err)
		}
	}

	t.Run("MoveSlot", func(t *testing.T) {
		const tag = "{move}"
		slot := Slot(tag)
		src := c.PrimaryFor(slot)
		var to *Server
		for _, p := range c.Primaries() {
			if p != src {
				to = p
				break
			}
		}
		const n = 250 // several MIGRATE batches
		for i := range n {
			src.MustDo("SET", fmt.Sprintf("%s:%d", tag, i), itoa(i))
		}
		start := time.Now()
		c.MoveSlot(slot, to)
		t.Logf("MoveSlot of %d keys took %s", n, time.Since(start).Round(time.Millisecond))
		if got := c.PrimaryFor(slot); got != to {
			t.Fatalf("PrimaryFor(%d) = %s, want %s", slot, got.Addr, to.Addr)
		}
		if got := to.MustDo("CLUSTER", "COUNTKEYSINSLOT", itoa(slot)); got != itoa(n) {
			t.Fatalf("target has %s keys in slot %d, want %d", got, slot, n)
		}
		if got := to.MustDo("GET", tag+":7"); got != "7" {
			t.Fatalf("GET on target = %q", got)
		}
		var re RedisError
		if _, err := src.Do("GET", tag+":7"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "MOVED "+itoa(slot)+" "+to.Addr) {
			t.Fatalf("GET on source: err = %v, want MOVED to %s", err, to.Addr)
		}
		for _, s := range c.Nodes {
			slotsCovered(t, s)
		}
	})

	t.Run("Failover", func(t *testing.T) {
		p := c.PrimaryFor(0)
		r := c.ReplicasOf(p)[0]
		start := time.Now()
		c.Failover(r)
		t.Logf("manual Failover took %s (until role master and cluster ready)", time.Since(start).Round(time.Millisecond))
		if got := c.PrimaryFor(0); got != r {
			t.Fatalf("PrimaryFor(0) = %s, want the promoted %s", got.Addr, r.Addr)
		}
		if role, err := p.Role(); err != nil || role != "slave" {
			t.Fatalf("old primary role = %q, %v; want slave", role, err)
		}
		if rs := c.ReplicasOf(r); len(rs) != 1 || rs[0] != p {
			t.Fatalf("replicas of the new primary: %v", rs)
		}
	})
}

func TestClusterKillPrimary(t *testing.T) {
	c := StartCluster(t, 3, 1, WithPassword("pw"))
	const slot = 5000
	old := c.PrimaryFor(slot)
	oldID := old.NodeID()
	replica := c.ReplicasOf(old)[0]
	killed := c.KillPrimary(slot)
	killedAt := time.Now()
	if killed != old || killed.Running() {
		t.Fatalf("KillPrimary killed %s (running %v), want %s", killed.Addr, killed.Running(), old.Addr)
	}
	promoted, at := c.WaitPromoted(slot, 20*time.Second)
	t.Logf("promotion after SIGKILL became visible after %s (cluster-node-timeout 1500ms)", at.Sub(killedAt).Round(time.Millisecond))
	if promoted != replica {
		t.Fatalf("promoted %s, want the replica %s", promoted.Addr, replica.Addr)
	}
	key := keyInSlot(slot)
	if _, err := promoted.Do("SET", key, "x"); err != nil {
		t.Fatalf("write to the promoted primary: %v", err)
	}
	c.WaitReady(15 * time.Second)

	// The killed primary comes back with its node ID and rejoins as a replica.
	killed.Restart()
	if id := killed.NodeID(); id != oldID {
		t.Fatalf("node ID after restart = %s, want %s", id, oldID)
	}
	c.WaitReady(20 * time.Second)
	if role, err := killed.Role(); err != nil || role != "slave" {
		t.Fatalf("restarted old primary: role %q, %v; want slave", role, err)
	}
	if got := c.PrimaryFor(slot); got != promoted {
		t.Fatalf("PrimaryFor(%d) = %s after rejoin, want %s", slot, got.Addr, promoted.Addr)
	}

	// A hung primary (SIGSTOP) is failed over too; after SIGCONT it rejoins
	// as a replica.
	promoted.Stop()
	stoppedAt := time.Now()
	second, at := c.WaitPromoted(slot, 20*time.Second)
	t.Logf("promotion after SIGSTOP became visible after %s", at.Sub(stoppedAt).Round(time.Millisecond))
	if second != killed {
		t.Fatalf("promoted %s, want %s", second.Addr, killed.Addr)
	}
	promoted.Cont()
	c.WaitReady(20 * time.Second)
	if role, err := promoted.Role(); err != nil || role != "slave" {
		t.Fatalf("resumed primary: role %q, %v; want slave", role, err)
	}
}

// TestClusterTLSACL: bus, replication, MIGRATE and redis-cli over TLS, with
// an ACL user (default user disabled).
func TestClusterTLSACL(t *testing.T) {
	c := StartCluster(t, 3, 1, WithTLS(), WithACLUser("tendril", "t0ps3cret"))
	for _, s := range c.Nodes {
		if s.TLSConfig == nil || s.User != "tendril" {
			t.Fatalf("%s: TLS %v, user %q", s.Addr, s.TLSConfig != nil, s.User)
		}
		if got := s.MustDo("CONFIG", "GET", "tls-cluster"); got != "tls-cluster\nyes" {
			t.Fatalf("CONFIG GET tls-cluster = %q", got)
		}
		if got := s.MustDo("ACL", "WHOAMI"); got != "tendril" {
			t.Fatalf("WHOAMI = %q", got)
		}
		if _, err := (endpoint{addr: s.Addr, tls: s.TLSConfig}).do(context.Background(), "PING"); err == nil ||
			!strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("PING without auth: %v, want NOAUTH", err)
		}
	}
	slotsCovered(t, c.Nodes[0])
	key := keyInSlot(100)
	src := c.PrimaryFor(100)
	src.MustDo("SET", key, "tls")
	var to *Server
	for _, p := range c.Primaries() {
		if p != src {
			to = p
			break
		}
	}
	c.MoveSlot(100, to)
	if got := to.MustDo("GET", key); got != "tls" {
		t.Fatalf("GET after MoveSlot over TLS = %q", got)
	}
}

// Scale out and back in as an operator does: add an empty primary, move
// slots to it, drain it, delete it. The deleted node keeps running alone,
// and the cluster serves every slot, keys intact.
func TestAddReshardDrainDelNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and reshards it")
	}
	c := StartCluster(t, 3, 0)
	key := keyInSlot(0)
	c.PrimaryFor(0).MustDo("SET", key, "v")

	start := time.Now()
	s := c.AddNode()
	if len(c.Nodes) != 4 || c.slotsOf(s) != 0 {
		t.Fatalf("after AddNode: %d nodes, %d slots on the new one", len(c.Nodes), c.slotsOf(s))
	}
	added := time.Since(start)
	c.Reshard(c.PrimaryFor(0), s, 100)
	if c.slotsOf(s) != 100 || c.PrimaryFor(0) != s {
		t.Fatalf("after Reshard: %d slots on the new node, slot 0 on %s", c.slotsOf(s), c.PrimaryFor(0).Addr)
	}
	if v, err := s.Do("GET", key); err != nil || v != "v" {
		t.Fatalf("key moved with its slot: %q %v", v, err)
	}
	resharded := time.Since(start)
	c.Drain(s)
	if v, err := c.PrimaryFor(0).Do("GET", key); err != nil || v != "v" {
		t.Fatalf("key after Drain: %q %v", v, err)
	}
	c.DelNode(s)
	if len(c.Nodes) != 3 || slices.Contains(c.Nodes, s) {
		t.Fatalf("after DelNode: %d nodes", len(c.Nodes))
	}
	t.Logf("add-node %s, reshard of 100 slots %s, drain and del-node %s",
		added.Round(time.Millisecond), (resharded - added).Round(time.Millisecond), (time.Since(start) - resharded).Round(time.Millisecond))
	nodes, err := s.clusterNodes(time.Second)
	if err != nil || len(nodes) != 1 || !nodes[0].flags["myself"] || len(nodes[0].slots) != 0 {
		t.Fatalf("the deleted node's CLUSTER NODES: %+v, %v", nodes, err)
	}
	for _, o := range c.Nodes {
		if got, _ := o.clusterNodes(time.Second); len(got) != 3 {
			t.Errorf("%s still knows %d nodes", o.Addr, len(got))
		}
	}
}
