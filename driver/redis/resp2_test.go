package redis_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// result is what the user API hands out for one statement: the columns
// and rows of Query, the first row of QueryRow, the rows of the statement
// sent in a batch, and Exec's count.
type result struct {
	Cols     []string
	Rows     [][]any
	Row      []any
	BatchRow [][]any
	Affected int64
	Err      string
}

// scanAll reads rows into *any destinations, as a user of the API would.
func scanAll(rows *sqlish.Rows) ([]string, [][]any, error) {
	defer rows.Close()
	cols := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return cols, out, err
		}
		out = append(out, vals)
	}
	return cols, out, rows.Err()
}

type shapeCase struct {
	setup []string // statements run first: once, or before each path if the query changes the data
	query string
	// mutates says the query changes what it reads (ZPOPMIN): the setup
	// runs again before every run of it.
	mutates bool
	// volatile says values change between two runs (MEMORY STATS): only
	// the columns, the field names and the Go types are compared.
	volatile bool
}

// run runs c through every path of the user API on db.
func (c shapeCase) run(t *testing.T, db *sqlish.DB) result {
	t.Helper()
	ctx := context.Background()
	setup := func() {
		for _, s := range c.setup {
			if _, err := db.Exec(ctx, s); err != nil {
				t.Fatalf("setup %s: %v", s, err)
			}
		}
	}
	setup()
	var res result
	rows, err := db.Query(ctx, c.query)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Cols, res.Rows, err = scanAll(rows)
	if err != nil {
		t.Fatalf("%s: %v", c.query, err)
	}
	if c.mutates {
		setup()
	}
	if len(res.Cols) > 0 {
		res.Row = make([]any, len(res.Cols))
		ptrs := make([]any, len(res.Cols))
		for i := range res.Row {
			ptrs[i] = &res.Row[i]
		}
		if err := db.QueryRow(ctx, c.query).Scan(ptrs...); err != nil && err != sqlish.ErrNoRows {
			t.Fatalf("QueryRow %s: %v", c.query, err)
		}
	}
	if c.mutates {
		setup()
	}
	var b sqlish.Batch
	b.Queue("PING")
	b.Queue(c.query)
	br := db.SendBatch(ctx, &b)
	br.Exec()
	if rows, err := br.Query(); err != nil {
		t.Fatalf("batch %s: %v", c.query, err)
	} else if _, res.BatchRow, err = scanAll(rows); err != nil {
		t.Fatalf("batch %s: %v", c.query, err)
	}
	br.Close()
	if c.mutates {
		setup()
	}
	r, err := db.Exec(ctx, c.query)
	if err != nil {
		t.Fatalf("Exec %s: %v", c.query, err)
	}
	res.Affected, _ = r.RowsAffected()
	return res
}

// typeOf describes v's Go type, recursively for arrays: what volatile
// results are compared by.
func typeOf(v any) string {
	if a, ok := v.([]any); ok {
		parts := make([]string, len(a))
		for i, e := range a {
			parts[i] = typeOf(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T", v)
}

// skeleton keeps what a volatile result must share across protocols: the
// columns, the first column's values (field names) and every value's type.
func skeleton(rows [][]any) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		for j, v := range r {
			if j == 0 && len(r) == 2 {
				out[i] = append(out[i], fmt.Sprintf("%s", v))
			}
			out[i] = append(out[i], typeOf(v))
		}
	}
	return out
}

// A RESP2 connection gives the same rows, of the same Go types, as a RESP3
// one, through Query, QueryRow, a batch and Exec: the RESP3 shape (a map,
// a double, pairs) is canonical and RESP2 replies are converted to it.
func TestRESP2MatchesRESP3(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db2 := connect(t, "redis", "redis://"+srv.Addr+"?protocol=2")
	db3 := connect(t, "redis", "redis://"+srv.Addr+"?protocol=3")
	// An ACL LOG entry, from a failed AUTH on another connection.
	if _, err := srv.Do("AUTH", "nobody", "wrong"); err == nil {
		t.Fatal("AUTH nobody succeeded")
	}
	lib := "#!lua name=shapes\nredis.register_function('f', function() return 1 end)"
	if _, err := db3.Exec(ctx, "FUNCTION LOAD REPLACE ?", lib); err != nil {
		t.Fatal(err)
	}
	zset := []string{"DEL z z2 z1", "ZADD z 1.5 a 2 b 3 c inf d -0.25 e", "ZADD z2 10 a 0.1 b", "ZADD z1 7.25 only"}
	pop := []string{"DEL zp zq", "ZADD zp 1.5 a 2 b 3 c", "ZADD zq 4.5 x"}
	streams := []string{"DEL s1 s2", "XADD s1 1-1 a 1 b 2", "XADD s1 1-2 c 3", "XADD s2 2-1 d 4",
		"XGROUP CREATE s1 g 0", "XREADGROUP GROUP g c1 COUNT 1 STREAMS s1 >"}
	geo := []string{"DEL g", "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania"}
	hash := []string{"DEL h h1", "HSET h f1 v1 f2 v2", "HSET h1 only 1"}
	cases := []shapeCase{
		{setup: hash, query: "HGETALL h"},
		{query: "HGETALL nosuch"},
		{setup: hash, query: "HRANDFIELD h1 -3 WITHVALUES"},
		{setup: hash, query: "HRANDFIELD h1 1 WITHVALUES"},
		{setup: hash, query: "HRANDFIELD h1 1"},
		{query: "CONFIG GET maxmemory-policy"},
		{query: "CONFIG GET list-*"},
		{setup: zset, query: "ZSCORE z a"},
		{setup: zset, query: "ZSCORE z d"},
		{setup: zset, query: "ZSCORE z nosuch"},
		{setup: zset, query: "ZINCRBY z 0 e"},
		{setup: zset, query: "ZADD z INCR 0 a"},
		{setup: zset, query: "ZADD z XX INCR 0 nosuch"},
		{setup: zset, query: "ZADD z 1.5 a"},
		{setup: zset, query: "ZMSCORE z a nosuch d"},
		{setup: zset, query: "ZRANGE z 0 -1 WITHSCORES"},
		{setup: zset, query: "ZRANGE z 0 -1"},
		{setup: zset, query: "ZRANGE z +inf -inf BYSCORE REV LIMIT 0 2 WITHSCORES"},
		{setup: zset, query: "ZRANGEBYSCORE z -inf +inf WITHSCORES LIMIT 1 2"},
		{setup: zset, query: "ZREVRANGE z 0 1 WITHSCORES"},
		{setup: zset, query: "ZREVRANGEBYSCORE z +inf -inf WITHSCORES"},
		{setup: zset, query: "ZRANGE nosuch 0 -1 WITHSCORES"},
		{setup: zset, query: "ZUNION 2 z z2 WITHSCORES"},
		{setup: zset, query: "ZINTER 2 z z2 WEIGHTS 1 2 WITHSCORES"},
		{setup: zset, query: "ZDIFF 2 z z2 WITHSCORES"},
		{setup: zset, query: "ZRANDMEMBER z1 1 WITHSCORES"},
		{setup: zset, query: "ZRANDMEMBER z1 -2 WITHSCORES"},
		{setup: pop, query: "ZPOPMIN zp", mutates: true},
		{setup: pop, query: "ZPOPMAX zp 2", mutates: true},
		{setup: pop, query: "ZPOPMIN nosuch"},
		{setup: pop, query: "BZPOPMIN zp 1", mutates: true},
		{setup: pop, query: "BZPOPMAX nosuch zq 1", mutates: true},
		{setup: pop, query: "ZMPOP 2 nosuch zp MIN COUNT 2", mutates: true},
		{setup: pop, query: "BZMPOP 1 1 zq MAX", mutates: true},
		{setup: pop, query: "ZMPOP 1 nosuch MIN"},
		{setup: streams, query: "XREAD COUNT 10 STREAMS s1 s2 0 0"},
		{setup: streams, query: "XREAD STREAMS s1 1-2"},
		{setup: streams, query: "XREAD BLOCK 10 STREAMS s1 1-2"},
		{setup: streams, query: "XREADGROUP GROUP g c2 COUNT 10 STREAMS s1 0"},
		{setup: streams, query: "XINFO STREAM s1"},
		{setup: streams, query: "XINFO STREAM s1 FULL", volatile: true}, // seen-time
		{setup: streams, query: "XINFO GROUPS s1"},
		{setup: streams, query: "XINFO CONSUMERS s1 g", volatile: true}, // idle
		{setup: geo, query: "GEOPOS g Palermo nosuch Catania"},
		{setup: geo, query: "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHCOORD WITHDIST WITHHASH"},
		{setup: geo, query: "GEOSEARCH g FROMMEMBER Palermo BYBOX 400 400 km ASC WITHCOORD"},
		{setup: geo, query: "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHDIST"},
		{setup: geo, query: "GEORADIUS g 15 37 200 km ASC WITHCOORD"},
		{setup: geo, query: "GEORADIUS_RO g 15 37 200 km ASC WITHCOORD WITHDIST"},
		{setup: geo, query: "GEORADIUSBYMEMBER g Palermo 200 km ASC WITHCOORD"},
		{setup: geo, query: "GEORADIUSBYMEMBER_RO g Palermo 200 km WITHCOORD COUNT 1"},
		{setup: geo, query: "GEODIST g Palermo Catania km"},
		{setup: []string{"MSET lcs1 ohmytext lcs2 mynewtext"}, query: "LCS lcs1 lcs2 IDX MINMATCHLEN 2 WITHMATCHLEN"},
		{setup: []string{"MSET lcs1 ohmytext lcs2 mynewtext"}, query: "LCS lcs1 lcs2"},
		{setup: []string{"DEL st", "SADD st 3 1 2"}, query: "SMEMBERS st"},
		{setup: []string{"DEL st", "SADD st 3 1 2"}, query: "SINTER st"},
		{query: "CLIENT TRACKINGINFO"},
		{query: "ACL GETUSER default"},
		{query: "ACL LOG", volatile: true},
		{query: "FUNCTION STATS"},
		{query: "FUNCTION LIST"},
		{query: "COMMAND DOCS GET"},
		{query: "COMMAND INFO GET XREAD"},
		{query: "MEMORY STATS", volatile: true},
		{query: "LATENCY HISTOGRAM SET", volatile: true},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			r2, r3 := c.run(t, db2), c.run(t, db3)
			if c.volatile {
				if r2.Err != r3.Err || !reflect.DeepEqual(r2.Cols, r3.Cols) || !reflect.DeepEqual(skeleton(r2.Rows), skeleton(r3.Rows)) {
					t.Errorf("RESP2 %v %q %v\nRESP3 %v %q %v", r2.Cols, r2.Err, skeleton(r2.Rows), r3.Cols, r3.Err, skeleton(r3.Rows))
				}
				return
			}
			if !reflect.DeepEqual(r2, r3) {
				t.Errorf("RESP2 and RESP3 differ:\nRESP2 %s\nRESP3 %s", show(r2), show(r3))
			}
		})
	}

	// The canonical shapes themselves, on both protocols.
	for _, db := range []*sqlish.DB{db2, db3} {
		r := shapeCase{setup: zset, query: "ZSCORE z a"}.run(t, db)
		if !reflect.DeepEqual(r.Rows, [][]any{{1.5}}) {
			t.Errorf("ZSCORE = %s, want one float64 1.5", show(r))
		}
		r = shapeCase{setup: zset, query: "ZSCORE z d"}.run(t, db)
		if len(r.Rows) != 1 || r.Rows[0][0] != math.Inf(1) {
			t.Errorf("ZSCORE of inf = %s, want +Inf", show(r))
		}
		r = shapeCase{setup: hash, query: "HGETALL h"}.run(t, db)
		want := [][]any{{[]byte("f1"), []byte("v1")}, {[]byte("f2"), []byte("v2")}}
		if !reflect.DeepEqual(r.Cols, []string{"field", "value"}) || !reflect.DeepEqual(r.Rows, want) || r.Affected != 2 {
			t.Errorf("HGETALL = %s, want (field, value) rows", show(r))
		}
		r = shapeCase{setup: zset, query: "ZRANGE z 0 1 WITHSCORES"}.run(t, db)
		if !reflect.DeepEqual(r.Rows, [][]any{{[]any{[]byte("e"), -0.25}}, {[]any{[]byte("a"), 1.5}}}) {
			t.Errorf("ZRANGE WITHSCORES = %s, want [member, float64] pairs", show(r))
		}
		r = shapeCase{setup: streams, query: "XREAD STREAMS s1 1-1"}.run(t, db)
		entry := []any{[]byte("1-2"), []any{[]byte("c"), []byte("3")}}
		if !reflect.DeepEqual(r.Rows, [][]any{{[]byte("s1"), []any{entry}}}) {
			t.Errorf("XREAD = %s, want a (stream, entries) row", show(r))
		}
		r = shapeCase{setup: geo, query: "GEOPOS g Palermo"}.run(t, db)
		if len(r.Rows) != 1 || typeOf(r.Rows[0][0]) != "[float64 float64]" {
			t.Errorf("GEOPOS = %s, want [float64 float64]", show(r))
		}
	}
}

func show(r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cols %v err %q affected %d\n", r.Cols, r.Err, r.Affected)
	for _, rows := range []struct {
		name string
		rows [][]any
	}{{"rows", r.Rows}, {"row", [][]any{r.Row}}, {"batch", r.BatchRow}} {
		fmt.Fprintf(&b, "  %s:", rows.name)
		for _, row := range rows.rows {
			for _, v := range row {
				fmt.Fprintf(&b, " %s=%#v", typeOf(v), v)
			}
			b.WriteString(";")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// XREAD BLOCK answered by the blocked-client path (a write wakes it up)
// has the same shape on both protocols: Redis builds that reply apart.
func TestRESP2BlockedXREAD(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	var got [2][][]any
	for i, proto := range []string{"2", "3"} {
		db := connect(t, "redis", "redis://"+srv.Addr+"?protocol="+proto)
		key := "blocked" + proto
		done := make(chan error, 1)
		go func() {
			rows, err := db.Query(ctx, "XREAD BLOCK 4000 STREAMS "+key+" $")
			if err == nil {
				_, got[i], err = scanAll(rows)
			}
			done <- err
		}()
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(srv.MustDo("INFO", "clients"), "blocked_clients:1") {
			if time.Now().After(deadline) {
				t.Fatal("XREAD BLOCK never blocked")
			}
			time.Sleep(5 * time.Millisecond)
		}
		srv.MustDo("XADD", key, "5-1", "f", "v")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got[i]) == 1 {
			got[i][0][0] = []byte("blocked") // the stream names differ
		}
	}
	if !reflect.DeepEqual(got[0], got[1]) || len(got[0]) != 1 {
		t.Errorf("blocked XREAD: RESP2 %#v, RESP3 %#v", got[0], got[1])
	}
}

// TestRESP2TransactionShapes: the replies of statements queued in a
// transaction take their RESP3 shape on RESP2 too, once EXEC brings them,
// also after a session statement (CLIENT SETNAME) queued before them,
// whose reply is one of EXEC's too.
func TestRESP2TransactionShapes(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	if _, err := srv.Do("HSET", "h", "f1", "v1", "f2", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("ZADD", "z", "1.5", "a", "2", "b"); err != nil {
		t.Fatal(err)
	}
	read := func(protocol string, setname bool) string {
		db := connect(t, "redis", "redis://"+srv.Addr+"?protocol="+protocol)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tx, err := c.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if setname {
			if _, err := tx.Exec(ctx, "CLIENT SETNAME queued"); err != nil {
				t.Fatal(err)
			}
		}
		var all []*sqlish.Rows
		for _, q := range []string{"HGETALL h", "ZRANGE z 0 -1 WITHSCORES"} {
			rows, err := tx.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, rows)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, rows := range all {
			cols, vals, err := scanAll(rows) // columns before Next, as database/sql gives them
			if err != nil {
				t.Fatal(err)
			}
			if len(cols) == 0 {
				t.Fatalf("RESP%s: a queued statement's Rows have no columns after Commit", protocol)
			}
			fmt.Fprint(&sb, cols, ":")
			for _, v := range vals {
				fmt.Fprintf(&sb, " %v", v)
			}
			sb.WriteString("; ")
		}
		return sb.String()
	}
	for _, setname := range []bool{false, true} {
		if r2, r3 := read("2", setname), read("3", setname); r2 != r3 {
			t.Fatalf("a transaction's replies differ (CLIENT SETNAME queued first: %v):\nRESP2: %s\nRESP3: %s", setname, r2, r3)
		}
	}
}
