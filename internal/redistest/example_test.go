package redistest_test

import (
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
)

// A standalone server with a password; the test's client would connect to
// s.Addr.
func ExampleStartServer() {
	var t testing.TB // the *testing.T of the test
	s := redistest.StartServer(t, redistest.WithPassword("pw"), redistest.WithConfig("maxmemory 10mb"))
	_, _ = s.Do("SET", "k", "v")
	s.Stop() // the node hangs: connections succeed, replies time out
	s.Cont()
}

// A 3+3 cluster, a primary killed and its replica promoted.
func ExampleStartCluster() {
	var t testing.TB // the *testing.T of the test
	c := redistest.StartCluster(t, 3, 1)
	_ = c.Seeds() // hand these to the cluster client under test
	slot := redistest.Slot("user:{42}")
	killed := c.KillPrimary(slot)
	start := time.Now()
	promoted, at := c.WaitPromoted(slot, 20*time.Second)
	t.Logf("%s replaced %s after %s", promoted.Addr, killed.Addr, at.Sub(start))
	killed.Restart() // same port and node ID; rejoins as a replica
	c.WaitReady(20 * time.Second)
}
