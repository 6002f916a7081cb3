package conformance

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/goleak"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

func checkMaxConns(t T, e *env) {
	const maxConns = 3
	baseline := e.serverConns()
	db := e.connect(fmt.Sprintf("max_conns_per_node=%d", maxConns), "max_connecting=4")
	ctx := e.ctx(60 * time.Second)
	nodes := len(db.Nodes())
	keys := make([]string, 32)
	for i := range keys {
		keys[i] = e.key()
		e.set(ctx, db, keys[i], i)
	}

	var (
		stop       = make(chan struct{})
		samplers   sync.WaitGroup
		mu         sync.Mutex
		poolMax    = map[string]int32{}
		serverMax  int
		overPool   int // samples where the server saw more than pools + probes
		overSample string
	)
	samplers.Add(1)
	go func() { // pool gauges per node
		defer samplers.Done()
		for {
			for _, n := range db.Stats().Nodes {
				mu.Lock()
				poolMax[n.Addr] = max(poolMax[n.Addr], n.Pool.Total)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	if baseline >= 0 {
		samplers.Add(1)
		go func() { // the server's view against the pools'
			defer samplers.Done()
			for {
				sc := e.serverConns()
				st := db.Stats()
				mu.Lock()
				serverMax = max(serverMax, sc)
				// Each node has at most its pool's connections plus the
				// tender's probe connection.
				if allowed := baseline + st.Open + len(st.Nodes); sc > allowed {
					overPool++
					overSample = fmt.Sprintf("the server saw %d connections while the pools held %d over %d nodes (baseline %d, +1 probe connection per node)",
						sc, st.Open, len(st.Nodes), baseline)
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
	}

	const callers = 200
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Value
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				k := keys[(g+i)%len(keys)]
				var err error
				switch i {
				case 0, 2:
					var n int
					err = e.get(ctx, db, k, &n)
				case 1:
					q, args := e.d.Set(k, g)
					_, err = db.Exec(ctx, q, args...)
				case 3:
					if g%4 == 0 {
						q, args := e.d.Slow(5 * time.Millisecond)
						_, err = db.Exec(ctx, q, args...)
					}
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	samplers.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d operations failed under %d callers with max_conns_per_node=%d; first: %v",
			n, callers*4, callers, maxConns, firstErr.Load())
	}
	for addr, m := range poolMax {
		if m > maxConns {
			t.Errorf("node %s: %d connections open at once; max_conns_per_node=%d", addr, m, maxConns)
		}
	}
	if baseline >= 0 {
		if limit := baseline + nodes*(maxConns+1); serverMax > limit {
			t.Errorf("the server saw up to %d connections: more than %d nodes × (max_conns_per_node %d + 1 probe) + %d before the run",
				serverMax, nodes, maxConns, baseline)
		}
		// A few samples may race a dial or a close; a connection opened
		// behind the pool's back shows in many.
		if overPool >= 3 {
			t.Errorf("in %d samples the server saw more connections than the pools hold (a driver opening connections behind the pool?); e.g. %s", overPool, overSample)
		}
	}
}

func checkMinConns(t T, e *env) {
	baseline := e.serverConns()
	db := e.connect("min_conns_per_node=2", "max_conns_per_node=4", "idle_timeout=100ms")
	var last sqlish.Stats
	enough := func() bool {
		last = db.Stats()
		if len(last.Nodes) == 0 {
			return false
		}
		for _, n := range last.Nodes {
			if n.Pool.Total < 2 {
				return false
			}
		}
		return true
	}
	if !eventually(5*time.Second, enough) {
		t.Fatalf("min_conns_per_node=2 not reached within 5s: %s", poolSummary(last))
	}
	if baseline >= 0 {
		want := baseline + 2*len(last.Nodes)
		if !eventually(2*time.Second, func() bool { return e.serverConns() >= want }) {
			t.Errorf("pools report min_conns_per_node=2 on %d nodes, but the server sees %d connections (want at least %d)",
				len(last.Nodes), e.serverConns(), want)
		}
	}
	// Kept past several idle timeouts.
	time.Sleep(500 * time.Millisecond)
	if !enough() {
		t.Errorf("after 5 idle timeouts, a pool fell below min_conns_per_node=2: %s", poolSummary(last))
	}
}

func poolSummary(s sqlish.Stats) string {
	var parts []string
	for _, n := range s.Nodes {
		parts = append(parts, fmt.Sprintf("%s: total %d idle %d in use %d", n.Addr, n.Pool.Total, n.Pool.Idle, n.Pool.InUse))
	}
	if len(parts) == 0 {
		return "no nodes"
	}
	return strings.Join(parts, "; ")
}

func checkIdleTimeout(t T, e *env) {
	baseline := e.serverConns()
	db := e.connect("idle_timeout=150ms", "max_conns_per_node=8")
	ctx := e.ctx(30 * time.Second)
	var peak atomic.Int32
	stop := make(chan struct{})
	go func() {
		for {
			peak.Store(max(peak.Load(), int32(db.Stats().Open)))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, args := e.d.Slow(30 * time.Millisecond)
			if _, err := db.Exec(ctx, q, args...); err != nil {
				t.Errorf("Slow: %v", err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	// The sampler may miss a short burst on a loaded machine; the pools'
	// own counters do not.
	var created int64
	for _, n := range db.Stats().Nodes {
		created += n.Pool.Created
	}
	if created == 0 {
		t.Fatalf("no pool connection was ever opened")
	}
	var st sqlish.Stats
	if !eventually(3*time.Second, func() bool { st = db.Stats(); return st.Open == 0 }) {
		t.Fatalf("idle_timeout=150ms: %d connections still open 3s after the work ended (peak %d): %s",
			st.Open, peak.Load(), poolSummary(st))
	}
	if baseline >= 0 {
		nodes := len(db.Nodes())
		want := baseline + nodes // the tender's probe connections stay
		if !eventually(3*time.Second, func() bool { return e.serverConns() <= want }) {
			t.Errorf("the pools closed their idle connections but the server still sees %d (want at most %d: %d before + %d probe connections): the driver's Close does not close",
				e.serverConns(), want, baseline, nodes)
		}
	}
}

var durationRE = regexp.MustCompile(`\d+(\.\d+)?(ns|µs|us|ms|s|m)\b`)

func checkPoolTimeout(t T, e *env) {
	// One connection per node; a pinned Conn holds one node's, then
	// statements to that node must time out naming it and the wait.
	db := e.connect("max_conns_per_node=1", "read_preference=prefer_replica", "max_retries=0")
	ctx := e.ctx(20 * time.Second)
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("Conn: %v", err)
	}
	defer cn.Close()
	// A statement binds the Conn (on a partitioned backend it takes its
	// connection with its first keyed statement).
	q, args := e.d.Set(e.key(), "pinned")
	if _, err := cn.Exec(ctx, q, args...); err != nil {
		t.Fatalf("Conn.Exec: %v", err)
	}
	addrs := nodeAddrs(db)
	var (
		mu       sync.Mutex
		timeouts []error
		others   []error
	)
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := e.key()
			octx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			var err error
			if i%2 == 0 {
				q, args := e.d.Set(k, "x")
				_, err = db.Exec(octx, q, args...)
			} else {
				var s string
				if err = e.get(octx, db, k, &s); errors.Is(err, sqlish.ErrNoRows) {
					err = nil
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case errors.Is(err, sqlish.ErrPoolTimeout):
				timeouts = append(timeouts, err)
			default:
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if len(timeouts) == 0 {
		t.Fatalf("with the only connection of a node held by a Conn, no statement got sqlish.ErrPoolTimeout (other errors: %v)", others)
	}
	for _, err := range others {
		t.Errorf("want nil or ErrPoolTimeout, got %v", errString(err))
	}
	err = timeouts[0]
	named := false
	for _, a := range addrs {
		named = named || names(err, a)
	}
	if !named {
		t.Errorf("pool timeout error does not name the node (one of %v): %v", addrs, err)
	}
	if !durationRE.MatchString(err.Error()) {
		t.Errorf("pool timeout error does not say how long it waited: %v", err)
	}
	// Released, the connection serves again.
	cn.Close()
	k := e.key()
	e.set(ctx, db, k, "after")
}

func checkCloseInFlight(t T, e *env) {
	baseline := e.serverConns()
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	done := make(chan error, 1)
	q, args := e.d.Slow(400 * time.Millisecond)
	start := time.Now()
	go func() {
		_, err := db.Exec(ctx, q, args...)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	closeStart := time.Now()
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Close may wait for work in flight (a multiplexed connection drains
	// its requests) but must not hang on it.
	if took := time.Since(closeStart); took > 2*time.Second {
		t.Errorf("Close took %s with a 400ms statement in flight", took.Round(time.Millisecond))
	} else if took > 100*time.Millisecond {
		t.Logf("Close took %s with a 400ms statement in flight", took.Round(time.Millisecond))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("a statement in flight when Close was called failed: %v (Close must not cut work in flight)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a statement in flight when Close was called did not finish within 10s")
	}
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Errorf("the in-flight 400ms statement returned after %s: cut short?", d.Round(time.Millisecond))
	}
	if !eventually(3*time.Second, func() bool { return db.Stats().Open == 0 }) {
		t.Errorf("after Close and the end of the work in flight, the pools still hold connections: %s", poolSummary(db.Stats()))
	}
	if baseline >= 0 && !eventually(3*time.Second, func() bool { return e.serverConns() <= baseline }) {
		t.Errorf("after Close the server still sees %d connections (%d before Open)", e.serverConns(), baseline)
	}
}

func checkClosedErrors(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(10 * time.Second)
	k := e.key()
	e.set(ctx, db, k, "x")
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v (Close must be idempotent)", err)
	}
	expect := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, sqlish.ErrClosed) {
			t.Errorf("%s after Close: %v; want sqlish.ErrClosed", what, errString(err))
		}
	}
	q, args := e.d.Set(k, "y")
	_, err := db.Exec(ctx, q, args...)
	expect("Exec", err)
	q, args = e.d.Get(k)
	_, err = db.Query(ctx, q, args...)
	expect("Query", err)
	var s string
	expect("QueryRow.Scan", db.QueryRow(ctx, q, args...).Scan(&s))
	expect("Ping", db.Ping(ctx))
	_, err = db.Conn(ctx)
	expect("Conn", err)
	b := &sqlish.Batch{}
	b.Queue(q, args...)
	_, err = db.SendBatch(ctx, b).Exec()
	expect("SendBatch", err)
	if e.cfg.Caps.Has(driver.CapInfo) {
		_, err = db.InfoAll(ctx, "")
		expect("InfoAll", err)
	}
	if e.cfg.Caps.Has(driver.CapTx) {
		_, err = db.BeginTx(ctx, driver.TxOptions{})
		expect("BeginTx", err)
	}
	if db.IsConnected() {
		t.Errorf("IsConnected is true after Close")
	}
}

func checkCloseNoLeaks(t T, e *env) {
	ignore := goleak.IgnoreCurrent()
	baseline := e.serverConns()
	db := e.connect("min_conns_per_node=1", "tend_interval=50ms")
	ctx := e.ctx(20 * time.Second)
	// Some of everything: statements, rows, a batch, a pinned Conn, a
	// cancelled statement.
	keys := e.colocated(3)
	for _, k := range keys {
		e.set(ctx, db, k, "v")
	}
	q, args := e.d.GetMany(keys...)
	if rows, err := db.Query(ctx, q, args...); err == nil {
		rows.Next()
		rows.Close()
	} else {
		t.Errorf("GetMany: %v", err)
	}
	b := &sqlish.Batch{}
	for _, k := range keys {
		q, args := e.d.Get(k)
		b.Queue(q, args...)
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		t.Errorf("SendBatch: %v", err)
	}
	if cn, err := db.Conn(ctx); err == nil {
		cn.Close()
	} else {
		t.Errorf("Conn: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	q, args = e.d.Slow(300 * time.Millisecond)
	db.Exec(cctx, q, args...)
	cancel()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s string
			e.get(ctx, db, keys[0], &s)
		}()
	}
	wg.Wait()
	// A cancelled statement may still hold the server for a moment.
	time.Sleep(300 * time.Millisecond)
	db.Close()
	if !eventually(3*time.Second, func() bool { return db.Stats().Open == 0 }) {
		t.Errorf("after Close the pools still hold connections: %s", poolSummary(db.Stats()))
	}
	if baseline >= 0 && !eventually(3*time.Second, func() bool { return e.serverConns() <= baseline }) {
		t.Errorf("after Close the server still sees %d connections (%d before Open): connections leak", e.serverConns(), baseline)
	}
	// goleak.Find retries for about 2s; allow a few rounds of it.
	var err error
	for range 3 {
		if err = goleak.Find(ignore); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
}

// noInterface are the capabilities without an interface.
const noInterface = driver.CapClusterName | driver.CapMultiplex | driver.CapRequestTimeout

func checkCapsDeclared(t T, e *env) {
	cfg, err := sqlish.ParseDSN(e.dsn())
	if err != nil {
		t.Fatalf("ParseDSN: %v", err)
	}
	drv, ok := driver.Lookup(e.cfg.Driver)
	if !ok {
		t.Fatalf("driver %q is not registered", e.cfg.Driver)
	}
	connector, err := drv.OpenConnector(driverConfig(cfg))
	if err != nil {
		t.Fatalf("OpenConnector: %v", err)
	}
	got := connector.Backend().Caps
	if got != e.cfg.Caps {
		t.Errorf("Backend().Caps = %v; Config.Caps declares %v (missing from the driver: %v; not in Config.Caps: %v)",
			got, e.cfg.Caps, e.cfg.Caps&^got, got&^e.cfg.Caps)
	}
	if sys := connector.Backend().System; sys == "" {
		t.Errorf("Backend().System is empty")
	}
}

func checkCapsImplemented(t T, e *env) {
	db := e.connect()
	addrs := nodeAddrs(db)
	if len(addrs) == 0 {
		t.Fatalf("no nodes after Connect")
	}
	cfg, _ := sqlish.ParseDSN(e.dsn())
	drv, _ := driver.Lookup(e.cfg.Driver)
	connector, err := drv.OpenConnector(driverConfig(cfg))
	if err != nil {
		t.Fatalf("OpenConnector: %v", err)
	}
	declared := connector.Backend().Caps
	ctx := e.ctx(10 * time.Second)
	cn, err := connector.Connect(ctx, addrs[0])
	if err != nil {
		t.Fatalf("Connector.Connect(%s): %v", addrs[0], err)
	}
	defer cn.Close()
	impl := driver.Implemented(cn)
	want := declared &^ noInterface
	if missing := want &^ impl; missing != 0 {
		t.Errorf("the driver declares %v but its Conn (%T) does not implement the interfaces of %v", declared, cn, missing)
	}
	if extra := impl &^ want; extra != 0 {
		t.Errorf("the driver's Conn (%T) implements %v without declaring it (declared: %v): declared capabilities must equal implemented ones", cn, extra, declared)
	}
}

func checkCapsNotSupported(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(10 * time.Second)
	caps := db.Backend().Caps
	tested := false
	if !caps.Has(driver.CapTx) {
		tested = true
		if _, err := db.BeginTx(ctx, driver.TxOptions{}); !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("BeginTx without CapTx: %v; want sqlish.ErrNotSupported", errString(err))
		}
		if cn, err := db.Conn(ctx); err != nil {
			t.Errorf("Conn: %v", err)
		} else {
			if _, err := cn.BeginTx(ctx, driver.TxOptions{}); !errors.Is(err, sqlish.ErrNotSupported) {
				t.Errorf("Conn.BeginTx without CapTx: %v; want sqlish.ErrNotSupported", errString(err))
			}
			cn.Close()
		}
	}
	if !caps.Has(driver.CapInfo) {
		tested = true
		if _, err := db.InfoAll(ctx, ""); !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("InfoAll without CapInfo: %v; want sqlish.ErrNotSupported", errString(err))
		}
		if _, err := db.InfoRandomNode(ctx, ""); !errors.Is(err, sqlish.ErrNotSupported) {
			t.Errorf("InfoRandomNode without CapInfo: %v; want sqlish.ErrNotSupported", errString(err))
		}
	}
	if !caps.Has(driver.CapClusterName) {
		tested = true
		db, err := sqlish.Open(e.cfg.Driver, e.dsn("cluster_name=tendril-conformance"))
		if err == nil {
			db.Close()
			t.Errorf("Open with cluster_name succeeded although the driver has no CapClusterName")
		} else if !strings.Contains(err.Error(), "cluster_name") {
			t.Errorf("Open with cluster_name without CapClusterName: error %v does not name cluster_name", err)
		}
	}
	if !tested {
		t.Logf("every capability with a user API is declared (%v)", caps)
	}
}

func checkCapsWork(t T, e *env) {
	db := e.connect()
	ctx := e.ctx(20 * time.Second)
	caps := db.Backend().Caps
	if caps.Has(driver.CapPing) {
		if err := db.Ping(ctx); err != nil {
			t.Errorf("CapPing: Ping: %v", err)
		}
	}
	if caps.Has(driver.CapInfo) {
		info, err := db.InfoAll(ctx, "")
		if err != nil {
			t.Errorf("CapInfo: InfoAll: %v", err)
		}
		for _, a := range nodeAddrs(db) {
			if strings.TrimSpace(info[a]) == "" {
				t.Errorf("CapInfo: InfoAll has no answer for node %s (answers: %d)", a, len(info))
			}
		}
		if s, err := db.InfoRandomNode(ctx, ""); err != nil || s == "" {
			t.Errorf("CapInfo: InfoRandomNode: %q, %v", trunc([]byte(s)), err)
		}
	}
	if caps.Has(driver.CapTx) {
		tx, err := db.BeginTx(ctx, driver.TxOptions{})
		if err != nil {
			t.Errorf("CapTx: BeginTx: %v", err)
		} else {
			// A statement begins the transaction on the server (on a
			// partitioned backend, on its partition's node).
			q, args := e.d.Set(e.key(), "tx")
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				t.Errorf("CapTx: a statement in a transaction: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Errorf("CapTx: Commit: %v", err)
			}
			if err := tx.Rollback(ctx); !errors.Is(err, sqlish.ErrTxDone) {
				t.Errorf("CapTx: Rollback after Commit: %v; want ErrTxDone", err)
			}
		}
		if tx, err := db.BeginTx(ctx, driver.TxOptions{}); err != nil {
			t.Errorf("CapTx: second BeginTx: %v", err)
		} else if err := tx.Rollback(ctx); err != nil {
			t.Errorf("CapTx: Rollback: %v", err)
		}
	}
	if caps.Has(driver.CapTopology) {
		nodes := db.Nodes()
		roles := 0
		for _, n := range nodes {
			if n.Role == "primary" {
				roles++
			}
		}
		if roles == 0 {
			t.Errorf("CapTopology: no node is reported as a primary: %v", nodes)
		}
	}
	if caps.Has(driver.CapClusterName) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		db, err := sqlish.Connect(wctx, e.cfg.Driver, e.dsn("cluster_name=tendril-conformance-wrong-name"))
		if err == nil {
			db.Close()
			t.Errorf("CapClusterName: Connect with a wrong cluster_name succeeded")
		} else if !errors.Is(err, sqlish.ErrClusterNameMismatch) {
			t.Errorf("CapClusterName: Connect with a wrong cluster_name: %v; want ErrClusterNameMismatch", err)
		}
	}
	// Batches work with or without CapBatch (sqlish falls back).
	b := &sqlish.Batch{}
	k := e.key()
	q, args := e.d.Set(k, "b")
	b.Queue(q, args...)
	q, args = e.d.Get(k)
	b.Queue(q, args...)
	br := db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Errorf("SendBatch Set: %v", err)
	}
	var s string
	if err := br.QueryRow().Scan(&s); err != nil || s != "b" {
		t.Errorf("SendBatch Get: %q, %v", s, err)
	}
	br.Close()
}
