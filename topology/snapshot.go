package topology

import (
	"sync"

	"github.com/tendril-db/tendril/driver"
)

// ReadPreference says which nodes may serve reads.
type ReadPreference uint8

const (
	Primary       ReadPreference = iota // the partition's primary only
	PreferReplica                       // a healthy replica, else the primary
	Replica                             // replicas only
)

// shard is one partition range's primary and replicas.
type shard struct {
	primary  *Node
	replicas []*Node
}

// Snapshot is an immutable view of the cluster: the node table and the
// partition map. Operations pick nodes from the current Snapshot without
// locking; the tender publishes a new one when something changes.
type Snapshot struct {
	nodes  []*Node // sorted by address
	byAddr map[string]*Node
	// parts maps a partition to its index in shards; nil when the backend
	// has no partition map (standalone servers).
	parts  []int32
	shards []shard
	gen    uint64
	// roles is set when the backend has no partition map and its nodes
	// report their roles (PostgreSQL, a standalone Redis): writes go to
	// primary alone, reads to standbys as the preference allows.
	roles    bool
	primary  *Node   // the node elected to take writes (see elect), or nil
	standbys []*Node // the nodes reporting RoleReplica, by address
	claims   []*Node // the healthy nodes reporting RolePrimary
	newer    *Node   // a down node that last reported a newer primary epoch

	// owned counts the partitions of each primary, computed at the first
	// Owned call (see countOwned).
	ownedOnce sync.Once
	owned     map[*Node]int
}

// Nodes returns the nodes of the table, sorted by address.
func (s *Snapshot) Nodes() []*Node { return s.nodes }

// HasHealthy reports whether any node of the table is healthy.
func (s *Snapshot) HasHealthy() bool { return hasHealthy(s) }

// Node returns the node at addr, or nil.
func (s *Snapshot) Node(addr string) *Node { return s.byAddr[addr] }

// Gen is incremented with every published snapshot.
func (s *Snapshot) Gen() uint64 { return s.gen }

// Partitions returns the number of partitions of the map (0 without one).
func (s *Snapshot) Partitions() int { return len(s.parts) }

// Owned returns the number of partitions whose primary is n.
func (s *Snapshot) Owned(n *Node) int {
	s.ownedOnce.Do(s.countOwned)
	return s.owned[n]
}

// countOwned counts every primary's partitions in one pass over the map.
// Counting them per call made describing every node (sqlish DB.Nodes,
// Stats, the pool metrics) cost nodes × partitions: 14 ms at 1000 nodes.
func (s *Snapshot) countOwned() {
	per := make([]int, len(s.shards))
	for _, i := range s.parts {
		if i >= 0 {
			per[i]++
		}
	}
	s.owned = make(map[*Node]int, len(s.shards))
	for i, sh := range s.shards {
		if sh.primary != nil && per[i] > 0 {
			s.owned[sh.primary] += per[i]
		}
	}
}

// Primary returns the primary of a partition, or nil when none is known.
// Without a partition map, on a backend whose nodes report their roles, it
// returns the node elected to take writes whatever the partition (nil
// while none is, e.g. while two nodes claim the role with equal epochs).
func (s *Snapshot) Primary(partition int) *Node {
	if s.roles {
		return s.primary
	}
	if sh := s.shard(partition); sh != nil {
		return sh.primary
	}
	return nil
}

func (s *Snapshot) shard(p int) *shard {
	if p < 0 || p >= len(s.parts) || s.parts[p] < 0 {
		return nil
	}
	return &s.shards[s.parts[p]]
}

// Pick chooses the node for one attempt of an operation: writes go to the
// partition's primary; reads follow the preference, moving to the next
// replica on each retry; statements without a partition go to any healthy
// node, the next one on each retry. It returns nil when no node can serve.
//
// A backend without a partition map whose nodes report their roles
// (PostgreSQL) has one primary at most: every write goes to it, never to a
// standby nor to a node of unknown role, and Pick returns nil while no
// healthy primary is elected (see elect) or while it is Demoted: the user
// API then waits for the tender. Reads follow the preference: Primary, the
// primary; PreferReplica, a healthy standby, else the primary; Replica, a
// healthy standby or nil.
func (s *Snapshot) Pick(route driver.Route, pref ReadPreference, attempt int) *Node {
	if s.roles {
		return s.pickByRole(route, pref, attempt)
	}
	sh := s.shard(route.Partition)
	if sh == nil {
		if route.Partition != driver.AnyPartition && len(s.parts) > 0 {
			return nil // a partition no node owns (yet)
		}
		return s.any(attempt)
	}
	if route.Intent == driver.Write || pref == Primary {
		if p := sh.primary; p != nil && p.Demoted() {
			return nil // a write found it demoted: wait for the tender
		}
		return sh.primary
	}
	// Reads: replicas in turn, starting one further on each retry; the
	// primary is the fallback for PreferReplica.
	n := len(sh.replicas)
	for i := range n {
		if r := sh.replicas[(attempt+i)%n]; r.Healthy() {
			return r
		}
	}
	if pref == PreferReplica || n == 0 {
		if pref == Replica && n == 0 {
			return nil
		}
		return sh.primary
	}
	return sh.replicas[attempt%n] // all down: let the attempt report why
}

func (s *Snapshot) pickByRole(route driver.Route, pref ReadPreference, attempt int) *Node {
	if route.Intent == driver.Write || pref == Primary {
		return s.writer()
	}
	n := len(s.standbys)
	for i := range n {
		if r := s.standbys[(attempt+i)%n]; r.Healthy() {
			return r
		}
	}
	if pref == PreferReplica {
		return s.writer()
	}
	return nil
}

// writer returns the elected primary when it can take a write now.
func (s *Snapshot) writer() *Node {
	if p := s.primary; p != nil && p.Healthy() && !p.Demoted() {
		return p
	}
	return nil
}

// any returns a healthy node, primaries first, rotating with attempt.
func (s *Snapshot) any(attempt int) *Node {
	var fallback *Node
	for pass := range 2 {
		for i := range s.nodes {
			n := s.nodes[(attempt+i)%len(s.nodes)]
			if !n.Healthy() {
				if fallback == nil {
					fallback = n
				}
				continue
			}
			if pass == 1 || n.Role() != driver.RoleReplica {
				return n
			}
		}
	}
	return fallback
}
