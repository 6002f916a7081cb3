package memory

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
)

func connect(t *testing.T, name string) (driver.Connector, driver.Conn) {
	t.Helper()
	c, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cl := Lookup(name); cl != nil {
			cl.Close()
		}
	})
	cn, err := c.Connect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.Close() })
	return c, cn
}

func TestUnknownParam(t *testing.T) {
	_, err := Driver{}.OpenConnector(driver.Config{Params: map[string]string{"bogus": "3"}})
	var pe *driver.ParamError
	if !errors.As(err, &pe) || pe.Key != "bogus" || pe.Reason != "unknown key" {
		t.Fatalf("got %v", err)
	}
}

func TestDeclaredCapsAreImplemented(t *testing.T) {
	c, cn := connect(t, "caps")
	declared := c.Backend().Caps &^ driver.CapClusterName
	if got := driver.Implemented(cn); got != declared {
		t.Fatalf("declared %v, implemented %v", declared, got)
	}
	if c.Backend().System != "memory" {
		t.Fatalf("system %q", c.Backend().System)
	}
}

func TestConnLifecycle(t *testing.T) {
	_, cn := connect(t, "lifecycle")
	s := Lookup("lifecycle")
	if s == nil || s.Name() != "lifecycle" || s.OpenConns() != 1 || s.Dials() != 1 {
		t.Fatalf("server %+v", s)
	}
	if Lookup("never-used") != nil {
		t.Fatal("Lookup created a server")
	}
	cn.Close()
	cn.Close()
	if s.OpenConns() != 0 {
		t.Fatalf("%d open after Close", s.OpenConns())
	}
	if cn.(driver.Validator).IsValid() {
		t.Fatal("closed conn valid")
	}
	if _, err := cn.Exec(context.Background(), "PING", nil); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("Exec on closed conn: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := Driver{}.OpenConnector(driver.Config{})
	if _, err := c.Connect(ctx, "lifecycle"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with cancelled ctx: %v", err)
	}
}

func TestExecQuery(t *testing.T) {
	ctx := context.Background()
	_, cn := connect(t, "execquery")
	res, err := cn.Exec(ctx, "MSET ? ? b 2", []driver.Value{"a", int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("MSET affected %d", n)
	}
	rows, err := cn.Query(ctx, "MGET a b c", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []driver.Value
	dest := make([]driver.Value, 1)
	for rows.Next(dest) != io.EOF {
		got = append(got, dest[0])
	}
	if len(got) != 3 || string(got[0].([]byte)) != "1" || got[2] != nil {
		t.Fatalf("MGET rows %v", got)
	}
	_, err = cn.Exec(ctx, "HGET a f", nil)
	var se *driver.ServerError
	if !errors.As(err, &se) || se.Code != "WRONGTYPE" {
		t.Fatalf("HGET on a string: %v", err)
	}
	if _, err := cn.Exec(ctx, `SET "unclosed`, nil); err == nil || !strings.Contains(err.Error(), "unbalanced") {
		t.Fatalf("bad statement: %v", err)
	}
}

func TestDebugSleepHonoursContext(t *testing.T) {
	_, cn := connect(t, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := cn.Exec(ctx, "DEBUG SLEEP 10", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	if _, err := cn.Exec(context.Background(), "DEBUG SLEEP 0.001", nil); err != nil {
		t.Fatal(err)
	}
	_, err := cn.Exec(context.Background(), "DEBUG SLEEP x", nil)
	var se *driver.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("DEBUG SLEEP x: %v", err)
	}
	if !cn.(driver.Validator).IsValid() {
		t.Fatal("a cancelled statement invalidated the connection")
	}
}

func TestBatch(t *testing.T) {
	_, cn := connect(t, "batch")
	res := make([]driver.BatchResult, 5)
	err := cn.(driver.Batcher).Batch(context.Background(), []driver.Stmt{
		{Query: "SET k v"}, {Query: "GET k"}, {Query: "INCR k"}, {Query: `GET "x`}, {Query: "PING"},
	}, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 || res[0].Err != nil || res[1].Err != nil || res[4].Err != nil {
		t.Fatalf("results %+v", res)
	}
	var se *driver.ServerError
	if !errors.As(res[2].Err, &se) || res[3].Err == nil {
		t.Fatalf("per-statement errors: %v / %v", res[2].Err, res[3].Err)
	}
}

func TestInfoAndProbe(t *testing.T) {
	ctx := context.Background()
	_, cn := connect(t, "probe")
	for _, cmd := range []string{"", "server", "INFO server", "info keyspace"} {
		text, err := cn.(driver.Infoer).Info(ctx, cmd)
		if err != nil || !strings.HasPrefix(text, "# ") {
			t.Errorf("Info(%q) = %q, %v", cmd, text, err)
		}
	}
	if err := cn.(driver.Pinger).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p := cn.(driver.Prober)
	st, err := p.Probe(ctx)
	if err != nil || st.ClusterName != "probe" || st.Role != driver.RolePrimary || !st.Healthy || st.ID == "" {
		t.Fatalf("Probe = %+v, %v", st, err)
	}
	peers, err := p.Peers(ctx)
	if err != nil || len(peers) != 1 || peers[0].ID != st.ID || peers[0].Addr != "probe:7001" || peers[0].AltAddr != "alt-probe:7001" {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}
	pm, err := p.PartitionMap(ctx)
	if err != nil || pm.Partitions != 16384 || len(pm.Shards) != 1 || pm.Shards[0].Ranges[0] != [2]int{0, 16383} {
		t.Fatalf("PartitionMap = %+v, %v", pm, err)
	}
}
