package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tendril-db/tendril/sqlish"
)

func newShell() *cobra.Command {
	return &cobra.Command{
		Use:   "shell DSN",
		Short: "Run statements interactively",
		Long: `Run statements interactively, one per line. Errors are shown and the shell
goes on. On a terminal, the arrow keys recall earlier lines.

Commands:
  \nodes        the live topology
  \stats        pool and topology statistics
  \info [CMD]   an info command on every node
  \help         this list
  \q            quit (so does end of input)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer db.Close()
			in, out := cmd.InOrStdin(), cmd.OutOrStdout()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				state, err := term.MakeRaw(int(f.Fd()))
				if err != nil {
					return err
				}
				defer term.Restore(int(f.Fd()), state)
				t := term.NewTerminal(struct {
					io.Reader
					io.Writer
				}{f, out}, "tendril> ")
				return repl(cmd.Context(), db, t.ReadLine, t)
			}
			sc := bufio.NewScanner(in)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			read := func() (string, error) {
				if !sc.Scan() {
					if err := sc.Err(); err != nil {
						return "", err
					}
					return "", io.EOF
				}
				return sc.Text(), nil
			}
			return repl(cmd.Context(), db, read, out)
		},
	}
}

// repl reads lines until \q or end of input and runs each one.
func repl(ctx context.Context, db *sqlish.DB, read func() (string, error), w io.Writer) error {
	for {
		line, err := read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if quit := runLine(ctx, db, line, w); quit {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// runLine runs one shell line and reports whether the shell should end.
func runLine(ctx context.Context, db *sqlish.DB, line string, w io.Writer) bool {
	cmd, rest, _ := strings.Cut(line, " ")
	var err error
	switch cmd {
	case `\q`, `\quit`, `exit`, `quit`:
		return true
	case `\help`, `\?`:
		fmt.Fprintln(w, `statements run as typed; \nodes, \stats, \info [CMD], \q`)
	case `\nodes`:
		printNodes(w, db.Stats())
	case `\stats`:
		s := db.Stats()
		printNodes(w, s)
		t := s.Topology
		fmt.Fprintf(w, "tends %d (failed %d), probes %d, peer fetches %d, map fetches %d, nodes added %d, removed %d, refreshes %d (suppressed %d)\n",
			t.Tends, t.TendsFailed, t.Probes, t.PeerFetches, t.MapFetches, t.NodesAdded, t.NodesRemoved, t.RefreshesTriggered, t.RefreshesSuppressed)
	case `\info`:
		var res map[string]string
		res, err = db.InfoAll(ctx, strings.TrimSpace(rest))
		printInfo(w, res)
	default:
		if strings.HasPrefix(cmd, `\`) {
			err = fmt.Errorf("unknown command %s (try \\help)", cmd)
			break
		}
		var rows *sqlish.Rows
		if rows, err = db.Query(ctx, line); err == nil {
			err = printRows(w, rows)
		}
	}
	if err != nil {
		fmt.Fprintln(w, "error:", err)
	}
	return false
}
