package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runFaultDemo keeps a read/write workload running on an embedded memory
// cluster while one of its primaries is killed, its replica promoted and
// the old primary restarted, printing a live progress line. It shows the
// tender dropping the node and adding it back with no work lost beyond the
// writes that were in flight on the dead node.
func runFaultDemo(ctx context.Context, w io.Writer, db *sqlish.DB, workers int, d time.Duration) error {
	cfg := db.Config()
	cl := memory.Lookup(cfg.Hosts[0])
	if cfg.Scheme != "memory" || cl == nil {
		return nil // faults can only be injected into the embedded backend
	}
	var victim, replica memory.NodeInfo
	for _, n := range cl.Nodes() {
		if n.Role == driver.RolePrimary && victim.Addr == "" {
			victim = n
		}
	}
	for _, n := range cl.Nodes() {
		if n.PrimaryID == victim.ID {
			replica = n
		}
	}
	if victim.Addr == "" || replica.Addr == "" {
		fmt.Fprintln(w, "\n(fault demo skipped: it needs a primary with a replica, e.g. ?nodes=3&replicas=1)")
		return nil
	}
	fmt.Fprintf(w, "\nfault demo: %v of reads and writes; %s (primary) is killed at 1/4, %s promoted at 2/5, %s restarted at 3/5\n",
		d, victim.Addr, replica.Addr, victim.Addr)

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				k := "fault:" + strconv.Itoa((g*7919+i)%1000)
				var err error
				if i%2 == 0 {
					_, err = db.Exec(ctx, "SET ? ?", k, i)
				} else {
					err = db.QueryRow(ctx, "GET ?", k).Scan(new(string))
					if err == sqlish.ErrNoRows {
						err = nil
					}
				}
				switch {
				case err == nil:
					ok.Add(1)
				case ctx.Err() == nil:
					failed.Add(1)
				}
			}
		}()
	}

	start := time.Now()
	steps := []struct {
		at   time.Duration
		what string
		do   func() error
	}{
		{d / 4, "killed " + victim.Addr, func() error { return cl.Kill(victim.Addr) }},
		{d * 2 / 5, "promoted " + replica.Addr, func() error { return cl.Failover(replica.Addr) }},
		{d * 3 / 5, "restarted " + victim.Addr, func() error { return cl.Restart(victim.Addr) }},
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// On a terminal the progress line is redrawn in place; elsewhere (a
	// pipe, a log) a line is printed every half second.
	live := isTerminal(w)
	var events []string
	for n, done := 0, false; !done; n++ {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		el := time.Since(start)
		for len(steps) > 0 && el >= steps[0].at {
			if err := steps[0].do(); err != nil {
				return err
			}
			events = append(events, fmt.Sprintf("%.1fs %s", el.Seconds(), steps[0].what))
			if !live {
				fmt.Fprintln(w, "  "+events[len(events)-1])
			}
			steps = steps[1:]
		}
		healthy, total := 0, 0
		for _, n := range db.Nodes() {
			total++
			if n.Healthy {
				healthy++
			}
		}
		last := ""
		if len(events) > 0 {
			last = events[len(events)-1]
		}
		line := fmt.Sprintf("  %4.1fs  ok %8d  failed %5d  nodes healthy %d/%d  %-32s", el.Seconds(), ok.Load(), failed.Load(), healthy, total, last)
		switch {
		case live:
			fmt.Fprint(w, "\r"+line)
		case n%5 == 4 || done:
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
	wg.Wait()
	if live {
		fmt.Fprintln(w)
	}
	// The restarted node answers the tender's next probe: at the latest one
	// tend interval later, since nothing fails meanwhile to ask for a
	// refresh sooner.
	back := time.Now().Add(2*db.Config().TendInterval + time.Second)
	for time.Now().Before(back) && !nodeHealthy(db, victim.Addr) {
		time.Sleep(10 * time.Millisecond)
	}
	s := db.Stats()
	fmt.Fprintf(w, "  %d operations succeeded, %d failed; tender: %d nodes removed, %d added, %d refreshes (%d suppressed)\n",
		ok.Load(), failed.Load(), s.Topology.NodesRemoved, s.Topology.NodesAdded, s.Topology.RefreshesTriggered, s.Topology.RefreshesSuppressed)
	for _, n := range s.Nodes {
		if n.Addr == victim.Addr {
			fmt.Fprintf(w, "  %s is back as a %s, healthy=%v\n", n.Addr, n.Role, n.Healthy)
		}
	}
	return nil
}

// nodeHealthy reports whether the node at addr is in the table and healthy.
func nodeHealthy(db *sqlish.DB, addr string) bool {
	for _, n := range db.Nodes() {
		if n.Addr == addr {
			return n.Healthy
		}
	}
	return false
}
