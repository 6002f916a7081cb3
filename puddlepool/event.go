package puddlepool

import (
	"errors"
	"time"
)

// EventType identifies what happened in an Event. The set mirrors the MongoDB
// CMAP monitoring events so that logs and metrics read the same way across
// drivers.
type EventType uint8

const (
	// EventPoolReady: the pool accepts checkouts again (after Pause/Clear).
	EventPoolReady EventType = iota + 1
	// EventPoolPaused: Pause was called; checkouts fail fast.
	EventPoolPaused
	// EventPoolCleared: Clear was called; Err is the reason given to Clear.
	EventPoolCleared
	// EventPoolClosed: Close was called.
	EventPoolClosed
	// EventConnCreated: a dial started.
	EventConnCreated
	// EventConnReady: a dial finished successfully; Duration is the dial time.
	EventConnReady
	// EventConnClosed: a connection was closed (or a dial failed); Reason
	// says why, Err carries the dial/ping/close error if any.
	EventConnClosed
	// EventCheckOutStarted: Acquire was called.
	EventCheckOutStarted
	// EventCheckOutFailed: Acquire failed; Reason says why, Duration is how
	// long the caller waited.
	EventCheckOutFailed
	// EventCheckedOut: Acquire succeeded. Duration is the wait time, only
	// measured (non-zero) for acquires that had to wait.
	EventCheckedOut
	// EventCheckedIn: Release or Destroy was called.
	EventCheckedIn
)

var eventTypeNames = [...]string{
	EventPoolReady:       "PoolReady",
	EventPoolPaused:      "PoolPaused",
	EventPoolCleared:     "PoolCleared",
	EventPoolClosed:      "PoolClosed",
	EventConnCreated:     "ConnCreated",
	EventConnReady:       "ConnReady",
	EventConnClosed:      "ConnClosed",
	EventCheckOutStarted: "CheckOutStarted",
	EventCheckOutFailed:  "CheckOutFailed",
	EventCheckedOut:      "CheckedOut",
	EventCheckedIn:       "CheckedIn",
}

func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && eventTypeNames[t] != "" {
		return eventTypeNames[t]
	}
	return "EventType(?)"
}

// Reason qualifies EventConnClosed and EventCheckOutFailed events.
type Reason string

// Reasons for EventConnClosed.
const (
	// ReasonIdle: closed by IdleTimeout or because MaxIdle was exceeded.
	ReasonIdle Reason = "idle"
	// ReasonStale: closed because MaxLifetime (minus jitter) passed.
	ReasonStale Reason = "stale"
	// ReasonError: the user called Destroy, a ping failed, or a dial failed.
	ReasonError Reason = "error"
	// ReasonCleared: the connection predates a Pause/Clear.
	ReasonCleared Reason = "cleared"
	// ReasonPoolClosed: the pool was closed.
	ReasonPoolClosed Reason = "pool_closed"
)

// Reasons for EventCheckOutFailed (ReasonPoolClosed is shared).
const (
	ReasonTimeout   Reason = "timeout"
	ReasonPaused    Reason = "paused"
	ReasonDialError Reason = "dial_error"
	ReasonCancelled Reason = "cancelled"
)

// Event is passed to Config.OnEvent. It is a plain value so that emitting it
// does not allocate; OnEvent is always called without any pool lock held, so
// it may call back into the pool (Stat, even Clear), but it runs on the
// caller's goroutine and should be quick.
type Event struct {
	Type     EventType
	Pool     string        // Config.Name
	ConnID   uint64        // 0 for pool-level and checkout-started/failed events
	Reason   Reason        // for EventConnClosed and EventCheckOutFailed
	Err      error         // the underlying error, when there is one
	Duration time.Duration // dial time, wait time, or connection age on close
}

// Sentinel errors. Errors returned by the pool wrap these (test with
// errors.Is) and add the pool name and how long the caller waited.
var (
	// ErrPoolClosed: Acquire on a pool after Close.
	ErrPoolClosed = errors.New("pool closed")
	// ErrAcquireTimeout: no connection became available within
	// Config.AcquireTimeout or the caller's context deadline. When the
	// caller's deadline fired the error also wraps context.DeadlineExceeded.
	ErrAcquireTimeout = errors.New("acquire timeout")
	// ErrPoolPaused: the pool is paused (Pause or Clear). When Clear(err)
	// was used the returned error also wraps err.
	ErrPoolPaused = errors.New("pool paused")
	// ErrDialBackoff: recent dials failed, so instead of queueing behind a
	// node that is probably down the acquire fails fast. The error also
	// wraps the last dial error.
	ErrDialBackoff = errors.New("dial backing off after failures")
)
