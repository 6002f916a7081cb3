package stdlib_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestPrimaryStandby: over a primary and a standby, one database/sql
// handle (SetMaxOpenConns(1)) sends writes to the primary and reads
// declared with sqlish.WithRead to the standby, statement by statement:
// database/sql's connection is not tied to a node. sqlx reads from the
// standby; a read-only transaction runs there, a read-write one on the
// primary.
func TestPrimaryStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and a standby")
	}
	p := pgtest.StartPair(t)
	sdb := open(t, p.DSN("read_preference=prefer_replica", "tend_interval=100ms"))
	sdb.SetMaxOpenConns(1)
	db := sqlx.NewDb(sdb, "postgres")
	c := ctx(t)
	db.MustExecContext(c, peopleDDL)
	born := time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)
	if _, err := db.NamedExecContext(c, "INSERT INTO people (name, born) VALUES (:name, :born)", person{Name: "Ada", Born: born}); err != nil {
		t.Fatal(err)
	}
	p.Standby.WaitReplayed(p.Primary)

	// Wait until the tender knows the standby's role.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var standby bool
		err := db.QueryRowContext(sqlish.WithRead(c), "SELECT pg_is_in_recovery()").Scan(&standby)
		if err == nil && standby {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads never reached the standby: %v, %v", standby, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 20 { // alternate on the one handle
		read := i%2 == 0
		cc := c
		if read {
			cc = sqlish.WithRead(c)
		}
		var standby bool
		if err := db.QueryRowContext(cc, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
			t.Fatal(err)
		}
		if standby != read {
			t.Fatalf("statement %d (read %v) ran on a node in recovery: %v", i, read, standby)
		}
	}
	var people []person
	if err := db.SelectContext(sqlish.WithRead(c), &people, "SELECT * FROM people"); err != nil {
		t.Fatal(err)
	}
	if len(people) != 1 || people[0].Name != "Ada" || !people[0].Born.Equal(born) || people[0].Nick.Valid {
		t.Errorf("sqlx Select on the standby: %+v", people)
	}

	tx, err := db.BeginTxx(c, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var standby bool
	if err := tx.GetContext(c, &standby, "SELECT pg_is_in_recovery()"); err != nil || !standby {
		t.Errorf("read-only transaction: in recovery %v, %v; want the standby", standby, err)
	}
	tx.Rollback()
	tx, err = db.BeginTxx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.GetContext(c, &standby, "SELECT pg_is_in_recovery()"); err != nil || standby {
		t.Errorf("read-write transaction: in recovery %v, %v; want the primary", standby, err)
	}
	tx.MustExecContext(c, "INSERT INTO people (name, born) VALUES ($1, $2)", "Grace", born)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestFailover: 16 database/sql writers (INSERT through the *sql.DB) while
// the primary is killed and, a second later, the standby promoted (by the
// test, as an orchestrator would). Writes resume within 1s of the
// promotion, and the only errors are those of writes in flight at the
// kill, which say their outcome is unknown.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and promotes servers")
	}
	p := pgtest.StartPair(t)
	const total = 5 * time.Second
	db := open(t, p.DSN("tend_interval=100ms", "total_timeout="+total.String(), "socket_timeout=2s"))
	c := ctx(t)
	if _, err := db.ExecContext(c, "CREATE TABLE fo (id bigserial PRIMARY KEY, w int, at timestamptz DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	p.Standby.WaitReplayed(p.Primary)

	const writers = 16
	load := pgtest.StartLoad(writers, func(w int) error {
		_, err := db.ExecContext(context.Background(), "INSERT INTO fo (w) VALUES ($1)", w)
		return err
	}, func(err error) bool { return errors.Is(err, sqlish.ErrOutcomeUnknown) })
	defer load.Stop() // a test that fails early leaves no writer behind
	time.Sleep(time.Second)
	p.Primary.Kill()
	killed := time.Now()
	time.Sleep(time.Second)
	promoting := time.Now()
	p.Standby.Promote() // returns once the standby accepts writes
	promoted := time.Now()
	time.Sleep(1500 * time.Millisecond)
	res := load.Stop()
	resumed, fromStart := res.FirstAckAfter(promoted), res.FirstAckAfter(promoting)
	after := res.Acks(promoted, time.Now())
	// A reply on its way may land just after the kill; later, until the
	// promotion starts, no node could acknowledge a write.
	lost := res.Acks(killed.Add(50*time.Millisecond), promoting)
	t.Logf("failover through database/sql: %d writes, %d failed (%d of unknown outcome; first: %v); first write %v after the promotion began, %v after it returned, %d writes after it; longest call %v",
		res.OK, res.Failed, res.Unknown, res.FirstErr, fromStart.Round(time.Millisecond), resumed, after, res.MaxCall.Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d writes acknowledged between the kill and the promotion, when no node could take them", lost)
	}
	switch {
	case resumed < 0:
		t.Fatal("no write succeeded after the promotion")
	case resumed > time.Second:
		t.Errorf("writes resumed %v after the promotion, want within 1s", resumed)
	}
	if n := res.Failed - res.Unknown; n > 0 {
		t.Errorf("%d writes failed otherwise than with an unknown outcome (first: %v)", n, res.FirstErr)
	}
	if res.Unknown > writers {
		t.Errorf("%d writes of unknown outcome, more than the %d that could be in flight at the kill", res.Unknown, writers)
	}
	if res.MaxCall > total+100*time.Millisecond {
		t.Errorf("a call took %v, over total_timeout %v + 100ms", res.MaxCall, total)
	}
}
