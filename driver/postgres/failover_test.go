package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestFailover: kill -9 of the primary under 16 writers, the standby
// promoted a second later (by the test, as an orchestrator would): writes
// resume within 200 ms of the promotion (tend_interval=100ms), no call
// outlives total_timeout + 100 ms, and the old primary — restarted first
// as it was (a primary of the old timeline), then rebuilt as a standby —
// receives no write.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and promotes servers")
	}
	p := pgtest.StartPair(t)
	ctx := context.Background()
	const total = 5 * time.Second
	db, err := sqlish.Connect(ctx, "postgres", p.DSN("tend_interval=100ms", "total_timeout="+total.String(), "socket_timeout=2s"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, "CREATE TABLE fo (id bigserial PRIMARY KEY, w int, at timestamptz DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	p.Standby.WaitReplayed(p.Primary)

	load := pgtest.StartLoad(16, func(w int) error {
		_, err := db.Exec(ctx, "INSERT INTO fo (w) VALUES ($1)", w)
		return err
	}, func(err error) bool { return errors.Is(err, sqlish.ErrOutcomeUnknown) })
	defer load.Stop() // a test that fails early leaves no writer behind
	time.Sleep(time.Second)
	oldPrimary, newPrimary := p.Primary, p.Standby
	oldPrimary.Kill()
	killed := time.Now()
	time.Sleep(time.Second)
	promoting := time.Now()
	newPrimary.Promote() // returns once the standby accepts writes
	promoted := time.Now()
	time.Sleep(time.Second)

	// The old primary comes back as it was: a primary of the old timeline.
	// Writes must stay on the new one (newer timeline).
	restarted := time.Now()
	oldPrimary.Restart()
	time.Sleep(time.Second)
	if n := rowsSince(t, oldPrimary, restarted); n != 0 {
		t.Errorf("the old primary, back on the old timeline, received %d writes", n)
	}
	// Rebuilt as a standby of the new primary, it receives none either.
	oldPrimary.RebuildStandby(newPrimary)
	time.Sleep(time.Second)
	res := load.Stop()
	resumed := res.FirstAckAfter(promoted)
	// A reply already on its way may land just after the kill; later,
	// until the promotion starts, no node could acknowledge a write.
	lost := res.Acks(killed.Add(50*time.Millisecond), promoting)
	t.Logf("failover: %d writes, %d failed (%d of unknown outcome, first: %v); first write %v after the promotion; longest call %v",
		res.OK, res.Failed, res.Unknown, res.FirstErr, resumed, res.MaxCall.Round(time.Millisecond))
	switch {
	case resumed < 0:
		t.Fatalf("no write succeeded after the promotion")
	case resumed > 200*time.Millisecond:
		t.Errorf("writes resumed %v after the promotion, want within 200ms (tend_interval=100ms)", resumed)
	}
	if lost > 0 {
		t.Errorf("%d writes acknowledged between the kill and the promotion, when no node could take them", lost)
	}
	if res.MaxCall > total+100*time.Millisecond {
		t.Errorf("a call took %v, over total_timeout %v + 100ms", res.MaxCall, total)
	}
	// Only writes in flight at the kill may fail, and they say their
	// outcome is unknown.
	if n := res.Failed - res.Unknown; n > 0 {
		t.Errorf("%d writes failed otherwise than with an unknown outcome (first: %v)", n, res.FirstErr)
	}
	if res.Unknown > 16 {
		t.Errorf("%d writes of unknown outcome, more than the 16 that could be in flight at the kill", res.Unknown)
	}
	for _, n := range db.Nodes() {
		want := "replica"
		if n.Addr == newPrimary.Addr {
			want = "primary"
		}
		if n.Role != want {
			t.Errorf("node %s is %s, want %s: %v", n.Addr, n.Role, want, db.Nodes())
		}
	}
}

// rowsSince counts the rows of fo that s received after t.
func rowsSince(t *testing.T, s *pgtest.Server, since time.Time) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := fmt.Sprintf("SELECT count(*) FROM fo WHERE at > to_timestamp(%f)", float64(since.UnixMicro())/1e6)
	var out string
	var err error
	for range 50 { // the restarted server may still be recovering
		if out, err = s.QueryString(ctx, q); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("counting rows on %s: %v", s.Addr, err)
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("count %q: %v", out, err)
	}
	return n
}
