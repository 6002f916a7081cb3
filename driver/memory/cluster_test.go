package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
)

// testName returns a cluster name private to the test.
func testName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "#", "-").Replace(t.Name())
}

// newTestCluster creates a cluster of the given shape, named after the
// test, and returns a connector for it.
func newTestCluster(t *testing.T, nodes, replicas int, replicaReads bool) (driver.Connector, *Cluster, string) {
	t.Helper()
	name := testName(t)
	c, err := Driver{}.OpenConnector(driver.Config{
		Hosts:        []string{name},
		Params:       map[string]string{"nodes": fmt.Sprint(nodes), "replicas": fmt.Sprint(replicas)},
		ReplicaReads: replicaReads,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(driver.Resolver).Resolve(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	cl := Lookup(name)
	if cl == nil {
		t.Fatal("Resolve of a seed did not create the cluster")
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl, name
}

func dial(t *testing.T, c driver.Connector, addr string) driver.Conn {
	t.Helper()
	cn, err := c.Connect(context.Background(), addr)
	if err != nil {
		t.Fatalf("Connect(%s): %v", addr, err)
	}
	t.Cleanup(func() { cn.Close() })
	return cn
}

func addr(name string, k int) string { return fmt.Sprintf("%s:%d", name, 7000+k) }

// keyOn returns a key (prefix + a number) whose slot shard idx serves.
func keyOn(t *testing.T, cl *Cluster, prefix string, idx int) string {
	t.Helper()
	for i := range 100000 {
		k := fmt.Sprint(prefix, i)
		if cl.owner[rediscmd.Slot([]byte(k))] == int32(idx) {
			return k
		}
	}
	t.Fatalf("no key for shard %d", idx)
	return ""
}

func get(t *testing.T, ctx context.Context, cn driver.Conn, key string) (driver.Value, error) {
	t.Helper()
	rows, err := cn.Query(ctx, "GET ?", []driver.Value{key})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err == io.EOF {
		return nil, nil
	}
	if b, ok := dest[0].([]byte); ok {
		return string(b), nil
	}
	return dest[0], nil
}

// wantRedirect checks err is a MOVED (or ASK) to addr for slot.
func wantRedirect(t *testing.T, err error, ask bool, slot int, to string) {
	t.Helper()
	var re *driver.RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("want a redirect to %s, got %v", to, err)
	}
	code := "MOVED"
	if ask {
		code = "ASK"
	}
	var se *driver.ServerError
	if re.Ask != ask || re.Partition != slot || re.Addr != to || !errors.As(err, &se) ||
		se.Code != code || se.Msg != fmt.Sprintf("%s %d %s", code, slot, to) {
		t.Fatalf("redirect %+v (%v), want %s %d %s", re, err, code, slot, to)
	}
}

func wantServerError(t *testing.T, err error, code string) {
	t.Helper()
	var se *driver.ServerError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("want a %s error, got %v", code, err)
	}
	var re *driver.RedirectError
	if errors.As(err, &re) {
		t.Fatalf("%s is not a redirect: %v", code, err)
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		key    string
		reason string
	}{
		{map[string]string{"nodes": "3", "replicas": "2"}, "", ""},
		{map[string]string{"nodes": "1000", "replicas": "15"}, "", ""},
		{map[string]string{"nodes": "0"}, "nodes", "not a positive integer"},
		{map[string]string{"nodes": "x"}, "nodes", "not a positive integer"},
		{map[string]string{"nodes": "1001"}, "nodes", "at most 1000"},
		{map[string]string{"replicas": "-1"}, "replicas", "not a non-negative integer"},
		{map[string]string{"replicas": "1.5"}, "replicas", "not a non-negative integer"},
		{map[string]string{"replicas": "16"}, "replicas", "at most 15"},
		{map[string]string{"nodes": "2", "shards": "2"}, "shards", "unknown key"},
	} {
		_, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{"params-never-created"}, Params: tc.params})
		if tc.key == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.params, err)
			}
			continue
		}
		var pe *driver.ParamError
		if !errors.As(err, &pe) || pe.Key != tc.key || pe.Reason != tc.reason {
			t.Errorf("%v: got %v, want %s: %s", tc.params, err, tc.key, tc.reason)
			continue
		}
		if tc.reason == "unknown key" && !slices.Equal(pe.Valid, []string{"nodes", "replicas"}) {
			t.Errorf("valid keys %v", pe.Valid)
		}
	}
	if Lookup("params-never-created") != nil {
		t.Fatal("OpenConnector created a cluster")
	}
}

func TestJoinWithOtherShape(t *testing.T) {
	ctx := context.Background()
	name := testName(t)
	// A connector opened before the cluster exists finds out at Connect.
	late, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{name}, Params: map[string]string{"nodes": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	_, cl, _ := newTestCluster(t, 3, 1, false)
	for _, tc := range []struct {
		params map[string]string
		key    string
	}{
		{nil, ""},
		{map[string]string{"nodes": "3"}, ""},
		{map[string]string{"nodes": "3", "replicas": "1"}, ""},
		{map[string]string{"replicas": "1"}, ""},
		{map[string]string{"nodes": "2"}, "nodes"},
		{map[string]string{"nodes": "3", "replicas": "0"}, "replicas"},
	} {
		_, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{name}, Params: tc.params})
		var pe *driver.ParamError
		if tc.key == "" && err != nil || tc.key != "" && (!errors.As(err, &pe) || pe.Key != tc.key) {
			t.Errorf("%v: %v, want key %q", tc.params, err, tc.key)
		}
	}
	var pe *driver.ParamError
	if _, err := late.Connect(ctx, name); !errors.As(err, &pe) || pe.Key != "nodes" {
		t.Fatalf("Connect with another shape: %v", err)
	}
	if _, err := late.(driver.Resolver).Resolve(ctx, name); !errors.As(err, &pe) {
		t.Fatalf("Resolve with another shape: %v", err)
	}
	if len(cl.Nodes()) != 6 {
		t.Fatal("the cluster changed shape")
	}
}

func TestKeySlotAndOwner(t *testing.T) {
	_, cl, name := newTestCluster(t, 3, 0, false)
	for _, tc := range []struct {
		key   string
		slot  int
		owner int
	}{
		{"foo", 12182, 3},
		{"{user1000}.following", 3443, 1},
		{"{user1000}.followers", 3443, 1},
		{"bar", 5061, 1},
		{"hello", 866, 1},
		{"a{}b", int(rediscmd.Slot([]byte("a{}b"))), 0},
	} {
		if got := KeySlot(tc.key); got != tc.slot {
			t.Errorf("KeySlot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
		if tc.owner > 0 && cl.SlotOwner(tc.slot) != addr(name, tc.owner) {
			t.Errorf("SlotOwner(%d) = %s", tc.slot, cl.SlotOwner(tc.slot))
		}
	}
}

func TestSplitSlots(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want [][2]int
	}{
		{1, [][2]int{{0, 16383}}},
		{2, [][2]int{{0, 8191}, {8192, 16383}}},
		{3, [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}},
		{5, [][2]int{{0, 3276}, {3277, 6553}, {6554, 9829}, {9830, 13106}, {13107, 16383}}},
	} {
		if got := splitSlots(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("splitSlots(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	for _, n := range []int{7, 16, 100, 1000} {
		r := splitSlots(n)
		if len(r) != n || r[0][0] != 0 || r[n-1][1] != 16383 {
			t.Fatalf("splitSlots(%d) = %v", n, r)
		}
		for i := 1; i < n; i++ {
			if r[i][0] != r[i-1][1]+1 {
				t.Fatalf("splitSlots(%d): gap at %d", n, i)
			}
			if d := (r[i][1] - r[i][0]) - (r[0][1] - r[0][0]); d < -1 || d > 1 {
				t.Fatalf("splitSlots(%d): uneven %v", n, r)
			}
		}
	}
}

func TestLayoutPeersAndPartitionMap(t *testing.T) {
	ctx := context.Background()
	c, _, name := newTestCluster(t, 3, 1, false)
	p := dial(t, c, name).(driver.Prober)
	id := func(k int) string { return fmt.Sprintf("memory-%s-n%d", name, k) }
	pm, err := p.PartitionMap(ctx)
	if err != nil || pm.Partitions != 16384 || len(pm.Shards) != 3 {
		t.Fatalf("PartitionMap = %+v, %v", pm, err)
	}
	for i, sh := range pm.Shards {
		if sh.Primary != id(i+1) || !slices.Equal(sh.Replicas, []string{id(i + 4)}) || len(sh.Ranges) != 1 || sh.Ranges[0] != splitSlots(3)[i] {
			t.Errorf("shard %d = %+v", i, sh)
		}
	}
	peers, err := p.Peers(ctx)
	if err != nil || len(peers) != 6 {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}
	for i, pr := range peers {
		k := i + 1
		want := driver.Peer{ID: id(k), Addr: addr(name, k), AltAddr: "alt-" + addr(name, k), Role: driver.RolePrimary}
		if k > 3 {
			want.Role, want.PrimaryID = driver.RoleReplica, id(k-3)
		}
		if pr != want {
			t.Errorf("peer %d = %+v, want %+v", k, pr, want)
		}
	}
	for k := 1; k <= 6; k++ {
		st, err := dial(t, c, addr(name, k)).(driver.Prober).Probe(ctx)
		wantRole := driver.RolePrimary
		if k > 3 {
			wantRole = driver.RoleReplica
		}
		if err != nil || st.ID != id(k) || st.Role != wantRole || st.ClusterName != name || !st.Healthy || st.PeersGen == 0 || st.PartitionGen == 0 {
			t.Errorf("Probe %d = %+v, %v", k, st, err)
		}
	}
}

func TestResolveAndAddresses(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 1, false)
	r := c.(driver.Resolver)
	got, err := r.Resolve(ctx, name)
	if want := []string{addr(name, 1), addr(name, 2), addr(name, 3), addr(name, 4)}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("Resolve(%s) = %v, %v; want %v", name, got, err, want)
	}
	if got, err := r.Resolve(ctx, "anything:7001"); err != nil || !slices.Equal(got, []string{"anything:7001"}) {
		t.Fatalf("Resolve(host:port) = %v, %v", got, err)
	}
	var dns *net.DNSError
	if _, err := r.Resolve(ctx, "no-such-cluster"); !errors.As(err, &dns) || !dns.IsNotFound {
		t.Fatalf("Resolve(unknown) = %v", err)
	}
	if Lookup("no-such-cluster") != nil {
		t.Fatal("resolving a name that is not a seed created a cluster")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Resolve(cancelled, name); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a cancelled ctx: %v", err)
	}

	probeID := func(a string) string {
		t.Helper()
		st, err := dial(t, c, a).(driver.Prober).Probe(ctx)
		if err != nil {
			t.Fatalf("Probe via %s: %v", a, err)
		}
		return st.ID
	}
	for _, tc := range []struct{ addr, id string }{
		{name, "n1"},
		{addr(name, 3), "n3"},
		{"alt-" + addr(name, 3), "n3"},
		{"alt-" + addr(name, 4), "n4"},
	} {
		if got := probeID(tc.addr); got != "memory-"+name+"-"+tc.id {
			t.Errorf("%s reaches %s, want %s", tc.addr, got, tc.id)
		}
	}
	var op *net.OpError
	if _, err := c.Connect(ctx, addr(name, 9)); !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &op) {
		t.Errorf("Connect to a port with no node: %v", err)
	}
	if _, err := c.Connect(ctx, "unknown-host:7001"); !errors.As(err, &dns) {
		t.Errorf("Connect to an unknown host: %v", err)
	}
	// The seed alias follows the first live node.
	cl.Kill(addr(name, 1))
	if got := probeID(name); got != "memory-"+name+"-n2" {
		t.Errorf("seed with n1 down reaches %s", got)
	}
	if got, _ := r.Resolve(ctx, name); !slices.Equal(got, []string{addr(name, 2), addr(name, 3), addr(name, 4)}) {
		t.Errorf("Resolve lists dead nodes: %v", got)
	}
	for k := 2; k <= 4; k++ {
		cl.Kill(addr(name, k))
	}
	if _, err := c.Connect(ctx, name); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("seed with every node down: %v", err)
	}
	if _, err := r.Resolve(ctx, name); err == nil {
		t.Error("Resolve with every node down succeeded")
	}
}

func TestMovedAndCrossSlot(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 3, 0, false)
	conns := []driver.Conn{dial(t, c, addr(name, 1)), dial(t, c, addr(name, 2)), dial(t, c, addr(name, 3))}
	for _, key := range []string{"a", "b", "foo", "user:1", "{user}:2", "x{}y"} {
		slot := int(rediscmd.Slot([]byte(key)))
		owner := int(cl.owner[slot])
		for i, cn := range conns {
			_, err := cn.Exec(ctx, "SET ? v", []driver.Value{key})
			_, gerr := get(t, ctx, cn, key)
			if i == owner {
				if err != nil || gerr != nil {
					t.Fatalf("%s on its owner %d: %v / %v", key, i, err, gerr)
				}
				continue
			}
			wantRedirect(t, err, false, slot, addr(name, owner+1))
			wantRedirect(t, gerr, false, slot, addr(name, owner+1))
		}
	}
	// "a" and "b" are in slots of different shards; hash tags keep keys
	// together.
	if rediscmd.Slot([]byte("a")) == rediscmd.Slot([]byte("b")) {
		t.Fatal("bad test keys")
	}
	for _, cn := range conns {
		_, err := cn.Exec(ctx, "MSET a 1 b 2", nil)
		wantServerError(t, err, "CROSSSLOT")
		if err.Error() != "CROSSSLOT Keys in request don't hash to the same slot" {
			t.Fatalf("message %q", err)
		}
	}
	tagged := conns[cl.owner[rediscmd.Slot([]byte("user"))]]
	if _, err := tagged.Exec(ctx, "MSET {user}a 1 {user}b 2", nil); err != nil {
		t.Fatal(err)
	}
	rows, err := tagged.Query(ctx, "MGET {user}a {user}b", nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := make([]driver.Value, 1)
	for _, want := range []string{"1", "2"} {
		if err := rows.Next(dest); err != nil || string(dest[0].([]byte)) != want {
			t.Fatalf("MGET: %v %v", dest, err)
		}
	}
	// Unknown commands and arity errors come before routing; keyless
	// commands run on the node's own shard.
	_, err = conns[0].Exec(ctx, "NOSUCH a", nil)
	wantServerError(t, err, "ERR")
	_, err = conns[0].Exec(ctx, "GET", nil)
	wantServerError(t, err, "ERR")
	total := int64(0)
	for _, cn := range conns {
		rows, err := cn.Query(ctx, "DBSIZE", nil)
		if err != nil {
			t.Fatal(err)
		}
		rows.Next(dest)
		total += dest[0].(int64)
	}
	if total != 8 {
		t.Fatalf("DBSIZE over the shards = %d, want 8", total)
	}
}

func TestSingleShardIsLenient(t *testing.T) {
	ctx := context.Background()
	c, _, name := newTestCluster(t, 1, 0, false)
	cn := dial(t, c, name)
	if _, err := cn.Exec(ctx, "MSET a 1 b 2", nil); err != nil {
		t.Fatalf("multi-slot MSET on one shard: %v", err)
	}
}

func TestReplicaReads(t *testing.T) {
	ctx := context.Background()
	c, _, name := newTestCluster(t, 1, 1, false)
	primary, replica := dial(t, c, addr(name, 1)), dial(t, c, addr(name, 2))
	slot := int(rediscmd.Slot([]byte("k")))
	if _, err := primary.Exec(ctx, "SET k v", nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stmt    string
		code    string // "" for success, MOVED for a redirect to the primary
		wantGet bool
	}{
		{"GET k", "MOVED", false},
		{"SET k w", "MOVED", false},
		{"READONLY", "", false},
		{"GET k", "", true},
		{"EXISTS k", "", false},
		{"SET k w", "MOVED", false},
		{"DEL k", "MOVED", false},
		{"FLUSHALL", "READONLY", false},
		{"DBSIZE", "", false},
		{"PING", "", false},
		{"READWRITE", "", false},
		{"GET k", "MOVED", false},
		{"READONLY extra", "ERR", false},
	}
	for _, s := range steps {
		rows, err := replica.Query(ctx, s.stmt, nil)
		switch s.code {
		case "":
			if err != nil {
				t.Fatalf("%s on the replica: %v", s.stmt, err)
			}
			if s.wantGet {
				dest := make([]driver.Value, 1)
				if rows.Next(dest); string(dest[0].([]byte)) != "v" {
					t.Fatalf("replica read %v", dest)
				}
			}
		case "MOVED":
			wantRedirect(t, err, false, slot, addr(name, 1))
		default:
			wantServerError(t, err, s.code)
		}
	}
	// ReplicaReads makes every connection READONLY from the start.
	rc, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{name}, ReplicaReads: true})
	if err != nil {
		t.Fatal(err)
	}
	ro := dial(t, rc, addr(name, 2))
	if v, err := get(t, ctx, ro, "k"); err != nil || v != "v" {
		t.Fatalf("replica read with ReplicaReads: %v %v", v, err)
	}
	_, err = ro.Exec(ctx, "SET k x", nil)
	wantRedirect(t, err, false, slot, addr(name, 1))
	text, err := ro.(driver.Infoer).Info(ctx, "replication")
	if err != nil || !strings.Contains(text, "role:slave") {
		t.Fatalf("replica INFO %q %v", text, err)
	}
}

func TestAskDuringMigration(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 0, false)
	slot := int(rediscmd.Slot([]byte("m")))
	from := int(cl.owner[slot])
	to := 1 - from
	fromAddr, toAddr := addr(name, from+1), addr(name, to+1)
	src, dst := dial(t, c, fromAddr), dial(t, c, toAddr)
	for i := 1; i <= 4; i++ {
		if _, err := src.Exec(ctx, fmt.Sprintf("SET {m}%d v%d", i, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	peers0, part0 := cl.Gens()
	epoch0 := cl.Epoch()
	if err := cl.BeginMigration(slot, toAddr); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginMigration(slot, toAddr); err == nil {
		t.Fatal("a second BeginMigration succeeded")
	}
	if moved, left, err := cl.MoveKeys(slot, 2); err != nil || moved != 2 || left != 2 {
		t.Fatalf("MoveKeys = %d, %d, %v", moved, left, err)
	}
	ask := driver.WithAsk(ctx)
	for _, tc := range []struct {
		conn driver.Conn
		ctx  context.Context
		stmt string
		want string // value, or MOVED / ASK / TRYAGAIN
	}{
		{src, ctx, "GET {m}3", "v3"},      // still here
		{src, ctx, "GET {m}1", "ASK"},     // moved already
		{src, ctx, "SET {m}9 new", "ASK"}, // a new key goes to the target
		{src, ctx, "MGET {m}1 {m}3", "TRYAGAIN"},
		{src, ask, "GET {m}3", "v3"},
		{dst, ctx, "GET {m}1", "MOVED"}, // not without ASKING
		{dst, ask, "GET {m}1", "v1"},
		{dst, ask, "SET {m}9 new", ""},
		{dst, ask, "MGET {m}1 {m}3", "TRYAGAIN"},
		{dst, ctx, "ASKING", "OK"},
		{dst, ctx, "GET {m}2", "v2"}, // ASKING lasts one command
		{dst, ctx, "GET {m}2", "MOVED"},
	} {
		rows, err := tc.conn.Query(tc.ctx, tc.stmt, nil)
		switch tc.want {
		case "ASK":
			wantRedirect(t, err, true, slot, toAddr)
		case "MOVED":
			wantRedirect(t, err, false, slot, fromAddr)
		case "TRYAGAIN":
			wantServerError(t, err, "TRYAGAIN")
		default:
			if err != nil {
				t.Fatalf("%s: %v", tc.stmt, err)
			}
			dest := make([]driver.Value, 1)
			if err := rows.Next(dest); tc.want != "" && (err != nil || fmt.Sprintf("%s", dest[0]) != tc.want) {
				t.Fatalf("%s = %v, want %s", tc.stmt, dest, tc.want)
			}
		}
	}
	// The partition map does not change until the migration ends.
	if p, q := cl.Gens(); p != peers0 || q != part0 {
		t.Fatal("gens changed when a migration began")
	}
	if err := cl.FinishMigration(slot); err != nil {
		t.Fatal(err)
	}
	if p, q := cl.Gens(); p != peers0 || q != part0+1 || cl.Epoch() != epoch0+1 {
		t.Fatalf("gens after FinishMigration: %d %d", p, q)
	}
	if _, err := src.Query(ctx, "GET {m}3", nil); err == nil {
		t.Fatal("the old owner still serves the slot")
	} else {
		wantRedirect(t, err, false, slot, toAddr)
	}
	for i, want := range []string{"v1", "v2", "v3", "v4"} {
		if v, err := get(t, ctx, dst, fmt.Sprintf("{m}%d", i+1)); err != nil || v != want {
			t.Fatalf("after the migration {m}%d = %v, %v", i+1, v, err)
		}
	}
	pm, _ := dst.(driver.Prober).PartitionMap(ctx)
	found := false
	for _, r := range pm.Shards[to].Ranges {
		found = found || r[0] <= slot && slot <= r[1]
	}
	for _, r := range pm.Shards[from].Ranges {
		if r[0] <= slot && slot <= r[1] {
			t.Fatalf("slot %d still in the old shard's ranges %v", slot, pm.Shards[from].Ranges)
		}
	}
	if !found {
		t.Fatalf("slot %d not in the new shard's ranges %v", slot, pm.Shards[to].Ranges)
	}
	// MigrateSlot does it all at once, and back.
	if err := cl.MigrateSlot(slot, fromAddr); err != nil {
		t.Fatal(err)
	}
	if v, err := get(t, ctx, src, "{m}4"); err != nil || v != "v4" {
		t.Fatalf("after MigrateSlot back: %v %v", v, err)
	}
	if err := cl.MigrateSlot(slot, fromAddr); err == nil {
		t.Fatal("migrating a slot to its owner succeeded")
	}
	if _, _, err := cl.MoveKeys(slot, 1); err == nil {
		t.Fatal("MoveKeys of a slot not migrating succeeded")
	}
	if err := cl.MigrateSlot(16384, fromAddr); err == nil {
		t.Fatal("slot 16384 accepted")
	}
}

func TestKillAndRestart(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 1, 1, false)
	a := addr(name, 1)
	cn := dial(t, c, a)
	if _, err := cn.Exec(ctx, "SET k v", nil); err != nil {
		t.Fatal(err)
	}
	peers0, part0 := cl.Gens()
	if err := cl.Kill(a); err != nil {
		t.Fatal(err)
	}
	// The first call after the kill was sent: a reset, not ErrBadConn.
	_, err := cn.Exec(ctx, "SET k w", nil)
	if err == nil || errors.Is(err, driver.ErrBadConn) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("first call after Kill: %v", err)
	}
	if cn.(driver.Validator).IsValid() {
		t.Fatal("a reset connection is valid")
	}
	// Now the connection is known dead: nothing is sent.
	for _, call := range []func() error{
		func() error { _, err := cn.Exec(ctx, "GET k", nil); return err },
		func() error { return cn.(driver.Pinger).Ping(ctx) },
		func() error { _, err := cn.(driver.Prober).Probe(ctx); return err },
		func() error {
			return cn.(driver.Batcher).Batch(ctx, []driver.Stmt{{Query: "PING"}}, make([]driver.BatchResult, 1))
		},
	} {
		if err := call(); !errors.Is(err, driver.ErrBadConn) {
			t.Fatalf("call on a dead connection: %v", err)
		}
	}
	if _, err := c.Connect(ctx, a); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Connect to a killed node: %v", err)
	}
	ni, _ := cl.Node(a)
	if ni.Alive || ni.Open != 1 {
		t.Fatalf("killed node info %+v", ni)
	}
	// Still listed, gens unchanged.
	p := dial(t, c, addr(name, 2)).(driver.Prober)
	peers, _ := p.Peers(ctx)
	if len(peers) != 2 {
		t.Fatalf("a killed node left Peers: %+v", peers)
	}
	if pg, qg := cl.Gens(); pg != peers0 || qg != part0 {
		t.Fatal("Kill changed the gens")
	}
	// Data survives.
	if err := cl.Restart(a); err != nil {
		t.Fatal(err)
	}
	cn2 := dial(t, c, a)
	if v, err := get(t, ctx, cn2, "k"); err != nil || v != "v" {
		t.Fatalf("after Restart: %v %v", v, err)
	}
	if _, err := cn.Exec(ctx, "GET k", nil); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("a pre-kill connection after Restart: %v", err)
	}
	cn.Close()
	if ni, _ := cl.Node(a); !ni.Alive || ni.Open != 1 || ni.Dials != 2 {
		t.Fatalf("restarted node info %+v", ni)
	}
	if err := cl.Kill("nowhere:1"); err == nil {
		t.Fatal("Kill of an unknown node succeeded")
	}
}

func TestKillDuringSlowCall(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 1, 0, false)
	for _, tc := range []struct {
		name  string
		setup func()
		stmt  string
	}{
		{"debug sleep", func() {}, "DEBUG SLEEP 10"},
		{"hung reply", func() { cl.Hang(name+":7001", time.Hour) }, "SET k v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl.Restart(name + ":7001")
			cn := dial(t, c, name)
			tc.setup()
			defer cl.Unhang(name + ":7001")
			done := make(chan error)
			go func() {
				_, err := cn.Exec(ctx, tc.stmt, nil)
				done <- err
			}()
			for {
				if ni, _ := cl.Node(name + ":7001"); ni.Commands > 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			cl.Kill(name + ":7001")
			err := <-done
			if !errors.Is(err, syscall.ECONNRESET) || errors.Is(err, driver.ErrBadConn) {
				t.Fatalf("in-flight call on a killed node: %v", err)
			}
			cl.nodes[0].commands.Store(0)
		})
	}
}

func TestHang(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 1, 0, false)
	a := addr(name, 1)
	cn := dial(t, c, a)
	cl.Hang(a, time.Hour)
	if ni, _ := cl.Node(a); !ni.Hung {
		t.Fatal("NodeInfo.Hung not set")
	}
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Exec", func(ctx context.Context) error { _, err := cn.Exec(ctx, "SET k v", nil); return err }},
		{"Ping", func(ctx context.Context) error { return cn.(driver.Pinger).Ping(ctx) }},
		{"Probe", func(ctx context.Context) error { _, err := cn.(driver.Prober).Probe(ctx); return err }},
		{"Peers", func(ctx context.Context) error { _, err := cn.(driver.Prober).Peers(ctx); return err }},
		{"PartitionMap", func(ctx context.Context) error { _, err := cn.(driver.Prober).PartitionMap(ctx); return err }},
		{"Batch", func(ctx context.Context) error {
			return cn.(driver.Batcher).Batch(ctx, []driver.Stmt{{Query: "PING"}, {Query: "PING"}}, make([]driver.BatchResult, 2))
		}},
		{"Connect", func(ctx context.Context) error { _, err := c.Connect(ctx, a); return err }},
	} {
		tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		start := time.Now()
		err := tc.call(tctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("%s on a hung node: %v after %v", tc.name, err, time.Since(start))
		}
	}
	if !cn.(driver.Validator).IsValid() {
		t.Fatal("a timed-out call invalidated the connection")
	}
	if ni, _ := cl.Node(a); ni.Dials != 1 || ni.Open != 1 {
		t.Fatalf("a timed-out Connect counted: %+v", ni)
	}
	// Unhang releases waiting calls at once.
	done := make(chan error)
	go func() { done <- cn.(driver.Pinger).Ping(ctx) }()
	time.Sleep(5 * time.Millisecond)
	cl.Unhang(a)
	if err := <-done; err != nil {
		t.Fatalf("Ping released by Unhang: %v", err)
	}
	// A short hang only slows calls down.
	cl.Hang(a, 20*time.Millisecond)
	start := time.Now()
	if err := cn.(driver.Pinger).Ping(ctx); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("Ping on a slow node: %v after %v", err, time.Since(start))
	}
	cl.Unhang(a)
	if ni, _ := cl.Node(a); ni.Hung {
		t.Fatal("NodeInfo.Hung after Unhang")
	}
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 1, false)
	p1, r1 := addr(name, 1), addr(name, 3) // shard 0
	key := keyOn(t, cl, "k", 0)
	slot := int(rediscmd.Slot([]byte(key)))
	old := dial(t, c, p1)
	if _, err := old.Exec(ctx, "SET ? v", []driver.Value{key}); err != nil {
		t.Fatal(err)
	}
	st0, _ := dial(t, c, r1).(driver.Prober).Probe(ctx)
	if err := cl.Failover(p1); err == nil {
		t.Fatal("failing over to a primary succeeded")
	}
	cl.Kill(r1)
	if err := cl.Failover(r1); err == nil {
		t.Fatal("failing over to a dead replica succeeded")
	}
	cl.Restart(r1)
	cl.Kill(p1)
	if err := cl.Failover(r1); err != nil {
		t.Fatal(err)
	}
	np := dial(t, c, r1)
	st, _ := np.(driver.Prober).Probe(ctx)
	if st.Role != driver.RolePrimary || st.PeersGen != st0.PeersGen+1 || st.PartitionGen != st0.PartitionGen+1 {
		t.Fatalf("after Failover: %+v (before %+v)", st, st0)
	}
	pm, _ := np.(driver.Prober).PartitionMap(ctx)
	if pm.Shards[0].Primary != st.ID || !slices.Equal(pm.Shards[0].Replicas, []string{st0.ID[:len(st0.ID)-1] + "1"}) {
		t.Fatalf("partition map after Failover: %+v", pm.Shards[0])
	}
	if v, err := get(t, ctx, np, key); err != nil || v != "v" {
		t.Fatalf("data on the new primary: %v %v", v, err)
	}
	if _, err := np.Exec(ctx, "SET ? w", []driver.Value{key}); err != nil {
		t.Fatal(err)
	}
	// The old primary comes back as a replica.
	cl.Restart(p1)
	back := dial(t, c, p1)
	st, _ = back.(driver.Prober).Probe(ctx)
	if st.Role != driver.RoleReplica {
		t.Fatalf("old primary after Restart: %+v", st)
	}
	_, err := back.Exec(ctx, "SET ? x", []driver.Value{key})
	wantRedirect(t, err, false, slot, r1)
	peers, _ := back.(driver.Prober).Peers(ctx)
	if peers[0].Role != driver.RoleReplica || peers[0].PrimaryID != peers[2].ID || peers[2].Role != driver.RolePrimary {
		t.Fatalf("peers after Failover: %+v", peers)
	}
}

// TestGens checks that the generations change exactly when Peers or
// PartitionMap would answer something else, and that probing fetches
// nothing else.
func TestGens(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 2, false)
	watch := dial(t, c, addr(name, 2))
	p := watch.(driver.Prober)
	slot := int(rediscmd.Slot([]byte("g")))
	other := addr(name, 2-int(cl.owner[slot]))
	steps := []struct {
		name         string
		do           func() error
		peers, parts int
		clusterName  string
	}{
		{"nothing", func() error { return nil }, 0, 0, name},
		{"traffic", func() error { _, err := watch.Exec(ctx, "PING", nil); return err }, 0, 0, name},
		{"hang", func() error { return cl.Hang(addr(name, 3), time.Hour) }, 0, 0, name},
		{"unhang", func() error { return cl.Unhang(addr(name, 3)) }, 0, 0, name},
		{"kill", func() error { return cl.Kill(addr(name, 1)) }, 0, 0, name},
		{"restart", func() error { return cl.Restart(addr(name, 1)) }, 0, 0, name},
		{"rename", func() error { cl.Rename("prod"); return nil }, 0, 0, "prod"},
		{"begin migration", func() error { return cl.BeginMigration(slot, other) }, 0, 0, "prod"},
		{"move keys", func() error { _, _, err := cl.MoveKeys(slot, 0); return err }, 0, 0, "prod"},
		{"finish migration", func() error { return cl.FinishMigration(slot) }, 0, 1, "prod"},
		{"migrate slot", func() error { return cl.MigrateSlot(slot+1, other) }, 0, 1, "prod"},
		{"failover", func() error { return cl.Failover(addr(name, 3)) }, 1, 1, "prod"},
		{"change addr", func() error { return cl.ChangeAddr(addr(name, 6), "elsewhere:6379") }, 1, 0, "prod"},
		{"forget", func() error { return cl.Forget("elsewhere:6379") }, 1, 1, "prod"},
	}
	last, _ := p.Probe(ctx)
	lastPeers, _ := p.Peers(ctx)
	lastMap, _ := p.PartitionMap(ctx)
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		st, err := p.Probe(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if st.PeersGen != last.PeersGen+uint64(s.peers) || st.PartitionGen != last.PartitionGen+uint64(s.parts) || st.ClusterName != s.clusterName {
			t.Errorf("%s: probe %+v after %+v, want +%d/+%d", s.name, st, last, s.peers, s.parts)
		}
		peers, _ := p.Peers(ctx)
		pm, _ := p.PartitionMap(ctx)
		if changed := !slices.Equal(peers, lastPeers); changed != (s.peers > 0) {
			t.Errorf("%s: Peers changed %v, gen moved by %d", s.name, changed, s.peers)
		}
		if changed := fmt.Sprint(pm) != fmt.Sprint(lastMap); changed != (s.parts > 0) {
			t.Errorf("%s: PartitionMap changed %v, gen moved by %d", s.name, changed, s.parts)
		}
		last, lastPeers, lastMap = st, peers, pm
	}
	ni, _ := cl.Node(addr(name, 2))
	if n := int64(len(steps) + 1); ni.Probes != n || ni.PeerFetches != n || ni.MapFetches != n || ni.Dials != 1 || ni.Open != 1 {
		t.Fatalf("counters %+v, want %d of each", ni, n)
	}
	if ni, _ := cl.Node(addr(name, 1)); ni.Probes != 0 || ni.PeerFetches != 0 || ni.MapFetches != 0 {
		t.Fatalf("another node counted: %+v", ni)
	}
}

func TestChangeAddrRenameForget(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 1, false)
	a2 := addr(name, 2)
	before := dial(t, c, a2)
	st0, _ := before.(driver.Prober).Probe(ctx)
	if err := cl.ChangeAddr(a2, addr(name, 1)); err == nil {
		t.Fatal("ChangeAddr to an address in use succeeded")
	}
	if err := cl.ChangeAddr(a2, "no-port"); err == nil {
		t.Fatal("ChangeAddr to an address without a port succeeded")
	}
	if err := cl.ChangeAddr(a2, "newhost:9000"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx, a2); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Connect to the old address: %v", err)
	}
	moved := dial(t, c, "newhost:9000")
	if st, _ := moved.(driver.Prober).Probe(ctx); st.ID != st0.ID {
		t.Fatalf("the node changed id: %s, was %s", st.ID, st0.ID)
	}
	if st, _ := dial(t, c, "alt-"+a2).(driver.Prober).Probe(ctx); st.ID != st0.ID {
		t.Fatal("the alternate address changed")
	}
	if err := before.(driver.Pinger).Ping(ctx); err != nil {
		t.Fatalf("a connection made before ChangeAddr: %v", err)
	}
	peers, _ := moved.(driver.Prober).Peers(ctx)
	if peers[1].Addr != "newhost:9000" || peers[1].ID != st0.ID || peers[1].AltAddr != "alt-"+a2 {
		t.Fatalf("peers after ChangeAddr: %+v", peers)
	}
	key := keyOn(t, cl, "c", 1)
	_, err := dial(t, c, addr(name, 1)).Exec(ctx, "GET ?", []driver.Value{key})
	wantRedirect(t, err, false, int(rediscmd.Slot([]byte(key))), "newhost:9000")

	cl.Rename("renamed")
	if st, _ := moved.(driver.Prober).Probe(ctx); st.ClusterName != "renamed" {
		t.Fatalf("ClusterName after Rename: %q", st.ClusterName)
	}
	if Lookup(name) != cl || cl.Name() != name || cl.ClusterName() != "renamed" {
		t.Fatal("Lookup by the original name after Rename")
	}

	a4 := addr(name, 4) // replica of shard 1
	rc := dial(t, c, a4)
	if err := cl.Forget("newhost:9000"); err == nil {
		t.Fatal("forgetting a primary succeeded")
	}
	if err := cl.Forget(a4); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Exec(ctx, "PING", nil); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection to a forgotten node: %v", err)
	}
	if _, err := c.Connect(ctx, a4); err == nil {
		t.Fatal("Connect to a forgotten node succeeded")
	}
	peers, _ = moved.(driver.Prober).Peers(ctx)
	pm, _ := moved.(driver.Prober).PartitionMap(ctx)
	if len(peers) != 3 || len(pm.Shards[1].Replicas) != 0 || len(cl.Nodes()) != 3 {
		t.Fatalf("after Forget: %+v / %+v", peers, pm)
	}
	if err := cl.Restart(a4); err == nil {
		t.Fatal("Restart of a forgotten node succeeded")
	}
}

func TestCountersAndClose(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 1, 1, false)
	var conns []driver.Conn
	for _, a := range []string{name, addr(name, 1), addr(name, 2), "alt-" + addr(name, 2)} {
		cn, err := c.Connect(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	conns[0].Exec(ctx, "SET a 1", nil)
	conns[0].Exec(ctx, "GET a", nil)
	conns[2].Exec(ctx, "GET a", nil) // MOVED, still counted
	if cl.Dials() != 4 || cl.OpenConns() != 4 {
		t.Fatalf("totals %d dials, %d open", cl.Dials(), cl.OpenConns())
	}
	nodes := cl.Nodes()
	if nodes[0].Dials != 2 || nodes[1].Dials != 2 || nodes[0].Commands != 2 || nodes[1].Commands != 1 || nodes[1].PrimaryID != nodes[0].ID {
		t.Fatalf("nodes %+v", nodes)
	}
	conns[1].Close()
	conns[1].Close()
	if cl.OpenConns() != 3 || cl.Nodes()[0].Open != 1 {
		t.Fatalf("after Close: %d open", cl.OpenConns())
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if Lookup(name) != nil {
		t.Fatal("Lookup after Close")
	}
	if _, err := conns[0].Exec(ctx, "PING", nil); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection to a closed cluster: %v", err)
	}
	for _, cn := range conns {
		cn.Close()
	}
	if cl.OpenConns() != 0 {
		t.Fatalf("%d open after closing everything", cl.OpenConns())
	}
}

func TestClusterCaps(t *testing.T) {
	c, _, name := newTestCluster(t, 3, 1, true)
	for k := 1; k <= 6; k++ {
		cn := dial(t, c, addr(name, k))
		if got, want := driver.Implemented(cn), c.Backend().Caps&^driver.CapClusterName; got != want {
			t.Fatalf("declared %v, implemented %v", want, got)
		}
	}
	if _, ok := c.(driver.Resolver); !ok {
		t.Fatal("the connector is not a Resolver")
	}
}

// TestConcurrentFaults runs traffic while the topology changes under it;
// it is for the race detector: every call either succeeds, redirects or
// fails as a network error would.
func TestConcurrentFaults(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 1, true)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cn, err := c.Connect(ctx, addr(name, 1+(w+i)%4))
				if err != nil {
					continue
				}
				key := fmt.Sprint("{t}", i%5)
				cn.Exec(ctx, "SET ? x", []driver.Value{key})
				cn.Query(driver.WithAsk(ctx), "GET ?", []driver.Value{key})
				cn.(driver.Prober).Probe(ctx)
				cn.(driver.Prober).PartitionMap(ctx)
				cn.Close()
			}
		}()
	}
	slot := int(rediscmd.Slot([]byte("t")))
	for i := range 20 {
		owner := int(cl.owner[slot])
		cl.BeginMigration(slot, addr(name, 2-owner))
		cl.MoveKeys(slot, 2)
		cl.FinishMigration(slot)
		cl.Kill(addr(name, 3+i%2))
		cl.Hang(addr(name, 1+i%2), time.Millisecond)
		cl.Restart(addr(name, 3+i%2))
		cl.Unhang(addr(name, 1+i%2))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if cl.OpenConns() != 0 {
		t.Fatalf("%d connections left open", cl.OpenConns())
	}
}

// Reset, Lag and Forget of a reset node: what the node and the others
// answer, and that the reset node keeps running alone.
func TestResetLagForget(t *testing.T) {
	ctx := context.Background()
	c, cl, name := newTestCluster(t, 2, 1, false)
	a1, a3 := addr(name, 1), addr(name, 3) // a primary and a replica of shard 0
	p1 := dial(t, c, a1).(driver.Prober)
	victim := dial(t, c, a3)
	pv := victim.(driver.Prober)
	st1, _ := p1.Probe(ctx)

	if err := cl.Reset(a1); err == nil {
		t.Fatal("Reset of a primary succeeded")
	}
	if err := cl.Reset(a3); err != nil {
		t.Fatal(err)
	}
	st, err := pv.Probe(ctx)
	if err != nil || st.Role != driver.RolePrimary || st.PeersGen == st1.PeersGen || st.PartitionGen == st1.PartitionGen {
		t.Fatalf("reset node's probe %+v (%v), cluster's %+v", st, err, st1)
	}
	if got, _ := p1.Probe(ctx); got != st1 {
		t.Fatalf("the others' probe changed: %+v, was %+v", got, st1)
	}
	peers, _ := pv.Peers(ctx)
	pm, _ := pv.PartitionMap(ctx)
	if len(peers) != 1 || peers[0].Addr != a3 || peers[0].Role != driver.RolePrimary {
		t.Fatalf("reset node's peers %+v", peers)
	}
	for _, s := range pm.Shards {
		if len(s.Ranges) != 0 {
			t.Fatalf("reset node's map assigns slots: %+v", pm)
		}
	}
	if others, _ := p1.Peers(ctx); len(others) != 4 {
		t.Fatalf("the others forgot the reset node before Forget: %+v", others)
	}
	key := keyOn(t, cl, "r", 0)
	_, err = get(t, ctx, victim, key)
	wantServerError(t, err, "CLUSTERDOWN")
	if _, err := victim.Exec(ctx, "PING", nil); err != nil {
		t.Fatalf("PING on a reset node: %v", err)
	}
	if err := cl.Failover(a3); err == nil {
		t.Fatal("Failover to a reset node succeeded")
	}

	// Lag: a node keeps its view across a failover, then catches up.
	a4 := addr(name, 4) // replica of shard 1
	a2 := addr(name, 2)
	p2 := dial(t, c, a2).(driver.Prober)
	if err := cl.Lag(a2); err != nil {
		t.Fatal(err)
	}
	if err := cl.Failover(a4); err != nil {
		t.Fatal(err)
	}
	if got, _ := p2.Probe(ctx); got.PeersGen != st1.PeersGen || got.PartitionGen != st1.PartitionGen {
		t.Fatalf("a lagging node's gens moved: %+v", got)
	}
	if m, _ := p2.PartitionMap(ctx); m.Shards[1].Primary != mustNode(t, cl, a2).ID {
		t.Fatalf("a lagging node's map moved: %+v", m.Shards[1])
	}
	if !mustNode(t, cl, a2).Lagging {
		t.Fatal("Node does not say the node lags")
	}
	cl.Unlag(a2)
	if got, _ := p2.Probe(ctx); got.PeersGen != st1.PeersGen+1 || got.PartitionGen != st1.PartitionGen+1 {
		t.Fatalf("after Unlag: %+v", got)
	}

	// Forget of a reset node: it leaves the others' view and keeps running.
	before, _ := p1.Probe(ctx)
	if err := cl.Forget(a3); err != nil {
		t.Fatal(err)
	}
	if err := cl.Forget(a3); err == nil {
		t.Fatal("forgetting a node twice succeeded")
	}
	if got, _ := p1.Probe(ctx); got.PeersGen != before.PeersGen+1 || got.PartitionGen != before.PartitionGen+1 {
		t.Fatalf("after Forget: %+v, was %+v", got, before)
	}
	if others, _ := p1.Peers(ctx); len(others) != 3 || len(cl.Nodes()) != 3 {
		t.Fatalf("the others still list the forgotten node: %+v", others)
	}
	if _, err := victim.Exec(ctx, "PING", nil); err != nil {
		t.Fatalf("a forgotten reset node stopped: %v", err)
	}
	again := dial(t, c, a3).(driver.Prober)
	if got, _ := again.Probe(ctx); got != st {
		t.Fatalf("forgotten reset node's probe %+v, was %+v", got, st)
	}
	if ni, err := cl.Node(a3); err != nil || !ni.Reset || !ni.Alive || ni.Open != 2 {
		t.Fatalf("Node of the forgotten reset node: %+v, %v", ni, err)
	}

	// del-node's order: a lagging replica forgotten keeps running and
	// listing everyone, until it is reset.
	var a6 string // the one replica left
	for _, n := range cl.Nodes() {
		if n.Role == driver.RoleReplica {
			a6 = n.Addr
		}
	}
	p6 := dial(t, c, a6).(driver.Prober)
	cl.Lag(a6)
	if err := cl.Forget(a6); err != nil {
		t.Fatal(err)
	}
	if ps, err := p6.Peers(ctx); err != nil || len(ps) != 3 {
		t.Fatalf("a forgotten lagging node: peers %+v, %v", ps, err)
	}
	if others, _ := p1.Peers(ctx); len(others) != 2 {
		t.Fatalf("the others still list the forgotten lagging node: %+v", others)
	}
	if err := cl.Reset(a6); err != nil {
		t.Fatal(err)
	}
	if ps, _ := p6.Peers(ctx); len(ps) != 1 || ps[0].Addr != a6 {
		t.Fatalf("after Reset: peers %+v", ps)
	}

	cl.Close()
	if _, err := victim.Exec(ctx, "PING", nil); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a reset node's connection after Close: %v", err)
	}
	if err := p6.(driver.Pinger).Ping(ctx); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a forgotten lagging node's connection after Close: %v", err)
	}
}

func mustNode(t *testing.T, cl *Cluster, addr string) NodeInfo {
	t.Helper()
	ni, err := cl.Node(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ni
}
