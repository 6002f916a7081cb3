package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// Operator changes of a running cluster, as an operator makes them with
// redis-cli: adding an empty primary, moving slots, draining a primary and
// deleting a node. Each runs redis-cli --cluster and waits until the
// cluster is ready again (see [Cluster.WaitReady]). They change c.Nodes, so
// they must not run concurrently with other Cluster methods; clients may
// use the cluster meanwhile.

// cliTimeout bounds one redis-cli --cluster run.
const cliTimeout = 2 * time.Minute

// runCLI runs redis-cli --cluster args... with the cluster's auth and TLS
// flags and returns its output.
func (c *Cluster) runCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cli, append(append([]string{"--cluster"}, args...), c.cliAuthArgs()...)...)
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("redis-cli --cluster %s: %w\n%s", args[0], err, lastLines(string(out), 30))
	}
	return string(out), nil
}

// anyRunning returns a running node other than the excluded ones.
func (c *Cluster) anyRunning(except ...*Server) *Server {
	for _, s := range c.running() {
		if !slices.Contains(except, s) {
			return s
		}
	}
	c.tb.Fatalf("redistest: no running node outside %d excluded", len(except))
	return nil
}

// AddNode starts a new cluster-enabled server with the cluster's options,
// adds it as an empty primary (redis-cli --cluster add-node), appends it to
// c.Nodes and waits until every node knows it. It owns no slots: move some
// with [Cluster.Reshard] or [Cluster.MoveSlot].
func (c *Cluster) AddNode() *Server {
	c.tb.Helper()
	ref := c.Nodes[0]
	s, err := startServer(c.tb, ref.bin, ref.cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	if _, err := c.runCLI("add-node", s.Addr, c.anyRunning().Addr); err != nil {
		c.tb.Fatalf("redistest: AddNode(%s): %v", s.Addr, err)
	}
	c.Nodes = append(c.Nodes, s)
	c.byPort[s.Port] = s
	c.WaitReady(30 * time.Second)
	return s
}

// slotsOf returns how many slots s serves in its own view.
func (c *Cluster) slotsOf(s *Server) int {
	c.tb.Helper()
	nodes, err := s.clusterNodes(time.Second)
	if err != nil {
		c.tb.Fatalf("redistest: %s: CLUSTER NODES: %v", s.Addr, err)
	}
	me, _ := myself(nodes)
	n := 0
	for _, r := range me.slots {
		n += r[1] - r[0] + 1
	}
	return n
}

// Reshard moves n slots, keys and all, from the primary `from` to the
// primary `to` with redis-cli --cluster reshard (slot by slot: SETSLOT
// IMPORTING / MIGRATING, MIGRATE in batches, SETSLOT NODE), then waits
// until the cluster is ready. When redis-cli fails part way (it seldom
// does under load), its output is logged, `redis-cli --cluster fix` closes
// the slot left open and the remaining slots are moved, as an operator
// would; the test fails after three attempts.
func (c *Cluster) Reshard(from, to *Server, n int) {
	c.tb.Helper()
	want := c.slotsOf(to) + n
	for attempt := 1; n > 0; attempt++ {
		_, err := c.runCLI("reshard", to.Addr, "--cluster-from", from.NodeID(), "--cluster-to", to.NodeID(),
			"--cluster-slots", strconv.Itoa(n), "--cluster-yes", "--cluster-pipeline", "100")
		if err == nil {
			break
		}
		if attempt == 3 {
			c.tb.Fatalf("redistest: Reshard(%s -> %s, %d slots): %v", from.Addr, to.Addr, n, err)
		}
		c.tb.Logf("redistest: Reshard(%s -> %s, %d slots), attempt %d: %v", from.Addr, to.Addr, n, attempt, err)
		if out, err := c.runCLI("fix", to.Addr, "--cluster-yes"); err != nil {
			c.tb.Logf("redistest: redis-cli --cluster fix: %v", err)
		} else {
			c.tb.Logf("redistest: redis-cli --cluster fix:\n%s", lastLines(out, 10))
		}
		c.WaitReady(30 * time.Second)
		n = want - c.slotsOf(to)
	}
	c.WaitReady(30 * time.Second)
}

// Drain moves every slot of the primary s to the other primaries that
// serve slots, in equal shares (redis-cli --cluster reshard per target),
// leaving s an empty primary that [Cluster.DelNode] can delete.
func (c *Cluster) Drain(s *Server) {
	c.tb.Helper()
	var targets []*Server
	for _, p := range c.Primaries() {
		if p != s {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		c.tb.Fatalf("redistest: Drain(%s): no other primary serves slots", s.Addr)
	}
	total := c.slotsOf(s)
	for i, p := range targets {
		n := total / len(targets)
		if i == len(targets)-1 {
			n = c.slotsOf(s) // the remainder
		}
		c.Reshard(s, p, n)
	}
	if left := c.slotsOf(s); left != 0 {
		c.tb.Fatalf("redistest: Drain(%s): %d slots left", s.Addr, left)
	}
}

// DelNode deletes the node s, which must serve no slots (see
// [Cluster.Drain]), with redis-cli --cluster del-node: every other node
// FORGETs it, then it is reset (CLUSTER RESET SOFT). Like redis-cli, it
// leaves s running, alone: it lists only itself and owns no slots. s leaves
// c.Nodes; it is killed at cleanup, or earlier with [Server.Kill].
func (c *Cluster) DelNode(s *Server) {
	c.tb.Helper()
	if n := c.slotsOf(s); n != 0 {
		c.tb.Fatalf("redistest: DelNode(%s): it serves %d slots: drain it first", s.Addr, n)
	}
	if _, err := c.runCLI("del-node", c.anyRunning(s).Addr, s.NodeID()); err != nil {
		c.tb.Fatalf("redistest: DelNode(%s): %v", s.Addr, err)
	}
	c.Nodes = slices.DeleteFunc(c.Nodes, func(x *Server) bool { return x == s })
	delete(c.byPort, s.Port)
	c.WaitReady(30 * time.Second)
}
