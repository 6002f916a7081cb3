package redis_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/proto/resp"
	"github.com/tendril-db/tendril/sqlish"
)

// dial opens one driver connection to srv, as a pool would.
func dial(t *testing.T, srv *redistest.Server, cfg driver.Config) driver.Conn {
	t.Helper()
	cfg.Scheme, cfg.Hosts = "redis", []string{srv.Addr}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cn, err := redis.Driver{}.OpenConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cn.Connect(ctx, srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func valid(c driver.Conn) bool { return c.(driver.Validator).IsValid() }

// The decoder's limits come from the DSN, per connector: a server that
// sends more than they allow fails the reply with an error naming the
// limit, on that connector's connections only.
func TestLimitsFromDSN(t *testing.T) {
	for dsn, want := range map[string]string{
		"redis://h?max_line_len=-1":                      `bad value "-1" for key "max_line_len"`,
		"redis://h?max_reply_bytes=1MB":                  `bad value "1MB" for key "max_reply_bytes"`,
		"redis://h?max_depth=99999999999":                `bad value "99999999999" for key "max_depth"`,
		"redis://h?max_bulk_len=":                        `key "max_bulk_len"`,
		"redis://h?max_array_len=9999999999999999999999": `key "max_array_len"`,
		"redis://h?max_lines=1":                          "max_line_len, max_reply_bytes",
	} {
		if _, err := sqlish.Open("redis", dsn); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want %q", dsn, err, want)
		}
	}

	srv := redistest.StartServer(t)
	srv.MustDo("SET", "k100", strings.Repeat("v", 100))
	args := []string{"RPUSH", "list"}
	for range 1000 {
		args = append(args, "element")
	}
	srv.MustDo(args...)
	srv.MustDo("XADD", "stream", "1-1", "f", "v")
	ctx := context.Background()
	for _, tc := range []struct {
		key, value string
		query      string
		want       string
	}{
		{"max_bulk_len", "10", "GET k100", "bulk length 100 exceeds MaxBulkLen 10"},
		{"max_line_len", "20", "GET", "error line longer than MaxLineLen 20"},
		{"max_array_len", "999", "LRANGE list 0 -1", "array length 1000 exceeds MaxArrayLen 999"},
		{"max_reply_bytes", "65536", "LRANGE list 0 -1", "decoded reply would exceed MaxReplyBytes 65536"},
		{"max_depth", "2", "XRANGE stream - +", "array nested deeper than MaxDepth 2"},
	} {
		c := dial(t, srv, driver.Config{Params: map[string]string{tc.key: tc.value}})
		_, err := c.Query(ctx, tc.query, nil)
		if !errors.Is(err, resp.ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: %s: %v, want an ErrProtocol naming %q", tc.key, tc.value, tc.query, err, tc.want)
		}
		if valid(c) {
			t.Errorf("%s=%s: the connection is still valid after a protocol error", tc.key, tc.value)
		}
		// A connector with default limits reads the same reply.
		d := dial(t, srv, driver.Config{})
		if _, err := d.Query(ctx, tc.query, nil); err != nil && !strings.Contains(err.Error(), "wrong number of arguments") {
			t.Errorf("default limits: %s: %v", tc.query, err)
		}
	}
}

// A request that gets no reply within socket_timeout on a shared
// connection takes that connection out of service: requests that come
// later go to a new connection instead of queueing behind the reply that
// does not come.
func TestTimeoutRetiresConnection(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	t.Cleanup(func() { srv.Do("CLIENT", "UNPAUSE") })

	// One connection, as the driver sees it.
	c := dial(t, srv, driver.Config{SocketTimeout: 100 * time.Millisecond})
	if _, err := c.Exec(ctx, "SET k v", nil); err != nil {
		t.Fatal(err)
	}
	// Writes hang (until the cleanup's UNPAUSE); reads are served.
	srv.MustDo("CLIENT", "PAUSE", "20000", "WRITE")
	cctx, cancel := context.WithCancel(ctx) // a caller that can be cancelled shares the connection
	defer cancel()
	start := time.Now()
	_, err := c.Exec(cctx, "SET k w", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SET during the pause: %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("SET timed out after %v, socket_timeout 100ms", d)
	}
	if valid(c) {
		t.Fatal("the connection is still valid after a request timed out on it")
	}
	_, err = c.Query(cctx, "GET k", nil)
	if !errors.Is(err, driver.ErrBadConn) || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("GET on the retired connection: %v, want driver.ErrBadConn (retry elsewhere)", err)
	}
	// Another connection serves reads at once.
	d := dial(t, srv, driver.Config{SocketTimeout: 100 * time.Millisecond})
	if _, err := d.Query(cctx, "GET k", nil); err != nil {
		t.Fatalf("GET on a new connection during the pause: %v", err)
	}

	// Through the pool: the timed-out connection is not lent out again.
	db := connect(t, "redis", "redis://"+srv.Addr+"?socket_timeout=100ms&max_retries=0")
	var v string
	if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if _, err := db.Exec(cctx, "SET k x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SET during the pause: %v, want a timeout", err)
	}
	start = time.Now()
	if err := db.QueryRow(cctx, "GET k").Scan(&v); err != nil || v != "v" {
		t.Fatalf("GET after a SET timed out: %q, %v (queued behind the SET that hangs?)", v, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("GET took %v", d)
	}
}

// A write to a node that stopped reading fails after socket_timeout, and
// so does every request pending on that connection: a 100 MB SET to a
// SIGSTOPped server used to block until the socket died.
func TestWriteTimeout(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	const st = 300 * time.Millisecond
	c := dial(t, srv, driver.Config{SocketTimeout: 10 * time.Second})
	big := bytes.Repeat([]byte("x"), 100<<20)
	// What the SET costs on a live server (encoding 100 MB is slow under
	// -race on a busy machine): the bound below leaves room for it.
	start := time.Now()
	if _, err := c.Exec(ctx, "SET big ?", []driver.Value{big}); err != nil {
		t.Fatal(err)
	}
	live := time.Since(start)

	c = dial(t, srv, driver.Config{SocketTimeout: st})
	if _, err := c.Exec(ctx, "SET k v", nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	defer srv.Cont()
	done := make(chan error, 1)
	start = time.Now()
	go func() {
		_, err := c.Exec(ctx, "SET big ?", []driver.Value{big})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(2*live + st + 5*time.Second):
		srv.Cont()
		<-done
		t.Fatalf("a 100 MB SET to a stopped server still blocks after %v (socket_timeout %v; %v on a live server)", time.Since(start), st, live)
	}
	if d := time.Since(start); d > 2*live+st+2*time.Second {
		t.Fatalf("the write returned after %v, socket_timeout %v (%v on a live server)", d, st, live)
	}
	want := "conn " + srv.Addr + ": closed (timeout): write of "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "not done within WriteTimeout 300ms") {
		t.Fatalf("err = %v, want it to start with %q and name the limit", err, want)
	}
	if valid(c) {
		t.Fatal("the connection is still valid after a write timed out")
	}
	t.Logf("after %v (%v on a live server): %v", time.Since(start), live, err)
}
