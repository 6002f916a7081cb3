package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestRouting runs on a primary and its streaming standby, through the
// user API: reads declared as such go to the standby with
// read_preference=replica, everything else to the primary, a write
// declared a read fails saying it met a standby, and after a failover the
// writes follow the promoted standby.
func TestRouting(t *testing.T) {
	p := pgtest.StartPair(t)
	p.Primary.MustExec("CREATE TABLE rt (id int PRIMARY KEY)")
	p.Standby.WaitReplayed(p.Primary)
	db := connect(t, p.DSN("read_preference=replica", "total_timeout=3s", "tend_interval=200ms"))
	c := ctx(t)
	waitRoles(t, db, map[string]string{p.Primary.Addr: "primary", p.Standby.Addr: "replica"})

	inRecovery := func(ctx context.Context) bool {
		var b bool
		if err := db.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := range 20 {
		if !inRecovery(sqlish.WithRead(c)) {
			t.Fatalf("read %d declared with WithRead was served by the primary", i)
		}
		if inRecovery(c) {
			t.Fatalf("statement %d not declared a read was served by the standby", i)
		}
		if _, err := db.Exec(c, "INSERT INTO rt VALUES ($1)", i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	tx, err := db.BeginTx(c, driver.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bool
	if err := tx.QueryRow(c, "SELECT pg_is_in_recovery()").Scan(&b); err != nil || !b {
		t.Errorf("a read-only transaction ran on the primary (%v)", err)
	}
	tx.Rollback(c)

	// The caller lied: a write declared a read reaches the standby, which
	// refuses it, and the error says why.
	start := time.Now()
	_, err = db.Exec(sqlish.WithRead(c), "INSERT INTO rt VALUES ($1)", 100)
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "25006" || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("a write declared a read: %v, want a 25006 that says it met a standby", err)
	}
	t.Logf("a write declared a read failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !inRecovery(sqlish.WithRead(c)) || inRecovery(c) {
		t.Fatal("after a write declared a read, the roles are mixed up")
	}

	// The standby's probe: same cluster, replica, timeline 1.
	sc := openConn(t, nil, p.Standby.Addr, p.Standby.User, p.Standby.Password)
	st, err := sc.Probe(c)
	sysid, _ := p.Primary.SystemIdentifier()
	if err != nil || st.Role != driver.RoleReplica || st.ClusterName != strconv.FormatUint(sysid, 10) || st.Epoch != 1 {
		t.Fatalf("standby Probe = %+v, %v", st, err)
	}

	// Failover: the primary dies, the standby is promoted (timeline 2);
	// writes go to it.
	p.Primary.Kill()
	p.Standby.Promote()
	if st, err = sc.Probe(c); err != nil || st.Role != driver.RolePrimary || st.Epoch != 2 {
		t.Fatalf("promoted standby's Probe = %+v, %v", st, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := db.Exec(c, "INSERT INTO rt VALUES ($1)", 200)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 15s of the promotion: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if inRecovery(c) {
		t.Fatal("after the failover a write-routed statement reached a standby")
	}
}

// waitRoles waits until the DB sees every node of want in its role.
func waitRoles(t *testing.T, db *sqlish.DB, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]string{}
		for _, n := range db.Nodes() {
			if n.Healthy {
				got[n.Addr] = n.Role
			}
		}
		ok := true
		for a, r := range want {
			ok = ok && got[a] == r
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %v, want roles %v", db.Nodes(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
