package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// rotating is a credentials provider whose answer the test changes.
type rotating struct {
	cur   atomic.Pointer[[2]string]
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func newRotating(user, password string) *rotating {
	r := &rotating{}
	r.set(user, password)
	return r
}

func (r *rotating) set(user, password string) { r.cur.Store(&[2]string{user, password}) }

func (r *rotating) Credentials(ctx context.Context) (string, string, error) {
	r.calls.Add(1)
	if err := r.err.Load(); err != nil {
		return "", "", *err
	}
	c := r.cur.Load()
	return c[0], c[1], nil
}

// syncBuffer is a bytes.Buffer for a logger written from many goroutines,
// and a recorder of the spans of the DBs that log into it.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	spans *tracetest.SpanRecorder
}

// tracer returns a TracerProvider recording into s.
func (s *syncBuffer) tracer() *sdktrace.TracerProvider {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spans == nil {
		s.spans = tracetest.NewSpanRecorder()
	}
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.spans))
}

// spanText is everything the recorded spans say.
func (s *syncBuffer) spanText() string {
	s.mu.Lock()
	rec := s.spans
	s.mu.Unlock()
	if rec == nil {
		return ""
	}
	var b strings.Builder
	for _, sp := range rec.Ended() {
		fmt.Fprintf(&b, "%s %v %v %v\n", sp.Name(), sp.Attributes(), sp.Status(), sp.Events())
	}
	return b.String()
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clients returns the server's client connections (but the one asking)
// by id, with the user each is logged in as.
func clients(t *testing.T, srv *redistest.Server) map[string]string {
	t.Helper()
	out, err := srv.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["cmd"] != "client|list" {
			m[f["id"]] = f["user"]
		}
	}
	return m
}

// openWith connects a DB to srv whose credentials come from p, logging
// everything into logs.
func openWith(t *testing.T, srv *redistest.Server, p sqlish.Credentials, logs *syncBuffer, params string) (*sqlish.DB, error) {
	t.Helper()
	cfg, err := sqlish.ParseDSN("redis://" + srv.Addr + "?" + params)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = p
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.Level(-8)}))
	cfg.LogLevel = sqlish.LogTrace
	cfg.TracerProvider = logs.tracer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlish.ConnectConfig(ctx, "redis", cfg)
	if err == nil {
		t.Cleanup(func() { db.Close() })
	}
	return db, err
}

// TestCredentialsRotate: a provider's credentials replace the DSN's; when
// its answer changes, the connections already open log in again (AUTH
// pipelined before their next request: the same connection ids, now as
// the new user) while a workload runs on them without a single error, and
// new connections log in with the new credentials. No password appears in
// a log record, an error or String().
func TestCredentialsRotate(t *testing.T) {
	const pw1, pw2 = "first-Secret-1", "second-Secret-2"
	srv := redistest.StartServer(t, redistest.WithACLUser("alice", pw1),
		redistest.WithConfig("user bob on >"+pw2+" ~* &* +@all"))
	ctx := context.Background()
	p := newRotating("alice", pw1)
	var logs syncBuffer
	// The DSN's password is wrong: the provider's must win.
	db, err := openWith(t, srv, p, &logs, "max_conns_per_node=1&tend_interval=100ms&user=alice&password=not-this-one")
	if err != nil {
		t.Fatal(err)
	}
	var who string
	if err := db.QueryRow(ctx, "ACL WHOAMI").Scan(&who); err != nil || who != "alice" {
		t.Fatalf("ACL WHOAMI = %q, %v; want alice", who, err)
	}

	// A workload on the shared connection for the whole rotation.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Exec(ctx, "INCR ?", fmt.Sprintf("rot%d", g)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(100 * time.Millisecond)
	before := clients(t, srv)
	if len(before) < 2 { // the shared connection and the tender's
		t.Fatalf("clients before the rotation: %v", before)
	}
	for id, user := range before {
		if user != "alice" {
			t.Fatalf("client %s is logged in as %q before the rotation", id, user)
		}
	}

	p.set("bob", pw2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := clients(t, srv)
		moved := 0
		for id := range before {
			if now[id] == "bob" {
				moved++
			}
		}
		if moved == len(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, clients are %v (were %v): live connections did not log in again", now, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := db.QueryRow(ctx, "ACL WHOAMI").Scan(&who); err != nil || who != "bob" {
		t.Fatalf("ACL WHOAMI after the rotation = %q, %v; want bob", who, err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d statements failed during the rotation; first: %v", n, n+ok.Load(), *firstErr.Load())
	}
	t.Logf("%d statements during the rotation, none failed; provider called %d times", ok.Load(), p.calls.Load())

	// A password rotated on the server: alice gets pw2 and loses pw1. A
	// new DB with the new password logs in, one with the old is refused.
	srv.MustDo("ACL", "SETUSER", "alice", ">"+pw2, "<"+pw1)
	p2 := newRotating("alice", pw2)
	db2, err := openWith(t, srv, p2, &logs, "")
	if err != nil {
		t.Fatalf("new credentials: %v", err)
	}
	if err := db2.QueryRow(ctx, "ACL WHOAMI").Scan(&who); err != nil || who != "alice" {
		t.Fatalf("ACL WHOAMI = %q, %v; want alice", who, err)
	}
	_, err = openWith(t, srv, newRotating("alice", pw1), &logs, "")
	if !errors.Is(err, driver.ErrAuthFailed) {
		t.Fatalf("the rotated-out password: %v, want ErrAuthFailed", err)
	}

	if logs.spanText() == "" {
		t.Fatal("no span recorded")
	}
	for _, s := range []string{logs.String(), logs.spanText(), err.Error(), db.String(), fmt.Sprintf("%v %+v %#v %s", db.Config(), db.Config(), db.Config(), db.Config())} {
		for _, pw := range []string{pw1, pw2} {
			if strings.Contains(s, pw) {
				t.Fatalf("a password appears in %q", s)
			}
		}
	}
}

// TestCredentialsReloginRefused: when the provider's new answer is
// refused, the live connections keep their old login, are retired (their
// ids vanish) and new connections fail with an auth error that names the
// user and not the password.
func TestCredentialsReloginRefused(t *testing.T) {
	const pw, wrong = "good-Secret-1", "wrong-Secret-2"
	srv := redistest.StartServer(t, redistest.WithACLUser("alice", pw))
	ctx := context.Background()
	p := newRotating("alice", pw)
	var logs syncBuffer
	db, err := openWith(t, srv, p, &logs, "max_conns_per_node=1&tend_interval=100ms")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	before := clients(t, srv)
	p.set("alice", wrong)
	deadline := time.Now().Add(5 * time.Second)
	for {
		db.Exec(ctx, "GET x") // sends AUTH on the shared connection
		now := clients(t, srv)
		left := 0
		for id := range before {
			if _, ok := now[id]; ok {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, %d connections refused a new login but stay open: %v", left, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = db.Exec(ctx, "GET x")
	if !errors.Is(err, driver.ErrAuthFailed) {
		t.Fatalf("after a refused rotation: %v, want ErrAuthFailed", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"alice"`) || strings.Contains(msg, wrong) || strings.Contains(msg, pw) {
		t.Fatalf("error must name the user, never the password: %s", msg)
	}
	for _, s := range []string{logs.String(), logs.spanText()} {
		if strings.Contains(s, wrong) || strings.Contains(s, pw) {
			t.Fatalf("a password appears in the logs or spans: %s", s)
		}
	}
}

// TestCredentialsProviderError: a provider that fails makes Connect fail
// at once with a *CredentialsError that wraps ErrAuthFailed and says what
// failed; no socket is opened for it, and it is not retried in a loop.
func TestCredentialsProviderError(t *testing.T) {
	srv := redistest.StartServer(t)
	p := newRotating("alice", "unused")
	perr := errors.New("vault: sealed")
	p.err.Store(&perr)
	var logs syncBuffer
	conns := connections(t, srv)
	start := time.Now()
	_, err := openWith(t, srv, p, &logs, "tend_interval=100ms&timeout=5s")
	took := time.Since(start)
	if err == nil {
		t.Fatal("Connect with a failing provider succeeded")
	}
	t.Logf("Connect failed in %v: %v", took.Round(time.Millisecond), err)
	var ce *sqlish.CredentialsError
	if !errors.Is(err, sqlish.ErrAuthFailed) || !errors.As(err, &ce) || !errors.Is(err, perr) {
		t.Fatalf("error does not wrap ErrAuthFailed, *CredentialsError and the provider's error: %v", err)
	}
	if !strings.Contains(err.Error(), "credentials provider failed") || !strings.Contains(err.Error(), "vault: sealed") {
		t.Fatalf("error does not say the provider failed: %v", err)
	}
	if took > time.Second {
		t.Fatalf("a failing provider took %v to fail Connect", took)
	}
	if n := connections(t, srv) - conns; n != 1 { // the one connections made
		t.Fatalf("%d connections were opened for a provider that failed", n-1)
	}

	// Operations on an open DB fail at once too, and the provider is
	// asked about once a tend, not once a statement.
	cfg, _ := sqlish.ParseDSN("redis://" + srv.Addr + "?tend_interval=100ms")
	cfg.Credentials = p
	db, err := sqlish.OpenConfig("redis", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	time.Sleep(150 * time.Millisecond)
	calls := p.calls.Load()
	ctx := context.Background()
	for range 100 {
		if _, err := db.Exec(ctx, "GET x"); !errors.Is(err, sqlish.ErrAuthFailed) {
			t.Fatalf("statement with a failing provider: %v", err)
		}
	}
	if n := p.calls.Load() - calls; n > 20 {
		t.Fatalf("100 statements asked the failing provider %d times", n)
	}
}

// TestCredentialsRotateInTransaction: a rotation while a pinned
// connection is inside MULTI does not slip an AUTH into the transaction
// (it would be queued and run at EXEC); the connection logs in again once
// the transaction is over.
func TestCredentialsRotateInTransaction(t *testing.T) {
	const pw1, pw2 = "first-Secret-1", "second-Secret-2"
	srv := redistest.StartServer(t, redistest.WithACLUser("alice", pw1),
		redistest.WithConfig("user bob on >"+pw2+" ~* &* +@all"))
	ctx := context.Background()
	p := newRotating("alice", pw1)
	var logs syncBuffer
	db, err := openWith(t, srv, p, &logs, "tend_interval=100ms")
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := tx.Exec(ctx, "INCRBY txacct 10")
	if err != nil {
		t.Fatal(err)
	}
	p.set("bob", pw2)
	time.Sleep(1500 * time.Millisecond) // a probe notices the change
	r2, err := tx.Exec(ctx, "INCRBY txacct 5")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	for i, r := range []sqlish.Result{r1, r2} {
		if n, err := r.RowsAffected(); err != nil || n != int64(10+5*i) {
			t.Fatalf("statement %d of the transaction: %d, %v; want %d", i+1, n, err, 10+5*i)
		}
	}
	var who string
	if err := c.QueryRow(ctx, "ACL WHOAMI").Scan(&who); err != nil || who != "bob" {
		t.Fatalf("ACL WHOAMI on the pinned connection after the transaction = %q, %v; want bob", who, err)
	}
}

// TestTLSClientCert: against a server that requires a client certificate
// (tls-auth-clients yes), a DSN with tls_cert and tls_key connects (with
// auth_mode=pki too, and with credentials from a provider), one without
// is refused during the TLS handshake.
func TestTLSClientCert(t *testing.T) {
	const pw = "tls-Secret-1"
	srv := redistest.StartServer(t, redistest.WithTLS(), redistest.WithACLUser("alice", pw),
		redistest.WithConfig("tls-auth-clients yes"))
	ctx := context.Background()
	base := "redis://alice:" + pw + "@" + srv.Addr + "?tls=true&tls_ca=" + srv.CACertFile
	withCert := "&tls_cert=" + srv.CertFile + "&tls_key=" + srv.KeyFile
	for _, dsn := range []string{base + withCert, base + withCert + "&auth_mode=pki"} {
		db := connect(t, "redis", dsn)
		if err := db.Ping(ctx); err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
	var logs syncBuffer
	p := newRotating("alice", pw)
	cfg, err := sqlish.ParseDSN("redis://" + srv.Addr + "?tls=true&tls_ca=" + srv.CACertFile + withCert)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = p
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	db, err := sqlish.ConnectConfig(cctx, "redis", cfg)
	cancel()
	if err != nil {
		t.Fatalf("TLS client certificate and a credentials provider: %v", err)
	}
	db.Close()

	cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	db, err = sqlish.Connect(cctx, "redis", base)
	cancel()
	if err == nil {
		db.Close()
		t.Fatal("connected without the client certificate the server requires")
	}
	// With TLS 1.3 the server's refusal arrives after the client's
	// handshake ended: the error is a TLS alert or a reset, whichever
	// the client reads first.
	t.Logf("without a client certificate: %v", err)
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("the error holds the password: %v", err)
	}
	// The server logs the refusal after it sent the alert the client
	// read: under load the line comes a moment later.
	for start := time.Now(); !strings.Contains(srv.LogTail(5), "did not return a certificate"); {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the server did not refuse for want of a certificate: %s", srv.LogTail(5))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
