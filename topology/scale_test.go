package topology

import (
	"fmt"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/puddlepool"
)

// scaleSizes are the cluster sizes of the scale benchmarks: half
// primaries, half replicas (issue 14, item 5).
var scaleSizes = []int{6, 60, 600, 1000}

// scaleTender returns a tender on a fresh memory cluster of n nodes (n/2
// shards of one replica each), tended by hand twice so that it follows the
// whole cluster, and the cluster's fault handle.
func scaleTender(b *testing.B, n int) (*Tender, *memory.Cluster) {
	b.Helper()
	name := fmt.Sprintf("%s-%d", b.Name(), n)
	c, err := memory.Driver{}.OpenConnector(driver.Config{Hosts: []string{name},
		Params: map[string]string{"nodes": fmt.Sprint(n / 2), "replicas": "1"}})
	if err != nil {
		b.Fatal(err)
	}
	tr, err := New(Config{
		Seeds: []string{name}, Connector: c, Timeout: time.Second, TendInterval: time.Hour,
		Pool: puddlepool.Config[driver.Conn]{MaxSize: 4, Close: func(c driver.Conn) error { return c.Close() }},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		tr.Close()
		if cl := memory.Lookup(name); cl != nil {
			cl.Close()
		}
	})
	tr.tend()
	tr.tend()
	if got := len(tr.Snapshot().Nodes()); got != n {
		b.Fatalf("%d nodes in the table, want %d", got, n)
	}
	return tr, memory.Lookup(name)
}

// BenchmarkTend is one tend of a stable cluster: the target is one probe
// per node, no fetch, and a cost linear in nodes (ns/op and allocs/op
// divided by nodes stay flat).
func BenchmarkTend(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			tr, _ := scaleTender(b, n)
			before := tr.Stats()
			b.ReportAllocs()
			for b.Loop() {
				tr.tend()
			}
			after := tr.Stats()
			tends := float64(after.Tends - before.Tends)
			b.ReportMetric(float64(after.Probes-before.Probes)/tends, "probes/tend")
			b.ReportMetric(float64(after.PeerFetches-before.PeerFetches+after.MapFetches-before.MapFetches)/tends, "fetches/tend")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/tends/float64(n), "ns/node")
		})
	}
}

// BenchmarkPick is the routing of one keyed read and one write: the
// target is the same cost (±10%) at every size.
func BenchmarkPick(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			tr, _ := scaleTender(b, n)
			s := tr.Snapshot()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				route := driver.Route{Partition: (i * 7919) & 16383, Intent: driver.Intent(i & 1)}
				if s.Pick(route, PreferReplica, 0) == nil {
					b.Fatal("no node")
				}
			}
		})
	}
}

// BenchmarkOwnedAll is Owned for every node of a fresh snapshot, as
// describing the nodes (sqlish DB.Nodes, Stats, the metrics) does once per
// published snapshot: the target is a cost linear in nodes.
func BenchmarkOwnedAll(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			tr, _ := scaleTender(b, n)
			s := tr.Snapshot()
			b.ReportAllocs()
			for b.Loop() {
				fresh := &Snapshot{nodes: s.nodes, byAddr: s.byAddr, parts: s.parts, shards: s.shards, gen: s.gen}
				total := 0
				for _, node := range fresh.Nodes() {
					total += fresh.Owned(node)
				}
				if total != 16384 {
					b.Fatalf("%d partitions owned, want 16384", total)
				}
			}
		})
	}
}
