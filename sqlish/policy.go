package sqlish

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/puddlepool"
)

// The retry policy. An operation runs attempts until one succeeds or the
// policy gives up. After a failed attempt it asks two questions: what does
// the error mean for another attempt (judge), and may the operation spend
// one more of that kind (budget.allow). The rules:
//
//   - A redirect (MOVED, ASK) is followed at once, to the node it names,
//     at most maxRedirects times.
//   - A statement that certainly did not run is tried again whatever it
//     is: the connection failed before it was sent, no connection could be
//     had (the node is down, its pool cleared), or the server refused it
//     before running it (driver.RetryLater: busy or loading, after a
//     pause; driver.RetryRefresh: the topology is stale, after the tender's
//     next tend, which the attempt asks for). So is an operation whose
//     partition has no healthy node: it waits for the tender. These waits
//     are bounded by total_timeout (or the context's deadline), not by
//     max_retries, so that an operation rides through a failover; only
//     when nothing bounds the operation do they count as retries too.
//   - A statement that may have run (a timeout, a connection lost
//     mid-request) is tried again only when it is idempotent (the driver
//     says so from its command and options; WithIdempotent overrides), at
//     most max_retries times. Otherwise its error wraps ErrOutcomeUnknown.
//   - Anything else (a server error, no rows, a refused password, the
//     context ending) is final.

// verdict is what the policy makes of one failed attempt.
type verdict uint8

const (
	giveUp  verdict = iota // final: return the error
	unknown                // may have run, must not run twice: give up, the outcome unknown
	follow                 // a redirect: go where it says, now
	again                  // did not run: try again after a pause
	refresh                // did not run, the topology is stale: try again after the next tend
	retry                  // may have run, and may run twice: try again, counting a retry
)

var verdictNames = [...]string{"give up", "unknown", "follow", "again", "refresh", "retry"}

func (v verdict) String() string { return verdictNames[v] }

// judge reads an attempt's error. sent is false when the attempt failed
// before it had a connection (nothing was sent); idem says whether the
// statement may run twice; class is the driver's reading of err.
func judge(err error, sent, idem bool, class driver.Retry) verdict {
	var re *driver.RedirectError
	if errors.As(err, &re) {
		return follow
	}
	switch class {
	case driver.RetryNever:
		return giveUp
	case driver.RetryLater:
		return again
	case driver.RetryRefresh, driver.RetryDemoted:
		return refresh
	}
	var se *driver.ServerError
	switch {
	case errors.As(err, &se), errors.Is(err, ErrNoRows), errors.Is(err, ErrNotSupported),
		errors.Is(err, driver.ErrAuthFailed), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, ErrSessionState), errors.Is(err, ErrWrongPartition):
		return giveUp
	case !sent, errors.Is(err, driver.ErrBadConn), errors.Is(err, puddlepool.ErrPoolPaused):
		return refresh
	case idem:
		return retry
	}
	return unknown
}

// maxRedirects bounds the redirects one operation follows: a partition
// map that keeps pointing back and forth must not loop forever.
const maxRedirects = 16

// maxBackoff caps the doubling of sleep_between_retries.
const maxBackoff = 100 * time.Millisecond

// budget is what one operation may still spend on retries.
type budget struct {
	maxRetries int
	// bounded is set when a deadline ends the operation (total_timeout or
	// the context's): waits for a statement that did not run are then
	// free; without one they count as retries, or an operation could wait
	// forever.
	bounded   bool
	retries   int // counted retries spent
	redirects int
	first     time.Duration // the first pause (sleep_between_retries)
	next      time.Duration // the next pause, before jitter
}

func newBudget(p Policy, bounded bool) budget {
	return budget{maxRetries: p.MaxRetries, bounded: bounded, first: p.SleepBetweenRetries, next: p.SleepBetweenRetries}
}

// allow reports whether the operation may act on v, and counts it.
func (b *budget) allow(v verdict) bool {
	switch v {
	case follow:
		b.redirects++
		return b.redirects <= maxRedirects
	case again, refresh:
		if b.bounded {
			return true
		}
		fallthrough
	case retry:
		b.retries++
		return b.retries <= b.maxRetries
	}
	return false
}

// pause returns how long to wait before the next attempt: the backoff,
// doubled each time up to max(sleep_between_retries, maxBackoff), with
// jitter so that callers that failed together do not retry together.
func (b *budget) pause() time.Duration {
	d := b.next
	b.next = min(max(b.next*2, time.Millisecond), max(b.first, maxBackoff))
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// refreshWait bounds a wait for the tender's next tend: an operation
// looks again at least this often, asking for a refresh each time.
const refreshWait = 100 * time.Millisecond

// await waits before the next attempt: after a refresh verdict for the
// tender's next tend (asked for now) or refreshWait, whichever comes
// first; otherwise for the budget's next pause. It fails when ctx ends
// first.
func (db *DB) await(ctx context.Context, v verdict, b *budget) error {
	if v == follow {
		return nil
	}
	d := b.pause()
	var tended <-chan struct{}
	if v == refresh {
		db.tender.Refresh()
		tended = db.tender.Tended()
		d = refreshWait/2 + rand.N(refreshWait/2+1)
	}
	if d <= 0 && tended == nil {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-tended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idemKey carries WithIdempotent's override.
type idemKey struct{}

// WithIdempotent returns a context whose operations are treated as
// idempotent (safe to run twice, so retried after an attempt that may
// have reached the server) or not, whatever the driver says of their
// statements. Use it for a statement the driver cannot judge: a script, a
// module command, an INCR whose double application the caller tolerates.
func WithIdempotent(ctx context.Context, idempotent bool) context.Context {
	return context.WithValue(ctx, idemKey{}, idempotent)
}

// idempotent says whether route's statement may run twice under ctx.
func idempotent(ctx context.Context, route driver.Route) bool {
	if v, ok := ctx.Value(idemKey{}).(bool); ok {
		return v
	}
	return route.Idempotent
}

// readKey carries WithRead's intent.
type readKey struct{}

// WithRead returns a context whose statements are reads: with a
// read_preference other than primary, a replica (a PostgreSQL standby) may
// serve them. It is for statements the driver cannot classify (SQL, where
// SELECT nextval(...) or WITH ... INSERT write): they go to the primary
// unless the caller says they only read. A statement the driver knows to
// write (Redis SET) still goes to the primary. A statement declared a read
// is also retried as one: it may run twice. A read-only transaction
// (TxOptions.ReadOnly) is the other way to let a replica serve statements.
func WithRead(ctx context.Context) context.Context { return context.WithValue(ctx, readKey{}, true) }

// readIntent reports whether ctx carries WithRead.
func readIntent(ctx context.Context) bool { return ctx.Value(readKey{}) != nil }

// WithCache returns a context whose reads may be served from the driver's
// client-side cache, and cached for up to ttl; ttl <= 0 reads from the
// server without caching. A read served from the cache does no I/O; the
// driver keeps an entry only while the server will tell it of a change (the
// Redis driver: CLIENT TRACKING, on with the DSN's cache_size), so a value
// is never served after the server has said it changed. Without WithCache,
// the driver's default applies (Redis: the DSN's cache_ttl, 0: no caching).
// A driver without a cache ignores it.
func WithCache(ctx context.Context, ttl time.Duration) context.Context {
	return driver.WithCache(ctx, ttl)
}
