package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
)

// A 100 MB value goes to the socket from the caller's memory: the SET
// allocates a small fraction of it (it was copied three times: parsed,
// framed, buffered for the write), and the GET reads it into one buffer
// of its size, handed to Scan without another copy.
func TestLargeValueNotCopied(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1&socket_timeout=30s")
	const size = 100 << 20
	val := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var err error
	set := allocated(func() { _, err = db.Exec(ctx, "SET ? ?", "big", val) })
	if err != nil {
		t.Fatal(err)
	}
	if set > size/2 {
		t.Errorf("SET of %d MB allocated %d MB, want under half the value", size>>20, set>>20)
	}
	var got []byte
	get := allocated(func() { err = db.QueryRow(ctx, "GET ?", "big").Scan(&got) })
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("GET: %d bytes (%v), want the %d set", len(got), err, size)
	}
	if get > size+size/4 {
		t.Errorf("GET of %d MB allocated %d MB, want one buffer of its size", size>>20, get>>20)
	}
	// A string argument is not copied either.
	str := string(val)
	set = allocated(func() { _, err = db.Exec(ctx, "SET ? ?", "big", str) })
	if err != nil || set > size/2 {
		t.Errorf("SET of a %d MB string allocated %d MB (%v), want under half", size>>20, set>>20, err)
	}
	t.Logf("SET allocated %d KB, GET %d MB", set>>10, get>>20)
}

// Large values spread over connections (driver.Spreader): 8 callers
// reading 256 KB values, or writing 32 KB ones, make the node's pool open
// about a connection per caller, each serving one statement at a time,
// where the same callers reading or writing small values share a few. Every
// value read is the one written to its key.
func TestLargeValuesSpread(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	run := func(size int, write bool) int {
		db := connect(t, "redis", "redis://"+srv.Addr)
		defer db.Close()
		vals := make([][]byte, 8)
		for i := range vals {
			vals[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
			if _, err := db.Exec(ctx, "SET ? ?", fmt.Sprintf("spread:%d", i), vals[i]); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got []byte
				for j := range 100 {
					k := (g + j) % len(vals)
					key := fmt.Sprintf("spread:%d", k)
					if write {
						if _, err := db.Exec(ctx, "SET ? ?", key, vals[k]); err != nil {
							t.Error(err)
							return
						}
						continue
					}
					if err := db.QueryRow(ctx, "GET ?", key).Scan(&got); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(got, vals[k]) {
						t.Errorf("GET %s: %d bytes of %q..., want %d of %q", key, len(got), got[:min(len(got), 1)], size, vals[k][:1])
						return
					}
				}
			}()
		}
		wg.Wait()
		return db.Stats().Open
	}
	// Small values share: the pool opens another connection only when a
	// caller finds none idle in the instant a shared one is checked out.
	for _, c := range []struct {
		op          string
		write       bool
		small, size int
	}{{"GET", false, 64, 256 << 10}, {"SET", true, 64, 32 << 10}} {
		small, large := run(c.small, c.write), run(c.size, c.write)
		t.Logf("%s: connections opened: %d for %d B values, %d for %d KB", c.op, small, c.small, large, c.size>>10)
		if large < 6 || large <= small {
			t.Errorf("8 callers of %d KB %ss used %d connections (of %d B %ss: %d), want about one each",
				c.size>>10, c.op, large, c.small, c.op, small)
		}
	}
}

// A node's pool at its max_conns_per_node never makes callers wait for a
// crowded connection: with no room for another, large values share it as
// small ones do.
func TestLargeValuesShareAtMaxConns(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1")
	val := bytes.Repeat([]byte{'v'}, 256<<10)
	if _, err := db.Exec(ctx, "SET big ?", val); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for range 10 { // the connection is crowded from here on
		if err := db.QueryRow(ctx, "GET big").Scan(&got); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats().Nodes[0].Pool.Waited
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []byte
			for range 30 {
				if err := db.QueryRow(ctx, "GET big").Scan(&got); err != nil || len(got) != len(val) {
					t.Errorf("GET big: %d bytes, %v", len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A shared statement too makes others wait, for the instant between
	// its checkout and its loan: a few GETs in a quiet run, 9 in a CI run
	// with the other packages' tests beside it. A statement that kept the
	// connection for itself made 239 of 240 wait.
	waited := db.Stats().Nodes[0].Pool.Waited - before
	t.Logf("%d of 240 GETs waited for a connection", waited)
	if waited > 60 {
		t.Errorf("%d of 240 GETs waited for the node's only connection, want it shared", waited)
	}
}

// Transactions next to crowded connections: no statement of another
// caller lands inside a MULTI, and none of the transaction's inside
// another caller's reply.
func TestLargeValuesBesideTransactions(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	val := bytes.Repeat([]byte{'v'}, 256<<10)
	if _, err := db.Exec(ctx, "SET big ?", val); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []byte
			for range 100 {
				if err := db.QueryRow(ctx, "GET big").Scan(&got); err != nil || !bytes.Equal(got, val) {
					t.Errorf("GET big: %d bytes (%.10q), %v", len(got), got, err)
					return
				}
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("tx:%d", g)
			for i := range 50 {
				tx, err := db.BeginTx(ctx, driver.TxOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := tx.Exec(ctx, "SET ? ?", key, i); err != nil {
					t.Error(err)
					tx.Rollback(ctx)
					return
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				var got int
				if err := db.QueryRow(ctx, "GET ?", key).Scan(&got); err != nil || got != i {
					t.Errorf("GET %s after its transaction: %d, %v; want %d", key, got, err, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}
