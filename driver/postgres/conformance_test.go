package postgres

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/internal/pgtest"
)

// TestConformance runs the driver conformance suite against a primary and
// its standby, fault hooks included: the suite kills, restarts and hangs
// (SIGSTOP) the servers, and must pass with an empty skip map.
func TestConformance(t *testing.T) {
	p := pgtest.StartPair(t)
	f := &pgFaults{servers: map[string]*pgtest.Server{p.Primary.Addr: p.Primary, p.Standby.Addr: p.Standby}, hung: map[string]*time.Timer{}}
	t.Cleanup(f.unhangAll)
	conformance.Run(t, conformance.Config{
		Driver:  "postgres",
		DSN:     p.DSN(),
		Caps:    caps,
		Dialect: conformance.PostgresDialect(),
		Faults: &conformance.Faults{
			Nodes:   func() []string { return p.Addrs() },
			Kill:    f.kill,
			Restart: f.restart,
			Hang:    f.hang,
			Unhang:  f.unhang,
			// A primary/standby pair has one writer for every key.
			PrimaryOf: func(string) string { return f.primary() },
		},
	})
}

// pgFaults are the suite's fault hooks on a pgtest pair.
type pgFaults struct {
	servers map[string]*pgtest.Server
	mu      sync.Mutex
	hung    map[string]*time.Timer
}

func (f *pgFaults) server(addr string) (*pgtest.Server, error) {
	s := f.servers[addr]
	if s == nil {
		return nil, errors.New("pgtest: no server at " + addr)
	}
	return s, nil
}

func (f *pgFaults) kill(addr string) error {
	s, err := f.server(addr)
	if err == nil {
		s.Kill()
	}
	return err
}

func (f *pgFaults) restart(addr string) error {
	s, err := f.server(addr)
	if err == nil {
		s.Restart()
	}
	return err
}

func (f *pgFaults) hang(addr string, d time.Duration) error {
	s, err := f.server(addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.hung[addr]; t != nil {
		t.Reset(d)
		return nil
	}
	s.Stop()
	f.hung[addr] = time.AfterFunc(d, func() { f.unhang(addr) })
	return nil
}

func (f *pgFaults) unhang(addr string) error {
	s, err := f.server(addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.hung[addr]; t != nil {
		t.Stop()
		delete(f.hung, addr)
		s.Cont()
	}
	return nil
}

func (f *pgFaults) unhangAll() {
	for addr := range f.servers {
		f.unhang(addr)
	}
}

// primary returns the address of the server out of recovery.
func (f *pgFaults) primary() string {
	for addr, s := range f.servers {
		if in, err := s.InRecovery(); err == nil && !in {
			return addr
		}
	}
	return ""
}
