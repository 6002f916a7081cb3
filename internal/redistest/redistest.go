// Package redistest starts real redis-server processes for integration tests
// of tendril's Redis backend.
//
// Every server runs as a child process of the test binary, bound to
// 127.0.0.1 on a free port, with its working directory (config, log,
// nodes.conf) in a t.TempDir(). Servers are killed in t.Cleanup and, on Linux,
// also receive SIGKILL when the test binary dies (Pdeathsig). Servers are kept
// small: no persistence (save "", appendonly no), io-threads 1.
//
// The binaries are looked up on PATH (see [Require]). When they are missing a
// test is skipped, except when the environment variable CI is "true": then it
// fails, so a CI job that forgot to install redis cannot pass silently.
//
// Standalone servers come from [StartServer]; clusters from [StartCluster],
// which creates the cluster with `redis-cli --cluster create` and waits until
// every node reports cluster_state:ok and all nodes agree on the slot map.
// Helpers exist for the failure scenarios a cluster client has to survive:
// [Server.Kill], [Server.Stop]/[Server.Cont] (a hung node), [Server.Restart],
// [Cluster.Failover], [Cluster.KillPrimary] with [Cluster.WaitPromoted], and
// [Cluster.MoveSlot] (manual resharding of one slot with its keys).
//
// [Server.Do] is a tiny RESP2 client meant for test setup and assertions, not
// for the code under test.
//
// Helpers report failures with t.Fatal on the [TB] (in tests a testing.TB)
// the server or cluster was started with, so they must be called from that
// test's goroutine; start a server or cluster per (sub)test that uses it, or keep
// subtests that share one sequential and aware that a failing helper fails
// the parent.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// TB is the part of testing.TB the helpers use: the test (or benchmark) a
// server or cluster belongs to, whose failures they report and whose
// cleanups kill the processes. *testing.T, *testing.B and *testing.F satisfy
// it; a program that is not a test (the bench harness) can pass its own
// implementation, whose Fatal/Fatalf/Skipf must not return (e.g. panic or
// runtime.Goexit) and whose Cleanup functions it runs on exit.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Require returns the paths of redis-server and redis-cli found on PATH.
//
// When either is missing the test is skipped, or, when the environment
// variable CI is "true", it fails.
func Require(t TB) (server, cli string) {
	t.Helper()
	var missing []string
	server, err := exec.LookPath("redis-server")
	if err != nil {
		missing = append(missing, "redis-server")
	}
	cli, err = exec.LookPath("redis-cli")
	if err != nil {
		missing = append(missing, "redis-cli")
	}
	if len(missing) > 0 {
		skipOrFail(t, "redistest: %s not found on PATH (install redis-server and redis-tools to run this test)", strings.Join(missing, " and "))
	}
	return server, cli
}

// skipOrFail skips the test for something this machine lacks, or fails it
// when CI=true: CI must have everything the tests need.
func skipOrFail(t TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// Option configures servers started by [StartServer] or [StartCluster].
type Option func(*config)

type config struct {
	password     string // requirepass (password of the default user)
	user         string // extra ACL user with all permissions
	userPassword string
	extra        []string
	tls          bool
	tlsFiles     *tlsFiles // shared CA + certificate (clusters)
	cluster      bool
}

// WithPassword sets requirepass, i.e. the password of the default user.
// Replicas authenticate to their primary with it (masterauth). [Server.Do]
// authenticates with it unless an ACL user is configured too.
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

// WithACLUser adds the ACL user `user` with password `password` and all
// permissions (~* &* +@all). Unless [WithPassword] is also given, the default
// user is disabled, so every connection has to authenticate as this user.
// Replicas authenticate with it (masteruser/masterauth) and [Server.Do] uses
// it. User name and password must not contain spaces or quotes.
func WithACLUser(user, password string) Option {
	return func(c *config) { c.user, c.userPassword = user, password }
}

// WithConfig appends raw redis.conf lines, e.g. "maxmemory 10mb". They come
// after the package's defaults and therefore override them (e.g.
// "cluster-node-timeout 5000").
func WithConfig(lines ...string) Option {
	return func(c *config) { c.extra = append(c.extra, lines...) }
}

// WithTLS makes the server listen with TLS only: Server.Port is the tls-port
// and the plain port is disabled. A throw-away CA and a certificate for
// 127.0.0.1/localhost (usable as server and client certificate) are generated
// into the temp dir; Server.TLSConfig is a client config trusting that CA.
// Clients may present a certificate but need not (tls-auth-clients optional).
// In a cluster, the bus and replication use TLS as well.
//
// When the redis-server binary was built without TLS support the test is
// skipped.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

func withCluster() Option {
	return func(c *config) { c.cluster = true }
}

func buildConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Ports: a server's port p and its cluster bus port p+10000 must both be free.
// Ports handed out by this process are remembered so that two servers of one
// test binary never collide with each other (including bus ports).
var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

const maxPort = 55535 - 1 // p+10000 must stay a valid port

func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var lastErr error
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lastErr = err
			continue
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p > maxPort || usedPorts[p] || usedPorts[p+10000] {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		l.Close()
		if err != nil {
			lastErr = err
			continue
		}
		bus.Close()
		usedPorts[p], usedPorts[p+10000] = true, true
		return p, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no port p with p+10000 free below 55535")
	}
	return 0, fmt.Errorf("redistest: finding a free port: %w", lastErr)
}

// Slot returns the Redis Cluster hash slot of key (CRC16 of the key or of its
// {hash tag}, modulo 16384).
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
