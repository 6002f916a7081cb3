package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tendril-db/tendril/sqlish"
)

func newNodes() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nodes DSN",
		Short: "Print the live topology: every node with its role, slots, health and pool",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer db.Close()
			s := db.Stats()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), s.Nodes)
			}
			printNodes(cmd.OutOrStdout(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func newInfo() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info DSN [CMD]",
		Short: "Run an info command (Redis: INFO [section]) on every node",
		Example: `  tendril info memory://demo keyspace
  tendril info redis://127.0.0.1:7000 "INFO replication"`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer db.Close()
			what := ""
			if len(args) == 2 {
				what = args[1]
			}
			res, err := db.InfoAll(cmd.Context(), what)
			if res == nil && err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if jerr := writeJSON(w, res); jerr != nil {
					return jerr
				}
			} else {
				printInfo(w, res)
			}
			return err // a partial failure still prints what the others said
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (node address → text) instead of text")
	return cmd
}

func printInfo(w io.Writer, res map[string]string) {
	addrs := slices.Sorted(func(yield func(string) bool) {
		for a := range res {
			if !yield(a) {
				return
			}
		}
	})
	for i, a := range addrs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s\n%s\n", a, strings.TrimRight(strings.ReplaceAll(res[a], "\r\n", "\n"), "\n"))
	}
}

// printNodes prints the node table with pool gauges and counters.
func printNodes(w io.Writer, s sqlish.Stats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "node\taddr\trole\tslots\thealthy\topen\tidle\tin use\twaiting\tacquired\ttimeouts\tcreated\tclosed")
	for _, n := range s.Nodes {
		p := n.Pool
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
			n.ID, n.Addr, n.Role, n.Partitions, n.Healthy, p.Total, p.Idle, p.InUse, p.Waiting, p.Acquired, p.Timeouts, p.Created, p.Closed())
	}
	tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
