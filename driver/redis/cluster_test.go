package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

func clusterDSN(c *redistest.Cluster, query string) string {
	dsn := "redis://" + strings.Join(c.Seeds()[:1], ",")
	if query != "" {
		dsn += "?" + query
	}
	return dsn
}

// otherPrimary returns a primary of c other than p.
func otherPrimary(c *redistest.Cluster, p *redistest.Server) *redistest.Server {
	for _, q := range c.Primaries() {
		if q != p {
			return q
		}
	}
	return nil
}

// One cluster serves the tests that do not break it.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	db := connect(t, "redis", clusterDSN(c, "tend_interval=200ms"))

	t.Run("Discovery", func(t *testing.T) {
		nodes := db.Nodes()
		var primaries, slots int
		for _, n := range nodes {
			if n.Role == "primary" {
				primaries++
				slots += n.Partitions
			}
		}
		if len(nodes) != 6 || primaries != 3 || slots != 16384 {
			t.Fatalf("from one seed: %d nodes, %d primaries owning %d slots: %v", len(nodes), primaries, slots, nodes)
		}
	})

	t.Run("TenThousandKeys", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < 10000; i += 8 {
					k := fmt.Sprint("key:", i)
					if _, err := db.Exec(ctx, "SET ? ?", k, i); err != nil {
						errs <- err
						return
					}
					var v int
					if err := db.QueryRow(ctx, "GET ?", k).Scan(&v); err != nil || v != i {
						errs <- fmt.Errorf("GET %s = %d, %v", k, v, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})

	t.Run("BatchOfTenThousand", func(t *testing.T) {
		var b sqlish.Batch
		for i := range 10000 {
			switch i % 3 {
			case 0:
				b.Queue("SET ? ?", fmt.Sprint("b:", i), i)
			case 1:
				b.Queue("INCR ?", fmt.Sprint("c:", i))
			default:
				b.Queue("GET ?", fmt.Sprint("b:", i-2))
			}
		}
		br := db.SendBatch(ctx, &b)
		defer br.Close()
		for i := range 10000 {
			switch i % 3 {
			case 0:
				if _, err := br.Exec(); err != nil {
					t.Fatalf("statement %d: %v", i, err)
				}
			case 1:
				var n int
				if err := br.QueryRow().Scan(&n); err != nil || n != 1 {
					t.Fatalf("INCR %d = %d, %v", i, n, err)
				}
			default:
				var v int
				if err := br.QueryRow().Scan(&v); err != nil || v != i-2 {
					t.Fatalf("GET b:%d = %d, %v (results out of order?)", i-2, v, err)
				}
			}
		}
	})

	t.Run("CrossSlot", func(t *testing.T) {
		_, err := db.Exec(ctx, "MGET a b c d e f")
		var se *sqlish.ServerError
		if !errors.As(err, &se) || se.Code != "CROSSSLOT" {
			t.Fatalf("cross-slot MGET: %v", err)
		}
		if _, err := db.Exec(ctx, "MSET {t}a 1 {t}b 2"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ReshardUnderLoad", func(t *testing.T) {
		// A slot moves to another primary while writers and readers use
		// keys in it: no operation may fail (ASK / MOVED are followed).
		const tag = "{reshard}"
		slot := redistest.Slot(tag)
		from := c.PrimaryFor(slot)
		to := otherPrimary(c, from)
		for i := range 200 {
			db.Exec(ctx, "SET ? ?", fmt.Sprint(tag, i), i)
		}
		var stop atomic.Bool
		var ops, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					k := fmt.Sprint(tag, (g*50+i)%200)
					var err error
					if i%2 == 0 {
						_, err = db.Exec(ctx, "SET ? ?", k, i)
					} else {
						err = db.QueryRow(ctx, "GET ?", k).Scan(new(string))
					}
					ops.Add(1)
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		c.MoveSlot(slot, to)
		time.Sleep(500 * time.Millisecond)
		c.MoveSlot(slot, from)
		time.Sleep(300 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		t.Logf("%d operations during two slot moves, %d failed, %d map patches", ops.Load(), failed.Load(), db.Stats().Topology.Patches)
		if failed.Load() > 0 {
			t.Fatalf("%d of %d operations failed; first: %v", failed.Load(), ops.Load(), firstErr.Load())
		}
	})

	t.Run("CacheAcrossReshard", func(t *testing.T) {
		// A slot moves away and back: the node it left dropped the keys
		// (MIGRATE deletes them, which invalidates them), so its old
		// entries are never served when the slot returns.
		cdb := connect(t, "redis", clusterDSN(c, "tend_interval=200ms&cache_size=1048576&cache_ttl=1m"))
		const key = "{cache}k"
		slot := redistest.Slot(key)
		from := c.PrimaryFor(slot)
		to := otherPrimary(c, from)
		set := func(v string) {
			t.Helper()
			if _, err := db.Exec(ctx, "SET ? ?", key, v); err != nil {
				t.Fatal(err)
			}
		}
		// await reads through the cache until it sees want (the other
		// client's write is announced asynchronously), then never
		// anything else.
		await := func(want string) {
			t.Helper()
			deadline := time.Now().Add(3 * time.Second)
			for {
				got := getCached(t, ctx, cdb, key)
				if got == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cached GET = %q for 3s, want %q", got, want)
				}
				time.Sleep(time.Millisecond)
			}
			for range 100 {
				if got := getCached(t, ctx, cdb, key); got != want {
					t.Fatalf("cached GET = %q after %q", got, want)
				}
			}
		}
		set("v1")
		await("v1")
		c.MoveSlot(slot, to)
		await("v1") // from the new owner
		set("v2")
		await("v2")
		c.MoveSlot(slot, from)
		await("v2") // not from's v1
		set("v3")
		await("v3")
		if st := cdb.Stats().Cache; st.Hits < 500 {
			t.Fatalf("cache stats %+v", st)
		}
	})

	t.Run("StoppedNode", func(t *testing.T) {
		// SIGSTOP a replica: calls to it (read_preference=replica: no
		// other node may serve them) wait for it until total_timeout,
		// calls to the others are unaffected, and it comes back when
		// resumed.
		rdb := connect(t, "redis", clusterDSN(c, "read_preference=replica&socket_timeout=200ms&total_timeout=500ms&max_retries=0&tend_interval=100ms&timeout=150ms"))
		slot := redistest.Slot("{stop}")
		replica := c.ReplicasOf(c.PrimaryFor(slot))[0]
		replica.Stop()
		start := time.Now()
		err := rdb.QueryRow(ctx, "GET {stop}k").Scan(new(string))
		if d := time.Since(start); errors.Is(err, sqlish.ErrNoRows) || d > time.Second {
			t.Errorf("read from the stopped replica: %v after %v", err, d)
		}
		other := "{other}k"
		for i := 0; redistest.Slot(other) == slot || c.PrimaryFor(redistest.Slot(other)) == c.PrimaryFor(slot); i++ {
			other = fmt.Sprintf("{other%d}k", i)
		}
		for range 20 {
			if _, err := rdb.Exec(ctx, "SET ? 1", other); err != nil {
				t.Fatalf("a write to another shard failed while a replica is stopped: %v", err)
			}
		}
		replica.Cont()
		deadline := time.Now().Add(5 * time.Second)
		for !healthy(rdb, replica.Addr) {
			if time.Now().After(deadline) {
				t.Fatalf("resumed replica not healthy again: %v", rdb.Nodes())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func healthy(db *sqlish.DB, addr string) bool {
	for _, n := range db.Nodes() {
		if n.Addr == addr {
			return n.Healthy
		}
	}
	return false
}

// Killing a primary under load: once the replica's promotion is visible,
// writes to its slots succeed within 500ms, and no call exceeds its
// total_timeout.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	const total = 3 * time.Second
	db := connect(t, "redis", clusterDSN(c, "tend_interval=100ms&timeout=200ms&socket_timeout=300ms"+
		"&total_timeout=3s&max_retries=50&sleep_between_retries=10ms"))
	const tag = "{failover}"
	slot := redistest.Slot(tag)
	var (
		stop      atomic.Bool
		visible   atomic.Int64
		firstOK   atomic.Int64
		longest   atomic.Int64
		failed    atomic.Int64
		succeeded atomic.Int64
		wg        sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				start := time.Now()
				_, err := db.Exec(context.Background(), "SET ? ?", fmt.Sprintf("%s:%d", tag, g), i)
				d := time.Since(start)
				for l := longest.Load(); int64(d) > l && !longest.CompareAndSwap(l, int64(d)); l = longest.Load() {
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				succeeded.Add(1)
				if v := visible.Load(); v != 0 && start.UnixNano() >= v {
					firstOK.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	// A cached read of the failed slot's key: after the promotion, the
	// value written on the new primary is read, never the old one again.
	cdb := connect(t, "redis", clusterDSN(c, "tend_interval=100ms&timeout=200ms&socket_timeout=300ms&cache_size=1048576&cache_ttl=1m"))
	cached := tag + ":cached"
	if _, err := db.Exec(context.Background(), "SET ? before", cached); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := getCached(t, context.Background(), cdb, cached); got != "before" {
			t.Fatalf("cached GET = %q", got)
		}
	}
	time.Sleep(300 * time.Millisecond)
	killed := c.KillPrimary(slot)
	promoted, at := c.WaitPromoted(slot, 15*time.Second)
	visible.Store(at.UnixNano())
	deadline := time.Now().Add(5 * time.Second)
	for firstOK.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if firstOK.Load() == 0 {
		t.Fatalf("no write succeeded after %s was promoted over %s", promoted.Addr, killed.Addr)
	}
	if _, err := db.Exec(context.Background(), "SET ? after", cached); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	seen := false
	for n := 0; n < 100; {
		var got string
		err := cdb.QueryRow(context.Background(), "GET ?", cached).Scan(&got)
		switch {
		case err == nil && got == "after":
			seen = true
			n++
		case err == nil && seen:
			t.Fatalf("cached GET = %q after %q", got, "after")
		case time.Now().After(deadline):
			t.Fatalf("cached GET = %q, %v for 3s after the failover, want %q", got, err, "after")
		}
	}
	rec := time.Duration(firstOK.Load() - visible.Load())
	t.Logf("killed %s; %s promoted; first write %v after the promotion became visible; %d ok, %d failed, longest call %v",
		killed.Addr, promoted.Addr, rec, succeeded.Load(), failed.Load(), time.Duration(longest.Load()))
	if rec > 500*time.Millisecond {
		t.Errorf("writes resumed %v after the promotion, want at most 500ms", rec)
	}
	if l := time.Duration(longest.Load()); l > total+200*time.Millisecond {
		t.Errorf("a call took %v; total_timeout is %v", l, total)
	}
}
