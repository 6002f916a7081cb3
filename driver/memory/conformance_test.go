package memory_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/internal/redistest"
)

// MemoryConfig returns a conformance configuration for the memory driver:
// a fresh 3-primary + 3-replica cluster per check, fault hooks from
// memory.Lookup, server connections from Cluster.OpenConns.
func memoryConfig(t *testing.T, prefix string) conformance.Config {
	var (
		mu      sync.Mutex
		current string
		seq     atomic.Int64
	)
	cluster := func() *memory.Cluster {
		mu.Lock()
		defer mu.Unlock()
		return memory.Lookup(current)
	}
	t.Cleanup(func() {
		for i := int64(1); i <= seq.Load(); i++ {
			if cl := memory.Lookup(fmt.Sprintf("%s%d", prefix, i)); cl != nil {
				cl.Close()
			}
		}
	})
	f := &conformance.Faults{
		Nodes: func() []string {
			var out []string
			for _, n := range cluster().Nodes() {
				out = append(out, n.Addr)
			}
			return out
		},
		Kill:    func(addr string) error { return cluster().Kill(addr) },
		Restart: func(addr string) error { return cluster().Restart(addr) },
		Hang:    func(addr string, d time.Duration) error { return cluster().Hang(addr, d) },
		Unhang:  func(addr string) error { return cluster().Unhang(addr) },
		PrimaryOf: func(key string) string {
			return cluster().SlotOwner(redistest.Slot(key))
		},
	}
	return conformance.Config{
		Driver: "memory",
		NewDSN: func() string {
			name := fmt.Sprintf("%s%d", prefix, seq.Add(1))
			mu.Lock()
			current = name
			mu.Unlock()
			return "memory://" + name + ":7001?nodes=3&replicas=1"
		},
		UnreachableDSN: "memory://" + prefix + "-unreachable-a:7099," + prefix + "-unreachable-b:7099",
		Caps: driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapInfo |
			driver.CapTopology | driver.CapClusterName,
		Dialect: conformance.RedisDialect(),
		Faults:  f,
		ServerConns: func() int {
			if cl := cluster(); cl != nil {
				return int(cl.OpenConns())
			}
			return 0
		},
		Skip: map[string]string{}, // nothing skipped
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, memoryConfig(t, "conformance"))
}
