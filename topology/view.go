package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/tendril-db/tendril/driver"
)

// A view is what nodes say the cluster is: a peer list and a partition
// map. Nodes disagree for a moment while gossip spreads a failover or a
// slot move, and for good when a node leaves the cluster (redis-cli
// --cluster del-node resets it: it then lists only itself and owns no
// slots) or belongs to another cluster. The tender therefore never follows
// whichever node answered last: it fetches one view per distinct
// generation and chooses one by the rule of choose.
//
// The tender assumes what both drivers guarantee: equal generations on two
// nodes of one cluster (same reported cluster name) mean equal answers
// (Redis' generations are a hash of CLUSTER SHARDS; the memory cluster's
// are cluster-wide counters). Views with different generations but the
// same content are merged by digest.

// peersView is one fetched peer list.
type peersView struct {
	peers  []driver.Peer
	addrs  []string        // the addresses the tender would dial, in order
	names  map[string]bool // those addresses
	ids    map[string]bool // the peers' ids
	digest uint64
}

// mapView is one fetched partition map.
type mapView struct {
	m      driver.PartitionMap
	digest uint64
}

func (t *Tender) newPeersView(peers []driver.Peer) *peersView {
	v := &peersView{peers: peers, names: make(map[string]bool, len(peers)), ids: make(map[string]bool, len(peers))}
	keys := make([]string, 0, len(peers))
	for _, p := range peers {
		addr := p.Addr
		if t.cfg.UseAlternate && p.AltAddr != "" {
			addr = p.AltAddr
		}
		if !v.names[addr] {
			v.addrs = append(v.addrs, addr)
		}
		v.names[addr] = true
		if p.ID != "" {
			v.ids[p.ID] = true
		}
		keys = append(keys, fmt.Sprintf("%s %s %s %d %s", p.ID, p.Addr, p.AltAddr, p.Role, p.PrimaryID))
	}
	slices.Sort(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	v.digest = h.Sum64()
	return v
}

// namesAddr reports whether the view lists addr as a node to dial.
func (v *peersView) namesAddr(addr string) bool { return v.names[addr] }

// knows reports whether the view lists n, by address or by id.
func (v *peersView) knows(n *Node) bool {
	if v.names[n.addr] {
		return true
	}
	id := n.ID()
	return id != "" && v.ids[id]
}

func newMapView(m driver.PartitionMap) *mapView {
	keys := make([]string, 0, len(m.Shards))
	for _, s := range m.Shards {
		rs := slices.Clone(s.Ranges)
		slices.SortFunc(rs, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
		reps := slices.Clone(s.Replicas)
		slices.Sort(reps)
		keys = append(keys, fmt.Sprint(s.Primary, rs, reps))
	}
	slices.Sort(keys)
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s", m.Partitions, strings.Join(keys, "|"))
	return &mapView{m: m, digest: h.Sum64()}
}

// served returns how many partitions the map gives a primary for which
// ok holds.
func (v *mapView) served(ok func(id string) bool) int {
	c := 0
	for _, s := range v.m.Shards {
		if s.Primary == "" || !ok(s.Primary) {
			continue
		}
		for _, rg := range s.Ranges {
			lo, hi := max(rg[0], 0), min(rg[1], v.m.Partitions-1)
			if hi >= lo {
				c += hi - lo + 1
			}
		}
	}
	return c
}

// viewKey identifies a view by content.
type viewKey struct{ peers, parts uint64 }

// candidate is one distinct view and the nodes that hold it this tend.
type candidate struct {
	key     viewKey
	pv      *peersView
	mv      *mapView
	holders []*Node
	// empty: the view assigns no partition and names no node but its
	// holders. A node says so of itself after CLUSTER RESET (redis-cli
	// --cluster del-node ends with it): it has left, whatever the others
	// still list.
	empty bool
	// isolated: other nodes answered, the view names none of them and
	// none of their views names its holders: another cluster's nodes.
	isolated bool
	served   int // partitions whose primary answered this tend
}

// tier orders views by trust: 0 for a view of the cluster, 1 for an
// isolated one, 2 for an empty one.
func (c *candidate) tier() int {
	switch {
	case c.empty:
		return 2
	case c.isolated:
		return 1
	}
	return 0
}

// excluded reports whether holding c, rather than the followed view, puts
// a node out of the table.
func (c *candidate) excluded() bool { return c.empty || c.isolated }

// viewCache holds the views fetched so far by generation; it is owned by
// the tend loop. Entries no node reports any more are dropped, so it stays
// as small as the number of distinct views in the table.
type viewCache struct {
	peers map[genKey]*peersView
	maps  map[genKey]*mapView
}

// fetchViews makes sure the cache has the peer list and the map of every
// generation the holders report: one fetch per missing generation, from
// one of its holders, in parallel over nodes (each node's probe
// connection is used by one goroutine) and each bounded by Timeout. While
// nothing changes it fetches nothing.
func (t *Tender) fetchViews(ctx context.Context, holders []*Node) {
	type job struct {
		n                *Node
		peers, parts     bool
		pv               *peersView
		mv               *mapView
		peersErr, mapErr error
	}
	var jobs []*job
	byNode := map[*Node]*job{}
	wantPeers, wantMap := map[genKey]bool{}, map[genKey]bool{}
	get := func(n *Node) *job {
		j := byNode[n]
		if j == nil {
			j = &job{n: n}
			byNode[n] = j
			jobs = append(jobs, j)
		}
		return j
	}
	// First the generations of nodes already chosen as a source, so that
	// one node answers both when it can.
	for _, n := range holders {
		if k := n.peersKey(); t.views.peers[k] == nil && !wantPeers[k] {
			wantPeers[k] = true
			get(n).peers = true
		}
	}
	for _, n := range holders {
		if k := n.mapKey(); t.views.maps[k] == nil && !wantMap[k] {
			wantMap[k] = true
			if j := byNode[n]; j != nil {
				j.parts = true
				continue
			}
			get(n).parts = true
		}
	}
	if len(jobs) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := j.n.probe.(driver.Prober)
			if p == nil {
				j.peersErr, j.mapErr = errors.New("no probe connection"), errors.New("no probe connection")
				return
			}
			if j.peers {
				t.c.peerFetches.Add(1)
				fctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
				var peers []driver.Peer
				if peers, j.peersErr = p.Peers(fctx); j.peersErr == nil {
					j.pv = t.newPeersView(peers)
				}
				cancel()
			}
			if j.parts {
				t.c.mapFetches.Add(1)
				fctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
				var m driver.PartitionMap
				if m, j.mapErr = p.PartitionMap(fctx); j.mapErr == nil {
					j.mv = newMapView(m)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		if j.pv != nil {
			t.views.peers[j.n.peersKey()] = j.pv
		} else if j.peers {
			t.log.Warn("tendril: peer list fetch failed", "node", j.n.Name(), "addr", j.n.addr, "err", j.peersErr)
		}
		if j.mv != nil {
			t.views.maps[j.n.mapKey()] = j.mv
		} else if j.parts {
			t.log.Warn("tendril: partition map fetch failed", "node", j.n.Name(), "addr", j.n.addr, "err", j.mapErr)
		}
	}
}

// candidates groups the holders by the content of their view; holders
// whose view could not be fetched are left out. healthy lists every node
// that answered this tend, holders included.
func (t *Tender) candidates(holders, healthy []*Node) []*candidate {
	byKey := map[viewKey]*candidate{}
	own := map[*Node]*candidate{}
	var out []*candidate
	for _, n := range holders {
		pv, mv := t.views.peers[n.peersKey()], t.views.maps[n.mapKey()]
		if pv == nil || mv == nil {
			continue
		}
		k := viewKey{pv.digest, mv.digest}
		c := byKey[k]
		if c == nil {
			c = &candidate{key: k, pv: pv, mv: mv}
			byKey[k] = c
			out = append(out, c)
		}
		c.holders = append(c.holders, n)
		own[n] = c
	}
	ids := map[string]bool{}
	addrs := map[string]bool{}
	for _, n := range healthy {
		addrs[n.addr] = true
		if id := n.ID(); id != "" {
			ids[id] = true
		}
	}
	for _, c := range out {
		c.served = c.mv.served(func(id string) bool { return ids[id] })
		others, named := 0, 0
		for _, n := range healthy {
			if own[n] == c {
				continue
			}
			others++
			if c.pv.knows(n) {
				named++
			}
		}
		// Names no node but its holders: none of the others (then every
		// address it names that answered is a holder's), and no address
		// that did not answer (a dead node, a node not probed yet).
		alone := named == 0 && !slices.ContainsFunc(c.pv.addrs, func(a string) bool { return !addrs[a] })
		c.empty = c.mv.m.Partitions > 0 && c.mv.served(func(string) bool { return true }) == 0 && alone
		c.isolated = others > 0 && named == 0 && !slices.ContainsFunc(out, func(d *candidate) bool {
			return d != c && slices.ContainsFunc(c.holders, d.pv.knows)
		})
	}
	return out
}

// choose returns the view to follow. The rule, in order:
//
//  1. A view of the cluster over an isolated one, and an isolated one over
//     an empty one. An empty view is a node saying it left (it assigns no
//     partition and knows only itself: what CLUSTER RESET leaves);
//     following it would drop the whole cluster for one node, which is
//     what redis-cli --cluster del-node did to the client. An isolated
//     view names none of the other nodes that answered and none of theirs
//     names it: another cluster's node. An isolated view only wins when
//     every view is one (disjoint groups, e.g. the table held only a reset
//     node and the seeds brought the cluster back).
//  2. The view giving the most partitions a primary that answered this
//     tend. During a failover the promoted replica's view wins as soon as
//     one node holds it, because the old view's primary is down.
//  3. The view held by more nodes: when both serve everything (a graceful
//     failover, a slot move, a FORGET spreading) the majority is right or
//     is about to be, and redirects patch the map meanwhile.
//  4. The view followed now, so that a tie does not flip the map.
//  5. The smallest key, so that the choice never depends on map order.
func choose(cands []*candidate, current viewKey) *candidate {
	if len(cands) == 0 {
		return nil
	}
	return slices.MinFunc(cands, func(a, b *candidate) int {
		if c := cmp.Compare(a.tier(), b.tier()); c != 0 {
			return c
		}
		if c := cmp.Compare(b.served, a.served); c != 0 {
			return c
		}
		if c := cmp.Compare(len(b.holders), len(a.holders)); c != 0 {
			return c
		}
		if (a.key == current) != (b.key == current) {
			if a.key == current {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.key.peers, b.key.peers); c != 0 {
			return c
		}
		return cmp.Compare(a.key.parts, b.key.parts)
	})
}

// prune drops cached views that no node of keep reports.
func (vc *viewCache) prune(keep []*Node) {
	ps, ms := map[genKey]bool{}, map[genKey]bool{}
	for _, n := range keep {
		if n.statusKnown {
			ps[n.peersKey()], ms[n.mapKey()] = true, true
		}
	}
	for g := range vc.peers {
		if !ps[g] {
			delete(vc.peers, g)
		}
	}
	for g := range vc.maps {
		if !ms[g] {
			delete(vc.maps, g)
		}
	}
}
