package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestCancelLandsLate: a statement's cancel request can reach the server
// twice, the second time after the statement already failed with
// "canceling statement due to user request" (the server signals the
// backend twice, and the process sending the signals can be preempted
// between them). The connection must not run the next statement before
// the server closed the cancel connection, or the late signal cancels
// that one: a stranger's statement, once the connection is back in the
// pool (seen in CI: the statement after a cancelled one failed with 57014
// in under a millisecond). A proxy in front of the server sends each
// cancel request twice, and closes the client's cancel connection after
// the second.
func TestCancelLandsLate(t *testing.T) {
	srv := primary(t)
	// 40 ms: the driver sees the server close the cancel connection after
	// the second request; 120 ms: it gives up waiting after cancelGrace
	// and pauses instead.
	for _, delay := range []time.Duration{40 * time.Millisecond, 120 * time.Millisecond} {
		p := startLateCancel(t, srv.Addr, delay)
		db := connect(t, strings.Replace(srv.DSN("max_conns_per_node=1"), srv.Addr, p.addr, 1))
		c := ctx(t)
		// The connection dialed and the statement prepared: each context
		// ends while the statement runs.
		if _, err := db.Exec(c, "SELECT pg_sleep($1)", 0); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			cctx, cancel := context.WithTimeout(c, 20*time.Millisecond)
			start := time.Now()
			_, err := db.Exec(cctx, "SELECT pg_sleep($1)", 10)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%v, %d: cancelled pg_sleep: %v, want context.DeadlineExceeded", delay, i, err)
			}
			if took > time.Second/2 {
				t.Errorf("%v, %d: a statement cancelled after 20ms returned after %v", delay, i, took)
			}
			// At once, on the same connection, a statement that spans the
			// second request.
			if _, err := db.Exec(c, "SELECT pg_sleep(0.2)"); err != nil {
				t.Fatalf("%v, %d: the statement after a cancelled one (returned after %v): %v", delay, i, took.Round(time.Millisecond), err)
			}
		}
		if n := p.cancels.Load(); n != 3 {
			t.Fatalf("%v: the proxy forwarded %d cancel requests, want 3", delay, n)
		}
	}
}

// lateCancel is a TCP proxy to a PostgreSQL server that forwards every
// cancel request twice, delay apart.
type lateCancel struct {
	addr    string
	cancels atomic.Int64
}

func startLateCancel(t *testing.T, server string, delay time.Duration) *lateCancel {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lateCancel{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(c, server, delay, track, &wg)
			}()
		}
	}()
	return p
}

// cancelCode is the protocol code of a CancelRequest.
const cancelCode = 80877102

func (p *lateCancel) serve(c net.Conn, server string, delay time.Duration, track func(net.Conn), wg *sync.WaitGroup) {
	defer c.Close()
	head := make([]byte, 8)
	if _, err := io.ReadFull(c, head); err != nil {
		return
	}
	n := binary.BigEndian.Uint32(head)
	if binary.BigEndian.Uint32(head[4:]) != cancelCode || n < 8 || n > 1<<10 {
		s, err := net.Dial("tcp", server)
		if err != nil {
			return
		}
		track(s)
		defer s.Close()
		if _, err := s.Write(head); err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(c, s)
			c.Close()
		}()
		io.Copy(s, c)
		return
	}
	msg := make([]byte, n)
	copy(msg, head)
	if _, err := io.ReadFull(c, msg[8:]); err != nil {
		return
	}
	p.cancels.Add(1)
	send := func() {
		s, err := net.Dial("tcp", server)
		if err != nil {
			return
		}
		track(s)
		defer s.Close()
		if _, err := s.Write(msg); err == nil {
			io.Copy(io.Discard, s) // the server closes it once it signalled
		}
	}
	send()
	time.Sleep(delay)
	send()
}

// TestCancelHungServer: a statement on a server that answers neither it
// nor its cancel request returns cancelGrace after its context ended,
// without the pause that guards a connection still in use: the
// connection is cut.
func TestCancelHungServer(t *testing.T) {
	srv := pgtest.StartPrimary(t)
	db := connect(t, srv.DSN())
	c := ctx(t)
	var conns []*sqlish.Conn
	for range 3 {
		cn, err := db.Conn(c)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		if _, err := cn.Exec(c, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	srv.Stop()
	defer srv.Cont()
	const after = 30 * time.Millisecond
	fastest := time.Hour
	for i, cn := range conns {
		cctx, cancel := context.WithTimeout(c, after)
		start := time.Now()
		_, err := cn.Exec(cctx, "SELECT 1")
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%d: a statement on a hung server: %v, want context.DeadlineExceeded", i, err)
		}
		fastest = min(fastest, took)
	}
	// The least of three, against this machine's scheduling delays.
	if limit := after + cancelGrace + pause/2; fastest > limit {
		t.Errorf("a statement on a hung server, its context ended after %v, returned after %v at best; want under %v (cancelGrace %v)", after, fastest.Round(time.Millisecond), limit, cancelGrace)
	}
}
