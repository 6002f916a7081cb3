// Package puddlepool is a per-node connection pool built on
// github.com/jackc/puddle/v2.
//
// puddle provides the parts that are easy to get subtly wrong: a hard cap on
// open+opening resources enforced by a FIFO semaphore, cancellable acquires,
// dials that outlive a caller who gives up, and most-recently-used idle
// reuse. This package adds what a database driver needs on top of that and
// that puddle deliberately leaves out: a minimum pool size kept warm in the
// background, a bound on concurrent dials (MaxConnecting), dial timeouts and
// back-off that fail callers fast when a node is down, idle timeout, max
// lifetime with per-connection jitter, ping-after-idle, a cap on idle
// connections, CMAP-style Pause/Clear/Ready, a Close that never blocks on
// in-use connections, counters/gauges, and monitoring events.
//
// Design notes (the why):
//
//   - Every connection close goes through puddle's Resource.Destroy, which
//     keeps the resource's semaphore slot until the destructor returns. That
//     is what makes MaxSize hold for open+opening+closing connections. We
//     never use puddle's Reset, nor release a resource into a closed puddle
//     pool while the pool is still usable, because those paths free the slot
//     before the close finishes.
//   - MaxConnecting is enforced inside the constructor by a FIFO dial gate.
//     A constructor queued on the gate is woken with errRetryIdle when a
//     connection is released, so its caller takes that connection instead of
//     waiting for a dial (puddle would otherwise leave the caller attached to
//     its placeholder).
//   - Pause/Clear/Close must wake callers blocked inside puddle, and they do
//     it without the waits watching anything of ours: a wait that also
//     selected on a pool-wide "state" channel made a contended acquire cost
//     ~1.4x raw puddle's (x/sync's semaphore then selects on two channels
//     instead of one). Callers wait in puddle with their own context only.
//     Two waits are possible there, and each has its waker:
//   - A caller queued in puddle's semaphore is woken by a slot. puddle's
//     MaxSize is ours plus one, for a marker resource that is never dialed
//     or handed out; puddle counts it among its resources, so real
//     connections still never exceed MaxSize. While the pool is ready it
//     keeps the marker checked out, which takes the extra slot.
//     Pause/Clear/Close put the marker back among the idle resources: the
//     longest waiter gets the slot and the marker, sees the pool paused and
//     puts the marker back, which hands the slot to the next waiter, and so
//     through the queue, one hand-over per waiter. Whoever gets the marker
//     while the pool is ready keeps it for the pool again. (While it is
//     idle a slot is free, so nobody stays queued.)
//   - A caller waiting for its own dial is woken by the constructor, which
//     on Pause/Clear/Close returns at once a placeholder for the dial under
//     way. The caller finds it stale and destroys it; the placeholder's
//     destructor waits for the dial and closes what it yielded, so its slot
//     is held until then, as for any close.
//   - Close does not wait for in-use connections. The pool counts
//     outstanding acquires/resources together with a closed bit in one
//     atomic word; whoever brings it to "closed and zero" (Close itself, or
//     the last Release) closes the puddle pool, which waits only for
//     connection closes already under way.
package puddlepool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"

	"github.com/tendril-db/tendril/internal/errlist"
)

// Defaults for zero Config fields.
const (
	DefaultMaxConnecting     = 2
	DefaultDialTimeout       = 5 * time.Second
	DefaultHealthCheckPeriod = time.Second
	DefaultDialBackoffBase   = 100 * time.Millisecond
	DefaultDialBackoffMax    = 10 * time.Second
	minHealthCheckPeriod     = 10 * time.Millisecond
)

// Config configures a Pool. Only Dial is required.
type Config[T any] struct {
	// Name identifies the pool (typically the node address) in errors and
	// events.
	Name string
	// Dial opens a connection. Its context carries the values of the
	// context given to Acquire but not its cancellation: a dial outlives a
	// caller that gives up, bounded by DialTimeout and by Close.
	Dial func(ctx context.Context) (T, error)
	// Close closes a connection. It is never called with a pool lock held
	// and runs while the connection still counts against MaxSize. Optional.
	Close func(T) error
	// Ping checks a connection that was idle longer than PingAfterIdle
	// before it is handed out. Optional.
	Ping func(ctx context.Context, conn T) error
	// Valid is a cheap check (no I/O) made on every checkout: a
	// connection that closed itself while idle, or while lent out to
	// several callers, is destroyed and the acquire tries another.
	// Optional.
	Valid func(conn T) bool

	// MaxSize caps open+opening+closing connections; 0 means unlimited.
	MaxSize int32
	// MinSize connections are kept open by the background maintainer.
	MinSize int32
	// MaxIdle caps idle connections kept after Release; 0 means no cap
	// beyond MaxSize.
	MaxIdle int32
	// MaxConnecting bounds concurrent dials (background and acquire
	// triggered); 0 means DefaultMaxConnecting.
	MaxConnecting int32

	// IdleTimeout closes connections idle longer than this, but never
	// below MinSize; 0 means never.
	IdleTimeout time.Duration
	// MaxLifetime recycles connections older than this minus a per
	// connection random jitter in [0, LifetimeJitter); 0 means off.
	MaxLifetime    time.Duration
	LifetimeJitter time.Duration
	// HealthCheckPeriod is how often the maintainer looks at idle
	// connections and MinSize. 0 means DefaultHealthCheckPeriod, shortened
	// to IdleTimeout/2 or MaxLifetime/2 when those are smaller.
	HealthCheckPeriod time.Duration
	// PingAfterIdle: connections idle longer than this are pinged before
	// being handed out; 0 means never.
	PingAfterIdle time.Duration
	// AcquireTimeout bounds Acquire in addition to its context; 0 means
	// only the context bounds it.
	AcquireTimeout time.Duration
	// DialTimeout bounds each dial (and each ping); 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// DialBackoffBase and DialBackoffMax shape the back-off after dial
	// failures: the n-th consecutive failure blocks dialing (and fails
	// acquires that would need a dial) for a random duration in
	// [d/2, d) with d = min(Base*2^(n-1), Max). Defaults 100ms and 10s.
	DialBackoffBase time.Duration
	DialBackoffMax  time.Duration

	// OnEvent receives monitoring events. It is called without any pool
	// lock held, on whatever goroutine caused the event. Optional.
	OnEvent func(Event)
}

const closedBit = uint64(1) << 63

// Pool is a connection pool for one node. It is safe for concurrent use.
type Pool[T any] struct {
	name           string
	dial           func(context.Context) (T, error)
	closeFn        func(T) error
	ping           func(context.Context, T) error
	valid          func(T) bool
	onEvent        func(Event)
	maxSize        int32 // 0 = unlimited
	minSize        int32
	maxIdle        int32
	maxConnecting  int32
	idleTimeout    time.Duration
	maxLifetime    time.Duration
	jitter         time.Duration
	healthPeriod   time.Duration
	pingAfterIdle  time.Duration
	acquireTimeout time.Duration
	dialTimeout    time.Duration
	backoffBase    time.Duration
	backoffMax     time.Duration

	pp   *puddle.Pool[*conn[T]]
	gate dialGate

	// out counts acquires in progress plus checked-out resources, with
	// closedBit set once Close was called.
	out       atomic.Uint64
	finalOnce sync.Once

	gen atomic.Uint64 // bumped by Pause/Clear; older connections are stale
	st  atomic.Pointer[poolState]
	mu  sync.Mutex // serialises Pause/Clear/Ready/Close transitions

	// marker is the marker resource (see the package doc) while the pool
	// keeps it checked out; nil while it is idle in puddle or on its way.
	// Guarded by mu. markerConn is its value.
	marker     *puddle.Resource[*conn[T]]
	markerConn *conn[T]

	bo struct {
		mu       sync.Mutex
		failures int
		until    time.Time
		lastErr  error
	}
	boActive atomic.Bool // fast check: is there a back-off to look at?

	closeCtx    context.Context // cancelled (cause ErrPoolClosed) by Close
	closeCancel context.CancelCauseFunc
	fillCtx     context.Context // closeCtx marked as "background fill"
	kick        chan struct{}
	checkedGen  uint64 // the generation checkIdle last looked at; maintainer only
	maintDone   chan struct{}

	nextID atomic.Uint64

	// gauges
	open         atomic.Int32 // dialed and not yet closed (includes closing)
	constructing atomic.Int32
	closing      atomic.Int32
	inUse        atomic.Int32
	waiting      atomic.Int32

	// counters
	acquired         atomic.Int64
	waited           atomic.Int64
	waitDuration     atomic.Int64
	timeouts         atomic.Int64
	cancelled        atomic.Int64
	checkoutErrors   atomic.Int64
	created          atomic.Int64
	dialErrors       atomic.Int64
	pingErrors       atomic.Int64
	closedIdle       atomic.Int64
	closedLifetime   atomic.Int64
	closedError      atomic.Int64
	closedCleared    atomic.Int64
	closedPoolClosed atomic.Int64
}

// poolState is replaced (never mutated) on every Pause/Clear/Ready/Close.
// ctx is cancelled when the pool leaves the ready state; dials queued on the
// dial gate, and constructors whose caller waits for their dial, watch it.
type poolState struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	paused bool
	err    error // what paused acquirers get (wraps ErrPoolPaused or ErrPoolClosed)
}

type fillKey struct{}

// markerCtx asks the constructor for the marker resource.
type markerKey struct{}

var markerCtx = context.WithValue(context.Background(), markerKey{}, true)

// pendingGen is the generation of a placeholder for a dial under way (see
// construct). It never equals the pool's, so every path that meets a
// placeholder (checkOut, checkIdle) destroys it as stale.
const pendingGen = math.MaxUint64

type dialResult[T any] struct {
	c   *conn[T]
	err error
}

// noDialCtx marks puddle's TryAcquire background construction, which the fast
// path never wants (see Acquire).
type noDialContext struct{ context.Context }

var (
	noDialCtx context.Context = &noDialContext{context.Background()}
	errNoDial                 = errors.New("puddlepool: fast path does not dial")
)

// conn is what puddle stores. The Resource handle lives inside it so that
// Acquire does not allocate.
type conn[T any] struct {
	value     T
	pool      *Pool[T]
	id        uint64
	gen       uint64
	readyAt   time.Time
	expiresAt time.Time // zero when MaxLifetime is off
	res       Resource[T]

	// Written by the goroutine that owns the resource right before
	// puddle's Destroy (which starts the destructor goroutine).
	reason   Reason
	closeErr error
	closing  bool

	// pending is set on a placeholder only: it delivers the outcome of
	// the dial the placeholder stands for.
	pending chan dialResult[T]

	// loans counts the Loans of the connection not yet returned (see
	// Resource.Lend); quiet, made by a waiter under loanMu, is closed
	// when the count drops to zero.
	loans   atomic.Int32
	waiters atomic.Int32
	loanMu  sync.Mutex
	quiet   chan struct{}
}

// Resource is a checked-out connection. It must be returned exactly once
// with Release or Destroy and not used afterwards: the handle is recycled
// for the next checkout of the same connection.
type Resource[T any] struct {
	c    *conn[T]
	pres *puddle.Resource[*conn[T]]
	out  bool
}

// New creates a pool and starts its maintainer goroutine, which Close stops.
func New[T any](cfg Config[T]) (*Pool[T], error) {
	if cfg.Dial == nil {
		return nil, errors.New("puddlepool: Config.Dial is required")
	}
	if cfg.MaxSize < 0 || cfg.MinSize < 0 || cfg.MaxIdle < 0 || cfg.MaxConnecting < 0 {
		return nil, errors.New("puddlepool: negative size in Config")
	}
	if cfg.MaxSize > 0 && cfg.MinSize > cfg.MaxSize {
		return nil, fmt.Errorf("puddlepool: MinSize %d > MaxSize %d", cfg.MinSize, cfg.MaxSize)
	}
	if cfg.MaxIdle > 0 && cfg.MaxIdle < cfg.MinSize {
		return nil, fmt.Errorf("puddlepool: MaxIdle %d < MinSize %d", cfg.MaxIdle, cfg.MinSize)
	}
	if cfg.LifetimeJitter < 0 || (cfg.MaxLifetime > 0 && cfg.LifetimeJitter >= cfg.MaxLifetime) {
		return nil, errors.New("puddlepool: LifetimeJitter must be in [0, MaxLifetime)")
	}
	p := &Pool[T]{
		name:           cfg.Name,
		dial:           cfg.Dial,
		closeFn:        cfg.Close,
		ping:           cfg.Ping,
		valid:          cfg.Valid,
		onEvent:        cfg.OnEvent,
		maxSize:        cfg.MaxSize,
		minSize:        cfg.MinSize,
		maxIdle:        cfg.MaxIdle,
		maxConnecting:  cfg.MaxConnecting,
		idleTimeout:    cfg.IdleTimeout,
		maxLifetime:    cfg.MaxLifetime,
		jitter:         cfg.LifetimeJitter,
		healthPeriod:   cfg.HealthCheckPeriod,
		pingAfterIdle:  cfg.PingAfterIdle,
		acquireTimeout: cfg.AcquireTimeout,
		dialTimeout:    cfg.DialTimeout,
		backoffBase:    cfg.DialBackoffBase,
		backoffMax:     cfg.DialBackoffMax,
		kick:           make(chan struct{}, 1),
		maintDone:      make(chan struct{}),
	}
	if p.maxConnecting == 0 {
		p.maxConnecting = DefaultMaxConnecting
	}
	if p.dialTimeout <= 0 {
		p.dialTimeout = DefaultDialTimeout
	}
	if p.backoffBase <= 0 {
		p.backoffBase = DefaultDialBackoffBase
	}
	if p.backoffMax <= 0 {
		p.backoffMax = DefaultDialBackoffMax
	}
	if p.backoffMax < p.backoffBase {
		p.backoffMax = p.backoffBase
	}
	if p.healthPeriod <= 0 {
		p.healthPeriod = DefaultHealthCheckPeriod
		if p.idleTimeout > 0 && p.idleTimeout/2 < p.healthPeriod {
			p.healthPeriod = p.idleTimeout / 2
		}
		if p.maxLifetime > 0 && p.maxLifetime/2 < p.healthPeriod {
			p.healthPeriod = p.maxLifetime / 2
		}
		p.healthPeriod = max(p.healthPeriod, minHealthCheckPeriod)
	}
	p.gate.max = p.maxConnecting

	// One more than MaxSize: the marker (see the package doc).
	puddleMax := p.maxSize + 1
	if p.maxSize == 0 || p.maxSize == math.MaxInt32 {
		puddleMax = math.MaxInt32
	}
	pp, err := puddle.NewPool(&puddle.Config[*conn[T]]{
		Constructor: p.construct,
		Destructor:  p.destruct,
		MaxSize:     puddleMax,
	})
	if err != nil {
		return nil, fmt.Errorf("puddlepool: %w", err)
	}
	p.pp = pp
	p.closeCtx, p.closeCancel = context.WithCancelCause(context.Background())
	p.fillCtx = context.WithValue(p.closeCtx, fillKey{}, true)
	sctx, scancel := context.WithCancelCause(context.Background())
	p.st.Store(&poolState{ctx: sctx, cancel: scancel})
	p.markerConn = &conn[T]{pool: p}
	res, err := pp.Acquire(markerCtx) // a free slot, no idle resource: never waits
	if err != nil {
		pp.Close()
		p.closeCancel(nil)
		return nil, fmt.Errorf("puddlepool: %w", err)
	}
	p.marker = res

	go p.maintain()
	p.kickMaintainer()
	return p, nil
}

// Name returns Config.Name.
func (p *Pool[T]) Name() string { return p.name }

// enter registers an acquire in progress; false if the pool is closed.
func (p *Pool[T]) enter() bool {
	if p.out.Add(1)&closedBit != 0 {
		p.leave()
		return false
	}
	return true
}

// leave undoes enter (or ends a checkout). Whoever leaves a closed pool
// empty performs the final puddle close.
func (p *Pool[T]) leave() {
	if p.out.Add(^uint64(0)) == closedBit {
		p.finalClose()
	}
}

func (p *Pool[T]) finalClose() {
	// puddle's Close destroys what is idle and waits for destroys and dials
	// already under way (dials are cancelled through closeCtx), so after it
	// returns no goroutine of this pool remains. It would wait for the
	// marker too, if checked out: when the last Release comes first, it
	// puts the marker back itself rather than wait for Close to.
	p.finalOnce.Do(func() {
		p.releaseMarker()
		p.pp.Close()
	})
}

func (p *Pool[T]) emit(ev Event) {
	ev.Pool = p.name
	p.onEvent(ev)
}

// TryAcquire returns an idle connection if one is at hand, without
// waiting and without dialing; nil otherwise (then Acquire waits or
// dials). It lets a caller that needs no cancellation for the common case
// skip building a context for it.
func (p *Pool[T]) TryAcquire() *Resource[T] {
	if p.waiting.Load() != 0 || p.open.Load()-p.inUse.Load()-p.closing.Load() <= 0 || !p.enter() {
		return nil
	}
	if !p.st.Load().paused {
		if pres, err := p.pp.TryAcquire(noDialCtx); err == nil {
			if r := p.checkOut(context.Background(), pres, 0); r != nil {
				return r
			}
		}
	}
	p.leave()
	return nil
}

// Acquire returns an idle connection, or dials one, or waits for one to be
// released, bounded by ctx and Config.AcquireTimeout. Errors wrap
// ErrPoolClosed, ErrAcquireTimeout, ErrPoolPaused (and the error given to
// Clear), ErrDialBackoff or the dial error, or the context's error.
func (p *Pool[T]) Acquire(ctx context.Context) (*Resource[T], error) {
	if p.onEvent != nil {
		p.emit(Event{Type: EventCheckOutStarted})
	}
	if !p.enter() {
		return nil, p.fail(ReasonPoolClosed, 0, fmt.Errorf("puddlepool: node %s: %w", p.name, ErrPoolClosed))
	}
	if st := p.st.Load(); st.paused {
		p.leave()
		return nil, p.failPaused(st.err, 0)
	}
	// Fast path: an idle connection is (probably) there. TryAcquire never
	// blocks, so no cancellation plumbing is needed. It is given noDialCtx
	// because, when the idle set turns out to be empty, TryAcquire starts a
	// background dial with its context; the constructor recognises noDialCtx
	// and declines, so losing that race costs no connection.
	// When others already wait, puddle's FIFO semaphore refuses TryAcquire
	// anyway, so go straight to the queue.
	// A caller whose context is already done takes the slow path, which
	// fails it at once instead of handing out a connection.
	if p.waiting.Load() == 0 && p.open.Load()-p.inUse.Load()-p.closing.Load() > 0 && ctx.Err() == nil {
		if pres, err := p.pp.TryAcquire(noDialCtx); err == nil {
			if r := p.checkOut(ctx, pres, 0); r != nil {
				return r, nil
			}
		}
	}
	r, err := p.acquireSlow(ctx)
	if err != nil {
		p.leave()
	}
	return r, err
}

var errTimeoutCause = errors.New("puddlepool: AcquireTimeout elapsed")

// epoch and mono time waits with one clock read each (the monotonic
// clock only): time.Now reads the wall clock too, which showed in
// profiles of contended acquires on a VM whose clock reads are dear.
var epoch = time.Now()

func mono() time.Duration { return time.Since(epoch) }

var errInvalid = errors.New("connection reported itself invalid")

func (p *Pool[T]) acquireSlow(ctx context.Context) (*Resource[T], error) {
	start := mono()
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	p.waited.Add(1)

	if st := p.st.Load(); st.paused {
		return nil, p.failPaused(st.err, 0)
	}
	// The wait watches the caller's context only: Pause/Clear/Close end it
	// from inside puddle (the marker, the dial placeholder; see the package
	// doc), which keeps a caller without cancellation (Background,
	// the common case for a driver's internal acquires) down to puddle's
	// own single-channel wait.
	actx := ctx
	if p.acquireTimeout > 0 {
		var tcancel context.CancelFunc
		actx, tcancel = context.WithTimeoutCause(ctx, p.acquireTimeout, errTimeoutCause)
		defer tcancel()
	}
	for {
		pres, err := p.pp.Acquire(actx)
		if err == nil {
			if r := p.checkOut(actx, pres, mono()-start); r != nil {
				return r, nil
			}
		} else if !errors.Is(err, errRetryIdle) || actx.Err() != nil {
			return nil, p.acquireFailed(ctx, actx, start, err)
		}
		// Try again, unless the pool was paused meanwhile: the stale
		// connection just destroyed may be how Pause woke us (the
		// placeholder of our dial).
		if st := p.st.Load(); st.paused {
			return nil, p.acquireFailed(ctx, actx, start, st.err)
		}
	}
}

// checkOut validates a connection puddle handed us. It returns nil (after
// destroying the connection) if it is stale, expired or fails its ping, and
// nil for the marker, which it keeps or passes on.
func (p *Pool[T]) checkOut(ctx context.Context, pres *puddle.Resource[*conn[T]], waited time.Duration) *Resource[T] {
	c := pres.Value()
	if c == p.markerConn {
		p.putMarker(pres)
		return nil
	}
	if c.gen != p.gen.Load() {
		p.destroyRes(pres, ReasonCleared, nil)
		return nil
	}
	if p.maxLifetime > 0 && time.Now().After(c.expiresAt) {
		p.destroyRes(pres, ReasonStale, nil)
		return nil
	}
	if p.valid != nil && !p.valid(c.value) {
		p.destroyRes(pres, ReasonError, errInvalid)
		return nil
	}
	if p.pingAfterIdle > 0 && p.ping != nil {
		idle := pres.IdleDuration()
		if since := time.Since(c.readyAt); since < idle {
			idle = since
		}
		if idle > p.pingAfterIdle {
			pctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
			err := p.ping(pctx, c.value)
			cancel()
			if err != nil {
				p.pingErrors.Add(1)
				p.destroyRes(pres, ReasonError, fmt.Errorf("ping after %v idle: %w", idle, err))
				return nil
			}
		}
	}
	c.res.pres = pres
	c.res.out = true
	p.inUse.Add(1)
	p.acquired.Add(1)
	if waited > 0 {
		p.waitDuration.Add(int64(waited))
	}
	if p.onEvent != nil {
		p.emit(Event{Type: EventCheckedOut, ConnID: c.id, Duration: waited})
	}
	return &c.res
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func (p *Pool[T]) fail(reason Reason, waited time.Duration, err error) error {
	p.checkoutErrors.Add(1)
	if p.onEvent != nil {
		p.emit(Event{Type: EventCheckOutFailed, Reason: reason, Err: err, Duration: waited})
	}
	return err
}

func (p *Pool[T]) failPaused(perr error, waited time.Duration) error {
	if errors.Is(perr, ErrPoolClosed) {
		return p.fail(ReasonPoolClosed, waited, fmt.Errorf("puddlepool: node %s: %w", p.name, perr))
	}
	return p.fail(ReasonPaused, waited, fmt.Errorf("puddlepool: node %s: no connection after %v: %w", p.name, roundDur(waited), perr))
}

func (p *Pool[T]) usage() string {
	if p.maxSize > 0 {
		return fmt.Sprintf("%d of max %d in use, %d waiting", p.inUse.Load(), p.maxSize, p.waiting.Load()-1)
	}
	return fmt.Sprintf("%d in use, %d waiting", p.inUse.Load(), p.waiting.Load()-1)
}

func (p *Pool[T]) acquireFailed(ctx, actx context.Context, start time.Duration, err error) error {
	waited := mono() - start
	p.waitDuration.Add(int64(waited))
	cause := err
	if actx.Err() != nil {
		cause = context.Cause(actx)
	}
	switch {
	case errors.Is(cause, ErrPoolClosed) || errors.Is(cause, puddle.ErrClosedPool):
		return p.fail(ReasonPoolClosed, waited, fmt.Errorf("puddlepool: node %s: %w", p.name, ErrPoolClosed))
	case errors.Is(cause, ErrPoolPaused):
		return p.failPaused(cause, waited)
	case cause == errTimeoutCause:
		p.timeouts.Add(1)
		return p.fail(ReasonTimeout, waited, fmt.Errorf("puddlepool: node %s: no connection within %v (%s): %w",
			p.name, roundDur(waited), p.usage(), ErrAcquireTimeout))
	case actx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		p.timeouts.Add(1)
		return p.fail(ReasonTimeout, waited, fmt.Errorf("puddlepool: node %s: no connection within %v (%s): %w (%w)",
			p.name, roundDur(waited), p.usage(), ErrAcquireTimeout, ctx.Err()))
	case actx.Err() != nil:
		p.cancelled.Add(1)
		return p.fail(ReasonCancelled, waited, fmt.Errorf("puddlepool: node %s: acquire cancelled after %v: %w",
			p.name, roundDur(waited), cause))
	default:
		return p.fail(ReasonDialError, waited, fmt.Errorf("puddlepool: node %s: no connection after %v: %w",
			p.name, roundDur(waited), err))
	}
}

// Room reports whether the pool could open another connection now: fewer
// than MaxSize are open or being dialed (always, without a MaxSize). A
// caller about to keep to itself a connection others could share (a
// multiplexed one) asks first, so that nobody has to wait for it.
func (p *Pool[T]) Room() bool {
	return p.maxSize == 0 || p.open.Load()+p.constructing.Load() < p.maxSize
}

// Value returns the connection.
func (r *Resource[T]) Value() T { return r.c.value }

// CreatedAt returns when the connection finished dialing.
func (r *Resource[T]) CreatedAt() time.Time { return r.c.readyAt }

// ID returns the connection's pool-unique id (as in events).
func (r *Resource[T]) ID() uint64 { return r.c.id }

// Release returns the connection to the pool. It is closed instead if the
// pool was closed, paused or cleared since it was dialed, if it outlived its
// lifetime, or if MaxIdle connections are already idle.
func (r *Resource[T]) Release() {
	if !r.out {
		panic("puddlepool: Release of a resource that is not checked out")
	}
	c := r.c
	p := c.pool
	pres := r.pres
	r.out = false
	r.pres = nil
	if p.onEvent != nil {
		p.emit(Event{Type: EventCheckedIn, ConnID: c.id})
	}
	switch {
	case p.out.Load()&closedBit != 0:
		p.destroyRes(pres, ReasonPoolClosed, nil)
	case c.gen != p.gen.Load():
		p.destroyRes(pres, ReasonCleared, nil)
	case p.maxLifetime > 0 && time.Now().After(c.expiresAt):
		p.destroyRes(pres, ReasonStale, nil)
	case p.maxIdle > 0 && p.open.Load()-p.inUse.Load()-p.closing.Load() >= p.maxIdle:
		p.destroyRes(pres, ReasonIdle, nil)
	default:
		// After this the connection may belong to someone else: touch
		// nothing of c below.
		pres.Release()
		p.gate.wakeIdle()
	}
	p.inUse.Add(-1)
	p.leave()
}

// Loan is a connection lent out by Resource.Lend: its holder uses it
// alongside others while the pool may hand it out again.
type Loan[T any] struct{ c *conn[T] }

// Lend returns the connection to the pool at once while the caller keeps
// using it, for connections that serve many callers at a time (a
// multiplexed protocol). The caller must end its use with Loan.Return. A
// caller that later acquires the connection for use of its own (a
// transaction, a blocking command) first waits for the loans still out
// with WaitLoans, so that no lent user's request can reach the connection
// during that exclusive use.
func (r *Resource[T]) Lend() Loan[T] {
	c := r.c
	c.loans.Add(1) // before Release: an acquirer that gets c sees the loan
	r.Release()
	return Loan[T]{c}
}

// Value returns the lent connection.
func (l Loan[T]) Value() T { return l.c.value }

// Return ends the loan. It is called once per Lend.
func (l Loan[T]) Return() {
	c := l.c
	if c.loans.Add(-1) == 0 && c.waiters.Load() != 0 {
		c.loanMu.Lock()
		if c.quiet != nil {
			close(c.quiet)
			c.quiet = nil
		}
		c.loanMu.Unlock()
	}
}

// Loans returns the number of loans of the connection not yet returned.
func (r *Resource[T]) Loans() int { return int(r.c.loans.Load()) }

// WaitLoans waits until every loan of the checked-out connection has been
// returned, or until ctx is done. While r is checked out nobody can borrow
// the connection, so once WaitLoans returns nil no lent user is left.
func (r *Resource[T]) WaitLoans(ctx context.Context) error {
	c := r.c
	if c.loans.Load() == 0 {
		return nil
	}
	c.waiters.Add(1)
	defer c.waiters.Add(-1)
	for {
		c.loanMu.Lock()
		if c.loans.Load() == 0 {
			c.loanMu.Unlock()
			return nil
		}
		if c.quiet == nil {
			c.quiet = make(chan struct{})
		}
		ch := c.quiet
		c.loanMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("puddlepool: node %s: waiting for %d shared users of connection %d to finish: %w",
				c.pool.name, c.loans.Load(), c.id, ctx.Err())
		}
	}
}

// Destroy closes the connection instead of returning it (use it when the
// connection is broken). The close runs in the background but the connection
// keeps counting against MaxSize until it finishes.
func (r *Resource[T]) Destroy() {
	if !r.out {
		panic("puddlepool: Destroy of a resource that is not checked out")
	}
	c := r.c
	p := c.pool
	pres := r.pres
	r.out = false
	r.pres = nil
	if p.onEvent != nil {
		p.emit(Event{Type: EventCheckedIn, ConnID: c.id})
	}
	p.destroyRes(pres, ReasonError, nil)
	p.inUse.Add(-1)
	p.leave()
}

// destroyRes closes an acquired puddle resource through puddle's Destroy,
// which holds its semaphore slot until our destructor returned.
func (p *Pool[T]) destroyRes(pres *puddle.Resource[*conn[T]], reason Reason, err error) {
	c := pres.Value()
	if c == p.markerConn {
		// Never: puddle would drop the marker, and with it the bound
		// on real connections (see the package doc).
		p.putMarker(pres)
		return
	}
	c.reason = reason
	c.closeErr = err
	if c.pending == nil {
		// A placeholder's dial counts as constructing until it ends; its
		// destructor counts the close of what it yields.
		c.closing = true
		p.closing.Add(1)
	}
	pres.Destroy()
	if p.minSize > 0 {
		p.kickMaintainer()
	}
}

// construct is puddle's constructor: it waits for a dial slot, honours
// back-off, and dials with DialTimeout.
func (p *Pool[T]) construct(ctx context.Context) (*conn[T], error) {
	if ctx == noDialCtx {
		return nil, errNoDial
	}
	if ctx.Value(markerKey{}) != nil {
		return p.markerConn, nil
	}
	// Paused first: a waiter that gets a slot while the pool is paused
	// must get the pool's error, not a back-off error.
	st := p.st.Load()
	if st.paused {
		return nil, st.err
	}
	if err := p.backoffErr(); err != nil {
		return nil, err
	}
	forAcquire := ctx.Value(fillKey{}) == nil
	if err := p.gate.acquire(p.closeCtx, st.ctx.Done(), func() error { return context.Cause(st.ctx) }, forAcquire); err != nil {
		return nil, err
	}
	// A dial may have failed while we queued: do not pile onto a dead node.
	if err := p.backoffErr(); err != nil {
		p.gate.release()
		return nil, err
	}
	if !forAcquire { // a MinSize fill: nobody waits for it
		defer p.gate.release()
		return p.dial1(ctx)
	}
	// A caller waits for this dial (in puddle, on nothing but this
	// constructor and its own context), and Pause/Clear/Close must end
	// that wait while the dial goes on. So the dial runs on a goroutine of
	// its own, and a pause makes the constructor return a placeholder at
	// once: the caller destroys it as stale, and its destructor waits for
	// the dial, keeping the slot until what the dial yielded is closed.
	ch := make(chan dialResult[T], 1)
	go func() {
		c, err := p.dial1(ctx)
		p.gate.release()
		ch <- dialResult[T]{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && st.ctx.Err() != nil {
			// Close aborts dials: the pool's error says why.
			return nil, context.Cause(st.ctx)
		}
		return r.c, r.err
	case <-st.ctx.Done():
		return &conn[T]{pool: p, gen: pendingGen, pending: ch}, nil
	}
}

// dial1 makes one dial, with DialTimeout, and the accounting around it.
func (p *Pool[T]) dial1(ctx context.Context) (*conn[T], error) {
	gen := p.gen.Load()
	id := p.nextID.Add(1)
	p.constructing.Add(1)
	if p.onEvent != nil {
		p.emit(Event{Type: EventConnCreated, ConnID: id})
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.dialTimeout)
	stop := context.AfterFunc(p.closeCtx, cancel)
	v, err := p.dial(dctx)
	stop()
	cancel()
	d := time.Since(start)
	if err != nil {
		p.constructing.Add(-1)
		p.dialErrors.Add(1)
		if p.closeCtx.Err() == nil {
			p.dialFailed(err)
		}
		if p.onEvent != nil {
			p.emit(Event{Type: EventConnClosed, ConnID: id, Reason: ReasonError, Err: err, Duration: d})
		}
		return nil, fmt.Errorf("dial failed after %v: %w", roundDur(d), err)
	}
	p.dialSucceeded()
	c := &conn[T]{value: v, pool: p, id: id, gen: gen, readyAt: time.Now()}
	c.res.c = c
	if p.maxLifetime > 0 {
		life := p.maxLifetime
		if p.jitter > 0 {
			life -= rand.N(p.jitter)
		}
		c.expiresAt = c.readyAt.Add(life)
	}
	p.open.Add(1)
	p.constructing.Add(-1)
	p.created.Add(1)
	if p.onEvent != nil {
		p.emit(Event{Type: EventConnReady, ConnID: id, Duration: d})
	}
	return c, nil
}

// destruct is puddle's destructor.
func (p *Pool[T]) destruct(c *conn[T]) {
	if c == p.markerConn {
		return
	}
	if c.pending != nil {
		r := <-c.pending
		if r.err != nil { // dial1 accounted for the failure
			return
		}
		rc := r.c
		rc.reason = c.reason
		if p.closeCtx.Err() != nil {
			rc.reason = ReasonPoolClosed
		}
		rc.closing = true
		p.closing.Add(1)
		c = rc
	}
	var err error
	if p.closeFn != nil {
		err = p.closeFn(c.value)
	}
	reason := c.reason
	if reason == "" { // puddle closed it on our final Close
		reason = ReasonPoolClosed
	}
	if c.closing {
		p.closing.Add(-1)
	}
	p.open.Add(-1)
	switch reason {
	case ReasonIdle:
		p.closedIdle.Add(1)
	case ReasonStale:
		p.closedLifetime.Add(1)
	case ReasonCleared:
		p.closedCleared.Add(1)
	case ReasonPoolClosed:
		p.closedPoolClosed.Add(1)
	default:
		p.closedError.Add(1)
	}
	if p.onEvent != nil {
		if c.closeErr != nil {
			err = errlist.Join(c.closeErr, err)
		}
		p.emit(Event{Type: EventConnClosed, ConnID: c.id, Reason: reason, Err: err, Duration: time.Since(c.readyAt)})
	}
}

func (p *Pool[T]) backoffErr() error {
	if !p.boActive.Load() {
		return nil
	}
	p.bo.mu.Lock()
	defer p.bo.mu.Unlock()
	rem := time.Until(p.bo.until)
	if p.bo.failures == 0 || rem <= 0 {
		return nil
	}
	return fmt.Errorf("%w (%d in a row, next try in %v): %w", ErrDialBackoff, p.bo.failures, roundDur(rem), p.bo.lastErr)
}

func (p *Pool[T]) backoffRemaining() time.Duration {
	if !p.boActive.Load() {
		return 0
	}
	p.bo.mu.Lock()
	defer p.bo.mu.Unlock()
	return max(time.Until(p.bo.until), 0)
}

func (p *Pool[T]) dialFailed(err error) {
	p.bo.mu.Lock()
	p.bo.failures++
	d := p.backoffBase
	for i := 1; i < p.bo.failures && d < p.backoffMax; i++ {
		d *= 2
	}
	d = min(d, p.backoffMax)
	// Jitter so that the pools of many clients do not probe a recovering
	// node in lock step.
	d = d/2 + rand.N(d/2+1)
	p.bo.until = time.Now().Add(d)
	p.bo.lastErr = err
	p.boActive.Store(true)
	p.bo.mu.Unlock()
}

func (p *Pool[T]) dialSucceeded() {
	if !p.boActive.Load() {
		return
	}
	p.resetBackoff()
}

func (p *Pool[T]) resetBackoff() {
	p.bo.mu.Lock()
	p.bo.failures = 0
	p.bo.lastErr = nil
	p.bo.until = time.Time{}
	p.boActive.Store(false)
	p.bo.mu.Unlock()
}

func (p *Pool[T]) kickMaintainer() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// maintain is the pool's single background goroutine (owned by the pool,
// stopped by Close): it expires idle connections and keeps MinSize.
func (p *Pool[T]) maintain() {
	defer close(p.maintDone)
	t := time.NewTimer(p.healthPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.closeCtx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		p.checkIdle()
		t.Reset(p.fillMin())
	}
}

// checkIdle takes all idle connections out of puddle (puddle's
// AcquireAllIdle, which keeps MaxSize accounting intact), closes those that
// are stale, expired, idle too long (keeping MinSize) or beyond MaxIdle, and
// puts the rest back most-recently-used on top.
func (p *Pool[T]) checkIdle() {
	gen := p.gen.Load()
	if p.maxLifetime == 0 && p.idleTimeout == 0 && p.maxIdle == 0 && gen == p.checkedGen {
		// Nothing could be closed: leave the idle connections where an
		// acquire can take them (one that comes while they are out here
		// would dial a connection of its own).
		return
	}
	p.checkedGen = gen
	idle := p.takeIdle() // idle[0] is the most recently used
	if len(idle) == 0 {
		return
	}
	now := time.Now()
	kept := 0
	for _, pres := range idle {
		c := pres.Value()
		switch {
		case c.gen != gen:
			p.destroyRes(pres, ReasonCleared, nil)
		case p.maxLifetime > 0 && now.After(c.expiresAt):
			p.destroyRes(pres, ReasonStale, nil)
		case p.idleTimeout > 0 && pres.IdleDuration() > p.idleTimeout && p.open.Load()-p.closing.Load() > p.minSize:
			p.destroyRes(pres, ReasonIdle, nil)
		case p.maxIdle > 0 && int32(kept) >= p.maxIdle:
			p.destroyRes(pres, ReasonIdle, nil)
		default:
			idle[kept] = pres
			kept++
		}
	}
	for i := kept - 1; i >= 0; i-- {
		idle[i].ReleaseUnused()
		p.gate.wakeIdle()
	}
}

// fillMin opens connections up to MinSize, at most MaxConnecting at a time
// (the dial gate enforces the bound across background and acquire dials). It
// returns when the maintainer should look again.
func (p *Pool[T]) fillMin() time.Duration {
	for {
		if p.minSize == 0 || p.closeCtx.Err() != nil || p.st.Load().paused {
			return p.healthPeriod
		}
		if rem := p.backoffRemaining(); rem > 0 {
			return min(rem+time.Millisecond, p.healthPeriod)
		}
		need := p.minSize - (p.open.Load() - p.closing.Load() + p.constructing.Load())
		if need <= 0 {
			return p.healthPeriod
		}
		n := min(need, p.maxConnecting)
		var wg sync.WaitGroup
		var hardFail atomic.Bool
		for range n {
			wg.Go(func() {
				err := p.pp.CreateResource(p.fillCtx)
				if err != nil && !errors.Is(err, errRetryIdle) {
					hardFail.Store(true)
				}
			})
		}
		wg.Wait()
		if hardFail.Load() {
			if rem := p.backoffRemaining(); rem > 0 {
				return min(rem+time.Millisecond, p.healthPeriod)
			}
			return p.healthPeriod
		}
	}
}

func (p *Pool[T]) closeIdle(reason Reason) {
	for _, pres := range p.takeIdle() {
		p.destroyRes(pres, reason, nil)
	}
}

// takeIdle takes the idle connections out of puddle, the most recently
// used first, one TryAcquire each. Not puddle's AcquireAllIdle (v2.2.3):
// when TryAcquire of all its idle count fails, it takes semaphore tokens
// by powers of two, and a token an acquirer whose context ended gives back
// meanwhile (x/sync's semaphore does that outside puddle's lock) can make
// it take more tokens than there are idle resources, and then pop a nil
// one: a nil dereference on the maintainer goroutine (TestStress under
// -race, about 1 run in 30). TryAcquire fails while acquirers wait: the
// idle connections are theirs then anyway.
// The marker (see the package doc) is not returned: the pool keeps it or it
// goes back.
func (p *Pool[T]) takeIdle() []*puddle.Resource[*conn[T]] {
	n := p.pp.Stat().IdleResources()
	if n == 0 {
		return nil
	}
	idle := make([]*puddle.Resource[*conn[T]], 0, n)
	var m *puddle.Resource[*conn[T]]
	for range n {
		pres, err := p.pp.TryAcquire(noDialCtx)
		if err != nil {
			break
		}
		if pres.Value() == p.markerConn {
			m = pres // put back after the loop, or we would take it again
			continue
		}
		idle = append(idle, pres)
	}
	if m != nil {
		p.putMarker(m)
	}
	return idle
}

// Pause marks the node unusable (CMAP "paused"): waiters fail at once with
// an error wrapping ErrPoolPaused, new acquires fail fast, idle connections
// are closed and in-use ones are closed when released. Ready resumes.
func (p *Pool[T]) Pause() { p.pause(EventPoolPaused, nil) }

// Clear is Pause with a reason: errors returned to acquirers wrap both
// ErrPoolPaused and err.
func (p *Pool[T]) Clear(err error) { p.pause(EventPoolCleared, err) }

func (p *Pool[T]) pause(typ EventType, cause error) {
	perr := ErrPoolPaused
	if cause != nil {
		perr = fmt.Errorf("%w: %w", ErrPoolPaused, cause)
	}
	p.mu.Lock()
	old := p.st.Load()
	if old.err != nil && errors.Is(old.err, ErrPoolClosed) {
		p.mu.Unlock()
		return
	}
	p.gen.Add(1)
	p.st.Store(&poolState{ctx: old.ctx, cancel: old.cancel, paused: true, err: perr})
	p.mu.Unlock()
	// The event goes out before its consequences (failed waiters, closed
	// connections) so that monitoring sees cause before effect.
	if p.onEvent != nil {
		p.emit(Event{Type: typ, Err: cause})
	}
	// Wake waiters: those queued for a dial slot and those waiting for a
	// dial (they watch st.ctx), then those queued in puddle (the marker).
	old.cancel(perr)
	p.releaseMarker()
	p.closeIdle(ReasonCleared)
}

// releaseMarker puts the marker back among puddle's idle resources if
// the pool keeps it: the longest waiter in puddle gets it (see the package
// doc). Called after a transition away from ready.
func (p *Pool[T]) releaseMarker() {
	p.mu.Lock()
	res := p.marker
	p.marker = nil
	p.mu.Unlock()
	if res != nil {
		res.ReleaseUnused()
	}
}

// putMarker is for whoever got the marker from puddle: the pool keeps it
// while ready; while paused it goes back, to the next waiter.
func (p *Pool[T]) putMarker(pres *puddle.Resource[*conn[T]]) {
	p.mu.Lock()
	if !p.st.Load().paused {
		p.marker = pres
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pres.ReleaseUnused()
}

// Ready resumes a paused pool and resets the dial back-off.
func (p *Pool[T]) Ready() {
	p.mu.Lock()
	old := p.st.Load()
	if !old.paused || errors.Is(old.err, ErrPoolClosed) {
		p.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	p.st.Store(&poolState{ctx: ctx, cancel: cancel})
	p.mu.Unlock()
	p.resetBackoff()
	if p.onEvent != nil {
		p.emit(Event{Type: EventPoolReady})
	}
	p.kickMaintainer()
}

// Close closes idle connections now and in-use ones when they are released;
// later Acquires fail with ErrPoolClosed and waiters are woken with it. It
// stops the maintainer goroutine before returning but does not wait for
// in-use connections. If none are out it also waits for the closes it
// started; otherwise the last Release performs (and waits for) the final
// close. Close is idempotent.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	old := p.st.Load()
	if errors.Is(old.err, ErrPoolClosed) {
		p.mu.Unlock()
		return
	}
	p.st.Store(&poolState{ctx: old.ctx, cancel: old.cancel, paused: true, err: ErrPoolClosed})
	p.mu.Unlock()

	v := p.out.Or(closedBit)
	if p.onEvent != nil {
		p.emit(Event{Type: EventPoolClosed})
	}
	old.cancel(ErrPoolClosed) // wakes waiters (as pause does)
	p.releaseMarker()
	p.closeCancel(ErrPoolClosed) // stops the maintainer, aborts dials
	<-p.maintDone
	if v&^closedBit == 0 {
		p.finalClose()
	} else {
		p.closeIdle(ReasonPoolClosed)
	}
}

// Stat is a snapshot of pool gauges and counters. Gauges are read without a
// common lock, so under load they may be momentarily inconsistent; at rest
// Total == Idle + InUse + Constructing + Closing.
type Stat struct {
	MaxSize int32 // 0 = unlimited

	// Gauges.
	Total        int32 // open (incl. closing) + constructing
	Idle         int32
	InUse        int32
	Constructing int32 // dials in progress
	Closing      int32 // closes in progress (still count against MaxSize)
	Waiting      int32 // acquires that could not be served immediately

	// Counters.
	Acquired       int64         // successful acquires
	Waited         int64         // acquires that had to wait (slow path)
	WaitDuration   time.Duration // total time spent waiting by those
	Timeouts       int64         // acquires failed with ErrAcquireTimeout
	Cancelled      int64         // acquires abandoned by their context
	CheckOutErrors int64         // all failed acquires (incl. timeouts, cancels)
	Created        int64         // successful dials
	DialErrors     int64
	PingErrors     int64

	// Connections closed, by reason.
	ClosedIdle       int64 // IdleTimeout or MaxIdle
	ClosedLifetime   int64 // MaxLifetime
	ClosedError      int64 // Destroy or failed ping
	ClosedCleared    int64 // Pause/Clear
	ClosedPoolClosed int64 // Close
}

// Closed returns the total of the Closed* counters.
func (s Stat) Closed() int64 {
	return s.ClosedIdle + s.ClosedLifetime + s.ClosedError + s.ClosedCleared + s.ClosedPoolClosed
}

// Stat returns current gauges and counters without taking any lock.
func (p *Pool[T]) Stat() Stat {
	open := p.open.Load()
	cons := p.constructing.Load()
	closing := p.closing.Load()
	inUse := p.inUse.Load()
	return Stat{
		MaxSize:          p.maxSize,
		Total:            open + cons,
		Idle:             max(open-inUse-closing, 0),
		InUse:            inUse,
		Constructing:     cons,
		Closing:          closing,
		Waiting:          p.waiting.Load(),
		Acquired:         p.acquired.Load(),
		Waited:           p.waited.Load(),
		WaitDuration:     time.Duration(p.waitDuration.Load()),
		Timeouts:         p.timeouts.Load(),
		Cancelled:        p.cancelled.Load(),
		CheckOutErrors:   p.checkoutErrors.Load(),
		Created:          p.created.Load(),
		DialErrors:       p.dialErrors.Load(),
		PingErrors:       p.pingErrors.Load(),
		ClosedIdle:       p.closedIdle.Load(),
		ClosedLifetime:   p.closedLifetime.Load(),
		ClosedError:      p.closedError.Load(),
		ClosedCleared:    p.closedCleared.Load(),
		ClosedPoolClosed: p.closedPoolClosed.Load(),
	}
}
