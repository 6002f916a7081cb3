package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/sqlish"
)

func newConform() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "conform DSN",
		Short: "Run the driver conformance suite against a database and print a pass/fail table",
		Long: `Run the conformance suite (the same checks drivers run in their CI) against
the database a DSN names. It writes, reads and deletes keys of its own; point it
at a database you can scribble on. Exits non-zero when a check fails.`,
		Example: `  tendril conform memory://conform
  tendril conform redis://127.0.0.1:6379`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dsn := args[0]
			cfg, err := sqlish.ParseDSN(dsn)
			if err != nil {
				return err
			}
			if _, ok := driver.Lookup(cfg.Scheme); !ok {
				return fmt.Errorf("unknown driver %q (registered: %s)", cfg.Scheme, strings.Join(sqlish.Drivers(), ", "))
			}
			var dialect conformance.Dialect
			switch cfg.Scheme {
			case "redis", "valkey", "memory":
				dialect = conformance.RedisDialect()
			case "postgres", "postgresql":
				dialect = conformance.PostgresDialect()
			default:
				return fmt.Errorf("no conformance dialect for driver %q (the suite knows redis, valkey, memory and postgres)", cfg.Scheme)
			}
			// The suite checks what the driver declares against what it does.
			db, err := open(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			caps := db.Backend().Caps
			db.Close()
			results := conformance.Check(cmd.Context(), conformance.Config{
				Driver: cfg.Scheme, DSN: dsn, Caps: caps, Dialect: dialect,
			})
			w := cmd.OutOrStdout()
			failed := 0
			for _, r := range results {
				if !r.Passed && !r.Skipped {
					failed++
				}
			}
			if asJSON {
				if err := writeJSON(w, results); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "check\tresult\ttime\tdetail")
				for _, r := range results {
					res := "pass"
					switch {
					case r.Skipped:
						res = "skip"
					case !r.Passed:
						res = "FAIL"
					}
					detail := strings.ReplaceAll(strings.TrimSpace(r.Reason), "\n", " | ")
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", r.Name, res, r.Duration.Round(time.Millisecond), detail)
				}
				tw.Flush()
				fmt.Fprintf(w, "%d checks, %d failed\n", len(results), failed)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d conformance checks failed", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
