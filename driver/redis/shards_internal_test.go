package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/proto/resp"
)

// shardsReply renders a CLUSTER SHARDS reply (RESP2, as a server sends
// it) of one shard owning every slot, with the given nodes (id, role,
// health).
func shardsReply(nodes [][3]string) string {
	var b strings.Builder
	b.WriteString("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n")
	fmt.Fprintf(&b, "*%d\r\n", len(nodes))
	for i, n := range nodes {
		kv := []string{"id", n[0], "port", fmt.Sprint(7000 + i), "ip", "127.0.0.1", "endpoint", "127.0.0.1",
			"role", n[1], "replication-offset", "100", "health", n[2]}
		fmt.Fprintf(&b, "*%d\r\n", len(kv))
		for j, s := range kv {
			if j%2 == 1 && (kv[j-1] == "port" || kv[j-1] == "replication-offset") {
				fmt.Fprintf(&b, ":%s\r\n", s)
				continue
			}
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s)
		}
	}
	return b.String()
}

// TestShardsFailedPrimary: from Redis 7.2 (shard ids) and in Valkey,
// CLUSTER SHARDS lists every node of a shard, and after an automatic
// failover the old primary, down, stays in its shard with role master and
// health fail beside the promoted replica until it comes back or is
// forgotten (valkey-io/valkey PR #790 shows that output; this machine's
// Redis 7.0 puts it in a shard of its own). The shard's primary is the
// one online, whatever the order: the last master in id order was taken,
// the dead one half the time, and every write of the shard waited for it
// until total_timeout.
func TestShardsFailedPrimary(t *testing.T) {
	const (
		a = "1111111111111111111111111111111111111111"
		b = "ffffffffffffffffffffffffffffffffffffffff"
		r = "8888888888888888888888888888888888888888"
	)
	for _, tc := range []struct {
		nodes    [][3]string
		primary  string
		replicas int
	}{
		{[][3]string{{a, "master", "online"}, {b, "master", "fail"}}, a, 0},
		{[][3]string{{a, "master", "fail"}, {b, "master", "online"}}, b, 0},
		{[][3]string{{a, "master", "fail"}, {r, "replica", "online"}, {b, "master", "online"}}, b, 1},
		{[][3]string{{a, "master", "fail"}}, a, 0}, // down, but the only one: still its primary
	} {
		rd := resp.NewReader(strings.NewReader(shardsReply(tc.nodes)))
		var v resp.Value
		if err := rd.ReadValue(&v); err != nil {
			t.Fatal(err)
		}
		st, err := parseShards(&v)
		if err != nil {
			t.Fatal(err)
		}
		m, err := (&redisConn{topo: st}).PartitionMap(context.Background())
		if err != nil || len(m.Shards) != 1 {
			t.Fatalf("%v: shards %+v, %v", tc.nodes, m.Shards, err)
		}
		if s := m.Shards[0]; s.Primary != tc.primary || len(s.Replicas) != tc.replicas {
			t.Errorf("%v: primary %s, replicas %v; want primary %s, %d replicas", tc.nodes, s.Primary[:4], s.Replicas, tc.primary[:4], tc.replicas)
		}
		rc := &redisConn{topo: st, connector: &connector{}}
		peers, _ := rc.Peers(context.Background())
		for _, p := range peers {
			if p.Role == driver.RoleReplica && p.PrimaryID != tc.primary {
				t.Errorf("%v: replica %s follows %s, want %s", tc.nodes, p.ID[:4], p.PrimaryID[:4], tc.primary[:4])
			}
		}
	}
}

// TestNodePortForTLS: a TLS client dials a node's tls-port, also when the
// node listens in plain text too: it dialed the plain port, and a TLS
// cluster with plain ports open could not be followed past its seed.
func TestNodePortForTLS(t *testing.T) {
	for _, tc := range []struct {
		n    nodeInfo
		tls  bool
		want string
	}{
		{nodeInfo{ip: "10.0.0.1", port: 7000, tlsPort: 8000}, false, "10.0.0.1:7000"},
		{nodeInfo{ip: "10.0.0.1", port: 7000, tlsPort: 8000}, true, "10.0.0.1:8000"},
		{nodeInfo{ip: "10.0.0.1", port: 0, tlsPort: 8000}, false, "10.0.0.1:8000"},
		{nodeInfo{ip: "10.0.0.1", endpoint: "h", port: 7000}, true, "h:7000"},
	} {
		if got := tc.n.addr(tc.tls); got != tc.want {
			t.Errorf("%+v, TLS %v: %s, want %s", tc.n, tc.tls, got, tc.want)
		}
	}
}
