package stdlib_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	tdriver "github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/stdlib"
)

// What sqlx is good for on Redis: a reply is rows of columns (a scalar:
// one row, "value"; an array: one row per element; a map: rows of
// "field", "value"), so Get reads a scalar, Select reads an array or a
// hash into a slice of values or of structs, and named statements bind
// struct fields to ?. sqlx.In is not: it expands a slice into "?, ?", and
// Redis arguments are not separated by commas; pass the slice after the
// statement instead (extra arguments are appended). Times do not
// round-trip: Redis stores their text, which database/sql does not scan
// into a time.Time.

// TestRedisSQLX: sqlx's NamedExec, Get and Select on a standalone Redis
// that requires a password, given in the DSN.
func TestRedisSQLX(t *testing.T) {
	const pw = "redis-Pa55word"
	srv := redistest.StartServer(t, redistest.WithPassword(pw))
	db := sqlx.NewDb(open(t, "redis://:"+pw+"@"+srv.Addr), "tendril") // binds ?
	c := ctx(t)

	type user struct {
		ID    string `db:"id"`
		Name  string `db:"name"`
		Email string `db:"email"`
		Age   int    `db:"age"`
	}
	users := []user{{"user:1", "Ada", "ada@example.com", 36}, {"user:2", "Grace", "grace@example.com", 85}}
	for _, u := range users {
		res, err := db.NamedExecContext(c, "HSET :id name :name email :email age :age", u)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 3 {
			t.Errorf("HSET of 3 new fields: RowsAffected %d", n)
		}
	}
	var name string
	if err := db.GetContext(c, &name, "HGET ? name", "user:2"); err != nil || name != "Grace" {
		t.Errorf("Get HGET: %q, %v", name, err)
	}
	var age int
	if err := db.GetContext(c, &age, "HINCRBY ? age 1", "user:1"); err != nil || age != 37 {
		t.Errorf("Get HINCRBY: %d, %v", age, err)
	}
	if err := db.GetContext(c, &name, "HGET ? name", "user:3"); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("Get of a missing hash: %v, want sql.ErrNoRows", err)
	}

	var fields []struct {
		Field string `db:"field"`
		Value string `db:"value"`
	}
	if err := db.SelectContext(c, &fields, "HGETALL ?", "user:1"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fields {
		got[f.Field] = f.Value
	}
	if fmt.Sprint(got) != "map[age:37 email:ada@example.com name:Ada]" {
		t.Errorf("Select HGETALL: %v", got)
	}

	var emails []sql.NullString
	if err := db.SelectContext(c, &emails, "HMGET ? email phone", "user:2"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(emails) != "[{grace@example.com true} { false}]" {
		t.Errorf("Select HMGET: %v", emails)
	}

	// A slice of keys goes after the statement, not through sqlx.In.
	keys := []any{"k1", "k2", "k3"}
	if _, err := db.ExecContext(c, "MSET k1 a k3 c"); err != nil {
		t.Fatal(err)
	}
	var vals []sql.NullString
	if err := db.SelectContext(c, &vals, "MGET", keys...); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(vals) != "[{a true} { false} {c true}]" {
		t.Errorf("Select MGET: %v", vals)
	}
	if _, err := db.ExecContext(c, "RPUSH list x y z"); err != nil {
		t.Fatal(err)
	}
	var list []string
	if err := db.SelectContext(c, &list, "LRANGE list 0 -1"); err != nil || fmt.Sprint(list) != "[x y z]" {
		t.Errorf("Select LRANGE: %v, %v", list, err)
	}

	_, err := db.ExecContext(c, "INCR list")
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "WRONGTYPE" {
		t.Errorf("INCR of a list: %v, want WRONGTYPE", err)
	}

	// ColumnTypes: names only, any Go type.
	rows, err := db.QueryContext(c, "HGETALL user:1")
	if err != nil {
		t.Fatal(err)
	}
	cts, err := rows.ColumnTypes()
	rows.Close()
	if err != nil || len(cts) != 2 || cts[0].Name() != "field" || cts[1].Name() != "value" || cts[0].DatabaseTypeName() != "" || cts[0].ScanType().String() != "interface {}" {
		t.Errorf("ColumnTypes of HGETALL: %v, %v", cts, err)
	}
}

// TestRedisTransactions: BeginTx is MULTI/EXEC: results come with Commit
// (a Result read before is ErrQueued), Rollback is DISCARD, isolation
// levels other than serializable are refused; on a *sql.Conn, WATCH then
// BeginTx run in one session, so a watched key changed by another client
// aborts the transaction.
func TestRedisTransactions(t *testing.T) {
	srv := redistest.StartServer(t)
	db := open(t, "redis://"+srv.Addr)
	c := ctx(t)

	tx, err := db.BeginTx(c, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := tx.ExecContext(c, "SET ? ?", "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tx.ExecContext(c, "INCRBY ? ?", "a", 41)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.RowsAffected(); !errors.Is(err, sqlish.ErrQueued) {
		t.Errorf("a queued statement's result before Commit: %v, want ErrQueued", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	n1, err1 := r1.RowsAffected()
	n2, err2 := r2.RowsAffected()
	if n1 != 1 || n2 != 42 || err1 != nil || err2 != nil {
		t.Errorf("results after Commit: SET %d (%v), INCRBY %d (%v); want 1, 42", n1, err1, n2, err2)
	}

	tx, err = db.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "SET a discarded"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRowContext(c, "GET a").Scan(&v); err != nil || v != "42" {
		t.Errorf("after DISCARD: %q, %v; want 42", v, err)
	}
	if _, err := db.BeginTx(c, &sql.TxOptions{Isolation: sql.LevelReadCommitted}); !errors.Is(err, sqlish.ErrNotSupported) {
		t.Errorf("read committed on Redis: %v, want ErrNotSupported", err)
	}
	if tx, err := db.BeginTx(c, &sql.TxOptions{Isolation: sql.LevelSerializable}); err != nil {
		t.Errorf("serializable on Redis: %v", err)
	} else {
		tx.Rollback()
	}

	// WATCH on a *sql.Conn, another client changes the key, EXEC aborts.
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "WATCH ?", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(c, "SET a changed"); err != nil { // another handle
		t.Fatal(err)
	}
	tx, err = conn.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "SET a from-tx"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, redis.ErrTxAborted) || errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("EXEC after a watched key changed: %v, want ErrTxAborted, the outcome known", err)
	}
	if err := db.QueryRowContext(c, "GET a").Scan(&v); err != nil || v != "changed" {
		t.Errorf("after the aborted transaction: %q, %v", v, err)
	}
}

// TestRedisExecTimeoutOutcomeUnknown guards the same contract for EXEC:
// one whose reply does not come within socket_timeout (the server frozen)
// may have run the transaction, so Commit's error and the queued
// statements' results wrap ErrOutcomeUnknown, and still the timeout.
func TestRedisExecTimeoutOutcomeUnknown(t *testing.T) {
	srv := redistest.StartServer(t)
	c := ctx(t)
	db, err := sqlish.Open("redis", "redis://"+srv.Addr+"?socket_timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.Exec(c, "SET ? ?", "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err = tx.Commit(c)
	srv.Cont()
	if !errors.Is(err, sqlish.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("EXEC timed out with %v: want ErrOutcomeUnknown and context.DeadlineExceeded", err)
	}
	if _, err := res.RowsAffected(); !errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("the queued SET's result: %v, want ErrOutcomeUnknown", err)
	}
}

// TestRedisCachedNestedBytesAreTheCallers guards the client cache's
// replies against their callers: a cached reply whose rows hold nested
// arrays (ZRANGE ... WITHSCORES in RESP3: [member, score] per row) is
// scanned, through Query, QueryRow and database/sql, into values whose
// []byte the caller may write into without changing what the next caller
// reads.
func TestRedisCachedNestedBytesAreTheCallers(t *testing.T) {
	srv := redistest.StartServer(t)
	c := ctx(t)
	dsn := "redis://" + srv.Addr + "?cache_size=1048576&cache_ttl=1m&max_conns_per_node=1"
	db, err := sqlish.Open("redis", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(c, "ZADD z 1 alice"); err != nil {
		t.Fatal(err)
	}
	const q = "ZRANGE z 0 -1 WITHSCORES"
	member := func(via string, v any) []byte {
		t.Helper()
		pair, ok := v.([]any)
		if !ok || len(pair) != 2 {
			t.Fatalf("%s: row %#v, want [member score]", via, v)
		}
		b, ok := pair[0].([]byte)
		if !ok {
			t.Fatalf("%s: member %#v, want []byte", via, pair[0])
		}
		return b
	}
	scribble := func(via string, b []byte) {
		t.Helper()
		if string(b) != "alice" {
			t.Fatalf("%s: member %q, want \"alice\": an earlier caller's write went into the cache", via, b)
		}
		b[0] = 'X' // the caller's own bytes
	}
	for i := range 3 { // the first fills the cache
		rows, err := db.Query(c, q)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		for rows.Next() {
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
		}
		rows.Close()
		scribble(fmt.Sprintf("Query %d, *any", i), member("Query", v))
	}
	var pair []any
	if err := db.QueryRow(c, q).Scan(&pair); err != nil {
		t.Fatal(err)
	}
	scribble("QueryRow, *[]any", member("QueryRow", pair))
	sdb := stdlib.OpenDBFromDB(db)
	defer sdb.Close()
	var v any
	if err := sdb.QueryRowContext(c, q).Scan(&v); err != nil {
		t.Fatal(err)
	}
	scribble("database/sql, *any", member("database/sql", v))
	if s := db.Stats().Cache; s.Hits < 4 {
		t.Errorf("cache stats %+v: the reads did not come from the cache", s)
	}
}

// TestRedisSelect: SELECT on a *sql.Conn switches its session's database
// only; the *sql.DB's statements stay on database 0, during and after.
func TestRedisSelect(t *testing.T) {
	srv := redistest.StartServer(t)
	db := open(t, "redis://"+srv.Addr)
	c := ctx(t)
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(c, "SELECT 3"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(c, "SET where db3"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRowContext(c, "GET where").Scan(&v); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("the *sql.DB sees the *sql.Conn's database: %q, %v", v, err)
	}
	conn.Close()
	db.SetMaxOpenConns(1)
	for range 3 {
		if err := db.QueryRowContext(c, "GET where").Scan(&v); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("after the *sql.Conn closed: %q, %v; want database 0", v, err)
		}
	}
}

// TestRedisWrongPassword: a refused password is ErrAuthFailed, and shows
// in no error.
func TestRedisWrongPassword(t *testing.T) {
	srv := redistest.StartServer(t, redistest.WithPassword("right-one"))
	const secret = "Wr0ng-redis-pw"
	db := open(t, "redis://:"+secret+"@"+srv.Addr+"?total_timeout=2s")
	c := ctx(t)
	err := db.PingContext(c)
	_, err2 := db.ExecContext(c, "SET a b")
	for _, e := range []error{err, err2} {
		if !errors.Is(e, tdriver.ErrAuthFailed) {
			t.Errorf("with a wrong password: %v, want ErrAuthFailed", e)
		}
		if e != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", e, e, e), secret) {
			t.Errorf("the error shows the password: %v", e)
		}
	}
}

// TestRedisCluster: database/sql over a 3-shard Redis Cluster, two handles
// at most: each statement goes to its key's shard, whichever handle runs
// it; a *sql.Conn with WATCH binds to its key's shard for the transaction.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	db := open(t, "redis://"+strings.Join(cl.Seeds(), ","))
	db.SetMaxOpenConns(2)
	c := ctx(t)
	const keys = 300
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += 8 {
				k := fmt.Sprintf("key:%d", i)
				if _, err := db.ExecContext(c, "SET ? ?", k, i); err != nil {
					errs <- err
					return
				}
				var n int
				if err := db.QueryRowContext(c, "GET ?", k).Scan(&n); err != nil || n != i {
					errs <- fmt.Errorf("GET %s: %d, %v", k, n, err)
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
	for _, p := range cl.Primaries() {
		n, err := p.Do("DBSIZE")
		if err != nil || n == "0" {
			t.Errorf("shard %s holds %s keys (%v): statements did not spread", p.Addr, n, err)
		}
	}

	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(c, "WATCH {acct}:a"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "INCRBY {acct}:a 10"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(c, "INCRBY {acct}:b -10"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var a, b int
	if err := db.QueryRowContext(c, "GET {acct}:a").Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(c, "GET {acct}:b").Scan(&b); err != nil {
		t.Fatal(err)
	}
	if a != 10 || b != -10 {
		t.Errorf("after the transaction: a=%d b=%d", a, b)
	}
	// A key of another shard on the bound session is refused, clearly.
	other := "key:0"
	for i := 1; cl.PrimaryFor(redistest.Slot(other)) == cl.PrimaryFor(redistest.Slot("{acct}:a")); i++ {
		other = fmt.Sprintf("key:%d", i)
	}
	if _, err = conn.ExecContext(c, "GET "+other); !errors.Is(err, sqlish.ErrWrongPartition) {
		t.Errorf("a key of another shard on a bound session: %v, want ErrWrongPartition", err)
	}
}

// TestExecNotSentEndsMulti: an EXEC whose context was done already is
// never sent: the connection must not stay in MULTI, or the Conn's next
// statements are queued there, reported done, and never run.
func TestExecNotSentEndsMulti(t *testing.T) {
	srv := redistest.StartServer(t)
	c := ctx(t)
	db, err := sqlish.Open("redis", "redis://"+srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(c, tdriver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(c, "SET ? ?", "a", "1"); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(c)
	cancel()
	if err := tx.Commit(done); err == nil {
		t.Fatal("Commit with its context done succeeded")
	}
	if _, err := conn.Exec(c, "SET ? ?", "b", "2"); err != nil {
		t.Fatal(err)
	}
	var b sqlish.Null[string]
	if err := db.QueryRow(c, "GET ?", "b").Scan(&b); err != nil && !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatal(err)
	}
	if !b.Valid || b.V != "2" {
		t.Errorf("SET b on the Conn after a Commit never sent reported done; GET b = %+v", b)
	}
}
