package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/internal/redistest"
	"github.com/tendril-db/tendril/proto/resp"
)

// dov sends SET key val with val as a piece of its own (not copied).
func dov(ctx context.Context, c *Conn[resp.Value], key string, val []byte) error {
	_, pieces := resp.AppendCommandV(nil, nil, 1024, []byte("SET"), []byte(key), val)
	var r [1]resp.Value
	if err := c.DoV(ctx, pieces, r[:], 0); err != nil {
		return err
	}
	if r[0].Kind == resp.KindError {
		return errors.New(string(r[0].Str))
	}
	return nil
}

// Large frames written from the caller's memory (DoV) interleave with
// small ones from other callers on one multiplexed connection, every frame
// whole and in order; and once DoV returns the Conn no longer reads the
// caller's buffer: changed at once, it does not change what was stored.
func TestDoVInterleaved(t *testing.T) {
	srv := redistest.StartServer(t)
	c := dialRedis(t, srv, Options{}, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 4 {
		wg.Add(2)
		go func() { // big SETs, the buffer reused and changed after each
			defer wg.Done()
			key := fmt.Sprint("big", g)
			buf := make([]byte, 200<<10+g)
			for i := range 20 {
				want := fmt.Sprintf("%c%06d", 'a'+g, i)
				for k := 0; k < len(buf); k += len(want) {
					copy(buf[k:], want)
				}
				if err := dov(ctx, c, key, buf); err != nil {
					errs <- err
					return
				}
				stored := bytes.Clone(buf)
				clear(buf) // the Conn must be done with it
				got, err := c.Do(ctx, resp.AppendCommandString(nil, "GET", key), 1)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got[0].Str, stored) {
					errs <- fmt.Errorf("%s round %d: GET returned %d bytes starting %q, want %d starting %q",
						key, i, len(got[0].Str), got[0].Str[:min(16, len(got[0].Str))], len(stored), stored[:16])
					return
				}
			}
		}()
		go func() { // small requests meanwhile
			defer wg.Done()
			key := fmt.Sprint("n", g)
			for i := range 300 {
				got, err := c.Do(ctx, resp.AppendCommandString(nil, "INCR", key), 1)
				if err != nil {
					errs <- err
					return
				}
				if got[0].Int != int64(i+1) {
					errs <- fmt.Errorf("INCR %s: %d, want %d", key, got[0].Int, i+1)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A large write to a server that stopped reading ends with its context:
// DoV returns soon after, its error wraps the context's, and the Conn,
// which sent part of a frame, is closed (other requests fail rather than
// follow a truncated command) before DoV returns, so that the caller's
// buffer is not read after.
func TestDoVCancelledWrite(t *testing.T) {
	srv := redistest.StartServer(t)
	c := dialRedis(t, srv, Options{}, nil)
	srv.Stop()
	defer srv.Cont()
	val := make([]byte, 64<<20) // far more than the socket buffers hold
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := dov(ctx, c, "k", val)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DoV to a stopped server: %v, want context.DeadlineExceeded", err)
	}
	if took > time.Second {
		t.Errorf("DoV returned %v after a 200ms context", took)
	}
	// Closed already: DoV returned after the write was over, not while it
	// still read the caller's buffer.
	select {
	case <-c.Done():
	default:
		t.Fatal("DoV returned while its write was still going")
	}
	if ce := closeError(t, c.Err()); ce.Reason != ReasonTimeout {
		t.Errorf("close reason %v (%v), want %v", ce.Reason, ce, ReasonTimeout)
	}
}
