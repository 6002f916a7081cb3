package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" with database/sql

	_ "github.com/tendril-db/tendril/driver/postgres" // registers "postgres"
	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// The PostgreSQL comparison (-pg): tendril's postgres driver against
// pgxpool and database/sql with pgx/stdlib, on one local PostgreSQL 15
// server, each with the same number of connections as goroutines.
//
//   - select: SELECT $1::int with a fresh argument, the result checked;
//   - batch: 100 such statements pipelined (tendril SendBatch, pgx
//     SendBatch; database/sql has no batches and sits that one out).
//
// Points are interleaved across clients and repeated -rounds times; the
// median is reported, with allocations per operation.

type pgClient struct {
	name  string
	sel   func(ctx context.Context, n int32) error
	batch func(ctx context.Context, base int32, n int) error // nil: not offered
	close func()
}

func openPGClients(ctx context.Context, srv *pgtest.Server, conns int) ([]pgClient, error) {
	var out []pgClient
	db, err := sqlish.Connect(ctx, "postgres", srv.DSN(fmt.Sprintf("max_conns_per_node=%d", conns), "min_conns_per_node="+fmt.Sprint(conns)))
	if err != nil {
		return nil, fmt.Errorf("tendril: %w", err)
	}
	// min_conns_per_node fills the pool in the background, max_connecting
	// (2) dials at a time: wait for it, as pgxpool is given its MinConns.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st := db.Stats(); len(st.Nodes) > 0 && st.Nodes[0].Pool.Idle >= int32(conns) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("tendril: the pool did not reach %d idle connections in 30s: %+v", conns, db.Stats().Nodes)
		}
	}
	out = append(out, pgClient{
		name: "tendril",
		sel: func(ctx context.Context, n int32) error {
			var got int32
			if err := db.QueryRow(ctx, "SELECT $1::int", n).Scan(&got); err != nil {
				return err
			}
			return check(got, n)
		},
		batch: func(ctx context.Context, base int32, n int) error {
			var b sqlish.Batch
			for i := range n {
				b.Queue("SELECT $1::int", base+int32(i))
			}
			br := db.SendBatch(ctx, &b)
			defer br.Close()
			for i := range n {
				var got int32
				if err := br.QueryRow().Scan(&got); err != nil {
					return err
				}
				if err := check(got, base+int32(i)); err != nil {
					return err
				}
			}
			return br.Close()
		},
		close: func() { db.Close() },
	})

	pcfg, err := pgxpool.ParseConfig(srv.DSN())
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns, pcfg.MinConns = int32(conns), int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgxpool: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); pool.Stat().IdleConns() < int32(conns); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pgxpool: %d idle connections after 30s, want %d", pool.Stat().IdleConns(), conns)
		}
	}
	out = append(out, pgClient{
		name: "pgxpool",
		sel: func(ctx context.Context, n int32) error {
			var got int32
			if err := pool.QueryRow(ctx, "SELECT $1::int", n).Scan(&got); err != nil {
				return err
			}
			return check(got, n)
		},
		batch: func(ctx context.Context, base int32, n int) error {
			b := &pgx.Batch{}
			for i := range n {
				b.Queue("SELECT $1::int", base+int32(i))
			}
			br := pool.SendBatch(ctx, b)
			defer br.Close()
			for i := range n {
				var got int32
				if err := br.QueryRow().Scan(&got); err != nil {
					return err
				}
				if err := check(got, base+int32(i)); err != nil {
					return err
				}
			}
			return br.Close()
		},
		close: pool.Close,
	})

	sdb, err := sql.Open("pgx", srv.DSN())
	if err != nil {
		return nil, err
	}
	sdb.SetMaxOpenConns(conns)
	sdb.SetMaxIdleConns(conns)
	out = append(out, pgClient{
		name: "database/sql+pgx",
		sel: func(ctx context.Context, n int32) error {
			var got int32
			if err := sdb.QueryRowContext(ctx, "SELECT $1::int", n).Scan(&got); err != nil {
				return err
			}
			return check(got, n)
		},
		close: func() { sdb.Close() },
	})
	return out, nil
}

func check(got, want int32) error {
	if got != want {
		return fmt.Errorf("SELECT $1::int returned %d for %d", got, want)
	}
	return nil
}

func runPG() error {
	tb := newTB("pg")
	defer tb.done()
	t0 := time.Now()
	srv := pgtest.StartPrimary(tb, pgtest.WithConfig("max_connections = 300"))
	log.Printf("pg: PostgreSQL 15 up in %s at %s", time.Since(t0).Round(time.Millisecond), srv.Addr)
	gs, err := parseInts(*pgGoroutines)
	if err != nil {
		return err
	}
	ctx := context.Background()
	type key struct {
		wl     string
		g      int
		client string
	}
	res := map[key][]pointResult{}
	var names []string
	ws := make([]*worker, slices.Max(gs))
	for i := range ws {
		ws[i] = &worker{}
	}
	for r := range *rounds {
		for _, g := range gs {
			// Each point opens its clients with g connections each.
			octx, cancel := context.WithTimeout(ctx, 30*time.Second)
			clients, err := openPGClients(octx, srv, g)
			cancel()
			if err != nil {
				return err
			}
			if names == nil {
				for _, c := range clients {
					names = append(names, c.name)
				}
			}
			for _, wl := range []string{"select", "batch"} {
				for k := range clients {
					c := clients[(k+r)%len(clients)]
					var fn func(context.Context, *worker) error
					switch {
					case wl == "select":
						fn = func(ctx context.Context, w *worker) error { return c.sel(ctx, int32(w.next()>>34)) }
					case c.batch != nil:
						fn = func(ctx context.Context, w *worker) error { return c.batch(ctx, int32(w.next()>>40), 100) }
					default:
						continue
					}
					pr := runFunc(fn, g, *warmupFlag, *duration, ws)
					res[key{wl, g, c.name}] = append(res[key{wl, g, c.name}], pr)
					msg := ""
					if pr.errs > 0 {
						msg = fmt.Sprintf(" errors %d (first: %v)", pr.errs, pr.firstErr)
					}
					log.Printf("round %d/%d %-6s g=%-3d %-17s %9.0f ops/s  p50 %8s  p99 %8s  %6.1f allocs/op%s",
						r+1, *rounds, wl, g, c.name, pr.opsPerSec(), fmtDur(pr.h.quantile(0.5)),
						fmtDur(pr.h.quantile(0.99)), pr.allocsPerOp(), msg)
				}
			}
			for _, c := range clients {
				c.close()
			}
		}
	}
	median := func(rs []pointResult) pointResult {
		rs = slices.Clone(rs) // the rounds keep their order, for the per-round ratios
		sort.Slice(rs, func(i, j int) bool { return rs[i].opsPerSec() < rs[j].opsPerSec() })
		return rs[len(rs)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# tendril vs pgxpool vs database/sql+pgx on PostgreSQL 15\n\n%s\n\n", machineLine())
	fmt.Fprintf(&b, "One local PostgreSQL 15 server (internal/pgtest, fsync off). `select` = `SELECT $1::int` with a fresh argument, "+
		"the result checked; `batch` = 100 of them pipelined in one batch (one op); each client has as many connections as "+
		"goroutines. %d round(s) of %s after %s of warm-up, clients interleaved, median; p99 in brackets; the last column is "+
		"the lowest and highest ratio within one round.\n\n",
		*rounds, *duration, *warmupFlag)
	b.WriteString("| workload | goroutines |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s ops/s (p99) | allocs/op |", n)
	}
	b.WriteString(" tendril ÷ pgxpool | tendril ÷ database/sql | tendril ÷ pgxpool, per round |\n|---|---:|")
	for range names {
		b.WriteString("---:|---:|")
	}
	b.WriteString("---:|---:|---:|\n")
	var errs uint64
	for _, wl := range []string{"select", "batch"} {
		for _, g := range gs {
			fmt.Fprintf(&b, "| %s | %d |", wl, g)
			ops := map[string]float64{}
			for _, n := range names {
				rs := res[key{wl, g, n}]
				if len(rs) == 0 {
					b.WriteString(" — | — |")
					continue
				}
				for _, r := range rs {
					errs += r.errs
				}
				m := median(rs)
				ops[n] = m.opsPerSec()
				fmt.Fprintf(&b, " %s (%s) | %.1f |", fmtRate(m.opsPerSec()), fmtDur(m.h.quantile(0.99)), m.allocsPerOp())
			}
			for _, peer := range []string{"pgxpool", "database/sql+pgx"} {
				if ops[peer] > 0 {
					fmt.Fprintf(&b, " %.2fx |", ops["tendril"]/ops[peer])
				} else {
					b.WriteString(" — |")
				}
			}
			// Ratios within each round (the clients ran seconds apart):
			// their spread says how far the medians' ratio can be trusted.
			var per []float64
			ts, ps := res[key{wl, g, "tendril"}], res[key{wl, g, "pgxpool"}]
			for i := range min(len(ts), len(ps)) {
				if ps[i].opsPerSec() > 0 {
					per = append(per, ts[i].opsPerSec()/ps[i].opsPerSec())
				}
			}
			if len(per) > 0 {
				fmt.Fprintf(&b, " %.2f–%.2fx |", slices.Min(per), slices.Max(per))
			} else {
				b.WriteString(" — |")
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\nClients: tendril (local checkout) with `max_conns_per_node` = goroutines; pgx %s pgxpool with MaxConns = goroutines; "+
		"database/sql with pgx/stdlib and SetMaxOpenConns = goroutines.\n", pgxVersion())
	md := b.String()
	fmt.Print(md)
	if *out != "" {
		name := *out
		if !isFlagSet("out") {
			name = "pg.md"
		}
		if err := os.WriteFile(name, []byte(md), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", name)
	}
	if errs > 0 {
		return errors.New("pg: some operations failed (see the log)")
	}
	return nil
}

// pgxVersion is the pgx module version this harness is built with.
func pgxVersion() string { return depVersion("github.com/jackc/pgx/v5") }
