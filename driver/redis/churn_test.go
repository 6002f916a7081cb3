package redis_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// churnLoad runs checked GET/SET through the user API on many goroutines
// and counts what happened: every read must return the last value written
// to its key (or, after a write that failed, possibly that value).
type churnLoad struct {
	db   *sqlish.DB
	stop atomic.Bool
	wg   sync.WaitGroup

	ops, failed, wrong atomic.Int64
	mu                 sync.Mutex
	errs               map[string]int // failures by kind
	firstErr           map[string]string
	noServe            []time.Time // when "no node serves partition" was returned
	longest            time.Duration
	longestAt          time.Time
}

var digits = regexp.MustCompile(`[0-9]+`)

// kind names an error for counting: a known cause, or its text with
// numbers (ports, slots) masked.
func kind(err error) string {
	msg := err.Error()
	for _, k := range []string{"no node serves partition", "CLUSTERDOWN", "TRYAGAIN", "connection refused",
		"connection reset", "deadline exceeded", "pool", "EOF", "MOVED", "ASK"} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return digits.ReplaceAllString(msg, "#")
}

func startChurnLoad(db *sqlish.DB, goroutines, keys int) *churnLoad {
	l := &churnLoad{db: db, errs: map[string]int{}, firstErr: map[string]string{}}
	for g := range goroutines {
		l.wg.Add(1)
		go l.run(g, keys)
	}
	return l
}

func (l *churnLoad) fail(err error, streak *time.Time) {
	l.failed.Add(1)
	k := kind(err)
	now := time.Now()
	l.mu.Lock()
	l.errs[k]++
	if _, ok := l.firstErr[k]; !ok {
		l.firstErr[k] = err.Error()
	}
	if k == "no node serves partition" {
		l.noServe = append(l.noServe, now)
	}
	l.mu.Unlock()
	if streak.IsZero() {
		*streak = now
	}
}

func (l *churnLoad) ok(streak *time.Time) {
	if streak.IsZero() {
		return
	}
	d := time.Since(*streak)
	l.mu.Lock()
	if d > l.longest {
		l.longest, l.longestAt = d, *streak
	}
	l.mu.Unlock()
	*streak = time.Time{}
}

func (l *churnLoad) run(g, keys int) {
	defer l.wg.Done()
	ctx := context.Background()
	want := make([]string, keys)  // last value acknowledged
	maybe := make([]string, keys) // value of a write that failed: it may have landed
	var streak time.Time          // start of the current run of failures
	defer l.ok(&streak)           // an outage still going on counts too
	for i := 0; !l.stop.Load(); i++ {
		k := i % keys
		key := fmt.Sprintf("churn:%d:%d", g, k)
		v := fmt.Sprint(i)
		l.ops.Add(1)
		if _, err := l.db.Exec(ctx, "SET ? ?", key, v); err != nil {
			maybe[k] = v
			l.fail(fmt.Errorf("SET: %w", err), &streak)
			continue
		}
		l.ok(&streak)
		want[k], maybe[k] = v, ""
		l.ops.Add(1)
		var got string
		if err := l.db.QueryRow(ctx, "GET ?", key).Scan(&got); err != nil {
			l.fail(fmt.Errorf("GET: %w", err), &streak)
			continue
		}
		l.ok(&streak)
		if got != want[k] && got != maybe[k] {
			l.wrong.Add(1)
		}
	}
}

func (l *churnLoad) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

// noServeSince counts "no node serves partition" errors returned after t.
func (l *churnLoad) noServeSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.noServe {
		if at.After(t) {
			n++
		}
	}
	return n
}

func nodeAddrs(db *sqlish.DB) []string {
	var out []string
	for _, n := range db.Nodes() {
		out = append(out, n.Addr)
	}
	slices.Sort(out)
	return out
}

func hasHealthyNode(db *sqlish.DB, addr string) bool {
	return slices.ContainsFunc(db.Nodes(), func(n sqlish.Node) bool { return n.Addr == addr && n.Healthy })
}

// waitNodes waits until the client's table is exactly the cluster's nodes.
func waitNodes(t *testing.T, db *sqlish.DB, c *redistest.Cluster, within time.Duration) {
	t.Helper()
	want := slices.Sorted(slices.Values(c.Seeds()))
	deadline := time.Now().Add(within)
	for !slices.Equal(nodeAddrs(db), want) || !slices.ContainsFunc(db.Nodes(), func(n sqlish.Node) bool { return n.Healthy }) {
		if time.Now().After(deadline) {
			t.Fatalf("client nodes %v, cluster %v (after %v)", nodeAddrs(db), want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// delNode deletes s with redis-cli --cluster del-node and returns how many
// tends after its reset (the last step of del-node) the client dropped it
// (0 when it dropped it before: the others had forgotten it first), and
// the time del-node completed.
func delNode(t *testing.T, c *redistest.Cluster, db *sqlish.DB, s *redistest.Server) (int64, time.Time) {
	t.Helper()
	tends := func() int64 { return db.Stats().Topology.Tends }
	var resetTends, goneTends atomic.Int64
	resetTends.Store(-1)
	goneTends.Store(-1)
	var resetAt atomic.Int64
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			n := tends()
			if goneTends.Load() < 0 && !slices.Contains(nodeAddrs(db), s.Addr) {
				goneTends.Store(n)
			}
			if resetTends.Load() < 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				out, err := s.DoContext(ctx, "CLUSTER", "NODES")
				cancel()
				if err == nil && strings.Count(strings.TrimSpace(out), "\n") == 0 {
					resetTends.Store(n)
					resetAt.Store(time.Now().UnixNano())
				}
			}
			if resetTends.Load() >= 0 && goneTends.Load() >= 0 {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	c.DelNode(s)
	deadline := time.After(10 * time.Second)
	select {
	case <-watched:
	case <-deadline:
	}
	close(done)
	<-watched
	if resetTends.Load() < 0 {
		t.Fatalf("%s was not seen reset after del-node", s.Addr)
	}
	if goneTends.Load() < 0 {
		t.Fatalf("%s (deleted and reset) still in the client's nodes %d tends later: %v", s.Addr, tends()-resetTends.Load(), nodeAddrs(db))
	}
	return max(goneTends.Load()-resetTends.Load(), 0), time.Unix(0, resetAt.Load())
}

// Operator churn on a real Redis Cluster under load: ten cycles of adding
// an empty primary and deleting it (redis-cli --cluster add-node /
// del-node), then a scale-in that drains one of the three primaries (a
// seed) and deletes it; 32 goroutines run checked
// SET/GET through the user API meanwhile. del-node resets the deleted node
// (it then lists only itself and serves no slot) and leaves it running: the
// client must drop it within two tends and never follow its view, so no
// read is wrong, no "no node serves partition" error follows a del-node and
// no outage lasts longer than a few tends.
func TestClusterChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs add-node/del-node cycles on a real cluster")
	}
	const tend = 250 * time.Millisecond
	c := redistest.StartCluster(t, 3, 0)
	db, err := sqlish.Open("redis", "redis://"+strings.Join(c.Seeds(), ",")+"?tend_interval="+tend.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitNodes(t, db, c, 5*time.Second)
	start := time.Now()
	load := startChurnLoad(db, 32, 200)
	const cycles = 10

	var worstTends int64
	var lastDel time.Time
	var cyclesDone time.Duration
	// The figures are logged however the test ends.
	defer func() {
		load.halt()
		elapsed := time.Since(start)
		load.mu.Lock()
		defer load.mu.Unlock()
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(load.errs)) {
			kinds = append(kinds, fmt.Sprintf("%s: %d (e.g. %q)", k, load.errs[k], load.firstErr[k]))
		}
		st := db.Stats().Topology
		outage := "none"
		if load.longest > 0 {
			outage = fmt.Sprintf("%v (from +%v)", load.longest.Round(time.Millisecond), load.longestAt.Sub(start).Round(time.Millisecond))
		}
		t.Logf("churn: %d add/del-node cycles in %v, then drain + del-node of a primary, %v in all; %d operations (%.0f/s), %d failed, %d wrong reads; "+
			"longest outage %s; removed nodes left the client at most %d tends after their reset; "+
			"topology: %d tends, %d peer and %d map fetches, %d nodes added, %d removed",
			cycles, cyclesDone.Round(time.Millisecond), elapsed.Round(time.Millisecond),
			load.ops.Load(), float64(load.ops.Load())/elapsed.Seconds(), load.failed.Load(), load.wrong.Load(),
			outage, worstTends, st.Tends, st.PeerFetches, st.MapFetches, st.NodesAdded, st.NodesRemoved)
		if len(kinds) > 0 {
			t.Logf("failures by kind:\n  %s", strings.Join(kinds, "\n  "))
		}
		if w := load.wrong.Load(); w != 0 {
			t.Errorf("%d wrong reads", w)
		}
		// An outage is a run of failed operations on one goroutine. The
		// topology fix bounds it by a couple of tends; the slack is for the
		// retry policy's own waits.
		if limit := 4*tend + time.Second; load.longest > limit {
			t.Errorf("an outage lasted %v, want at most %v", load.longest, limit)
		}
	}()
	check := func(what string, s *redistest.Server) {
		t.Helper()
		tends, at := delNode(t, c, db, s)
		worstTends = max(worstTends, tends)
		lastDel = at
		if tends > 2 {
			t.Errorf("%s: the deleted node %s left the client's nodes %d tends after its reset, want at most 2", what, s.Addr, tends)
		}
	}
	for i := range cycles {
		s := c.AddNode()
		waitNodes(t, db, c, 5*time.Second)
		if n := load.noServeSince(lastDel); n > 0 && i > 0 {
			t.Errorf("cycle %d: %d \"no node serves partition\" errors after the previous del-node completed", i, n)
		}
		check(fmt.Sprintf("cycle %d", i+1), s)
		waitNodes(t, db, c, 5*time.Second)
	}
	cyclesDone = time.Since(start)

	// Scale in: drain one of the first primaries (a seed of the DSN, so
	// the deleted node stays among the seeds) and delete it.
	s := c.Nodes[0]
	c.Drain(s)
	check("scale-in", s)
	waitNodes(t, db, c, 5*time.Second)
	time.Sleep(4 * tend) // the deleted node must stay out
	waitNodes(t, db, c, 0)
	if n := load.noServeSince(lastDel); n > 0 {
		t.Errorf("%d \"no node serves partition\" errors after the last del-node completed", n)
	}
	if load.ops.Load() == 0 {
		t.Fatal("no operation ran")
	}
}
