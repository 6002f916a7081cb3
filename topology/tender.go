// Package topology discovers a cluster from seed hosts and follows it: a
// tender probes every node on an interval (and on demand, after a redirect
// or a connection error), learns peers and the partition map when they
// change, drops failed nodes, re-adds recovered ones and publishes an
// immutable Snapshot that operations route with. It owns one puddlepool
// per node: cleared when the node fails, ready again when it answers,
// closed after a grace period when the node leaves the table.
//
// Nodes do not always agree on the topology: for a moment while a
// failover or a slot move spreads, and for good when an operator deletes a
// node (redis-cli --cluster del-node resets it: it then knows only itself).
// The tender fetches one view per distinct generation and follows the one
// the cluster agrees on (see choose in view.go); it removes a node that
// says it left, and never removes most of the table on the word of one
// node.
//
// A backend without a partition map (PostgreSQL primary and standbys, a
// standalone Redis) is followed host by host: its nodes are the DSN hosts
// (a host down at start joins when it answers; a host that fails stays in
// the table, down), the role each probe reports routes, and at most one
// node takes writes: the primary of the newest epoch, or none while that
// is in doubt (see elect). A primary that steps down has its pool
// cleared; a write that meets one before the tender does calls Demote.
// Servers of two databases listed in one DSN are never mixed (see vet).
package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/errlist"
	"github.com/tendril-db/tendril/puddlepool"
)

// ErrClusterNameMismatch is reported for a node whose cluster name is not
// the configured one or, without one, not the one the tender follows (the
// first seen); such a node never enters the table.
var ErrClusterNameMismatch = errors.New("cluster name mismatch")

// ErrNoNodes is returned when no node can serve a request.
var ErrNoNodes = errors.New("no node available")

// Config configures a Tender.
type Config struct {
	// Seeds are where discovery starts. They are probed again, all of
	// them, when every known node has failed, and a few at a time (at most
	// every 3 tend intervals) when the table serves some partition with no
	// primary. Without a partition map they are the node list: those not
	// in the table are probed every tend, up to 16 addresses a tend.
	Seeds     []string
	Connector driver.Connector
	// ClusterName refuses nodes reporting another cluster name. When it is
	// "", the first name nodes report is followed and the others refused,
	// so that servers of two databases in one DSN are never mixed; nodes
	// reporting no name (Redis) are never refused.
	ClusterName string
	Timeout     time.Duration // bound on each probe and fetch
	// TendInterval is the period of the tend loop.
	TendInterval time.Duration
	// FailLimit is the number of consecutive failed probes after which a
	// node leaves the table (default 3), unless the partition map makes it
	// a primary or, without a map, it is a DSN host.
	FailLimit int
	// UseAlternate makes the tender connect to the alternate addresses
	// nodes advertise.
	UseAlternate bool
	// RefreshCooldown is the least time between two on-demand refreshes
	// (default TendInterval/10, at most 100ms, at least 10ms).
	RefreshCooldown time.Duration
	// RemoveGrace is how long a removed node's pool stays open for work
	// in flight (default Timeout).
	RemoveGrace time.Duration
	// Pool is the template of every node's pool; Name and Dial are set
	// per node.
	Pool puddlepool.Config[driver.Conn]
	// Logger receives node changes and tend overruns (default: discard).
	// Nodes found by the first tend are logged at INFO; later additions,
	// removals, failures, cleared pools, tend overruns, refused nodes and
	// credentials, role changes and demotions, and two nodes claiming the
	// primary role (once an episode) at WARN or ERROR.
	Logger *slog.Logger
	// OnTend, when set, is called at the end of every tend with how long it
	// took and whether it left a healthy node. It runs on the tend loop's
	// goroutine and must be quick.
	OnTend func(d time.Duration, healthy bool)
}

// Stats counts what the tender did.
type Stats struct {
	Tends, TendsFailed, TendOverruns        int64
	Probes, PeerFetches, MapFetches         int64
	MapUpdates, Patches                     int64
	NodesAdded, NodesRemoved                int64
	RefreshesTriggered, RefreshesSuppressed int64 // on-demand refreshes started / suppressed (cooldown or one pending)
}

type counters struct {
	tends, tendsFailed, tendOverruns atomic.Int64
	probes, peerFetches, mapFetches  atomic.Int64
	mapUpdates, patches              atomic.Int64
	nodesAdded, nodesRemoved         atomic.Int64
	refreshes, refreshesSuppressed   atomic.Int64
}

// Tender discovers and follows a cluster.
type Tender struct {
	cfg  Config
	caps driver.Caps
	log  *slog.Logger

	mu       sync.Mutex // guards the fields below; never held during I/O
	nodes    map[string]*Node
	dormant  map[string]bool // addresses peers list that are not in the table
	parts    []int32
	shards   []shard
	gen      uint64
	tended   chan struct{} // closed at the end of every tend
	first    chan struct{} // closed at the end of the first tend
	lastErr  error         // why the last tend found no healthy node
	removing []*Node
	// authLogged holds the addresses whose refused credentials were
	// logged, so a wrong password is logged once, not every tend.
	authLogged map[string]bool
	// members counts changes of the table (nodes added or removed);
	// mapMembers is its value when the map was last built, from the view
	// applied.
	members, mapMembers uint64
	applied             viewKey
	// flat: the nodes' views have no partition map (PostgreSQL, a
	// standalone Redis). The nodes are then the DSN hosts, and the roles
	// their probes report route: one primary takes writes (see elect).
	flat bool

	// Owned by the tend loop.
	views    viewCache
	named    *peersView           // the peer list of the view followed
	rejected map[string]time.Time // addresses refused for their view, until when
	refused  map[string]string    // why an address was refused, as logged (see refuse)
	stale    bool                 // the last tend could not fetch a view: choose again
	// Seeds are probed beyond the last resort (every node failed) when
	// the map leaves partitions without a primary or a removal waits for
	// confirmation: at most every seedEvery, a few at a time.
	wantSeeds  bool
	lastSeeds  time.Time
	seedCursor int
	seedAddrs  map[string]bool     // the seeds and every address they resolved to
	guardKey   viewKey             // the view whose unconfirmed removals were logged
	resolved   map[string][]string // each seed's addresses, as last resolved
	// identity is the cluster name followed: ClusterName, or without it
	// the first one nodes reported (see vet).
	identity string
	split    string // the two-primaries episode logged (see elected)

	snap        atomic.Pointer[Snapshot]
	refresh     chan struct{}
	lastRefresh atomic.Int64 // unix nanoseconds of the last on-demand tend

	ctx     context.Context // cancelled by Close, bounds all tend I/O
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	started atomic.Bool

	c counters
}

// New returns a Tender. It does not touch the network: Start does.
func New(cfg Config) (*Tender, error) {
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("topology: no seed hosts")
	}
	if cfg.Connector == nil || cfg.Timeout <= 0 || cfg.TendInterval <= 0 {
		return nil, errors.New("topology: Connector, Timeout and TendInterval are required")
	}
	if cfg.FailLimit <= 0 {
		cfg.FailLimit = 3
	}
	if cfg.RefreshCooldown <= 0 {
		// Operations waiting out a failover ask for refreshes: the sooner
		// the tender sees the promotion, the sooner they go on. A tend
		// costs a probe per node, so ten a second are cheap.
		cfg.RefreshCooldown = min(max(cfg.TendInterval/10, 10*time.Millisecond), 100*time.Millisecond)
	}
	if cfg.RemoveGrace <= 0 {
		cfg.RemoveGrace = cfg.Timeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tender{
		cfg: cfg, caps: cfg.Connector.Backend().Caps, log: log,
		nodes: map[string]*Node{}, dormant: map[string]bool{}, authLogged: map[string]bool{},
		views:    viewCache{peers: map[genKey]*peersView{}, maps: map[genKey]*mapView{}},
		rejected: map[string]time.Time{}, seedAddrs: map[string]bool{}, resolved: map[string][]string{},
		refused:  map[string]string{},
		identity: cfg.ClusterName,
		tended:   make(chan struct{}), first: make(chan struct{}), refresh: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	for _, seed := range cfg.Seeds {
		t.seedAddrs[seed] = true
	}
	t.snap.Store(&Snapshot{byAddr: map[string]*Node{}})
	return t, nil
}

// Start starts the tend loop. The first tend begins at once.
func (t *Tender) Start() {
	if t.started.CompareAndSwap(false, true) {
		go t.loop()
	}
}

// Close stops the tend loop, waits for it and closes every pool (idle
// connections now, busy ones when they are returned).
func (t *Tender) Close() {
	t.once.Do(func() {
		t.cancel()
		if t.started.Load() {
			<-t.done
		}
		t.mu.Lock()
		nodes := slices.Collect(maps.Values(t.nodes))
		removing := t.removing
		t.nodes, t.removing = map[string]*Node{}, nil
		t.mu.Unlock()
		for _, n := range removing {
			if n.removeTimer.Stop() {
				n.pool.Close()
			}
		}
		for _, n := range nodes {
			n.pool.Close()
			closeProbe(n)
		}
	})
}

// Demote tells the tender that a write found n no longer a primary: the
// server refused it as read-only (PostgreSQL SQLSTATE 25006) or was
// shutting down (57P01), the signs of a failover the tender has not seen
// yet. The user API calls it before it retries the write. From then on,
// until a probe that begins after the call tells n's role again, n takes
// no writes (Snapshot.Pick returns nil for them rather than n, so the
// write waits for the tender); its pool is cleared so that no connection
// made while it was the primary serves a write again; and a refresh is
// asked for. err is what the write met; it is logged. A call while n is
// already demoted only asks for the refresh.
func (t *Tender) Demote(n *Node, err error) {
	if n != nil && n.demote() {
		why := fmt.Errorf("node %s demoted: a write met: %w", n.Name(), err)
		if n.pool != nil {
			n.pool.Clear(why)
			n.pool.Ready()
		}
		t.log.Warn("tendril: a write found the primary demoted; no writes to it until a probe tells its role",
			"node", n.Name(), "addr", n.addr, "err", err)
	}
	t.Refresh()
}

// Snapshot returns the current view of the cluster.
func (t *Tender) Snapshot() *Snapshot { return t.snap.Load() }

// Stats returns the tender's counters.
func (t *Tender) Stats() Stats {
	return Stats{
		Tends: t.c.tends.Load(), TendsFailed: t.c.tendsFailed.Load(), TendOverruns: t.c.tendOverruns.Load(),
		Probes: t.c.probes.Load(), PeerFetches: t.c.peerFetches.Load(), MapFetches: t.c.mapFetches.Load(),
		MapUpdates: t.c.mapUpdates.Load(), Patches: t.c.patches.Load(),
		NodesAdded: t.c.nodesAdded.Load(), NodesRemoved: t.c.nodesRemoved.Load(),
		RefreshesTriggered: t.c.refreshes.Load(), RefreshesSuppressed: t.c.refreshesSuppressed.Load(),
	}
}

// Wait returns a snapshot with at least one healthy node, waiting for tends
// until ctx is done. The error then says why the last tend found none.
func (t *Tender) Wait(ctx context.Context) (*Snapshot, error) {
	for {
		if s := t.snap.Load(); hasHealthy(s) {
			return s, nil
		}
		t.mu.Lock()
		ch, last := t.tended, t.lastErr
		t.mu.Unlock()
		if s := t.snap.Load(); hasHealthy(s) {
			return s, nil
		}
		if errors.Is(last, driver.ErrAuthFailed) {
			// Waiting cannot help: the credentials are wrong.
			return nil, fmt.Errorf("no healthy node: %w", last)
		}
		t.Refresh()
		select {
		case <-ch:
		case <-ctx.Done():
			if last == nil {
				// The first tend can outlast a short context (thousands of
				// seeds that do not answer): say so rather than nothing.
				return nil, fmt.Errorf("waiting for a healthy node: %w (the first tend has not finished)", ctx.Err())
			}
			return nil, fmt.Errorf("waiting for a healthy node: %w (last tend: %w)", ctx.Err(), last)
		case <-t.ctx.Done():
			return nil, fmt.Errorf("waiting for a healthy node: tender closed: %w", ErrNoNodes)
		}
	}
}

func hasHealthy(s *Snapshot) bool {
	for _, n := range s.nodes {
		if n.Healthy() {
			return true
		}
	}
	return false
}

// Tended returns a channel that is closed when the tend running now (or,
// between tends, the next one) ends, so that an operation waiting for the
// topology to change is woken by the tend that may have changed it.
func (t *Tender) Tended() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tended
}

// WaitFirst waits for the first tend to end and reports whether it found a
// healthy node, with the reasons when it did not.
func (t *Tender) WaitFirst(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for the first tend: %w", err)
	}
	select {
	case <-t.first:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the first tend: %w", ctx.Err())
	case <-t.ctx.Done():
		return fmt.Errorf("tender closed: %w", ErrNoNodes)
	}
	if hasHealthy(t.snap.Load()) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr == nil {
		return ErrNoNodes
	}
	return t.lastErr
}

// Refresh asks for a tend now: after a redirect, a refused or reset
// connection or a timeout. Requests are single-flight (one pending at most)
// and at least RefreshCooldown apart, so an error storm cannot become a
// refresh storm.
func (t *Tender) Refresh() {
	now := time.Now().UnixNano()
	last := t.lastRefresh.Load()
	if now-last < int64(t.cfg.RefreshCooldown) || !t.lastRefresh.CompareAndSwap(last, now) {
		t.c.refreshesSuppressed.Add(1)
		return
	}
	select {
	case t.refresh <- struct{}{}:
		t.c.refreshes.Add(1)
	default:
		t.c.refreshesSuppressed.Add(1)
	}
}

// Redirect handles a redirect to addr: it returns the node at addr
// (adding it to the table when it is new; the next tend validates it) and,
// unless ask is set, patches the partition to it at once, then asks for a
// refresh so the full map follows.
func (t *Tender) Redirect(partition int, addr string, ask bool) *Node {
	t.mu.Lock()
	n := t.nodes[addr]
	changed := n == nil
	if changed {
		n = t.newNode(addr, "")
		n.healthy.Store(true) // a cluster member named it; the next tend checks
		t.add(n)
	}
	if !ask && partition >= 0 && partition < len(t.parts) && t.shardOf(partition).primary != n {
		t.patch(partition, n)
		changed = true
	}
	if changed {
		t.publish()
	}
	t.mu.Unlock()
	t.Refresh()
	return n
}

func (t *Tender) shardOf(p int) shard {
	if i := t.parts[p]; i >= 0 {
		return t.shards[i]
	}
	return shard{}
}

// patch points partition p at a shard whose primary is n. Called with mu.
func (t *Tender) patch(p int, n *Node) {
	t.c.patches.Add(1)
	idx := slices.IndexFunc(t.shards, func(s shard) bool { return s.primary == n })
	if idx < 0 {
		t.shards = append(slices.Clip(t.shards), shard{primary: n})
		idx = len(t.shards) - 1
	}
	t.parts = slices.Clone(t.parts)
	t.parts[p] = int32(idx)
}

func (t *Tender) loop() {
	defer close(t.done)
	ticker := time.NewTicker(t.cfg.TendInterval)
	defer ticker.Stop()
	for {
		t.tend()
		select {
		case <-t.ctx.Done():
			return
		case <-ticker.C:
		case <-t.refresh:
			// A little jitter keeps many clients that saw the same failure
			// from refreshing in lockstep.
			j := time.NewTimer(rand.N(t.cfg.RefreshCooldown/8 + 1))
			select {
			case <-j.C:
			case <-t.ctx.Done():
				j.Stop()
				return
			}
		}
	}
}

// probeResult is one node's answer to a probe.
type probeResult struct {
	n         *Node
	st        driver.NodeStatus
	err       error
	demotions uint64 // the node's Demote count when the probe began
}

// Bounds of seed probing beyond the last resort.
const (
	maxSeedProbes = 16 // seed addresses probed per round
	maxResolves   = 16 // seeds resolved at once
)

// seedEvery is the least time between two rounds of seed probes made
// while the table has healthy nodes.
func (t *Tender) seedEvery() time.Duration { return min(3*t.cfg.TendInterval, 10*time.Second) }

// rejectFor is how long an address refused for its view is not probed
// again as a peer or a seed.
func (t *Tender) rejectFor() time.Duration { return min(10*t.cfg.TendInterval, time.Minute) }

// tend runs one round: probe, choose a view, learn, remove, publish.
func (t *Tender) tend() {
	start := time.Now()
	t.c.tends.Add(1)
	ctx := t.ctx
	topo := t.caps.Has(driver.CapTopology)
	for a, until := range t.rejected {
		if start.After(until) {
			delete(t.rejected, a)
		}
	}

	t.mu.Lock()
	known := slices.Collect(maps.Values(t.nodes))
	dormant := make([]string, 0, len(t.dormant))
	for a := range t.dormant {
		dormant = append(dormant, a)
	}
	t.mu.Unlock()

	// Candidates are addresses to try that are not in the table: dormant
	// peers; all seeds (every address of each) when no known node is
	// healthy; a few seeds when the table serves some partitions with no
	// primary (a reset node may be all the table holds: the seeds bring
	// the cluster back); without a partition map, the seeds missing from
	// the table, every tend (a few at a time for a long DSN): no peer
	// list names them, so a host down at start joins when it answers.
	flat := !topo || t.flat
	allFailed := !slices.ContainsFunc(known, func(n *Node) bool { return n.failures.Load() == 0 && n.statusKnown })
	var errs *multierror.Error
	cands := map[string]bool{} // address -> reached through the seeds
	for _, a := range dormant {
		cands[a] = false
	}
	switch {
	case allFailed:
		addrs, err := t.resolveSeeds(ctx, t.cfg.Seeds)
		errs = errlist.Append(errs, err)
		for _, a := range addrs {
			cands[a] = true
		}
		t.lastSeeds = start
	case topo && t.wantSeeds && start.Sub(t.lastSeeds) >= t.seedEvery():
		for _, a := range t.sampleSeeds(ctx, known) {
			cands[a] = true
		}
		t.lastSeeds = start
	case flat:
		for _, a := range t.missingSeeds(known) {
			cands[a] = true
		}
	}
	var candNodes []*Node
	fromSeeds := map[*Node]bool{}
	for a, seed := range cands {
		if !slices.ContainsFunc(known, func(n *Node) bool { return n.addr == a }) {
			n := t.newProbeNode(a)
			candNodes = append(candNodes, n)
			fromSeeds[n] = seed
		}
	}

	results := t.probeAll(ctx, append(slices.Clone(known), candNodes...))
	if ctx.Err() != nil {
		closeProbes(candNodes)
		return
	}

	changed := t.stale
	var healthy []*Node // known nodes that answered
	for _, r := range results[:len(known)] {
		n := r.n
		if r.err != nil {
			t.nodeFailed(n, r.err)
			errs = errlist.Append(errs, r.err) // says why, if no node is left healthy
			changed = true
			continue
		}
		if t.nodeAnswered(n) {
			changed = true
		}
		if n.setStatus(r.st) {
			changed = true
		}
		t.observe(n, r.st, r.demotions)
		healthy = append(healthy, n)
	}
	joiners := t.answered(results[len(known):], &errs)
	t.removeFailed()

	switch {
	case !topo:
		t.admit(joiners)
	case changed || len(joiners) > 0:
		t.follow(ctx, healthy, joiners, fromSeeds, &errs)
	}

	t.mu.Lock()
	prev := t.snap.Load()
	t.publish()
	now := t.snap.Load()
	healthyNow := hasHealthy(now)
	t.wantSeeds = topo && (t.wantSeeds && t.guardKey != viewKey{} || t.unserved())
	if !healthyNow {
		t.c.tendsFailed.Add(1)
		if errs.ErrorOrNil() == nil {
			errs = errlist.Append(errs, fmt.Errorf("%d known nodes, none healthy", len(t.nodes)))
		}
		t.lastErr = errs
	} else {
		t.lastErr = nil
	}
	close(t.tended)
	t.tended = make(chan struct{})
	if t.c.tends.Load() == 1 {
		close(t.first)
	}
	table := slices.Collect(maps.Values(t.nodes))
	t.mu.Unlock()
	t.views.prune(table)
	t.elected(prev, now)

	d := time.Since(start)
	if d > t.cfg.TendInterval {
		t.c.tendOverruns.Add(1)
		t.log.Warn("tendril: tend overran its interval", "took", d, "interval", t.cfg.TendInterval)
	}
	if t.cfg.OnTend != nil {
		t.cfg.OnTend(d, healthyNow)
	}
}

// unserved reports whether the table has no map or a partition without a
// primary in the table. Called with mu.
func (t *Tender) unserved() bool {
	if t.parts == nil {
		return true
	}
	return slices.ContainsFunc(t.parts, func(i int32) bool { return i < 0 || t.shards[i].primary == nil })
}

// answered returns the candidates that answered their probe, with their
// status recorded; the others' errors are kept and their probes closed.
func (t *Tender) answered(results []probeResult, errs **multierror.Error) []probeResult {
	var out []probeResult
	for _, r := range results {
		if r.err != nil {
			*errs = errlist.Append(*errs, r.err)
			t.authFailed(r.n.addr, r.err)
			if errors.Is(r.err, ErrClusterNameMismatch) {
				t.refuse(r.n.addr, r.err)
			}
			closeProbe(r.n)
			continue
		}
		r.n.setStatus(r.st)
		out = append(out, r)
	}
	return out
}

// follow chooses the view to follow among those of the nodes that
// answered (see choose), admits the candidates it vouches for, learns the
// peers it names, removes the nodes it excludes and rebuilds the map.
func (t *Tender) follow(ctx context.Context, healthy []*Node, joiners []probeResult, fromSeeds map[*Node]bool, errs **multierror.Error) {
	holders := slices.Clone(healthy)
	for _, r := range joiners {
		holders = append(holders, r.n)
	}
	t.fetchViews(ctx, holders)
	cands := t.candidates(holders, holders)
	if len(cands) > 0 {
		flat := !slices.ContainsFunc(cands, func(c *candidate) bool { return c.mv.m.Partitions > 0 })
		if flat != t.flat {
			t.mu.Lock()
			t.flat = flat
			t.mu.Unlock()
		}
	}
	if t.flat {
		t.followHosts(joiners)
		return
	}
	c := choose(cands, t.applied)
	if c == nil {
		// No view could be fetched: nothing says who belongs, so admit
		// what answered and choose again next tend.
		t.stale = true
		t.admit(joiners)
		return
	}
	t.stale = false
	if len(cands) > 1 {
		t.log.Debug("tendril: nodes disagree on the topology", "views", len(cands),
			"following", c.holders[0].Name(), "held_by", len(c.holders), "serving", c.served, "isolated", c.isolated)
	}
	own := map[*Node]*candidate{}
	for _, cd := range cands {
		for _, h := range cd.holders {
			own[h] = cd
		}
	}

	// A candidate joins when the view names its address, or when it holds
	// the view itself and no node of the table has its id: a seed written
	// otherwise than the cluster advertises it, replaced by the advertised
	// address below. Another one is refused, and remembered when its view
	// excludes the cluster (a reset node, another cluster's node).
	t.mu.Lock()
	ids := map[string]bool{}
	for _, n := range t.nodes {
		if id := n.ID(); id != "" {
			ids[id] = true
		}
	}
	t.mu.Unlock()
	var accept []probeResult
	for _, r := range joiners {
		switch {
		case c.pv.namesAddr(r.n.addr):
			accept = append(accept, r)
		case own[r.n] == c && r.st.ID != "" && !ids[r.st.ID]:
			ids[r.st.ID] = true
			accept = append(accept, r)
		default:
			if cd := own[r.n]; cd != nil && cd.excluded() {
				t.reject(r.n, cd)
			}
			closeProbe(r.n)
		}
	}
	t.admit(accept)
	t.named = c.pv
	t.learnPeers(ctx, c, errs)
	t.removeExcluded(c, cands, fromSeeds)

	t.mu.Lock()
	if c.key != t.applied || t.members != t.mapMembers {
		t.buildMap(c.mv.m)
		t.applied, t.mapMembers = c.key, t.members
	}
	t.mu.Unlock()
}

// followHosts is follow for a backend without a partition map: every DSN
// host that answers and reports the cluster followed joins (see vet and
// distinct); views name no one else and remove no one, and nodes leave
// only when they fail (see removeFailed).
func (t *Tender) followHosts(joiners []probeResult) {
	t.stale, t.named = false, nil
	t.admit(t.distinct(joiners))
	t.mu.Lock()
	if t.parts == nil || len(t.parts) > 0 {
		t.buildMap(driver.PartitionMap{})
		t.applied = viewKey{}
	}
	t.mu.Unlock()
}

// distinct drops the joiners that are another address of a node the table
// holds and that answers (or of an earlier joiner, in seed order): two DSN
// hosts reaching one server (localhost and 127.0.0.1) must not become two
// nodes, which would be two primaries. A node whose old address is down
// is replaced by admit instead.
func (t *Tender) distinct(joiners []probeResult) []probeResult {
	at := map[string]string{} // id -> address
	t.mu.Lock()
	for _, n := range t.nodes {
		if id := n.ID(); id != "" && n.healthy.Load() {
			at[id] = n.addr
		}
	}
	t.mu.Unlock()
	slices.SortStableFunc(joiners, func(a, b probeResult) int { return cmp.Compare(t.seedRank(a.n.addr), t.seedRank(b.n.addr)) })
	out := joiners[:0]
	for _, r := range joiners {
		if a, ok := at[r.st.ID]; ok && r.st.ID != "" && a != r.n.addr {
			t.refuse(r.n.addr, fmt.Errorf("node %s at %s is already followed at %s", r.st.ID, r.n.addr, a))
			closeProbe(r.n)
			continue
		}
		if r.st.ID != "" {
			at[r.st.ID] = r.n.addr
		}
		out = append(out, r)
	}
	return out
}

// refuse keeps addr out of the table for a while (it is not probed as a
// seed or a peer again before rejectFor). Why is logged once, not every
// time the address is tried again, until the reason changes or the
// address joins.
func (t *Tender) refuse(addr string, why error) {
	if msg := why.Error(); t.refused[addr] != msg {
		t.refused[addr] = msg
		t.log.Warn("tendril: node refused", "addr", addr, "reason", why)
	}
	t.rejected[addr] = time.Now().Add(t.rejectFor())
}

// reject remembers that n was refused for its view, so it is not probed
// as a peer or a seed again for a while.
func (t *Tender) reject(n *Node, cd *candidate) {
	t.rejected[n.addr] = time.Now().Add(t.rejectFor())
	why := "its view excludes the rest of the cluster"
	if cd.empty {
		why = "it left the cluster: its view assigns no partition and lists only itself"
	}
	t.log.Warn("tendril: node refused", "node", n.Name(), "addr", n.addr, "reason", why,
		"peers", len(cd.pv.peers), "partitions", cd.mv.served(func(string) bool { return true }))
}

// removeExcluded removes the nodes the view c excludes:
//
//   - a node whose own view is empty (it says it left: CLUSTER RESET) or
//     isolated (another cluster's node), when c is not that view;
//   - a node whose address no view lists but its own: not c, and not a
//     view of the cluster that another node holds (a node the cluster
//     forgot; a seed written otherwise than the cluster advertises it).
//
// A node whose own view is empty removes itself. The other removals rest
// on c alone: when they would take more than half of the healthy nodes,
// c must be confirmed by a second node holding it or by a seed holding
// it; otherwise nothing is removed this tend (logged at WARN once per
// view) and the seeds are probed.
func (t *Tender) removeExcluded(c *candidate, cands []*candidate, fromSeeds map[*Node]bool) {
	own := map[*Node]*candidate{}
	for _, cd := range cands {
		for _, h := range cd.holders {
			own[h] = cd
		}
	}
	vouched := func(n *Node) bool {
		if c.pv.namesAddr(n.addr) {
			return true
		}
		for _, cd := range cands {
			if cd != c && cd.tier() == 0 && cd.pv.namesAddr(n.addr) &&
				slices.ContainsFunc(cd.holders, func(h *Node) bool { return h != n }) {
				return true
			}
		}
		return false
	}
	type removal struct {
		n      *Node
		reason string
		reject bool // refused as a peer or a seed for a while
	}
	t.mu.Lock()
	var left, drop []removal // left: nodes whose view is empty
	healthy, dropHealthy := 0, 0
	for _, n := range t.nodes {
		h := n.healthy.Load()
		if h {
			healthy++
		}
		cd := own[n]
		switch {
		case cd != nil && cd != c && cd.empty:
			left = append(left, removal{n, "it left the cluster: its view assigns no partition and lists only itself", true})
			continue
		case cd != nil && cd != c && cd.isolated:
			drop = append(drop, removal{n, "its view excludes the rest of the cluster", true})
		case !vouched(n):
			drop = append(drop, removal{n, "no other node lists it", false})
		default:
			continue
		}
		if h {
			dropHealthy++
		}
	}
	confirmed := len(c.holders) >= 2 || slices.ContainsFunc(c.holders, func(h *Node) bool {
		return fromSeeds[h] || t.seedAddrs[h.addr]
	})
	if 2*dropHealthy > healthy && !confirmed {
		if t.guardKey != c.key {
			t.guardKey = c.key
			t.log.Warn("tendril: a view would remove most nodes; nothing removed until a second node or a seed holds it",
				"node", c.holders[0].Name(), "addr", c.holders[0].addr, "would_remove", len(drop), "healthy", healthy)
		}
		t.wantSeeds = true
		drop = nil
	} else {
		t.guardKey = viewKey{}
	}
	var gone []*Node
	for _, d := range slices.Concat(left, drop) {
		t.remove(d.n, d.reason)
		delete(t.dormant, d.n.addr)
		gone = append(gone, d.n)
	}
	t.mu.Unlock()
	for _, d := range slices.Concat(left, drop) {
		if d.reject {
			t.rejected[d.n.addr] = time.Now().Add(t.rejectFor())
		}
	}
	t.retire(gone)
}

// authFailed logs, once per address until it answers again, that a node
// refused the credentials. The error names the user at most: drivers never
// put a password in an error.
func (t *Tender) authFailed(addr string, err error) {
	if !errors.Is(err, driver.ErrAuthFailed) {
		return
	}
	t.mu.Lock()
	logged := t.authLogged[addr]
	t.authLogged[addr] = true
	t.mu.Unlock()
	if !logged {
		t.log.Error("tendril: authentication failed", "addr", addr, "err", err)
	}
}

// authOK forgets a logged authentication failure of addr.
func (t *Tender) authOK(addr string) {
	t.mu.Lock()
	delete(t.authLogged, addr)
	t.mu.Unlock()
}

// resolveSeeds returns every address of every seed, in seed order,
// resolving up to maxResolves seeds at once, each bounded by Timeout.
func (t *Tender) resolveSeeds(ctx context.Context, seeds []string) ([]string, error) {
	res, _ := t.cfg.Connector.(driver.Resolver)
	addrs := make([][]string, len(seeds))
	errs := make([]error, len(seeds))
	sem := make(chan struct{}, maxResolves)
	var wg sync.WaitGroup
	for i, seed := range seeds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
			defer cancel()
			if res != nil {
				addrs[i], errs[i] = res.Resolve(rctx, seed)
			} else {
				addrs[i], errs[i] = resolveDNS(rctx, seed)
			}
		}()
	}
	wg.Wait()
	var out []string
	var merr *multierror.Error
	for i, seed := range seeds {
		if errs[i] != nil {
			merr = errlist.Append(merr, fmt.Errorf("seed %s: %w", seed, errs[i]))
			continue
		}
		out = append(out, addrs[i]...)
		t.resolved[seed] = addrs[i]
		for _, a := range addrs[i] {
			t.seedAddrs[a] = true
		}
	}
	return out, merr.ErrorOrNil()
}

// sampleSeeds returns the addresses of up to maxSeedProbes seeds that are
// not in the table, taking the seeds in turn from where the last round
// stopped, so that a DSN of thousands of seeds costs a few probes a round.
func (t *Tender) sampleSeeds(ctx context.Context, known []*Node) []string {
	inTable := make(map[string]bool, len(known))
	for _, n := range known {
		inTable[n.addr] = true
	}
	skip := func(a string) bool {
		_, rejected := t.rejected[a]
		return rejected || inTable[a]
	}
	var picked []string
	i := 0
	for ; i < len(t.cfg.Seeds) && len(picked) < maxSeedProbes; i++ {
		if s := t.cfg.Seeds[(t.seedCursor+i)%len(t.cfg.Seeds)]; !skip(s) {
			picked = append(picked, s)
		}
	}
	t.seedCursor = (t.seedCursor + i) % len(t.cfg.Seeds)
	addrs, err := t.resolveSeeds(ctx, picked)
	if err != nil {
		t.log.Debug("tendril: resolving seeds", "err", err)
	}
	addrs = slices.DeleteFunc(addrs, skip)
	return addrs[:min(len(addrs), maxSeedProbes)]
}

// seedAddrsOf returns the addresses seed resolved to last, or seed itself
// before it has been resolved.
func (t *Tender) seedAddrsOf(seed string) []string {
	if a, ok := t.resolved[seed]; ok {
		return a
	}
	return []string{seed}
}

// seedRank returns the position in the DSN of the first seed that stands
// for addr, or len(Seeds) when none does.
func (t *Tender) seedRank(addr string) int {
	for i, seed := range t.cfg.Seeds {
		if slices.Contains(t.seedAddrsOf(seed), addr) {
			return i
		}
	}
	return len(t.cfg.Seeds)
}

// missingSeeds returns the seed addresses (as last resolved: no DNS
// lookup) that are not in the table and not refused, taking the seeds in
// turn from where the last call stopped, about maxSeedProbes a call.
func (t *Tender) missingSeeds(known []*Node) []string {
	inTable := make(map[string]bool, len(known))
	for _, n := range known {
		inTable[n.addr] = true
	}
	var picked []string
	i := 0
	for ; i < len(t.cfg.Seeds) && len(picked) < maxSeedProbes; i++ {
		for _, a := range t.seedAddrsOf(t.cfg.Seeds[(t.seedCursor+i)%len(t.cfg.Seeds)]) {
			if _, rejected := t.rejected[a]; !rejected && !inTable[a] && !slices.Contains(picked, a) {
				picked = append(picked, a)
			}
		}
	}
	t.seedCursor = (t.seedCursor + i) % len(t.cfg.Seeds)
	return picked
}

// resolveDNS returns every address of a host:port seed; IP addresses and
// seeds without a port are returned as they are, and so is a name DNS
// does not know: the driver's dialer may (and its error says it best).
func resolveDNS(ctx context.Context, seed string) ([]string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil || net.ParseIP(host) != nil {
		return []string{seed}, nil
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil || len(ips) == 0 {
		return []string{seed}, nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}

// probeAll probes nodes in parallel, each bounded by Timeout, and vets
// what they report.
func (t *Tender) probeAll(ctx context.Context, nodes []*Node) []probeResult {
	// One deadline for the round, not a context and a timer per probe:
	// the probes start together, so each is still bounded by Timeout,
	// and a tend of 1000 nodes makes 4000 allocations less.
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	out := make([]probeResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := n.demotions.Load() // before the probe: see Node.vouch
			st, err := t.probe(ctx, n)
			out[i] = probeResult{n: n, st: st, err: err, demotions: d}
		}()
	}
	wg.Wait()
	t.vet(out)
	return out
}

// vet fails the probes of nodes that report another cluster than the one
// followed: servers of two databases listed in one DSN must never be
// mixed (a write would go to whichever is primary). The cluster followed
// is ClusterName (checked by probe) or, without it, the first one seen:
// the name most nodes report in the first probes that report one (ties go
// to the earliest seed). It is kept for the tender's life, so servers of
// another database that answer later cannot take over, however many.
// Nodes reporting no name (Redis) are not checked.
func (t *Tender) vet(results []probeResult) {
	if t.cfg.ClusterName != "" {
		return
	}
	if t.identity == "" {
		type tally struct{ n, rank int }
		seen := map[string]*tally{}
		for _, r := range results {
			if r.err != nil || r.st.ClusterName == "" {
				continue
			}
			c := seen[r.st.ClusterName]
			if c == nil {
				c = &tally{rank: len(t.cfg.Seeds) + 1}
				seen[r.st.ClusterName] = c
			}
			c.n++
			c.rank = min(c.rank, t.seedRank(r.n.addr))
		}
		if len(seen) == 0 {
			return
		}
		t.identity = slices.MinFunc(slices.Sorted(maps.Keys(seen)), func(a, b string) int {
			if c := cmp.Compare(seen[b].n, seen[a].n); c != 0 {
				return c
			}
			return cmp.Compare(seen[a].rank, seen[b].rank)
		})
		if len(seen) > 1 {
			t.log.Warn("tendril: the DSN hosts report several clusters; following the first seen (set cluster_name to choose)",
				"cluster", t.identity, "clusters", len(seen))
		}
	}
	for i := range results {
		r := &results[i]
		if r.err == nil && r.st.ClusterName != "" && r.st.ClusterName != t.identity {
			closeProbe(r.n)
			r.err = fmt.Errorf("node %s: probe: %w: node reports cluster %q, but the cluster followed is %q (the first one seen; set cluster_name to choose)",
				r.n.addr, ErrClusterNameMismatch, r.st.ClusterName, t.identity)
		}
	}
}

// probe asks one node for its status over the node's own tend connection,
// within ctx (bounded by Timeout: see probeAll).
func (t *Tender) probe(ctx context.Context, n *Node) (driver.NodeStatus, error) {
	t.c.probes.Add(1)
	if n.probe == nil {
		cn, err := t.cfg.Connector.Connect(ctx, n.addr)
		if err != nil {
			return driver.NodeStatus{}, fmt.Errorf("node %s: connect: %w", n.addr, err)
		}
		n.probe = cn
	}
	var st driver.NodeStatus
	var err error
	switch p := n.probe.(type) {
	case driver.Prober:
		st, err = p.Probe(ctx)
	case driver.Pinger:
		err = p.Ping(ctx)
		st = driver.NodeStatus{ID: n.addr, Role: driver.RolePrimary, Healthy: true}
	default:
		st = driver.NodeStatus{ID: n.addr, Role: driver.RolePrimary, Healthy: true}
	}
	if err == nil && t.cfg.ClusterName != "" && st.ClusterName != t.cfg.ClusterName {
		err = fmt.Errorf("%w: node reports cluster %q, want %q", ErrClusterNameMismatch, st.ClusterName, t.cfg.ClusterName)
	}
	if err == nil && !st.Healthy {
		err = errors.New("node reports itself unhealthy")
	}
	if err != nil {
		closeProbe(n)
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return st, fmt.Errorf("node %s: probe: %w", n.addr, err)
	}
	return st, nil
}

func closeProbe(n *Node) {
	if n.probe != nil {
		n.probe.Close()
		n.probe = nil
	}
}

func closeProbes(nodes []*Node) {
	for _, n := range nodes {
		closeProbe(n)
	}
}

// nodeFailed records a failed probe: the first failure clears the pool so
// waiters fail fast instead of queueing behind a dead node.
func (t *Tender) nodeFailed(n *Node, err error) {
	t.authFailed(n.addr, err)
	if n.failures.Add(1) == 1 {
		n.healthy.Store(false)
		n.pool.Clear(err)
		t.log.Warn("tendril: node down, pool cleared", "node", n.Name(), "addr", n.addr, "err", err)
	}
}

// nodeAnswered records a successful probe and reports whether the node
// had failed before.
func (t *Tender) nodeAnswered(n *Node) bool {
	n.breaker.Store(0)
	recovered := n.failures.Swap(0) > 0
	if recovered {
		n.pool.Ready()
		t.authOK(n.addr)
		t.log.Warn("tendril: node recovered", "node", n.Name(), "addr", n.addr)
	}
	n.healthy.Store(true)
	return recovered
}

// observe records the role and the epoch a successful probe reported (d:
// the node's demotion count when the probe began). The probe's role is
// authoritative: without a partition map always (so RoleUnknown too), with
// one whenever it reports a role (the map says the rest; see buildMap).
// Without a partition map the roles route writes, so a primary that steps
// down has its pool cleared (see demoted). Called by the tend loop.
func (t *Tender) observe(n *Node, st driver.NodeStatus, d uint64) {
	n.vouch(d)
	n.epoch.Store(st.Epoch)
	n.reported = st.Role
	if st.Role == driver.RoleUnknown && !t.flat {
		return
	}
	old := driver.Role(n.role.Swap(int32(st.Role)))
	if old == st.Role || !t.flat {
		return
	}
	if old == driver.RolePrimary {
		t.demoted(n, fmt.Errorf("node %s was demoted: it reports role %s (epoch %d)", n.Name(), st.Role, st.Epoch))
		return
	}
	t.log.Warn("tendril: node role changed", "node", n.Name(), "addr", n.addr, "from", old, "to", st.Role, "epoch", st.Epoch)
}

// demoted clears the pool of a node that stopped taking writes while it
// still answers, so that no connection made while it was the primary
// serves a write again (idle ones close now, busy ones when returned), and
// opens it again at once: the node may still serve reads.
func (t *Tender) demoted(n *Node, why error) {
	n.pool.Clear(why)
	n.pool.Ready()
	t.log.Warn("tendril: primary demoted, pool cleared", "node", n.Name(), "addr", n.addr, "reason", why)
}

// elected follows the primary of a backend without a partition map from
// one snapshot to the next: the pool of a primary that lost the writes
// while it still answers and claims them (a newer primary fenced it, or
// another claims the same epoch) is cleared like a demoted one's; a
// two-primaries episode is logged once at WARN when it begins (naming the
// nodes and their epochs) and at INFO when it ends. Called by the tend
// loop.
func (t *Tender) elected(prev, s *Snapshot) {
	if p := prev.primary; p != nil && p != s.primary && s.byAddr[p.addr] == p && p.healthy.Load() && p.Role() == driver.RolePrimary {
		t.demoted(p, fmt.Errorf("node %s was fenced: another node claims the primary role (%s)", p.Name(), labels(s.claims, s.newer)))
	}
	key := ""
	if len(s.claims) > 1 || s.newer != nil {
		key = labels(s.claims, s.newer)
	}
	if key == t.split {
		return
	}
	ended := t.split != "" && key == ""
	t.split = key
	switch {
	case ended && s.primary != nil:
		t.log.Info("tendril: one primary again", "primary", label(s.primary))
	case ended:
		t.log.Info("tendril: two-primaries episode over; no primary answers", "nodes", len(s.nodes))
	case s.newer != nil:
		t.log.Warn("tendril: two primaries: a newer one is down; no writes until it is resolved",
			"claims", labels(s.claims, nil), "newer", label(s.newer))
	case s.primary != nil:
		t.log.Warn("tendril: two primaries: the one of the newer epoch takes writes",
			"primary", label(s.primary), "stale", labels(slices.DeleteFunc(slices.Clone(s.claims), func(n *Node) bool { return n == s.primary }), nil))
	default:
		t.log.Warn("tendril: two primaries of the same epoch: no writes until one steps down", "nodes", labels(s.claims, nil))
	}
}

// label names a node and its epoch for a log line.
func label(n *Node) string {
	if id := n.ID(); id != "" && id != n.addr {
		return fmt.Sprintf("%s at %s (epoch %d)", id, n.addr, n.Epoch())
	}
	return fmt.Sprintf("%s (epoch %d)", n.addr, n.Epoch())
}

func labels(nodes []*Node, more *Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, label(n))
	}
	if more != nil {
		out = append(out, label(more))
	}
	return strings.Join(out, ", ")
}

// newProbeNode returns a node without a pool, to probe a candidate.
func (t *Tender) newProbeNode(addr string) *Node {
	return &Node{addr: addr}
}

// newNode returns a node with its pool. Called with mu or before publishing.
func (t *Tender) newNode(addr, id string) *Node {
	n := &Node{addr: addr}
	n.setID(id)
	pc := t.cfg.Pool
	pc.Name = addr
	connector := t.cfg.Connector
	pc.Dial = func(ctx context.Context) (driver.Conn, error) { return connector.Connect(ctx, addr) }
	pool, err := puddlepool.New(pc)
	if err != nil {
		// The template was validated when the tender was made; a failure
		// here is a programming error.
		panic(fmt.Sprintf("topology: pool for %s: %v", addr, err))
	}
	n.pool = pool
	return n
}

// admit adds candidates that answered, replacing a known node whose
// address changed (same id, new address).
func (t *Tender) admit(results []probeResult) []*Node {
	var added, gone []*Node
	for _, r := range results {
		t.mu.Lock()
		delete(t.dormant, r.n.addr)
		delete(t.authLogged, r.n.addr)
		delete(t.refused, r.n.addr)
		if t.nodes[r.n.addr] != nil {
			// Added meanwhile (by a redirect): the next tend probes it.
			t.mu.Unlock()
			closeProbe(r.n)
			continue
		}
		n := t.newNode(r.n.addr, r.st.ID)
		n.probe = r.n.probe
		n.setStatus(r.st)
		n.role.Store(int32(r.st.Role))
		n.reported = r.st.Role
		n.epoch.Store(r.st.Epoch)
		n.healthy.Store(true)
		for _, old := range t.nodes {
			if r.st.ID != "" && old.ID() == r.st.ID && old.addr != n.addr {
				t.log.Warn("tendril: node address changed", "node", old.ID(), "from", old.addr, "to", n.addr)
				t.remove(old, "its address changed")
				gone = append(gone, old)
			}
		}
		t.add(n)
		t.mu.Unlock()
		added = append(added, n)
	}
	t.retire(gone)
	return added
}

// add puts n in the table. Called with mu.
func (t *Tender) add(n *Node) {
	t.nodes[n.addr] = n
	t.members++
	t.c.nodesAdded.Add(1)
	// Nodes found by the first tend are the initial discovery; a node
	// that appears later is a topology change worth a warning.
	level := slog.LevelWarn
	if t.c.tends.Load() <= 1 {
		level = slog.LevelInfo
	}
	t.log.Log(t.ctx, level, "tendril: node added", "node", n.Name(), "addr", n.addr)
}

// remove takes n out of the table and schedules its pool's close after
// the grace period, so work in flight can finish; the caller then retires
// it, outside mu. Called with mu.
func (t *Tender) remove(n *Node, reason string) {
	if t.nodes[n.addr] != n {
		return
	}
	delete(t.nodes, n.addr)
	t.members++
	t.c.nodesRemoved.Add(1)
	t.log.Warn("tendril: node removed", "node", n.Name(), "addr", n.addr, "reason", reason, "failures", n.failures.Load())
	n.healthy.Store(false)
	n.removedAt = time.Now()
	n.removeTimer = time.AfterFunc(t.cfg.RemoveGrace, n.pool.Close)
	t.removing = append(t.removing, n)
}

// retire pauses the pools of removed nodes (idle connections close now,
// the rest when returned; the pool closes after the grace period) and
// closes their tend connections.
func (t *Tender) retire(nodes []*Node) {
	for _, n := range nodes {
		n.pool.Pause()
		closeProbe(n)
	}
}

// learnPeers probes the addresses the view c names that are not in the
// table and admits those that answer, unless their own view excludes the
// cluster (a node the cluster still lists but that was reset). Peers that
// do not answer stay dormant: probed every tend until they answer or
// leave the view; dormant addresses the view no longer names are
// forgotten.
func (t *Tender) learnPeers(ctx context.Context, c *candidate, errs **multierror.Error) {
	var fresh []*Node
	t.mu.Lock()
	for _, a := range c.pv.addrs {
		if _, rejected := t.rejected[a]; t.nodes[a] == nil && !t.dormant[a] && !rejected {
			fresh = append(fresh, t.newProbeNode(a))
		}
	}
	for a := range t.dormant {
		if !c.pv.namesAddr(a) {
			delete(t.dormant, a)
		}
	}
	t.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	joiners := t.answered(t.probeAll(ctx, fresh), errs)
	if len(joiners) > 0 {
		holders := make([]*Node, len(joiners))
		for i, r := range joiners {
			holders[i] = r.n
		}
		t.fetchViews(ctx, holders) // nothing to fetch when they hold c
		t.mu.Lock()
		healthy := slices.Clone(holders)
		for _, n := range t.nodes {
			if n.healthy.Load() {
				healthy = append(healthy, n)
			}
		}
		t.mu.Unlock()
		// c names them all, so their views are not isolated; an empty one
		// is a node the cluster still lists but that was reset.
		left := map[*Node]*candidate{}
		for _, cd := range t.candidates(holders, healthy) {
			if cd.empty {
				for _, h := range cd.holders {
					left[h] = cd
				}
			}
		}
		joiners = slices.DeleteFunc(joiners, func(r probeResult) bool {
			if cd := left[r.n]; cd != nil {
				t.reject(r.n, cd)
				closeProbe(r.n)
				return true
			}
			return false
		})
		t.admit(joiners)
	}
	t.mu.Lock()
	for _, n := range fresh {
		if _, rejected := t.rejected[n.addr]; t.nodes[n.addr] == nil && !rejected {
			t.dormant[n.addr] = true
		}
	}
	t.mu.Unlock()
}

// buildMap rebuilds the partition table from m. Called with mu.
func (t *Tender) buildMap(m driver.PartitionMap) {
	byID := map[string]*Node{}
	for _, n := range t.nodes {
		if id := n.ID(); id != "" {
			byID[id] = n
		}
	}
	parts := make([]int32, m.Partitions)
	for i := range parts {
		parts[i] = -1
	}
	shards := make([]shard, 0, len(m.Shards))
	for _, s := range m.Shards {
		// A role the node's own probe reported wins (see observe).
		sh := shard{primary: byID[s.Primary]}
		if sh.primary != nil && sh.primary.reported == driver.RoleUnknown {
			sh.primary.role.Store(int32(driver.RolePrimary))
		}
		for _, id := range s.Replicas {
			if r := byID[id]; r != nil {
				if r.reported == driver.RoleUnknown {
					r.role.Store(int32(driver.RoleReplica))
				}
				sh.replicas = append(sh.replicas, r)
			}
		}
		shards = append(shards, sh)
		for _, rg := range s.Ranges {
			for p := max(rg[0], 0); p <= rg[1] && p < len(parts); p++ {
				parts[p] = int32(len(shards) - 1)
			}
		}
	}
	t.parts, t.shards = parts, shards
	t.c.mapUpdates.Add(1)
}

// removeFailed removes the nodes that failed FailLimit probes in a row; a
// node the followed view still lists stays dormant, to be re-added when it
// answers. A node the partition map still makes a primary stays in the
// table, down: operations on its partitions wait for it (or for its
// replacement) and name it, until the cluster fails it over. Without a
// partition map a DSN host stays too: the DSN says it is a member, its
// last role and epoch still count (a newer primary that is down fences
// an old one that comes back: see elect), and it is probed every tend.
func (t *Tender) removeFailed() {
	flat := t.flat || !t.caps.Has(driver.CapTopology)
	var gone []*Node
	t.mu.Lock()
	for _, n := range t.nodes {
		if f := int(n.failures.Load()); f >= t.cfg.FailLimit && !t.isPrimary(n) && !(flat && t.seedRank(n.addr) < len(t.cfg.Seeds)) {
			t.remove(n, fmt.Sprintf("failed %d probes in a row", f))
			gone = append(gone, n)
			if t.named != nil && t.named.namesAddr(n.addr) {
				t.dormant[n.addr] = true
			}
		}
	}
	// Stop tracking removed nodes whose pools have closed.
	t.removing = slices.DeleteFunc(t.removing, func(n *Node) bool {
		return time.Since(n.removedAt) > t.cfg.RemoveGrace
	})
	t.mu.Unlock()
	t.retire(gone)
}

// isPrimary reports whether the partition map makes n a primary. Called
// with mu.
func (t *Tender) isPrimary(n *Node) bool {
	return slices.ContainsFunc(t.shards, func(s shard) bool { return s.primary == n })
}

// publish builds and stores a new snapshot. Called with mu.
func (t *Tender) publish() {
	t.gen++
	s := &Snapshot{
		nodes:  slices.SortedFunc(maps.Values(t.nodes), func(a, b *Node) int { return cmp.Compare(a.addr, b.addr) }),
		byAddr: make(map[string]*Node, len(t.nodes)),
		parts:  t.parts,
		shards: t.shards,
		gen:    t.gen,
	}
	for _, n := range s.nodes {
		s.byAddr[n.addr] = n
	}
	if t.flat {
		s.roles = true
		s.primary, s.claims, s.newer = elect(s.nodes)
		for _, n := range s.nodes {
			if n.Role() == driver.RoleReplica {
				s.standbys = append(s.standbys, n)
			}
		}
	}
	t.snap.Store(s)
}

// elect returns the node that takes writes on a backend without a
// partition map, with the nodes that claim to (healthy, reporting
// RolePrimary) and a node that is down but last reported a newer epoch
// than any claim. At most one node takes writes:
//
//   - the claim of the highest epoch, when it is the only one: an old
//     primary back after a failover reports an older epoch (timeline);
//   - none when two claims share the highest epoch (or both report 0):
//     nothing tells which is real, so writes wait until one steps down;
//   - none when a node that is down last reported being a primary of a
//     newer epoch: the claim is an old primary that came back while the
//     new one is away, and writing to it would fork the history.
func elect(nodes []*Node) (primary *Node, claims []*Node, newer *Node) {
	var top uint64
	for _, n := range nodes {
		if n.Role() == driver.RolePrimary && n.healthy.Load() {
			claims = append(claims, n)
			top = max(top, n.Epoch())
		}
	}
	if len(claims) == 0 {
		return nil, nil, nil
	}
	for _, n := range nodes {
		if n.Role() == driver.RolePrimary && !n.healthy.Load() && n.Epoch() > top && (newer == nil || n.Epoch() > newer.Epoch()) {
			newer = n
		}
	}
	tops := slices.DeleteFunc(slices.Clone(claims), func(n *Node) bool { return n.Epoch() != top })
	if len(tops) == 1 && newer == nil {
		primary = tops[0]
	}
	return primary, claims, newer
}
