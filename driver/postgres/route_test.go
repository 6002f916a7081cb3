package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

func TestRoute(t *testing.T) {
	c := &connector{}
	for _, tc := range []struct {
		q       string
		op      string
		session bool
	}{
		{"SELECT 1", "SELECT", false},
		{"  select * from t where id = $1", "SELECT", false},
		{"-- a comment\n/* another /* nested */ one */ (SELECT 1) UNION SELECT 2", "SELECT", false},
		{"WITH a AS (SELECT 1), b (x) AS MATERIALIZED (SELECT 2) INSERT INTO t SELECT * FROM a", "INSERT", false},
		{"WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n FROM r) SELECT * FROM r", "SELECT", false},
		{"WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d", "SELECT", false},
		{"insert into t values ('SET x = 1; BEGIN')", "INSERT", false},
		{"SELECT $$ BEGIN; SET x TO 1 $$, $tag$ ; LISTEN x $tag$", "SELECT", false},
		{"SELECT E'it\\'s; SET search_path TO x'", "SELECT", false},
		{`SELECT "SET" FROM "BEGIN"`, "SELECT", false},
		{"SELECT 1 -- ; SET search_path TO x", "SELECT", false},
		{"SET search_path TO x", "SET", true},
		{"set session application_name = 'x'", "SET", true},
		{"SET LOCAL search_path TO x", "SET", false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET", false},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET", true},
		{"RESET ALL", "RESET", true},
		{"DISCARD ALL", "DISCARD", true},
		{"PREPARE p AS SELECT 1", "PREPARE", true},
		{"DEALLOCATE ALL", "DEALLOCATE", true},
		{"LISTEN ch", "LISTEN", true},
		{"UNLISTEN *", "UNLISTEN", true},
		{"BEGIN", "BEGIN", true},
		{"START TRANSACTION", "START", true},
		{"COMMIT", "COMMIT", true},
		{"END", "END", true},
		{"ROLLBACK", "ROLLBACK", true},
		{"ABORT", "ABORT", true},
		{"SAVEPOINT s", "SAVEPOINT", true},
		{"RELEASE SAVEPOINT s", "RELEASE", true},
		{"DECLARE c CURSOR FOR SELECT 1", "DECLARE", true},
		{"CREATE TEMP TABLE x (a int)", "CREATE", true},
		{"CREATE LOCAL TEMPORARY TABLE x (a int)", "CREATE", true},
		{"CREATE TABLE x (a int)", "CREATE", false},
		{"SELECT * INTO TEMP x FROM t", "SELECT", true},
		{"LOAD 'auto_explain'", "LOAD", true},
		{"SELECT set_config('search_path', 'x', false)", "SELECT", true},
		{"SELECT pg_advisory_lock(1)", "SELECT", true},
		{"SELECT pg_advisory_xact_lock(1)", "SELECT", false},
		{"SELECT 1; SET search_path TO x", "SELECT", true},
		{"UPDATE t SET a = 1", "UPDATE", false},
		{"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", "CREATE", true},
		{"CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE", false},
		{"CREATE TABLE pg_temp.x (a int)", "CREATE", true},
		{"CREATE FUNCTION pg_temp_3 . f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE", true},
		{`INSERT INTO "pg_temp".x VALUES (1)`, "INSERT", true},
		{"SELECT pg_temp FROM t", "SELECT", false},
		{"SELECT 1 INTO pg_temp.x", "SELECT", true},
		{"EXPLAIN ANALYZE VERBOSE CREATE TEMP TABLE x AS SELECT 1", "EXPLAIN", true},
		{"EXPLAIN (ANALYZE) SELECT set_config('a.b', 'c', false)", "EXPLAIN", true},
		{"EXPLAIN SELECT 1", "EXPLAIN", false},
		{`SELECT "set_config"('a.b', 'c', false)`, "SELECT", true},
		{`SELECT "SET_CONFIG"('a.b', 'c', false)`, "SELECT", false},
		{"SELECT set_config /* a */ -- b\n ('a.b', 'c', false)", "SELECT", true},
		{"SELECT setseed(0.5)", "SELECT", true},
		{"UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", "UPDATE", true},
		{"UPDATE pg_catalog.pg_settings SET setting = 'x'", "UPDATE", true},
		{"DO $$BEGIN PERFORM set_config('a.b', 'c', false); END$$", "DO", false}, // runs, then reset (TestAnalyzeDirty)
		{"", "", false},
		{"  ;  ", "", false},
	} {
		r, err := c.Route(tc.q, nil)
		if err != nil {
			t.Fatalf("Route(%q): %v", tc.q, err)
		}
		if r.Op != tc.op || r.Session != tc.session {
			t.Errorf("Route(%q) = op %q session %v, want %q %v", tc.q, r.Op, r.Session, tc.op, tc.session)
		}
		if r.Intent != driver.Write || !r.Unsure || r.Idempotent || r.Partition != driver.AnyPartition {
			t.Errorf("Route(%q) = %+v: want an unsure, non-idempotent write to any partition", tc.q, r)
		}
	}
}

// TestAnalyzeDirty: a DO block runs on the shared pool (it is not Session)
// but marks its connection for a reset, statement cache included.
func TestAnalyzeDirty(t *testing.T) {
	for q, want := range map[string]bool{
		"DO $$BEGIN NULL; END$$":             true,
		"SELECT 1; DO 'BEGIN NULL; END'":     true,
		"SELECT 'DO $$BEGIN NULL; END$$'":    false,
		"CREATE TABLE do (x int)":            false,
		"SELECT 1 -- DO $$BEGIN NULL; END$$": false,
	} {
		if a := analyze(q); a.dirty != want || a.reset != want || want && a.plain {
			t.Errorf("analyze(%q): dirty %v reset %v plain %v, want dirty and reset %v", q, a.dirty, a.reset, a.plain, want)
		}
	}
}

// TestCopyRefused: COPY through the client is refused up front (the
// server would wait for the copy protocol), COPY with a server file is not.
func TestCopyRefused(t *testing.T) {
	c := &connector{}
	for _, q := range []string{"COPY t FROM STDIN", "copy t (a, b) to stdout with (format csv)", "SELECT 1; COPY (SELECT 1) TO STDOUT"} {
		if _, err := c.Route(q, nil); !errors.Is(err, driver.ErrNotSupported) {
			t.Errorf("Route(%q) = %v, want ErrNotSupported", q, err)
		}
		pc := &pgConn{c: c}
		if _, err := pc.Exec(context.Background(), q, nil); !errors.Is(err, driver.ErrNotSupported) {
			t.Errorf("Exec(%q) = %v, want ErrNotSupported", q, err)
		}
	}
	for _, q := range []string{"COPY t FROM '/tmp/x.csv'", "SELECT 'COPY t FROM STDIN'", "COPY t TO PROGRAM 'gzip > /tmp/stdout'"} {
		if _, err := c.Route(q, nil); err != nil {
			t.Errorf("Route(%q) = %v", q, err)
		}
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://h/db?nosuchkey=1", `unknown key "nosuchkey"`},
		{"postgres://h/db?sslmode=prefer", "fall back to plaintext"},
		{"postgres://h/db?sslmode=allow", "fall back to plaintext"},
		{"postgres://h/db?sslmode=bogus", "want disable, require"},
		{"postgres://h/db?sslmode=disable&tls=true", "conflicts"},
		{"postgres://h/db?statement_cache_size=-1", "statement_cache_size"},
		{"postgres://h/db?sslrootcert=/nonexistent/root.crt&sslmode=verify-ca", "sslrootcert"},
		{"postgres://h/db?sslcert=/x.crt", "together"},
		{"postgres://h/db?auth_mode=pki", "pki"},
	} {
		db, err := sqlish.Open("postgres", tc.dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", tc.dsn)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want it to say %q", tc.dsn, err, tc.want)
		}
	}
	_, err := sqlish.Open("postgres", "postgres://h/db?nosuchkey=1")
	for _, k := range (Driver{}).Params() {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("the unknown-key error does not list %s: %v", k, err)
		}
	}
	c, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{"h"}, Timeout: time.Second,
		Params: map[string]string{"statement_cache_size": "0", "application_name": "app"}})
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(*connector)
	if pc.cacheSize != 0 || pc.runtime["application_name"] != "app" || pc.tls != nil || pc.mode != "disable" {
		t.Errorf("connector = cache %d, runtime %v, tls %v, mode %s", pc.cacheSize, pc.runtime, pc.tls, pc.mode)
	}
	if b := c.Backend(); b.System != "postgresql" || b.Caps != caps {
		t.Errorf("Backend = %+v", b)
	}
	for _, name := range []string{"postgres", "postgresql"} {
		if !slices.Contains(sqlish.Drivers(), name) {
			t.Errorf("driver %q not registered", name)
		}
	}
}

func TestConvertValue(t *testing.T) {
	c := &connector{}
	type myInt int
	for _, v := range []any{nil, int64(1), 1, "s", []byte("b"), true, 1.5, time.Now(), myInt(3), uint8(1)} {
		if _, err := c.ConvertValue(v); err != driver.ErrSkip {
			t.Errorf("ConvertValue(%T) = %v, want ErrSkip", v, err)
		}
	}
	id := [16]byte{1, 2, 3}
	for _, v := range []any{int16(1), int32(2), uint32(3), []int64{1}, []string{"a"}, [][]byte{{1}}, id,
		json.RawMessage(`{}`), time.Second, netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/8"),
		pgtype.Numeric{}, sql.NullString{}} {
		got, err := c.ConvertValue(v)
		if err != nil {
			t.Errorf("ConvertValue(%T): %v", v, err)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(v) {
			t.Errorf("ConvertValue(%T) = %T, want it as it is", v, got)
		}
	}
	for _, tc := range []struct{ in, want any }{
		{sqlish.Null[int64]{}, nil}, {sqlish.Null[int64]{V: 5, Valid: true}, int64(5)},
	} {
		if got, err := c.ConvertValue(tc.in); err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ConvertValue(%#v) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	var p *int32
	if v, err := c.ConvertValue(p); v != nil || err != nil {
		t.Errorf("ConvertValue(nil *int32) = %v, %v", v, err)
	}
	n := int32(7)
	if v, err := c.ConvertValue(&n); v != int32(7) || err != nil {
		t.Errorf("ConvertValue(*int32) = %v, %v", v, err)
	}
}

// Only one statement of plain DML that leaves the session alone may share
// an implicit transaction with others in a batch.
func TestPlain(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT $1::int":                                     true,
		"insert into t values ($1)":                          true,
		"WITH d AS (DELETE FROM t RETURNING *) SELECT 1":     true,
		"UPDATE t SET v = 1":                                 true,
		"SELECT * FROM t FOR UPDATE":                         true,
		"VACUUM t":                                           false,
		"CREATE TABLE x (a int)":                             false,
		"SET search_path TO x":                               false,
		"BEGIN":                                              false,
		"SELECT 1; SELECT 2":                                 false,
		"SELECT set_config('a.b', 'c', false)":               false,
		"SELECT pg_advisory_lock(1)":                         false,
		"SELECT 1 INTO TEMP t2":                              false,
		"WITH RECURSIVE r AS (SELECT 1) CREATE TABLE x AS r": false,
	} {
		if got := analyze(q).plain; got != want {
			t.Errorf("%q: plain %v, want %v", q, got, want)
		}
	}
}
