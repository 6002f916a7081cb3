package pgtest_test

import (
	"context"
	"testing"

	"github.com/tendril-db/tendril/internal/pgtest"
)

// A primary and a streaming standby, a failover, and the old primary back
// as a standby of the new one.
func ExampleStartPair() {
	var t testing.TB // the *testing.T of the test
	ctx := context.Background()
	p := pgtest.StartPair(t)
	dsn := p.DSN("sslmode=disable") // hand this to the client under test
	_ = dsn
	p.Primary.MustExec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
	p.Standby.WaitReplayed(p.Primary)

	p.Primary.Kill()                    // the primary crashes
	p.Standby.Promote()                 // timeline 2, accepts writes
	p.Primary.RebuildStandby(p.Standby) // the old primary follows the new one
	_ = p.Standby.Exec(ctx, "INSERT INTO t VALUES (2)")
}

// A hung server: connections are accepted, nothing answers.
func ExampleServer_Stop() {
	var t testing.TB // the *testing.T of the test
	s := pgtest.StartPrimary(t, pgtest.WithConfig("max_connections = 20"))
	s.Stop()
	s.Cont()
}
