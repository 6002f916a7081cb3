package pgtest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

// linux: the process and shared memory checks read /proc.
const linux = runtime.GOOS == "linux"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestRequire(t *testing.T) {
	dir := Require(t)
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("postgres --version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 15.") {
		t.Errorf("postgres --version = %q, want PostgreSQL 15", out)
	}
}

// The URLs handed to the code under test survive any user name and password.
func TestDSN(t *testing.T) {
	a := &Server{User: "u@x:y", Password: `p@ss w'rd:/%?#\`, Addr: "127.0.0.1:5433", Port: 5433, Database: "postgres"}
	b := &Server{User: a.User, Password: a.Password, Addr: "127.0.0.1:5434", Port: 5434, Database: "postgres"}
	for _, dsn := range []string{
		a.DSN("sslmode=disable", "application_name=a b&c"),
		(&Pair{Primary: a, Standby: b}).DSN("sslmode=disable", "application_name=a b&c"),
	} {
		if strings.Contains(dsn, a.Password) {
			t.Errorf("DSN %q carries the password unescaped", dsn)
		}
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("pgconn.ParseConfig(%q): %v", dsn, err)
		}
		if cfg.User != a.User || cfg.Password != a.Password || cfg.Database != "postgres" ||
			cfg.Host != "127.0.0.1" || cfg.Port != 5433 || cfg.RuntimeParams["application_name"] != "a b&c" {
			t.Errorf("DSN %q parses to user %q password %q db %q host %s:%d params %v", dsn,
				cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port, cfg.RuntimeParams)
		}
		if strings.Contains(dsn, ",") && (len(cfg.Fallbacks) != 1 || cfg.Fallbacks[0].Port != 5434) {
			t.Errorf("pair DSN %q: fallbacks %v, want the standby", dsn, cfg.Fallbacks)
		}
	}
	// The harness's keyword/value strings (pg_basebackup, its own logins).
	cs := connString("user", a.User, "password", a.Password, "host", "127.0.0.1", "port", "1")
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil || cfg.User != a.User || cfg.Password != a.Password {
		t.Fatalf("connString %q parses to %q/%q, %v", cs, cfg.User, cfg.Password, err)
	}
}

// A pair streams; the standby serves what the primary wrote and refuses
// writes; a stopped standby hangs without stopping the primary and catches
// up when continued. The password needs escaping everywhere it goes.
func TestPair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := StartPair(t, WithPassword(`p@ss w'rd:/%`))
	pr, sb := p.Primary, p.Standby

	// scram-sha-256 for every login, and the URL logs in.
	if got := pr.MustQuery(`SELECT count(*) FROM pg_hba_file_rules WHERE auth_method <> 'scram-sha-256'`); got != "0" {
		t.Errorf("%s pg_hba rules not using scram-sha-256", got)
	}
	if got := pr.MustQuery(`SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user`); got != "t" {
		t.Errorf("password not stored as a SCRAM verifier")
	}
	for _, s := range []*Server{pr, sb} {
		c, err := pgconn.Connect(ctx, s.DSN("sslmode=disable"))
		if err != nil {
			t.Fatalf("connecting with %s: %v", s.DSN(), err)
		}
		c.Close(ctx)
		bad := &Server{User: s.User, Password: "wrong", Addr: s.Addr, Database: s.Database}
		if c, err := pgconn.Connect(ctx, bad.DSN("sslmode=disable")); err == nil || sqlState(err) != "28P01" {
			if c != nil {
				c.Close(ctx)
			}
			t.Fatalf("login to %s with a wrong password: %v, want SQLSTATE 28P01", s.Addr, err)
		}
	}

	// Roles, identity, timeline, streaming.
	for _, c := range []struct {
		s        *Server
		recovery bool
	}{{pr, false}, {sb, true}} {
		if rec, err := c.s.InRecovery(); err != nil || rec != c.recovery {
			t.Errorf("%s InRecovery = %v, %v; want %v", c.s.Addr, rec, err, c.recovery)
		}
		if tli, err := c.s.Timeline(); err != nil || tli != 1 {
			t.Errorf("%s Timeline = %d, %v; want 1", c.s.Addr, tli, err)
		}
	}
	id1, err1 := pr.SystemIdentifier()
	id2, err2 := sb.SystemIdentifier()
	if err1 != nil || err2 != nil || id1 != id2 || id1 == 0 {
		t.Errorf("system identifiers %d (%v) and %d (%v): want one, non-zero", id1, err1, id2, err2)
	}
	if got := sb.MustQuery("SELECT status || ' ' || sender_port FROM pg_stat_wal_receiver"); got != "streaming "+strconv.Itoa(pr.Port) {
		t.Errorf("standby's WAL receiver: %q", got)
	}

	// What the primary commits, the standby serves after WaitReplayed.
	pr.MustExec("CREATE TABLE kv (k text PRIMARY KEY, v text); INSERT INTO kv VALUES ('a', 'one')")
	sb.WaitReplayed(pr)
	if got := sb.MustQuery("SELECT v FROM kv WHERE k = 'a'"); got != "one" {
		t.Errorf("standby reads %q, want one", got)
	}
	if err := sb.Exec(ctx, "INSERT INTO kv VALUES ('b', 'two')"); sqlState(err) != "25006" {
		t.Errorf("write on the standby: %v, want SQLSTATE 25006 (read_only_sql_transaction)", err)
	}
	if _, err := sb.QueryString(ctx, "SELECT v FROM kv WHERE k = 'zz'"); !errors.Is(err, ErrNoRows) {
		t.Errorf("QueryString of no rows: %v, want ErrNoRows", err)
	}

	// A stopped standby hangs; the primary goes on.
	sb.Stop()
	if sb.Running() {
		t.Error("Running after Stop")
	}
	for _, pid := range serverProcs(sb.PID(), sb.DataDir) {
		if st := procState(pid); st != 'T' && linux {
			t.Errorf("process %d of the stopped standby in state %c", pid, st)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err := sb.QueryString(tctx, "SELECT 1")
	cancel()
	if !isTimeout(err) || time.Since(start) > 2*time.Second {
		t.Errorf("query on the stopped standby: %v after %s, want a timeout after 300ms", err, time.Since(start))
	}
	pr.MustExec("INSERT INTO kv VALUES ('b', 'two')")
	sb.Cont()
	if !sb.Running() {
		t.Error("not Running after Cont")
	}
	sb.WaitReplayed(pr)
	if got := sb.MustQuery("SELECT string_agg(v, ',' ORDER BY k) FROM kv"); got != "one,two" {
		t.Errorf("standby after Cont reads %q, want one,two", got)
	}

	// Following a standby is refused at once, and leaves the server alone.
	start = time.Now()
	for _, err := range []error{pr.rebuildStandby(sb), pr.waitReplayed(sb, time.Minute), pr.rebuildStandby(pr)} {
		if err == nil || !(strings.Contains(err.Error(), "is a standby") || strings.Contains(err.Error(), "itself")) {
			t.Errorf("following a standby or itself: %v", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second || !pr.Running() {
		t.Errorf("refusals took %s; primary running: %v", d, pr.Running())
	}
}

// A failover and back, then everything the servers were is gone: processes
// (a stopped one included), data directories, shared memory, the guard.
func TestFailover(t *testing.T) {
	t.Parallel()
	var (
		dirs     []string
		pids     []int
		shmIDs   [][2]int
		guardPID int
	)
	t.Run("failover", func(t *testing.T) {
		ctx := context.Background()
		p := StartPair(t)
		old, nu := p.Primary, p.Standby
		dirs = []string{old.Dir, nu.Dir}
		pids = append(serverProcs(old.PID(), old.DataDir), serverProcs(nu.PID(), nu.DataDir)...)
		old.MustExec("CREATE TABLE kv (k int PRIMARY KEY); INSERT INTO kv VALUES (1)")
		nu.WaitReplayed(old)

		// Kill: gone, with its lock file and interlock segment.
		key, id := shmOf(t, old)
		old.Kill()
		old.Kill() // idempotent
		if old.Running() {
			t.Error("Running after Kill")
		}
		if left := serverProcs(old.PID(), old.DataDir); len(left) > 0 {
			t.Errorf("processes %v left after Kill", left)
		}
		if _, ok, _ := shmAttached(key, id); ok {
			t.Errorf("shared memory segment %d (key %d) left after Kill", id, key)
		}
		if _, err := os.Stat(filepath.Join(old.DataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("postmaster.pid after Kill: %v", err)
		}
		if err := old.Exec(ctx, "SELECT 1"); err == nil {
			t.Error("the killed server answers")
		}

		// Promote: the standby takes writes on timeline 2.
		nu.Promote()
		if rec, err := nu.InRecovery(); err != nil || rec {
			t.Fatalf("promoted InRecovery = %v, %v", rec, err)
		}
		if tli, err := nu.Timeline(); err != nil || tli != 2 {
			t.Errorf("promoted Timeline = %d, %v; want 2", tli, err)
		}
		if got := nu.MustQuery("SELECT timeline_id FROM pg_control_checkpoint()"); got != "2" {
			t.Errorf("control file of the promoted server on timeline %s, want 2", got)
		}
		nu.MustExec("INSERT INTO kv VALUES (2)")

		// RebuildStandby: the old primary follows the new one.
		port := old.Port
		old.RebuildStandby(nu)
		if old.Port != port {
			t.Errorf("rebuilt on port %d, was %d", old.Port, port)
		}
		if rec, err := old.InRecovery(); err != nil || !rec {
			t.Fatalf("rebuilt InRecovery = %v, %v", rec, err)
		}
		if tli, err := old.Timeline(); err != nil || tli != 2 {
			t.Errorf("rebuilt Timeline = %d, %v; want 2", tli, err)
		}
		if err := old.Exec(ctx, "INSERT INTO kv VALUES (3)"); sqlState(err) != "25006" {
			t.Errorf("write on the rebuilt standby: %v, want SQLSTATE 25006", err)
		}
		nu.MustExec("INSERT INTO kv VALUES (3)")
		old.WaitReplayed(nu)
		if got := old.MustQuery("SELECT string_agg(k::text, ',' ORDER BY k) FROM kv"); got != "1,2,3" {
			t.Errorf("rebuilt standby reads %q, want 1,2,3", got)
		}

		// Restart keeps the role, the port and the data.
		pid := old.PID()
		old.Restart()
		if old.PID() == pid || old.Port != port {
			t.Errorf("after Restart: pid %d (was %d), port %d (was %d)", old.PID(), pid, old.Port, port)
		}
		nu.MustExec("INSERT INTO kv VALUES (4)")
		old.WaitReplayed(nu)
		if got := old.MustQuery("SELECT count(*) FROM kv"); got != "4" {
			t.Errorf("restarted standby has %s rows, want 4", got)
		}

		pids = append(pids, serverProcs(old.PID(), old.DataDir)...)
		pids = append(pids, serverProcs(nu.PID(), nu.DataDir)...)
		k, i := shmOf(t, old)
		shmIDs = append(shmIDs, [2]int{k, i})
		k, i = shmOf(t, nu)
		shmIDs = append(shmIDs, [2]int{k, i})
		// Cleanup must cope with a stopped server.
		nu.Stop()
		nu.mu.Lock()
		guardPID = nu.guard.cmd.Process.Pid
		nu.mu.Unlock()
	})
	if !linux {
		return
	}
	for _, d := range dirs {
		if left := serverProcs(0, d); len(left) > 0 {
			t.Errorf("processes %v of %s left after cleanup", left, d)
		}
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("directory %s after cleanup: %v", d, err)
		}
	}
	for _, pid := range append(pids, guardPID) {
		if st := procState(pid); st != 0 && st != 'Z' {
			if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.Contains(string(cmd), "postgres") || pid == guardPID {
				t.Errorf("process %d (%s) alive after cleanup", pid, cmd)
			}
		}
	}
	for _, s := range shmIDs {
		if _, ok, _ := shmAttached(s[0], s[1]); ok {
			t.Errorf("shared memory segment %d (key %d) left after cleanup", s[1], s[0])
		}
	}
}

// shmOf returns the key and id of a running server's interlock segment.
func shmOf(t *testing.T, s *Server) (key, id int) {
	t.Helper()
	lines, ok := s.pidFile()
	if !ok || len(lines) < 7 {
		t.Fatalf("no postmaster.pid for %s", s.Addr)
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		t.Fatalf("postmaster.pid line 7 %q", lines[6])
	}
	key, _ = strconv.Atoi(f[0])
	id, _ = strconv.Atoi(f[1])
	if _, ok, _ := shmAttached(key, id); !ok && linux {
		t.Fatalf("segment %d (key %d) of %s not in /proc/sysvipc/shm", id, key, s.Addr)
	}
	return key, id
}

// Independent clusters differ; options apply; a killed primary restarts
// with every commit it acknowledged.
func TestPrimaries(t *testing.T) {
	t.Parallel()
	a := StartPrimary(t, WithUser("alice"), WithConfig("work_mem = '7MB'"))
	b := StartPrimary(t)
	idA, errA := a.SystemIdentifier()
	idB, errB := b.SystemIdentifier()
	if errA != nil || errB != nil || idA == idB {
		t.Errorf("system identifiers %d (%v) and %d (%v): want two", idA, errA, idB, errB)
	}
	if a.Port == b.Port {
		t.Errorf("both on port %d", a.Port)
	}
	if got := a.MustQuery("SELECT current_user || ' ' || current_setting('work_mem')"); got != "alice 7MB" {
		t.Errorf("got %q, want alice 7MB", got)
	}
	if got := b.MustQuery("SELECT current_user"); got != DefaultUser {
		t.Errorf("default user %q", got)
	}
	if !strings.HasPrefix(a.DSN(), "postgres://alice:") || !strings.HasSuffix(a.DSN(), "@"+a.Addr+"/postgres") {
		t.Errorf("DSN %q", a.DSN())
	}

	a.MustExec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
	port, pid := a.Port, a.PID()
	a.Kill()
	a.Restart()
	if a.Port != port || a.PID() == pid || !a.Running() {
		t.Errorf("after Restart: port %d (was %d), pid %d (was %d), running %v", a.Port, port, a.PID(), pid, a.Running())
	}
	if got := a.MustQuery("SELECT count(*) FROM t"); got != "1" {
		t.Errorf("after a crash %s rows, want the 1 committed", got)
	}
	if !strings.Contains(a.LogTail(50), "not properly shut down") {
		t.Errorf("no crash recovery in the log:\n%s", a.LogTail(50))
	}
	a.Restart() // of a running server
	if got := a.MustQuery("SELECT count(*) FROM t"); got != "1" {
		t.Errorf("after a second restart %s rows", got)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	bin := Require(t)
	_, err := startPrimary(t, bin, buildConfig([]Option{WithConfig("no_such_setting = 1")}))
	if err == nil {
		t.Fatal("a server with a bad setting started")
	}
	if !strings.Contains(err.Error(), "no_such_setting") || errors.Is(err, errPortInUse) {
		t.Fatalf("error does not show the log: %v", err)
	}
	t.Logf("start failure: %v", err)
}

// The guard kills stopped processes when the test binary dies (its pipe
// closes), and nothing when stopped.
func TestGuard(t *testing.T) {
	t.Parallel()
	if !linux {
		t.Skip("reads process states from /proc")
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	victim, spared := start(), start()

	g, err := startGuard([]int{victim.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	g.w.Close() // as when the test binary dies
	<-g.done
	if err := victim.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stopped process after its guard fired: %v, want killed", err)
	}

	g, err = startGuard([]int{spared.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	g.stop()
	if st := procState(spared.Process.Pid); st != 'T' {
		t.Errorf("process guarded then released in state %c, want still stopped", st)
	}
}

// What the servers of a killed test binary left is swept; what belongs to a
// live one, or to no test, is not.
func TestSweep(t *testing.T) {
	t.Parallel()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "30")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	mk := func(owner string) string {
		d, err := os.MkdirTemp("", dirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Mkdir(filepath.Join(d, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	gone, kept1, kept2 := mk(strconv.Itoa(dead.Process.Pid)), mk(strconv.Itoa(live.Process.Pid)), mk("")
	sweep()
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory of a dead test binary not swept: %v", err)
	}
	for _, d := range []string{kept1, kept2} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("directory %s of a live binary or of no test swept: %v", d, err)
		}
	}
}
