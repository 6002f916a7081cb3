package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tendril-db/tendril/sqlish"
)

// defaultDSN is the embedded backend the demo runs on when given no DSN.
const defaultDSN = "memory://demo?nodes=3&replicas=1&max_conns_per_node=16&min_conns_per_node=2"

func newDemo() *cobra.Command {
	var (
		dsn     string
		keys    int
		workers int
		fault   time.Duration
		metrics string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Write and read keys from many goroutines, then print the stats",
		Long: `Write and read keys from many goroutines, then print what was done and the
pool statistics. Without --dsn it runs on the embedded in-process memory
backend, so it needs no server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keys < 1 || workers < 1 {
				return fmt.Errorf("--keys and --workers must be at least 1 (got %d and %d)", keys, workers)
			}
			m, err := startMetrics(cmd.OutOrStdout(), metrics)
			if err != nil {
				return err
			}
			defer m.stop()
			db, err := openWith(cmd.Context(), dsn, m.configure)
			if err != nil {
				return err
			}
			defer db.Close()
			w := cmd.OutOrStdout()
			if err := runDemo(cmd.Context(), w, db, keys, workers); err != nil {
				return err
			}
			if fault > 0 {
				if err := runFaultDemo(cmd.Context(), w, db, workers, fault); err != nil {
					return err
				}
			}
			return m.wait(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&dsn, "dsn", defaultDSN, "the database to run on")
	cmd.Flags().IntVar(&keys, "keys", 5000, "keys to write and read back")
	cmd.Flags().IntVar(&workers, "workers", 32, "goroutines sharing the work")
	cmd.Flags().DurationVar(&fault, "fault", 3*time.Second,
		"on the embedded memory backend, keep a workload running this long while a primary is killed, failed over and restarted (0: skip)")
	cmd.Flags().StringVar(&metrics, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. :9464) during the demo, then until interrupted")
	return cmd
}

func runDemo(ctx context.Context, w io.Writer, db *sqlish.DB, keys, workers int) error {
	fmt.Fprintf(w, "tendril demo on %s: %d keys, %d goroutines\n", db.Config(), keys, workers)

	// Each phase hands key indexes to the workers through a channel and
	// counts outcomes; the first error stops the demo.
	phase := func(name string, op func(i int) error) (time.Duration, error) {
		start := time.Now()
		next := make(chan int)
		var (
			wg      sync.WaitGroup
			failed  atomic.Int64
			errOnce sync.Once
			first   error
		)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := op(i); err != nil {
						failed.Add(1)
						errOnce.Do(func() { first = err })
					}
				}
			}()
		}
	feed:
		for i := range keys {
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
		d := time.Since(start)
		if first == nil {
			first = ctx.Err()
		}
		if first != nil {
			return d, fmt.Errorf("%s: %d of %d operations failed, first: %w", name, failed.Load(), keys, first)
		}
		fmt.Fprintf(w, "  %-6s %6d ops in %8v  (%.0f ops/s)\n", name, keys, d.Round(time.Microsecond), float64(keys)/d.Seconds())
		return d, nil
	}

	key := func(i int) string { return "demo:key:" + strconv.Itoa(i) }
	if _, err := phase("SET", func(i int) error {
		_, err := db.Exec(ctx, "SET ? ? EX 600", key(i), "value-"+strconv.Itoa(i))
		return err
	}); err != nil {
		return err
	}
	if _, err := phase("GET", func(i int) error {
		var v string
		if err := db.QueryRow(ctx, "GET ?", key(i)).Scan(&v); err != nil {
			return err
		}
		if want := "value-" + strconv.Itoa(i); v != want {
			return fmt.Errorf("key %s: read %q, wrote %q", key(i), v, want)
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := phase("INCR", func(i int) error {
		_, err := db.Exec(ctx, "INCR demo:counter")
		return err
	}); err != nil {
		return err
	}
	var counter int64
	if err := db.QueryRow(ctx, "GET demo:counter").Scan(&counter); err != nil {
		return err
	}
	var b sqlish.Batch
	for i := range 100 {
		b.Queue("GET ?", key(i))
	}
	br := db.SendBatch(ctx, &b)
	for i := range 100 {
		var v string
		if err := br.QueryRow().Scan(&v); err != nil {
			return fmt.Errorf("batch GET %s: %w", key(i), err)
		}
		if want := "value-" + strconv.Itoa(i); v != want {
			return fmt.Errorf("batch GET %s: read %q, wrote %q", key(i), v, want)
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  every value read back as written; counter = %d; a batch of 100 GETs matched\n", counter)
	if _, err := db.Exec(ctx, "INCRBY demo:counter", -counter); err != nil {
		return err
	}
	printStats(w, db.Stats())
	return nil
}

func printStats(w io.Writer, s sqlish.Stats) {
	fmt.Fprintln(w, "\nnodes:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  node\taddr\trole\tslots\thealthy\topen\tidle\tin use\tacquired\twaited\tavg wait\tcreated\tclosed")
	for _, n := range s.Nodes {
		p := n.Pool
		var avg time.Duration
		if p.Waited > 0 {
			avg = p.WaitDuration / time.Duration(p.Waited)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%v\t%d\t%d\t%d\t%d\t%d\t%v\t%d\t%d\n",
			n.ID, n.Addr, n.Role, n.Partitions, n.Healthy, p.Total, p.Idle, p.InUse, p.Acquired, p.Waited, avg, p.Created, p.Closed())
	}
	tw.Flush()
	t := s.Topology
	fmt.Fprintf(w, "topology: %d tends (%d failed), %d probes, %d peer-list and %d partition-map fetches, %d nodes added, %d removed, %d refreshes (%d suppressed)\n",
		t.Tends, t.TendsFailed, t.Probes, t.PeerFetches, t.MapFetches, t.NodesAdded, t.NodesRemoved, t.RefreshesTriggered, t.RefreshesSuppressed)
}
