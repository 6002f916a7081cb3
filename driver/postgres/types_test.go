package postgres

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/sqlish"
)

// TestRoundTrip writes 1000 rows of the common types and reads them back
// exactly: quotes in text, zero bytes in bytea, microseconds of a
// timestamptz, the digits of a numeric, NULLs into Null types.
func TestRoundTrip(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN(isolated(t, srv)))
	c := ctx(t)
	if _, err := db.Exec(c, `CREATE TABLE rt (id int8 PRIMARY KEY, s text, b bytea, ts timestamptz, n numeric(20,6),
		f float8, ok bool, ns text, nt timestamptz, ni int4)`); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	type row struct {
		id int64
		s  string
		b  []byte
		ts time.Time
		n  string
		f  float64
		ok bool
		ns sql.NullString
		nt sql.NullTime
		ni sqlish.Null[int64]
	}
	want := make([]row, 1000)
	var batch sqlish.Batch
	for i := range want {
		r := row{
			id: int64(i) - 500, s: fmt.Sprintf("it's \"%d\" \\ ünï", i), b: []byte{0, byte(i), 0, 255},
			ts: base.Add(time.Duration(i) * 1001 * time.Microsecond), n: fmt.Sprintf("%d.%06d", i*1000003, i),
			f: float64(i) / 7, ok: i%2 == 0,
		}
		if i == 0 {
			r.s, r.b = "", []byte{}
		}
		if i%3 == 0 {
			r.ns = sql.NullString{String: "x", Valid: true}
			r.nt = sql.NullTime{Time: r.ts, Valid: true}
			r.ni = sqlish.Null[int64]{V: int64(i), Valid: true}
		}
		if i == 999 {
			r.f = math.MaxFloat64
		}
		want[i] = r
		batch.Queue("INSERT INTO rt VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
			r.id, r.s, r.b, r.ts, r.n, r.f, r.ok, r.ns, r.nt, r.ni)
	}
	br := db.SendBatch(c, &batch)
	for i := range want {
		if res, err := br.Exec(); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("insert %d: RowsAffected %d", i, n)
		}
	}
	rows, err := db.Query(c, "SELECT * FROM rt ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var g row
		if err := rows.Scan(&g.id, &g.s, &g.b, &g.ts, &g.n, &g.f, &g.ok, &g.ns, &g.nt, &g.ni); err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if g.id != w.id || g.s != w.s || !bytes.Equal(g.b, w.b) || g.b == nil || !g.ts.Equal(w.ts) || g.n != w.n ||
			g.f != w.f || g.ok != w.ok || g.ns != w.ns || g.nt.Valid != w.nt.Valid || !g.nt.Time.Equal(w.nt.Time) || g.ni != w.ni {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
		i++
	}
	if err := rows.Err(); err != nil || i != len(want) {
		t.Fatalf("%d rows, %v", i, err)
	}
	// The same through QueryRow's fast path, wider than its inline columns.
	var g row
	if err := db.QueryRow(c, "SELECT * FROM rt WHERE id = $1", want[3].id).Scan(&g.id, &g.s, &g.b, &g.ts, &g.n, &g.f,
		&g.ok, &g.ns, &g.nt, &g.ni); err != nil || g.s != want[3].s || !g.ts.Equal(want[3].ts) || !g.ni.Valid {
		t.Fatalf("QueryRow = %+v, %v", g, err)
	}
	var s string
	if err := db.QueryRow(c, "SELECT s FROM rt WHERE id = $1", int64(1e9)).Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Fatalf("QueryRow of no row = %v, want ErrNoRows", err)
	}
}

// TestTypes covers the types the driver passes and decodes beyond the
// basic ones, the column types and RowsAffected.
func TestTypes(t *testing.T) {
	srv := primary(t)
	db := connect(t, srv.DSN(isolated(t, srv)))
	c := ctx(t)
	id := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	if _, err := db.Exec(c, `CREATE TABLE ty (id uuid PRIMARY KEY, i4 int4, i2 int2, ints int8[], names text[], fl float8[],
		flags bool[], blobs bytea[], j json, jb jsonb, iv interval, v varchar(12), dec numeric(8,3), d date, ts timestamp)`); err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(c, "INSERT INTO ty VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
		id, int32(-7), int16(3), []int64{1, -2, 1 << 40}, []string{"a", "b'c", ""}, []float64{0.5, -1},
		[]bool{true, false}, [][]byte{{0, 1}, {}}, json.RawMessage(`{"a": [1, 2]}`), json.RawMessage(`{"b": null}`),
		90*time.Minute, "twelve chars", "12345.678", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("RowsAffected = %d", n)
	}
	var (
		gid    [16]byte
		i4, i2 int32
		ints   []int64
		names  []string
		fl     []float64
		flags  []bool
		blobs  [][]byte
		j, jb  []byte
		iv, v  string
		dec    string
		d, ts  time.Time
	)
	rows, err := db.Query(c, "SELECT * FROM ty WHERE id = $1 AND i4 = $2", id, int32(-7))
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	if err := rows.Scan(&gid, &i4, &i2, &ints, &names, &fl, &flags, &blobs, &j, &jb, &iv, &v, &dec, &d, &ts); err != nil {
		t.Fatal(err)
	}
	types := rows.ColumnTypes()
	rows.Close()
	if gid != id || i4 != -7 || i2 != 3 || !slices.Equal(ints, []int64{1, -2, 1 << 40}) || !slices.Equal(names, []string{"a", "b'c", ""}) ||
		!slices.Equal(fl, []float64{0.5, -1}) || !slices.Equal(flags, []bool{true, false}) || len(blobs) != 2 ||
		!bytes.Equal(blobs[0], []byte{0, 1}) || string(j) != `{"a": [1, 2]}` || string(jb) != `{"b": null}` ||
		iv != "01:30:00" || v != "twelve chars" || dec != "12345.678" || !d.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) ||
		!ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)) {
		t.Fatalf("got %x %d %d %v %q %v %v %q %s %s %q %q %q %v %v", gid, i4, i2, ints, names, fl, flags, blobs, j, jb, iv, v, dec, d, ts)
	}
	wantTypes := []struct {
		db     string
		scan   reflect.Type
		length int64
		prec   [2]int64
	}{
		{"UUID", reflect.TypeFor[[16]byte](), -1, [2]int64{-1}}, {"INT4", reflect.TypeFor[int64](), -1, [2]int64{-1}},
		{"INT2", reflect.TypeFor[int64](), -1, [2]int64{-1}}, {"_INT8", reflect.TypeFor[[]int64](), -1, [2]int64{-1}},
		{"_TEXT", reflect.TypeFor[[]string](), -1, [2]int64{-1}}, {"_FLOAT8", reflect.TypeFor[[]float64](), -1, [2]int64{-1}},
		{"_BOOL", reflect.TypeFor[[]bool](), -1, [2]int64{-1}}, {"_BYTEA", reflect.TypeFor[[][]byte](), -1, [2]int64{-1}},
		{"JSON", reflect.TypeFor[[]byte](), -1, [2]int64{-1}}, {"JSONB", reflect.TypeFor[[]byte](), -1, [2]int64{-1}},
		{"INTERVAL", reflect.TypeFor[string](), -1, [2]int64{-1}}, {"VARCHAR", reflect.TypeFor[string](), 12, [2]int64{-1}},
		{"NUMERIC", reflect.TypeFor[string](), -1, [2]int64{8, 3}}, {"DATE", reflect.TypeFor[time.Time](), -1, [2]int64{-1}},
		{"TIMESTAMP", reflect.TypeFor[time.Time](), -1, [2]int64{-1}},
	}
	if len(types) != len(wantTypes) {
		t.Fatalf("%d column types", len(types))
	}
	for i, w := range wantTypes {
		ct := types[i]
		if ct.DatabaseType != w.db || ct.ScanType != w.scan || ct.NullableKnown {
			t.Errorf("column %d (%s): %+v, want %s %v", i, ct.Name, ct, w.db, w.scan)
		}
		if w.length >= 0 && (!ct.HasLength || ct.Length != w.length) {
			t.Errorf("column %d (%s): length %d (%v), want %d", i, ct.Name, ct.Length, ct.HasLength, w.length)
		}
		if w.prec[0] >= 0 && (!ct.HasPrecisionScale || ct.Precision != w.prec[0] || ct.Scale != w.prec[1]) {
			t.Errorf("column %d (%s): precision %d scale %d, want %v", i, ct.Name, ct.Precision, ct.Scale, w.prec)
		}
	}
	// Arrays with NULLs, and of two dimensions; infinities; a column of
	// an unknown type comes as text.
	var anyArr, nested, inf, point any
	if err := db.QueryRow(c, "SELECT ARRAY[1, NULL]::int4[], ARRAY[[1,2],[3,4]]::int8[], 'infinity'::timestamptz, point(1,2)").
		Scan(&anyArr, &nested, &inf, &point); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(anyArr, []any{int64(1), nil}) || !reflect.DeepEqual(nested, []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}}) ||
		inf != "infinity" || point != "(1,2)" {
		t.Fatalf("got %#v %#v %#v %#v", anyArr, nested, inf, point)
	}
	// RowsAffected from the command tags, with and without arguments.
	if _, err := db.Exec(c, "CREATE TABLE ra (x int)"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		args []any
		n    int64
	}{
		{"INSERT INTO ra SELECT generate_series(1, 5)", nil, 5},
		{"INSERT INTO ra SELECT generate_series(1, $1)", []any{3}, 3},
		{"UPDATE ra SET x = x + 1 WHERE x > $1", []any{2}, 4},
		{"DELETE FROM ra WHERE x > 3", nil, 4},
		{"SELECT * FROM ra", nil, 4},
	} {
		res, err := db.Exec(c, tc.q, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != tc.n {
			t.Errorf("%s: RowsAffected %d, want %d", tc.q, n, tc.n)
		}
	}
	// An argument pgtype cannot encode for its parameter is refused,
	// naming it.
	// Nothing is sent: the error is final (not an unknown outcome).
	if _, err := db.Exec(c, "SELECT $1::int4", []string{"x"}); !errors.Is(err, sqlish.ErrNotSupported) ||
		!strings.Contains(err.Error(), "$1") || errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("a text[] for an int4: %v", err)
	}
	if _, err := db.Exec(c, "SELECT $1::int4, $2::int4", 1); !errors.Is(err, sqlish.ErrNotSupported) ||
		!strings.Contains(err.Error(), "2 parameters") || errors.Is(err, sqlish.ErrOutcomeUnknown) {
		t.Errorf("too few arguments: %v", err)
	}
	// A float for an integer parameter is refused unless it is a whole
	// number in range: 2.9 was stored as 2, and -1e30 as the least int8,
	// without an error.
	for _, v := range []float64{2.9, -1e30, 1e19, math.NaN(), math.Inf(1)} {
		for _, typ := range []string{"int2", "int4", "int8"} {
			var got any
			err := db.QueryRow(c, "SELECT $1::"+typ, v).Scan(&got)
			if !errors.Is(err, sqlish.ErrNotSupported) || !strings.Contains(err.Error(), "$1") {
				t.Errorf("SELECT $1::%s with %v: %v, %v; want it refused", typ, v, got, err)
			}
		}
	}
	var n int64
	if err := db.QueryRow(c, "SELECT $1::int8", 3.0).Scan(&n); err != nil || n != 3 {
		t.Errorf("SELECT $1::int8 with 3.0: %d, %v", n, err)
	}
}
