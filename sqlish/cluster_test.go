package sqlish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

// openCluster opens a DB on a fresh simulated cluster.
func openCluster(t *testing.T, query string) (*sqlish.DB, *memory.Cluster) {
	t.Helper()
	db, name := open(t, query)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, memory.Lookup(name)
}

func nodeInfo(t *testing.T, cl *memory.Cluster, addr string) memory.NodeInfo {
	t.Helper()
	n, err := cl.Node(addr)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClusterRoundTripAndCrossNodeBatch(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=3&replicas=1")
	if n := len(db.Nodes()); n != 6 {
		t.Fatalf("%d nodes discovered, want 6", n)
	}
	owners := map[string]bool{}
	var b sqlish.Batch
	for i := range 1000 {
		k := fmt.Sprint("key:", i)
		owners[cl.SlotOwner(memory.KeySlot(k))] = true
		b.Queue("SET ? ?", k, i)
	}
	if len(owners) != 3 {
		t.Fatalf("keys spread over %d primaries", len(owners))
	}
	for i := range 1000 {
		b.Queue("GET ?", fmt.Sprint("key:", i))
	}
	br := db.SendBatch(ctx, &b)
	for i := range 1000 {
		if _, err := br.Exec(); err != nil {
			t.Fatalf("SET %d: %v", i, err)
		}
	}
	for i := range 1000 {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil || v != i {
			t.Fatalf("GET key:%d = %d, %v", i, v, err)
		}
	}
	// Every primary holds its own keys: the batch was split by node.
	keyspace, err := db.InfoAll(ctx, "keyspace")
	if err != nil {
		t.Fatal(err)
	}
	for addr := range owners {
		if !strings.Contains(keyspace[addr], "db0:keys=") {
			t.Errorf("primary %s holds none of the batch's keys: %q", addr, keyspace[addr])
		}
	}
	if st := db.Stats(); st.Topology.NodesAdded < 6 || len(st.Nodes) != 6 {
		t.Fatalf("stats %+v", st.Topology)
	}
	var primaries, slots int
	for _, n := range db.Nodes() {
		if n.Role == "primary" {
			primaries++
			slots += n.Partitions
		}
		if !n.Healthy {
			t.Errorf("node %v unhealthy", n)
		}
	}
	if primaries != 3 || slots != 16384 {
		t.Fatalf("%d primaries owning %d slots", primaries, slots)
	}
	// A multi-key command across slots is the server's error, typed.
	_, err = db.Exec(ctx, "MGET a b c d e")
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "CROSSSLOT" {
		t.Fatalf("cross-slot MGET: %v", err)
	}
	// Hash tags keep them together.
	if _, err := db.Exec(ctx, "MSET {u1}a 1 {u1}b 2"); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesAreExactlyOnePlusMaxRetries(t *testing.T) {
	ctx := context.Background()
	// The probe timeout (1s) keeps the tender from noticing the hang while
	// the attempts run (20ms each), and connections dialled before the hang
	// (a hung node accepts no new one) let every attempt reach the node: a
	// connection that timed out is closed, never reused.
	db, cl := openCluster(t, "nodes=1&socket_timeout=20ms&max_retries=2&sleep_between_retries=1ms&timeout=1s&min_conns_per_node=4")
	waitFor(t, 5*time.Second, "4 idle connections", func() bool { return db.Stats().Idle >= 4 })
	primary := cl.SlotOwner(0)
	if err := cl.Hang(primary, time.Hour); err != nil {
		t.Fatal(err)
	}
	defer cl.Unhang(primary)
	before := nodeInfo(t, cl, primary).Commands
	_, err := db.Exec(ctx, "SET x 1") // idempotent: retried
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SET on a hung node: %v", err)
	}
	if n := nodeInfo(t, cl, primary).Commands - before; n != 3 {
		t.Errorf("SET reached the node %d times, want 1 + max_retries = 3", n)
	}
	before = nodeInfo(t, cl, primary).Commands
	if _, err := db.Exec(ctx, "INCR x"); err == nil {
		t.Fatal("INCR on a hung node succeeded")
	}
	if n := nodeInfo(t, cl, primary).Commands - before; n != 1 {
		t.Errorf("INCR (not idempotent) reached the node %d times, want 1", n)
	}
}

func TestReadMovesToNextReplicaOnRetry(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=1&replicas=2&read_preference=replica&socket_timeout=30ms&timeout=1s")
	if _, err := db.Exec(ctx, "SET k v"); err != nil {
		t.Fatal(err)
	}
	var replicas []string
	for _, n := range cl.Nodes() {
		if n.Role == driver.RoleReplica {
			replicas = append(replicas, n.Addr)
		}
	}
	// Find which replica serves first, then hang it.
	before := map[string]int64{}
	for _, r := range replicas {
		before[r] = nodeInfo(t, cl, r).Commands
	}
	var v string
	if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil || v != "v" {
		t.Fatalf("GET from a replica: %q %v", v, err)
	}
	var first, second string
	for _, r := range replicas {
		if nodeInfo(t, cl, r).Commands > before[r] {
			first = r
		} else {
			second = r
		}
	}
	if first == "" || second == "" {
		t.Fatalf("replicas %v, read served by %q", replicas, first)
	}
	cl.Hang(first, time.Hour)
	defer cl.Unhang(first)
	b1, b2 := nodeInfo(t, cl, first).Commands, nodeInfo(t, cl, second).Commands
	if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil || v != "v" {
		t.Fatalf("GET with the first replica hung: %q %v", v, err)
	}
	if d1, d2 := nodeInfo(t, cl, first).Commands-b1, nodeInfo(t, cl, second).Commands-b2; d1 != 1 || d2 != 1 {
		t.Errorf("attempts: %d on the hung replica, %d on the next; want 1 and 1", d1, d2)
	}
}

func TestMovedAndAsk(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=2&tend_interval=1h")
	slot := memory.KeySlot("{m}k")
	var other string
	for _, n := range cl.Nodes() {
		if n.Addr != cl.SlotOwner(slot) && n.Role == driver.RolePrimary {
			other = n.Addr
		}
	}
	if _, err := db.Exec(ctx, "MSET {m}k 1 {m}j 2"); err != nil {
		t.Fatal(err)
	}
	// MOVED: the slot moved for good; the client follows and patches.
	if err := cl.MigrateSlot(slot, other); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow(ctx, "GET {m}k").Scan(&v); err != nil || v != "1" {
		t.Fatalf("GET after MOVED: %q %v", v, err)
	}
	if p := db.Stats().Topology.Patches; p != 1 {
		t.Errorf("%d map patches, want 1", p)
	}
	// ASK: the slot is half way back; a moved key is asked for at the
	// target, a key not moved yet is read at the source, and the map
	// keeps pointing at the source.
	back := cl.SlotOwner(memory.KeySlot("{x}"))
	if back == other {
		for _, n := range cl.Nodes() {
			if n.Addr != other && n.Role == driver.RolePrimary {
				back = n.Addr
			}
		}
	}
	if err := cl.BeginMigration(slot, back); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.MoveKeys(slot, 1); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"{m}k", "{m}j"} {
		if err := db.QueryRow(ctx, "GET ?", k).Scan(&v); err != nil {
			t.Fatalf("GET %s during migration: %v", k, err)
		}
	}
	if p := db.Stats().Topology.Patches; p != 1 {
		t.Errorf("ASK patched the map (%d patches)", p)
	}
	if err := cl.FinishMigration(slot); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, "GET {m}j").Scan(&v); err != nil || v != "2" {
		t.Fatalf("GET after the migration: %q %v", v, err)
	}
}

// After a primary fails over, writes for its slots reach the promoted
// replica within 500ms of the promotion, and no call outlives its
// total_timeout.
func TestFailoverRecovery(t *testing.T) {
	const total = 2 * time.Second
	db, cl := openCluster(t, "nodes=3&replicas=1&tend_interval=100ms&timeout=100ms&socket_timeout=100ms"+
		"&total_timeout=2s&max_retries=20&sleep_between_retries=5ms")
	key := "{f}key"
	slot := memory.KeySlot(key)
	primary := cl.SlotOwner(slot)
	var replica string
	for _, n := range cl.Nodes() {
		if n.Role == driver.RoleReplica && n.PrimaryID == nodeInfo(t, cl, primary).ID {
			replica = n.Addr
		}
	}
	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		promoted  atomic.Int64 // unix nanos of the promotion
		firstOK   atomic.Int64 // first success after it
		longest   atomic.Int64
		failed    atomic.Int64
		succeeded atomic.Int64
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				start := time.Now()
				_, err := db.Exec(context.Background(), "SET ? ?", fmt.Sprintf("%s:%d:%d", key, g, i), i)
				d := time.Since(start)
				for {
					l := longest.Load()
					if int64(d) <= l || longest.CompareAndSwap(l, int64(d)) {
						break
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				succeeded.Add(1)
				if p := promoted.Load(); p != 0 && start.UnixNano() >= p {
					firstOK.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	cl.Kill(primary)
	time.Sleep(300 * time.Millisecond) // the cluster notices and elects
	promoted.Store(time.Now().UnixNano())
	if err := cl.Failover(replica); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for firstOK.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if firstOK.Load() == 0 {
		t.Fatal("no write succeeded after the promotion")
	}
	rec := time.Duration(firstOK.Load() - promoted.Load())
	t.Logf("first write on the promoted replica %v after the promotion; %d ok, %d failed, longest call %v",
		rec, succeeded.Load(), failed.Load(), time.Duration(longest.Load()))
	if rec > 500*time.Millisecond {
		t.Errorf("recovery took %v, want at most 500ms", rec)
	}
	if l := time.Duration(longest.Load()); l > total+100*time.Millisecond {
		t.Errorf("a call took %v, total_timeout is %v", l, total)
	}
}

func TestKilledNodeRejoinsThroughDB(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=2&replicas=1&tend_interval=20ms&timeout=50ms&min_conns_per_node=2")
	victim := cl.Nodes()[3].Addr
	cl.Kill(victim)
	waitFor(t, time.Second, "node dropped", func() bool { return !hasNode(db, victim, true) })
	cl.Restart(victim)
	waitFor(t, time.Second, "node re-added", func() bool { return hasNode(db, victim, true) })
	waitFor(t, time.Second, "pool refilled", func() bool {
		for _, n := range db.Stats().Nodes {
			if n.Addr == victim {
				return n.Pool.Idle >= 2
			}
		}
		return false
	})
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func hasNode(db *sqlish.DB, addr string, healthy bool) bool {
	for _, n := range db.Nodes() {
		if n.Addr == addr && n.Healthy == healthy {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenBeforeClusterAnswers(t *testing.T) {
	ctx := context.Background()
	db, cl := openCluster(t, "nodes=1&tend_interval=20ms")
	for _, n := range cl.Nodes() {
		cl.Kill(n.Addr)
	}
	waitFor(t, time.Second, "cluster down", func() bool { return !db.IsConnected() })
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := db.Exec(tctx, "SET a 1")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("write with the cluster down: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		for _, n := range cl.Nodes() {
			cl.Restart(n.Addr)
		}
	}()
	if _, err := db.Exec(ctx, "SET a 1"); err != nil {
		t.Fatalf("write once the cluster answers: %v", err)
	}
}
