package postgres

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

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// rotating is a credentials provider whose answer the test changes.
type rotating struct {
	cur   atomic.Pointer[[2]string]
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func (r *rotating) set(user, password string) { r.cur.Store(&[2]string{user, password}) }

func (r *rotating) Credentials(context.Context) (string, string, error) {
	r.calls.Add(1)
	if err := r.err.Load(); err != nil {
		return "", "", *err
	}
	c := r.cur.Load()
	return c[0], c[1], nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// connectWith connects with credentials from p, logging everything.
func connectWith(t *testing.T, dsn string, p sqlish.Credentials, logs *syncBuffer) (*sqlish.DB, error) {
	t.Helper()
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = p
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.Level(-8)}))
	cfg.LogLevel = sqlish.LogTrace
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlish.ConnectConfig(ctx, "postgres", cfg)
	if err == nil {
		t.Cleanup(func() { db.Close() })
	}
	return db, err
}

// TestCredentialsRotate: the provider's user and password replace the
// DSN's; after ALTER ROLE ... PASSWORD and the provider's rotation, new
// connections log in with the new password while the ones open go on;
// a provider still giving the old password is refused with an
// *AuthError. No password appears in a log record, an error or String().
func TestCredentialsRotate(t *testing.T) {
	srv := primary(t)
	role := fmt.Sprintf("rotuser%d", unique.Add(1))
	const pw1, pw2 = "first-Secret-1", "second-Secret-2"
	if err := srv.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN PASSWORD '"+pw1+"'"); err != nil {
		t.Fatal(err)
	}
	var cnt counter
	cnt.hook(t)
	c := ctx(t)
	p := &rotating{}
	p.set(role, pw1)
	var logs syncBuffer
	// The DSN names another user with a wrong password: the provider's win.
	dsn := "postgres://nobody:not-this-one@" + srv.Addr + "/postgres?max_conns_per_node=4"
	db, err := connectWith(t, dsn, p, &logs)
	if err != nil {
		t.Fatal(err)
	}
	var who string
	if err := db.QueryRow(c, "SELECT current_user").Scan(&who); err != nil || who != role {
		t.Fatalf("current_user = %q, %v; want %s", who, err, role)
	}

	// Hold the open connection, rotate, and make the DB dial another.
	old, err := db.Conn(c)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var oldPID int
	if err := old.QueryRow(c, "SELECT pg_backend_pid()").Scan(&oldPID); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(c, "ALTER ROLE "+role+" PASSWORD '"+pw2+"'"); err != nil {
		t.Fatal(err)
	}
	p.set(role, pw2)
	dialled := cnt.conns.Load()
	var pid int
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("a new connection after the rotation: %v", err)
	}
	if pid == oldPID || cnt.conns.Load() == dialled {
		t.Fatalf("the statement did not run on a new connection (backend %d, was %d)", pid, oldPID)
	}
	if err := old.QueryRow(c, "SELECT current_user").Scan(&who); err != nil || who != role {
		t.Fatalf("the connection opened before the rotation: %q, %v", who, err)
	}

	// A provider still giving the rotated-out password is refused.
	stale := &rotating{}
	stale.set(role, pw1)
	_, err = connectWith(t, dsn, stale, &logs)
	var ae *AuthError
	if !errors.Is(err, driver.ErrAuthFailed) || !errors.As(err, &ae) || ae.User != role {
		t.Fatalf("the rotated-out password: %v, want an *AuthError for %s", err, role)
	}

	for _, s := range []string{logs.String(), err.Error(), db.String(), fmt.Sprintf("%v %+v %#v %s", db.Config(), db.Config(), db.Config(), db.Config())} {
		for _, pw := range []string{pw1, pw2} {
			if strings.Contains(s, pw) {
				t.Fatalf("a password appears in %q", s)
			}
		}
	}
}

// TestCredentialsProviderError: a failing provider fails Connect at once
// with a *CredentialsError wrapping ErrAuthFailed and the provider's
// error; no socket is opened for it.
func TestCredentialsProviderError(t *testing.T) {
	srv := primary(t)
	var cnt counter
	cnt.hook(t)
	p := &rotating{}
	perr := errors.New("rds token: no IAM role")
	p.err.Store(&perr)
	var logs syncBuffer
	start := time.Now()
	_, err := connectWith(t, srv.DSN("timeout=5s"), p, &logs)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Connect with a failing provider succeeded")
	}
	t.Logf("Connect failed in %v: %v", took.Round(time.Millisecond), err)
	var ce *sqlish.CredentialsError
	if !errors.Is(err, sqlish.ErrAuthFailed) || !errors.As(err, &ce) || !errors.Is(err, perr) || ce.Addr != srv.Addr {
		t.Fatalf("error does not wrap ErrAuthFailed, a *CredentialsError for %s and the provider's error: %v", srv.Addr, err)
	}
	if !strings.Contains(err.Error(), "credentials provider failed") || !strings.Contains(err.Error(), "no IAM role") {
		t.Fatalf("error does not say the provider failed: %v", err)
	}
	if took > time.Second {
		t.Fatalf("a failing provider took %v to fail Connect", took)
	}
	if n := cnt.conns.Load(); n != 0 {
		t.Fatalf("%d sockets opened for a provider that failed", n)
	}
	if strings.Contains(err.Error(), srv.Password) || strings.Contains(logs.String(), srv.Password) {
		t.Fatalf("the DSN's password appears in the error or the logs")
	}
}
