// Package pgtest starts real PostgreSQL 15 servers for integration tests of
// tendril's PostgreSQL backend: single primaries ([StartPrimary]) and
// primary/standby pairs with streaming replication ([StartPair]), and the
// failures a client has to survive: a crashed server ([Server.Kill]), a hung
// one ([Server.Stop]/[Server.Cont]), a promoted standby ([Server.Promote]) and
// an old primary rebuilt as a standby of the new one
// ([Server.RebuildStandby]).
//
// Every server is a `postgres` process that is a direct child of the test
// binary (not started through pg_ctl, which would leave it to init), leader of
// its own process group, bound to 127.0.0.1 on a free port, without a Unix
// socket, with its data directory in a temporary directory of its own. On
// Linux the postmaster receives SIGKILL when the test binary dies
// (Pdeathsig), and PostgreSQL's own children exit when their postmaster dies.
// Servers are shut down and their directories removed in t.Cleanup; a failed
// test prints the tail of each server's log. A stopped server ([Server.Stop])
// is killed by a watchdog if the test binary dies, and what a killed test
// binary leaves (directories, shared memory) is swept by the next one.
//
// Servers are tuned for tests, not for durability: fsync off, 16MB of shared
// buffers. Commits are still synchronous towards the operating system, so a
// killed server (SIGKILL) keeps every acknowledged commit; only a crash of
// the machine would lose data. Replication is asynchronous streaming with
// wal_keep_size, without slots (a slot would outlive a failover).
//
// Authentication is scram-sha-256 for every connection (initdb
// --auth=scram-sha-256); the harness logs in as a superuser (by default
// "tendril", see [WithUser] and [WithPassword]) into the database "postgres".
// [Server.DSN] is the URL the code under test connects with.
//
// # Root
//
// initdb and postgres refuse to run as root. When the tests run as root, every
// PostgreSQL program (initdb, postgres, pg_basebackup) runs as the system user
// "postgres": the harness sets that user's uid and gid on the child process
// (syscall.Credential) rather than going through runuser, because runuser
// forks and waits, which would make the postmaster its grandchild: a
// SIGKILL or Pdeathsig would then reach runuser and not the server. The
// temporary directories are owned by that user. Without root the programs run
// as the current user.
//
// # Binaries
//
// The binaries are taken from /usr/lib/postgresql/15/bin (Debian's
// postgresql-15 package), or from the directory in the environment variable
// PGTEST_BINDIR. When they are missing (or, as root, there is no postgres
// user) a test is skipped, except when the environment variable CI is "true":
// then it fails, so a CI job that forgot to install PostgreSQL cannot pass
// silently. See [Require].
//
// Helpers that take no error result report failures with t.Fatal on the [TB]
// the server was started with, so they must be called from that test's
// goroutine.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tendril-db/tendril/internal/errlist"
)

// TB is the part of testing.TB the helpers use: the test (or benchmark) a
// server belongs to, whose failures they report and whose cleanups stop the
// servers. *testing.T, *testing.B and *testing.F satisfy it; a program that
// is not a test can pass its own implementation, whose Fatal/Fatalf/Skipf
// must not return (e.g. runtime.Goexit) and whose Cleanup functions it runs
// on exit.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

// DefaultBinDir is where Debian's postgresql-15 package installs the server
// programs.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// The superuser every server is created with (unless [WithUser] or
// [WithPassword] say otherwise), and the database the harness and DSNs use:
// the one initdb creates, so that no server pays for a CREATE DATABASE.
const (
	DefaultUser     = "tendril"
	DefaultPassword = "tendril-test-pw"
	DefaultDatabase = "postgres"
)

// DefaultTimeout bounds a SQL helper ([Server.Exec], [Server.QueryString])
// whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Bounds of the waits the helpers do. They are generous because the tests
// of several packages share two cores under -race.
const (
	startTimeout   = 30 * time.Second // a launched postmaster accepts connections
	replayTimeout  = 30 * time.Second // a standby streams and has replayed
	promoteTimeout = 30 * time.Second // a promoted standby accepts writes
	toolTimeout    = 60 * time.Second // initdb, pg_basebackup
	exitTimeout    = 10 * time.Second // killed processes are gone
)

// programs the harness runs; Require checks they exist.
var programs = []string{"initdb", "postgres", "pg_basebackup"}

// Require returns the directory of the PostgreSQL server programs.
//
// When a program is missing, or the test runs as root and there is no
// "postgres" user to run the servers as, the test is skipped, or, when the
// environment variable CI is "true", it fails.
func Require(t TB) string {
	t.Helper()
	dir := binDir()
	var missing []string
	for _, p := range programs {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "pgtest: %s not found in %s (install postgresql-15, or set PGTEST_BINDIR)",
			strings.Join(missing, ", "), dir)
	}
	if _, err := runner(); err != nil {
		skipOrFail(t, "pgtest: %v", err)
	}
	return dir
}

func binDir() string {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d
	}
	return DefaultBinDir
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

// runAs is the identity PostgreSQL programs run with: the postgres user when
// the test runs as root, the current user (cred nil, uid/gid -1) otherwise.
type runAs struct {
	cred     *syscall.Credential
	uid, gid int
}

// runner finds the identity once per test binary.
var runner = sync.OnceValues(func() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root, and initdb refuses root, but there is no postgres user to run the servers as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errlist.Join(err1, err2); err != nil {
		return runAs{}, fmt.Errorf("user postgres: %w", err)
	}
	// Groups: an empty list drops root's supplementary groups.
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, uid: uid, gid: gid}, nil
})

// own hands path to the user the servers run as (a no-op without root).
func (r runAs) own(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, r.uid, r.gid)
}

// Option configures the servers started by [StartPrimary] or [StartPair].
type Option func(*config)

type config struct {
	user, password string
	extra          []string
	hba            []string
}

// WithHBA puts pg_hba.conf lines before the default ones (scram-sha-256
// for every connection), so that they match first, e.g. "hostssl all
// certuser 127.0.0.1/32 cert". A standby inherits them through
// pg_basebackup.
func WithHBA(lines ...string) Option {
	return func(c *config) { c.hba = append(c.hba, lines...) }
}

// WithConfig appends postgresql.conf lines, e.g. "work_mem = '8MB'". They come
// after the package's settings and therefore override them. In a pair, the
// standby inherits the primary's postgresql.conf through pg_basebackup.
func WithConfig(lines ...string) Option {
	return func(c *config) { c.extra = append(c.extra, lines...) }
}

// WithUser sets the name of the superuser the server is created with
// (default [DefaultUser]).
func WithUser(name string) Option {
	return func(c *config) { c.user = name }
}

// WithPassword sets the superuser's password (default [DefaultPassword]).
// Any characters are allowed; [Server.DSN] escapes them.
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

func buildConfig(opts []Option) config {
	c := config{user: DefaultUser, password: DefaultPassword}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Ports handed out by this process are remembered so that two servers of one
// test binary never collide, even while one of them is down.
var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var lastErr error
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lastErr = err
			continue
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if usedPorts[p] {
			continue
		}
		usedPorts[p] = true
		return p, nil
	}
	if lastErr == nil {
		lastErr = errors.New("every port offered was already handed out")
	}
	return 0, fmt.Errorf("pgtest: finding a free port: %w", lastErr)
}

// A server's directory is os.TempDir()/pgtest-*; its file "owner" holds the
// PID of the test binary that made it.
const (
	dirPrefix = "pgtest-"
	ownerFile = "owner"
)

var sweepOnce sync.Once

// sweep removes what the servers of killed test binaries left behind (their
// cleanups never ran: a SIGKILL, a -timeout panic): directories and System V
// interlock segments. A directory is only swept when the binary that made it
// is gone and no process runs in its data directory, so servers of test
// binaries running at the same time are left alone.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours, or being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		data := filepath.Join(d, "data")
		if len(serverProcs(0, data)) > 0 {
			continue
		}
		if lines, ok := readPidFile(data); ok {
			if key, id, ok := shmOfPidFile(lines); ok {
				_ = removeShm(key, id)
			}
		}
		_ = os.RemoveAll(d)
	}
}

// childEnv is the environment of PostgreSQL programs: the test's, without
// the PG* variables that would redirect libpq (PGHOST, PGPORT, PGSERVICE...),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// connString builds a libpq keyword/value connection string, quoting values.
func connString(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[i])
		b.WriteString("='")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[i+1]))
		b.WriteByte('\'')
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
