package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/telemetry"
)

func newStats() *cobra.Command {
	var (
		asJSON      bool
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "stats DSN",
		Short: "Print the pool and topology statistics of a cluster",
		Long: `Connect, wait for the topology, and print every node (role, slots, health,
pool gauges and counters) and the tender's counters, as a table or, with
--json, as JSON. With --metrics-addr the same statistics are then served
as OpenTelemetry metrics on http://ADDR/metrics until interrupted.`,
		Example: `  tendril stats memory://demo
  tendril stats --json redis://127.0.0.1:7000
  tendril stats --metrics-addr :9464 redis://127.0.0.1:7000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := startMetrics(cmd.OutOrStdout(), metricsAddr)
			if err != nil {
				return err
			}
			defer m.stop()
			db, err := openWith(ctx, args[0], m.configure)
			if err != nil {
				return err
			}
			defer db.Close()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(statsJSON(db.Stats())); err != nil {
					return err
				}
			} else {
				printStats(cmd.OutOrStdout(), db.Stats())
			}
			return m.wait(ctx)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. :9464) until interrupted")
	return cmd
}

// openWith opens a DB whose driver is the DSN's scheme, with its Config
// changed by configure, and waits for it.
func openWith(ctx context.Context, dsn string, configure func(*sqlish.Config)) (*sqlish.DB, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return open(ctx, dsn) // reports the bad DSN
	}
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	configure(&cfg)
	return sqlish.ConnectConfig(ctx, scheme, cfg)
}

// metricsServer is the optional /metrics endpoint of a command.
type metricsServer struct {
	w    io.Writer
	prom *telemetry.Prometheus // nil without --metrics-addr
	addr string
}

// startMetrics starts serving /metrics on addr; with addr "" it does
// nothing.
func startMetrics(w io.Writer, addr string) (*metricsServer, error) {
	m := &metricsServer{w: w}
	if addr == "" {
		return m, nil
	}
	prom, err := telemetry.NewPrometheus(telemetry.WithGoCollectors())
	if err != nil {
		return nil, err
	}
	a, err := prom.Start(addr)
	if err != nil {
		prom.Stop(context.Background())
		return nil, err
	}
	m.prom, m.addr = prom, a.String()
	fmt.Fprintf(w, "serving metrics on http://%s/metrics\n", m.addr)
	return m, nil
}

// configure points a Config's metrics at the endpoint.
func (m *metricsServer) configure(c *sqlish.Config) {
	if m.prom != nil {
		c.MeterProvider = m.prom.MeterProvider()
	}
}

// wait keeps the endpoint up until ctx is done (interrupt); without an
// endpoint it returns at once.
func (m *metricsServer) wait(ctx context.Context) error {
	if m.prom == nil {
		return nil
	}
	fmt.Fprintf(m.w, "metrics stay on http://%s/metrics until interrupted (Ctrl-C)\n", m.addr)
	<-ctx.Done()
	return nil
}

func (m *metricsServer) stop() {
	if m.prom != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.prom.Stop(ctx)
	}
}

// The JSON shape of `tendril stats --json`: snake_case keys, durations in
// seconds.
type jsonStats struct {
	Nodes    []jsonNode   `json:"nodes"`
	Open     int          `json:"open"`
	Idle     int          `json:"idle"`
	InUse    int          `json:"in_use"`
	Topology jsonTopology `json:"topology"`
}

type jsonNode struct {
	ID          string   `json:"id"`
	Addr        string   `json:"addr"`
	Role        string   `json:"role"`
	Healthy     bool     `json:"healthy"`
	Slots       int      `json:"slots"`
	Failures    int      `json:"failures"`
	BreakerOpen bool     `json:"breaker_open"`
	Pool        jsonPool `json:"pool"`
}

type jsonPool struct {
	Max          int32            `json:"max"`
	Open         int32            `json:"open"`
	Idle         int32            `json:"idle"`
	InUse        int32            `json:"in_use"`
	Constructing int32            `json:"constructing"`
	Closing      int32            `json:"closing"`
	Waiting      int32            `json:"waiting"`
	Acquired     int64            `json:"acquired"`
	Waited       int64            `json:"waited"`
	WaitSeconds  float64          `json:"wait_seconds"`
	Timeouts     int64            `json:"timeouts"`
	Cancelled    int64            `json:"cancelled"`
	CheckOutErrs int64            `json:"checkout_errors"`
	Created      int64            `json:"created"`
	DialErrors   int64            `json:"dial_errors"`
	PingErrors   int64            `json:"ping_errors"`
	Closed       map[string]int64 `json:"closed"`
}

type jsonTopology struct {
	Tends               int64 `json:"tends"`
	TendsFailed         int64 `json:"tends_failed"`
	TendOverruns        int64 `json:"tend_overruns"`
	Probes              int64 `json:"probes"`
	PeerFetches         int64 `json:"peer_fetches"`
	MapFetches          int64 `json:"map_fetches"`
	MapUpdates          int64 `json:"map_updates"`
	Patches             int64 `json:"patches"`
	NodesAdded          int64 `json:"nodes_added"`
	NodesRemoved        int64 `json:"nodes_removed"`
	RefreshesTriggered  int64 `json:"refreshes_triggered"`
	RefreshesSuppressed int64 `json:"refreshes_suppressed"`
}

func statsJSON(s sqlish.Stats) jsonStats {
	out := jsonStats{Nodes: []jsonNode{}, Open: s.Open, Idle: s.Idle, InUse: s.InUse}
	for _, n := range s.Nodes {
		p := n.Pool
		out.Nodes = append(out.Nodes, jsonNode{
			ID: n.ID, Addr: n.Addr, Role: n.Role, Healthy: n.Healthy, Slots: n.Partitions, Failures: n.Failures,
			BreakerOpen: n.BreakerOpen,
			Pool: jsonPool{
				Max: p.MaxSize, Open: p.Total, Idle: p.Idle, InUse: p.InUse, Constructing: p.Constructing,
				Closing: p.Closing, Waiting: p.Waiting, Acquired: p.Acquired, Waited: p.Waited,
				WaitSeconds: p.WaitDuration.Seconds(), Timeouts: p.Timeouts, Cancelled: p.Cancelled,
				CheckOutErrs: p.CheckOutErrors, Created: p.Created, DialErrors: p.DialErrors, PingErrors: p.PingErrors,
				Closed: map[string]int64{"idle": p.ClosedIdle, "stale": p.ClosedLifetime, "error": p.ClosedError,
					"cleared": p.ClosedCleared, "pool_closed": p.ClosedPoolClosed},
			},
		})
	}
	t := s.Topology
	out.Topology = jsonTopology{
		Tends: t.Tends, TendsFailed: t.TendsFailed, TendOverruns: t.TendOverruns, Probes: t.Probes,
		PeerFetches: t.PeerFetches, MapFetches: t.MapFetches, MapUpdates: t.MapUpdates, Patches: t.Patches,
		NodesAdded: t.NodesAdded, NodesRemoved: t.NodesRemoved,
		RefreshesTriggered: t.RefreshesTriggered, RefreshesSuppressed: t.RefreshesSuppressed,
	}
	return out
}
