package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
)

func TestJudge(t *testing.T) {
	server := &driver.ServerError{Code: "WRONGTYPE", Msg: "WRONGTYPE x"}
	redirect := &driver.RedirectError{Partition: 1, Addr: "h:1", Err: &driver.ServerError{Code: "MOVED"}}
	lost := fmt.Errorf("conn: closed (broken): %w", io.ErrUnexpectedEOF)
	for _, c := range []struct {
		name  string
		err   error
		sent  bool
		idem  bool
		class driver.Retry
		want  verdict
	}{
		{"redirect", redirect, true, false, driver.RetryDefault, follow},
		{"redirect wrapped", fmt.Errorf("node x: %w", redirect), true, false, driver.RetryDefault, follow},
		{"server error", server, true, true, driver.RetryDefault, giveUp},
		{"server error the driver says did not run (CLUSTERDOWN)", server, true, false, driver.RetryRefresh, refresh},
		{"busy server (LOADING)", server, true, false, driver.RetryLater, again},
		{"driver says final", lost, true, true, driver.RetryNever, giveUp},
		{"no connection", errors.New("dial: refused"), false, false, driver.RetryDefault, refresh},
		{"bad connection before sending", driver.ErrBadConn, true, false, driver.RetryDefault, refresh},
		{"pool paused (node down)", puddlepool.ErrPoolPaused, false, false, driver.RetryDefault, refresh},
		{"lost mid-request, idempotent", lost, true, true, driver.RetryDefault, retry},
		{"lost mid-request, not idempotent", lost, true, false, driver.RetryDefault, unknown},
		{"timeout, not idempotent", context.DeadlineExceeded, true, false, driver.RetryDefault, unknown},
		{"no rows", ErrNoRows, true, true, driver.RetryDefault, giveUp},
		{"auth", fmt.Errorf("x: %w", driver.ErrAuthFailed), false, true, driver.RetryDefault, giveUp},
		{"db closed", ErrClosed, false, true, driver.RetryDefault, giveUp},
		{"session statement", ErrSessionState, false, true, driver.RetryDefault, giveUp},
	} {
		if got := judge(c.err, c.sent, c.idem, c.class); got != c.want {
			t.Errorf("%s: judge = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLostReply guards how a failed COMMIT or EXEC is read: a reply lost
// after the server may have got it makes the outcome unknown; a reply, a
// failure before sending, or the driver's own reading of a reply (Redis's
// ErrTxAborted, a bare error) does not.
func TestLostReply(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"timeout", fmt.Errorf("postgres: timeout: %w", context.DeadlineExceeded), true},
		{"cancelled", fmt.Errorf("conn: reply abandoned: %w", context.Canceled), true},
		{"connection lost", fmt.Errorf("conn: closed (broken): %w", io.ErrUnexpectedEOF), true},
		{"closed, its cause wrapped", fmt.Errorf("conn: closed (out-of-sync): %w", errors.New("unsolicited reply")), true},
		{"server error", &driver.ServerError{Code: "40001", Msg: "could not serialize"}, false},
		{"not sent", fmt.Errorf("%w: %w", driver.ErrBadConn, context.DeadlineExceeded), false},
		{"EXEC answered nil (ErrTxAborted)", errors.New("redis: transaction aborted: a watched key changed"), false},
	} {
		if got := lostReply(c.err); got != c.want {
			t.Errorf("%s: lostReply = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBudget(t *testing.T) {
	p := Policy{MaxRetries: 2, SleepBetweenRetries: 10 * time.Millisecond}
	// Bounded by a deadline: waits for a statement that did not run are
	// free; retries of one that may have run are counted.
	b := newBudget(p, true)
	for range 100 {
		if !b.allow(refresh) || !b.allow(again) {
			t.Fatal("a bounded operation refused a wait for a statement that did not run")
		}
	}
	if !b.allow(retry) || !b.allow(retry) || b.allow(retry) {
		t.Fatal("want exactly max_retries counted retries")
	}
	if b.allow(giveUp) || b.allow(unknown) {
		t.Fatal("giveUp and unknown are final")
	}
	// Unbounded: everything counts, or an operation could wait forever.
	b = newBudget(p, false)
	if !b.allow(refresh) || !b.allow(again) || b.allow(retry) {
		t.Fatal("an unbounded operation must count every retry")
	}
	// Redirects have their own bound.
	b = newBudget(Policy{}, true)
	for i := range maxRedirects {
		if !b.allow(follow) {
			t.Fatalf("redirect %d refused", i+1)
		}
	}
	if b.allow(follow) {
		t.Fatal("a redirect loop is not bounded")
	}
}

func TestBudgetPause(t *testing.T) {
	b := newBudget(Policy{SleepBetweenRetries: 4 * time.Millisecond}, true)
	for i := range 20 {
		d := b.pause()
		if d < 0 || d > maxBackoff {
			t.Fatalf("pause %d = %v, outside [0, %v]", i, d, maxBackoff)
		}
		if i > 8 && d < maxBackoff/2 {
			t.Fatalf("pause %d = %v: the backoff did not grow to its cap", i, d)
		}
	}
	// A sleep_between_retries above the cap is kept.
	b = newBudget(Policy{SleepBetweenRetries: time.Second}, true)
	for range 5 {
		if d := b.pause(); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("pause %v with sleep_between_retries=1s", d)
		}
	}
	// Zero means no pause at first, then a short one.
	b = newBudget(Policy{}, true)
	if d := b.pause(); d != 0 {
		t.Fatalf("first pause %v with sleep_between_retries=0", d)
	}
}
