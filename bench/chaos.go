package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/sqlish"
)

// The chaos run: tendril on a local 3+3 cluster under a checked GET/SET
// load while random nodes are SIGKILLed (and restarted a few seconds
// later) or SIGSTOPped (and continued). Every value read is checked
// against what its writer knows: each key has one writer goroutine, which
// writes "key:version" with increasing versions and remembers the last
// acknowledged version and the last attempted one. A read is
//
//   - right: the last acknowledged version;
//   - stale: an older version of the key, or the key missing: acknowledged
//     writes lost in a failover (Redis replication is asynchronous, and the
//     test servers do not persist: a restarted node comes back empty);
//   - unacknowledged: a version whose write failed (outcome unknown) or is
//     not acknowledged yet;
//   - wrong: anything else (another key's value, a version never written):
//     no replication behaviour explains it. The run fails on one.
//
// Every call is timed: none may take longer than total_timeout + 100 ms.
// The harness also compares the process' goroutines and open files before
// and after, and reports the errors by kind.

type chaosStats struct {
	ops, failed                          atomic.Int64
	right, stale, unacked, lost, wrong   atomic.Int64
	overLimit                            atomic.Int64
	maxCall                              atomic.Int64 // nanoseconds
	errMu                                sync.Mutex
	errKinds                             map[string]int
	firstWrong                           string
	faults                               []string
	getFailed, setFailed, setUnknownRuns atomic.Int64
}

func (s *chaosStats) err(err error) {
	s.failed.Add(1)
	k := errorKind(err)
	s.errMu.Lock()
	s.errKinds[k]++
	s.errMu.Unlock()
}

// errorKind names an error for the error mix: the server's code, or the
// kind of failure, using only what any version of the user API offers.
func errorKind(err error) string {
	var se *sqlish.ServerError
	msg := err.Error()
	switch {
	case errors.As(err, &se):
		return "server " + se.Code
	case strings.Contains(msg, "outcome unknown"):
		return "outcome unknown (not retried)"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case strings.Contains(msg, "pool paused"), strings.Contains(msg, "pool cleared"):
		return "pool paused"
	case strings.Contains(msg, "no node serves"), errors.Is(err, sqlish.ErrNoNodes):
		return "no node"
	case strings.Contains(msg, "backing off"):
		return "dial backoff (node down)"
	case strings.Contains(msg, "refused"):
		return "connection refused"
	case strings.Contains(msg, "reset by peer"), strings.Contains(msg, "broken pipe"), strings.Contains(msg, "EOF"):
		return "connection lost"
	}
	// Node names, addresses and durations differ from one error to the
	// next; the kind is what is left.
	msg = nodeRE.ReplaceAllString(msg, "")
	msg = numRE.ReplaceAllString(msg, "N")
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return "other: " + msg
}

var (
	nodeRE = regexp.MustCompile(`(sqlish|puddlepool): node [^ ]+( \([^)]*\))?: `)
	numRE  = regexp.MustCompile(`[0-9][0-9.:]*[µa-z]*`)
)

func runChaos() error {
	tb := newTB("chaos")
	defer tb.done()
	t0 := time.Now()
	cl := redistest.StartCluster(tb, 3, 1, redistest.WithConfig(
		"cluster-node-timeout "+strconv.Itoa(int((*chaosNodeTimeout)/time.Millisecond)),
		// Other shards go on serving while one has no primary.
		"cluster-require-full-coverage no"))
	log.Printf("chaos: cluster of 3 primaries + 3 replicas up in %s", time.Since(t0).Round(time.Millisecond))

	goroutinesBefore := runtime.NumGoroutine()
	fdsBefore := openFiles()
	const total = 10 * time.Second
	dsn := "redis://" + strings.Join(cl.Seeds(), ",") + "?total_timeout=" + total.String()
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	db, err := sqlish.Connect(cctx, "redis", dsn)
	cancel()
	if err != nil {
		return err
	}
	st := &chaosStats{errKinds: map[string]int{}}
	var stop atomic.Bool
	var wg sync.WaitGroup
	g := *chaosGoroutines
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chaosWorker(ctx, db, w, st, &stop, total)
		}()
	}
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		chaosFaults(cl, st, &stop, *chaosDuration)
	}()
	time.Sleep(*chaosDuration)
	stop.Store(true)
	<-faultsDone
	wg.Wait()
	db.Close()
	// Goroutines and files of the DB are gone once it is closed (a
	// draining connection may take a moment).
	var goroutinesAfter, fdsAfter int
	for range 50 {
		goroutinesAfter, fdsAfter = runtime.NumGoroutine(), openFiles()
		if goroutinesAfter <= goroutinesBefore && fdsAfter <= fdsBefore {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	fmt.Printf("# tendril chaos run\n\n%s\n\n", machineLine())
	fmt.Printf("%s of %d goroutines (80 %% GET / 20 %% SET, %d keys each, one writer per key) on a local 3+3 cluster "+
		"(cluster-node-timeout %v, cluster-require-full-coverage no, no persistence), total_timeout %v; faults: %s.\n\n",
		*chaosDuration, g, chaosKeys, *chaosNodeTimeout, total, strings.Join(st.faults, ", "))
	fmt.Printf("| operations | failed | right | stale (lost to a failover) | missing (lost) | unacknowledged write visible | wrong | calls over total_timeout+100ms | longest call |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| %d | %d | %d | %d | %d | %d | %d | %d | %v |\n\n", st.ops.Load(), st.failed.Load(), st.right.Load(), st.stale.Load(),
		st.lost.Load(), st.unacked.Load(), st.wrong.Load(), st.overLimit.Load(), time.Duration(st.maxCall.Load()).Round(time.Millisecond))
	fmt.Printf("Failed GETs %d, failed SETs %d.\n\nError mix:\n\n", st.getFailed.Load(), st.setFailed.Load())
	kinds := make([]string, 0, len(st.errKinds))
	for k := range st.errKinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return st.errKinds[b] - st.errKinds[a] })
	for _, k := range kinds {
		fmt.Printf("- %s: %d\n", k, st.errKinds[k])
	}
	if len(kinds) == 0 {
		fmt.Printf("- none\n")
	}
	fmt.Printf("\nGoroutines %d before the DB, %d after Close; open files %d before, %d after.\n", goroutinesBefore, goroutinesAfter, fdsBefore, fdsAfter)
	var fail []string
	if n := st.wrong.Load(); n > 0 {
		fail = append(fail, fmt.Sprintf("%d wrong values (first: %s)", n, st.firstWrong))
	}
	if n := st.overLimit.Load(); n > 0 {
		fail = append(fail, fmt.Sprintf("%d calls over total_timeout + 100ms", n))
	}
	if goroutinesAfter > goroutinesBefore {
		fail = append(fail, fmt.Sprintf("goroutines grew from %d to %d", goroutinesBefore, goroutinesAfter))
	}
	if fdsAfter > fdsBefore {
		fail = append(fail, fmt.Sprintf("open files grew from %d to %d", fdsBefore, fdsAfter))
	}
	if len(fail) > 0 {
		return errors.New("chaos: " + strings.Join(fail, "; "))
	}
	return nil
}

// chaosKeys is the number of keys each worker owns.
const chaosKeys = 32

func chaosWorker(ctx context.Context, db *sqlish.DB, w int, st *chaosStats, stop *atomic.Bool, total time.Duration) {
	type keyState struct {
		acked, attempted int // versions
	}
	keys := make([]string, chaosKeys)
	states := make([]keyState, chaosKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("chaos:w%d:k%d", w, i)
	}
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	limit := total + 100*time.Millisecond
	for !stop.Load() {
		i := rng.IntN(chaosKeys)
		k, s := keys[i], &states[i]
		start := time.Now()
		var err error
		set := rng.IntN(5) == 0
		var got []byte
		if set {
			v := s.attempted + 1
			s.attempted = v
			_, err = db.Exec(ctx, "SET ? ?", k, k+":"+strconv.Itoa(v))
			if err == nil {
				s.acked = v
			}
		} else {
			err = db.QueryRow(ctx, "GET ?", k).Scan(&got)
		}
		d := time.Since(start)
		st.ops.Add(1)
		for {
			m := st.maxCall.Load()
			if int64(d) <= m || st.maxCall.CompareAndSwap(m, int64(d)) {
				break
			}
		}
		if d > limit {
			st.overLimit.Add(1)
		}
		switch {
		case set && err != nil:
			st.setFailed.Add(1)
			st.err(err)
			continue
		case set:
			continue
		case errors.Is(err, sqlish.ErrNoRows):
			if s.acked > 0 {
				st.lost.Add(1)
			} else {
				st.right.Add(1)
			}
			continue
		case err != nil:
			st.getFailed.Add(1)
			st.err(err)
			continue
		}
		ver, ok := strings.CutPrefix(string(got), k+":")
		n, perr := strconv.Atoi(ver)
		switch {
		case !ok || perr != nil || n < 1 || n > s.attempted:
			st.wrong.Add(1)
			st.errMu.Lock()
			if st.firstWrong == "" {
				st.firstWrong = fmt.Sprintf("GET %s = %q (last acknowledged version %d, last attempted %d)", k, got, s.acked, s.attempted)
			}
			st.errMu.Unlock()
		case n == s.acked:
			st.right.Add(1)
		case n < s.acked:
			st.stale.Add(1)
		default:
			st.unacked.Add(1)
		}
	}
}

// chaosFaults injects one fault at a time until stop: a node SIGKILLed and
// restarted 4-7 s later (after its replica took over), or SIGSTOPped for
// 1-4 s; 1-3 s of calm between faults.
func chaosFaults(cl *redistest.Cluster, st *chaosStats, stop *atomic.Bool, d time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	end := time.Now().Add(d)
	sleep := func(d time.Duration) {
		if left := time.Until(end); d > left {
			d = max(left, 0)
		}
		time.Sleep(d)
	}
	for time.Now().Before(end) && !stop.Load() {
		sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		if !time.Now().Before(end) {
			break
		}
		n := cl.Nodes[rng.IntN(len(cl.Nodes))]
		if rng.IntN(2) == 0 {
			n.Kill()
			st.faults = append(st.faults, "kill "+strconv.Itoa(n.Port))
			time.Sleep(time.Duration(4000+rng.IntN(3000)) * time.Millisecond)
			n.Restart()
		} else {
			n.Stop()
			st.faults = append(st.faults, "stop "+strconv.Itoa(n.Port))
			time.Sleep(time.Duration(1000+rng.IntN(3000)) * time.Millisecond)
			n.Cont()
		}
	}
}

// openFiles counts the process' open file descriptors (-1 when unknown).
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
