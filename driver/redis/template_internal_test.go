package redis

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"testing"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// RoutePrepare compiles a statement's text the second time in a row it
// sees it (in its cache slot), and routes and encodes it from the Template
// after that exactly as from its text; texts seen once (values written
// into them) are never compiled.
func TestRoutePrepareTemplates(t *testing.T) {
	c := &connector{seed: maphash.MakeSeed()}
	for i := range 1000 {
		q := fmt.Sprintf("GET key:%d", i)
		if _, _, err := c.RoutePrepare(q, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.tpls {
		if c.tpls[i].Load() != nil {
			t.Fatalf("a text seen once was compiled: %+v", c.tpls[i].Load())
		}
	}
	for _, st := range []struct {
		q    string
		args []driver.Value
	}{
		{"GET ?", []driver.Value{"k"}},
		{"SET ? ? NX", []driver.Value{[]byte("k2"), int64(5)}},
		{"ZADD z ? m", []driver.Value{1.5}},
		{"GET ?", []driver.Value{nil}},
		{"SET ? ?", []driver.Value{"k"}},
	} {
		var first driver.Route
		var firstBuf []byte
		var firstErr error
		for n := range 3 {
			r, buf, err := c.RoutePrepare(st.q, st.args, []byte("x"))
			if n == 0 {
				first, firstBuf, firstErr = r, buf, err
				continue
			}
			if fmt.Sprint(err) != fmt.Sprint(firstErr) || !bytes.Equal(buf, firstBuf) || fmt.Sprint(r) != fmt.Sprint(first) {
				t.Fatalf("%q, call %d: %+v %q %v; first call: %+v %q %v", st.q, n+1, r, buf, err, first, firstBuf, firstErr)
			}
		}
		if tp := c.template(st.q); tp == nil || !tp.Is(st.q) {
			t.Fatalf("%q not compiled after 3 calls", st.q)
		}
	}
	// Another text in the slot of a compiled one is not taken for it.
	h := maphash.String(c.seed, "GET ?") % uint64(len(c.tpls))
	for i := 0; ; i++ {
		q := fmt.Sprintf("SET k%d ?", i)
		if maphash.String(c.seed, q)%uint64(len(c.tpls)) != h {
			continue
		}
		if tp := c.template(q); tp != nil {
			t.Fatalf("%q, first seen, got the Template of another text: %+v", q, tp)
		}
		break
	}
}

// BenchmarkRoutePrepare: routing and encoding 100 GETs of a batch, from the
// statement's text each time or from its Template.
func BenchmarkRoutePrepare(b *testing.B) {
	keys := make([]driver.Value, 100)
	for i := range keys {
		keys[i] = fmt.Sprint("key:", i)
	}
	var buf []byte
	b.Run("text", func(b *testing.B) {
		for b.Loop() {
			buf = buf[:0]
			for _, k := range keys {
				cmd := rediscmd.Get()
				if err := cmd.ParseRef("GET ?", []driver.Value{k}, rediscmd.BigArg); err != nil {
					b.Fatal(err)
				}
				_, spec := rediscmd.RouteSpec(cmd.Argv)
				buf = append(buf, byte(spec.ReplyShape(cmd.Argv)))
				buf = resp.AppendCommand(buf, cmd.Argv...)
				rediscmd.Put(cmd)
			}
		}
	})
	b.Run("template", func(b *testing.B) {
		c := &connector{seed: maphash.MakeSeed()}
		for b.Loop() {
			buf = buf[:0]
			for _, k := range keys {
				var err error
				if _, buf, err = c.RoutePrepare("GET ?", []driver.Value{k}, buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
