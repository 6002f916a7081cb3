package postgres

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// cancelHandler is pgconn's CancelRequestContextWatcherHandler, less its
// fixed pause: when a statement's context ends it sends a CancelRequest
// on a connection of its own, and cuts the connection (a deadline) if the
// server has not answered within grace.
//
// pgconn's handler then always waits 100 ms before the connection is used
// again, in case the cancel reaches the server only after the statement
// ended and cancels the next one. That wait is needed only when the
// server has not acted on the cancel: when the statement failed with
// "canceling statement due to user request" (57014), the cancel was spent
// on it, and the caller gets its error at once (a cancelled statement
// returns in a few milliseconds instead of 100 more). When the server's
// messages are not in English the wait is always made.
type cancelHandler struct {
	pg    *pgconn.PgConn
	grace time.Duration

	mu sync.Mutex
	// spent is closed when the server says a statement was cancelled at a
	// user's request; nil while no cancel is under way.
	spent chan struct{}

	done chan struct{}      // closed when the cancel goroutine ends
	stop context.CancelFunc // stops the cancel request, once the statement ended
}

// pause is how long a cancel request that may not have been acted on is
// given to land before the connection runs another statement (pgconn's).
const pause = 100 * time.Millisecond

// HandleCancel implements ctxwatch.Handler.
func (h *cancelHandler) HandleCancel(context.Context) {
	spent := make(chan struct{})
	h.mu.Lock()
	h.spent = spent
	h.mu.Unlock()
	h.done = make(chan struct{})
	var ctx context.Context
	ctx, h.stop = context.WithCancel(context.Background())
	deadline := time.Now().Add(h.grace)
	h.pg.Conn().SetDeadline(deadline)
	go func() {
		defer close(h.done)
		cctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		h.pg.CancelRequest(cctx)
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-spent:
		case <-t.C:
		}
	}()
}

// HandleUnwatchAfterCancel implements ctxwatch.Handler: the statement
// ended; wait until the cancel request can no longer hit the next one.
func (h *cancelHandler) HandleUnwatchAfterCancel() {
	h.stop() // the statement is over: a request not yet sent need not be
	<-h.done
	h.pg.Conn().SetDeadline(time.Time{})
	h.mu.Lock()
	h.spent = nil
	h.mu.Unlock()
}

// onPgError notes the server's errors for the handler, and closes the
// connection on FATAL ones, as pgconn's default does.
func (h *cancelHandler) onPgError(_ *pgconn.PgConn, pe *pgconn.PgError) bool {
	if pe.Code == "57014" && strings.Contains(pe.Message, "user request") {
		h.mu.Lock()
		if h.spent != nil {
			close(h.spent)
			h.spent = nil
		}
		h.mu.Unlock()
	}
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return !strings.EqualFold(sev, "FATAL")
}
