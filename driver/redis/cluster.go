package redis

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// clusterState is what one CLUSTER SHARDS (or CLUSTER SLOTS) answer says.
type clusterState struct {
	shards []shardInfo
	gen    uint64 // hash of the answer, without fields that change by themselves
}

type shardInfo struct {
	ranges [][2]int
	nodes  []nodeInfo
}

type nodeInfo struct {
	id, ip, endpoint, hostname string
	port, tlsPort              int
	primary                    bool
	online                     bool
}

// addr is the node's address for a client that speaks TLS or not.
func (n nodeInfo) addr(tls bool) string {
	host := n.endpoint
	if host == "" || host == "?" {
		host = n.ip
	}
	return net.JoinHostPort(host, strconv.Itoa(n.portFor(tls)))
}

// portFor is the node's TLS port for a TLS client, when it has one, or
// its plain port: a TLS node may listen in plain text too (port and
// tls-port both set), and a TLS client dialing the plain port fails.
func (n nodeInfo) portFor(tls bool) int {
	if n.port == 0 || tls && n.tlsPort != 0 {
		return n.tlsPort
	}
	return n.port
}

// Probe implements driver.Prober. On a cluster node it pipelines CLUSTER
// MYID and CLUSTER SHARDS (CLUSTER SLOTS before Redis 7) and keeps the
// answer for Peers and PartitionMap; both generations are a hash of it.
// A standalone server is a cluster of one node named by its address.
func (rc *redisConn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	// The tender probes every node once a tend: the time to ask whether
	// the credentials changed, and to log in again if so.
	rc.connector.recheck(ctx)
	frame, lg := rc.relogin(nil)
	frame = resp.AppendCommandString(frame, "CLUSTER", "MYID")
	frame = resp.AppendCommandString(frame, "CLUSTER", "SHARDS")
	n := 2
	if lg != nil {
		n = 3
	}
	vs, err := rc.c.Do(ctx, frame, n)
	if err != nil {
		rc.unsent(lg)
		return driver.NodeStatus{}, rc.transportError(err)
	}
	if lg != nil {
		rc.relogged(&vs[0])
		vs = vs[1:]
	}
	if vs[0].IsError() {
		if strings.Contains(string(vs[0].Str), "cluster support disabled") {
			rc.topo = nil
			return rc.probeStandalone(ctx)
		}
		return driver.NodeStatus{}, fmt.Errorf("CLUSTER MYID: %w", serverError(&vs[0]))
	}
	id := string(vs[0].Str)
	var st *clusterState
	if vs[1].IsError() { // Redis 6 and older: no CLUSTER SHARDS
		v, err := rc.do(ctx, "CLUSTER", "SLOTS")
		if err != nil {
			return driver.NodeStatus{}, err
		}
		if v.IsError() {
			return driver.NodeStatus{}, fmt.Errorf("CLUSTER SLOTS: %w", serverError(&v))
		}
		st, err = parseSlots(&v)
		if err != nil {
			return driver.NodeStatus{}, err
		}
	} else if st, err = parseShards(&vs[1]); err != nil {
		return driver.NodeStatus{}, err
	}
	rc.topo = st
	status := driver.NodeStatus{ID: id, PeersGen: st.gen, PartitionGen: st.gen, Healthy: true}
	for _, sh := range st.shards {
		for _, n := range sh.nodes {
			if n.id == id {
				status.Role = driver.RoleReplica
				if n.primary {
					status.Role = driver.RolePrimary
				}
			}
		}
	}
	return status, nil
}

// probeStandalone reports a standalone server's role from ROLE, so that a
// DSN naming a primary and its replicas writes to the primary only.
func (rc *redisConn) probeStandalone(ctx context.Context) (driver.NodeStatus, error) {
	st := driver.NodeStatus{ID: rc.addr, Role: driver.RolePrimary, Healthy: true}
	v, err := rc.do(ctx, "ROLE")
	switch {
	case err != nil:
		return driver.NodeStatus{}, err
	case v.IsError():
		// A server without ROLE (before 2.8.12) or one that refuses it
		// (ACL): take it for the primary, as before ROLE was asked.
		return st, nil
	case len(v.Elems) > 0:
		switch string(v.Elems[0].Str) {
		case "slave", "replica":
			st.Role = driver.RoleReplica
		case "master":
		default: // sentinel
			return driver.NodeStatus{}, fmt.Errorf("ROLE: %s is a %s, not a data node", rc.addr, v.Elems[0].Str)
		}
	}
	return st, nil
}

// Peers implements driver.Prober from the last probe's answer.
func (rc *redisConn) Peers(ctx context.Context) ([]driver.Peer, error) {
	if rc.topo == nil {
		return []driver.Peer{{ID: rc.addr, Addr: rc.addr, Role: driver.RolePrimary}}, ctx.Err()
	}
	tls := rc.connector.cfg.TLS != nil
	var peers []driver.Peer
	for _, sh := range rc.topo.shards {
		primary := sh.primary()
		for _, n := range sh.nodes {
			p := driver.Peer{ID: n.id, Addr: n.addr(tls), Role: driver.RoleReplica, PrimaryID: primary}
			if n.primary {
				p.Role, p.PrimaryID = driver.RolePrimary, ""
			}
			if n.hostname != "" {
				p.AltAddr = net.JoinHostPort(n.hostname, strconv.Itoa(n.portFor(tls)))
			}
			peers = append(peers, p)
		}
	}
	return peers, ctx.Err()
}

// PartitionMap implements driver.Prober from the last probe's answer. A
// standalone server has no partitions: every statement may go to it.
func (rc *redisConn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	if rc.topo == nil {
		return driver.PartitionMap{}, ctx.Err()
	}
	m := driver.PartitionMap{Partitions: rediscmd.Slots}
	for _, sh := range rc.topo.shards {
		if len(sh.ranges) == 0 {
			continue // a shard without slots (an empty primary)
		}
		s := driver.Shard{Ranges: sh.ranges, Primary: sh.primary()}
		for _, n := range sh.nodes {
			if !n.primary && n.online {
				s.Replicas = append(s.Replicas, n.id)
			}
		}
		m.Shards = append(m.Shards, s)
	}
	return m, ctx.Err()
}

// primary is the id of the shard's primary: its master that is online.
// After a failover (Redis 7.2+, Valkey) the old primary stays in its
// shard, role master, health fail, beside the promoted one until it comes
// back or is forgotten. A shard whose masters are all down keeps one.
func (sh shardInfo) primary() string {
	id := ""
	for _, n := range sh.nodes {
		if n.primary && (id == "" || n.online) {
			id = n.id
			if n.online {
				break
			}
		}
	}
	return id
}

// pairs returns the elements of a map, or of a RESP2 array of alternating
// keys and values.
func pairs(v *resp.Value) []resp.Value {
	if v.Kind == resp.KindMap || v.Kind == resp.KindArray {
		return v.Elems
	}
	return nil
}

// parseShards reads CLUSTER SHARDS.
func parseShards(v *resp.Value) (*clusterState, error) {
	if v.Kind != resp.KindArray {
		return nil, fmt.Errorf("CLUSTER SHARDS: unexpected %s reply", v.Kind)
	}
	h := fnv.New64a()
	st := &clusterState{}
	for i := range v.Elems {
		var sh shardInfo
		kv := pairs(&v.Elems[i])
		for k := 0; k+1 < len(kv); k += 2 {
			switch string(kv[k].Str) {
			case "slots":
				s := kv[k+1].Elems
				for j := 0; j+1 < len(s); j += 2 {
					sh.ranges = append(sh.ranges, [2]int{int(s[j].Int), int(s[j+1].Int)})
				}
			case "nodes":
				for j := range kv[k+1].Elems {
					sh.nodes = append(sh.nodes, parseNode(pairs(&kv[k+1].Elems[j])))
				}
			}
		}
		st.shards = append(st.shards, sh)
	}
	// Order shards and nodes so the hash does not depend on reply order.
	for i := range st.shards {
		slices.SortFunc(st.shards[i].nodes, func(a, b nodeInfo) int { return strings.Compare(a.id, b.id) })
	}
	slices.SortFunc(st.shards, func(a, b shardInfo) int { return strings.Compare(firstID(a), firstID(b)) })
	for _, sh := range st.shards {
		fmt.Fprintf(h, "%v|", sh.ranges)
		for _, n := range sh.nodes {
			fmt.Fprintf(h, "%s %s %s %s %d %d %v %v|", n.id, n.ip, n.endpoint, n.hostname, n.port, n.tlsPort, n.primary, n.online)
		}
	}
	st.gen = h.Sum64()
	return st, nil
}

func firstID(s shardInfo) string {
	if len(s.nodes) == 0 {
		return ""
	}
	return s.nodes[0].id
}

func parseNode(kv []resp.Value) nodeInfo {
	n := nodeInfo{online: true}
	for k := 0; k+1 < len(kv); k += 2 {
		val := &kv[k+1]
		switch string(kv[k].Str) {
		case "id":
			n.id = string(val.Str)
		case "ip":
			n.ip = string(val.Str)
		case "endpoint":
			n.endpoint = string(val.Str)
		case "hostname":
			n.hostname = string(val.Str)
		case "port":
			n.port = int(val.Int)
		case "tls-port":
			n.tlsPort = int(val.Int)
		case "role":
			n.primary = string(val.Str) == "master"
		case "health":
			n.online = string(val.Str) == "online"
		}
	}
	return n
}

// parseSlots reads CLUSTER SLOTS: [[from, to, [ip, port, id], replicas...]...].
func parseSlots(v *resp.Value) (*clusterState, error) {
	if v.Kind != resp.KindArray {
		return nil, fmt.Errorf("CLUSTER SLOTS: unexpected %s reply", v.Kind)
	}
	byPrimary := map[string]*shardInfo{}
	var order []string
	for i := range v.Elems {
		e := v.Elems[i].Elems
		if len(e) < 3 {
			continue
		}
		rg := [2]int{int(e[0].Int), int(e[1].Int)}
		var nodes []nodeInfo
		for j := 2; j < len(e); j++ {
			f := e[j].Elems
			if len(f) < 3 {
				continue
			}
			nodes = append(nodes, nodeInfo{ip: string(f[0].Str), port: int(f[1].Int), id: string(f[2].Str), primary: j == 2, online: true})
		}
		if len(nodes) == 0 {
			continue
		}
		sh := byPrimary[nodes[0].id]
		if sh == nil {
			sh = &shardInfo{nodes: nodes}
			byPrimary[nodes[0].id] = sh
			order = append(order, nodes[0].id)
		}
		sh.ranges = append(sh.ranges, rg)
	}
	st := &clusterState{}
	h := fnv.New64a()
	slices.Sort(order)
	for _, id := range order {
		sh := byPrimary[id]
		slices.SortFunc(sh.ranges, func(a, b [2]int) int { return a[0] - b[0] })
		st.shards = append(st.shards, *sh)
		fmt.Fprintf(h, "%v|", sh.ranges)
		for _, n := range sh.nodes {
			fmt.Fprintf(h, "%s %s %d %v|", n.id, n.ip, n.port, n.primary)
		}
	}
	st.gen = h.Sum64()
	return st, nil
}
