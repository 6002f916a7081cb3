package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tendril-db/tendril/sqlish"
)

// env is what one check works with: the configuration and the DSN of the
// check.
type env struct {
	t   T
	cfg *Config
	d   Dialect

	once sync.Once
	base string
}

func newEnv(t T, cfg *Config) *env {
	e := &env{t: t, cfg: cfg, d: cfg.Dialect}
	e.dsn() // NewDSN now, so that Faults and ServerConns see this check's database
	return e
}

// dsn returns the check's DSN (NewDSN is called once per check) with the
// parameters appended.
func (e *env) dsn(params ...string) string {
	e.once.Do(func() {
		e.base = e.cfg.DSN
		if e.cfg.NewDSN != nil {
			e.base = e.cfg.NewDSN()
		}
	})
	return AppendParams(e.base, params...)
}

// AppendParams appends key=value query parameters to a DSN, after a "?" or
// an "&" as the DSN needs. A key given again overrides the earlier value.
func AppendParams(dsn string, params ...string) string {
	for _, p := range params {
		if p == "" {
			continue
		}
		switch {
		case !strings.Contains(dsn, "?"):
			dsn += "?" + p
		case strings.HasSuffix(dsn, "?") || strings.HasSuffix(dsn, "&"):
			dsn += p
		default:
			dsn += "&" + p
		}
	}
	return dsn
}

// replaceHosts returns dsn with its host list replaced.
func replaceHosts(dsn string, hosts []string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo = authority[:at+1]
	}
	return scheme + "://" + userinfo + strings.Join(hosts, ",") + tail
}

// withPassword returns dsn with user:password@ as its userinfo.
func withPassword(dsn, user, password string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	authority := rest[:end]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	return scheme + "://" + user + ":" + password + "@" + authority + rest[end:]
}

// connect opens a DB on the check's DSN plus params and waits for the
// cluster; it is closed at cleanup.
func (e *env) connect(params ...string) *sqlish.DB {
	e.t.Helper()
	dsn := e.dsn(params...)
	ctx, cancel := context.WithTimeout(e.t.Context(), 15*time.Second)
	defer cancel()
	db, err := sqlish.Connect(ctx, e.cfg.Driver, dsn)
	if err != nil {
		e.t.Fatalf("Connect(%q, %q): %v", e.cfg.Driver, redact(dsn), err)
	}
	e.t.Cleanup(func() { db.Close() })
	for _, q := range e.d.Setup {
		if _, err := db.Exec(ctx, q); err != nil {
			e.t.Fatalf("Dialect.Setup %q: %v", q, err)
		}
	}
	return db
}

// ctx returns a context bounded by d.
func (e *env) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), d)
	e.t.Cleanup(cancel)
	return ctx
}

// key returns a fresh key name.
func (e *env) key() string {
	i := int(keySeq.Add(1))
	if e.d.Key != nil {
		return e.d.Key(i)
	}
	return "tendril-conformance:" + strconv.Itoa(i)
}

// colocated returns n fresh key names GetMany may read together.
func (e *env) colocated(n int) []string {
	if e.d.Colocated == nil {
		out := make([]string, n)
		for i := range out {
			out[i] = e.key()
		}
		return out
	}
	group := "tendril-conformance-g" + strconv.FormatInt(keySeq.Add(1), 10)
	out := make([]string, n)
	for i := range out {
		out[i] = e.d.Colocated(group, i)
	}
	return out
}

// set writes key=value or fails the check.
func (e *env) set(ctx context.Context, db *sqlish.DB, key string, value any) {
	e.t.Helper()
	q, args := e.d.Set(key, value)
	if _, err := db.Exec(ctx, q, args...); err != nil {
		e.t.Fatalf("Set(%q): Exec(%q): %v", key, q, err)
	}
}

// get reads key into dest.
func (e *env) get(ctx context.Context, db *sqlish.DB, key string, dest ...any) error {
	q, args := e.d.Get(key)
	return db.QueryRow(ctx, q, args...).Scan(dest...)
}

// serverConns returns the connections the server sees, or -1.
func (e *env) serverConns() int {
	if e.cfg.ServerConns == nil {
		return -1
	}
	return e.cfg.ServerConns()
}

// eventually polls cond every 10ms until it holds or d passed.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeAddrs returns the addresses of the DB's nodes.
func nodeAddrs(db *sqlish.DB) []string {
	var out []string
	for _, n := range db.Nodes() {
		out = append(out, n.Addr)
	}
	return out
}

// names reports whether err names the node at addr.
func names(err error, addr string) bool {
	var ne *sqlish.NodeError
	if errors.As(err, &ne) && (ne.Addr == addr || ne.Node == addr) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), addr)
}

// redact hides a DSN's password in messages.
func redact(dsn string) string {
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil || cfg.Password == "" {
		return dsn
	}
	return cfg.String()
}

// closedPorts returns n local addresses nothing listens on.
func closedPorts(n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		out = append(out, l.Addr().String())
		l.Close()
	}
	return out
}

// silentListener accepts connections and never answers; it is closed at
// cleanup.
func silentListener(t T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// hangAll hangs every node for d and unhangs them at cleanup.
func (e *env) hangAll(d time.Duration) []string {
	e.t.Helper()
	f := e.cfg.Faults
	// Reach the database once first: a backend may only exist (or know
	// its nodes) once connected to.
	e.connect().Close()
	nodes := f.Nodes()
	for _, a := range nodes {
		if err := f.Hang(a, d); err != nil {
			e.t.Fatalf("Faults.Hang(%s): %v", a, err)
		}
	}
	e.t.Cleanup(func() { e.unhang(nodes...) })
	return nodes
}

func (e *env) unhang(addrs ...string) {
	for _, a := range addrs {
		if err := e.cfg.Faults.Unhang(a); err != nil {
			e.t.Errorf("Faults.Unhang(%s): %v", a, err)
		}
	}
}

func (e *env) needFaults() *Faults {
	e.t.Helper()
	if e.cfg.Faults == nil {
		e.t.Skipf("needs Config.Faults (fault hooks)")
	}
	return e.cfg.Faults
}

func since(start time.Time) string { return time.Since(start).Round(time.Millisecond).String() }

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v (%T)", err, err)
}
