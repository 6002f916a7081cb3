package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// getString reads key through the shared path.
func getString(t *testing.T, db *sqlish.DB, key string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(context.Background(), "GET ?", key).Scan(&s); err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return s
}

// A database selected on a pinned Conn does not follow its connection
// back to the pool: with one connection per node, the next caller reads
// database 0 (issue 12, item 1).
func TestSelectOnConnDoesNotLeak(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1")
	if _, err := db.Exec(ctx, "SET k db0"); err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT 3", "SET k db3", "CLIENT SETNAME pinned"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.Close()
	if got := getString(t, db, "k"); got != "db0" {
		t.Fatalf("GET k after a Conn selected database 3: %q, want db0", got)
	}
	var name string
	if err := db.QueryRow(ctx, "CLIENT GETNAME").Scan(&name); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("CLIENT GETNAME after the Conn named its connection: %q, %v; want no name", name, err)
	}
	// The connection was reset, not replaced: one round trip, no dial.
	if n := db.Stats().Nodes[0].Pool.Created; n != 1 {
		t.Errorf("%d connections made, want the one, reset", n)
	}
	// A change the driver cannot undo closes the connection instead.
	c, _ = db.Conn(ctx)
	if _, err := c.Exec(ctx, "CLIENT NO-EVICT on"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := getString(t, db, "k"); got != "db0" {
		t.Fatalf("GET k: %q", got)
	}
	if st := db.Stats().Nodes[0].Pool; st.Created != 2 || st.ClosedError != 1 {
		t.Errorf("after CLIENT NO-EVICT on a Conn: created %d, closed on error %d; want the connection replaced", st.Created, st.ClosedError)
	}
}

// Session-changing statements are refused on the DB's shared
// connections: they would change every caller's session (items 2, 11).
// So are CLIENT subcommands the command table lacks (Valkey 8's CLIENT
// CAPA, 8.1's CLIENT IMPORT-SOURCE, any newer session switch).
func TestSessionStatementsRefusedOnSharedPath(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	db.Exec(ctx, "SET k v")
	for _, q := range []string{"SELECT 9", "CLIENT REPLY SKIP", "MULTI", "WATCH k", "CLIENT SETNAME x", "READONLY", "HELLO 2", "AUTH x y", "SUBSCRIBE ch",
		"CLIENT CAPA redirect", "CLIENT IMPORT-SOURCE on", "WAIT 0 0", "WAITAOF 0 0 0"} {
		_, err := db.Exec(ctx, q)
		if !errors.Is(err, sqlish.ErrSessionState) || !strings.Contains(err.Error(), "Conn") {
			t.Errorf("db.Exec(%q): %v; want ErrSessionState pointing at a Conn", q, err)
		}
		b := &sqlish.Batch{}
		b.Queue(q)
		if _, err := db.SendBatch(ctx, b).Exec(); !errors.Is(err, sqlish.ErrSessionState) {
			t.Errorf("batch %q: %v; want ErrSessionState", q, err)
		}
	}
	if got := getString(t, db, "k"); got != "v" {
		t.Fatalf("GET k: %q", got)
	}
	// WAIT counts the replicas that acknowledged its own connection's
	// writes: on a pinned Conn, after its write, it runs there, and leaves
	// the connection clean (a standalone server has no replica: 0).
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	var n int
	if _, err := cn.Exec(ctx, "SET k w"); err != nil {
		t.Fatal(err)
	}
	if err := cn.QueryRow(ctx, "WAIT 0 100").Scan(&n); err != nil || n != 0 {
		t.Fatalf("WAIT on a Conn after its write: %d, %v", n, err)
	}
}

// A transaction whose context ends after MULTI was sent, or a Conn closed
// inside a transaction, never returns its connection to the pool inside
// MULTI (item 3).
func TestTransactionNeverLeaksMulti(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1&socket_timeout=2s")
	check := func(what string) {
		t.Helper()
		if _, err := db.Exec(ctx, "SET x after"); err != nil {
			t.Fatalf("%s: SET x after: %v", what, err)
		}
		if got := getString(t, db, "x"); got != "after" {
			t.Fatalf("%s: GET x = %q, want after: the connection came back inside MULTI", what, got)
		}
	}
	// A Conn closed with its transaction open.
	c, _ := db.Conn(ctx)
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET x in-tx"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	check("Conn closed inside a transaction")
	if _, err := tx.Exec(ctx, "SET x again"); !errors.Is(err, sqlish.ErrTxDone) {
		t.Fatalf("Exec on the transaction of a closed Conn: %v; want ErrTxDone", err)
	}

	// A BeginTx whose context ends while MULTI is in flight.
	srv.Stop()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = db.BeginTx(tctx, driver.TxOptions{})
	cancel()
	srv.Cont()
	if err == nil {
		t.Fatal("BeginTx on a stopped server succeeded")
	}
	check("BeginTx cancelled after MULTI was sent")

	// A transaction abandoned after statements were queued, its Conn
	// closed by the caller's defer.
	func() {
		c, _ := db.Conn(ctx)
		defer c.Close()
		tx, _ := c.BeginTx(ctx, driver.TxOptions{})
		tx.Exec(ctx, "SET x abandoned")
	}()
	check("transaction abandoned")
}

// A statement of a transaction whose reply was lost (its context ended
// after it was written) may have been queued by the server all the same:
// Commit then rolls back instead of running EXEC, which would run the
// statement the caller was told failed, and says the transaction was not
// committed; a Conn is left out of MULTI for its next statements.
func TestTxLostStatementIsNotCommitted(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		t.Run(fmt.Sprintf("pinned=%v", pinned), func(t *testing.T) {
			srv := redistest.StartServer(t)
			ctx := context.Background()
			db := connect(t, "redis", "redis://"+srv.Addr+"?socket_timeout=5s")
			var c *sqlish.Conn
			var tx *sqlish.Tx
			var err error
			if pinned {
				if c, err = db.Conn(ctx); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				tx, err = c.BeginTx(ctx, driver.TxOptions{})
			} else {
				tx, err = db.BeginTx(ctx, driver.TxOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := tx.Exec(ctx, "INCR a")
			if err != nil {
				t.Fatal(err)
			}
			srv.Stop() // INCR b is written, its QUEUED reply comes too late
			sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err = tx.Exec(sctx, "INCR b")
			cancel()
			srv.Cont()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("INCR b: %v; want its deadline's error", err)
			}
			err = tx.Commit(ctx)
			if !errors.Is(err, sqlish.ErrTxNotCommitted) || !strings.Contains(err.Error(), "statement 2 (INCR)") {
				t.Fatalf("Commit after INCR b's reply was lost: %v; want ErrTxNotCommitted naming statement 2", err)
			}
			if _, err := res.RowsAffected(); err == nil {
				t.Errorf("INCR a's result after the rollback: no error")
			}
			for _, k := range []string{"a", "b"} {
				if v, _ := srv.Do("GET", k); v != "" {
					t.Errorf("GET %s = %q after a Commit that said it committed nothing", k, v)
				}
			}
			if pinned {
				if _, err := c.Exec(ctx, "SET c 1"); err != nil {
					t.Fatal(err)
				}
				if v, _ := srv.Do("GET", "c"); v != "1" {
					t.Fatalf("SET c on the Conn after the Commit did not run (GET c = %q): queued in a MULTI left open", v)
				}
			}
		})
	}
}

// A WATCH on a pinned Conn does not follow its connection back to the
// pool when the Conn then sends EXEC or DISCARD without MULTI: the server
// refuses them and keeps the keys watched, so the reset must unwatch
// them, or the next caller's transaction, which watched nothing, aborts.
func TestWatchDoesNotLeakAfterExecWithoutMulti(t *testing.T) {
	for _, end := range []string{"EXEC", "DISCARD"} {
		t.Run(end, func(t *testing.T) {
			srv := redistest.StartServer(t)
			ctx := context.Background()
			db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1")
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "WATCH k"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, end); err == nil || !strings.Contains(err.Error(), "without MULTI") {
				t.Fatalf("%s without MULTI: %v; want the server's refusal", end, err)
			}
			c.Close()
			srv.MustDo("SET", "k", "changed by another client")
			tx, err := db.BeginTx(ctx, driver.TxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "SET x 1"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("Commit of a transaction that watched nothing, after a Conn ran WATCH k, %s: %v (the WATCH came back with the connection)", end, err)
			}
		})
	}
}

// An exclusive user (a transaction, a blocking command) never gets a
// connection that shared callers still use: no shared GET sees QUEUED,
// no transaction sees "MULTI calls can not be nested" (item 4).
func TestExclusiveNeverSharesAConnection(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=3")
	const keys = 50
	for i := range keys {
		db.Exec(ctx, "SET ? ?", fmt.Sprintf("key%d", i), fmt.Sprintf("val%d", i))
	}
	var (
		gets, wrong, txs, txErrs atomic.Int64
		firstWrong, firstTxErr   atomic.Value
	)
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if g < 3 {
					tx, err := db.BeginTx(ctx, driver.TxOptions{})
					if err == nil {
						if _, err = tx.Exec(ctx, "INCR counter"); err == nil {
							err = tx.Commit(ctx)
						} else {
							tx.Rollback(ctx)
						}
					}
					txs.Add(1)
					if err != nil {
						txErrs.Add(1)
						firstTxErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				k := (g*7 + i) % keys
				var s string
				err := db.QueryRow(ctx, "GET ?", fmt.Sprintf("key%d", k)).Scan(&s)
				gets.Add(1)
				if want := fmt.Sprintf("val%d", k); err != nil || s != want {
					wrong.Add(1)
					firstWrong.CompareAndSwap(nil, fmt.Sprintf("GET key%d = %q, %v", k, s, err))
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d GETs, %d transactions", gets.Load(), txs.Load())
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d of %d GETs wrong, first: %v", n, gets.Load(), firstWrong.Load())
	}
	if n := txErrs.Load(); n != 0 {
		t.Errorf("%d of %d transactions failed, first: %v", n, txs.Load(), firstTxErr.Load())
	}
	var counter int64
	if err := db.QueryRow(ctx, "GET counter").Scan(&counter); err != nil || counter != txs.Load() {
		t.Errorf("counter = %d, %v; want %d committed transactions", counter, err, txs.Load())
	}
}

// A transaction's statements are queued by Redis: their results come
// with Commit, through the Result, Rows and Row the statements returned.
func TestTransactionResultsAfterCommit(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	db.Exec(ctx, "SET s text")
	tx, err := db.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.Exec(ctx, "INCRBY n 5")
	if err != nil {
		t.Fatal(err)
	}
	row := tx.QueryRow(ctx, "GET s")
	rows, err := tx.Query(ctx, "MGET s n missing")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tx.Exec(ctx, "LPUSH s x") // WRONGTYPE when it runs
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.RowsAffected(); !errors.Is(err, sqlish.ErrQueued) {
		t.Fatalf("RowsAffected before Commit: %v; want ErrQueued", err)
	}
	err = tx.Commit(ctx)
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "WRONGTYPE" || !strings.Contains(err.Error(), "statement 4") {
		t.Fatalf("Commit with a failing statement: %v; want the WRONGTYPE of statement 4", err)
	}
	if n, err := res.RowsAffected(); n != 5 || err != nil {
		t.Errorf("INCRBY result after Commit: %d, %v; want 5", n, err)
	}
	var s string
	if err := row.Scan(&s); err != nil || s != "text" {
		t.Errorf("GET s after Commit: %q, %v", s, err)
	}
	var got []string
	for rows.Next() {
		var v sqlish.Null[string]
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v:%s", v.Valid, v.V))
	}
	if err := rows.Err(); err != nil || strings.Join(got, ",") != "true:text,true:5,false:" {
		t.Errorf("MGET rows after Commit: %v, %v", got, err)
	}
	if _, err := bad.RowsAffected(); !errors.As(err, &se) || se.Code != "WRONGTYPE" {
		t.Errorf("the failed statement's result: %v", err)
	}
	// A rolled-back transaction's results say the statements did not run.
	tx, _ = db.BeginTx(ctx, driver.TxOptions{})
	res, _ = tx.Exec(ctx, "INCR n")
	tx.Rollback(ctx)
	if _, err := res.RowsAffected(); err == nil {
		t.Errorf("the result of a rolled-back statement has no error")
	}
	if n := getString(t, db, "n"); n != "5" {
		t.Errorf("n = %s after a rollback, want 5", n)
	}
}

// Unclosed Rows holding a pinned connection are closed when their
// context ends, as database/sql does (item 13).
func TestRowsClosedWhenContextEnds(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	db.Exec(ctx, "RPUSH l a b c")
	c, _ := db.Conn(ctx)
	defer c.Close()
	qctx, cancel := context.WithCancel(ctx)
	rows, err := c.Query(qctx, "LRANGE l 0 -1")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	if _, err := c.Exec(ctx, "PING"); err == nil {
		t.Fatal("the Conn ran a statement while its Rows were open")
	}
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := c.Exec(ctx, "PING")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Conn is still busy after its Rows' context ended: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A Scan of the row Next gave before the context ended says why the
	// rows are gone (database/sql's bridge calls Next, then Scan).
	var s string
	if err := rows.Scan(&s); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan after the rows' context ended: %v, want context.Canceled", err)
	}
	if rows.Next() || !errors.Is(rows.Err(), context.Canceled) {
		t.Fatalf("rows after their context ended: Err = %v", rows.Err())
	}
}

// On a cluster a transaction binds to the partition of its first keyed
// statement, whichever node owns it; a Conn does the same, and a
// statement for another partition is a clear error (item 5).
func TestPinnedFollowsKeysOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, 3, 0)
	ctx := context.Background()
	db := connect(t, "redis", clusterDSN(c, ""))
	owners := map[string]bool{}
	for i := range 12 {
		key := fmt.Sprintf("{u%d}:c", i)
		owners[c.PrimaryFor(redistest.Slot(key)).Addr] = true
		tx, err := db.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := tx.Exec(ctx, "INCR ?", key)
		if err != nil {
			t.Fatalf("INCR %s in a transaction: %v", key, err)
		}
		if _, err := tx.Exec(ctx, "EXPIRE ? 60", key); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("Commit (%s): %v", key, err)
		}
		if n, err := res.RowsAffected(); n != 1 || err != nil {
			t.Fatalf("INCR %s = %d, %v", key, n, err)
		}
	}
	if len(owners) != 3 {
		t.Fatalf("the keys covered %d primaries, want 3", len(owners))
	}
	// WATCH/MULTI/EXEC on a Conn, on every primary.
	for i := range 6 {
		cn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("{w%d}:acct", i)
		for j := range 5 {
			if _, err := cn.Exec(ctx, "SET ? ?", fmt.Sprintf("{w%d}:%d", i, j), j); err != nil {
				t.Fatalf("SET on a Conn: %v", err)
			}
		}
		if _, err := cn.Exec(ctx, "WATCH ?", key); err != nil {
			t.Fatal(err)
		}
		tx, _ := cn.BeginTx(ctx, driver.TxOptions{})
		tx.Exec(ctx, "INCRBY ? 10", key)
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("WATCH/MULTI/EXEC on %s: %v", key, err)
		}
		// Another partition: refused, naming both.
		other := fmt.Sprintf("{x%d}", i)
		_, err = cn.Exec(ctx, "GET ?", other)
		if !errors.Is(err, sqlish.ErrWrongPartition) || !strings.Contains(err.Error(), fmt.Sprint(redistest.Slot(key))) ||
			!strings.Contains(err.Error(), fmt.Sprint(redistest.Slot(other))) {
			t.Fatalf("GET %s on a Conn bound to %s: %v; want ErrWrongPartition naming both slots", other, key, err)
		}
		cn.Close()
	}
}

// 10,000 seeds that do not answer: the error lists them in a few hundred
// bytes, and Ping returns when its context ends (the list was built
// quadratically: 1.2 MB, and a 2 s Ping took 8 s; item 13).
func TestManySeedsErrorIsBounded(t *testing.T) {
	hosts := make([]string, 10_000)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("192.0.2.1:%d", 10000+i) // TEST-NET-1: nothing answers
	}
	db, err := sqlish.Open("redis", "redis://"+strings.Join(hosts, ",")+"?timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// On a loaded machine the first tend of 10,000 seeds can outlast one
	// 2 s Ping; each Ping must still return on time.
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		err = db.Ping(ctx)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatal("Ping succeeded with no node")
		}
		if took > 3*time.Second {
			t.Errorf("Ping with a 2s context took %v", took)
		}
		if !strings.Contains(err.Error(), "first tend has not finished") || i == 4 {
			break
		}
	}
	if n := len(err.Error()); n > 8<<10 {
		t.Errorf("the error is %d bytes long", n)
	}
	if !strings.Contains(err.Error(), "more") {
		t.Errorf("the error does not say how many more seeds failed: %.300s", err)
	}
}

// Blocking commands (XREAD ... BLOCK, BLMPOP, BZMPOP, WAIT...) run on a
// connection of their own: a reply that takes forever does not hold the
// node's shared connection (item 8).
func TestBlockingCommandsDoNotBlockTheNode(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?socket_timeout=2s")
	db.Exec(ctx, "SET k v")
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, q := range []string{"XREAD BLOCK 0 STREAMS s $", "BLMPOP 0 1 l LEFT", "BZMPOP 0 1 z MIN", "XREADGROUP GROUP g c BLOCK 0 STREAMS s2 >"} {
		if strings.HasPrefix(q, "XREADGROUP") {
			db.Exec(ctx, "XGROUP CREATE s2 g $ MKSTREAM")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := db.Query(bctx, q)
			if err == nil {
				rows.Close()
				t.Errorf("%s returned before anything was written", q)
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v; want its context's error", q, err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	for i := range 50 {
		start := time.Now()
		if got := getString(t, db, "k"); got != "v" {
			t.Fatalf("GET k = %q", got)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("GET %d took %v while blocking commands wait", i, d)
		}
	}
	cancel()
	wg.Wait()
	if got := getString(t, db, "k"); got != "v" {
		t.Fatalf("GET k after the blocking commands were cancelled = %q", got)
	}
}

// A blocking pop whose caller gave up (its context cancelled, or ended by
// total_timeout), on the DB or on a pinned Conn, pops nothing afterwards:
// its connection is closed at once, so the server unblocks it instead of
// handing it the next element pushed, which nobody would receive. The
// socket_timeout of 5s is the grace a graceful close would give the
// request; the element is pushed well within it.
func TestAbandonedBlockingPopDoesNotPop(t *testing.T) {
	for _, c := range []struct {
		name, query string
		conn        bool          // on a pinned Conn
		cancel      time.Duration // the caller's context; 0: total_timeout ends it
	}{
		{"DB cancelled", "BLPOP q 0", false, 200 * time.Millisecond},
		{"Conn cancelled", "BLMOVE q dst LEFT RIGHT 0", true, 200 * time.Millisecond},
		{"DB total_timeout", "BZPOPMIN q 0", false, 0},
		{"batch cancelled", "BLPOP q 0", false, 200 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			db := connect(t, "redis", "redis://"+srv.Addr+"?socket_timeout=5s&total_timeout=1s")
			ctx := context.Background()
			bctx := ctx
			if c.cancel > 0 {
				var cancel context.CancelFunc
				bctx, cancel = context.WithTimeout(ctx, c.cancel)
				defer cancel()
			}
			var err error
			if c.conn {
				cn, cerr := db.Conn(ctx)
				if cerr != nil {
					t.Fatal(cerr)
				}
				_, err = cn.Exec(bctx, c.query)
				cn.Close()
			} else if strings.HasPrefix(c.name, "batch") {
				b := &sqlish.Batch{}
				b.Queue("GET x")
				b.Queue(c.query)
				br := db.SendBatch(bctx, b)
				br.Exec()
				_, err = br.Exec()
				br.Close()
			} else {
				_, err = db.Exec(bctx, c.query)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: %v; want its deadline's error", c.query, err)
			}
			time.Sleep(100 * time.Millisecond)
			push := []string{"RPUSH", "q", "precious"}
			if strings.HasPrefix(c.query, "BZ") {
				push = []string{"ZADD", "q", "1", "precious"}
			}
			srv.MustDo(push...)
			time.Sleep(100 * time.Millisecond)
			if n, _ := srv.Do("EXISTS", "q"); n != "1" {
				t.Fatalf("the element pushed after %s failed was popped by it, for nobody: lost", c.query)
			}
		})
	}
}

// A standalone primary and its replica in one DSN: writes go to the
// primary (ROLE says which is which), reads may go to the replica.
func TestStandaloneReplicaRole(t *testing.T) {
	primary := redistest.StartServer(t)
	replica := redistest.StartServer(t, redistest.WithConfig("replicaof 127.0.0.1 "+fmt.Sprint(primary.Port)))
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+replica.Addr+","+primary.Addr+"?read_preference=replica")
	for range 20 {
		if _, err := db.Exec(ctx, "INCR n"); err != nil {
			t.Fatalf("a write with a primary and a replica in the DSN: %v", err)
		}
	}
	roles := map[string]string{}
	for _, n := range db.Nodes() {
		roles[n.Addr] = n.Role
	}
	if roles[primary.Addr] != "primary" || roles[replica.Addr] != "replica" {
		t.Fatalf("roles %v", roles)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := db.QueryRow(ctx, "GET n").Scan(&n); err == nil && n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never served n = 20")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSeedsErrorFormat: the error of seeds that all refuse says how many
// failed ("3 errors: a; b; c"), names each address once per seed (no
// "dial tcp X: dial tcp X"), says "1 errors" never, and errors.Is still
// reaches a seed's error.
func TestSeedsErrorFormat(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	for _, hosts := range [][]string{addrs, addrs[:1]} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		db, err := sqlish.Connect(ctx, "redis", "redis://"+strings.Join(hosts, ","))
		cancel()
		if err == nil {
			db.Close()
			t.Fatal("Connect to closed ports succeeded")
		}
		msg := err.Error()
		t.Log(msg)
		if len(hosts) > 1 && !strings.Contains(msg, fmt.Sprintf("%d errors: ", len(hosts))) {
			t.Errorf("does not say %d errors: %s", len(hosts), msg)
		}
		if strings.Contains(msg, "1 errors") || len(hosts) == 1 && strings.Contains(msg, "errors:") {
			t.Errorf("one error presented as a list: %s", msg)
		}
		for _, a := range hosts {
			if n := strings.Count(msg, a); n != 2 { // "node A: connect: conn: dial tcp A: ..."
				t.Errorf("address %s appears %d times, want 2: %s", a, n, msg)
			}
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("errors.Is(ECONNREFUSED) = false: %v", err)
		}
	}
	// Seeds whose names do not resolve: the same format, not
	// go-multierror's default ("2 errors occurred:\n\t* ...").
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	db, err := sqlish.Connect(ctx, "redis", "redis://tendril-nosuch-1.invalid:1,tendril-nosuch-2.invalid:1")
	cancel()
	if err == nil {
		db.Close()
		t.Fatal("Connect to names that do not resolve succeeded")
	}
	t.Log(err)
	var dnsErr *net.DNSError
	if msg := err.Error(); !strings.Contains(msg, "2 errors: seed tendril-nosuch-") || strings.Contains(msg, "occurred") || !errors.As(err, &dnsErr) {
		t.Errorf("unresolvable seeds: %s", msg)
	}
}

// freeAddr returns a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestAbandonedSessionCommandClosesConn: a session command whose reply was
// given up (its context ended while the server was frozen) may still run
// when the server wakes: a MULTI (BeginTx's, or sent raw), a SELECT. The
// connection is closed at once, so the pinned Conn's next statement fails
// instead of being queued in a MULTI that never runs, or written to
// another database, and reported done. (A SET reported done was then
// missing: it had been queued in the abandoned MULTI.)
func TestAbandonedSessionCommandClosesConn(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(ctx context.Context, cn *sqlish.Conn) error
	}{
		{"BeginTx", func(ctx context.Context, cn *sqlish.Conn) error {
			_, err := cn.BeginTx(ctx, driver.TxOptions{})
			return err
		}},
		{"MULTI", func(ctx context.Context, cn *sqlish.Conn) error {
			_, err := cn.Exec(ctx, "MULTI")
			return err
		}},
		{"SELECT", func(ctx context.Context, cn *sqlish.Conn) error {
			_, err := cn.Exec(ctx, "SELECT 1")
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			db := connect(t, "redis", "redis://"+srv.Addr)
			ctx := context.Background()
			cn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if err := cn.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err = c.run(short, cn)
			cancel()
			srv.Cont()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s on a frozen server: %v; want its deadline's error", c.name, err)
			}
			time.Sleep(100 * time.Millisecond) // the server has run it by now
			_, serr := cn.Exec(ctx, "SET k v")
			var got sqlish.Null[string]
			if err := db.QueryRow(ctx, "GET k").Scan(&got); err != nil && !errors.Is(err, sqlish.ErrNoRows) {
				t.Fatal(err)
			}
			if serr == nil && !got.Valid {
				t.Errorf("after %s's reply was abandoned, SET on the Conn reported success and k is not set", c.name)
			}
			t.Logf("SET on the Conn after %s was abandoned: %v", c.name, serr)
		})
	}
}

// TestConnStatementOutcomeUnknown: a write on a pinned Conn whose reply
// was lost says that it may have run (ErrOutcomeUnknown), as the DB's
// statements do: INCR's timeout was an ordinary one, and the INCR had
// run, so a caller that ran it again counted twice. A read's error does
// not say so: running it again is harmless.
func TestConnStatementOutcomeUnknown(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr)
	ctx := context.Background()
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if err := cn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	frozen := func(q string) error {
		srv.Stop()
		defer srv.Cont()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := cn.Exec(short, q)
		return err
	}
	err = frozen("INCR n")
	if !errors.Is(err, sqlish.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("INCR on a Conn, its reply lost: %v; want ErrOutcomeUnknown and the deadline's error", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := getString(t, db, "n"); got != "1" {
		t.Errorf("n = %q after the INCR whose reply was lost: want 1 (it ran)", got)
	}
	cn2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cn2.Close()
	cn.Close()
	cn = cn2
	if err := cn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := frozen("GET n"); errors.Is(err, sqlish.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GET on a Conn, its reply lost: %v; want the deadline's error alone", err)
	}
}
