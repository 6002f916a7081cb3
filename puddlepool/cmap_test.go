package puddlepool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds the CMAP-style table: every case is a scripted sequence of
// pool operations run against a fake dialer, followed by the exact sequence of
// events expected (after dropping the event types the case ignores).

type opKind int

const (
	opCheckOut  opKind = iota // synchronous Acquire into label
	opStart                   // asynchronous Acquire into label
	opWait                    // wait for a started Acquire
	opCancel                  // cancel a started Acquire's context
	opCheckIn                 // Release label
	opDestroy                 // Destroy label
	opClear                   // Clear(err)
	opPause                   // Pause()
	opReady                   // Ready()
	opClose                   // Close()
	opWaitEvent               // wait until Count events of Event(Reason)
	opWaitStat                // wait until Cond(Stat)
	opSleep                   // sleep D
	opDo                      // run Fn
)

type op struct {
	kind    opKind
	label   string
	err     error // expected error (errors.Is); nil = success expected
	errs    []error
	reason  Reason
	conn    int64 // expected fake connection number; 0 = any
	timeout time.Duration
	event   EventType
	count   int
	d       time.Duration
	cond    func(Stat) bool
	fn      func(t *testing.T, e *env)
}

type ev struct {
	Type   EventType
	Reason Reason
}

type cmapCase struct {
	name   string
	cfg    func(c *Config[*fakeConn])
	dialer func(d *fakeDialer)
	ops    []op
	events []ev        // expected, in order, after filtering
	ignore []EventType // event types left out of the comparison
	check  func(t *testing.T, e *env)
}

type acqResult struct {
	r   *Resource[*fakeConn]
	err error
}

type env struct {
	p       *Pool[*fakeConn]
	d       *fakeDialer
	rec     *recorder
	res     map[string]*Resource[*fakeConn]
	pending map[string]chan acqResult
	cancels map[string]context.CancelFunc
}

var errNodeDown = errors.New("node down")

func checkOut(n int64) op { return op{kind: opCheckOut, label: lbl(n), conn: n} }
func checkIn(n int64) op  { return op{kind: opCheckIn, label: lbl(n)} }
func lbl(n int64) string  { return string(rune('a' + n)) }
func waitEv(t EventType, r Reason, n int) op {
	return op{kind: opWaitEvent, event: t, reason: r, count: n}
}
func waitStat(c func(Stat) bool) op       { return op{kind: opWaitStat, cond: c} }
func do(fn func(t *testing.T, e *env)) op { return op{kind: opDo, fn: fn} }
func waitIdleInPuddle(n int32) op {
	return do(func(t *testing.T, e *env) {
		eventually(t, "idle connections in puddle", func() bool { return e.p.pp.Stat().IdleResources() == n })
	})
}

var ignoreCheckout = []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn}

func TestCMAP(t *testing.T) {
	cases := []cmapCase{
		{
			name: "checkout dials, checkin keeps it idle, reuse is most-recently-used",
			ops: []op{
				{kind: opCheckOut, label: "a", conn: 1},
				{kind: opCheckOut, label: "b", conn: 2},
				{kind: opCheckIn, label: "a"},
				{kind: opCheckIn, label: "b"},
				{kind: opCheckOut, label: "c", conn: 2},
				{kind: opCheckIn, label: "c"},
			},
			events: []ev{
				{EventCheckOutStarted, ""}, {EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
				{EventCheckOutStarted, ""}, {EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
				{EventCheckedIn, ""}, {EventCheckedIn, ""},
				{EventCheckOutStarted, ""}, {EventCheckedOut, ""}, {EventCheckedIn, ""},
			},
			check: func(t *testing.T, e *env) {
				s := e.p.Stat()
				if s.Total != 2 || s.Idle != 2 || s.InUse != 0 || s.Acquired != 3 || s.Created != 2 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "MaxSize blocks a waiter until a release hands the connection over",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 1 },
			ops: []op{
				{kind: opCheckOut, label: "a", conn: 1},
				{kind: opStart, label: "b"},
				waitStat(func(s Stat) bool { return s.Waiting == 1 }),
				{kind: opCheckIn, label: "a"},
				{kind: opWait, label: "b", conn: 1},
				{kind: opCheckIn, label: "b"},
			},
			ignore: []EventType{EventCheckOutStarted},
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
				{EventCheckedIn, ""}, {EventCheckedOut, ""}, {EventCheckedIn, ""},
			},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Waited != 2 || s.WaitDuration <= 0 || s.Acquired != 2 { // the dial of the first counts as a wait
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "MaxSize 0 is unlimited",
			ops: func() []op {
				var ops []op
				for i := int64(1); i <= 20; i++ {
					ops = append(ops, checkOut(i))
				}
				for i := int64(1); i <= 20; i++ {
					ops = append(ops, checkIn(i))
				}
				return ops
			}(),
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Total != 20 || s.Idle != 20 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "AcquireTimeout fails with ErrAcquireTimeout and says who and how long",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 1; c.AcquireTimeout = 20 * time.Millisecond },
			ops: []op{
				{kind: opCheckOut, label: "a", conn: 1},
				{kind: opCheckOut, label: "b", err: ErrAcquireTimeout},
				{kind: opCheckIn, label: "a"},
			},
			ignore: []EventType{EventCheckOutStarted, EventConnCreated, EventConnReady},
			events: []ev{{EventCheckedOut, ""}, {EventCheckOutFailed, ReasonTimeout}, {EventCheckedIn, ""}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Timeouts != 1 || s.CheckOutErrors != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "caller deadline counts as a timeout and wraps DeadlineExceeded",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 1 },
			ops: []op{
				checkOut(1),
				{kind: opStart, label: "x", timeout: 15 * time.Millisecond},
				{kind: opWait, label: "x", errs: []error{ErrAcquireTimeout, context.DeadlineExceeded}},
				checkIn(1),
			},
			ignore: ignoreCheckout,
			events: []ev{{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckOutFailed, ReasonTimeout}},
		},
		{
			name: "caller cancel is reported as cancelled",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 1 },
			ops: []op{
				checkOut(1),
				{kind: opStart, label: "x"},
				waitStat(func(s Stat) bool { return s.Waiting == 1 }),
				{kind: opCancel, label: "x"},
				{kind: opWait, label: "x", err: context.Canceled},
				checkIn(1),
			},
			ignore: ignoreCheckout,
			events: []ev{{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckOutFailed, ReasonCancelled}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Cancelled != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "a destroyed connection counts against MaxSize until its Close returns",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 1 },
			ops: []op{
				checkOut(1),
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { d.closeGate = make(chan struct{}) }) }),
				{kind: opDestroy, label: lbl(1)},
				{kind: opStart, label: "x"},
				{kind: opSleep, d: 20 * time.Millisecond},
				do(func(t *testing.T, e *env) {
					if n := e.d.dials.Load(); n != 1 {
						t.Fatalf("dialed %d times while the destroyed connection was still closing", n)
					}
					e.d.set(func(d *fakeDialer) { close(d.closeGate); d.closeGate = nil })
				}),
				{kind: opWait, label: "x", conn: 2},
				{kind: opCheckIn, label: "x"},
			},
			ignore: ignoreCheckout,
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""},
				{EventConnClosed, ReasonError}, {EventConnCreated, ""}, {EventConnReady, ""},
			},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.ClosedError != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "a dial outlives its cancelled caller and the connection goes idle",
			ops: []op{
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { d.gate = make(chan struct{}) }) }),
				{kind: opStart, label: "x"},
				waitEv(EventConnCreated, "", 1),
				{kind: opCancel, label: "x"},
				{kind: opWait, label: "x", err: context.Canceled},
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { close(d.gate); d.gate = nil }) }),
				waitEv(EventConnReady, "", 1),
				// Stat counts the connection idle as soon as it is
				// dialed; puddle has it a moment later.
				waitIdleInPuddle(1),
				checkOut(1),
				checkIn(1),
			},
			ignore: ignoreCheckout,
			events: []ev{{EventConnCreated, ""}, {EventCheckOutFailed, ReasonCancelled}, {EventConnReady, ""}},
			check: func(t *testing.T, e *env) {
				if n := e.d.dials.Load(); n != 1 {
					t.Errorf("dials = %d, want 1", n)
				}
			},
		},
		{
			name: "DialTimeout bounds a dial that hangs",
			cfg:  func(c *Config[*fakeConn]) { c.DialTimeout = 20 * time.Millisecond },
			dialer: func(d *fakeDialer) {
				d.gate = make(chan struct{}) // never opened
			},
			ops: []op{
				{kind: opCheckOut, label: "a", errs: []error{context.DeadlineExceeded}},
			},
			ignore: ignoreCheckout,
			events: []ev{{EventConnCreated, ""}, {EventConnClosed, ReasonError}, {EventCheckOutFailed, ReasonDialError}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.DialErrors != 1 || s.Total != 0 {
					t.Errorf("stat %+v", s)
				}
				e.d.set(func(d *fakeDialer) { d.gate = nil })
			},
		},
		{
			name: "repeated dial failures back off and fail queued waiters fast",
			cfg: func(c *Config[*fakeConn]) {
				c.MaxConnecting = 1
				c.DialBackoffBase = 80 * time.Millisecond
			},
			dialer: func(d *fakeDialer) { d.gate = make(chan struct{}); d.failErr = errRefused },
			ops: []op{
				{kind: opStart, label: "x"},
				waitEv(EventConnCreated, "", 1),
				{kind: opStart, label: "y"},
				{kind: opStart, label: "z"},
				waitStat(func(s Stat) bool { return s.Waiting == 3 }),
				do(func(t *testing.T, e *env) {
					eventually(t, "y and z queued for the dial slot", func() bool { return e.p.gate.nwait.Load() == 2 })
				}),
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { close(d.gate); d.gate = nil }) }),
				{kind: opWait, label: "x", errs: []error{errRefused}},
				{kind: opWait, label: "y", errs: []error{ErrDialBackoff, errRefused}},
				{kind: opWait, label: "z", errs: []error{ErrDialBackoff, errRefused}},
				{kind: opCheckOut, label: "w", errs: []error{ErrDialBackoff, errRefused}},
				do(func(t *testing.T, e *env) {
					if n := e.d.dials.Load(); n != 1 {
						t.Fatalf("dials = %d, want 1 (waiters must not queue behind a dead node)", n)
					}
					e.d.set(func(d *fakeDialer) { d.failErr = nil })
				}),
				{kind: opSleep, d: 85 * time.Millisecond}, // back-off is < base after the first failure
				{kind: opCheckOut, label: "v"},
				{kind: opCheckIn, label: "v"},
			},
			ignore: ignoreCheckout,
			events: []ev{
				{EventConnCreated, ""}, {EventConnClosed, ReasonError},
				{EventCheckOutFailed, ReasonDialError}, {EventCheckOutFailed, ReasonDialError},
				{EventCheckOutFailed, ReasonDialError}, {EventCheckOutFailed, ReasonDialError},
				{EventConnCreated, ""}, {EventConnReady, ""},
			},
		},
		{
			name: "a waiter blocked by MaxConnecting takes a released connection",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 5; c.MaxConnecting = 1 },
			ops: []op{
				checkOut(1),
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { d.gate = make(chan struct{}) }) }),
				{kind: opStart, label: "x"},
				waitEv(EventConnCreated, "", 2),
				{kind: opStart, label: "y"},
				do(func(t *testing.T, e *env) {
					eventually(t, "y queued for a dial slot", func() bool { return e.p.gate.nwait.Load() == 1 })
				}),
				checkIn(1),
				{kind: opWait, label: "y", conn: 1},
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { close(d.gate); d.gate = nil }) }),
				{kind: opWait, label: "x", conn: 2},
				{kind: opCheckIn, label: "x"},
				{kind: opCheckIn, label: "y"},
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedIn},
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
				{EventConnCreated, ""}, {EventCheckedOut, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
			},
			check: func(t *testing.T, e *env) {
				if n := e.d.dials.Load(); n != 2 {
					t.Errorf("dials = %d, want 2", n)
				}
			},
		},
		{
			name: "MaxConnecting bounds dials triggered by acquires",
			cfg:  func(c *Config[*fakeConn]) { c.MaxConnecting = 2 },
			dialer: func(d *fakeDialer) {
				d.gate = make(chan struct{})
			},
			ops: []op{
				{kind: opStart, label: "1"}, {kind: opStart, label: "2"}, {kind: opStart, label: "3"},
				{kind: opStart, label: "4"}, {kind: opStart, label: "5"},
				waitEv(EventConnCreated, "", 2),
				waitStat(func(s Stat) bool { return s.Waiting == 5 }),
				{kind: opSleep, d: 10 * time.Millisecond},
				do(func(t *testing.T, e *env) {
					if n := e.d.dialing.Load(); n != 2 {
						t.Fatalf("%d dials in progress, want 2", n)
					}
					e.d.set(func(d *fakeDialer) { close(d.gate); d.gate = nil })
				}),
				{kind: opWait, label: "1"}, {kind: opWait, label: "2"}, {kind: opWait, label: "3"},
				{kind: opWait, label: "4"}, {kind: opWait, label: "5"},
				{kind: opCheckIn, label: "1"}, {kind: opCheckIn, label: "2"}, {kind: opCheckIn, label: "3"},
				{kind: opCheckIn, label: "4"}, {kind: opCheckIn, label: "5"},
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			check: func(t *testing.T, e *env) {
				if n := e.d.peakDial.Load(); n > 2 {
					t.Errorf("peak concurrent dials %d > MaxConnecting 2", n)
				}
			},
		},
		{
			name: "MinSize is filled in the background, paced by MaxConnecting, and refilled after a loss",
			cfg:  func(c *Config[*fakeConn]) { c.MinSize = 4; c.MaxConnecting = 1 },
			dialer: func(d *fakeDialer) {
				d.delay = 2 * time.Millisecond
			},
			ops: []op{
				waitEv(EventConnReady, "", 4),
				waitStat(func(s Stat) bool { return s.Idle == 4 && s.Total == 4 }),
				{kind: opCheckOut, label: "a"},
				{kind: opDestroy, label: "a"},
				waitEv(EventConnReady, "", 5),
				waitStat(func(s Stat) bool { return s.Idle == 4 && s.Total == 4 }),
			},
			// The refill may start before the lost connection's Close
			// returned (MaxSize is unlimited), so ConnClosed is checked by
			// counter rather than by position.
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnClosed},
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventConnCreated, ""}, {EventConnReady, ""},
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventConnCreated, ""}, {EventConnReady, ""},
				{EventConnCreated, ""}, {EventConnReady, ""},
			},
			check: func(t *testing.T, e *env) {
				e.rec.waitFor(t, EventConnClosed, ReasonError, 1)
				if n := e.d.peakDial.Load(); n != 1 {
					t.Errorf("peak concurrent dials %d, want 1", n)
				}
			},
		},
		{
			name: "MaxIdle closes surplus connections on release",
			cfg:  func(c *Config[*fakeConn]) { c.MaxIdle = 1 },
			ops: []op{
				checkOut(1), checkOut(2), checkIn(1), checkIn(2),
				waitEv(EventConnClosed, ReasonIdle, 1),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventConnCreated, EventConnReady},
			events: []ev{{EventCheckedIn, ""}, {EventCheckedIn, ""}, {EventConnClosed, ReasonIdle}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Idle != 1 || s.Total != 1 || s.ClosedIdle != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "IdleTimeout closes idle connections but never below MinSize",
			cfg: func(c *Config[*fakeConn]) {
				c.MinSize = 1
				c.IdleTimeout = 20 * time.Millisecond
				c.HealthCheckPeriod = 5 * time.Millisecond
			},
			ops: []op{
				waitStat(func(s Stat) bool { return s.Idle == 1 }),
				{kind: opCheckOut, label: "a"}, {kind: opCheckOut, label: "b"}, {kind: opCheckOut, label: "c"},
				{kind: opCheckIn, label: "a"}, {kind: opCheckIn, label: "b"}, {kind: opCheckIn, label: "c"},
				waitEv(EventConnClosed, ReasonIdle, 2),
				{kind: opSleep, d: 50 * time.Millisecond},
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{{EventConnClosed, ReasonIdle}, {EventConnClosed, ReasonIdle}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.Total != 1 || s.Idle != 1 || s.ClosedIdle != 2 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "MaxLifetime is noticed at release",
			cfg:  func(c *Config[*fakeConn]) { c.MaxLifetime = 25 * time.Millisecond },
			ops: []op{
				checkOut(1),
				{kind: opSleep, d: 30 * time.Millisecond},
				checkIn(1),
				waitEv(EventConnClosed, ReasonStale, 1),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventConnCreated, EventConnReady},
			events: []ev{{EventCheckedIn, ""}, {EventConnClosed, ReasonStale}},
		},
		{
			name: "MaxLifetime is noticed at acquire and a fresh connection is handed out",
			cfg:  func(c *Config[*fakeConn]) { c.MaxLifetime = 25 * time.Millisecond },
			ops: []op{
				checkOut(1), checkIn(1),
				{kind: opSleep, d: 30 * time.Millisecond},
				checkOut(2),
				waitEv(EventConnClosed, ReasonStale, 1),
				checkIn(2),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedIn, EventConnClosed},
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
			},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.ClosedLifetime != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "MaxLifetime is enforced by the background health check",
			cfg: func(c *Config[*fakeConn]) {
				c.MaxLifetime = 20 * time.Millisecond
				c.HealthCheckPeriod = 5 * time.Millisecond
			},
			ops: []op{
				checkOut(1), checkIn(1),
				waitEv(EventConnClosed, ReasonStale, 1),
			},
			ignore: ignoreCheckout,
			events: []ev{{EventConnCreated, ""}, {EventConnReady, ""}, {EventConnClosed, ReasonStale}},
		},
		{
			name: "PingAfterIdle pings long-idle connections and transparently replaces a dead one",
			cfg:  func(c *Config[*fakeConn]) { c.PingAfterIdle = 10 * time.Millisecond },
			dialer: func(d *fakeDialer) {
				d.pingErr = func(c *fakeConn) error {
					if c.n == 1 {
						return errRefused
					}
					return nil
				}
			},
			ops: []op{
				checkOut(1), checkIn(1),
				checkOut(1), checkIn(1), // not idle long enough: no ping
				do(func(t *testing.T, e *env) {
					if n := e.d.pings.Load(); n != 0 {
						t.Fatalf("pinged %d times", n)
					}
				}),
				{kind: opSleep, d: 15 * time.Millisecond},
				checkOut(2),
				waitEv(EventConnClosed, ReasonError, 1),
				checkIn(2),
			},
			// The dead connection's close runs concurrently with the
			// replacement dial: its event is waited for, not positioned.
			ignore: []EventType{EventCheckOutStarted, EventCheckedIn, EventConnClosed},
			events: []ev{
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""}, {EventCheckedOut, ""},
				{EventConnCreated, ""}, {EventConnReady, ""}, {EventCheckedOut, ""},
			},
			check: func(t *testing.T, e *env) {
				if n := e.d.pings.Load(); n != 1 {
					t.Errorf("pings = %d, want 1", n)
				}
				if s := e.p.Stat(); s.PingErrors != 1 || s.ClosedError != 1 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "Clear fails waiters at once, closes idle now and in-use on release, Ready resumes",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 2 },
			ops: []op{
				checkOut(1), checkOut(2), checkIn(2),
				{kind: opCheckOut, label: "x", conn: 2},
				{kind: opStart, label: "w"},
				waitStat(func(s Stat) bool { return s.Waiting == 1 }),
				{kind: opClear, err: errNodeDown},
				{kind: opWait, label: "w", errs: []error{ErrPoolPaused, errNodeDown}},
				{kind: opCheckOut, label: "y", errs: []error{ErrPoolPaused, errNodeDown}},
				checkIn(1),
				waitEv(EventConnClosed, ReasonCleared, 1),
				{kind: opCheckIn, label: "x"},
				waitEv(EventConnClosed, ReasonCleared, 2),
				{kind: opReady},
				checkOut(3),
				checkIn(3),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{
				{EventPoolCleared, ""}, {EventCheckOutFailed, ReasonPaused}, {EventCheckOutFailed, ReasonPaused},
				{EventConnClosed, ReasonCleared}, {EventConnClosed, ReasonCleared}, {EventPoolReady, ""},
			},
		},
		{
			name: "Clear closes idle connections immediately",
			ops: []op{
				checkOut(1), checkOut(2), checkIn(1), checkIn(2),
				{kind: opClear, err: errNodeDown},
				waitEv(EventConnClosed, ReasonCleared, 2),
				waitStat(func(s Stat) bool { return s.Total == 0 }),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{{EventPoolCleared, ""}, {EventConnClosed, ReasonCleared}, {EventConnClosed, ReasonCleared}},
			check: func(t *testing.T, e *env) {
				if s := e.p.Stat(); s.ClosedCleared != 2 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "a dial that spans a Clear yields a stale connection that is never handed out",
			ops: []op{
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { d.gate = make(chan struct{}) }) }),
				{kind: opStart, label: "x"},
				waitEv(EventConnCreated, "", 1),
				{kind: opClear, err: errNodeDown},
				{kind: opWait, label: "x", errs: []error{ErrPoolPaused, errNodeDown}},
				{kind: opReady},
				do(func(t *testing.T, e *env) { e.d.set(func(d *fakeDialer) { close(d.gate); d.gate = nil }) }),
				waitEv(EventConnReady, "", 1),
				checkOut(2),
				waitEv(EventConnClosed, ReasonCleared, 1),
				checkIn(2),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedIn, EventCheckedOut, EventConnCreated, EventConnReady},
			events: []ev{
				{EventPoolCleared, ""}, {EventCheckOutFailed, ReasonPaused}, {EventPoolReady, ""},
				{EventConnClosed, ReasonCleared},
			},
		},
		{
			name: "Pause fails acquires fast until Ready",
			ops: []op{
				{kind: opPause},
				{kind: opCheckOut, label: "x", err: ErrPoolPaused},
				{kind: opReady},
				checkOut(1), checkIn(1),
			},
			ignore: []EventType{EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{
				{EventPoolPaused, ""}, {EventCheckOutStarted, ""}, {EventCheckOutFailed, ReasonPaused},
				{EventPoolReady, ""}, {EventCheckOutStarted, ""},
			},
		},
		{
			name: "Close closes idle now, in-use on release, wakes waiters, rejects acquires",
			cfg:  func(c *Config[*fakeConn]) { c.MaxSize = 2 },
			ops: []op{
				checkOut(1), checkOut(2), checkIn(2),
				{kind: opCheckOut, label: "x", conn: 2},
				{kind: opStart, label: "w"},
				waitStat(func(s Stat) bool { return s.Waiting == 1 }),
				{kind: opCheckIn, label: "x"}, // w takes it
				{kind: opWait, label: "w", conn: 2},
				{kind: opStart, label: "v"},
				waitStat(func(s Stat) bool { return s.Waiting == 1 }),
				{kind: opClose},
				{kind: opWait, label: "v", err: ErrPoolClosed},
				{kind: opCheckOut, label: "y", err: ErrPoolClosed},
				checkIn(1),
				waitEv(EventConnClosed, ReasonPoolClosed, 1),
				{kind: opCheckIn, label: "w"},
				waitEv(EventConnClosed, ReasonPoolClosed, 2),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{
				{EventPoolClosed, ""}, {EventCheckOutFailed, ReasonPoolClosed}, {EventCheckOutFailed, ReasonPoolClosed},
				{EventConnClosed, ReasonPoolClosed}, {EventConnClosed, ReasonPoolClosed},
			},
			check: func(t *testing.T, e *env) {
				if n := e.d.live.Load(); n != 0 {
					t.Errorf("%d connections still open", n)
				}
				if s := e.p.Stat(); s.ClosedPoolClosed != 2 || s.Total != 0 {
					t.Errorf("stat %+v", s)
				}
			},
		},
		{
			name: "Close with idle connections closes them before returning",
			ops: []op{
				checkOut(1), checkOut(2), checkIn(1), checkIn(2),
				{kind: opClose},
				do(func(t *testing.T, e *env) {
					if n := e.d.live.Load(); n != 0 {
						t.Fatalf("%d connections open after Close", n)
					}
				}),
			},
			ignore: []EventType{EventCheckOutStarted, EventCheckedOut, EventCheckedIn, EventConnCreated, EventConnReady},
			events: []ev{{EventPoolClosed, ""}, {EventConnClosed, ReasonPoolClosed}, {EventConnClosed, ReasonPoolClosed}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCMAP(t, tc) })
	}
}

func runCMAP(t *testing.T, tc cmapCase) {
	d := &fakeDialer{}
	if tc.dialer != nil {
		tc.dialer(d)
	}
	rec := newRecorder()
	cfg := Config[*fakeConn]{
		Name:              "127.0.0.1:7000",
		Dial:              d.Dial,
		Close:             d.Close,
		Ping:              d.Ping,
		HealthCheckPeriod: time.Hour, // no background activity unless a case asks
		DialBackoffBase:   time.Millisecond,
		OnEvent:           rec.on,
	}
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	d.max = cfg.MaxSize
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{p: p, d: d, rec: rec, res: map[string]*Resource[*fakeConn]{},
		pending: map[string]chan acqResult{}, cancels: map[string]context.CancelFunc{}}
	defer func() {
		// Clean up whatever the case left behind, then check invariants.
		for _, c := range e.cancels {
			c()
		}
		for _, ch := range e.pending {
			if r := <-ch; r.err == nil {
				r.r.Release()
			}
		}
		for _, r := range e.res {
			r.Release()
		}
		d.set(func(d *fakeDialer) {
			if d.gate != nil {
				close(d.gate)
				d.gate = nil
			}
		})
		p.Close()
		if n := d.live.Load(); n != 0 {
			t.Errorf("%d connections open after Close with nothing checked out", n)
		}
		if n := d.violations.Load(); n != 0 {
			t.Errorf("MaxSize exceeded %d times (peak %d)", n, d.peak.Load())
		}
		s := p.Stat()
		if s.Total != 0 || s.Idle != 0 || s.InUse != 0 || s.Constructing != 0 || s.Closing != 0 || s.Waiting != 0 {
			t.Errorf("gauges not zero after Close: %+v", s)
		}
		if s.Created != s.Closed() {
			t.Errorf("created %d != closed %d: %+v", s.Created, s.Closed(), s)
		}
	}()

	for i, o := range tc.ops {
		acquire := func(ctx context.Context) acqResult {
			r, err := p.Acquire(ctx)
			return acqResult{r, err}
		}
		check := func(r acqResult) {
			t.Helper()
			want := o.errs
			if o.err != nil {
				want = append(want, o.err)
			}
			if len(want) == 0 {
				if r.err != nil {
					t.Fatalf("op %d (%s): unexpected error %v", i, o.label, r.err)
				}
				if o.conn != 0 && r.r.Value().n != o.conn {
					t.Fatalf("op %d (%s): got conn %d, want %d", i, o.label, r.r.Value().n, o.conn)
				}
				e.res[o.label] = r.r
				return
			}
			if r.err == nil {
				r.r.Release()
				t.Fatalf("op %d (%s): succeeded, want error %v", i, o.label, want)
			}
			for _, w := range want {
				if !errors.Is(r.err, w) {
					t.Fatalf("op %d (%s): error %q does not wrap %q; events:%s", i, o.label, r.err, w, fmtEvents(rec.snapshot()))
				}
			}
			if !strings.Contains(r.err.Error(), "127.0.0.1:7000") {
				t.Fatalf("op %d: error %q does not name the pool", i, r.err)
			}
		}
		switch o.kind {
		case opCheckOut:
			check(acquire(context.Background()))
		case opStart:
			ctx, cancel := context.WithCancel(context.Background())
			if o.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
			}
			e.cancels[o.label] = cancel
			ch := make(chan acqResult, 1)
			e.pending[o.label] = ch
			go func() { ch <- acquire(ctx) }()
		case opWait:
			ch := e.pending[o.label]
			delete(e.pending, o.label)
			select {
			case r := <-ch:
				check(r)
			case <-time.After(5 * time.Second):
				t.Fatalf("op %d: %s did not finish", i, o.label)
			}
		case opCancel:
			e.cancels[o.label]()
		case opCheckIn:
			e.res[o.label].Release()
			delete(e.res, o.label)
		case opDestroy:
			e.res[o.label].Destroy()
			delete(e.res, o.label)
		case opClear:
			p.Clear(o.err)
		case opPause:
			p.Pause()
		case opReady:
			p.Ready()
		case opClose:
			p.Close()
		case opWaitEvent:
			rec.waitFor(t, o.event, o.reason, o.count)
		case opWaitStat:
			eventually(t, "stat condition", func() bool { return o.cond(p.Stat()) })
		case opSleep:
			time.Sleep(o.d)
		case opDo:
			o.fn(t, e)
		}
	}

	if tc.events != nil {
		ignored := map[EventType]bool{}
		for _, it := range tc.ignore {
			ignored[it] = true
		}
		var got []ev
		for _, x := range rec.snapshot() {
			if !ignored[x.Type] {
				got = append(got, ev{x.Type, x.Reason})
			}
		}
		if !equalEvents(got, tc.events) {
			t.Errorf("events:\n got %v\nwant %v\nall:%s", got, tc.events, fmtEvents(rec.snapshot()))
		}
	}
	for _, x := range rec.snapshot() {
		if x.Pool != "127.0.0.1:7000" {
			t.Errorf("event %v without pool name", x.Type)
		}
	}
	if tc.check != nil {
		tc.check(t, e)
	}
}

func equalEvents(a, b []ev) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidDestroysInvalidConnections(t *testing.T) {
	var dials atomic.Int32
	bad := map[int32]bool{}
	var mu sync.Mutex
	p, err := New(Config[int32]{
		Name: "valid",
		Dial: func(context.Context) (int32, error) { return dials.Add(1), nil },
		Valid: func(c int32) bool {
			mu.Lock()
			defer mu.Unlock()
			return !bad[c]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := r.Value()
	r.Release()
	mu.Lock()
	bad[first] = true // it broke while idle
	mu.Unlock()
	r, err = p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Value() == first {
		t.Fatal("an invalid connection was handed out")
	}
	r.Release()
	// The invalid connection's close runs in the background.
	deadline := time.Now().Add(2 * time.Second)
	for s := p.Stat(); s.ClosedError != 1 || s.Total != 1; s = p.Stat() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
}
