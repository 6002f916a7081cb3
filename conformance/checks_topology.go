package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tendril-db/tendril/sqlish"
)

// fastTend makes the tender notice failures within a few hundred
// milliseconds.
var fastTend = []string{"tend_interval=50ms", "timeout=100ms"}

func checkNodeKilled(t T, e *env) {
	f := e.needFaults()
	db := e.connect(fastTend...)
	ctx := e.ctx(60 * time.Second)
	all := f.Nodes()
	if len(all) == 0 {
		t.Fatalf("Faults.Nodes returned no node")
	}
	// Prefer a replica: killing it leaves every partition served.
	victim := all[len(all)-1]
	for _, n := range db.Nodes() {
		if n.Role == "replica" && slices.Contains(all, n.Addr) {
			victim = n.Addr
			break
		}
	}
	if !eventually(5*time.Second, func() bool { return findNode(db, victim) != nil }) {
		t.Fatalf("node %s (from Faults.Nodes) never appears in db.Nodes(): %v", victim, db.Nodes())
	}
	if err := f.Kill(victim); err != nil {
		t.Fatalf("Faults.Kill(%s): %v", victim, err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			f.Restart(victim)
		}
	})
	start := time.Now()
	// Down, or gone: a cluster drops a dead member; a backend whose nodes
	// are the DSN's hosts (a primary and its standbys) keeps it, down.
	if !eventually(3*time.Second, func() bool { n := findNode(db, victim); return n == nil || !n.Healthy }) {
		t.Fatalf("killed node %s still healthy in the node table %s later (tend_interval=50ms): %v", victim, since(start), findNode(db, victim))
	}
	t.Logf("killed node %s down after %s", victim, since(start))
	// The rest keeps serving.
	if len(all) > 1 {
		k := e.key()
		if f.PrimaryOf(k) != victim {
			e.set(ctx, db, k, "while-down")
		}
	}
	if err := f.Restart(victim); err != nil {
		t.Fatalf("Faults.Restart(%s): %v", victim, err)
	}
	restarted = true
	start = time.Now()
	if !eventually(15*time.Second, func() bool { n := findNode(db, victim); return n != nil && n.Healthy }) {
		t.Fatalf("restarted node %s not back in the node table %s later: %v", victim, since(start), db.Nodes())
	}
	t.Logf("restarted node %s re-added after %s", victim, since(start))
	// Operations succeed again (the restarted node may need a moment to
	// serve, e.g. a standalone server that lost its data).
	var lastErr error
	if !eventually(10*time.Second, func() bool {
		k := e.key()
		q, args := e.d.Set(k, "after-restart")
		_, lastErr = db.Exec(ctx, q, args...)
		return lastErr == nil
	}) {
		t.Errorf("writes fail after the restart: %v", lastErr)
	}
}

func findNode(db *sqlish.DB, addr string) *sqlish.Node {
	for _, n := range db.Nodes() {
		if n.Addr == addr {
			return &n
		}
	}
	return nil
}

func checkRetriesRightNode(t T, e *env) {
	f := e.needFaults()
	db := e.connect(append(fastTend, "socket_timeout=150ms", "total_timeout=400ms", "max_retries=2")...)
	ctx := e.ctx(60 * time.Second)
	k := e.key()
	primary := f.PrimaryOf(k)
	if primary == "" {
		t.Fatalf("Faults.PrimaryOf(%q) is empty", k)
	}
	e.set(ctx, db, k, "before")
	// A key served elsewhere, when there is another primary.
	control := ""
	for range 64 {
		if c := e.key(); f.PrimaryOf(c) != primary {
			control = c
			break
		}
	}
	if err := f.Hang(primary, 3*time.Second); err != nil {
		t.Fatalf("Faults.Hang(%s): %v", primary, err)
	}
	hung := true
	t.Cleanup(func() {
		if hung {
			f.Unhang(primary)
		}
	})
	last := "before"
	for i := range 2 {
		v := fmt.Sprint("during-", i)
		q, args := e.d.Set(k, v)
		start := time.Now()
		_, err := db.Exec(ctx, q, args...)
		t.Logf("write %d while %s hangs: %v after %s", i, primary, err, since(start))
		switch {
		case err == nil:
			t.Errorf("write %d to a key of %s succeeded while that node hangs (the Hang hook had no effect, or the write went elsewhere)", i, primary)
			last = v
		case !names(err, primary):
			t.Errorf("write %d to a key of hung node %s failed with an error that does not name that node: %v", i, primary, errString(err))
		}
		if took := time.Since(start); took > 400*time.Millisecond+slack {
			t.Errorf("write %d took %s with total_timeout=400ms", i, took.Round(time.Millisecond))
		}
		if control != "" {
			q, args := e.d.Set(control, v)
			if _, err := db.Exec(ctx, q, args...); err != nil {
				t.Errorf("write %d to a key of another node (not %s) failed while %s hangs: %v", i, primary, primary, err)
			}
		}
	}
	if err := f.Unhang(primary); err != nil {
		t.Errorf("Faults.Unhang(%s): %v", primary, err)
	}
	hung = false
	var err error
	if !eventually(10*time.Second, func() bool {
		q, args := e.d.Set(k, "after")
		_, err = db.Exec(ctx, q, args...)
		return err == nil
	}) {
		t.Fatalf("writes to %s's key still fail 10s after Unhang: %v", primary, err)
	}
	var s string
	if err := e.get(ctx, db, k, &s); err != nil || s != "after" {
		t.Errorf("read after recovery: %q, %v; want \"after\" (last write during the hang: %q)", s, err, last)
	}
}

func checkTotalTimeout(t T, e *env) {
	f := e.needFaults()
	// The default tend interval: the tender must not be what ends the wait.
	const total = 300 * time.Millisecond
	db := e.connect("total_timeout=300ms", "socket_timeout=10s", "max_retries=5")
	ctx := e.ctx(60 * time.Second)
	k := e.key()
	primary := f.PrimaryOf(k)
	e.set(ctx, db, k, "x")
	if err := f.Hang(primary, 5*time.Second); err != nil {
		t.Fatalf("Faults.Hang(%s): %v", primary, err)
	}
	defer f.Unhang(primary)
	for _, op := range []string{"read", "write"} {
		start := time.Now()
		var err error
		if op == "read" {
			var s string
			err = e.get(ctx, db, k, &s)
		} else {
			q, args := e.d.Set(k, "y")
			_, err = db.Exec(ctx, q, args...)
		}
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s on hung node %s succeeded", op, primary)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s on hung node: %v; want an error wrapping context.DeadlineExceeded", op, errString(err))
		}
		if took > total+slack {
			t.Errorf("%s on hung node %s returned after %s with total_timeout=%v", op, primary, took.Round(time.Millisecond), total)
		}
	}
	// A shorter caller deadline wins.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	var s string
	err := e.get(cctx, db, k, &s)
	cancel()
	if took := time.Since(start); err == nil || took > 100*time.Millisecond+slack {
		t.Errorf("read with a 100ms context on a hung node: %v after %s", err, took.Round(time.Millisecond))
	}
}
