package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/proto/resp"
)

// respDecoder adapts resp.Reader to Decoder. ReadValue reuses the buffers of
// the Value it decodes into; the Conn always passes a zeroed Value, so every
// reply gets buffers of its own.
type respDecoder struct{ r *resp.Reader }

func (d respDecoder) Decode(v *resp.Value) error { return d.r.ReadValue(v) }
func (d respDecoder) Buffered() int              { return d.r.Buffered() }
func (d respDecoder) DecodeOrSkip(v *resp.Value, skip func() bool) (bool, error) {
	if _, err := d.r.Peek(); err != nil {
		return false, err
	}
	if skip() {
		return d.r.SkipReply(v)
	}
	return false, d.r.ReadValue(v)
}

func respCodec(onPush func(resp.Value)) Codec[resp.Value] {
	return Codec[resp.Value]{
		NewDecoder: func(rd io.Reader) Decoder[resp.Value] { return respDecoder{resp.NewReader(rd)} },
		IsPush:     func(v *resp.Value) bool { return v.Kind == resp.KindPush },
		OnPush:     onPush,
	}
}

func dialRedis(t *testing.T, s *redistest.Server, opts Options, onPush func(resp.Value)) *Conn[resp.Value] {
	t.Helper()
	opts.Addr = s.Addr
	opts.TLS = s.TLSConfig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, opts, respCodec(onPush))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func redisDo(t *testing.T, c *Conn[resp.Value], args ...string) resp.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Do(ctx, resp.AppendCommandString(nil, args...), 1)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if r[0].IsError() {
		t.Fatalf("%v: %v", args, r[0].Err())
	}
	return r[0]
}

func TestRedis(t *testing.T) {
	s := redistest.StartServer(t)
	c := dialRedis(t, s, Options{ReadTimeout: 5 * time.Second}, nil)

	if v := redisDo(t, c, "PING"); v.Kind != resp.KindSimpleString || string(v.Str) != "PONG" {
		t.Fatalf("PING: %v", v)
	}

	t.Run("pipelined SET/GET from 50 goroutines", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var frame []byte
				for i := range 40 {
					key := fmt.Sprintf("k:%d:%d", g, i)
					val := fmt.Sprintf("v:%d:%d", g, i)
					frame = resp.AppendCommandString(frame[:0], "SET", key, val)
					frame = resp.AppendCommandString(frame, "GET", key)
					r, err := c.Do(context.Background(), frame, 2)
					if err != nil {
						t.Error(err)
						return
					}
					if string(r[0].Str) != "OK" || string(r[1].Str) != val {
						t.Errorf("%s: got %v, %v; want OK, %q", key, r[0], r[1], val)
						return
					}
					// And single commands interleaved with the pipelines.
					r, err = c.Do(context.Background(), resp.AppendCommandString(nil, "GET", key), 1)
					if err != nil || string(r[0].Str) != val {
						t.Errorf("GET %s: %v, %v", key, r, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got := s.MustDo("DBSIZE"); got != "2000" {
			t.Errorf("DBSIZE = %s", got)
		}
	})

	t.Run("error reply is a reply", func(t *testing.T) {
		r, err := c.Do(context.Background(), resp.AppendCommandString(nil, "NOSUCHCOMMAND"), 1)
		if err != nil || !r[0].IsError() {
			t.Fatalf("got %v, %v", r, err)
		}
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
	})
}

// HELLO 3 + CLIENT TRACKING: invalidation pushes go to OnPush, never to a
// request, even while requests are in flight.
func TestRedisPush(t *testing.T) {
	s := redistest.StartServer(t)
	pushes := make(chan resp.Value, 16)
	c := dialRedis(t, s, Options{}, func(v resp.Value) { pushes <- v })

	if v := redisDo(t, c, "HELLO", "3"); v.Kind != resp.KindMap {
		t.Fatalf("HELLO 3: %v", v)
	}
	redisDo(t, c, "CLIENT", "TRACKING", "on")
	redisDo(t, c, "SET", "tracked", "1")
	if v := redisDo(t, c, "GET", "tracked"); string(v.Str) != "1" {
		t.Fatalf("GET: %v", v)
	}
	// Another connection modifies the key: the server pushes an invalidation.
	s.MustDo("SET", "tracked", "2")
	select {
	case p := <-pushes:
		if len(p.Elems) != 2 || string(p.Elems[0].Str) != "invalidate" ||
			len(p.Elems[1].Elems) != 1 || string(p.Elems[1].Elems[0].Str) != "tracked" {
			t.Fatalf("push %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no invalidation push")
	}
	// Our own write to a tracked key: the push arrives in the middle of the
	// pipeline's replies and must not take a slot.
	redisDo(t, c, "GET", "tracked")
	r, err := c.Do(context.Background(), append(
		resp.AppendCommandString(nil, "SET", "tracked", "3"),
		resp.AppendCommandString(nil, "GET", "tracked")...), 2)
	if err != nil || string(r[0].Str) != "OK" || string(r[1].Str) != "3" {
		t.Fatalf("pipeline: %v, %v", r, err)
	}
	select {
	case p := <-pushes:
		if string(p.Elems[0].Str) != "invalidate" {
			t.Fatalf("push %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no second invalidation push")
	}
	if v := redisDo(t, c, "PING"); string(v.Str) != "PONG" {
		t.Fatalf("PING after pushes: %v", v)
	}
}

// A hung server (SIGSTOP) trips ReadTimeout; a killed one breaks the Conn.
func TestRedisFailures(t *testing.T) {
	t.Run("hung", func(t *testing.T) {
		s := redistest.StartServer(t)
		c := dialRedis(t, s, Options{ReadTimeout: 100 * time.Millisecond}, nil)
		redisDo(t, c, "PING")
		s.Stop()
		defer s.Cont()
		_, err := c.Do(context.Background(), resp.AppendCommandString(nil, "PING"), 1)
		if ce := closeError(t, err); ce.Reason != ReasonTimeout {
			t.Fatalf("err = %v, want timeout", err)
		}
	})
	t.Run("killed", func(t *testing.T) {
		s := redistest.StartServer(t)
		c := dialRedis(t, s, Options{}, nil)
		redisDo(t, c, "PING")
		errc := make(chan error, 1)
		go func() {
			_, err := c.Do(context.Background(), resp.AppendCommandString(nil, "BLPOP", "nothing", "0"), 1)
			errc <- err
		}()
		waitFor(t, "BLPOP blocked", func() bool {
			return strings.Contains(s.MustDo("INFO", "clients"), "blocked_clients:1")
		})
		s.Kill()
		err := <-errc
		if ce := closeError(t, err); ce.Reason != ReasonBroken || errors.Is(err, ErrNotSent) {
			t.Fatalf("err = %v, want broken", err)
		}
	})
}

// Over TLS, a Conn that has been idle is still usable: redis-server (with
// OpenSSL) sends TLS 1.3 session tickets after the handshake, bytes on the
// socket that are no reply, and the idle check must not wait for one.
func TestRedisTLSAfterIdle(t *testing.T) {
	s := redistest.StartServer(t, redistest.WithTLS())
	c := dialRedis(t, s, Options{}, nil)
	for i := range 3 {
		time.Sleep(20 * time.Millisecond) // more than peekAfterIdle
		start := time.Now()
		if v := redisDo(t, c, "PING"); v.String() != "PONG" && string(v.Str) != "PONG" {
			t.Fatalf("PING %d = %v", i, v)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("PING %d after idling took %v", i, d)
		}
	}
}
