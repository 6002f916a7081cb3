package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Decoder reads a protocol's replies from the connection.
//
// A decoder that reads ahead should also have a method Buffered() int
// returning the number of bytes read and not decoded yet: nobody reads an
// idle Conn, and bytes read ahead when the last pending reply was decoded
// are decoded at once (they answer no request) instead of being taken for
// the next request's reply.
//
// A decoder may also have a method
//
//	DecodeOrSkip(r *R, skip func() bool) (skipped bool, err error)
//
// that waits for the next message to begin arriving, then, unless the
// message is a push (out-of-band, see Codec.IsPush), asks skip whether the
// reply answers a request whose caller gave up (cancelled or timed out): if
// so it consumes the reply without keeping it and reports true; otherwise it
// decodes the message into *r as Decode would and reports false. The Conn
// then calls it instead of Decode, so that replies nobody waits for cost no
// memory however large. Asking only once the message begins lets the reply
// the reader was already waiting for when its caller gave up be skipped
// too; pushes must be told apart because they answer no request.
//
// Decode decodes the next reply into *r. The Conn always passes a zeroed R,
// so a decoder that reuses the buffers already held by *r (like
// resp.Reader.ReadValue) allocates fresh ones and the reply shares no memory
// with any other. An error means the stream is unusable: the Conn closes.
type Decoder[R any] interface {
	Decode(r *R) error
}

// skipDecoder is a Decoder that can skip replies (see Decoder).
type skipDecoder[R any] interface {
	DecodeOrSkip(r *R, skip func() bool) (skipped bool, err error)
}

// Codec describes a protocol to a Conn.
type Codec[R any] struct {
	// NewDecoder returns the decoder of one connection. rd is the raw
	// socket, unbuffered: the decoder does its own buffering. Required.
	NewDecoder func(rd io.Reader) Decoder[R]
	// IsPush reports whether a decoded message is out-of-band (answers no
	// request). Nil: there are no push messages.
	IsPush func(r *R) bool
	// OnPush receives push messages, on the reader goroutine: it must
	// return quickly, must not wait for a reply on the same Conn and must
	// not call [Conn.Close] (CloseWithReason is fine). Nil: pushes are
	// dropped. The message is owned by OnPush.
	OnPush func(r R)
}

// Options configures [Dial].
type Options struct {
	// Network and Addr are passed to the dialer ("tcp", "host:port").
	// Network defaults to "tcp".
	Network, Addr string
	// DialTimeout bounds dialing and the TLS handshake together; 0 means
	// only ctx bounds them.
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive period: 0 means Go's default, a
	// negative value turns keep-alives off. Ignored when Dialer is set.
	KeepAlive time.Duration
	// TLS, when not nil, makes the connection a TLS client. An empty
	// ServerName defaults to Addr's host.
	TLS *tls.Config
	// ReadTimeout closes the Conn with [ReasonTimeout] when requests are
	// pending and no byte arrives for this long, counted from the last byte
	// read or the last completed write, whichever is later. An idle Conn
	// (nothing pending) never times out. 0: never.
	ReadTimeout time.Duration
	// WriteTimeout bounds one write (the frames of every request queued
	// meanwhile, written at once); exceeding it closes the Conn with
	// [ReasonTimeout], failing every pending request, so a peer that stops
	// reading cannot hold a caller in a write. 0: no bound.
	WriteTimeout time.Duration
	// Dialer, when set, replaces net.Dialer (tests, proxies). It must honour
	// ctx.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Reason says why a Conn was closed.
type Reason string

const (
	// ReasonBroken: an I/O error or EOF on the socket.
	ReasonBroken Reason = "broken"
	// ReasonTimeout: Options.ReadTimeout or Options.WriteTimeout expired,
	// or a request timed out (see [Conn.DoTimeout]).
	ReasonTimeout Reason = "timeout"
	// ReasonOutOfSync: a reply that answers no request, or a protocol
	// error from the decoder; the stream can no longer be framed.
	ReasonOutOfSync Reason = "out-of-sync"
	// ReasonIdle: closed by its owner (e.g. a pool) for being idle.
	ReasonIdle Reason = "idle"
	// ReasonShutdown: closed by [Conn.Close].
	ReasonShutdown Reason = "shutdown"
	// ReasonAuthFailure: closed by its owner because authentication failed.
	ReasonAuthFailure Reason = "auth-failure"
)

// CloseError is the error of a closed Conn: [Conn.Err] returns it, and every
// request that was pending when the Conn closed fails with it.
type CloseError struct {
	Addr   string // remote address
	Reason Reason
	Err    error // the cause; nil for a plain shutdown
}

// Error returns e.g. "conn 127.0.0.1:6379: closed (broken): read: connection
// reset by peer".
func (e *CloseError) Error() string {
	s := "conn " + e.Addr + ": closed (" + string(e.Reason) + ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *CloseError) Unwrap() error { return e.Err }

// ErrNotSent is wrapped by the error of a Do whose frame was never handed to
// the socket: no byte of it can have reached the server, so it is safe to
// retry anywhere. The error of a Do that may have reached the server never
// wraps it.
var ErrNotSent = errors.New("conn: request not sent")

// notSent wraps cause (a ctx error or a *CloseError) with ErrNotSent.
func notSent(cause error) error { return fmt.Errorf("%w: %w", ErrNotSent, cause) }

// ioError is a socket error. Its message drops the addresses of a
// *net.OpError (the CloseError carries the address already) but it unwraps to
// the original error.
type ioError struct {
	op  string
	err error
}

func (e *ioError) Error() string {
	inner := e.err
	var oe *net.OpError
	if errors.As(inner, &oe) && oe.Err != nil {
		inner = oe.Err
	}
	var se *os.SyscallError
	if errors.As(inner, &se) && se.Err != nil {
		inner = se.Err
	}
	return e.op + ": " + inner.Error()
}

func (e *ioError) Unwrap() error { return e.err }

const (
	stateWaiting uint32 = iota
	stateDone
	stateAbandoned
	// stateExpired: the request's timeout passed; its caller was told and
	// let go of it, and the Conn owns it until its replies come (they are
	// dropped), as for an abandoned request.
	stateExpired
)

// request is one Do in flight. Requests are recycled through the Conn's pool;
// exactly one party owns a request at any time: the caller until it is
// enqueued, then the Conn (fields below mu) until completion hands it back
// via done, or forever if the caller abandoned it.
type request[R any] struct {
	n        int           // replies expected
	got      int           // replies received (reader, under mu)
	timeout  time.Duration // DoTimeout's timeout, while deadline is set
	seq      uint64        // position in the stream of requests (under mu)
	off, end int           // the frame's bytes in Conn.wbuf while not taken (under mu)
	replies  []R           // owned by the request until returned to the caller
	err      error
	deadline int64 // unix nanoseconds after which the Conn gives up (0: never); under mu
	state    atomic.Uint32
	done     chan uint32 // capacity 1; one token per completion: the final state
}

// Conn is one connection shared by many goroutines; see the package
// documentation.
type Conn[R any] struct {
	nc    net.Conn // what we read and write (a *tls.Conn with TLS)
	raw   net.Conn // the socket under nc
	addr  string
	codec Codec[R]

	readTimeout  time.Duration
	writeTimeout time.Duration

	mu    sync.Mutex
	wbuf  []byte        // frames not yet taken by the writer
	q     []*request[R] // FIFO of pending requests: q[qh:]
	qh    int
	seq   uint64      // seq of the last enqueued request
	taken uint64      // seq of the last request whose frame the writer took
	cerr  *CloseError // set once, when closing
	// writing is set while a caller writes for everyone (see flush).
	writing bool
	// wfree, when not nil, is closed when writing ends: DoV callers wait
	// on it for the writer's role.
	wfree chan struct{}
	// draining is set by Shutdown, or when a request times out (retire):
	// no new requests; close when the last pending one is answered. drain
	// is the error new requests get, and of a retired Conn the close error.
	draining bool
	drain    *CloseError
	// expiry gives up on requests whose timeout passed (see DoTimeout);
	// armed for expiryAt (unix nanoseconds, 0: not armed).
	expiry   *time.Timer
	expiryAt int64
	// grace closes a draining Conn whose replies do not come.
	grace *time.Timer

	// reading is the read token: set while someone reads the socket,
	// either a lone caller reading its own reply or the reader goroutine.
	// Nobody reads an idle Conn (unless alwaysRead): the FIFO is empty
	// whenever reading is false.
	reading bool

	npending atomic.Int64 // len(q)-qh, readable without mu
	// ngone counts the requests in the FIFO given up by their callers
	// (abandoned or expired), whose replies are skipped: readOne looks
	// at the head of the FIFO only while it is not 0.
	ngone    atomic.Int64
	unusable atomic.Bool // draining or closed
	closed   atomic.Pointer[CloseError]
	// idleSince is when the read token was last given back (unix
	// nanoseconds), for checkIdle.
	idleSince atomic.Int64

	done    chan struct{}  // closed on close
	readers sync.WaitGroup // reader goroutines
	// parked is the request of a Send whose caller took the read token and
	// has not begun to Wait (see Send), parkedDL its deadline; under mu.
	// A request queued behind it starts a reader goroutine instead of
	// waiting for that caller to come and read.
	parked   *request[R]
	parkedDL int64

	// alwaysRead keeps a reader goroutine for the Conn's life, idle or not:
	// push messages (Codec.OnPush) must be delivered when they come.
	alwaysRead bool
	peeker     *peeker // nil: the socket cannot be peeked at

	spare []byte // the writer's spare buffer; owned by whoever is writing

	// Read deadline bookkeeping, shared by the token holder and writers.
	dlMu    sync.Mutex
	dlArmed bool
	syncDL  int64 // the lone reader's request deadline (unix nanoseconds; 0: none)

	// The read token's holder only.
	dec      Decoder[R]
	buffered func() int // the decoder's Buffered, if it has one
	// skipDec is the decoder if it has DecodeOrSkip; skipHead is
	// c.headGone as a func value made once.
	skipDec     skipDecoder[R]
	skipHead    func() bool
	msg         *R    // decode target
	rerr        error // last error from the socket
	timedOut    bool  // rerr was a read deadline with requests pending
	syncTimeout bool  // rerr was syncDL passing

	pool sync.Pool // *request[R]
}

// maxSpareBuffer is the largest write buffer kept for reuse.
const maxSpareBuffer = 1 << 20

// Dial connects to opts.Addr and performs the TLS handshake if opts.TLS is
// set. No goroutine runs for the Conn until a request needs a reader (see
// the package documentation), except with a Codec.OnPush.
func Dial[R any](ctx context.Context, opts Options, codec Codec[R]) (*Conn[R], error) {
	if codec.NewDecoder == nil {
		return nil, errors.New("conn: Codec.NewDecoder is nil")
	}
	network := opts.Network
	if network == "" {
		network = "tcp"
	}
	if opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}
	var raw net.Conn
	var err error
	if opts.Dialer != nil {
		raw, err = opts.Dialer(ctx, network, opts.Addr)
	} else {
		d := net.Dialer{KeepAlive: opts.KeepAlive}
		raw, err = d.DialContext(ctx, network, opts.Addr)
	}
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Addr != nil && oe.Addr.String() == opts.Addr {
			// It says "dial tcp ADDR: ..." already: saying it twice
			// makes every seed's error twice as long.
			return nil, fmt.Errorf("conn: %w", err)
		}
		return nil, fmt.Errorf("conn: dial %s %s: %w", network, opts.Addr, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("conn: dial %s %s: Dialer returned no connection", network, opts.Addr)
	}
	if err := ctx.Err(); err != nil { // a Dialer that ignored ctx
		raw.Close()
		return nil, fmt.Errorf("conn: dial %s %s: %w", network, opts.Addr, err)
	}
	nc := raw
	if opts.TLS != nil {
		cfg := opts.TLS
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(opts.Addr)
			if err != nil {
				host = opts.Addr
			}
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("conn: tls handshake with %s: %w", opts.Addr, err)
		}
		nc = tc
	}
	return start(nc, raw, opts, codec), nil
}

func start[R any](nc, raw net.Conn, opts Options, codec Codec[R]) *Conn[R] {
	c := &Conn[R]{
		nc:           nc,
		raw:          raw,
		addr:         opts.Addr,
		codec:        codec,
		readTimeout:  opts.ReadTimeout,
		writeTimeout: opts.WriteTimeout,
		done:         make(chan struct{}),
		alwaysRead:   codec.OnPush != nil,
		msg:          new(R),
		peeker:       newPeeker(raw),
	}
	if a := raw.RemoteAddr(); a != nil && a.String() != "" {
		c.addr = a.String()
	}
	c.pool.New = func() any { return &request[R]{done: make(chan uint32, 1)} }
	c.expiry = time.AfterFunc(time.Hour, c.expire)
	c.expiry.Stop()
	c.dec = codec.NewDecoder(&socketReader[R]{c: c})
	if b, ok := c.dec.(interface{ Buffered() int }); ok {
		c.buffered = b.Buffered
	}
	if s, ok := c.dec.(skipDecoder[R]); ok {
		c.skipDec = s
		c.skipHead = c.headGone
	}
	if c.alwaysRead {
		c.reading = true
		c.readers.Add(1)
		go c.readLoop()
	}
	return c
}

// RemoteAddr returns the address of the peer.
func (c *Conn[R]) RemoteAddr() string { return c.addr }

// Done returns a channel that is closed when the Conn is closed.
func (c *Conn[R]) Done() <-chan struct{} { return c.done }

// Usable reports whether the Conn takes new requests: it is open, and not
// draining after [Conn.Shutdown] or after a request timed out on it (see
// [Conn.DoTimeout]). A pool checks it before lending the Conn out; a Conn
// that is not usable closes itself once its pending replies are in.
func (c *Conn[R]) Usable() bool { return !c.unusable.Load() }

// Err returns nil while the Conn is open and its *CloseError after.
func (c *Conn[R]) Err() error {
	if ce := c.closed.Load(); ce != nil {
		return ce
	}
	return nil
}

// Pending returns the number of requests written or queued and not yet
// answered, abandoned ones included.
func (c *Conn[R]) Pending() int { return int(c.npending.Load()) }

// Do sends frame, the encoded bytes of n requests, and waits for their n
// replies, returned in order. Do copies frame before it returns or blocks, so
// the caller may reuse it at once. Many goroutines may call Do at once; their
// frames are never interleaved.
//
// If ctx ends first, Do returns at once with an error wrapping ctx.Err() (if
// the replies complete at that very moment, Do may return them instead). When
// the frame was still waiting to be written it is withdrawn and the error
// also wraps [ErrNotSent]; otherwise its replies are read and discarded when
// they come. When the Conn closes first, the error is (or wraps) its
// [*CloseError], and wraps [ErrNotSent] if the frame had not been written.
//
// Reply errors of the protocol (e.g. a Redis error reply) are replies, not
// errors of Do.
func (c *Conn[R]) Do(ctx context.Context, frame []byte, n int) ([]R, error) {
	return c.DoTimeout(ctx, frame, n, 0)
}

// DoTimeout is Do with a timeout of the request's own: when its replies
// have not all come timeout after Do was called, Do returns an error
// wrapping context.DeadlineExceeded (and the replies are dropped when they
// come), as if ctx had that deadline. It costs no allocation and no timer
// per request, which a context.WithTimeout would: one timer per Conn
// serves every pending request. 0 means no timeout.
//
// A request that times out takes the Conn out of service: replies come in
// order, so one that does not come (a hung server, a command that blocks)
// holds up every request behind it. The Conn then takes no new request
// (they fail with [ErrNotSent], to be retried on another connection;
// [Conn.Usable] reports false) and closes with [ReasonTimeout] once the
// pending replies are in, or timeout after the expiry if they do not come.
// A caller that reads its own reply (see the package documentation)
// closes the Conn at once: nobody else would read the late reply.
func (c *Conn[R]) DoTimeout(ctx context.Context, frame []byte, n int, timeout time.Duration) ([]R, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: Do needs n >= 1 replies, got %d", ErrNotSent, n)
	}
	return c.do(ctx, frame, nil, n, nil, timeout)
}

// DoInto is DoTimeout that stores the len(dst) replies in dst instead of a
// new slice, so that a caller with a buffer of its own (a one-element
// array for a single request) allocates nothing for them.
func (c *Conn[R]) DoInto(ctx context.Context, frame []byte, dst []R, timeout time.Duration) error {
	if len(dst) < 1 {
		return fmt.Errorf("%w: DoInto needs room for >= 1 replies", ErrNotSent)
	}
	_, err := c.do(ctx, frame, nil, len(dst), dst, timeout)
	return err
}

// DoV is DoInto for a frame in pieces, written in order with one vectored
// write (writev) and never copied: a large argument goes from the caller's
// memory to the socket. The caller writes the frame itself, after waiting
// for the writer of the moment (frames queued before it go in the same
// write), so that Conn holds no reference to the pieces once DoV returns,
// whatever happens: the caller may reuse them at once. If ctx ends during
// the write, the write is cut and the Conn closes (part of a frame went
// out). Until DoV returns the pieces must not change.
func (c *Conn[R]) DoV(ctx context.Context, pieces [][]byte, dst []R, timeout time.Duration) error {
	if len(dst) < 1 {
		return fmt.Errorf("%w: DoV needs room for >= 1 replies", ErrNotSent)
	}
	if len(pieces) == 1 {
		_, err := c.do(ctx, pieces[0], nil, len(dst), dst, timeout)
		return err
	}
	_, err := c.do(ctx, nil, pieces, len(dst), dst, timeout)
	return err
}

func (c *Conn[R]) do(ctx context.Context, frame []byte, pieces [][]byte, n int, dst []R, timeout time.Duration) ([]R, error) {
	req, lone, deadline, err := c.send(ctx, frame, pieces, n, timeout, readOwn)
	if err != nil {
		return nil, err
	}
	if lone {
		return c.readOwn(req, dst, timeout, deadline)
	}
	return c.wait(ctx, req, dst, timeout)
}

// Call is a request sent by [Conn.Send] whose replies have not been
// waited for yet.
type Call[R any] struct {
	c        *Conn[R]
	req      *request[R]
	dst      []R
	timeout  time.Duration
	lone     bool  // Send took the read token: Wait may read the replies itself
	deadline int64 // of a lone Call (unix nanoseconds; 0: none)
}

// Send is the first half of [Conn.DoInto]: it queues frame, the encoded
// bytes of len(dst) requests, writes it when nobody else is writing (as
// Do does), and returns without waiting for the replies; [Call.Wait]
// waits for them and stores them in dst. A caller with requests for
// several Conns so sends them all before it waits for any, from one
// goroutine. Send copies frame before it returns; dst is written by Wait
// only, on the caller's goroutine.
//
// As with Do, a caller whose ctx cannot be cancelled and that finds the
// Conn idle reads its own replies, in Wait, on its own goroutine (when
// Wait's ctx cannot be cancelled either): waiting on several Conns one
// after the other then costs no goroutine hand-off. Until then nobody
// reads the Conn, so a request that anyone queues on it meanwhile (the
// same caller included) starts a reader goroutine instead of waiting for
// that Wait; otherwise a reader goroutine reads.
//
// Every Call that Send returns without an error must be waited for
// exactly once: a Call never waited for is not cut from the stream, and
// its replies are read and kept until the Call is garbage (or, if nothing
// else is queued on the Conn, never read). timeout is DoTimeout's, counted
// from Send. When Send fails, nothing was queued, and the error wraps
// [ErrNotSent].
func (c *Conn[R]) Send(ctx context.Context, frame []byte, dst []R, timeout time.Duration) (Call[R], error) {
	if len(dst) < 1 {
		return Call[R]{}, fmt.Errorf("%w: Send needs room for >= 1 replies", ErrNotSent)
	}
	req, lone, deadline, err := c.send(ctx, frame, nil, len(dst), timeout, readParked)
	if err != nil {
		return Call[R]{}, err
	}
	return Call[R]{c: c, req: req, dst: dst, timeout: timeout, lone: lone, deadline: deadline}, nil
}

// Wait waits for the replies of a Call made by [Conn.Send] and stores
// them in the Call's dst, with Do's outcomes: if ctx ends first, Wait
// returns at once with an error wrapping ctx.Err(), the frame withdrawn
// (the error also wraps [ErrNotSent]) if it had not been written yet, its
// replies discarded when they come otherwise; a Conn that closes first
// fails it with its [*CloseError]. A Call is waited for once: a second
// Wait returns an error.
func (cl *Call[R]) Wait(ctx context.Context) error {
	req, c := cl.req, cl.c
	if req == nil {
		return errors.New("conn: Wait on a Call that was not sent or was waited for already")
	}
	cl.req = nil
	if cl.lone {
		c.mu.Lock()
		own := c.parked == req // nobody queued behind it: the token is still ours
		if own {
			c.parked = nil
			if ctx.Done() != nil {
				c.unparkLocked(req, cl.deadline) // read by a reader goroutine; ctx is watched below
				own = false
			}
		}
		c.mu.Unlock()
		if own {
			dl := cl.deadline
			if late := time.Now().Add(lateGrace).UnixNano(); dl != 0 && dl < late {
				// Nobody read while the caller was busy elsewhere (a
				// slow write to another Conn): replies that came in time
				// are in the socket, and get read.
				dl = late
			}
			_, err := c.readOwn(req, cl.dst, cl.timeout, dl)
			return err
		}
	}
	_, err := c.wait(ctx, req, cl.dst, cl.timeout)
	return err
}

// lateGrace is how long a Wait that reads its own replies after the
// Call's timeout has passed still waits for them (see Wait).
const lateGrace = time.Millisecond

// unparkLocked hands the read token, held for req (a Send's request not
// waited for yet), to a reader goroutine, with req's deadline armed as a
// request read by it has. Called with mu held; c.parked cleared.
func (c *Conn[R]) unparkLocked(req *request[R], deadline int64) {
	if c.cerr != nil {
		c.reading = false // req was failed by the close
		return
	}
	if deadline != 0 {
		req.deadline = deadline
		if c.expiryAt == 0 || deadline < c.expiryAt {
			c.expiryAt = deadline
			c.expiry.Reset(time.Until(time.Unix(0, deadline)))
		}
	}
	c.readers.Add(1)
	go c.readLoop()
}

// When the caller of send, finding the Conn idle with a ctx that cannot be
// cancelled, reads its replies.
const (
	readOwn    = false // at once (do)
	readParked = true  // later, in Wait (Send; see Conn.parked)
)

// send queues a request for n replies and writes it if nobody is writing.
// A caller whose ctx cannot be cancelled and that finds the Conn idle is
// told to read its reply itself (lone; deadline is then the one its read
// must honour); otherwise a reader goroutine reads.
func (c *Conn[R]) send(ctx context.Context, frame []byte, pieces [][]byte, n int, timeout time.Duration, park bool) (req *request[R], lone bool, deadline int64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, 0, notSent(err)
	}
	if pieces != nil {
		if err := c.claimWriter(ctx); err != nil {
			return nil, false, 0, notSent(err)
		}
	}
	reserved := false // the read token, taken by checkIdle
	if c.npending.Load() == 0 && !c.alwaysRead {
		reserved = c.checkIdle()
	}
	req = c.pool.Get().(*request[R])
	req.n, req.got = n, 0
	if cap(req.replies) >= n {
		req.replies = req.replies[:n]
	} else {
		req.replies = make([]R, n)
	}
	req.state.Store(stateWaiting)
	req.deadline = 0

	c.mu.Lock()
	if c.cerr != nil || c.draining {
		if reserved {
			c.reading = false
		}
		if pieces != nil {
			c.writerDoneLocked()
		}
		ce := c.cerr
		if ce == nil {
			ce = c.drain
		}
		c.mu.Unlock()
		c.recycle(req)
		return nil, false, 0, notSent(ce)
	}
	c.seq++
	req.seq = c.seq
	var queued []byte // with pieces: the frames queued before them
	var prev uint64
	if pieces != nil {
		// The frames queued so far, then this one, are this caller's to
		// write (it holds the writer's role).
		queued, c.wbuf = c.wbuf, c.spare[:0]
		req.off = len(queued)
		req.end = req.off
		for _, p := range pieces {
			req.end += len(p)
		}
		prev, c.taken = c.taken, c.seq
	} else {
		req.off = len(c.wbuf)
		c.wbuf = append(c.wbuf, frame...)
		req.end = len(c.wbuf)
	}
	if c.qh > 0 && len(c.q) == cap(c.q) { // compact before growing
		k := copy(c.q, c.q[c.qh:])
		clear(c.q[k:])
		c.q, c.qh = c.q[:k], 0
	}
	c.q = append(c.q, req)
	c.npending.Add(1)
	// Nobody reads an idle Conn: its first caller takes the read token. A
	// caller that cannot be cancelled reads its own reply (no goroutine
	// hand-off: the one that matters to a lone caller); otherwise a reader
	// goroutine reads, so that the caller can wait for ctx as well.
	if reserved || !c.reading {
		c.reading = true
		if ctx.Done() == nil {
			lone = true
		} else {
			c.readers.Add(1)
			go c.readLoop()
		}
	} else if p := c.parked; p != nil {
		// The token's holder will not read before it waits: a reader
		// goroutine reads now, for both.
		c.parked = nil
		c.unparkLocked(p, c.parkedDL)
	}
	if timeout > 0 {
		deadline = time.Now().Add(timeout).UnixNano()
		req.timeout = timeout
		if !lone { // a lone reader bounds its read instead
			req.deadline = deadline
			if c.expiryAt == 0 || deadline < c.expiryAt {
				c.expiryAt = deadline
				c.expiry.Reset(timeout)
			}
		}
	}
	if lone && park {
		c.parked, c.parkedDL = req, deadline
	}
	write := !c.writing
	c.writing = true
	c.mu.Unlock()

	if pieces != nil {
		c.writeV(ctx, queued, pieces, prev)
		c.flush() // what was queued meanwhile; gives the writer's role back
	} else if write {
		c.flush()
	}
	return req, lone, deadline, nil
}

// wait waits for req, read by someone else, to complete or for ctx to
// end.
func (c *Conn[R]) wait(ctx context.Context, req *request[R], dst []R, timeout time.Duration) ([]R, error) {
	ctxDone := ctx.Done()
	if ctxDone == nil {
		return c.finish(req, <-req.done, dst, timeout)
	}
	select {
	case st := <-req.done:
		return c.finish(req, st, dst, timeout)
	case <-ctxDone:
		return c.cancel(ctx, req, dst, timeout)
	}
}

// readOwn is do for the holder of the read token: it reads the socket
// until req is complete, then passes the token on to a reader goroutine if
// requests were queued meanwhile, or gives it back. When deadline passes
// first, the Conn closes (ReasonTimeout): nobody else would read the late
// reply, and a caller that can be cancelled does not come here.
func (c *Conn[R]) readOwn(req *request[R], dst []R, timeout time.Duration, deadline int64) ([]R, error) {
	if deadline != 0 {
		c.dlMu.Lock()
		c.syncDL = deadline
		c.dlMu.Unlock()
	}
	for req.state.Load() == stateWaiting && !c.readOne(false) {
	}
	if deadline != 0 {
		c.dlMu.Lock()
		c.syncDL = 0
		c.dlMu.Unlock()
	}
	timedOut := c.syncTimeout
	c.syncTimeout = false
	c.mu.Lock()
	if c.cerr != nil {
		c.reading = false
	} else if c.qh < len(c.q) || !c.giveBackLocked() {
		c.readers.Add(1)
		go c.readLoop()
	}
	c.mu.Unlock()
	replies, err := c.finish(req, <-req.done, dst, timeout)
	if err != nil && timedOut {
		return nil, fmt.Errorf("conn %s: no reply within %v: %w", c.addr, timeout, context.DeadlineExceeded)
	}
	return replies, err
}

// finish returns a completed request's result (in dst when given, else
// in the request's own slice, which then leaves with the caller) and
// recycles the request; an expired request belongs to the Conn already and
// is not touched.
func (c *Conn[R]) finish(req *request[R], st uint32, dst []R, timeout time.Duration) ([]R, error) {
	if st == stateExpired {
		// req may be recycled by now: use nothing of it.
		return nil, fmt.Errorf("conn %s: no reply within %v: %w", c.addr, timeout, context.DeadlineExceeded)
	}
	replies, err := req.replies, req.err
	if dst != nil {
		copy(dst, replies)
		replies = dst
	} else {
		req.replies = nil // the caller's now
	}
	c.recycle(req)
	if err != nil {
		return nil, err
	}
	return replies, nil
}

func (c *Conn[R]) recycle(req *request[R]) {
	clear(req.replies) // keep the storage, drop what it referenced
	req.err = nil
	c.pool.Put(req)
}

// cancel handles a caller whose ctx ended while req was pending.
func (c *Conn[R]) cancel(ctx context.Context, req *request[R], dst []R, timeout time.Duration) ([]R, error) {
	cause := ctx.Err()
	c.mu.Lock()
	// Under mu, expiry cannot change req's state: a waiting request not
	// written yet can be withdrawn.
	withdrawn := req.state.Load() == stateWaiting && c.withdraw(req)
	c.mu.Unlock()
	if withdrawn {
		c.recycle(req)
		return nil, notSent(cause)
	}
	if req.state.CompareAndSwap(stateWaiting, stateAbandoned) {
		// The Conn owns req from now on; its replies will be skipped.
		c.ngone.Add(1)
		return nil, fmt.Errorf("conn: reply abandoned: %w", cause)
	}
	// Completed (or expired) while we were giving up: take that outcome.
	return c.finish(req, <-req.done, dst, timeout)
}

// expire runs when the expiry timer fires: it tells the callers of the
// requests whose timeout passed, leaves those requests in the FIFO to
// absorb their replies, retires the Conn, and re-arms the timer for the
// next deadline.
func (c *Conn[R]) expire() {
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cerr != nil {
		return
	}
	var next int64
	for _, req := range c.q[c.qh:] {
		if req.deadline == 0 || req.state.Load() != stateWaiting {
			continue
		}
		if req.deadline <= now {
			if req.state.CompareAndSwap(stateWaiting, stateExpired) {
				c.ngone.Add(1)
				c.retireLocked(req.timeout)
				req.done <- stateExpired
			}
		} else if next == 0 || req.deadline < next {
			next = req.deadline
		}
	}
	c.expiryAt = next
	if next != 0 {
		c.expiry.Reset(time.Duration(next - now))
	}
}

// retireLocked takes the Conn out of service after a request got no reply
// within timeout: the Conn takes no new request and closes once the pending
// replies are in, or timeout later. Called with mu held, Conn open.
func (c *Conn[R]) retireLocked(timeout time.Duration) {
	if c.draining && c.grace != nil {
		return // retired already, or shutting down with a bound
	}
	if !c.draining {
		c.draining = true
		c.unusable.Store(true)
		c.drain = &CloseError{Addr: c.addr, Reason: ReasonTimeout,
			Err: fmt.Errorf("retired: a request got no reply within %v", timeout)}
	}
	c.grace = time.AfterFunc(timeout, func() {
		c.CloseWithReason(ReasonTimeout, fmt.Errorf("retired after a request got no reply within %v; replies still pending %v later", timeout, timeout))
	})
}

// withdraw removes req from the FIFO and its frame from the write buffer if
// the writer has not taken it yet. Called with mu held.
func (c *Conn[R]) withdraw(req *request[R]) bool {
	if c.cerr != nil || req.seq <= c.taken {
		return false
	}
	// Requests not taken yet are the tail of the FIFO, their frames laid
	// out in order in wbuf.
	for i := len(c.q) - 1; i >= c.qh && c.q[i].seq > c.taken; i-- {
		if c.q[i] != req {
			continue
		}
		size := req.end - req.off
		copy(c.wbuf[req.off:], c.wbuf[req.end:])
		c.wbuf = c.wbuf[:len(c.wbuf)-size]
		for _, r := range c.q[i+1:] {
			r.off -= size
			r.end -= size
		}
		copy(c.q[i:], c.q[i+1:])
		c.q[len(c.q)-1] = nil
		c.q = c.q[:len(c.q)-1]
		if c.qh == len(c.q) {
			c.q, c.qh = c.q[:0], 0
		}
		c.npending.Add(-1)
		return true
	}
	return false
}

// complete ends req with err (nil: its replies are in) and hands it to its
// caller, or recycles it if the caller gave up. It is the last touch of req
// by whoever completes it.
func (c *Conn[R]) complete(req *request[R], err error) {
	req.err = err
	if req.state.CompareAndSwap(stateWaiting, stateDone) {
		req.done <- stateDone
		return
	}
	c.ngone.Add(-1)
	c.recycle(req) // abandoned or expired
}

// Shutdown closes the Conn gracefully without waiting: new requests fail
// with ErrNotSent at once, requests already pending get their replies, and
// the Conn closes (ReasonShutdown) when the last of them is answered, or
// (ReasonTimeout) when grace has passed without that (0: no bound but
// ReadTimeout). An owner that shares the Conn among
// callers (a pool closing an idle or expired connection) uses it so that
// no caller's request is cut and nobody waits.
func (c *Conn[R]) Shutdown(grace time.Duration) {
	c.mu.Lock()
	if c.draining || c.cerr != nil {
		c.mu.Unlock()
		return
	}
	c.draining = true
	c.unusable.Store(true)
	c.drain = &CloseError{Addr: c.addr, Reason: ReasonShutdown, Err: errors.New("shutting down")}
	idle := c.qh == len(c.q)
	if !idle && grace > 0 {
		c.grace = time.AfterFunc(grace, func() {
			c.CloseWithReason(ReasonTimeout, fmt.Errorf("shutdown: replies still pending after %v", grace))
		})
	}
	c.mu.Unlock()
	if idle {
		c.CloseWithReason(ReasonShutdown, nil)
	}
}

// Close closes the Conn with [ReasonShutdown] and waits until its goroutines
// have exited. It is idempotent and safe to call concurrently with anything
// else, but not from Codec.OnPush (which runs on the reader goroutine; use
// CloseWithReason there). It returns nil.
func (c *Conn[R]) Close() error {
	c.CloseWithReason(ReasonShutdown, nil)
	c.readers.Wait()
	return nil
}

// CloseWithReason closes the Conn unless it is closed already, failing every
// pending request with a [*CloseError] carrying r and err. It does not wait
// for the goroutines to exit (they exit promptly); [Conn.Close] does.
func (c *Conn[R]) CloseWithReason(r Reason, err error) {
	ce := &CloseError{Addr: c.addr, Reason: r, Err: err}
	c.mu.Lock()
	if c.cerr != nil {
		c.mu.Unlock()
		return
	}
	c.cerr = ce
	c.unusable.Store(true)
	c.expiry.Stop()
	if c.grace != nil {
		c.grace.Stop()
	}
	pending, taken := c.q[c.qh:], c.taken
	c.q, c.qh, c.wbuf = nil, 0, nil
	c.npending.Store(0)
	c.mu.Unlock()

	c.closed.Store(ce)
	close(c.done)
	switch {
	case len(pending) == 0 && (r == ReasonShutdown || r == ReasonIdle || r == ReasonAuthFailure):
		// A quiet, healthy stream: let TLS send its close_notify, which
		// cannot block on a peer that is not reading.
		c.nc.Close()
	default:
		c.raw.Close()
	}
	var notSentErr error
	for i, req := range pending {
		pending[i] = nil
		var e error = ce
		if req.seq > taken {
			if notSentErr == nil {
				notSentErr = notSent(ce)
			}
			e = notSentErr
		}
		c.complete(req, e)
	}
}

// flush writes everything queued, in as few writes as there are bursts.
// There is no writer goroutine: the caller that finds nobody writing
// becomes the writer, and writes its own frame together with every frame
// queued meanwhile, until the buffer is empty. A lone caller so pays no
// goroutine hand-off before its request is on the wire, and under load
// each write carries every request that arrived during the previous one.
func (c *Conn[R]) flush() {
	// Under load (other requests in flight), yield once before taking the
	// buffer: callers that are about to enqueue get to, and their frames
	// share this write instead of costing a syscall each. A lone caller
	// writes at once.
	if c.npending.Load() > 1 {
		runtime.Gosched()
	}
	for {
		c.mu.Lock()
		if c.cerr != nil || len(c.wbuf) == 0 { // closed, or everything withdrawn
			c.writerDoneLocked()
			c.mu.Unlock()
			return
		}
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		prev := c.taken
		c.taken = c.seq
		c.mu.Unlock()

		if c.writeTimeout > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		}
		if n, err := c.nc.Write(buf); err != nil {
			c.writeFailed(nil, prev, n, len(buf), err)
			return
		}
		c.armReadAfterWrite()
		if cap(buf) > maxSpareBuffer {
			buf = nil
		}
		c.spare = buf[:0]
	}
}

// claimWriter waits until nobody writes, then takes the writer's role (for
// DoV, whose caller writes its own frame). Waiting ends with ctx.
func (c *Conn[R]) claimWriter(ctx context.Context) error {
	c.mu.Lock()
	for c.writing {
		if c.wfree == nil {
			c.wfree = make(chan struct{})
		}
		ch := c.wfree
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	c.writing = true
	c.mu.Unlock()
	return nil
}

// writerDoneLocked gives the writer's role back, waking DoV callers that
// wait for it. Called with mu held.
func (c *Conn[R]) writerDoneLocked() {
	c.writing = false
	if c.wfree != nil {
		close(c.wfree)
		c.wfree = nil
	}
}

// writeV writes the frames queued before a DoV's frame, then its pieces,
// in one vectored write, bounded by WriteTimeout and by ctx: when ctx ends
// first the write is cut (its deadline moved to the past), and the Conn
// closes, as after any failed write. It returns only once the write is
// over, so that nothing of the pieces is read after DoV returns.
func (c *Conn[R]) writeV(ctx context.Context, queued []byte, pieces [][]byte, prev uint64) {
	bufs := make(net.Buffers, 0, len(pieces)+1)
	if len(queued) > 0 {
		bufs = append(bufs, queued)
	}
	bufs = append(bufs, pieces...)
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	var cut chan struct{}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		cut = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			c.nc.SetWriteDeadline(time.Unix(1, 0))
			close(cut)
		})
	}
	n, err := bufs.WriteTo(c.nc)
	if !stop() {
		<-cut
		if err == nil {
			c.nc.SetWriteDeadline(time.Time{}) // the write finished first
		}
	}
	if err != nil {
		c.writeFailed(ctx, prev, int(n), total, err)
		return
	}
	c.armReadAfterWrite()
	if cap(queued) <= maxSpareBuffer {
		c.spare = queued[:0]
	}
}

// writeFailed closes the Conn after a write of total bytes failed with err
// after n of them, the requests after prev among them; those of which no
// byte left are not sent. ctx is a DoV caller's, whose end may have cut
// the write (nil for flush).
func (c *Conn[R]) writeFailed(ctx context.Context, prev uint64, n, total int, err error) {
	if c.nc == c.raw {
		c.untake(prev, n)
	}
	reason, op := ReasonBroken, "write"
	switch {
	case ctx != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
		reason, op = ReasonTimeout, fmt.Sprintf("write of %d bytes cut after %d by its context", total, n)
		err = fmt.Errorf("%w (%w)", ctx.Err(), err) // the caller's error says why
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason, op = ReasonTimeout, fmt.Sprintf("write of %d bytes not done within WriteTimeout %v", total, c.writeTimeout)
	}
	c.CloseWithReason(reason, &ioError{op: op, err: err})
}

// untake gives back to the not-sent side the requests of a failed write
// of which no byte left: the write took the requests after prev and wrote
// n bytes of their frames (laid out in order from offset 0). A request
// whose frame starts at or after n never reached the socket, so it fails
// with ErrNotSent, safe to retry anywhere. Only for a plain socket, where n
// counts what the kernel accepted (TLS records hide it).
func (c *Conn[R]) untake(prev uint64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cerr != nil {
		return
	}
	for _, req := range c.q[c.qh:] {
		if req.seq > prev && req.seq <= c.taken && req.off >= n {
			c.taken = req.seq - 1
			return
		}
	}
}

// readLoop is the reader goroutine: it decodes replies and completes the
// pending requests in FIFO order until nothing is pending (or, with
// alwaysRead, until the Conn closes).
func (c *Conn[R]) readLoop() {
	defer c.readers.Done()
	for !c.readOne(!c.alwaysRead) {
	}
}

// readOne decodes the next message and completes the request it answers.
// It reports whether the holder of the read token must stop reading: the
// Conn is closed, or, when release is set, nothing is pending any more and
// the token has been given back. A reply for a request given up by its
// caller is skipped, not decoded, when the decoder can.
//
// Its frame is on the stack of every blocking read, so it only decodes:
// everything else is in deliver. A larger frame here made reader
// goroutines outgrow their initial stack (a copystack per goroutine).
func (c *Conn[R]) readOne(release bool) (stop bool) {
	var skipped bool
	var err error
	if c.skipDec != nil {
		skipped, err = c.skipDec.DecodeOrSkip(c.msg, c.skipHead)
	} else {
		err = c.dec.Decode(c.msg)
	}
	if err != nil {
		c.readFailed(err)
		return true
	}
	return c.deliver(skipped, release)
}

// deliver routes the message just decoded into c.msg (nothing if skipped):
// a push to OnPush, a reply to the request at the head of the FIFO. It
// reports what readOne does.
func (c *Conn[R]) deliver(skipped, release bool) (stop bool) {
	msg := c.msg
	var zero R
	if !skipped && c.codec.IsPush != nil && c.codec.IsPush(msg) {
		if c.codec.OnPush != nil {
			c.codec.OnPush(*msg)
		}
		*msg = zero
		if release && c.npending.Load() == 0 {
			return c.release()
		}
		return false
	}
	c.mu.Lock()
	if c.cerr != nil {
		c.mu.Unlock()
		return true
	}
	if c.qh == len(c.q) || c.q[c.qh].seq > c.taken {
		c.mu.Unlock()
		c.CloseWithReason(ReasonOutOfSync, errors.New("unsolicited reply: no request is waiting for one"))
		return true
	}
	req := c.q[c.qh]
	if !skipped {
		req.replies[req.got] = *msg // ownership moves to the request
	}
	*msg = zero
	req.got++
	if req.got == req.n {
		c.q[c.qh] = nil
		c.qh++
		if c.qh == len(c.q) {
			c.q, c.qh = c.q[:0], 0
		}
		c.npending.Add(-1)
	} else {
		req = nil
	}
	idle := c.qh == len(c.q)
	drained := c.draining && idle
	stop = release && idle && !drained && c.giveBackLocked()
	reason, cause := ReasonShutdown, error(nil)
	if drained && c.drain.Reason != ReasonShutdown {
		reason, cause = c.drain.Reason, fmt.Errorf("%w; closed once the pending replies were in", c.drain.Err)
	}
	c.mu.Unlock()
	if req != nil {
		c.complete(req, nil)
	}
	if drained {
		c.CloseWithReason(reason, cause)
		return true
	}
	return stop
}

// headGone reports whether the next reply answers a request given up by
// its caller (abandoned or expired), which can then be skipped. Only the
// reader removes the head, so the answer holds until the reply is read.
func (c *Conn[R]) headGone() bool {
	if c.ngone.Load() <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qh == len(c.q) || c.q[c.qh].seq > c.taken {
		return false // nothing to answer: decode, and find it unsolicited
	}
	st := c.q[c.qh].state.Load()
	return st == stateAbandoned || st == stateExpired
}

// release gives the read token back if nothing is pending, reporting
// whether it did.
func (c *Conn[R]) release() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qh == len(c.q) && c.giveBackLocked()
}

// giveBackLocked gives the read token back unless the decoder holds bytes
// already read: they answer no request (a push, or a stray reply that
// must close the Conn before it is taken for the next request's), so the
// holder goes on reading. Called with mu held and nothing pending.
func (c *Conn[R]) giveBackLocked() bool {
	if c.buffered != nil && c.buffered() > 0 {
		return false
	}
	c.reading = false
	c.idleSince.Store(time.Now().UnixNano())
	return true
}

// checkIdle runs before a request on a Conn that nobody reads. When the
// Conn has been idle for peekAfterIdle, it takes the read token (reporting
// whether it did) and looks at the socket without reading: a
// connection the server dropped while idle then fails the request as not
// sent, which is safe to retry, instead of after it was written; and bytes
// that answer no request (a push, a stray reply) are decoded before the
// request is queued, so that they cannot be taken for its reply. The look
// costs a syscall, a tenth of a loopback round trip: a Conn in steady use
// skips it (bytes read ahead with the last reply are caught anyway, see
// giveBackLocked).
func (c *Conn[R]) checkIdle() bool {
	if time.Now().UnixNano()-c.idleSince.Load() < int64(peekAfterIdle) {
		return false // do takes the token itself
	}
	c.mu.Lock()
	take := !c.reading && c.cerr == nil
	c.reading = c.reading || take
	c.mu.Unlock()
	if !take {
		return false
	}
	switch c.peeker.peek() {
	case peekClosed:
		c.CloseWithReason(ReasonBroken, &ioError{op: "read", err: fmt.Errorf("closed by the peer while idle: %w", io.EOF)})
	case peekData:
		if c.nc != c.raw {
			// Under TLS the bytes may be a record that carries no
			// application data (a TLS 1.3 session ticket): decoding would
			// wait for a reply that is not coming. The next read sees
			// whatever it is.
			break
		}
		// A push is delivered; anything else closes the Conn out of
		// sync. A partial message gets idleDrainTimeout to complete.
		c.dlMu.Lock()
		c.syncDL = time.Now().Add(idleDrainTimeout).UnixNano()
		c.dlMu.Unlock()
		for !c.readOne(false) && c.buffered != nil && c.buffered() > 0 {
		}
		c.dlMu.Lock()
		c.syncDL = 0
		c.dlMu.Unlock()
		c.syncTimeout = false
	}
	return true
}

// peekAfterIdle is how long a Conn must have been idle before checkIdle
// looks at its socket.
const peekAfterIdle = time.Millisecond

// idleDrainTimeout bounds checkIdle's wait for the rest of a message that
// arrived on an idle Conn.
const idleDrainTimeout = time.Second

// readFailed closes the Conn after a Decode error, with a reason telling I/O
// failures from protocol errors.
func (c *Conn[R]) readFailed(err error) {
	var ne net.Error
	switch {
	case c.syncTimeout:
		c.CloseWithReason(ReasonTimeout, &ioError{op: "read: deadline passed with nobody else to read the reply", err: err})
	case c.timedOut:
		c.CloseWithReason(ReasonTimeout, &ioError{
			op:  fmt.Sprintf("read: no reply for %v", c.readTimeout),
			err: err,
		})
	case c.rerr != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne):
		c.CloseWithReason(ReasonBroken, &ioError{op: "read", err: err})
	default:
		c.CloseWithReason(ReasonOutOfSync, fmt.Errorf("decode: %w", err))
	}
}

// socketReader is the io.Reader handed to the decoder. It manages the read
// deadline and remembers socket errors so that readFailed can classify them.
type socketReader[R any] struct{ c *Conn[R] }

func (s *socketReader[R]) Read(p []byte) (int, error) {
	c := s.c
	for {
		c.armRead()
		n, err := c.nc.Read(p)
		if err == nil || n > 0 {
			if err != nil {
				c.rerr = err
			}
			return n, err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.dlMu.Lock()
			syncDL := c.syncDL
			c.dlMu.Unlock()
			switch {
			case syncDL != 0 && time.Now().UnixNano() >= syncDL:
				c.syncTimeout = true
			case c.readTimeout > 0 && c.npending.Load() == 0:
				// Armed for requests that have since been withdrawn;
				// an idle Conn does not time out.
				continue
			case c.readTimeout > 0:
				c.timedOut = true
			}
		}
		c.rerr = err
		return n, err
	}
}

// armRead sets the read deadline before each socket read: the earlier of
// ReadTimeout from now (while requests are pending) and the lone reader's
// request deadline; none when neither applies.
func (c *Conn[R]) armRead() {
	c.dlMu.Lock()
	var dl int64
	if c.readTimeout > 0 && c.npending.Load() > 0 {
		dl = time.Now().Add(c.readTimeout).UnixNano()
	}
	if c.syncDL != 0 && (dl == 0 || c.syncDL < dl) {
		dl = c.syncDL
	}
	if dl != 0 {
		c.nc.SetReadDeadline(time.Unix(0, dl))
		c.dlArmed = true
	} else if c.dlArmed {
		c.nc.SetReadDeadline(time.Time{})
		c.dlArmed = false
	}
	c.dlMu.Unlock()
}

// armReadAfterWrite (re)starts the read timeout after a write, in case the
// reader is blocked in a read that it began while nothing was pending.
// Both arming functions run under dlMu, so a reader that found nothing
// pending cannot clear a deadline set for a request written after that.
func (c *Conn[R]) armReadAfterWrite() {
	if c.readTimeout > 0 {
		c.armRead()
	}
}
