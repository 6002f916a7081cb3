package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Pair is a primary and a streaming standby made from it by [StartPair]. The
// fields keep the servers as they were started; after a failover the roles
// are the other way round (see [Server.Promote], [Server.RebuildStandby]).
type Pair struct {
	Primary, Standby *Server
}

// StartPair starts a primary ([StartPrimary]) and a standby made from it with
// pg_basebackup -R, and returns once the standby streams from the primary
// and has replayed the primary's current WAL position. opts apply to both
// (the standby inherits the primary's postgresql.conf and roles).
func StartPair(t TB, opts ...Option) *Pair {
	t.Helper()
	bin := Require(t)
	start := time.Now()
	primary, err := startPrimary(t, bin, buildConfig(opts))
	if err != nil {
		t.Fatal(err)
	}
	standby, err := startStandby(t, bin, primary)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pgtest: pair %s (primary) + %s (standby) ready in %s", primary.Addr, standby.Addr,
		time.Since(start).Round(time.Millisecond))
	return &Pair{Primary: primary, Standby: standby}
}

func startStandby(t TB, bin string, primary *Server) (*Server, error) {
	start := time.Now()
	s, err := newServer(t, bin, primary.cfg)
	if err != nil {
		return nil, err
	}
	s.User, s.Password = primary.User, primary.Password
	if err := s.basebackup(primary); err != nil {
		return nil, err
	}
	copied := time.Since(start)
	if err := s.startOnFreePort(); err != nil {
		return nil, err
	}
	up := time.Since(start)
	if err := s.waitReplayed(primary, replayTimeout); err != nil {
		return nil, err
	}
	t.Logf("pgtest: standby %s of %s ready in %s (pg_basebackup %s, accepting connections after %s)",
		s.Addr, primary.Addr, time.Since(start).Round(time.Millisecond),
		copied.Round(time.Millisecond), up.Round(time.Millisecond))
	return s, nil
}

// Addrs returns the addresses of both servers, primary first.
func (p *Pair) Addrs() []string { return []string{p.Primary.Addr, p.Standby.Addr} }

// DSN returns a URL naming both servers, for a client that discovers the
// roles itself: postgres://user:password@primary,standby/postgres?params.
func (p *Pair) DSN(params ...string) string {
	return dsn(p.Primary.User, p.Primary.Password, strings.Join(p.Addrs(), ","), p.Primary.Database, params)
}

// WaitReplayed waits until s streams from primary and has replayed
// primary's WAL up to the position primary reports when asked (so every
// transaction committed on primary before the call is visible on s).
func (s *Server) WaitReplayed(primary *Server) {
	s.tb.Helper()
	if err := s.waitReplayed(primary, replayTimeout); err != nil {
		s.tb.Fatal(err)
	}
}

// replayedSQL is true on a standby that streams from the given port and has
// replayed up to the given LSN.
const replayedSQL = `SELECT coalesce((SELECT status = 'streaming' AND sender_port = %d FROM pg_stat_wal_receiver), false)
	AND coalesce(pg_last_wal_replay_lsn() >= '%s'::pg_lsn, false)`

// replicationSQL describes a server's replication state for error messages.
const replicationSQL = `SELECT coalesce((SELECT status || ' from port ' || coalesce(sender_port::text, '?') FROM pg_stat_wal_receiver), 'no WAL receiver')
	|| ', replayed up to ' || coalesce(pg_last_wal_replay_lsn()::text, 'nothing (not in recovery)')`

func (s *Server) waitReplayed(primary *Server, timeout time.Duration) error {
	if err := primary.isPrimary(); err != nil {
		return fmt.Errorf("pgtest: waiting for the %s to replay the WAL of %w", s.name(), err)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var lsn string
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cur, err := primary.QueryString(ctx, "SELECT pg_current_wal_lsn()")
		if err == nil {
			lsn = cur
			var ok string
			if ok, err = s.QueryString(ctx, fmt.Sprintf(replayedSQL, primary.Port, lsn)); err == nil && ok == "t" {
				cancel()
				return nil
			}
		}
		cancel()
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			state, err := s.QueryString(ctx, replicationSQL)
			cancel()
			if err != nil {
				state = "state unknown: " + err.Error()
			}
			return fmt.Errorf("pgtest: the %s has not replayed the WAL of the primary %s up to %q within %s (%s; last error: %v)",
				s.name(), primary.Addr, lsn, timeout, state, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isPrimary returns an error naming s unless it answers and is not in
// recovery.
func (s *Server) isPrimary() error {
	switch rec, err := s.InRecovery(); {
	case err != nil:
		return fmt.Errorf("%s, which does not answer: %w", s.Addr, err)
	case rec:
		return fmt.Errorf("%s, which is a standby (in recovery), not a primary", s.Addr)
	}
	return nil
}

// Promote promotes a standby (pg_promote) and returns once it accepts writes.
// It then runs a CHECKPOINT, as failover tools do, so that the control file
// (pg_control_checkpoint(), pg_controldata) shows the new timeline at once
// instead of after the next spread checkpoint.
func (s *Server) Promote() {
	s.tb.Helper()
	if err := s.promote(); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *Server) promote() error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), promoteTimeout)
	defer cancel()
	// pg_promote(true) would poll every 100ms itself; polling here is faster.
	switch ok, err := s.QueryString(ctx, "SELECT pg_promote(false)"); {
	case err != nil:
		return fmt.Errorf("pgtest: promoting the %s: %w", s.name(), err)
	case ok != "t":
		return fmt.Errorf("pgtest: promoting the %s: pg_promote returned %q", s.name(), ok)
	}
	for {
		rec, err := s.QueryString(ctx, "SELECT pg_is_in_recovery()")
		if err == nil && rec == "f" {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pgtest: the %s still in recovery %s after pg_promote (last answer %q, error %v)",
				s.name(), promoteTimeout, rec, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	promoted := time.Since(start)
	// txid_current() assigns a transaction ID: a write, refused in recovery.
	if err := s.Exec(ctx, "SELECT txid_current()"); err != nil {
		return fmt.Errorf("pgtest: the promoted %s does not accept writes: %w", s.name(), err)
	}
	if err := s.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("pgtest: checkpoint after promoting the %s: %w", s.name(), err)
	}
	s.tb.Logf("pgtest: %s promoted in %s (out of recovery after %s)", s.name(),
		time.Since(start).Round(time.Millisecond), promoted.Round(time.Millisecond))
	return nil
}

// RebuildStandby turns s (e.g. the old primary after a failover) into a
// standby of primary: s is killed if it runs, its data directory is replaced
// by a fresh pg_basebackup -R of primary, and it starts again on its port.
// It returns once s streams from primary and has replayed its current WAL
// position. A fresh copy rather than pg_rewind: always possible (pg_rewind
// needs the old timeline's WAL and a clean or recoverable target) and, for
// the small clusters of tests, as fast. s takes primary's credentials.
func (s *Server) RebuildStandby(primary *Server) {
	s.tb.Helper()
	if err := s.rebuildStandby(primary); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *Server) rebuildStandby(primary *Server) error {
	if s == primary {
		return fmt.Errorf("pgtest: the %s cannot be rebuilt as a standby of itself", s.name())
	}
	if err := primary.isPrimary(); err != nil {
		return fmt.Errorf("pgtest: rebuilding the %s as a standby of %w", s.name(), err)
	}
	start := time.Now()
	if err := s.kill(); err != nil {
		return err
	}
	if err := os.RemoveAll(s.DataDir); err != nil {
		return fmt.Errorf("pgtest: removing the data directory of the %s: %w", s.name(), err)
	}
	s.User, s.Password, s.cfg = primary.User, primary.Password, primary.cfg
	if err := s.basebackup(primary); err != nil {
		return err
	}
	if err := s.launch(); err != nil {
		return err
	}
	if err := s.waitReplayed(primary, replayTimeout); err != nil {
		return err
	}
	s.tb.Logf("pgtest: %s rebuilt as a standby of %s in %s", s.name(), primary.Addr,
		time.Since(start).Round(time.Millisecond))
	return nil
}
