package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/internal/redistest"
)

// dialAddr opens one driver connection to addr, as the pools do.
func dialAddr(t *testing.T, addr string) driver.Conn {
	t.Helper()
	c, err := redis.Driver{}.OpenConnector(driver.Config{Scheme: "redis", Hosts: []string{addr}, Timeout: 5 * time.Second, SocketTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.Close() })
	return cn
}

// Every error rediscmd.Classify retries is a refusal: a real server sends
// it without running the command, which the key left unset shows.
func TestClassifyRealErrors(t *testing.T) {
	ctx := context.Background()
	unset := func(t *testing.T, srv *redistest.Server, key string) {
		t.Helper()
		if got, err := srv.Do("EXISTS", key); err != nil || got != "0" {
			t.Errorf("EXISTS %s = %q, %v: the refused command ran", key, got, err)
		}
	}
	classify := func(t *testing.T, cn driver.Conn, stmt string, want driver.Retry, code string) {
		t.Helper()
		_, err := cn.Exec(ctx, stmt, nil)
		if err == nil || !strings.HasPrefix(err.Error(), code) {
			t.Fatalf("%s: %v, want a %s error", stmt, err, code)
		}
		if got := rediscmd.Classify(err); got != want {
			t.Errorf("Classify(%v) = %v, want %v", err, got, want)
		}
	}

	t.Run("READONLY", func(t *testing.T) {
		primary, replica := redistest.StartServer(t), redistest.StartServer(t)
		replica.MustDo("REPLICAOF", "127.0.0.1", strconv.Itoa(primary.Port))
		classify(t, dialAddr(t, replica.Addr), "SET ro:k v", driver.RetryDemoted, "READONLY")
		unset(t, replica, "ro:k")
	})
	t.Run("NOREPLICAS", func(t *testing.T) {
		srv := redistest.StartServer(t)
		srv.MustDo("CONFIG", "SET", "min-replicas-to-write", "1")
		cn := dialAddr(t, srv.Addr)
		classify(t, cn, "SET nr:k v", driver.RetryRefresh, "NOREPLICAS")
		classify(t, cn, "EVAL \"redis.call('SET', 'nr:k', 'v')\" 0", driver.RetryRefresh, "NOREPLICAS")
		unset(t, srv, "nr:k")
	})
	t.Run("MASTERDOWN", func(t *testing.T) {
		srv := redistest.StartServer(t)
		srv.MustDo("CONFIG", "SET", "replica-serve-stale-data", "no")
		srv.MustDo("REPLICAOF", "127.0.0.1", "1") // nothing listens there
		classify(t, dialAddr(t, srv.Addr), "GET md:k", driver.RetryRefresh, "MASTERDOWN")
	})
	t.Run("BUSY", func(t *testing.T) {
		srv := redistest.StartServer(t)
		srv.MustDo("CONFIG", "SET", "busy-reply-threshold", "10")
		cn := dialAddr(t, srv.Addr)
		done := make(chan error, 1)
		go func() {
			// A script spinning for a second, on a connection of its own.
			_, err := srv.Do("EVAL", "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "+
				"while true do t = redis.call('TIME') if t[1] * 1000000 + t[2] - s > 1000000 then return 1 end end", "0")
			done <- err
		}()
		// Each attempt sets a key of its own: those before the script
		// started are set, the one refused with BUSY must not be.
		var key string
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; ; i++ {
			key = "busy:" + strconv.Itoa(i)
			_, err := cn.Exec(ctx, "SET "+key+" v", nil)
			if err != nil && strings.HasPrefix(err.Error(), "BUSY") {
				if got := rediscmd.Classify(err); got != driver.RetryLater {
					t.Errorf("Classify(%v) = %v, want later", err, got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("never BUSY: last error %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		unset(t, srv, key)
	})
	t.Run("statement errors", func(t *testing.T) {
		srv := redistest.StartServer(t)
		cn := dialAddr(t, srv.Addr)
		cn.Exec(ctx, "SET str v", nil)
		classify(t, cn, "LPUSH str x", driver.RetryNever, "WRONGTYPE")
		classify(t, cn, "NOSUCHCOMMAND", driver.RetryNever, "ERR")
		classify(t, cn, "EVALSHA 0123456789012345678901234567890123456789 0", driver.RetryNever, "NOSCRIPT")
	})
}
