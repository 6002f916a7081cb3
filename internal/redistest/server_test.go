package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func TestRequire(t *testing.T) {
	server, cli := Require(t)
	out, err := exec.Command(server, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v", server, err)
	}
	t.Logf("server %s: %s", server, strings.TrimSpace(string(out)))
	t.Logf("cli %s", cli)
}

func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "hello": 866, "123456789": 0x31C3 % NumSlots,
		"{user1000}.following": Slot("user1000"), "foo{}{bar}": 8363, // an empty {} is no hash tag: the whole key
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("{a}x") != Slot("a") || Slot("{}a") == Slot("") {
		t.Error("hash tags are not handled")
	}
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	s := StartServer(t, WithConfig("maxmemory 10mb"))
	if s.Addr != "127.0.0.1:"+itoa(s.Port) || s.Port <= 0 || s.Port+10000 > 65535 {
		t.Fatalf("bad address %q port %d", s.Addr, s.Port)
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if got, err := s.Do("SET", "k", "v a l"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != "v a l" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if _, err := s.Do("GET", "missing"); !errors.Is(err, ErrNil) {
		t.Fatalf("GET missing: err = %v, want ErrNil", err)
	}
	if got, err := s.Do("INCRBY", "n", "41"); err != nil || got != "41" {
		t.Fatalf("INCRBY = %q, %v", got, err)
	}
	var re RedisError
	if _, err := s.Do("NOSUCHCOMMAND"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "ERR") {
		t.Fatalf("unknown command: err = %v", err)
	}
	if got, err := s.Do("CONFIG", "GET", "maxmemory"); err != nil || got != "maxmemory\n10485760" {
		t.Fatalf("CONFIG GET maxmemory = %q, %v", got, err)
	}
	v, err := s.DoValue(context.Background(), "CONFIG", "GET", "save")
	if arr, ok := v.([]any); err != nil || !ok || len(arr) != 2 || arr[1] != "" {
		t.Fatalf("CONFIG GET save = %#v, %v (want persistence off)", v, err)
	}
	if role, err := s.Role(); err != nil || role != "master" {
		t.Fatalf("Role = %q, %v", role, err)
	}
	if _, err := os.Stat(s.LogFile); err != nil {
		t.Fatalf("log file: %v", err)
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	s := StartServer(t, WithPassword("s3cret"))
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING with password = %q, %v", got, err)
	}
	noAuth := endpoint{addr: s.Addr}
	if _, err := noAuth.do(context.Background(), "PING"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("PING without auth: err = %v, want NOAUTH", err)
	}
	wrong := endpoint{addr: s.Addr, password: "wrong"}
	if _, err := wrong.do(context.Background(), "PING"); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with wrong password: err = %v, want WRONGPASS", err)
	}
}

func TestACLUser(t *testing.T) {
	t.Parallel()
	s := StartServer(t, WithACLUser("alice", "wonder1and"))
	if got, err := s.Do("ACL", "WHOAMI"); err != nil || got != "alice" {
		t.Fatalf("ACL WHOAMI = %q, %v", got, err)
	}
	for _, e := range []endpoint{
		{addr: s.Addr, user: "alice", password: "wrong"},
		{addr: s.Addr, user: "default", password: ""},
		{addr: s.Addr, password: "wonder1and"},
	} {
		if _, err := e.do(context.Background(), "PING"); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
			t.Errorf("PING as %q/%q: err = %v, want WRONGPASS", e.user, e.password, err)
		}
	}
	if _, err := (endpoint{addr: s.Addr}).do(context.Background(), "PING"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING without auth: err = %v, want NOAUTH", err)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	port, pid := s.Port, s.PID()
	s.MustDo("SET", "k", "v")
	s.Kill()
	s.Kill() // idempotent
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Restart()
	if s.Port != port || s.PID() == pid || !s.Running() {
		t.Fatalf("after Restart: port %d (was %d), pid %d (was %d), running %v", s.Port, port, s.PID(), pid, s.Running())
	}
	if _, err := s.Do("GET", "k"); !errors.Is(err, ErrNil) {
		t.Fatalf("GET after restart: err = %v, want ErrNil (no persistence)", err)
	}
	s.MustDo("SET", "k", "v2")
	s.Restart() // restart of a running server kills it first
	if _, err := s.Do("GET", "k"); !errors.Is(err, ErrNil) {
		t.Fatalf("GET after second restart: err = %v, want ErrNil", err)
	}
}

func TestStopCont(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err := s.DoContext(ctx, "PING")
	cancel()
	if !isTimeout(err) {
		t.Fatalf("PING on stopped server: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	s.Cont()
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Cont = %q, %v", got, err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	bin, _ := Require(t)
	_, err := startServer(t, bin, buildConfig([]Option{WithConfig("no-such-directive 1")}))
	if err == nil {
		t.Fatal("server with a bad config line started")
	}
	if !strings.Contains(err.Error(), "no-such-directive") {
		t.Fatalf("error does not include the log tail: %v", err)
	}
	t.Logf("start failure: %v", err)
}

func TestTLS(t *testing.T) {
	t.Parallel()
	s := StartServer(t, WithTLS())
	if s.TLSConfig == nil {
		t.Fatal("TLSConfig is nil")
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING over TLS = %q, %v", got, err)
	}
	// A handshake with the client config verifies the certificate chain.
	d := tls.Dialer{Config: s.TLSConfig}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	if len(state.PeerCertificates) == 0 {
		t.Fatal("no peer certificate")
	}
	// Plain text on the TLS port does not work.
	plain := endpoint{addr: s.Addr}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if got, err := plain.do(ctx2, "PING"); err == nil {
		t.Fatalf("plain PING on the TLS port = %q, want an error", got)
	}
	// redis-cli can use the generated files too.
	_, cli := Require(t)
	out, err := exec.Command(cli, "-h", "127.0.0.1", "-p", itoa(s.Port), "--tls",
		"--cacert", s.CACertFile, "PING").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli --tls PING = %q, %v", out, err)
	}
}
