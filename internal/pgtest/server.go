package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Server is one PostgreSQL server (a postmaster and the processes it forks)
// started by [StartPrimary] or [StartPair]. Its role changes with
// [Server.Promote] and [Server.RebuildStandby]; ask [Server.InRecovery].
type Server struct {
	Addr string // "127.0.0.1:Port"
	Port int    // fixed for the server's life, across restarts and rebuilds

	// User and Password are the superuser's credentials; Database is the
	// database the harness and [Server.DSN] connect to ("postgres").
	User, Password, Database string

	Dir     string // the server's temporary directory: data/ and postgres.log
	DataDir string // Dir/data
	LogFile string // Dir/postgres.log: the server's stderr, across restarts

	tb      TB
	bin     string
	run     runAs
	cfg     config
	mu      sync.Mutex
	p       *proc
	stopped bool
	guard   *guard // while stopped
}

type proc struct {
	cmd  *exec.Cmd
	pid  int           // the postmaster, leader of process group pid
	done chan struct{} // closed when the postmaster has exited and been reaped
	err  error         // Wait's result, valid after done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// errPortInUse marks a launch that failed because another process bound the
// port between freePort and the postmaster's bind.
var errPortInUse = errors.New("port already in use")

// ErrNoRows is returned by [Server.QueryString] for a statement that
// returned no row.
var ErrNoRows = errors.New("pgtest: no rows")

// StartPrimary creates a new cluster with initdb and starts it as a primary
// on a free port, returning once it accepts connections. The server is
// stopped and its directory removed in t.Cleanup.
func StartPrimary(t TB, opts ...Option) *Server {
	t.Helper()
	bin := Require(t)
	s, err := startPrimary(t, bin, buildConfig(opts))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startPrimary(t TB, bin string, cfg config) (*Server, error) {
	start := time.Now()
	s, err := newServer(t, bin, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.initdb(); err != nil {
		return nil, err
	}
	inited := time.Since(start)
	if err := s.startOnFreePort(); err != nil {
		return nil, err
	}
	t.Logf("pgtest: primary %s ready in %s (initdb %s)", s.Addr,
		time.Since(start).Round(time.Millisecond), inited.Round(time.Millisecond))
	return s, nil
}

// newServer prepares the directory of a server and registers its cleanup.
func newServer(t TB, bin string, cfg config) (*Server, error) {
	run, err := runner()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	sweepOnce.Do(sweep)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// Registered first, so it runs after the server is down.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: removing %s: %v", dir, err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := run.own(dir); err != nil {
		return nil, fmt.Errorf("pgtest: handing %s to the postgres user: %w", dir, err)
	}
	s := &Server{
		User: cfg.user, Password: cfg.password, Database: DefaultDatabase,
		Dir: dir, DataDir: filepath.Join(dir, "data"), LogFile: filepath.Join(dir, "postgres.log"),
		tb: t, bin: bin, run: run, cfg: cfg,
	}
	t.Cleanup(func() {
		if t.Failed() {
			if tail := s.LogTail(20); tail != "" {
				t.Logf("pgtest: last lines of %s (server %s):\n%s", s.LogFile, s.Addr, tail)
			}
		}
		if err := s.shutdown(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s, nil
}

// name identifies the server in errors, before it has a port too.
func (s *Server) name() string {
	if s.Port == 0 {
		return "new server in " + s.Dir
	}
	return "server " + s.Addr
}

// settings are appended to postgresql.conf: fast and small for tests, and
// what streaming replication and quick failovers need.
const settings = `
# pgtest: settings for tests, not for durability
listen_addresses = '127.0.0.1'
unix_socket_directories = ''	# TCP only: no socket path length limits, no /var/run/postgresql
shared_buffers = 16MB
fsync = off			# commits still reach the OS: a killed server keeps them
wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB		# instead of a slot, which would outlive a failover
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 100ms	# a standby retries its primary quickly
password_encryption = 'scram-sha-256'
lc_messages = 'C'
`

// initdb creates the cluster: the superuser with a SCRAM password, scram
// for every connection, and the package's settings.
func (s *Server) initdb() error {
	if strings.ContainsAny(s.Password, "\r\n") || s.Password == "" {
		return fmt.Errorf("pgtest: the password must be non-empty and a single line (initdb reads it from a file)")
	}
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer os.Remove(pwfile)
	if err := s.run.own(pwfile); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	if err := s.tool(ctx, "initdb", nil, "-D", s.DataDir, "-U", s.User, "--pwfile="+pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	conf := settings
	for _, l := range s.cfg.extra {
		conf += l + "\n"
	}
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(conf)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}
	if len(s.cfg.hba) > 0 {
		p := filepath.Join(s.DataDir, "pg_hba.conf")
		old, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		// Written in place: the file keeps its owner and mode.
		hba := strings.Join(s.cfg.hba, "\n") + "\n" + string(old)
		if err := os.WriteFile(p, []byte(hba), 0); err != nil {
			return fmt.Errorf("pgtest: writing pg_hba.conf: %w", err)
		}
	}
	return nil
}

// basebackup makes s.DataDir a copy of primary that starts as its standby
// (pg_basebackup -R: standby.signal and primary_conninfo, with the password,
// in postgresql.auto.conf). It asks for an immediate checkpoint: the
// default, spread one would take minutes.
func (s *Server) basebackup(primary *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	conn := connString("host", "127.0.0.1", "port", strconv.Itoa(primary.Port), "user", primary.User,
		"sslmode", "disable")
	// The password travels in the environment, not on a command line
	// visible to ps; -R writes it into primary_conninfo all the same.
	return s.tool(ctx, "pg_basebackup", []string{"PGPASSWORD=" + primary.Password},
		"-D", s.DataDir, "-d", conn, "-R", "-X", "stream", "-c", "fast", "--no-sync", "-w")
}

// tool runs a PostgreSQL program to completion, as the servers' user.
func (s *Server) tool(ctx context.Context, name string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = childEnv(env...)
	cmd.SysProcAttr = sysProcAttr(s.run.cred)
	// initdb forks postgres processes of its own: cancel the whole group.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if s.run.cred != nil && bytes.Contains(out, []byte("ermission denied")) {
			hint = fmt.Sprintf("\n(running as root: the servers run as user postgres, who must be able to reach %s; is TMPDIR searchable by others?)", s.Dir)
		}
		return fmt.Errorf("pgtest: %s for the %s failed after %s: %w\n%s%s", name, s.name(),
			time.Since(start).Round(time.Millisecond), err, lastLines(string(out), 20), hint)
	}
	return nil
}

// startOnFreePort launches the server on a new free port, and on another one
// when some other process took the port first.
func (s *Server) startOnFreePort() error {
	var err error
	for range 5 {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		s.Port, s.Addr = port, "127.0.0.1:"+strconv.Itoa(port)
		if err = s.launch(); !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// launch starts the postmaster as a child of the test and waits until it
// accepts connections.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.DataDir, "-p", strconv.Itoa(s.Port))
	cmd.Dir = s.Dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.run.cred)
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("pgtest: starting postgres for the %s: %w", s.name(), err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.p, s.stopped = p, false
	s.mu.Unlock()
	return s.waitUp(p, logStart)
}

// waitUp waits until the postmaster p reports in its postmaster.pid that it
// accepts connections (as pg_ctl -w does) and a login works.
func (s *Server) waitUp(p *proc, logStart int64) error {
	start := time.Now()
	deadline := start.Add(startTimeout)
	status, lastErr := "no postmaster.pid yet", error(nil)
	for {
		if p.exited() {
			_ = s.kill() // its children, should any be left
			log := s.logSince(logStart)
			err := fmt.Errorf("pgtest: postgres for the %s exited during startup (%v); log:\n%s",
				s.name(), p.err, lastLines(log, 20))
			if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		}
		if st, ok := s.pidStatus(p.pid); ok {
			status = st
			if st == "ready" || st == "standby" {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, lastErr = s.QueryString(ctx, "SELECT 1")
				cancel()
				if lastErr == nil {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			_ = s.kill()
			return fmt.Errorf("pgtest: postgres for the %s not accepting connections after %s (postmaster.pid status %q, last error: %v); log:\n%s",
				s.name(), time.Since(start).Round(time.Millisecond), status, lastErr, lastLines(s.logSince(logStart), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidStatus reads the status line of postmaster.pid ("starting", "ready",
// "standby", "stopping") when the file belongs to the postmaster pid.
func (s *Server) pidStatus(pid int) (string, bool) {
	lines, ok := s.pidFile()
	if !ok || len(lines) < 8 || lines[0] != strconv.Itoa(pid) {
		return "", false
	}
	return strings.TrimSpace(lines[7]), true
}

func (s *Server) pidFile() ([]string, bool) { return readPidFile(s.DataDir) }

func readPidFile(dataDir string) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil, false
	}
	return strings.Split(string(b), "\n"), true
}

// shmOfPidFile returns the System V segment of postmaster.pid's line 7:
// "key id", both space-padded.
func shmOfPidFile(lines []string) (key, id int, ok bool) {
	if len(lines) < 7 {
		return 0, 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, 0, false
	}
	key, err1 := strconv.Atoi(f[0])
	id, err2 := strconv.Atoi(f[1])
	return key, id, err1 == nil && err2 == nil
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// LogTail returns the last n lines of the server's log (its stderr, across
// restarts), for failure messages.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return lastLines(string(b), n)
}

func (s *Server) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Kill crashes the server: SIGKILL to the postmaster and every process it
// forked, then waits until they are gone. What a crash leaves that would
// outlive the test (postmaster.pid, the System V interlock segment) is
// cleared, as a reboot would; the data directory is left as the crash left it,
// so [Server.Restart] runs crash recovery. Killing a server that is not
// running is a no-op.
func (s *Server) Kill() {
	s.tb.Helper()
	if err := s.kill(); err != nil {
		s.tb.Errorf("%v", err)
	}
}

func (s *Server) kill() error {
	p := s.current()
	if p == nil {
		return nil
	}
	if !p.exited() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	for _, pid := range serverProcs(p.pid, s.DataDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return s.reap(p)
}

// shutdown ends the server at the end of its test: an immediate shutdown
// (SIGQUIT), after which the postmaster removes its shared memory and lock
// file itself, or SIGKILL when that takes too long.
func (s *Server) shutdown() error {
	p := s.current()
	if p == nil {
		return nil
	}
	if !p.exited() {
		for _, pid := range serverProcs(p.pid, s.DataDir) {
			_ = syscall.Kill(pid, syscall.SIGCONT) // it may be stopped
		}
		_ = syscall.Kill(p.pid, syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(exitTimeout / 2):
			return s.kill()
		}
	}
	return s.reap(p)
}

// reap waits for the postmaster p and the processes it forked, then removes
// what a killed postmaster leaves behind.
func (s *Server) reap(p *proc) error {
	deadline := time.After(exitTimeout)
	select {
	case <-p.done:
	case <-deadline:
		return fmt.Errorf("pgtest: postgres (pid %d) of the %s did not exit within %s of SIGKILL", p.pid, s.name(), exitTimeout)
	}
	// The postmaster is reaped, but its children may be exiting still (they
	// were killed too, or notice that their postmaster died).
	for {
		left := serverProcs(p.pid, s.DataDir)
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-deadline:
			return fmt.Errorf("pgtest: processes %v of the %s still alive %s after its postmaster (pid %d) exited",
				left, s.name(), exitTimeout, p.pid)
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.endStop()
	return s.clearCrash(p.pid)
}

// clearCrash removes the lock file and interlock segment of the dead
// postmaster pid, if it left them.
func (s *Server) clearCrash(pid int) error {
	lines, ok := s.pidFile()
	if !ok || len(lines) < 7 || lines[0] != strconv.Itoa(pid) {
		return nil
	}
	if key, id, ok := shmOfPidFile(lines); ok {
		if err := removeShm(key, id); err != nil {
			return fmt.Errorf("pgtest: cleaning up after postgres (pid %d) of the %s: %w", pid, s.name(), err)
		}
	}
	if err := os.Remove(filepath.Join(s.DataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// Stop sends SIGSTOP to the postmaster and every process it forked, and waits
// until they are stopped: the server hangs. Connections are still accepted by
// the kernel (up to the listen backlog) but nothing answers, and existing
// sessions, replication included, stall. Resume with [Server.Cont].
//
// PostgreSQL's children are session leaders of their own, so the kernel
// would not continue them when the test binary dies; a small watchdog
// process kills them then (see [guard]).
func (s *Server) Stop() {
	s.tb.Helper()
	p := s.current()
	if p == nil || p.exited() {
		s.tb.Fatalf("pgtest: cannot stop the %s: not running", s.name())
	}
	// The postmaster first: a stopped postmaster forks no new children.
	if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("pgtest: sending SIGSTOP to the postmaster (pid %d) of the %s: %v", p.pid, s.name(), err)
	}
	deadline := time.Now().Add(exitTimeout)
	for {
		pids, running := serverProcs(p.pid, s.DataDir), 0
		for _, pid := range pids {
			if !stopped(pid) {
				running++
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		if running == 0 {
			g, err := startGuard(pids)
			if err != nil {
				s.tb.Fatalf("pgtest: %v", err)
			}
			s.mu.Lock()
			s.stopped, s.guard = true, g
			s.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("pgtest: %d processes of the %s not stopped %s after SIGSTOP", running, s.name(), exitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Cont resumes a server stopped with [Server.Stop] (SIGCONT).
func (s *Server) Cont() {
	s.tb.Helper()
	p := s.current()
	if p == nil || p.exited() {
		s.tb.Fatalf("pgtest: cannot continue the %s: not running", s.name())
	}
	for _, pid := range serverProcs(p.pid, s.DataDir) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if err := syscall.Kill(p.pid, syscall.SIGCONT); err != nil {
		s.tb.Fatalf("pgtest: sending SIGCONT to the postmaster (pid %d) of the %s: %v", p.pid, s.name(), err)
	}
	s.endStop()
}

// endStop forgets that the server was stopped and ends its guard.
func (s *Server) endStop() {
	s.mu.Lock()
	g := s.guard
	s.stopped, s.guard = false, nil
	s.mu.Unlock()
	if g != nil {
		g.stop()
	}
}

// guard is a dead man's switch for stopped processes: a shell, child of the
// test, blocked reading a pipe whose only writer is the test binary. When the
// test binary dies the read returns and the shell kills the processes, which
// would otherwise stay stopped for ever (SIGKILL reaches stopped processes;
// their postmaster's death, which ends them normally, does not). A server
// that is continued or killed stops its guard first.
type guard struct {
	cmd  *exec.Cmd
	w    *os.File
	done chan struct{}
}

func startGuard(pids []int) (*guard, error) {
	r, w, err := os.Pipe() // close-on-exec: no other child holds w
	if err != nil {
		return nil, fmt.Errorf("guard for stopped processes: %w", err)
	}
	args := []string{"-c", `read x; kill -KILL "$@" 2>/dev/null; exit 0`, "pgtest-guard"}
	for _, pid := range pids {
		args = append(args, strconv.Itoa(pid))
	}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("guard for stopped processes: %w", err)
	}
	g := &guard{cmd: cmd, w: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	return g, nil
}

// stop ends the guard without firing it: kill the shell, then close the pipe.
func (g *guard) stop() {
	_ = g.cmd.Process.Kill()
	<-g.done
	g.w.Close()
}

// Restart kills the server if it runs (a crash, see [Server.Kill]) and starts
// it again on the same port and data directory, in the role it had: a
// standby reconnects to its primary. It returns once the server accepts
// connections.
func (s *Server) Restart() {
	s.tb.Helper()
	start := time.Now()
	if err := s.kill(); err != nil {
		s.tb.Fatal(err)
	}
	if err := s.launch(); err != nil {
		s.tb.Fatal(err)
	}
	s.tb.Logf("pgtest: %s restarted in %s", s.name(), time.Since(start).Round(time.Millisecond))
}

// Running reports whether the postmaster is alive and not stopped.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil && !s.p.exited() && !s.stopped
}

// PID returns the process ID of the current (or last) postmaster, which is
// also the ID of its process group.
func (s *Server) PID() int {
	if p := s.current(); p != nil {
		return p.pid
	}
	return 0
}

// DSN returns the URL the code under test connects with:
// postgres://user:password@127.0.0.1:port/postgres?params, user and password
// escaped. params are "key=value" pairs, kept in order, e.g.
// "sslmode=disable".
func (s *Server) DSN(params ...string) string {
	return dsn(s.User, s.Password, s.Addr, s.Database, params)
}

func dsn(user, password, hosts, db string, params []string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: hosts, Path: "/" + db}
	q := make([]string, 0, len(params))
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		q = append(q, queryEscape(k)+"="+queryEscape(v))
	}
	u.RawQuery = strings.Join(q, "&")
	return u.String()
}

// queryEscape escapes a URL query component with %20 for a space: libpq, and
// pgconn after it, do not read "+" as a space.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// connConfig is the harness's own connection: no TLS, no fallbacks, and on
// a cancelled context a deadline on the socket rather than a cancel request,
// which would leave a goroutine waiting on a hung server.
func (s *Server) connConfig() (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(connString("host", "127.0.0.1", "port", strconv.Itoa(s.Port),
		"user", s.User, "password", s.Password, "dbname", s.Database,
		"sslmode", "disable", "application_name", "pgtest"))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connection config for the %s: %w", s.name(), err)
	}
	cfg.Fallbacks, cfg.ValidateConnect, cfg.AfterConnect = nil, nil, nil
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	return cfg, nil
}

// query runs sql (one or more statements, simple protocol) on a new
// connection.
func (s *Server) query(ctx context.Context, sql string) ([]*pgconn.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	cfg, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connecting to the %s: %w", s.name(), err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %q on the %s: %w", abbrev(sql), s.name(), err)
	}
	return res, nil
}

func abbrev(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 60 {
		return sql[:57] + "..."
	}
	return sql
}

// Exec runs sql (one or more statements) as the superuser on a new
// connection, bounded by ctx, or by [DefaultTimeout] when ctx has no
// deadline. A server error is a *pgconn.PgError in the chain (its Code is
// the SQLSTATE).
func (s *Server) Exec(ctx context.Context, sql string) error {
	_, err := s.query(ctx, sql)
	return err
}

// QueryString is [Server.Exec] returning the first column of the first row
// of the last statement's result, as text ("" for NULL), or [ErrNoRows].
func (s *Server) QueryString(ctx context.Context, sql string) (string, error) {
	res, err := s.query(ctx, sql)
	if err != nil {
		return "", err
	}
	if len(res) == 0 || len(res[len(res)-1].Rows) == 0 || len(res[len(res)-1].Rows[0]) == 0 {
		return "", fmt.Errorf("%w: %q on the %s", ErrNoRows, abbrev(sql), s.name())
	}
	return string(res[len(res)-1].Rows[0][0]), nil
}

// MustExec is [Server.Exec] that fails the test on an error.
func (s *Server) MustExec(sql string) {
	s.tb.Helper()
	if err := s.Exec(context.Background(), sql); err != nil {
		s.tb.Fatal(err)
	}
}

// MustQuery is [Server.QueryString] that fails the test on an error.
func (s *Server) MustQuery(sql string) string {
	s.tb.Helper()
	out, err := s.QueryString(context.Background(), sql)
	if err != nil {
		s.tb.Fatal(err)
	}
	return out
}

// SystemIdentifier returns the cluster's system identifier, chosen by initdb:
// a standby made from a primary shares it, independent clusters differ.
func (s *Server) SystemIdentifier() (uint64, error) {
	out, err := s.QueryString(context.Background(), "SELECT system_identifier FROM pg_control_system()")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(out, 10, 64) // a bigint holding a uint64
	if err != nil {
		return 0, fmt.Errorf("pgtest: system identifier %q of the %s: %w", out, s.name(), err)
	}
	return uint64(id), nil
}

// InRecovery reports pg_is_in_recovery(): true on a standby.
func (s *Server) InRecovery() (bool, error) {
	out, err := s.QueryString(context.Background(), "SELECT pg_is_in_recovery()")
	return out == "t", err
}

// timelineSQL: a primary's timeline is the one it writes WAL on (the first
// eight hex digits of the current WAL file's name); a standby's is the one it
// receives WAL on, or, while its WAL receiver is down, the one of its last
// restartpoint.
const timelineSQL = `SELECT CASE WHEN pg_is_in_recovery() THEN
	coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))::bigint
ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END`

// Timeline returns the server's timeline ID: 1 for a new cluster, one more
// with each promotion that the server made or followed.
func (s *Server) Timeline() (uint32, error) {
	out, err := s.QueryString(context.Background(), timelineSQL)
	if err != nil {
		return 0, err
	}
	tli, err := strconv.ParseUint(out, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("pgtest: timeline %q of the %s: %w", out, s.name(), err)
	}
	return uint32(tli), nil
}
