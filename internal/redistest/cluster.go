package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

// Cluster is a Redis Cluster of local processes started by [StartCluster].
type Cluster struct {
	Nodes []*Server // in start order; roles change with failovers

	tb     TB
	cli    string
	byPort map[int]*Server
}

// StartCluster starts primaries*(1+replicasPerPrimary) cluster-enabled
// servers (cluster-node-timeout 1500 ms, cluster-replica-validity-factor 0,
// repl-ping-replica-period 1, no persistence), creates the cluster with
// `redis-cli --cluster create ... --cluster-replicas N --cluster-yes`, and
// waits (see [Cluster.WaitReady]) until every node reports cluster_state:ok
// with all 16384 slots, all nodes agree on the slot map and every replica's
// replication link is up and it is listed in CLUSTER SLOTS. redis-cli requires primaries >= 3.
//
// opts apply to every node: [WithPassword], [WithACLUser], [WithTLS] (one CA
// and certificate shared by all nodes; bus and replication use TLS too) and
// [WithConfig] (e.g. "cluster-node-timeout 3000" to override the default).
func StartCluster(t TB, primaries, replicasPerPrimary int, opts ...Option) *Cluster {
	t.Helper()
	bin, cli := Require(t)
	if primaries < 3 || replicasPerPrimary < 0 {
		t.Fatalf("redistest: StartCluster(%d, %d): redis-cli needs at least 3 primaries and >= 0 replicas",
			primaries, replicasPerPrimary)
	}
	cfg := buildConfig(append(opts, withCluster()))
	if cfg.tls {
		if err := TLSSupported(bin); err != nil {
			skipOrFail(t, "redistest: TLS requested but unsupported: %v", err)
		}
		files, err := generateTLS(t.TempDir())
		if err != nil {
			t.Fatalf("redistest: generating TLS certificates: %v", err)
		}
		cfg.tlsFiles = files
	}
	start := time.Now()
	c := &Cluster{tb: t, cli: cli, byPort: map[int]*Server{}}
	n := primaries * (1 + replicasPerPrimary)
	for range n {
		s, err := startServer(t, bin, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, s)
		c.byPort[s.Port] = s
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Seeds()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerPrimary), "--cluster-yes")
	args = append(args, c.cliAuthArgs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create failed: %v\n%s", err, lastLines(string(out), 30))
	}
	created := time.Since(start)
	c.WaitReady(30 * time.Second)
	t.Logf("redistest: cluster of %d primaries + %d replicas each ready in %s (redis-cli create took %s)",
		primaries, replicasPerPrimary, time.Since(start).Round(time.Millisecond), created.Round(time.Millisecond))
	return c
}

// cliAuthArgs are the redis-cli flags for auth and TLS.
func (c *Cluster) cliAuthArgs() []string {
	s := c.Nodes[0]
	var args []string
	if s.User != "" {
		args = append(args, "--user", s.User)
	}
	if s.Password != "" {
		args = append(args, "--pass", s.Password, "--no-auth-warning")
	}
	if s.TLSConfig != nil {
		args = append(args, "--tls", "--cacert", s.CACertFile, "--cert", s.CertFile, "--key", s.KeyFile)
	}
	return args
}

// Seeds returns the "127.0.0.1:port" addresses of all nodes.
func (c *Cluster) Seeds() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id     string
	port   int
	flags  map[string]bool
	master string // "-" for primaries
	epoch  int64
	slots  [][2]int
}

func (n nodeLine) hasSlot(slot int) bool {
	for _, r := range n.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

func parseClusterNodes(text string) ([]nodeLine, error) {
	var nodes []nodeLine
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("redistest: malformed CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		_, portStr, _ := strings.Cut(addr, ":")
		port, _ := strconv.Atoi(portStr)
		epoch, _ := strconv.ParseInt(f[6], 10, 64)
		n := nodeLine{id: f[0], port: port, flags: map[string]bool{}, master: f[3], epoch: epoch}
		for _, fl := range strings.Split(f[2], ",") {
			n.flags[fl] = true
		}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") { // [slot->-id] / [slot-<-id]: migration state
				continue
			}
			lo, hi, isRange := strings.Cut(sl, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("redistest: malformed slot %q in CLUSTER NODES", sl)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func myself(nodes []nodeLine) (nodeLine, bool) {
	for _, n := range nodes {
		if n.flags["myself"] {
			return n, true
		}
	}
	return nodeLine{}, false
}

func (s *Server) clusterNodes(timeout time.Duration) ([]nodeLine, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	text, err := s.DoContext(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	return parseClusterNodes(text)
}

// slotMap renders who owns which slots and who replicates whom, to compare
// the views of different nodes.
func slotMap(nodes []nodeLine) string {
	var parts []string
	for _, n := range nodes {
		for _, r := range n.slots {
			parts = append(parts, fmt.Sprintf("%05d-%05d:%d", r[0], r[1], n.port))
		}
		if n.master != "-" {
			parts = append(parts, fmt.Sprintf("replica:%d->%s", n.port, n.master))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (c *Cluster) running() []*Server {
	var rs []*Server
	for _, s := range c.Nodes {
		if s.Running() {
			rs = append(rs, s)
		}
	}
	return rs
}

// notReady returns "" when the running nodes form a healthy cluster, else
// what is still being waited for, naming the node.
func (c *Cluster) notReady() string {
	running := c.running()
	if len(running) == 0 {
		return "no node is running"
	}
	var ref string
	var refNode *Server
	for _, s := range running {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		text, err := s.DoContext(ctx, "CLUSTER", "INFO")
		cancel()
		if err != nil {
			return fmt.Sprintf("node %s: CLUSTER INFO: %v", s.Addr, err)
		}
		info := parseInfo(text)
		if st := info["cluster_state"]; st != "ok" {
			return fmt.Sprintf("node %s: waiting for cluster_state:ok (is %q)", s.Addr, st)
		}
		for _, k := range []string{"cluster_slots_assigned", "cluster_slots_ok"} {
			if info[k] != strconv.Itoa(NumSlots) {
				return fmt.Sprintf("node %s: waiting for %s:%d (is %s)", s.Addr, k, NumSlots, info[k])
			}
		}
		nodes, err := s.clusterNodes(time.Second)
		if err != nil {
			return fmt.Sprintf("node %s: CLUSTER NODES: %v", s.Addr, err)
		}
		if len(nodes) != len(c.Nodes) {
			return fmt.Sprintf("node %s: waiting to know all %d nodes (knows %d)", s.Addr, len(c.Nodes), len(nodes))
		}
		me, _ := myself(nodes)
		for _, n := range nodes {
			peer := c.byPort[n.port]
			if peer == nil {
				return fmt.Sprintf("node %s: knows a foreign node %s on port %d", s.Addr, n.id, n.port)
			}
			if !peer.Running() {
				continue
			}
			for _, fl := range []string{"fail", "fail?", "handshake", "noaddr"} {
				if n.flags[fl] {
					return fmt.Sprintf("node %s: sees running node %s flagged %q", s.Addr, peer.Addr, fl)
				}
			}
		}
		view, why := c.slotsView(s, nodes)
		if why != "" {
			return why
		}
		m := slotMap(nodes) + " | " + view
		if refNode == nil {
			ref, refNode = m, s
		} else if m != ref {
			return fmt.Sprintf("nodes %s and %s: waiting to agree on the slot map\n  %s: %s\n  %s: %s",
				refNode.Addr, s.Addr, refNode.Addr, ref, s.Addr, m)
		}
		if me.master != "-" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			text, err := s.DoContext(ctx, "INFO", "replication")
			cancel()
			if err != nil {
				return fmt.Sprintf("node %s: INFO replication: %v", s.Addr, err)
			}
			masterRunning := false
			for _, n := range nodes {
				if n.id == me.master {
					masterRunning = c.byPort[n.port] != nil && c.byPort[n.port].Running()
				}
			}
			if st := parseInfo(text)["master_link_status"]; masterRunning && st != "up" {
				return fmt.Sprintf("node %s: waiting for the replication link to its primary (master_link_status:%s)", s.Addr, st)
			}
		}
	}
	return ""
}

// slotsView checks what clients see, CLUSTER SLOTS of s: every slot range
// must list exactly the running replicas of its primary (Redis omits a
// replica until its replication offset, learned by gossip, is non-zero).
// It returns the view rendered for comparison with other nodes.
func (c *Cluster) slotsView(s *Server, nodes []nodeLine) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	v, err := s.DoValue(ctx, "CLUSTER", "SLOTS")
	cancel()
	if err != nil {
		return "", fmt.Sprintf("node %s: CLUSTER SLOTS: %v", s.Addr, err)
	}
	portOf := map[string]int{}
	for _, n := range nodes {
		portOf[n.id] = n.port
	}
	want := map[int][]int{} // primary port -> running replica ports
	for _, n := range nodes {
		if n.master != "-" && !n.flags["fail"] && c.byPort[n.port] != nil && c.byPort[n.port].Running() {
			want[portOf[n.master]] = append(want[portOf[n.master]], n.port)
		}
	}
	var parts []string
	entries, _ := v.([]any)
	for _, e := range entries {
		r, _ := e.([]any)
		if len(r) < 3 {
			return "", fmt.Sprintf("node %s: malformed CLUSTER SLOTS entry %v", s.Addr, e)
		}
		lo, _ := r[0].(int64)
		hi, _ := r[1].(int64)
		var ports []int
		for _, nd := range r[2:] {
			if a, ok := nd.([]any); ok && len(a) >= 2 {
				p, _ := a[1].(int64)
				ports = append(ports, int(p))
			}
		}
		if len(ports) == 0 {
			return "", fmt.Sprintf("node %s: malformed CLUSTER SLOTS entry %v", s.Addr, e)
		}
		replicas := append([]int(nil), ports[1:]...)
		sort.Ints(replicas)
		exp := append([]int(nil), want[ports[0]]...)
		sort.Ints(exp)
		if fmt.Sprint(replicas) != fmt.Sprint(exp) {
			return "", fmt.Sprintf("node %s: CLUSTER SLOTS lists replicas %v for slots %d-%d of %d, waiting for %v",
				s.Addr, replicas, lo, hi, ports[0], exp)
		}
		parts = append(parts, fmt.Sprintf("%05d-%05d:%d%v", lo, hi, ports[0], replicas))
	}
	sort.Strings(parts)
	return strings.Join(parts, " "), ""
}

// WaitReady waits until all running nodes (not killed, not stopped) report
// cluster_state:ok with all slots assigned and ok, know all nodes, see no
// running node as failed, agree on the slot map, and every running replica of
// a running primary has its replication link up and is listed by CLUSTER
// SLOTS on every node. It fails the test after
// timeout with what it was still waiting for.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := c.notReady()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("redistest: cluster not ready after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// primaryFor: the running node that claims slot in its own CLUSTER NODES as
// a primary; with several claimants (a stale primary that came back), the
// one with the highest config epoch.
func (c *Cluster) primaryFor(slot int) (*Server, int64) {
	var best *Server
	bestEpoch := int64(-1)
	for _, s := range c.running() {
		nodes, err := s.clusterNodes(time.Second)
		if err != nil {
			continue
		}
		me, ok := myself(nodes)
		if ok && me.flags["master"] && me.hasSlot(slot) && me.epoch > bestEpoch {
			best, bestEpoch = s, me.epoch
		}
	}
	return best, bestEpoch
}

// PrimaryFor returns the primary serving slot: the running node that claims
// the slot itself (highest config epoch wins). It fails the test if none does.
func (c *Cluster) PrimaryFor(slot int) *Server {
	c.tb.Helper()
	if slot < 0 || slot >= NumSlots {
		c.tb.Fatalf("redistest: slot %d out of range", slot)
	}
	s, _ := c.primaryFor(slot)
	if s == nil {
		c.tb.Fatalf("redistest: no running node claims slot %d", slot)
	}
	return s
}

// Primaries returns the running primaries that own slots, in node order.
func (c *Cluster) Primaries() []*Server {
	c.tb.Helper()
	var ps []*Server
	for _, s := range c.running() {
		nodes, err := s.clusterNodes(time.Second)
		if err != nil {
			c.tb.Fatalf("redistest: %s: CLUSTER NODES: %v", s.Addr, err)
		}
		if me, _ := myself(nodes); me.flags["master"] && len(me.slots) > 0 {
			ps = append(ps, s)
		}
	}
	return ps
}

// ReplicasOf returns the running replicas of primary, in node order.
func (c *Cluster) ReplicasOf(primary *Server) []*Server {
	c.tb.Helper()
	id := primary.NodeID()
	var rs []*Server
	for _, s := range c.running() {
		nodes, err := s.clusterNodes(time.Second)
		if err != nil {
			c.tb.Fatalf("redistest: %s: CLUSTER NODES: %v", s.Addr, err)
		}
		if me, _ := myself(nodes); me.master == id {
			rs = append(rs, s)
		}
	}
	return rs
}

// Failover runs CLUSTER FAILOVER on replica (a coordinated manual failover),
// waits until it reports role master, then waits until the cluster is ready
// again (see [Cluster.WaitReady]).
func (c *Cluster) Failover(replica *Server) {
	c.tb.Helper()
	if role, err := replica.Role(); err != nil || role != "slave" {
		c.tb.Fatalf("redistest: Failover(%s): not a replica (role %q, err %v)", replica.Addr, role, err)
	}
	if _, err := replica.Do("CLUSTER", "FAILOVER"); err != nil {
		c.tb.Fatalf("redistest: %s: CLUSTER FAILOVER: %v", replica.Addr, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		role, err := replica.Role()
		if err == nil && role == "master" {
			break
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("redistest: Failover(%s): still not master after 15s (role %q, err %v); log:\n%s",
				replica.Addr, role, err, replica.logTail(15))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.WaitReady(15 * time.Second)
}

// KillPrimary SIGKILLs the primary serving slot and returns it. Follow with
// [Cluster.WaitPromoted] to wait for a replica to take over.
func (c *Cluster) KillPrimary(slot int) (killed *Server) {
	c.tb.Helper()
	p := c.PrimaryFor(slot)
	p.Kill()
	return p
}

// WaitPromoted waits until some running node claims slot as a primary in its
// own view and reports cluster_state:ok, i.e. until clients can be served
// again, and returns that node and the time at which this was first seen
// (polled every 25 ms). It fails the test after timeout. The rest of the
// cluster may still converge afterwards; use [Cluster.WaitReady] for that.
//
// Note that after KillPrimary the previous primary is not running and cannot
// be returned; after Stop it cannot either.
func (c *Cluster) WaitPromoted(slot int, timeout time.Duration) (*Server, time.Time) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s, _ := c.primaryFor(slot); s != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			text, err := s.DoContext(ctx, "CLUSTER", "INFO")
			cancel()
			if err == nil && parseInfo(text)["cluster_state"] == "ok" {
				return s, time.Now()
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("redistest: WaitPromoted(%d): no running primary with cluster_state:ok after %s", slot, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// MoveSlot migrates slot, with its keys, from its current primary to the
// primary `to`, following the manual resharding procedure: CLUSTER SETSLOT
// IMPORTING on the target, MIGRATING on the source, MIGRATE of the keys in
// batches of 100 (CLUSTER GETKEYSINSLOT), then CLUSTER SETSLOT NODE on the
// target, the source and all other primaries. It then waits until the
// cluster is ready (all nodes agree that `to` owns the slot).
func (c *Cluster) MoveSlot(slot int, to *Server) {
	c.tb.Helper()
	src := c.PrimaryFor(slot)
	if src == to {
		return
	}
	if role, err := to.Role(); err != nil || role != "master" {
		c.tb.Fatalf("redistest: MoveSlot(%d, %s): target is not a primary (role %q, err %v)", slot, to.Addr, role, err)
	}
	srcID, toID := src.NodeID(), to.NodeID()
	slotStr := strconv.Itoa(slot)
	to.MustDo("CLUSTER", "SETSLOT", slotStr, "IMPORTING", srcID)
	src.MustDo("CLUSTER", "SETSLOT", slotStr, "MIGRATING", toID)
	for {
		v, err := src.DoValue(context.Background(), "CLUSTER", "GETKEYSINSLOT", slotStr, "100")
		if err != nil {
			c.tb.Fatalf("redistest: %s: CLUSTER GETKEYSINSLOT %d: %v", src.Addr, slot, err)
		}
		keys, _ := v.([]any)
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port), "", "0", "5000"}
		switch {
		case src.User != "":
			args = append(args, "AUTH2", src.User, src.Password)
		case src.Password != "":
			args = append(args, "AUTH", src.Password)
		}
		args = append(args, "KEYS")
		for _, k := range keys {
			args = append(args, fmt.Sprint(k))
		}
		if _, err := src.Do(args...); err != nil {
			c.tb.Fatalf("redistest: %s: MIGRATE %d keys of slot %d to %s: %v", src.Addr, len(keys), slot, to.Addr, err)
		}
	}
	targets := []*Server{to, src}
	for _, p := range c.Primaries() {
		if p != to && p != src {
			targets = append(targets, p)
		}
	}
	for _, p := range targets {
		p.MustDo("CLUSTER", "SETSLOT", slotStr, "NODE", toID)
	}
	c.WaitReady(15 * time.Second)
}
