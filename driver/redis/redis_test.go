package redis_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver"
	_ "github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t *testing.T, driverName, dsn string) *sqlish.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlish.Connect(ctx, driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStandalone(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	if _, err := db.Exec(ctx, "SET ? ?", "k", []byte("v\x00al")); err != nil {
		t.Fatal(err)
	}
	var b []byte
	if err := db.QueryRow(ctx, "GET k").Scan(&b); err != nil || string(b) != "v\x00al" {
		t.Fatalf("GET = %q, %v", b, err)
	}
	if err := db.QueryRow(ctx, "GET missing").Scan(&b); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("GET missing: %v", err)
	}
	nodes := db.Nodes()
	if len(nodes) != 1 || nodes[0].Addr != srv.Addr || !nodes[0].Healthy {
		t.Fatalf("Nodes() = %v", nodes)
	}
	info, err := db.InfoAll(ctx, "server")
	if err != nil || !strings.Contains(info[srv.Addr], "redis_version:") {
		t.Fatalf("InfoAll = %v, %v", info, err)
	}
	if db.Backend().System != "redis" {
		t.Fatalf("system %q", db.Backend().System)
	}
}

// QueryRow's fast path (driver.RowQueryer: a string reply is never boxed)
// converts like the general one, and the memory it hands out is the
// caller's.
func TestQueryRowDestinations(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	db.Exec(ctx, "SET n 42")
	db.Exec(ctx, "SET s text")
	var (
		b    []byte
		str  string
		n    int64
		f    float64
		a    any
		null sqlish.Null[string]
	)
	for _, c := range []struct {
		q    string
		dest any
		want string
	}{
		{"GET n", &b, "42"},
		{"GET n", &str, "42"},
		{"GET n", &n, "42"},
		{"GET n", &f, "42"},
		{"GET n", &a, "42"},
		{"GET n", &null, "{42 true}"},
		{"INCR n", &n, "43"},
		{"GET s", &str, "text"},
	} {
		if err := db.QueryRow(ctx, c.q).Scan(c.dest); err != nil {
			t.Fatalf("%s into %T: %v", c.q, c.dest, err)
		}
		got := fmt.Sprint(reflect.ValueOf(c.dest).Elem().Interface())
		switch d := c.dest.(type) {
		case *[]byte:
			got = string(*d)
		case *any:
			got = fmt.Sprintf("%s", *d) // a []byte
		}
		if got != c.want {
			t.Errorf("%s into %T = %s, want %s", c.q, c.dest, got, c.want)
		}
	}
	if err := db.QueryRow(ctx, "GET s").Scan(&n); err == nil {
		t.Error("GET of a non-number into *int64: no error")
	}
	var b1, b2 []byte
	db.QueryRow(ctx, "GET s").Scan(&b1)
	db.QueryRow(ctx, "GET s").Scan(&b2)
	b1[0] = 'X'
	if string(b2) != "text" {
		t.Errorf("two GETs share memory: %q", b2)
	}
}

func TestDatabaseNumberAndParams(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"/3?client_name=tendril-test&protocol=2")
	db.Exec(ctx, "SET only-in-3 x")
	var name string
	if err := db.QueryRow(ctx, "CLIENT GETNAME").Scan(&name); err != nil || name != "tendril-test" {
		t.Fatalf("CLIENT GETNAME = %q, %v", name, err)
	}
	var n int
	db.QueryRow(ctx, "DBSIZE").Scan(&n)
	if n != 1 {
		t.Fatalf("DBSIZE of db 3 = %d", n)
	}
	if keys, err := srv.Do("DBSIZE"); err != nil || keys != "0" {
		t.Fatalf("db 0 holds %q keys (%v): SELECT was not applied", keys, err)
	}
	for dsn, want := range map[string]string{
		"redis://h?protocol=4":        `"protocol"`,
		"redis://h?bogus=1":           `unknown key "bogus"`,
		"redis://h/x":                 "database number",
		"redis://h?cluster_name=prod": "Redis has no cluster name",
		"redis://h?auth_mode=pki":     "needs tls_cert",
	} {
		if _, err := sqlish.Open("redis", dsn); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want %q", dsn, err, want)
		}
	}
}

func TestAuth(t *testing.T) {
	const pw = "s3cret-Pa55"
	srv := redistest.StartServer(t, redistest.WithACLUser("alice", pw))
	ctx := context.Background()
	db := connect(t, "redis", "redis://alice:"+pw+"@"+srv.Addr)
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	before := connections(t, srv)
	start := time.Now()
	_, err := sqlish.Connect(ctx, "redis", "redis://alice:wrong-"+pw+"@"+srv.Addr+"?timeout=500ms")
	if !errors.Is(err, driver.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the auth failure took %v", d)
	}
	if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), `"alice"`) {
		t.Fatalf("error %q: must name the user and hide the password", err)
	}
	var ae *redis.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("not an AuthError: %v", err)
	}
	// An open DB with a wrong password fails operations at once and does
	// not storm the server with connection attempts.
	bad, err := sqlish.Open("redis", "redis://alice:nope@"+srv.Addr+"?tend_interval=100ms")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	time.Sleep(150 * time.Millisecond)
	for range 50 {
		if _, err := bad.Exec(ctx, "GET x"); !errors.Is(err, driver.ErrAuthFailed) {
			t.Fatalf("operation with a wrong password: %v", err)
		}
	}
	time.Sleep(time.Second)
	bad.Close()
	if n := connections(t, srv) - before; n > 20 {
		t.Errorf("%d connection attempts in ~1.2s with a wrong password (tend interval 100ms)", n)
	} else {
		t.Logf("%d connection attempts in ~1.2s with a wrong password", n)
	}
}

// connections returns the server's count of accepted connections.
func connections(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := srv.Do("INFO", "stats")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no total_connections_received in %q", info)
	return 0
}

func TestPinnedConnTransactionsAndBlocking(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr)
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, "WATCH acct"); err != nil {
		t.Fatal(err)
	}
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(ctx, "INCRBY acct 10")
	tx.Exec(ctx, "INCRBY acct 5")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, "GET acct").Scan(&n); err != nil || n != 15 {
		t.Fatalf("acct = %d, %v", n, err)
	}
	// A watched key changed by someone else aborts the transaction.
	c.Exec(ctx, "WATCH acct")
	db.Exec(ctx, "INCR acct")
	tx, _ = c.BeginTx(ctx, driver.TxOptions{})
	tx.Exec(ctx, "SET acct 0")
	if err := tx.Commit(ctx); !errors.Is(err, redis.ErrTxAborted) {
		t.Fatalf("commit after a watched change: %v", err)
	}
	// A blocking command holds a connection of its own: others go on.
	done := make(chan error, 1)
	go func() {
		var key, val string
		rows, err := db.Query(ctx, "BLPOP queue 5")
		if err == nil {
			rows.Next()
			err = rows.Scan(&key)
			rows.Next()
			rows.Scan(&val)
			rows.Close()
			if val != "job" {
				err = fmt.Errorf("BLPOP got %q %q", key, val)
			}
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	for range 20 {
		if err := db.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(ctx, "RPUSH queue job"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The memory backend and Redis answer the shared command subset alike: the
// same rows, the same nil-as-no-rows, the same typed errors.
func TestMemoryMatchesRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	dbs := map[string]*sqlish.DB{
		"redis":  connect(t, "redis", "redis://"+srv.Addr),
		"memory": connect(t, "memory", "memory://"+strings.ReplaceAll(t.Name(), "/", "-")),
	}
	script := []struct {
		q    string
		args []any
	}{
		{"FLUSHALL", nil},
		{"SET ? ?", []any{"s", "hello"}},
		{"SET ? ? EX 100 NX", []any{"s", "x"}},
		{"SET ? ? XX GET", []any{"s", "world"}},
		{"GET ?", []any{"s"}},
		{"GET nope", nil},
		{"SET bin ?", []any{[]byte{0, 1, 2, 255}}},
		{"GET bin", nil},
		{"SET empty ?", []any{""}},
		{"GET empty", nil},
		{"SET n", []any{int64(9223372036854775806)}},
		{"INCR n", nil},
		{"INCR n", nil},
		{"INCRBY n -5", nil},
		{"DECR n", nil},
		{"INCR s", nil},
		{"SET f ?", []any{3.25}},
		{"GET f", nil},
		{"MSET a 1 b 2", nil},
		{"MGET a missing b", nil},
		{"EXISTS a b missing a", nil},
		{"DEL a missing", nil},
		{"EXPIRE b 100", nil},
		{"TTL b", nil},
		{"TTL missing", nil},
		{"PERSIST b", nil},
		{"TTL b", nil},
		{"HSET h f1 v1 f2 v2", nil},
		{"HSET h f1 v9", nil},
		{"HGET h f1", nil},
		{"HGET h nope", nil},
		{"HGETALL h", nil},
		{"HLEN h", nil},
		{"HDEL h f1 nope", nil},
		{"HGETALL missing", nil},
		{"GET h", nil},
		{"HGET s f", nil},
		{"GET", nil},
		{"SET k v EX -1", nil},
		{"SET k v NX XX", nil},
		{"NOSUCHCOMMAND a b", nil},
		{"ECHO ?", []any{"echo me"}},
		{"PING", nil},
		{"TYPE h", nil},
		{"TYPE s", nil},
		{"TYPE missing", nil},
		{"STRLEN s", nil},
		{"APPEND s !!", nil},
		{"GET s", nil},
		{"DBSIZE", nil},
	}
	// The script runs three times (it starts with FLUSHALL): read with
	// Query, with QueryRow (redis answers it with driver.RowQueryer, memory
	// with Rows) and with a one-statement batch's QueryRow (redis' typed
	// batch rows).
	modes := map[string]func(context.Context, *sqlish.DB, string, []any) string{
		"query": render,
		"row": func(ctx context.Context, db *sqlish.DB, q string, args []any) string {
			return renderRow(db.QueryRow(ctx, q, args...), q)
		},
		"batch": func(ctx context.Context, db *sqlish.DB, q string, args []any) string {
			var b sqlish.Batch
			b.Queue(q, args...)
			br := db.SendBatch(ctx, &b)
			defer br.Close()
			return renderRow(br.QueryRow(), q)
		},
	}
	for _, mode := range []string{"query", "row", "batch"} {
		for _, st := range script {
			got := map[string]string{}
			for name, db := range dbs {
				got[name] = modes[mode](ctx, db, st.q, st.args)
			}
			if got["memory"] != got["redis"] {
				t.Errorf("%s: %s %v:\n  redis:  %s\n  memory: %s", mode, st.q, st.args, got["redis"], got["memory"])
			}
		}
	}
}

// renderRow prints a Row like render, scanning into *any, *[]byte and
// *string (two *any for a map's rows).
func renderRow(row *sqlish.Row, q string) string {
	var a, c any
	dest := []any{&a}
	if strings.HasPrefix(q, "HGETALL") {
		dest = append(dest, &c)
	}
	if err := row.Scan(dest...); err != nil {
		var se *sqlish.ServerError
		switch {
		case errors.Is(err, sqlish.ErrNoRows):
			return "no rows"
		case errors.As(err, &se):
			return "error " + se.Msg
		}
		return "failure " + err.Error()
	}
	if len(dest) == 2 {
		return fmt.Sprintf("%q", fmt.Sprint(a, c))
	}
	return fmt.Sprintf("%q", fmt.Sprint(a))
}

// render runs a statement and prints its outcome: rows, no rows, or the
// server error's message.
func render(ctx context.Context, db *sqlish.DB, q string, args []any) string {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		var se *sqlish.ServerError
		if errors.As(err, &se) {
			return "error " + se.Msg
		}
		return "failure " + err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]any, len(rows.Columns()))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "scan " + err.Error()
		}
		out = append(out, fmt.Sprintf("%q", fmt.Sprint(vals...)))
	}
	if len(out) == 0 {
		return "no rows"
	}
	return strings.Join(out, " ")
}

// With no node reachable, a batch is bounded by total_timeout like a
// single statement (grouping waits for the topology).
func TestBatchBoundedWithoutNodes(t *testing.T) {
	db, err := sqlish.Open("redis", "redis://127.0.0.1:1?total_timeout=300ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b sqlish.Batch
	b.Queue("GET k")
	start := time.Now()
	br := db.SendBatch(context.Background(), &b)
	_, err = br.Exec()
	br.Close()
	if err == nil {
		t.Fatal("batch with no reachable node succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("batch returned after %v, want about total_timeout (300ms): %v", d, err)
	}
}
