package rediscmd

import (
	"testing"

	"github.com/tendril-db/tendril/driver"
)

// The lookups every statement pays for: a known command in upper and in
// lower case, and an unknown one.
func BenchmarkLookup(b *testing.B) {
	for _, bc := range []struct {
		name string
		argv [][]byte
	}{
		{"GET", bs("GET", "k")},
		{"get", bs("get", "k")},
		{"hgetall", bs("hgetall", "k")},
		{"unknown", bs("NOSUCHCMD", "k")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Lookup(bc.argv)
			}
		})
	}
}

func BenchmarkRoute(b *testing.B) {
	for _, bc := range []struct {
		name string
		argv [][]byte
	}{
		{"GET", bs("GET", "user:1000")},
		{"set", bs("set", "user:1000", "v")},
		{"MGET", bs("MGET", "a", "b", "c")},
		{"PING", bs("PING")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Route(bc.argv)
			}
		})
	}
}

// RouteOf is what the connectors' Route does for every statement.
func BenchmarkRouteOf(b *testing.B) {
	args := []driver.Value{"user:1000"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RouteOf("GET ?", args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	args := []driver.Value{"user:1000", []byte("value")}
	c := Get()
	defer Put(c)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Parse("SET ? ? EX 60", args); err != nil {
			b.Fatal(err)
		}
	}
}
