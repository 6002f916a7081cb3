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

// The results a batch handed out (a Row not scanned yet, Rows not read yet)
// stay as they were after Close, while later batches reuse the memory the
// driver's results were kept in.
func TestBatchResultsOutliveClose(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	for i := range 3 {
		db.Exec(ctx, "SET ? ?", fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	var b sqlish.Batch
	b.Queue("GET k0")
	b.Queue("GET k1")
	br := db.SendBatch(ctx, &b)
	row := br.QueryRow()
	rows, err := br.Query()
	if err != nil {
		t.Fatal(err)
	}
	br.Close()
	for range 20 { // overwrite whatever was pooled
		var b2 sqlish.Batch
		b2.Queue("GET k2")
		b2.Queue("GET k2")
		br2 := db.SendBatch(ctx, &b2)
		var s string
		if err := br2.QueryRow().Scan(&s); err != nil || s != "v2" {
			t.Fatalf("a later batch: %q, %v", s, err)
		}
		br2.Close()
	}
	var s0, s1 string
	if err := row.Scan(&s0); err != nil || s0 != "v0" {
		t.Errorf("a Row scanned after Close: %q, %v; want v0", s0, err)
	}
	if !rows.Next() {
		t.Fatalf("Rows read after Close: no row (%v)", rows.Err())
	}
	if err := rows.Scan(&s1); err != nil || s1 != "v1" {
		t.Errorf("Rows read after Close: %q, %v; want v1", s1, err)
	}
	rows.Close()
}

// keysByPrimary returns n keys served by each primary of c, in the
// primaries' order.
func keysByPrimary(c *redistest.Cluster, n int) [][]string {
	prims := c.Primaries()
	keys := make([][]string, len(prims))
	for i := 0; ; i++ {
		k := fmt.Sprint("bk:", i)
		p := c.PrimaryFor(redistest.Slot(k))
		full := true
		for j := range prims {
			if prims[j] == p && len(keys[j]) < n {
				keys[j] = append(keys[j], k)
			}
			full = full && len(keys[j]) == n
		}
		if full {
			return keys
		}
	}
}

// A batch over several nodes is sent to every node before its replies are
// waited for (driver.BatchSender); what SendBatch promises holds on that
// path too: a statement whose slot moved under the batch follows the
// redirect on its own; a node that does not answer fails only its group,
// within socket_timeout, and a statement of it that may have run is not
// run again (ErrOutcomeUnknown); a caller's ctx that ends mid-batch ends
// it at once; no goroutine is left (goleak in TestMain), and the
// connections serve the next batch.
func TestBatchPipelinedAcrossNodes(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, redistest.WithConfig("cluster-node-timeout 30000"))
	ctx := context.Background()
	// No tend during the test: the client's slot map stays as it was.
	db := connect(t, "redis", clusterDSN(c, "tend_interval=1h&socket_timeout=300ms&max_retries=2"))
	keys := keysByPrimary(c, 5)
	for _, ks := range keys {
		for _, k := range ks {
			if _, err := db.Exec(ctx, "SET ? ?", k, "v:"+k); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(t *testing.T, br *sqlish.BatchResults, want []string) {
		t.Helper()
		for _, k := range want {
			var v string
			if err := br.QueryRow().Scan(&v); err != nil || v != "v:"+k {
				t.Errorf("GET %s = %q, %v", k, v, err)
			}
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for i := range keys[0] {
		for _, ks := range keys {
			all = append(all, ks[i])
		}
	}
	queue := func(keys []string) *sqlish.Batch {
		var b sqlish.Batch
		for _, k := range keys {
			b.Queue("GET ?", k)
		}
		return &b
	}
	check(t, db.SendBatch(ctx, queue(all)), all)

	t.Run("Moved", func(t *testing.T) {
		prims := c.Primaries()
		moved := keys[0][0]
		c.MoveSlot(redistest.Slot(moved), prims[1]) // the client does not know
		check(t, db.SendBatch(ctx, queue(all)), all)
		c.MoveSlot(redistest.Slot(moved), prims[0])
		check(t, db.SendBatch(ctx, queue(all)), all)
	})

	t.Run("StoppedNode", func(t *testing.T) {
		stopped := c.Primaries()[2]
		incr := "{" + keys[2][1] + "}:n" // in the stopped node's slot
		var b sqlish.Batch
		b.Queue("INCR ?", incr)
		b.Queue("GET ?", keys[0][1])
		b.Queue("GET ?", keys[1][1])
		stopped.Stop()
		start := time.Now()
		br := db.SendBatch(ctx, &b)
		took := time.Since(start)
		stopped.Cont()
		_, err := br.Exec()
		if !errors.Is(err, sqlish.ErrOutcomeUnknown) {
			t.Errorf("INCR on a node that did not answer: %v; want ErrOutcomeUnknown", err)
		}
		check(t, br, []string{keys[0][1], keys[1][1]})
		if took > 2*time.Second {
			t.Errorf("the batch took %v with socket_timeout 300ms", took)
		}
		// The INCR was sent once: it ran once, when the node woke up.
		waitFor(t, func() bool {
			var n int
			return db.QueryRow(ctx, "GET ?", incr).Scan(&n) == nil && n == 1
		}, func() string {
			v, err := stopped.Do("GET", incr)
			return fmt.Sprintf("INCR ran other than once: %q, %v", v, err)
		})
		check(t, db.SendBatch(ctx, queue(all)), all)
	})

	t.Run("Cancelled", func(t *testing.T) {
		stopped := c.Primaries()[1]
		stopped.Stop()
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		br := db.SendBatch(cctx, queue(all))
		took := time.Since(start)
		stopped.Cont()
		if took > 250*time.Millisecond {
			t.Errorf("a batch whose ctx ended after 100ms returned after %v", took)
		}
		for k := range all {
			_, err := br.Exec()
			if k%3 == 1 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("statement %d on the stopped node: %v; want DeadlineExceeded", k, err)
			}
		}
		br.Close()
		check(t, db.SendBatch(ctx, queue(all)), all)
	})
}

func waitFor(t *testing.T, cond func() bool, why func() string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
	}
}

// Each statement of a batch is parsed once, when it is routed
// (driver.PrepareRouter), and sent as it was encoded then: a statement
// refused on the way (an argument sqlish cannot convert, one Redis cannot
// take) takes no place among the encodings, and each of the others gets
// its own reply, in its RESP3 shape on RESP2 too.
func TestBatchPrepared(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	for _, proto := range []string{"3", "2"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			db := connect(t, "redis", "redis://"+srv.Addr+"?protocol="+proto)
			db.Exec(ctx, "DEL h z")
			for range 3 { // the working memory of one batch is reused by the next
				var b sqlish.Batch
				b.Queue("SET ? ?", "k0", "v0")
				b.Queue("GET ?", struct{}{}) // refused by sqlish
				b.Queue("HSET h f ?", 1)
				b.Queue("GET ?", nil) // refused by the driver
				b.Queue("ZADD z ? m", 1.5)
				b.Queue("HGETALL h")
				b.Queue("ZSCORE z m")
				b.Queue("GET k0")
				br := db.SendBatch(ctx, &b)
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
				if _, err := br.Exec(); err == nil {
					t.Fatal("a struct argument was accepted")
				}
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
				if _, err := br.Exec(); err == nil || !strings.Contains(err.Error(), "nil") {
					t.Fatalf("GET nil: %v, want an error about nil", err)
				}
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
				var f, v string
				if err := br.QueryRow().Scan(&f, &v); err != nil || f != "f" || v != "1" {
					t.Fatalf("HGETALL: %q %q, %v", f, v, err)
				}
				var score any
				if err := br.QueryRow().Scan(&score); err != nil || score != 1.5 {
					t.Fatalf("ZSCORE: %#v, %v; want the float64 1.5", score, err)
				}
				var s string
				if err := br.QueryRow().Scan(&s); err != nil || s != "v0" {
					t.Fatalf("GET k0: %q, %v", s, err)
				}
				br.Close()
			}
		})
	}
}

// A BatchResults closed twice does not touch the memory its first Close
// gave back, which a later batch may be using.
func TestBatchResultsClosedTwice(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	db.Exec(ctx, "SET k v")
	queue := func() *sqlish.Batch {
		var b sqlish.Batch
		for range 10 {
			b.Queue("GET k")
		}
		return &b
	}
	for range 50 {
		br1 := db.SendBatch(ctx, queue())
		br1.Close()
		br2 := db.SendBatch(ctx, queue()) // most often on br1's memory
		br1.Close()
		for i := range 10 {
			var s string
			if err := br2.QueryRow().Scan(&s); err != nil || s != "v" {
				t.Fatalf("statement %d of a batch after another was closed twice: %q, %v", i, s, err)
			}
		}
		br2.Close()
	}
}

// Batches whose callers read their own replies (a context that cannot be
// cancelled: conn.Send parks the read token until the caller waits) share
// each node's connection with single statements and with batches whose
// contexts are cancelled under them: every reply still goes to the
// statement it answers, and a caller whose context is not cancelled gets
// no error.
func TestBatchRepliesMatchUnderSharing(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	db := connect(t, "redis", clusterDSN(c, "socket_timeout=5s"))
	var keys []string
	for _, ks := range keysByPrimary(c, 20) {
		keys = append(keys, ks...)
	}
	bg := context.Background()
	for i, k := range keys {
		// Values of different lengths: a reply handed to the wrong
		// statement cannot pass for the right one.
		if _, err := db.Exec(bg, "SET ? ?", k, "v:"+k+strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := func(i int) string { return "v:" + keys[i] + strings.Repeat("x", i) }
	stop := time.Now().Add(2 * time.Second)
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	var batches, gets, cancelled atomic.Int64
	// check judges one statement's outcome: an error is fine only when
	// its context ended (the callers whose contexts cannot end get none).
	check := func(ctx context.Context, what string, i int, v string, err error) {
		switch {
		case err != nil && ctx.Err() != nil:
			cancelled.Add(1)
		case err != nil:
			report(fmt.Errorf("%s %s: %w", what, keys[i], err))
		case v != want(i):
			report(fmt.Errorf("%s %s = %.40q, want %.40q", what, keys[i], v, want(i)))
		}
	}
	batcher := func(g int, cancellable bool) {
		defer wg.Done()
		for n := 0; time.Now().Before(stop); n++ {
			ctx, cancel := bg, context.CancelFunc(func() {})
			if cancellable {
				// Some end before their replies come, some after.
				ctx, cancel = context.WithTimeout(bg, time.Duration(n%5)*100*time.Microsecond)
			}
			var b sqlish.Batch
			idx := make([]int, 0, 30)
			for k := range 30 {
				i := (g*7 + n*3 + k*5) % len(keys)
				idx = append(idx, i)
				b.Queue("GET ?", keys[i])
			}
			br := db.SendBatch(ctx, &b)
			for _, i := range idx {
				var v string
				err := br.QueryRow().Scan(&v)
				check(ctx, "batch GET", i, v, err)
			}
			br.Close()
			cancel()
			batches.Add(1)
		}
	}
	getter := func(g int, cancellable bool) {
		defer wg.Done()
		for n := 0; time.Now().Before(stop); n++ {
			i := (g*11 + n*7) % len(keys)
			ctx, cancel := bg, context.CancelFunc(func() {})
			if cancellable {
				ctx, cancel = context.WithTimeout(bg, time.Duration(n%5)*100*time.Microsecond)
			}
			var v string
			err := db.QueryRow(ctx, "GET ?", keys[i]).Scan(&v)
			check(ctx, "GET", i, v, err)
			cancel()
			gets.Add(1)
		}
	}
	for g := range 4 {
		wg.Add(2)
		go batcher(g, false)
		go getter(g, false)
	}
	for g := 4; g < 6; g++ {
		wg.Add(2)
		go batcher(g, true)
		go getter(g, true)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d batches, %d GETs, %d statements cancelled", batches.Load(), gets.Load(), cancelled.Load())
	if batches.Load() == 0 || gets.Load() == 0 {
		t.Fatal("no load ran")
	}
}
