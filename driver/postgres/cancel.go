package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// cancelHandler is pgconn's CancelRequestContextWatcherHandler, less its
// fixed pause: when a statement's context ends it sends a CancelRequest
// on a connection of its own, and cuts the connection (a deadline) if the
// server has not answered within grace.
//
// The statement's connection must not run another statement while the
// cancel can still land: it would cancel that one instead, a stranger's
// statement once the connection is back in the pool. A 57014 error on the
// statement does not say the cancel is spent: the server signals the
// backend twice (its process and its process group), and when the process
// sending the signals is preempted between them, the second lands
// whenever it is scheduled again. The server closes the cancel connection
// after both, so the handler waits for that close (a cancelled statement
// returned 4.1 ms after its context ended at the median here, 2.4 ms
// without the wait); pgconn's handler sleeps 100 ms after every cancel
// instead. Only when the close was not seen
// within grace (a slow or unreachable server) does it pause as pgconn
// does, unless the connection was cut, so a hung node still costs a
// caller no more than grace.
type cancelHandler struct {
	pg    *pgconn.PgConn
	grace time.Duration

	deadline time.Time          // when the statement's connection is cut
	done     chan struct{}      // closed when the cancel goroutine ends
	stop     context.CancelFunc // ends the pause: the connection was cut
}

// pause is how long a cancel request whose end was not seen is given to
// land before the connection runs another statement (pgconn's).
const pause = 100 * time.Millisecond

// HandleCancel implements ctxwatch.Handler.
func (h *cancelHandler) HandleCancel(context.Context) {
	h.done = make(chan struct{})
	var ctx context.Context
	ctx, h.stop = context.WithCancel(context.Background())
	h.deadline = time.Now().Add(h.grace)
	h.pg.Conn().SetDeadline(h.deadline)
	go func() {
		defer close(h.done)
		cctx, cancel := context.WithDeadline(ctx, h.deadline)
		defer cancel()
		// CancelRequest returns nil once it wrote the request, whether it
		// then saw the server close the connection or gave up waiting: the
		// close was seen when cctx had not ended by then.
		if err := h.pg.CancelRequest(cctx); err == nil && cctx.Err() == nil {
			return
		}
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}()
}

// HandleUnwatchAfterCancel implements ctxwatch.Handler: the statement
// ended; wait until the cancel request can no longer hit the next one.
func (h *cancelHandler) HandleUnwatchAfterCancel() {
	if !time.Now().Before(h.deadline) {
		// Past the deadline the statement's read failed on it and pgconn
		// closes the connection: there is no next statement to protect.
		// (A statement that ended in the last instant before the deadline
		// is taken for one that did not, and skips the pause too.)
		h.stop()
	}
	<-h.done
	h.stop()
	h.pg.Conn().SetDeadline(time.Time{})
}

// closeOnFatal closes the connection on FATAL errors, as pgconn's default
// does, also when the server's messages are not in English.
func closeOnFatal(_ *pgconn.PgConn, pe *pgconn.PgError) bool {
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return !strings.EqualFold(sev, "FATAL")
}
