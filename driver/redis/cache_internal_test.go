package redis

import (
	"context"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/proto/resp"
)

// TestWritesDropTheirCachedKeys: a write on one connection drops what the
// cache holds of its keys whichever way it is sent (a statement, a batch,
// a batch sent and waited for, prepared or not), without help from the
// server: the connection that read the key has its tracking turned off, so
// no invalidation comes.
func TestWritesDropTheirCachedKeys(t *testing.T) {
	srv := redistest.StartServer(t)
	dc, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{srv.Addr},
		Params: map[string]string{"cache_size": "1048576", "cache_ttl": "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(cachingConnector)
	ctx := context.Background()
	connect := func() *redisConn {
		cn, err := c.Connect(ctx, srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close() })
		return cn.(*redisConn)
	}
	owner, writer := connect(), connect()
	cached := func() bool {
		var row driver.Row
		hit, err := c.CachedRow(ctx, "GET k", nil, func(driver.Route) string { return srv.Addr }, &row)
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	// plant puts an entry for GET k in the cache that no server tracking
	// covers: only a local drop can remove it.
	plant := func() {
		t.Helper()
		cmd := rediscmd.Get()
		defer rediscmd.Put(cmd)
		_, _, key, ok, err := c.parseCacheable(cmd, "GET k", nil)
		if !ok || err != nil {
			t.Fatal("GET k is not cacheable", err)
		}
		now := cacheNow()
		e := owner.cache.begin(cmd.Frame, key, owner, now)
		owner.cache.fill(e, resp.Value{Kind: resp.KindBulkString, Str: []byte("planted")}, now+int64(time.Hour))
		if !cached() {
			t.Fatal("the planted entry is not served")
		}
	}
	prepared := func(q string) driver.Stmt {
		_, buf, err := c.RoutePrepare(q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return driver.Stmt{Query: q, Prepared: buf}
	}
	for _, w := range []struct {
		name  string
		write func() error
	}{
		{"Exec", func() error { _, err := writer.Exec(ctx, "SET k w", nil); return err }},
		{"Batch", func() error {
			return writer.Batch(ctx, []driver.Stmt{{Query: "SET k w"}}, make([]driver.BatchResult, 1))
		}},
		{"prepared Batch", func() error {
			return writer.Batch(ctx, []driver.Stmt{prepared("SET k w"), prepared("GET x")}, make([]driver.BatchResult, 2))
		}},
		{"prepared SendBatch", func() error {
			pb, err := writer.SendBatch(ctx, []driver.Stmt{prepared("SET k w")}, make([]driver.BatchResult, 1))
			if err != nil {
				return err
			}
			return pb.Wait(ctx)
		}},
	} {
		plant()
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if cached() {
			t.Fatalf("%s of k: the cache still holds GET k", w.name)
		}
	}
}
