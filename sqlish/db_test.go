package sqlish_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// open opens a DB on a memory server private to the test.
func open(t *testing.T, query string) (*sqlish.DB, string) {
	t.Helper()
	name := strings.NewReplacer("/", "-", "#", "-").Replace(t.Name())
	dsn := "memory://" + name
	if query != "" {
		dsn += "?" + query
	}
	db, err := sqlish.Open("memory", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if cl := memory.Lookup(name); cl != nil {
			cl.Close() // a fresh cluster for each run under -count=N
		}
	})
	return db, name
}

func TestRegistry(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("nil driver", func() { sqlish.Register("nil-driver", nil) })
	mustPanic("duplicate", func() { sqlish.Register("memory", memory.Driver{}) })
	mustPanic("empty name", func() { sqlish.Register("", memory.Driver{}) })
	if !slices.Contains(sqlish.Drivers(), "memory-alias-for-test") { // -count=N
		sqlish.Register("memory-alias-for-test", memory.Driver{})
	}
	drivers := sqlish.Drivers()
	if !strings.Contains(strings.Join(drivers, ","), "memory,memory-alias-for-test") {
		t.Fatalf("Drivers() = %v", drivers)
	}
	_, err := sqlish.Open("nosuchdb", "nosuchdb://h")
	if err == nil || !strings.Contains(err.Error(), `unknown driver "nosuchdb"`) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("unknown driver error: %v", err)
	}
}

func TestExecQueryRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, "")
	res, err := db.Exec(ctx, "SET ? ?", "k", []byte("v\x00al"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("SET RowsAffected = %d, want 1", n)
	}
	var b []byte
	if err := db.QueryRow(ctx, "GET ?", "k").Scan(&b); err != nil || string(b) != "v\x00al" {
		t.Fatalf("GET = %q, %v", b, err)
	}
	// Args beyond placeholders are appended; literals mix with placeholders.
	if _, err := db.Exec(ctx, "SET", "n", 41); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "EXPIRE ? 60", "n"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRow(ctx, "INCR n").Scan(&n); err != nil || n != 42 {
		t.Fatalf("INCR = %d, %v", n, err)
	}
	var ttl int
	if err := db.QueryRow(ctx, "TTL ?", "n").Scan(&ttl); err != nil || ttl <= 0 || ttl > 60 {
		t.Fatalf("TTL = %d, %v", ttl, err)
	}
	res, err = db.Exec(ctx, "DEL ? ? ?", "k", "n", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Errorf("DEL RowsAffected = %d, want 2", n)
	}
}

func TestRowsShapes(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, "")
	if _, err := db.Exec(ctx, "HSET h f1 v1 f2 v2"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, "HGETALL h")
	if err != nil {
		t.Fatal(err)
	}
	if cols := rows.Columns(); fmt.Sprint(cols) != "[field value]" {
		t.Errorf("HGETALL columns %v", cols)
	}
	var got []string
	for rows.Next() {
		var f, v string
		if err := rows.Scan(&f, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, f+"="+v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[f1=v1 f2=v2]" {
		t.Errorf("HGETALL rows %v", got)
	}

	// An array is a row per element; nil elements scan into Null.
	db.Exec(ctx, "MSET a 1 c 3")
	rows, err = db.Query(ctx, "MGET a b c")
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for rows.Next() {
		var v sqlish.Null[string]
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, fmt.Sprint(v))
	}
	if fmt.Sprint(vals) != "[{1 true} { false} {3 true}]" {
		t.Errorf("MGET rows %v", vals)
	}
	// Scan with the wrong number of destinations names the columns.
	rows, _ = db.Query(ctx, "GET a")
	rows.Next()
	if err := rows.Scan(new(string), new(string)); err == nil || !strings.Contains(err.Error(), "2 destinations for 1 columns [value]") {
		t.Errorf("Scan arity error: %v", err)
	}
	rows.Close()
}

// Values scanned into []byte belong to the caller: no two Scans share
// memory, although the first Scan of a value the driver owns takes it
// without copying, and the Rows behind a Row are recycled.
func TestScannedBytesAreTheCallers(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, "")
	db.Exec(ctx, "SET k1 one")
	db.Exec(ctx, "SET k2 two")
	var a, b []byte
	row := db.QueryRow(ctx, "GET k1")
	if err := row.Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := row.Scan(&a); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Row.Scan: %v, want an error", err)
	}
	if err := db.QueryRow(ctx, "GET k2").Scan(&b); err != nil {
		t.Fatal(err)
	}
	if string(a) != "one" || string(b) != "two" {
		t.Fatalf("a = %q, b = %q", a, b)
	}
	rows, err := db.Query(ctx, "GET k1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	var c, d []byte
	if err := rows.Scan(&c); err != nil {
		t.Fatal(err)
	}
	if err := rows.Scan(&d); err != nil {
		t.Fatal(err)
	}
	c[0] = 'X'
	if string(d) != "one" {
		t.Fatalf("the second Scan of a row shares the first one's memory: %q", d)
	}
}

func TestErrNoRows(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, "")
	var s string
	if err := db.QueryRow(ctx, "GET ?", "missing").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("GET missing: %v, want ErrNoRows", err)
	}
	if err := db.QueryRow(ctx, "KEYS nothing:*").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("empty KEYS: %v, want ErrNoRows", err)
	}
	// SET NX that did not set is a nil reply too.
	db.Exec(ctx, "SET k v")
	if err := db.QueryRow(ctx, "SET k w NX").Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("SET NX: %v, want ErrNoRows", err)
	}
}

func TestServerErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "")
	db.Exec(ctx, "HSET h f v")
	for _, tc := range []struct {
		query string
		code  string
		msg   string
	}{
		{"GET h", "WRONGTYPE", "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{"GET", "ERR", "ERR wrong number of arguments for 'get' command"},
		{"NOPE x", "ERR", "ERR unknown command 'NOPE', with args beginning with: 'x' "},
		{"INCR h", "WRONGTYPE", "WRONGTYPE"},
	} {
		_, err := db.Exec(ctx, tc.query)
		var se *sqlish.ServerError
		if !errors.As(err, &se) || se.Code != tc.code || !strings.HasPrefix(se.Msg, tc.msg) {
			t.Errorf("%s: %v, want ServerError %s %q", tc.query, err, tc.code, tc.msg)
		}
		var ne *sqlish.NodeError
		if !errors.As(err, &ne) || !strings.HasPrefix(ne.Addr, name+":") {
			t.Errorf("%s: error %v does not name the node", tc.query, err)
		}
	}
	// The connection survives server errors: nothing was destroyed.
	if s := db.Stats(); s.Nodes[0].Pool.ClosedError != 0 {
		t.Errorf("server errors closed %d connections", s.Nodes[0].Pool.ClosedError)
	}
}

func TestRowsCloseIdempotentAndConnReusable(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "max_conns_per_node=1")
	db.Exec(ctx, "MSET a 1 b 2 c 3")
	rows, err := db.Query(ctx, "MGET a b c")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no first row")
	}
	for range 3 {
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if rows.Next() {
		t.Fatal("Next after Close")
	}
	if err := rows.Scan(new(string)); err == nil {
		t.Fatal("Scan after Close succeeded")
	}
	// With one connection per node, the next call proves it was returned.
	ctx2, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var v string
	if err := db.QueryRow(ctx2, "GET b").Scan(&v); err != nil || v != "2" {
		t.Fatalf("after closing mid-stream: %q %v", v, err)
	}
	// One pooled connection, plus the tender's probe connection.
	if open := memory.Lookup(name).OpenConns(); open != 2 {
		t.Fatalf("%d connections open, want 2", open)
	}
}

func TestEverythingAfterCloseIsErrClosed(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "min_conns_per_node=2")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	var b sqlish.Batch
	b.Queue("GET a")
	checks := map[string]error{}
	_, checks["Exec"] = db.Exec(ctx, "SET a 1")
	_, checks["Query"] = db.Query(ctx, "GET a")
	checks["QueryRow"] = db.QueryRow(ctx, "GET a").Scan(new(string))
	checks["Ping"] = db.Ping(ctx)
	_, checks["Conn"] = db.Conn(ctx)
	_, checks["BeginTx"] = db.BeginTx(ctx, driver.TxOptions{})
	_, checks["SendBatch"] = db.SendBatch(ctx, &b).Exec()
	_, checks["InfoAll"] = db.InfoAll(ctx, "server")
	_, checks["InfoRandomNode"] = db.InfoRandomNode(ctx, "server")
	_, checks["Conn.Exec"] = c.Exec(ctx, "PING")
	for op, err := range checks {
		if !errors.Is(err, sqlish.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	if db.IsConnected() {
		t.Error("IsConnected after Close")
	}
	// The pinned connection closes when it is returned; then none is left.
	c.Close()
	if open := memory.Lookup(name).OpenConns(); open != 0 {
		t.Errorf("%d connections still open after Close", open)
	}
}

func TestCloseLetsInFlightWorkFinish(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "")
	done := make(chan error)
	go func() {
		_, err := db.Exec(ctx, "DEBUG SLEEP 0.2")
		done <- err
	}()
	// Wait until the sleep holds a connection.
	for db.Stats().InUse == 0 {
		time.Sleep(time.Millisecond)
	}
	db.Close()
	if err := <-done; err != nil {
		t.Fatalf("in-flight statement cut by Close: %v", err)
	}
	if open := memory.Lookup(name).OpenConns(); open != 0 {
		t.Errorf("%d connections open after the in-flight work ended", open)
	}
}

func TestCancellation(t *testing.T) {
	db, _ := open(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := db.Exec(ctx, "DEBUG SLEEP 5")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled statement: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after cancellation: %v", err)
	}
}

func TestSocketAndTotalTimeout(t *testing.T) {
	db, _ := open(t, "socket_timeout=30ms&total_timeout=200ms&max_retries=100&sleep_between_retries=1ms")
	start := time.Now()
	_, err := db.Exec(context.Background(), "DEBUG SLEEP 1")
	d := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// DEBUG is not idempotent: one attempt, bounded by socket_timeout.
	if d > 150*time.Millisecond {
		t.Fatalf("non-idempotent statement took %v: retried?", d)
	}
	if !strings.Contains(err.Error(), "node") {
		t.Errorf("error does not name the node: %v", err)
	}
}

func TestSendBatch(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, "")
	var b sqlish.Batch
	for i := range 50 {
		b.Queue("SET ? ?", fmt.Sprint("k", i), i)
	}
	b.Queue("GET ?", "k7")
	b.Queue("GET nope")
	b.Queue("HGET k1 f") // a server error for this statement only
	b.Queue("INCR k9")
	b.Queue("SET ?", make(chan int)) // a bad argument for this statement only
	if b.Len() != 55 {
		t.Fatalf("Len = %d", b.Len())
	}
	br := db.SendBatch(ctx, &b)
	for i := range 50 {
		res, err := br.Exec()
		if err != nil {
			t.Fatalf("SET %d: %v", i, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("SET %d affected %d", i, n)
		}
	}
	var s string
	if err := br.QueryRow().Scan(&s); err != nil || s != "7" {
		t.Fatalf("GET k7 = %q %v", s, err)
	}
	if err := br.QueryRow().Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("GET nope: %v", err)
	}
	var se *sqlish.ServerError
	if _, err := br.Exec(); !errors.As(err, &se) || se.Code != "WRONGTYPE" {
		t.Fatalf("HGET on a string: %v", err)
	}
	var n int64
	if err := br.QueryRow().Scan(&n); err != nil || n != 10 {
		t.Fatalf("INCR k9 = %d %v", n, err)
	}
	if _, err := br.Exec(); err == nil || !strings.Contains(err.Error(), "unsupported type chan int") {
		t.Fatalf("bad argument: %v", err)
	}
	if _, err := br.Exec(); err == nil {
		t.Fatal("reading past the end succeeded")
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	// Results of several rows and columns keep every value in order.
	var b2 sqlish.Batch
	b2.Queue("HSET h a 1 b 2 c 3")
	b2.Queue("MGET k1 nope k2 k3")
	b2.Queue("HGETALL h")
	br = db.SendBatch(ctx, &b2)
	br.Exec()
	rows, err := br.Query()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v sqlish.Null[string]
		rows.Scan(&v)
		got = append(got, fmt.Sprintf("%s %v", v.V, v.Valid))
	}
	if fmt.Sprint(got) != "[1 true  false 2 true 3 true]" {
		t.Fatalf("MGET in a batch: %v", got)
	}
	rows, err = br.Query()
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for rows.Next() {
		var f, v string
		rows.Scan(&f, &v)
		got = append(got, f+"="+v)
	}
	if fmt.Sprint(got) != "[a=1 b=2 c=3]" {
		t.Fatalf("HGETALL in a batch: %v", got)
	}
	br.Close()
	// Equal to issuing the statements one by one.
	var one string
	db.QueryRow(ctx, "GET k9").Scan(&one)
	if one != "10" {
		t.Fatalf("k9 = %q after the batch", one)
	}
}

func TestPinnedConn(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "max_conns_per_node=2")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SET ? ?", "p", "1"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "GET p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "GET p"); err == nil || !strings.Contains(err.Error(), "busy with open Rows") {
		t.Fatalf("Exec while Rows are open: %v", err)
	}
	rows.Close()
	var v string
	if err := c.QueryRow(ctx, "GET p").Scan(&v); err != nil || v != "1" {
		t.Fatalf("GET p = %q %v", v, err)
	}
	if _, err := c.BeginTx(ctx, driver.TxOptions{}); !errors.Is(err, sqlish.ErrNotSupported) {
		t.Fatalf("BeginTx on memory: %v", err)
	}
	c.Close()
	c.Close()
	if _, err := c.Exec(ctx, "PING"); !errors.Is(err, sqlish.ErrConnDone) {
		t.Fatalf("Exec after Conn.Close: %v", err)
	}
	// Pooled connections plus the tender's probe connection.
	if s := db.Stats(); s.InUse != 0 || s.Open+1 != int(memory.Lookup(name).OpenConns()) {
		t.Fatalf("after Conn.Close: %+v", s)
	}
}

func TestPoolCapHolds(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "max_conns_per_node=4")
	srv := func() *memory.Cluster { return memory.Lookup(name) }
	db.Ping(ctx)
	var wg sync.WaitGroup
	var peak atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.Exec(ctx, "INCR ?", fmt.Sprint("c", i%7)); err != nil {
				t.Error(err)
			}
			// The tender's probe connection is open too.
			for {
				n, p := srv().OpenConns()-1, peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 4 {
		t.Fatalf("%d connections open at once, cap 4", p)
	}
	st := db.Stats()
	if st.Nodes[0].Pool.Acquired < 200 || st.Open != st.Idle+st.InUse {
		t.Fatalf("stats %+v", st)
	}
}

func TestPoolTimeoutNamesNodeAndWait(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "max_conns_per_node=1&max_retries=0")
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, "SET k v"); err != nil { // binds the Conn: it holds the connection
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = db.Exec(tctx, "PING")
	if err == nil || !strings.Contains(err.Error(), name) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pool wait error: %v", err)
	}
}

// Open returns at once even when the seed hangs: discovery runs in the
// background.
func TestOpenDoesNotBlock(t *testing.T) {
	db, name := open(t, "")
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := memory.Lookup(name)
	addr := db.Nodes()[0].Addr
	cl.Hang(addr, time.Hour)
	defer cl.Unhang(addr)
	start := time.Now()
	db2, err := sqlish.Open("memory", "memory://"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Open took %v with a hung seed", d)
	}
	if db2.IsConnected() {
		t.Fatal("connected to a hung node")
	}
}

func TestNodesStatsInfoConnected(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "")
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if !db.IsConnected() {
		t.Fatal("not connected after Ping")
	}
	nodes := db.Nodes()
	if len(nodes) != 1 || !strings.HasPrefix(nodes[0].Addr, name+":") || nodes[0].Role != "primary" || !nodes[0].Healthy || !strings.HasPrefix(nodes[0].ID, "memory-") {
		t.Fatalf("Nodes() = %+v", nodes)
	}
	db.Exec(ctx, "SET a 1")
	all, err := db.InfoAll(ctx, "keyspace")
	if err != nil || !strings.Contains(all[nodes[0].Addr], "db0:keys=1") {
		t.Fatalf("InfoAll = %q, %v", all, err)
	}
	one, err := db.InfoRandomNode(ctx, "INFO server")
	if err != nil || !strings.Contains(one, "redis_version:") {
		t.Fatalf("InfoRandomNode = %q, %v", one, err)
	}
}

func TestConnect(t *testing.T) {
	ctx := context.Background()
	db, err := sqlish.Connect(ctx, "memory", "memory://connect-ok")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !db.IsConnected() {
		t.Fatal("Connect returned before a node answered")
	}
	// A cluster name mismatch fails every seed, and the error names both.
	_, err = sqlish.Connect(ctx, "memory", "memory://seed-a,seed-b?cluster_name=prod")
	if !errors.Is(err, sqlish.ErrClusterNameMismatch) {
		t.Fatalf("Connect to the wrong cluster: %v", err)
	}
	for _, want := range []string{"seed-a", "seed-b", `"prod"`, "2 errors"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Connect error %q lacks %q", err, want)
		}
	}
	// The right name is accepted.
	db2, err := sqlish.Connect(ctx, "memory", "memory://seed-a?cluster_name=seed-a")
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
	// Connect honours its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sqlish.Connect(cctx, "memory", "memory://never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with a cancelled context: %v", err)
	}
}

// flaky is a test driver whose connections fail on demand, to check the
// retry policy. It is not the thing under test: sqlish is.
type flaky struct {
	attempts   atomic.Int64
	failWith   error
	idempotent bool
}

func (f *flaky) OpenConnector(driver.Config) (driver.Connector, error) { return f, nil }
func (f *flaky) Backend() driver.Backend                               { return driver.Backend{System: "flaky"} }
func (f *flaky) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	return flakyConn{f}, ctx.Err()
}
func (f *flaky) Resolve(_ context.Context, seed string) ([]string, error) { return []string{seed}, nil }
func (f *flaky) Route(q string, _ []driver.Value) (driver.Route, error) {
	return driver.Route{Op: q, Partition: driver.AnyPartition, Idempotent: f.idempotent}, nil
}

type flakyConn struct{ f *flaky }

func (c flakyConn) Exec(ctx context.Context, q string, _ []driver.Value) (driver.Result, error) {
	c.f.attempts.Add(1)
	return nil, c.f.failWith
}
func (c flakyConn) Query(ctx context.Context, q string, _ []driver.Value) (driver.Rows, error) {
	return nil, io.ErrUnexpectedEOF
}
func (c flakyConn) Close() error { return nil }

var flakyDriver = &flaky{}

func TestRetries(t *testing.T) {
	f := flakyDriver
	if !slices.Contains(sqlish.Drivers(), "flaky") { // -count=N
		sqlish.Register("flaky", f)
	}
	for _, tc := range []struct {
		err        error
		idempotent bool
		total      string // total_timeout
		attempts   int64  // exactly; 0: at least 5 (until total_timeout)
		unknown    bool   // the error wraps ErrOutcomeUnknown
	}{
		{driver.ErrBadConn, false, "300ms", 0, false},                     // never sent: retried until total_timeout
		{driver.ErrBadConn, false, "0", 4, false},                         // ...or max_retries when nothing bounds the operation
		{io.ErrUnexpectedEOF, true, "300ms", 4, false},                    // idempotent: retried max_retries times
		{io.ErrUnexpectedEOF, false, "300ms", 1, true},                    // may have been applied: not retried
		{&driver.ServerError{Code: "ERR", Msg: "x"}, true, "0", 1, false}, // the server answered: not retried
	} {
		f.attempts.Store(0)
		f.failWith, f.idempotent = tc.err, tc.idempotent
		db, err := sqlish.Open("flaky", "flaky://a:1,b:2?max_retries=3&sleep_between_retries=0&total_timeout="+tc.total)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = db.Exec(context.Background(), "X")
		took := time.Since(start)
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: got %v", tc.err, err)
		}
		if errors.Is(err, sqlish.ErrOutcomeUnknown) != tc.unknown {
			t.Errorf("%v idempotent=%v: %v; want ErrOutcomeUnknown: %v", tc.err, tc.idempotent, err, tc.unknown)
		}
		switch got := f.attempts.Load(); {
		case tc.attempts == 0 && (got < 5 || took < 250*time.Millisecond || took > 500*time.Millisecond):
			t.Errorf("%v idempotent=%v: %d attempts in %v, want attempts until total_timeout %s", tc.err, tc.idempotent, got, took, tc.total)
		case tc.attempts == 0 && got > 100:
			t.Errorf("%v: %d attempts in %v: the retries spin instead of pausing", tc.err, got, took)
		case tc.attempts != 0 && got != tc.attempts:
			t.Errorf("%v idempotent=%v: %d attempts, want %d", tc.err, tc.idempotent, got, tc.attempts)
		}
		db.Close()
	}
}

// classed is a test driver whose statements fail with a server error a
// given number of times, and which classifies its errors: it checks that
// the user API retries what the driver says did not run. sqlish is the
// thing under test.
type classed struct {
	attempts atomic.Int64
	failures int64
	code     string
	retry    driver.Retry
	notIdem  bool
}

func (f *classed) OpenConnector(driver.Config) (driver.Connector, error) { return f, nil }
func (f *classed) Backend() driver.Backend                               { return driver.Backend{System: "classed"} }
func (f *classed) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	return classedConn{f}, ctx.Err()
}
func (f *classed) Resolve(_ context.Context, seed string) ([]string, error) {
	return []string{seed}, nil
}
func (f *classed) Route(q string, _ []driver.Value) (driver.Route, error) {
	return driver.Route{Op: q, Partition: driver.AnyPartition, Idempotent: !f.notIdem}, nil
}
func (f *classed) Classify(err error) driver.Retry {
	var se *driver.ServerError
	if errors.As(err, &se) && se.Code == f.code {
		return f.retry
	}
	return driver.RetryDefault
}

type classedConn struct{ f *classed }

func (c classedConn) Exec(ctx context.Context, q string, _ []driver.Value) (driver.Result, error) {
	if n := c.f.attempts.Add(1); n <= c.f.failures {
		return nil, &driver.ServerError{Code: c.f.code, Msg: c.f.code + " try again"}
	}
	return driver.RowsAffected(1), nil
}
func (c classedConn) Query(ctx context.Context, q string, _ []driver.Value) (driver.Rows, error) {
	return nil, io.ErrUnexpectedEOF
}
func (c classedConn) Close() error { return nil }

var classedDriver = &classed{}

// Server errors the driver classifies as "did not run" (CLUSTERDOWN,
// TRYAGAIN...) are retried, whatever the statement and beyond
// max_retries, until total_timeout; other server errors are final
// (issue 12, items 6 and 7).
func TestDriverClassifiedRetries(t *testing.T) {
	f := classedDriver
	if !slices.Contains(sqlish.Drivers(), "classed") {
		sqlish.Register("classed", f)
	}
	for _, tc := range []struct {
		code     string
		retry    driver.Retry
		notIdem  bool
		failures int64
		ok       bool
		attempts int64
	}{
		{"CLUSTERDOWN", driver.RetryRefresh, true, 5, true, 6}, // not idempotent, 5 > max_retries: still retried
		{"TRYAGAIN", driver.RetryLater, true, 5, true, 6},
		{"WRONGTYPE", driver.RetryNever, false, 5, false, 1},
		{"ERR", driver.RetryDefault, false, 5, false, 1},               // a server error the driver does not know: final
		{"CLUSTERDOWN", driver.RetryRefresh, false, 1 << 40, false, 0}, // never recovers: total_timeout ends it
	} {
		f.attempts.Store(0)
		f.code, f.retry, f.notIdem, f.failures = tc.code, tc.retry, tc.notIdem, tc.failures
		db, err := sqlish.Open("classed", "classed://a:1?max_retries=1&sleep_between_retries=1ms&total_timeout=500ms")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = db.Exec(context.Background(), "X")
		took := time.Since(start)
		db.Close()
		if (err == nil) != tc.ok {
			t.Errorf("%s (%v): err = %v, want success %v", tc.code, tc.retry, err, tc.ok)
		}
		got := f.attempts.Load()
		switch {
		case tc.attempts > 0 && got != tc.attempts:
			t.Errorf("%s (%v): %d attempts, want %d", tc.code, tc.retry, got, tc.attempts)
		case tc.attempts == 0 && (took < 450*time.Millisecond || took > 700*time.Millisecond || got < 3):
			t.Errorf("%s forever: %d attempts in %v, want attempts until total_timeout (500ms)", tc.code, got, took)
		}
		var se *sqlish.ServerError
		if !tc.ok && !errors.As(err, &se) {
			t.Errorf("%s: the error %v does not carry the server's", tc.code, err)
		}
	}
}

// Taking a connection for a Conn is bounded by total_timeout: with the
// only connection held, binding a second Conn fails in time, naming the
// node and the wait (item 13).
func TestConnAcquireBoundedByTotalTimeout(t *testing.T) {
	ctx := context.Background()
	db, name := open(t, "max_conns_per_node=1&total_timeout=300ms")
	c1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := c1.Exec(ctx, "SET k v"); err != nil {
		t.Fatal(err)
	}
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	start := time.Now()
	_, err = c2.Exec(ctx, "SET k w") // binds: needs the held connection
	took := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), name) {
		t.Fatalf("binding a Conn with the only connection held: %v", err)
	}
	if took < 250*time.Millisecond || took > time.Second {
		t.Errorf("binding gave up after %v, want about total_timeout (300ms)", took)
	}
}
