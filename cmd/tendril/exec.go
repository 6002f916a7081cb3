package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tendril-db/tendril/sqlish"
)

func newExec() *cobra.Command {
	return &cobra.Command{
		Use:   "exec DSN STATEMENT [ARGS...]",
		Short: "Run one statement and print its rows",
		Long: `Run one statement and print its rows.

Each ? in the statement takes the next argument; arguments beyond the
placeholders are appended. Arguments are passed as strings.`,
		Example: `  tendril exec memory://demo "SET ? ? EX 60" greeting hello
  tendril exec memory://demo "GET greeting"
  tendril exec memory://demo HGETALL user:1`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer db.Close()
			vals := make([]any, len(args)-2)
			for i, a := range args[2:] {
				vals[i] = a
			}
			rows, err := db.Query(cmd.Context(), args[1], vals...)
			if err != nil {
				return err
			}
			return printRows(cmd.OutOrStdout(), rows)
		},
	}
}

// printRows prints rows as an aligned table with a header, then a count.
func printRows(w io.Writer, rows *sqlish.Rows) error {
	defer rows.Close()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cols := rows.Columns()
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = format(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "(%d row%s)\n", n, plural(n))
	return nil
}

// format renders a value for a person: printable text as it is, other
// bytes quoted, nil as (nil).
func format(v any) string {
	switch v := v.(type) {
	case nil:
		return "(nil)"
	case []byte:
		return text(string(v))
	case string:
		return text(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = format(x)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}

func text(s string) string {
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\t\r\n\x00") || s == "" {
		return strconv.Quote(s)
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
