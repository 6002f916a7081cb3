package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// slack is what timing checks allow beyond a deadline.
const slack = 400 * time.Millisecond

func checkRegistered(t T, e *env) {
	if !slices.Contains(sqlish.Drivers(), e.cfg.Driver) {
		t.Fatalf("driver %q is not registered (registered: %v)", e.cfg.Driver, sqlish.Drivers())
	}
	if _, ok := driver.Lookup(e.cfg.Driver); !ok {
		t.Errorf("driver.Lookup(%q) finds nothing although sqlish.Drivers lists it", e.cfg.Driver)
	}
	const bogus = "tendril-conformance-no-such-driver"
	_, err := sqlish.Open(bogus, e.dsn())
	if err == nil || !strings.Contains(err.Error(), bogus) {
		t.Errorf("Open of an unregistered driver: error %v does not name it", err)
	}
}

func checkBadDSN(t T, e *env) {
	const secret = "tendril-conformance-secret-pw"
	cases := []struct {
		dsn, want string
	}{
		{e.dsn("max_conns_per_node=lots"), "max_conns_per_node"},
		{e.dsn("tend_interval=soon"), "tend_interval"},
		{e.dsn("read_preference=anywhere"), "read_preference"},
		{e.dsn("tendril_conformance_bogus_key=1"), "tendril_conformance_bogus_key"},
		{withPassword(e.dsn("tendril_conformance_bogus_key=1"), "user", secret), "tendril_conformance_bogus_key"},
		{withPassword(e.dsn("timeout=never"), "user", secret), "timeout"},
		{"no scheme at all", ""},
		{replaceHosts(e.dsn(), []string{"host:notaport"}), "notaport"},
	}
	for _, c := range cases {
		start := time.Now()
		db, err := sqlish.Open(e.cfg.Driver, c.dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded; want an error naming %q", redact(c.dsn), c.want)
			continue
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Errorf("Open(%q) took %s to fail: a bad DSN must be refused without the network", redact(c.dsn), since(start))
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q): error %q does not name %q", redact(c.dsn), err, c.want)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%#v", err), secret) {
			t.Errorf("Open(%q): error prints the password: %v", redact(c.dsn), err)
		}
	}
	if cfg, err := sqlish.ParseDSN(withPassword(e.dsn(), "user", secret)); err == nil {
		if s := cfg.String() + fmt.Sprintf("%#v", cfg); strings.Contains(s, secret) {
			t.Errorf("Config.String prints the password: %s", s)
		}
	}
}

func checkOpenNoDial(t T, e *env) {
	// The driver's OpenConnector must not dial.
	cfg, err := sqlish.ParseDSN(e.dsn())
	if err != nil {
		t.Fatalf("ParseDSN: %v", err)
	}
	drv, ok := driver.Lookup(e.cfg.Driver)
	if !ok {
		t.Fatalf("driver %q is not registered", e.cfg.Driver)
	}
	before := e.serverConns()
	start := time.Now()
	connector, err := drv.OpenConnector(driverConfig(cfg))
	if err != nil {
		t.Fatalf("OpenConnector: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("OpenConnector took %s: it must not touch the network", since(start))
	}
	time.Sleep(50 * time.Millisecond)
	if after := e.serverConns(); before >= 0 && after > before {
		t.Errorf("OpenConnector opened connections: the server saw %d, then %d", before, after)
	}
	_ = connector

	// sqlish.Open must return at once even when no node answers.
	var dsn string
	if e.cfg.Faults != nil {
		e.hangAll(5 * time.Second)
		dsn = e.dsn("timeout=3s")
	} else {
		dsn = replaceHosts(e.dsn("timeout=3s"), []string{silentListener(t)})
	}
	start = time.Now()
	db, err := sqlish.Open(e.cfg.Driver, dsn)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Open(%q): %v", redact(dsn), err)
	}
	defer db.Close()
	if took > 100*time.Millisecond {
		t.Errorf("Open took %s with no node answering: Open must not wait for the network", took.Round(time.Millisecond))
	}
}

func checkConnectDeadline(t T, e *env) {
	var dsn string
	if e.cfg.Faults != nil {
		e.hangAll(5 * time.Second)
		dsn = e.dsn("timeout=3s")
	} else {
		dsn = replaceHosts(e.dsn("timeout=3s"), []string{silentListener(t)})
	}
	const deadline = 250 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	db, err := sqlish.Connect(ctx, e.cfg.Driver, dsn)
	took := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatalf("Connect succeeded with no node answering")
	}
	if took > deadline+slack {
		t.Errorf("Connect took %s with a %v deadline: it must honour its context", took.Round(time.Millisecond), deadline)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
	case took >= deadline-20*time.Millisecond:
		t.Errorf("Connect ran until its deadline but the error %v does not wrap context.DeadlineExceeded", errString(err))
	default:
		t.Logf("Connect failed before its deadline: %v", err)
	}
}

func checkConnectSeedErrors(t T, e *env) {
	dsn := e.cfg.UnreachableDSN
	if dsn == "" {
		dsn = replaceHosts(e.dsn(), closedPorts(2))
	}
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("ParseDSN(%q): %v", redact(dsn), err)
	}
	dsn = AppendParams(dsn, "timeout=1s")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	db, err := sqlish.Connect(ctx, e.cfg.Driver, dsn)
	if err == nil {
		db.Close()
		t.Fatalf("Connect(%q) succeeded; every seed should refuse", redact(dsn))
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Connect to refusing seeds took %s", since(start))
	}
	for _, h := range cfg.Hosts {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("Connect error does not name seed %s (every seed's error must be joined):\n%v", h, err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect to refusing seeds ran into its deadline instead of reporting the refusals: %v", err)
	}
}

// roundTrip writes v and scans it back into dest.
func (e *env) roundTrip(ctx context.Context, db *sqlish.DB, v any, dest any) error {
	k := e.key()
	q, args := e.d.Set(k, v)
	if _, err := db.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	if err := e.get(ctx, db, k, dest); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	return nil
}

func checkRoundTrip(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(30 * time.Second)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	binary := []byte{0, 'a', 0, 0, 0xff, '\r', '\n', '"', '\'', '\\', 0}
	for _, b := range [][]byte{binary, all, bytes.Repeat([]byte{0}, 1000), bytes.Repeat([]byte("x\x00y"), 50000)} {
		var got []byte
		if err := e.roundTrip(ctx, db, b, &got); err != nil {
			t.Errorf("%d binary bytes: %v", len(b), err)
		} else if !bytes.Equal(got, b) {
			t.Errorf("binary round trip: wrote %d bytes %q, read %d bytes %q", len(b), trunc(b), len(got), trunc(got))
		}
	}
	for _, s := range []string{"héllo, wörld", "日本語テキスト", "emoji 🌍🚀", "tab\tand\nnewline", "?", "a b c", " leading and trailing "} {
		var got string
		if err := e.roundTrip(ctx, db, s, &got); err != nil {
			t.Errorf("string %q: %v", s, err)
		} else if got != s {
			t.Errorf("string round trip: wrote %q, read %q", s, got)
		}
	}
	for _, n := range []int64{math.MinInt64, math.MaxInt64, 0, -1, 1 << 53, -(1 << 53) - 1} {
		var got int64
		if err := e.roundTrip(ctx, db, n, &got); err != nil {
			t.Errorf("int64 %d: %v", n, err)
		} else if got != n {
			t.Errorf("int64 round trip: wrote %d, read %d", n, got)
		}
	}
	for _, n := range []uint64{math.MaxUint64, 1 << 63, 0} {
		var got uint64
		if err := e.roundTrip(ctx, db, n, &got); err != nil {
			t.Errorf("uint64 %d: %v", n, err)
		} else if got != n {
			t.Errorf("uint64 round trip: wrote %d, read %d", n, got)
		}
	}
	for _, f := range []float64{math.Pi, -2.5e-300, 1e300, math.SmallestNonzeroFloat64, math.MaxFloat64, 0.1, -0.5, 0} {
		var got float64
		if err := e.roundTrip(ctx, db, f, &got); err != nil {
			t.Errorf("float64 %v: %v", f, err)
		} else if got != f {
			t.Errorf("float64 round trip: wrote %v, read %v", f, got)
		}
	}
	var f32 float32
	if err := e.roundTrip(ctx, db, float32(1.5), &f32); err != nil || f32 != 1.5 {
		t.Errorf("float32 1.5 round trip: read %v, %v", f32, err)
	}
	for _, b := range []bool{true, false} {
		var got bool
		if err := e.roundTrip(ctx, db, b, &got); err != nil {
			t.Errorf("bool %v: %v", b, err)
		} else if got != b {
			t.Errorf("bool round trip: wrote %v, read %v", b, got)
		}
	}
	for _, tm := range []time.Time{
		time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC),
		time.Date(1815, 12, 10, 8, 0, 0, 0, time.FixedZone("", -5*3600)),
	} {
		var got time.Time
		if err := e.roundTrip(ctx, db, tm, &got); err != nil {
			t.Errorf("time %v: %v", tm, err)
		} else if !got.Equal(tm) {
			t.Errorf("time round trip: wrote %v, read %v", tm, got)
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

func checkEmptyVsNil(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	keys := e.colocated(3)
	e.set(ctx, db, keys[0], "")
	e.set(ctx, db, keys[1], []byte{})
	// keys[2] is missing.

	var s string
	if err := e.get(ctx, db, keys[0], &s); err != nil {
		t.Errorf("Get of a key holding \"\": %v (an empty value is a row, not ErrNoRows)", err)
	}
	var b []byte
	if err := e.get(ctx, db, keys[1], &b); err != nil {
		t.Errorf("Get of a key holding empty bytes: %v", err)
	} else if b == nil || len(b) != 0 {
		t.Errorf("empty bytes scanned into *[]byte: got %#v, want a non-nil empty slice", b)
	}
	var ns sqlish.Null[string]
	if err := e.get(ctx, db, keys[0], &ns); err != nil || !ns.Valid || ns.V != "" {
		t.Errorf("\"\" scanned into Null[string]: %+v, %v; want Valid and empty", ns, err)
	}

	// GetMany: one row per key, scanned into *any, Null[string], *[]byte.
	scanAll := func(target string, scan func(*sqlish.Rows) (any, error)) []any {
		q, args := e.d.GetMany(keys...)
		rows, err := db.Query(ctx, q, args...)
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		defer rows.Close()
		var out []any
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				t.Fatalf("GetMany row %d: Scan into %s: %v", len(out), target, err)
			}
			out = append(out, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("GetMany rows: %v", err)
		}
		if len(out) != len(keys) {
			t.Fatalf("GetMany of %d keys returned %d rows; want one row per key", len(keys), len(out))
		}
		return out
	}
	anys := scanAll("*any", func(r *sqlish.Rows) (any, error) { var v any; err := r.Scan(&v); return v, err })
	nulls := scanAll("*Null[string]", func(r *sqlish.Rows) (any, error) { var v sqlish.Null[string]; err := r.Scan(&v); return v, err })
	bs := scanAll("*[]byte", func(r *sqlish.Rows) (any, error) { var v []byte; err := r.Scan(&v); return v, err })
	for i := range 2 {
		if n := nulls[i].(sqlish.Null[string]); !n.Valid || n.V != "" {
			t.Errorf("GetMany row %d (an empty value): Null[string] = %+v, want Valid and empty", i, n)
		}
		if anys[i] == nil {
			t.Errorf("GetMany row %d (an empty value): *any is nil; nil is for missing values", i)
		}
		if b := bs[i].([]byte); b == nil || len(b) != 0 {
			t.Errorf("GetMany row %d (an empty value): *[]byte = %#v, want a non-nil empty slice", i, b)
		}
	}
	if n := nulls[2].(sqlish.Null[string]); n.Valid {
		t.Errorf("GetMany row 2 (a missing key): Null[string] = %+v, want not Valid", n)
	}
	if anys[2] != nil {
		t.Errorf("GetMany row 2 (a missing key): *any = %#v, want nil", anys[2])
	}
	if b := bs[2].([]byte); b != nil {
		t.Errorf("GetMany row 2 (a missing key): *[]byte = %#v, want nil", b)
	}
}

type myString string
type myInt int16

type scanRecorder struct{ got any }

func (s *scanRecorder) Scan(src any) error {
	if b, ok := src.([]byte); ok {
		src = string(b)
	}
	s.got = src
	return nil
}

func checkScanTargets(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	k := e.key()
	e.set(ctx, db, k, int64(42))
	targets := []struct {
		name string
		dest any
		want func() any
		val  func(any) any
	}{
		{"*string", new(string), func() any { return "42" }, nil},
		{"*[]byte", new([]byte), func() any { return "42" }, func(v any) any { return string(*v.(*[]byte)) }},
		{"*int", new(int), func() any { return 42 }, nil},
		{"*int8", new(int8), func() any { return int8(42) }, nil},
		{"*int16", new(int16), func() any { return int16(42) }, nil},
		{"*int32", new(int32), func() any { return int32(42) }, nil},
		{"*int64", new(int64), func() any { return int64(42) }, nil},
		{"*uint", new(uint), func() any { return uint(42) }, nil},
		{"*uint8", new(uint8), func() any { return uint8(42) }, nil},
		{"*uint16", new(uint16), func() any { return uint16(42) }, nil},
		{"*uint32", new(uint32), func() any { return uint32(42) }, nil},
		{"*uint64", new(uint64), func() any { return uint64(42) }, nil},
		{"*float32", new(float32), func() any { return float32(42) }, nil},
		{"*float64", new(float64), func() any { return float64(42) }, nil},
		{"*myString", new(myString), func() any { return myString("42") }, nil},
		{"*myInt", new(myInt), func() any { return myInt(42) }, nil},
		{"*Null[int64]", new(sqlish.Null[int64]), func() any { return sqlish.Null[int64]{V: 42, Valid: true} }, nil},
		{"*Null[string]", new(sqlish.Null[string]), func() any { return sqlish.Null[string]{V: "42", Valid: true} }, nil},
		{"*any", new(any), func() any { return "42" }, func(v any) any {
			switch x := (*v.(*any)).(type) {
			case []byte:
				return string(x)
			case int64:
				return fmt.Sprint(x)
			default:
				return x
			}
		}},
		{"Scanner", new(scanRecorder), func() any { return "42" }, func(v any) any { return fmt.Sprint(v.(*scanRecorder).got) }},
	}
	for _, tc := range targets {
		if err := e.get(ctx, db, k, tc.dest); err != nil {
			t.Errorf("Scan 42 into %s: %v", tc.name, err)
			continue
		}
		var got any
		if tc.val != nil {
			got = tc.val(tc.dest)
		} else {
			got = derefAny(tc.dest)
		}
		if want := tc.want(); got != want {
			t.Errorf("Scan 42 into %s: got %#v, want %#v", tc.name, got, want)
		}
	}
	var small int8
	e.set(ctx, db, k, int64(1000))
	if err := e.get(ctx, db, k, &small); err == nil {
		t.Errorf("Scan 1000 into *int8 succeeded with %d; want an overflow error", small)
	}
	e.set(ctx, db, k, true)
	var bl bool
	if err := e.get(ctx, db, k, &bl); err != nil || !bl {
		t.Errorf("Scan true into *bool: %v, %v", bl, err)
	}
	// A nil value into a non-nullable destination is an error, not "".
	keys := e.colocated(1)
	q, args := e.d.GetMany(keys...)
	var s string
	if err := db.QueryRow(ctx, q, args...).Scan(&s); err == nil {
		t.Errorf("Scan of a missing value (GetMany) into *string succeeded with %q; want an error", s)
	}
}

func derefAny(p any) any {
	switch v := p.(type) {
	case *string:
		return *v
	case *int:
		return *v
	case *int8:
		return *v
	case *int16:
		return *v
	case *int32:
		return *v
	case *int64:
		return *v
	case *uint:
		return *v
	case *uint8:
		return *v
	case *uint16:
		return *v
	case *uint32:
		return *v
	case *uint64:
		return *v
	case *float32:
		return *v
	case *float64:
		return *v
	case *myString:
		return *v
	case *myInt:
		return *v
	case *sqlish.Null[int64]:
		return *v
	case *sqlish.Null[string]:
		return *v
	}
	return p
}

func checkErrNoRows(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	missing := e.key()
	var s string
	if err := e.get(ctx, db, missing, &s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Errorf("Get of a missing key: Scan = %v (value %q); want sqlish.ErrNoRows", errString(err), s)
	}
	var a any
	if err := e.get(ctx, db, missing, &a); !errors.Is(err, sqlish.ErrNoRows) {
		t.Errorf("Get of a missing key into *any: Scan = %v (value %#v); want sqlish.ErrNoRows", errString(err), a)
	}
	k := e.key()
	e.set(ctx, db, k, "x")
	q, args := e.d.Del(k)
	if _, err := db.Exec(ctx, q, args...); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if err := e.get(ctx, db, k, &s); !errors.Is(err, sqlish.ErrNoRows) {
		t.Errorf("Get of a deleted key: %v; want sqlish.ErrNoRows", errString(err))
	}
	q, args = e.d.Get(missing)
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		t.Fatalf("Query(Get missing): %v", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if n != 0 {
		t.Errorf("Query(Get missing) returned %d rows; want none", n)
	}
	if err := rows.Err(); err != nil {
		t.Errorf("Query(Get missing): Rows.Err = %v; want nil (no rows is not an error)", err)
	}
	rows.Close()
}

func checkRowsClose(t T, e *env) {
	db := e.connect("max_conns_per_node=1")
	ctx := e.ctx(20 * time.Second)
	keys := e.colocated(5)
	for i, k := range keys {
		e.set(ctx, db, k, fmt.Sprint("v", i))
	}
	for round := range 3 {
		q, args := e.d.GetMany(keys...)
		rows, err := db.Query(ctx, q, args...)
		if err != nil {
			t.Fatalf("round %d: GetMany: %v", round, err)
		}
		if !rows.Next() {
			t.Fatalf("round %d: GetMany of %d keys returned no row (err %v)", round, len(keys), rows.Err())
		}
		var s string
		if err := rows.Scan(&s); err != nil || s != "v0" {
			t.Errorf("round %d: first row = %q, %v; want v0", round, s, err)
		}
		if err := rows.Close(); err != nil {
			t.Errorf("round %d: Rows.Close mid-stream: %v", round, err)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("round %d: second Rows.Close panicked: %v", round, p)
				}
			}()
			if err := rows.Close(); err != nil {
				t.Errorf("round %d: second Rows.Close: %v", round, err)
			}
		}()
		if rows.Next() {
			t.Errorf("round %d: Rows.Next after Close returned true", round)
		}
		if err := rows.Scan(&s); err == nil {
			t.Errorf("round %d: Rows.Scan after Close succeeded", round)
		}
		// The only connection must be back: more statements run at once.
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var got string
		err = e.get(sctx, db, keys[1], &got)
		if err == nil && got != "v1" {
			err = fmt.Errorf("got %q, want v1", got)
		}
		if err == nil {
			q, args := e.d.Set(keys[0], "v0")
			_, err = db.Exec(sctx, q, args...)
		}
		cancel()
		if err != nil {
			t.Fatalf("round %d: after closing Rows mid-stream (max_conns_per_node=1) the next statement failed: %v", round, err)
		}
	}
}

func checkBatchOrder(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(30 * time.Second)
	const n = 16
	keys := make([]string, n)
	vals := make([]string, n)
	for i := range keys {
		keys[i] = e.key()
		vals[i] = fmt.Sprintf("batch-value-%d-%s", i, keys[i])
	}
	missing := e.key()
	b := &sqlish.Batch{}
	for i := range keys {
		q, args := e.d.Set(keys[i], vals[i])
		b.Queue(q, args...)
	}
	// Reads in another order than the writes, a missing key and a server
	// error in the middle.
	order := make([]int, 0, n)
	for i := n - 1; i >= 0; i -= 2 {
		order = append(order, i)
	}
	for i := 0; i < n; i += 2 {
		order = append(order, i)
	}
	for j, i := range order {
		q, args := e.d.Get(keys[i])
		b.Queue(q, args...)
		if j == n/2 {
			q, args := e.d.Get(missing)
			b.Queue(q, args...)
			q, args = e.d.ServerError()
			b.Queue(q, args...)
		}
	}
	br := db.SendBatch(ctx, b)
	defer br.Close()
	for i := range keys {
		if _, err := br.Exec(); err != nil {
			t.Errorf("batch statement %d (Set %s): %v", i, keys[i], err)
		}
	}
	type read struct {
		val string
		err error
	}
	var batched []read
	for j, i := range order {
		var s string
		err := br.QueryRow().Scan(&s)
		batched = append(batched, read{s, err})
		if err != nil || s != vals[i] {
			t.Errorf("batch result %d (Get of key %d): %q, %v; want %q (results must come back in queue order)", n+j, i, s, err, vals[i])
		}
		if j == n/2 {
			var s string
			if err := br.QueryRow().Scan(&s); !errors.Is(err, sqlish.ErrNoRows) {
				t.Errorf("batch: Get of a missing key: %q, %v; want ErrNoRows", s, err)
			}
			var se *sqlish.ServerError
			if _, err := br.Exec(); !errors.As(err, &se) {
				t.Errorf("batch: the failing statement: %v; want a *sqlish.ServerError for that statement only", errString(err))
			}
		}
	}
	if err := br.Close(); err != nil {
		t.Errorf("BatchResults.Close: %v", err)
	}
	// One by one, the same reads give the same answers.
	for j, i := range order {
		var s string
		err := e.get(ctx, db, keys[i], &s)
		if j < len(batched) && (s != batched[j].val || (err == nil) != (batched[j].err == nil)) {
			t.Errorf("Get of key %d one by one = %q, %v; in the batch it was %q, %v", i, s, err, batched[j].val, batched[j].err)
		}
	}
	// An empty batch is fine.
	if err := db.SendBatch(ctx, &sqlish.Batch{}).Close(); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func checkCancel(t T, e *env) {
	db := e.connect()
	slow := time.Second
	for _, mode := range []string{"deadline", "cancel"} {
		var ctx context.Context
		var cancel context.CancelFunc
		want := context.DeadlineExceeded
		const after = 150 * time.Millisecond
		if mode == "deadline" {
			ctx, cancel = context.WithTimeout(t.Context(), after)
		} else {
			ctx, cancel = context.WithCancel(t.Context())
			time.AfterFunc(after, cancel)
			want = context.Canceled
		}
		q, args := e.d.Slow(slow)
		start := time.Now()
		_, err := db.Exec(ctx, q, args...)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Errorf("%s: a %v statement cancelled after %v succeeded (took %s)", mode, slow, after, took.Round(time.Millisecond))
		} else if !errors.Is(err, want) {
			t.Errorf("%s: error %v does not wrap %v", mode, errString(err), want)
		}
		if took > after+slack {
			t.Errorf("%s: the cancelled statement returned after %s; want about %v", mode, took.Round(time.Millisecond), after)
		}
		// The next operation on the DB succeeds.
		nctx, ncancel := context.WithTimeout(t.Context(), 10*time.Second)
		k := e.key()
		q, args = e.d.Set(k, "after-cancel")
		_, err = db.Exec(nctx, q, args...)
		var s string
		if err == nil {
			err = e.get(nctx, db, k, &s)
		}
		ncancel()
		if err != nil || s != "after-cancel" {
			t.Errorf("%s: the operation after a cancelled one: %q, %v", mode, s, err)
		}
	}
}

func checkServerError(t T, e *env) {
	db := e.connect("max_conns_per_node=1")
	ctx := e.ctx(20 * time.Second)
	q, args := e.d.ServerError()
	for i, run := range []func() error{
		func() error { _, err := db.Exec(ctx, q, args...); return err },
		func() error { var a any; return db.QueryRow(ctx, q, args...).Scan(&a) },
	} {
		err := run()
		var se *sqlish.ServerError
		if !errors.As(err, &se) {
			t.Errorf("call %d: %q: %v; want a *sqlish.ServerError", i, q, errString(err))
			continue
		}
		if se.Msg == "" {
			t.Errorf("call %d: ServerError has no message", i)
		}
		// The connection stays usable.
		k := e.key()
		e.set(ctx, db, k, "ok")
		var s string
		if err := e.get(ctx, db, k, &s); err != nil || s != "ok" {
			t.Errorf("call %d: after a server error: %q, %v", i, s, err)
		}
	}
}

// driverConfig is the driver.Config sqlish would give the driver (TLS
// aside).
func driverConfig(c sqlish.Config) driver.Config {
	params := map[string]string{}
	for k, v := range c.Params {
		params[k] = v
	}
	return driver.Config{
		Scheme: c.Scheme, Hosts: slices.Clone(c.Hosts), User: c.User, Password: c.Password,
		Namespace: c.Namespace, ClusterName: c.ClusterName, AuthMode: string(c.AuthMode),
		Timeout: c.Timeout, Params: params,
		ReplicaReads: c.Policy.ReadPreference != sqlish.Primary,
	}
}
