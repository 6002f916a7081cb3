package conn

import (
	"context"
	"testing"
	"time"
)

// Round trips against the fake server over loopback TCP. The server does not
// record lines, so allocations are the client's (plus the line decoder's one
// string per reply).

func benchConn(b *testing.B) *Conn[string] {
	s := newFakeServer(b)
	s.record = false
	return dialLine(b, Options{Addr: s.addr}, nil)
}

func BenchmarkDo(b *testing.B) {
	c := benchConn(b)
	frame := echo("0123456789")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.Do(ctx, frame, 1)
		if err != nil || len(r[0]) != 10 {
			b.Fatal(r, err)
		}
	}
}

func BenchmarkDoParallel(b *testing.B) {
	c := benchConn(b)
	frame := echo("0123456789")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			r, err := c.Do(ctx, frame, 1)
			if err != nil || len(r[0]) != 10 {
				b.Error(r, err)
				return
			}
		}
	})
}

// With a cancellable context (the select path).
func BenchmarkDoParallelCtx(b *testing.B) {
	c := benchConn(b)
	frame := echo("0123456789")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			r, err := c.Do(ctx, frame, 1)
			if err != nil || len(r[0]) != 10 {
				b.Error(r, err)
				return
			}
		}
	})
}

// 64 goroutines per CPU: callers queue up behind the writer, and one write
// and one read carry many requests.
func BenchmarkDoParallel64(b *testing.B) {
	c := benchConn(b)
	frame := echo("0123456789")
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			r, err := c.Do(ctx, frame, 1)
			if err != nil || len(r[0]) != 10 {
				b.Error(r, err)
				return
			}
		}
	})
}

// The cost of read-deadline bookkeeping (ReadTimeout > 0).
func BenchmarkDoParallel64ReadTimeout(b *testing.B) {
	s := newFakeServer(b)
	s.record = false
	c := dialLine(b, Options{Addr: s.addr, ReadTimeout: time.Second}, nil)
	frame := echo("0123456789")
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			r, err := c.Do(ctx, frame, 1)
			if err != nil || len(r[0]) != 10 {
				b.Error(r, err)
				return
			}
		}
	})
}
