// Command tendril is the command-line client of tendril: run the demo on
// the embedded memory backend, or run statements against any DSN.
//
//	tendril demo
//	tendril exec memory://demo "SET ? ?" greeting hello
//	tendril exec redis://127.0.0.1:7000 "GET greeting"
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	_ "github.com/tendril-db/tendril/driver/memory"
	_ "github.com/tendril-db/tendril/driver/postgres"
	_ "github.com/tendril-db/tendril/driver/redis"
	"github.com/tendril-db/tendril/sqlish"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tendril:", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tendril",
		Short: "A cluster-aware database client",
		Long: `tendril talks to clustered databases through one API.

A DSN names the backend by its scheme and lists seed nodes:
  memory://demo                      the embedded in-process backend
  redis://user:pass@h1:7000,h2:7001  a Redis Cluster or standalone server

Drivers: ` + strings.Join(sqlish.Drivers(), ", "),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newDemo(), newExec(), newShell(), newNodes(), newInfo(), newConform(), newStats())
	return root
}

// open opens a DB whose driver is the DSN's scheme and waits for it.
func open(ctx context.Context, dsn string) (*sqlish.DB, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil, fmt.Errorf("DSN %q: want scheme://host[:port]... (schemes: %s)", redactDSN(dsn), strings.Join(sqlish.Drivers(), ", "))
	}
	return sqlish.Connect(ctx, scheme, dsn)
}

// redactDSN hides a password in a DSN that failed to parse.
func redactDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return "(unparsable)"
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if user, _, has := strings.Cut(rest[:at], ":"); has {
			return scheme + "://" + user + ":xxxxx" + rest[at:]
		}
	}
	return dsn
}
