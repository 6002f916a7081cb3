package redis_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/redistest"
)

// clientName marks the suite's connections, so that ServerConns counts
// them and nothing else (not redistest's own helper connections).
const clientName = "tendril-conformance"

// redisFaults drives real redis-server processes: Kill/Restart are SIGKILL
// and a relaunch, Hang is SIGSTOP (and SIGCONT after d or at Unhang).
type redisFaults struct {
	servers map[string]*redistest.Server
	cluster *redistest.Cluster // nil for a standalone server

	mu   sync.Mutex
	hung map[string]*time.Timer
}

func newRedisFaults(c *redistest.Cluster, servers ...*redistest.Server) *redisFaults {
	f := &redisFaults{servers: map[string]*redistest.Server{}, cluster: c, hung: map[string]*time.Timer{}}
	for _, s := range servers {
		f.servers[s.Addr] = s
	}
	return f
}

func (f *redisFaults) server(addr string) (*redistest.Server, error) {
	s := f.servers[addr]
	if s == nil {
		return nil, errors.New("redistest: no server at " + addr)
	}
	return s, nil
}

func (f *redisFaults) hooks() *conformance.Faults {
	return &conformance.Faults{
		Nodes: func() []string {
			var out []string
			for a := range f.servers {
				out = append(out, a)
			}
			slices.Sort(out)
			return out
		},
		Kill: func(addr string) error {
			s, err := f.server(addr)
			if err == nil {
				f.Unhang(addr)
				s.Kill()
			}
			return err
		},
		Restart: func(addr string) error {
			s, err := f.server(addr)
			if err == nil {
				s.Restart()
			}
			return err
		},
		Hang:      f.Hang,
		Unhang:    f.Unhang,
		PrimaryOf: f.primaryOf,
	}
}

func (f *redisFaults) Hang(addr string, d time.Duration) error {
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
	if !s.Running() {
		return errors.New("redistest: " + addr + " is not running")
	}
	s.Stop()
	f.hung[addr] = time.AfterFunc(d, func() { f.Unhang(addr) })
	return nil
}

func (f *redisFaults) Unhang(addr string) error {
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

// primaryOf asks the running nodes which one claims key's slot as a
// primary (the highest config epoch wins), as redistest.Cluster.PrimaryFor
// does, without failing the test from another goroutine.
func (f *redisFaults) primaryOf(key string) string {
	if f.cluster == nil {
		for a := range f.servers {
			return a
		}
	}
	slot := redistest.Slot(key)
	best, bestEpoch := "", int64(-1)
	for addr, s := range f.servers {
		if !s.Running() {
			continue
		}
		text, err := s.Do("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 8 || !strings.Contains(fields[2], "myself") || !strings.Contains(fields[2], "master") {
				continue
			}
			epoch, _ := strconv.ParseInt(fields[6], 10, 64)
			for _, r := range fields[8:] {
				from, to, ok := strings.Cut(r, "-")
				if !ok {
					to = from
				}
				lo, err1 := strconv.Atoi(from)
				hi, err2 := strconv.Atoi(to)
				if err1 == nil && err2 == nil && slot >= lo && slot <= hi && epoch > bestEpoch {
					best, bestEpoch = addr, epoch
				}
			}
		}
	}
	return best
}

// serverConns counts the suite's connections (CLIENT LIST, by client name)
// over the running nodes.
func serverConns(servers ...*redistest.Server) func() int {
	return func() int {
		n := 0
		for _, s := range servers {
			if !s.Running() {
				continue
			}
			text, err := s.Do("CLIENT", "LIST")
			if err != nil {
				// Counting nothing would let the leak checks pass:
				// count enough to fail them instead.
				return math.MaxInt32
			}
			n += strings.Count(text, " name="+clientName+" ")
		}
		return n
	}
}

func redisConfig(dsn string, f *redisFaults, servers ...*redistest.Server) conformance.Config {
	return conformance.Config{
		Driver: "redis",
		DSN:    conformance.AppendParams(dsn, "client_name="+clientName),
		Caps: driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapTx | driver.CapInfo |
			driver.CapTopology | driver.CapMultiplex | driver.CapRequestTimeout,
		Dialect:     conformance.RedisDialect(),
		Faults:      f.hooks(),
		ServerConns: serverConns(servers...),
		Skip:        map[string]string{}, // nothing skipped
	}
}

func TestConformanceStandalone(t *testing.T) {
	// A stock server: DEBUG is off by default, and the suite must not need
	// it.
	srv := redistest.StartServer(t, redistest.WithConfig("enable-debug-command no"))
	conformance.Run(t, redisConfig("redis://"+srv.Addr, newRedisFaults(nil, srv), srv))
}

func TestConformanceCluster(t *testing.T) {
	// A long node timeout: the suite's short hangs (SIGSTOP) must not
	// trigger failovers.
	c := redistest.StartCluster(t, 3, 1, redistest.WithConfig("cluster-node-timeout 5000", "enable-debug-command no"))
	cfg := redisConfig("redis://"+strings.Join(c.Seeds(), ","), newRedisFaults(c, c.Nodes...), c.Nodes...)
	conformance.Run(t, cfg)
}

// TestConformanceCached runs the suite with every cacheable read served
// through the client-side cache (cache_ttl): the cache must change no
// result the suite checks (reads of one's own writes, values, errors,
// sessions, faults).
func TestConformanceCached(t *testing.T) {
	srv := redistest.StartServer(t, redistest.WithConfig("enable-debug-command no"))
	cfg := redisConfig("redis://"+srv.Addr+"?cache_size=1048576&cache_ttl=1m", newRedisFaults(nil, srv), srv)
	conformance.Run(t, cfg)
}
