package rediscmd

import (
	"bytes"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

// A statement parsed from its Template is the statement parsed from its
// text: the same arguments, the same error, the same route and Spec.
func FuzzTemplate(f *testing.F) {
	for _, q := range []string{
		"GET ?", "get ?", "SET ? ?", "SET ? ? EX 10", "SET k ? NX", "ZADD z ? m", "HSET h f ?",
		"CLIENT SETNAME ?", "client setname ?", "CONFIG GET ?", "CLIENT", "CLIENT ?", "? GET",
		"XREAD BLOCK 0 STREAMS s ?", "MGET ? ?", "EVAL 'return 1' 0", "SORT ? BY x STORE ?",
		"FOO ?", `SET "a b" ?`, `SET 'it\'s' ?`, `SET k "unbalanced`, "", "  ", "EXPIRE ? 60",
		"ZRANGE z 0 -1 WITHSCORES", "BLPOP ? 0", "MULTI", "SELECT ?", "SUBSCRIBE ?",
	} {
		for n := range 4 {
			f.Add(q, []byte("k\x00"), int64(-7), "s?", uint8(n))
		}
	}
	f.Add("SET ? ?", []byte{}, int64(0), "", uint8(1))
	f.Fuzz(func(t *testing.T, query string, b []byte, i int64, s string, n uint8) {
		args := []driver.Value{b, i, s}[:n%4]
		tpl := Compile(query)
		if tpl == nil {
			return // Parse says why, or runs it (CLIENT alone)
		}
		if !tpl.Is(query) {
			t.Fatalf("Compile(%q).Is(its query) = false", query)
		}
		var want, got Cmd
		werr := want.ParseRef(query, args, BigArg)
		name, spec, gerr := got.ParseTemplate(tpl, args)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%q %v: Parse: %v, template: %v", query, args, werr, gerr)
		}
		if werr != nil {
			return
		}
		if len(want.Argv) != len(got.Argv) {
			t.Fatalf("%q %v: Parse: %q, template: %q", query, args, want.Argv, got.Argv)
		}
		for k := range want.Argv {
			if !bytes.Equal(want.Argv[k], got.Argv[k]) {
				t.Fatalf("%q %v: Parse: %q, template: %q", query, args, want.Argv, got.Argv)
			}
		}
		wname, wspec := Lookup(want.Argv)
		if name != wname || spec != wspec {
			t.Fatalf("%q: Lookup: %s %p, template: %s %p", query, wname, wspec, name, spec)
		}
		wr, gr := Route(want.Argv), RouteWith(got.Argv, name, spec)
		if !bytes.Equal(wr.Key, gr.Key) {
			t.Fatalf("%q %v: route key %q, template's %q", query, args, wr.Key, gr.Key)
		}
		if wr.Op != gr.Op || wr.Partition != gr.Partition || wr.Intent != gr.Intent || wr.Idempotent != gr.Idempotent ||
			wr.Exclusive != gr.Exclusive || wr.Unsure != gr.Unsure || wr.Session != gr.Session {
			t.Fatalf("%q %v: route %+v, template's %+v", query, args, wr, gr)
		}
	})
}
