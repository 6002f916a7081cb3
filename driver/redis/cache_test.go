package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// serverCalls returns how many times srv ran cmd (INFO commandstats): a read
// served from the cache never reaches the server.
func serverCalls(t *testing.T, srv *redistest.Server, cmd string) int {
	t.Helper()
	info, err := srv.Do("INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	prefix := "cmdstat_" + strings.ToLower(cmd) + ":calls="
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func getCached(t *testing.T, ctx context.Context, db *sqlish.DB, key string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(ctx, "GET ?", key).Scan(&s); err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return s
}

// TestCacheServesAndInvalidates: a cached read does no I/O, and after
// another client writes the key, one round trip on the caching connection
// is enough for the next read to be fresh (the invalidation comes before
// that round trip's reply, on the same connection).
func TestCacheServesAndInvalidates(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&max_conns_per_node=1")
	other := connect(t, "redis", "redis://"+srv.Addr)
	ctx := context.Background()
	cached := sqlish.WithCache(ctx, time.Minute)
	if _, err := other.Exec(ctx, "SET k v0"); err != nil {
		t.Fatal(err)
	}
	if got := getCached(t, cached, db, "k"); got != "v0" {
		t.Fatalf("GET = %q", got)
	}
	calls := serverCalls(t, srv, "get")
	for range 100 {
		if got := getCached(t, cached, db, "k"); got != "v0" {
			t.Fatalf("cached GET = %q", got)
		}
	}
	if n := serverCalls(t, srv, "get"); n != calls {
		t.Fatalf("100 cached GETs reached the server %d times", n-calls)
	}
	if st := db.Stats().Cache; st.Hits < 100 || st.Entries != 1 || st.Bytes <= 0 {
		t.Fatalf("cache stats %+v", st)
	}
	// A read without WithCache goes to the server.
	getCached(t, ctx, db, "k")
	if n := serverCalls(t, srv, "get"); n != calls+1 {
		t.Fatalf("an uncached GET reached the server %d times", n-calls)
	}
	for i := range 200 {
		want := "v" + strconv.Itoa(i+1)
		if _, err := other.Exec(ctx, "SET k ?", want); err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(ctx); err != nil { // one round trip
			t.Fatal(err)
		}
		if got := getCached(t, cached, db, "k"); got != want {
			t.Fatalf("write %d: cached GET after one round trip = %q, want %q", i+1, got, want)
		}
	}
	if st := db.Stats().Cache; st.Invalidations < 200 {
		t.Fatalf("cache stats %+v: want ≥ 200 invalidations", st)
	}
	// A value handed to the caller is a copy: changing it does not change
	// the cache.
	var b []byte
	if err := db.QueryRow(cached, "GET k").Scan(&b); err != nil {
		t.Fatal(err)
	}
	b[0] = 'X'
	if got := getCached(t, cached, db, "k"); got != "v200" {
		t.Fatalf("cached value changed by a caller: %q", got)
	}
	// Aggregates are cached too, and copied on the way out.
	if _, err := other.Exec(ctx, "HSET h f1 a f2 b"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rows, err := db.Query(cached, "HGETALL h")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var f, v string
			if err := rows.Scan(&f, &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, f+"="+v)
		}
		if err := rows.Close(); err != nil || strings.Join(got, ",") != "f1=a,f2=b" {
			t.Fatalf("HGETALL = %v, %v", got, err)
		}
	}
	if n := serverCalls(t, srv, "hgetall"); n != 1 {
		t.Fatalf("3 cached HGETALLs reached the server %d times", n)
	}
}

// TestCacheHitTakesNoConnection: a hit is answered before a connection is
// taken, so it needs none: here the node's only connection is pinned.
func TestCacheHitTakesNoConnection(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m&max_conns_per_node=1")
	ctx := context.Background()
	if _, err := db.Exec(ctx, "SET k v"); err != nil {
		t.Fatal(err)
	}
	getCached(t, ctx, db, "k")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, "SET other 1"); err != nil { // holds the connection
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	for range 100 {
		if got := getCached(t, short, db, "k"); got != "v" {
			t.Fatalf("GET = %q", got)
		}
	}
	// An uncached read needs the connection: it waits, and times out.
	var s string
	if err := db.QueryRow(sqlish.WithCache(short, 0), "GET k").Scan(&s); err == nil {
		t.Fatal("an uncached GET ran while the only connection was pinned")
	}
}

// TestCacheNeverKeepsAStaleValue races cached readers against a writer:
// a reply stored after its key's invalidation was applied would stay in the
// cache, stale. Every reader must see the key's values in order, and after
// the writes and one round trip, the last one.
func TestCacheNeverKeepsAStaleValue(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&max_conns_per_node=1&cache_ttl=1m")
	other := connect(t, "redis", "redis://"+srv.Addr)
	ctx := context.Background()
	const writes = 3000
	if _, err := other.Exec(ctx, "SET n 0"); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Go(func() {
			last := -1
			for !done.Load() {
				var n int
				if err := db.QueryRow(ctx, "GET n").Scan(&n); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				if n < last {
					errs <- fmt.Errorf("reader %d read %d after %d: a stale value was cached", r, n, last)
					return
				}
				last = n
			}
		})
	}
	for i := 1; i <= writes; i++ {
		if _, err := other.Exec(ctx, "SET n ?", i); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, "GET n").Scan(&n); err != nil || n != writes {
		t.Fatalf("GET n after the writes = %d, %v; want %d", n, err, writes)
	}
	st := db.Stats().Cache
	t.Logf("cache: %+v", st)
	if st.Hits == 0 || st.Invalidations == 0 {
		t.Fatalf("the race did not happen: %+v", st)
	}
}

// TestCacheDropsWhatALostConnectionTracked: once the connection whose
// tracking covered an entry is gone, invalidations for it may have been
// lost, so the entry is not served.
func TestCacheDropsWhatALostConnectionTracked(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m")
	ctx := context.Background()
	if _, err := db.Exec(ctx, "SET k before"); err != nil {
		t.Fatal(err)
	}
	if got := getCached(t, ctx, db, "k"); got != "before" {
		t.Fatalf("GET = %q", got)
	}
	getCached(t, ctx, db, "k")
	if st := db.Stats().Cache; st.Hits != 1 {
		t.Fatalf("cache stats %+v: want a hit", st)
	}
	// The server drops every client, then the key changes: no
	// invalidation reaches us.
	srv.MustDo("CLIENT", "KILL", "TYPE", "normal")
	srv.MustDo("SET", "k", "after")
	// The time it takes the connection's reader to see the end of its
	// stream: the window in which any tracking client may serve a value
	// it could not hear about.
	time.Sleep(100 * time.Millisecond)
	calls := serverCalls(t, srv, "get")
	if got := getCached(t, ctx, db, "k"); got != "after" {
		t.Fatalf("GET after the connection was lost = %q, want %q", got, "after")
	}
	if n := serverCalls(t, srv, "get"); n != calls+1 {
		t.Fatalf("the read after the loss reached the server %d times, want 1", n-calls)
	}
}

// TestCacheDropsWhatAKilledOwnerTracked: a node with two connections loses
// the one whose tracking covers an entry; the other, alive, serves the next
// reads, which must not be answered from that entry.
func TestCacheDropsWhatAKilledOwnerTracked(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m&min_conns_per_node=2&max_conns_per_node=2&client_name=cached")
	ctx := context.Background()
	for i := range 10 {
		before, after := "before"+strconv.Itoa(i), "after"+strconv.Itoa(i)
		if _, err := db.Exec(ctx, "SET k ?", before); err != nil {
			t.Fatal(err)
		}
		if got := getCached(t, ctx, db, "k"); got != before {
			t.Fatalf("GET = %q", got)
		}
		// The owner's last command is the PTTL sent with the cached read.
		owner := ""
		list := srv.MustDo("CLIENT", "LIST")
		for line := range strings.SplitSeq(list, "\n") {
			if strings.Contains(line, "name=cached ") && strings.Contains(line, " cmd=pttl ") {
				owner, _, _ = strings.Cut(strings.TrimPrefix(line, "id="), " ")
			}
		}
		if owner == "" {
			t.Fatalf("no connection of ours last ran PTTL:\n%s", list)
		}
		srv.MustDo("CLIENT", "KILL", "ID", owner)
		srv.MustDo("SET", "k", after)
		time.Sleep(50 * time.Millisecond) // for the reader to see its stream end
		for range 3 {                     // whichever connection the pool lends
			if got := getCached(t, ctx, db, "k"); got != after {
				t.Fatalf("round %d: GET after the owner was killed = %q, want %q", i, got, after)
			}
		}
	}
}

// TestCacheDropsWhatAPinnedConnStopsTracking: a pinned Conn that holds
// the connection whose tracking covers the node's entries, and turns that
// tracking off (CLIENT TRACKING OFF, RESET, HELLO 2), takes the entries
// with it: the server no longer sends their invalidations, so the DB's
// cached reads go to the server instead of serving a value another client
// changed.
func TestCacheDropsWhatAPinnedConnStopsTracking(t *testing.T) {
	for _, stmt := range []string{"CLIENT TRACKING OFF", "RESET", "HELLO 2"} {
		t.Run(stmt, func(t *testing.T) {
			srv := redistest.StartServer(t)
			db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&max_conns_per_node=2")
			ctx := context.Background()
			cached := sqlish.WithCache(ctx, time.Minute)
			srv.MustDo("SET", "k", "old")
			if got := getCached(t, cached, db, "k"); got != "old" {
				t.Fatalf("GET = %q", got)
			}
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
			if n := db.Stats().Nodes[0].Pool.Created; n != 1 {
				t.Fatalf("%d connections made: the Conn does not hold the cache's owner", n)
			}
			srv.MustDo("SET", "k", "new") // another client
			time.Sleep(100 * time.Millisecond)
			if got := getCached(t, cached, db, "k"); got != "new" {
				t.Fatalf("cached GET k = %q after another client set it to \"new\", while a Conn that ran %s on the owner is held", got, stmt)
			}
		})
	}
}

// TestCacheReadsOwnWrites: a write through the DB, on any of a node's
// connections (the server's invalidation goes to the connection that read
// the key, maybe another), a batch or a transaction, is seen by the next
// cached read at once.
func TestCacheReadsOwnWrites(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m&min_conns_per_node=4&max_conns_per_node=4")
	ctx := context.Background()
	check := func(how string, i int) {
		t.Helper()
		for range 2 { // a miss, then a hit
			if got := getCached(t, ctx, db, "k"); got != strconv.Itoa(i) {
				t.Fatalf("%s %d: cached GET = %q", how, i, got)
			}
		}
	}
	for i := range 2000 {
		switch i % 4 {
		case 0:
			if _, err := db.Exec(ctx, "SET k ?", i); err != nil {
				t.Fatal(err)
			}
			check("SET", i)
		case 1:
			var b sqlish.Batch
			b.Queue("SET k ?", i)
			b.Queue("GET other")
			if err := db.SendBatch(ctx, &b).Close(); err != nil {
				t.Fatal(err)
			}
			check("batch", i)
		case 2:
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.BeginTx(ctx, driver.TxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "SET k ?", i); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			c.Close()
			check("transaction", i)
		case 3:
			// On a pinned connection, never the one that read the key.
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "SET k ?", i); err != nil {
				t.Fatal(err)
			}
			c.Close()
			check("SET on a Conn", i)
			if _, err := db.Exec(ctx, "FLUSHALL"); err != nil {
				t.Fatal(err)
			}
			var s string
			if err := db.QueryRow(ctx, "GET k").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
				t.Fatalf("GET after FLUSHALL = %q, %v", s, err)
			}
			if _, err := db.Exec(ctx, "SET k ?", i); err != nil {
				t.Fatal(err)
			}
			check("SET after FLUSHALL", i)
		}
	}
	if st := db.Stats().Cache; st.Hits == 0 {
		t.Fatalf("cache stats %+v", st)
	}
}

// TestCacheTTL: an entry lives for the ttl asked for, and no longer than
// the key does on the server.
func TestCacheTTL(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576")
	ctx := context.Background()
	short := sqlish.WithCache(ctx, 200*time.Millisecond)
	if _, err := db.Exec(ctx, "SET k v"); err != nil {
		t.Fatal(err)
	}
	getCached(t, short, db, "k")
	calls := serverCalls(t, srv, "get")
	getCached(t, short, db, "k")
	if n := serverCalls(t, srv, "get"); n != calls {
		t.Fatalf("a read within the ttl reached the server")
	}
	time.Sleep(300 * time.Millisecond)
	getCached(t, short, db, "k")
	if n := serverCalls(t, srv, "get"); n != calls+1 {
		t.Fatalf("a read after the ttl reached the server %d times, want 1", n-calls)
	}

	// The key expires on the server before the ttl: the entry goes with it
	// (PTTL bounds it), whether or not the server's expiry cycle has
	// deleted the key yet.
	if _, err := db.Exec(ctx, "SET e v PX 150"); err != nil {
		t.Fatal(err)
	}
	long := sqlish.WithCache(ctx, time.Hour)
	getCached(t, long, db, "e")
	time.Sleep(250 * time.Millisecond)
	var s string
	if err := db.QueryRow(long, "GET e").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("GET of an expired key = %q, %v; want ErrNoRows", s, err)
	}
	// A missing key is cached too (tracking covers keys that do not exist
	// yet), until it is created.
	if err := db.QueryRow(long, "GET e").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "SET e back"); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := getCached(t, long, db, "e"); got != "back" {
		t.Fatalf("GET after the key was created = %q", got)
	}
}

// TestCacheBounded: the cache stays within cache_size however many keys
// are read through it.
func TestCacheBounded(t *testing.T) {
	srv := redistest.StartServer(t)
	const budget = 64 << 10
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size="+strconv.Itoa(budget)+"&cache_ttl=1m")
	ctx := context.Background()
	val := strings.Repeat("x", 1000)
	for i := range 500 {
		key := "k" + strconv.Itoa(i)
		if _, err := db.Exec(ctx, "SET ? ?", key, val); err != nil {
			t.Fatal(err)
		}
		if got := getCached(t, ctx, db, key); got != val {
			t.Fatalf("GET %s = %d bytes", key, len(got))
		}
		if st := db.Stats().Cache; st.Bytes > budget {
			t.Fatalf("after %d keys the cache holds %d bytes, over its %d", i+1, st.Bytes, budget)
		}
	}
	st := db.Stats().Cache
	if st.Evictions == 0 || st.Entries == 0 || st.Entries > budget/1000 {
		t.Fatalf("cache stats %+v", st)
	}
	// A value larger than the whole budget is served but not kept.
	big := strings.Repeat("y", 2*budget)
	if _, err := db.Exec(ctx, "SET big ?", big); err != nil {
		t.Fatal(err)
	}
	if got := getCached(t, ctx, db, "big"); got != big {
		t.Fatal("GET big: wrong value")
	}
	if st := db.Stats().Cache; st.Bytes > budget {
		t.Fatalf("cache holds %d bytes after a value over its budget", st.Bytes)
	}
}

// TestCacheWhatIsNotCached: reads whose reply changes without the key
// changing, multi-key reads, writes, and reads inside a transaction go to
// the server.
func TestCacheWhatIsNotCached(t *testing.T) {
	srv := redistest.StartServer(t)
	db := connect(t, "redis", "redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m")
	ctx := context.Background()
	for _, q := range []string{"SET k v EX 100", "XADD st * f v", "XGROUP CREATE st g 0", "XREADGROUP GROUP g c COUNT 1 STREAMS st >"} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, c := range []struct{ query, stat string }{
		{"TTL k", "ttl"}, {"PTTL k", "pttl"}, {"MGET k k2", "mget"}, {"SRANDMEMBER s", "srandmember"},
		{"OBJECT ENCODING k", "object|encoding"},
		// Idle times: the reply changes while the stream does not.
		{"XPENDING st g - + 10", "xpending"}, {"XINFO CONSUMERS st g", "xinfo|consumers"},
		{"XINFO GROUPS st", "xinfo|groups"}, {"XINFO STREAM st FULL", "xinfo|stream"},
	} {
		for range 2 {
			rows, err := db.Query(ctx, c.query)
			if err != nil {
				t.Fatalf("%s: %v", c.query, err)
			}
			rows.Close()
		}
		if n := serverCalls(t, srv, c.stat); n != 2 {
			t.Errorf("%s ran %d times on the server, want 2 (not cached)", c.query, n)
		}
	}
	if st := db.Stats().Cache; st.Entries != 0 {
		t.Fatalf("cache stats %+v: nothing should be cached", st)
	}
	// In a transaction the read is queued: never answered from the cache.
	getCached(t, ctx, db, "k")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	row := tx.QueryRow(ctx, "GET k")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := row.Scan(&s); err != nil || s != "v" {
		t.Fatalf("GET in a transaction = %q, %v", s, err)
	}
}

// TestCacheConfig: caching needs RESP3 and a budget.
func TestCacheConfig(t *testing.T) {
	for dsn, want := range map[string]string{
		"redis://h?cache_size=1000&protocol=2":  "protocol=3",
		"redis://h?cache_ttl=1s":                "needs cache_size",
		"redis://h?cache_size=-1":               "number of bytes",
		"redis://h?cache_size=1000&cache_ttl=x": "duration",
	} {
		_, err := sqlish.Open("redis", dsn)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", dsn, err, want)
		}
	}
}
