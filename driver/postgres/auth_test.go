package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

// TestAuthFailure: a wrong password fails Connect fast with an error that
// wraps driver.ErrAuthFailed, names the user and not the password, and the
// tender does not hammer the server with connection attempts.
func TestAuthFailure(t *testing.T) {
	srv := primary(t)
	role := fmt.Sprintf("authuser%d", unique.Add(1))
	if err := srv.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN PASSWORD 'right-pw'"); err != nil {
		t.Fatal(err)
	}
	const wrong = "wrong-secret-pw"
	dsn := "postgres://" + role + ":" + wrong + "@" + srv.Addr + "/postgres"
	var cnt counter
	cnt.hook(t)
	c := ctx(t)
	cctx, cancel := context.WithTimeout(c, 10*time.Second)
	defer cancel()
	start := time.Now()
	db, err := sqlish.Connect(cctx, "postgres", dsn)
	took := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("Connect with a wrong password succeeded")
	}
	t.Logf("wrong password: Connect failed in %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, driver.ErrAuthFailed) {
		t.Errorf("error does not wrap driver.ErrAuthFailed: %v", err)
	}
	var ae *AuthError
	if !errors.As(err, &ae) || ae.User != role || ae.Addr != srv.Addr {
		t.Errorf("error is not an *AuthError naming the user and node: %#v", ae)
	}
	var se *sqlish.ServerError
	if !errors.As(err, &se) || se.Code != "28P01" {
		t.Errorf("the server's error (28P01) is not reachable: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"`+role+`"`) || strings.Contains(msg, wrong) {
		t.Errorf("error must name the user and never the password: %s", msg)
	}
	if took > time.Second {
		t.Errorf("a refused password took %v to fail", took)
	}

	// Over two seconds of use, a handful of attempts (the tender's, once
	// a tend), not one per statement.
	db, err = sqlish.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := cnt.conns.Load()
	end := time.Now().Add(2 * time.Second)
	statements := 0
	for time.Now().Before(end) {
		_, err := db.Exec(c, "SELECT 1")
		if !errors.Is(err, driver.ErrAuthFailed) && !errors.Is(err, sqlish.ErrNoNodes) {
			t.Fatalf("statement: %v", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("error holds the password: %v", err)
		}
		statements++
		time.Sleep(10 * time.Millisecond)
	}
	attempts := cnt.conns.Load() - before
	t.Logf("%d statements over 2s: %d connection attempts", statements, attempts)
	if attempts > 6 {
		t.Errorf("%d connection attempts in 2s with a wrong password: a retry storm", attempts)
	}
	if s := db.String(); strings.Contains(s, wrong) {
		t.Errorf("DB.String holds the password: %s", s)
	}
}

// TestTLSNoFallback: sslmode=require against a server without TLS fails,
// and never falls back to plaintext; sslmode=disable connects.
func TestTLSNoFallback(t *testing.T) {
	srv := primary(t)
	c := ctx(t)
	db := connect(t, srv.DSN("sslmode=disable"))
	if err := db.Ping(c); err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{srv.DSN("sslmode=require"), srv.DSN("tls=true", "tls_insecure_skip_verify=true"), srv.DSN("tls=true")} {
		cctx, cancel := context.WithTimeout(c, 5*time.Second)
		db, err := sqlish.Connect(cctx, "postgres", dsn)
		cancel()
		if err == nil {
			db.Close()
			t.Fatalf("%s: connected without TLS", dsn)
		}
		if !strings.Contains(err.Error(), "TLS") && !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: the error does not say TLS: %v", dsn, err)
		}
	}
}

// TestEnvironment: PG* environment variables change neither TLS, nor the
// target role, nor the session settings: the DSN is the only source.
func TestEnvironment(t *testing.T) {
	srv := primary(t)
	for k, v := range map[string]string{
		"PGSSLMODE": "require", "PGTARGETSESSIONATTRS": "standby", "PGSSLROOTCERT": "/nonexistent/root.crt",
		"PGSSLCERT": "/nonexistent/client.crt", "PGSSLKEY": "/nonexistent/client.key", "PGSSLNEGOTIATION": "direct",
		"PGAPPNAME": "from-env", "PGOPTIONS": "-c search_path=from_env", "PGCHANNELBINDING": "require",
		"PGPASSWORD": "not-this-one", "PGHOST": "192.0.2.1", "PGPORT": "1", "PGDATABASE": "nosuchdb",
		"PGCONNECT_TIMEOUT": "1", "PGMAXPROTOCOLVERSION": "3.2", "PGREQUIREAUTH": "password",
	} {
		t.Setenv(k, v)
	}
	db := connect(t, srv.DSN("application_name=from-dsn"))
	c := ctx(t)
	var app, path, ssl string
	if err := db.QueryRow(c, "SELECT current_setting('application_name'), current_setting('search_path'), "+
		"(SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid())").Scan(&app, &path, &ssl); err != nil {
		t.Fatal(err)
	}
	if app != "from-dsn" || strings.Contains(path, "from_env") || ssl != "false" {
		t.Fatalf("application_name %q, search_path %q, ssl %s: the environment leaked in", app, path, ssl)
	}
}

// TestResolve: a seed without a port gets 5432, an IP stays as it is, a
// name becomes its addresses.
func TestResolve(t *testing.T) {
	c := &connector{}
	ctx := context.Background()
	for seed, want := range map[string]string{"10.1.2.3": "10.1.2.3:5432", "10.1.2.3:6000": "10.1.2.3:6000", "[::1]:7": "[::1]:7"} {
		got, err := c.Resolve(ctx, seed)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", seed, got, err, want)
		}
	}
	got, err := c.Resolve(ctx, "localhost")
	if err != nil || len(got) == 0 {
		t.Fatalf("Resolve(localhost) = %v, %v", got, err)
	}
	for _, a := range got {
		host, port, _ := net.SplitHostPort(a)
		if port != DefaultPort || net.ParseIP(host) == nil || c.hostName(a, host) != "localhost" {
			t.Errorf("Resolve(localhost) gave %s (name %s)", a, c.hostName(a, host))
		}
	}
}
