package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/conn"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/internal/errlist"
	"github.com/tendril-db/tendril/proto/resp"
)

// redisConn is one connection to one node. It is multiplexed: many
// goroutines may run statements on it at once.
type redisConn struct {
	c         *conn.Conn[resp.Value]
	addr      string
	connector *connector

	// what the last probe learned, for Peers and PartitionMap (nil: not a
	// cluster)
	topo *clusterState
	// sess is what session-changing statements changed, to be reset.
	sess session
	// gen is the generation of the credentials the connection logged in
	// with (see connector.creds).
	gen atomic.Uint64
	// cache is the node's client-side cache, when the connection tracks
	// keys for it (cache_size; see cache.go); uncached is set once the
	// connection no longer counts as one of the cache's (releaseCache).
	cache    *cache
	uncached atomic.Bool

	// load measures how many of the connection's recent statements were
	// large (see weigh and Crowded).
	load atomic.Int32
}

// A statement counts as large for Crowded when its request has largeRequest
// bytes or more, or its reply largeReply. Measured on Redis 7.0 (8 callers,
// one connection per node against one per statement): SETs of 16 and 32 KiB
// ran 15% faster on connections of their own (the server's CPU per 16 KiB
// SET: 25 µs against 29 µs pipelined), GETs of 16 KiB 8% slower; GETs of 64
// KiB ran the same either way, of 256 KiB 8–14% faster alone (Redis builds
// the replies queued on a connection before it writes them, 64 KiB a turn
// of its event loop, and copies them into the socket once they have left
// its CPU's cache).
const (
	largeRequest = 16 << 10
	largeReply   = 64 << 10
)

// weigh counts a statement of req bytes sent and reply bytes received into
// load: a moving average (weight 1/8) of the share of large statements, 256
// when all are. Concurrent statements may lose each other's update: load
// is a hint.
func (rc *redisConn) weigh(req, reply int) {
	large := req >= largeRequest || reply >= largeReply
	l := rc.load.Load()
	if l == 0 && !large {
		return // small values only: no write to a line every caller reads
	}
	l -= (l + 7) >> 3 // rounded up, so that it comes down to 0
	if large {
		l += 32
	}
	rc.load.Store(l)
}

// Crowded implements driver.Spreader: it holds while about half or more of
// the connection's recent statements were large (six in a row make it
// hold, five small ones in a row end it).
func (rc *redisConn) Crowded() bool { return rc.load.Load() >= 128 }

// handshake negotiates the protocol, authenticates, names the connection
// and selects the database.
func (rc *redisConn) handshake(ctx context.Context, lg *login) error {
	cfg := rc.connector.cfg
	rc.gen.Store(lg.gen)
	user := lg.user
	auth := lg.password != "" || user != ""
	if auth && user == "" {
		user = "default"
	}
	hello := []string{"HELLO", strconv.Itoa(rc.connector.protocol)}
	if auth {
		hello = append(hello, "AUTH", user, lg.password)
	}
	if rc.connector.clientName != "" {
		hello = append(hello, "SETNAME", rc.connector.clientName)
	}
	v, err := rc.do(ctx, hello...)
	resp2 := rc.connector.protocol == 2
	switch {
	case err != nil:
		return err
	case v.IsError():
		se := replyError(&v)
		if isAuthError(se) {
			return &AuthError{Addr: rc.addr, User: lg.user, Err: se}
		}
		if se.Code != "NOPROTO" && !strings.Contains(se.Msg, "unknown command") {
			return fmt.Errorf("redis: HELLO at %s: %w", rc.addr, se)
		}
		// An old server (no HELLO, or no RESP3): RESP2 with AUTH.
		resp2 = true
		if auth {
			v, err := rc.doFrame(ctx, appendAuth(nil, lg))
			if err != nil {
				return err
			}
			if v.IsError() {
				return &AuthError{Addr: rc.addr, User: lg.user, Err: serverError(&v)}
			}
		}
		if rc.connector.clientName != "" {
			if err := rc.doOK(ctx, "CLIENT", "SETNAME", rc.connector.clientName); err != nil {
				return err
			}
		}
	}
	if rc.connector.db != 0 {
		if err := rc.doOK(ctx, "SELECT", strconv.Itoa(rc.connector.db)); err != nil {
			return fmt.Errorf("redis: database %d at %s (a cluster has only database 0): %w", rc.connector.db, rc.addr, err)
		}
	}
	if rc.connector.cacheSize > 0 {
		if resp2 {
			return fmt.Errorf("redis: cache_size needs RESP3, which %s does not speak (HELLO 3 failed)", rc.addr)
		}
		// OPTIN: the server tracks only the reads that ask for it (see
		// cache.go), not every read of the connection. The cache is set
		// first: the reader goroutine reads it when pushes come.
		rc.cache = rc.connector.cacheFor(rc.addr)
		if v, err := rc.do(ctx, "CLIENT", "TRACKING", "ON", "OPTIN"); err != nil {
			return err
		} else if v.IsError() {
			return fmt.Errorf("redis: cache_size needs CLIENT TRACKING (Redis 6 or later) at %s: %w", rc.addr, serverError(&v))
		}
	}
	if cfg.ReplicaReads {
		// Lets a replica serve reads of its primary's slots; a standalone
		// server says cluster support is disabled, which is fine.
		if v, err := rc.do(ctx, "READONLY"); err != nil {
			return err
		} else if v.IsError() && !strings.Contains(string(v.Str), "cluster support disabled") {
			return fmt.Errorf("redis: READONLY at %s: %w", rc.addr, serverError(&v))
		}
	}
	return nil
}

func isAuthError(se *driver.ServerError) bool {
	switch se.Code {
	case "WRONGPASS", "NOAUTH", "NOPERM":
		return true
	}
	return strings.Contains(se.Msg, "invalid password") || strings.Contains(se.Msg, "without any password configured") ||
		strings.Contains(se.Msg, "invalid username-password")
}

// do runs one command given as strings and returns its reply, logging
// in again first when the credentials changed (see relogin).
func (rc *redisConn) do(ctx context.Context, args ...string) (resp.Value, error) {
	frame, lg := rc.relogin(nil)
	frame = resp.AppendCommandString(frame, args...)
	n := 1
	if lg != nil {
		n = 2
	}
	vs, err := rc.c.Do(ctx, frame, n)
	if err != nil {
		rc.unsent(lg)
		return resp.Value{}, rc.transportError(err)
	}
	if lg != nil {
		rc.relogged(&vs[0])
	}
	return vs[n-1], nil
}

// doFrame runs the one command in frame as it is.
func (rc *redisConn) doFrame(ctx context.Context, frame []byte) (resp.Value, error) {
	vs, err := rc.c.Do(ctx, frame, 1)
	if err != nil {
		return resp.Value{}, rc.transportError(err)
	}
	return vs[0], nil
}

func (rc *redisConn) doOK(ctx context.Context, args ...string) error {
	v, err := rc.do(ctx, args...)
	if err == nil && v.IsError() {
		err = serverError(&v)
	}
	return err
}

// transportError maps a connection failure: one that happened before the
// request was written is driver.ErrBadConn (safe to retry anywhere).
func (rc *redisConn) transportError(err error) error {
	if errors.Is(err, conn.ErrNotSent) {
		return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
	}
	return err
}

// run sends one statement, preceded by ASKING after an ASK redirect.
func (rc *redisConn) run(ctx context.Context, query string, args []driver.Value) (rediscmd.Reply, error) {
	v, err := rc.runValue(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rc.reply(&v), nil
}

// runValue is run returning the decoded value.
func (rc *redisConn) runValue(ctx context.Context, query string, args []driver.Value) (resp.Value, error) {
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd)
	if err := cmd.ParseRef(query, args, rediscmd.BigArg); err != nil {
		return resp.Value{}, err
	}
	frame, lg := rc.relogin(cmd.Frame[:0])
	n := 1
	if lg != nil {
		n++
	}
	if driver.IsAsk(ctx) {
		frame = resp.AppendCommandString(frame, "ASKING")
		n++
	}
	var pieces [2 + 2*1][]byte // room for one big argument without allocating
	frame, v := resp.AppendCommandV(frame, pieces[:0], rediscmd.BigArg, cmd.Argv...)
	cmd.Frame = frame // the Conn copies it or is done with it when DoV returns; keep the buffer
	// socket_timeout bounds the request here, one timer per connection
	// (CapRequestTimeout); a blocking command waits as long as its own
	// timeout says, bounded by ctx only.
	timeout := rc.connector.cfg.SocketTimeout
	name, spec := rediscmd.Lookup(cmd.Argv)
	blocks := spec.Blocks(cmd.Argv)
	if blocks {
		timeout = 0
	}
	if rc.cache != nil && untracks(spec.Session) {
		// It may turn the connection's tracking off (CLIENT TRACKING
		// OFF, RESET, HELLO 2...): what the connection covers of the
		// node's cache goes first, not after a stale read.
		rc.connector.releaseCache(rc)
	}
	var vs [3]resp.Value
	err := rc.c.DoV(ctx, v, vs[:n], timeout)
	if rc.cache != nil && !spec.ReadOnly {
		// Whether it ran or not: it may have.
		rc.wrote(spec, cmd.Argv, &vs[n-1])
	}
	if err != nil {
		if blocks || spec.Session != rediscmd.SessionNone {
			rc.abandon(name, blocks, err)
		}
		rc.unsent(lg)
		return resp.Value{}, rc.transportError(err)
	}
	if lg != nil {
		rc.relogged(&vs[0])
	}
	sent := 0
	for _, p := range v {
		sent += len(p)
	}
	rc.weigh(sent, len(vs[n-1].Str))
	if spec.Session != rediscmd.SessionNone {
		rc.track(name, spec.Session, spec.ReplyShape(cmd.Argv), cmd.Argv, &vs[n-1])
	} else if rc.sess.changed.Load() {
		rc.queue(spec.ReplyShape(cmd.Argv), &vs[n-1])
	}
	canonical(&vs[n-1], spec.ReplyShape(cmd.Argv)) // a RESP2 reply takes its RESP3 shape
	return vs[n-1], nil
}

// abandon closes the connection at once after the reply of a blocking
// or session-changing command (name) was given up with err (its context
// ended). A blocking command would otherwise still complete, popping an
// element (BLPOP, BLMOVE, BZPOPMIN...) for a caller that was told it
// failed, and the element would be lost: a client that disconnects is
// unblocked without popping anything (a graceful Close would keep the
// socket open for up to socket_timeout). A session command (MULTI,
// SELECT, WATCH...) may have changed the session unknown to the tracking:
// a pinned Conn's next statements would run in it (queued in a MULTI and
// never run, in another database) and report success. A command that was
// not sent, or a connection closed already, leaves nothing to do.
func (rc *redisConn) abandon(name string, blocks bool, err error) {
	var se *driver.ServerError
	if err == nil || errors.As(err, &se) || errors.Is(err, conn.ErrNotSent) || rc.c.Err() != nil {
		return // answered, not sent, or closed already
	}
	reason := conn.ReasonShutdown
	if errors.Is(err, context.DeadlineExceeded) {
		reason = conn.ReasonTimeout
	}
	what := "so that the server does not complete it"
	if !blocks {
		what = "its effect on the session unknown"
	}
	rc.c.CloseWithReason(reason, fmt.Errorf("the reply of %s was abandoned (%w): closed, %s", name, err, what))
}

// reply converts a value, completing a redirect whose address has no host
// (a node announcing "unknown endpoint"): the host is the one this
// connection reached.
func (rc *redisConn) reply(v *resp.Value) rediscmd.Reply {
	r := toReply(v)
	if re, ok := r.(*driver.RedirectError); ok && strings.HasPrefix(re.Addr, "?:") {
		host, _, _ := net.SplitHostPort(rc.addr)
		re.Addr = net.JoinHostPort(host, re.Addr[2:])
	}
	return r
}

// Exec implements driver.Conn. The common replies (a status, an integer,
// a string, nil) give their count without being converted first.
func (rc *redisConn) Exec(ctx context.Context, query string, args []driver.Value) (driver.Result, error) {
	v, err := rc.runValue(ctx, query, args)
	if err != nil {
		return nil, err
	}
	switch v.Kind {
	case resp.KindSimpleString, resp.KindBulkString, resp.KindVerbatim:
		return driver.RowsAffected(1), nil
	case resp.KindInteger:
		return driver.RowsAffected(v.Int), nil
	case resp.KindNull:
		return driver.RowsAffected(0), nil
	}
	return rediscmd.Result(rc.reply(&v))
}

// Query implements driver.Conn.
func (rc *redisConn) Query(ctx context.Context, query string, args []driver.Value) (driver.Rows, error) {
	if v, ok, err := rc.cachedValue(ctx, query, args); ok {
		if err != nil {
			return nil, err
		}
		rows, err := rediscmd.Rows(rc.reply(&v))
		if err != nil {
			return nil, err
		}
		return sharedRows{rows}, nil
	}
	r, err := rc.run(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return rediscmd.Rows(r)
}

// sharedRows are the rows of a cached reply: their values are the cache's,
// so they do not implement driver.OwnedValues (the user API copies them).
type sharedRows struct{ driver.Rows }

// QueryRow implements driver.RowQueryer: a string reply (GET) goes to
// the row as it was decoded, in memory of its own.
func (rc *redisConn) QueryRow(ctx context.Context, query string, args []driver.Value, row *driver.Row) error {
	if v, ok, err := rc.cachedValue(ctx, query, args); ok {
		if err != nil {
			return err
		}
		if v.IsError() {
			return rediscmd.FirstRow(rc.reply(&v), row) // a redirect, completed
		}
		return cachedRow(&v, row)
	}
	v, err := rc.runValue(ctx, query, args)
	if err != nil {
		return err
	}
	if isString(v.Kind) {
		rediscmd.BytesRow(v.Str, row)
		return nil
	}
	return rediscmd.FirstRow(rc.reply(&v), row)
}

// isString reports whether a reply of kind k is a string that toReply
// would make a []byte.
func isString(k resp.Kind) bool {
	return k == resp.KindBulkString || k == resp.KindVerbatim || k == resp.KindBigNumber
}

// Batch implements driver.Batcher: every statement goes in one write and
// the replies come back in one read pass.
func (rc *redisConn) Batch(ctx context.Context, stmts []driver.Stmt, out []driver.BatchResult) error {
	bb := rc.encodeBatch(stmts, out)
	defer bb.put()
	if len(bb.sent) == 0 {
		rc.unsent(bb.lg)
		return nil
	}
	err := rc.c.DoInto(ctx, bb.frame, bb.vals, rc.connector.cfg.SocketTimeout)
	bb.dropWritten()
	if err != nil {
		bb.abandon(err)
		rc.unsent(bb.lg)
		return rc.transportError(err)
	}
	bb.results()
	return nil
}

// SendBatch implements driver.BatchSender: Batch, whose replies Wait
// reads.
func (rc *redisConn) SendBatch(ctx context.Context, stmts []driver.Stmt, out []driver.BatchResult) (driver.PendingBatch, error) {
	bb := rc.encodeBatch(stmts, out)
	if len(bb.sent) == 0 {
		rc.unsent(bb.lg)
		return bb, nil // Wait has nothing to wait for
	}
	var err error
	if bb.call, err = rc.c.Send(ctx, bb.frame, bb.vals, rc.connector.cfg.SocketTimeout); err != nil {
		rc.unsent(bb.lg)
		bb.dropWritten()
		bb.put()
		return nil, rc.transportError(err)
	}
	return bb, nil
}

// Wait implements driver.PendingBatch.
func (bb *batchBuf) Wait(ctx context.Context) error {
	defer bb.put()
	if len(bb.sent) == 0 {
		return nil
	}
	err := bb.call.Wait(ctx)
	bb.dropWritten()
	if err != nil {
		bb.abandon(err)
		bb.rc.unsent(bb.lg)
		return bb.rc.transportError(err)
	}
	bb.results()
	return nil
}

// encodeBatch encodes stmts into one frame, after an AUTH when the
// credentials changed; a statement that does not parse gets its error in
// out at once. The batchBuf returned is to be put back.
func (rc *redisConn) encodeBatch(stmts []driver.Stmt, out []driver.BatchResult) *batchBuf {
	var cmd *rediscmd.Cmd // for the statements not prepared
	defer func() {
		if cmd != nil {
			rediscmd.Put(cmd)
		}
	}()
	bb := batchBufs.Get().(*batchBuf)
	bb.rc, bb.out = rc, out
	var frame []byte
	frame, bb.lg = rc.relogin(bb.frame[:0])
	sent, shapes := bb.sent[:0], bb.shapes[:0]
	for i, s := range stmts {
		if p := s.Prepared; len(p) > 0 { // see connector.RoutePrepare (never a write under a cache)
			frame = append(frame, p[1:]...)
			sent = append(sent, i)
			shapes = append(shapes, rediscmd.Shape(p[0]&^preparedBlocks))
			bb.blocks = bb.blocks || p[0]&preparedBlocks != 0
			continue
		}
		if cmd == nil {
			cmd = rediscmd.Get()
		}
		if err := cmd.Parse(s.Query, s.Args); err != nil {
			out[i].Err = err
			continue
		}
		frame = resp.AppendCommand(frame, cmd.Argv...)
		sent = append(sent, i)
		_, spec := rediscmd.Lookup(cmd.Argv)
		shapes = append(shapes, spec.ReplyShape(cmd.Argv))
		bb.blocks = bb.blocks || spec.Blocks(cmd.Argv)
		if rc.cache != nil && !spec.ReadOnly {
			argv := make([][]byte, len(cmd.Argv)) // cmd's memory is the next statement's
			for k, a := range cmd.Argv {
				argv[k] = bytes.Clone(a)
			}
			bb.written = append(bb.written, writtenBy{spec, argv})
		}
	}
	bb.frame, bb.sent, bb.shapes = frame, sent, shapes // the Conn copies the frame: keep the buffers
	if len(sent) > 0 {
		extra := 0 // replies before the statements'
		if bb.lg != nil {
			extra = 1
		}
		bb.vals = slices.Grow(bb.vals[:0], extra+len(sent))[:extra+len(sent)]
	}
	return bb
}

// results stores the replies, read into bb.vals, in bb.out.
func (bb *batchBuf) results() {
	vs, out := bb.vals, bb.out
	if bb.lg != nil {
		bb.rc.relogged(&vs[0])
		vs = vs[1:]
	}
	for k, i := range bb.sent {
		canonical(&vs[k], bb.shapes[k])
		if isString(vs[k].Kind) {
			rediscmd.BytesRow(vs[k].Str, &out[i].Row)
			continue
		}
		out[i].Rows, out[i].Err = rediscmd.Rows(bb.rc.reply(&vs[k]))
	}
}

// writtenBy is a write of a batch, whose keys leave the cache once the
// batch's replies are in (see redisConn.wrote).
type writtenBy struct {
	spec *rediscmd.Spec
	argv [][]byte
}

// batchBuf is a batch on its way: its frame, the statements sent, and the
// replies (whose strings leave with the results; the Values themselves are
// reused). It is kept for the next batch once the replies are read; while
// a batch sent by SendBatch waits, it is the driver.PendingBatch.
type batchBuf struct {
	frame  []byte
	sent   []int
	shapes []rediscmd.Shape // of the replies to the statements sent
	vals   []resp.Value

	rc   *redisConn
	lg   *login // the relogin sent ahead of the statements, if any
	out  []driver.BatchResult
	call conn.Call[resp.Value]
	// written are the batch's writes, with a client-side cache: their
	// keys leave it once the replies are in, or the batch failed (see
	// dropWritten).
	written []writtenBy
	// blocks is set when a statement of the batch blocks (BLPOP...):
	// replies given up close the connection at once (see abandon).
	blocks bool
}

// abandon closes the connection at once when the batch's replies were
// given up with err and one of its statements blocks, as a blocking
// statement's own (redisConn.abandon).
func (bb *batchBuf) abandon(err error) {
	if bb.blocks {
		bb.rc.abandon("a blocking command of a batch", true, err)
	}
}

var batchBufs = sync.Pool{New: func() any { return new(batchBuf) }}

// maxBatchBuf bounds the frame a batchBuf keeps for the next batch.
const maxBatchBuf = 1 << 20

// dropWritten drops the cached keys of the batch's writes (see
// redisConn.wrote): once their replies are in, or when they may have run.
func (bb *batchBuf) dropWritten() {
	for _, w := range bb.written {
		bb.rc.wrote(w.spec, w.argv, &resp.Value{})
	}
	bb.written = bb.written[:0]
}

func (bb *batchBuf) put() {
	clear(bb.vals)
	clear(bb.written)
	bb.written = bb.written[:0]
	bb.rc, bb.lg, bb.out, bb.call, bb.blocks = nil, nil, nil, conn.Call[resp.Value]{}, false
	if cap(bb.frame) > maxBatchBuf {
		*bb = batchBuf{}
	}
	batchBufs.Put(bb)
}

// Ping implements driver.Pinger.
func (rc *redisConn) Ping(ctx context.Context) error { return rc.doOK(ctx, "PING") }

// Info implements driver.Infoer: cmd is an INFO section or a whole INFO
// command line.
func (rc *redisConn) Info(ctx context.Context, cmd string) (string, error) {
	args := strings.Fields(cmd)
	if len(args) == 0 || !strings.EqualFold(args[0], "INFO") {
		args = append([]string{"INFO"}, args...)
	}
	v, err := rc.do(ctx, args...)
	if err != nil {
		return "", err
	}
	if v.IsError() {
		return "", serverError(&v)
	}
	return string(v.Str), nil
}

// IsValid implements driver.Validator: false once the connection closed
// (broken, timed out, out of sync) or was retired (a request timed out on
// it; it closes once its pending replies are in), and while its session
// holds something to undo (see ResetSession).
func (rc *redisConn) IsValid() bool { return rc.c.Usable() && !rc.sess.changed.Load() }

// Close implements driver.Conn. A multiplexed connection may be closed by
// its pool (idle or lifetime limits, DB.Close) while callers that were lent
// it still wait for replies: the connection stops taking requests and
// closes itself once those are answered, so nobody is cut and nobody waits.
func (rc *redisConn) Close() error {
	rc.c.Shutdown(max(rc.connector.cfg.SocketTimeout, time.Second))
	rc.connector.releaseCache(rc)
	return nil
}

// BeginTx implements driver.Beginner with MULTI: statements until Commit
// are queued by the server (their rows say QUEUED) and run atomically by
// EXEC. WATCH may be sent on the pinned connection before BeginTx.
func (rc *redisConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	// MULTI/EXEC runs the queued commands without interleaving: as
	// serializable as it gets; the other levels and DEFERRABLE mean
	// nothing to Redis.
	if (opts.Isolation != driver.LevelDefault && opts.Isolation != driver.LevelSerializable) || opts.Deferrable {
		return nil, fmt.Errorf("redis: transaction isolation %v (deferrable %v): %w", opts.Isolation, opts.Deferrable, driver.ErrNotSupported)
	}
	if err := rc.doOK(ctx, "MULTI"); err != nil {
		rc.abandon("MULTI", false, err)
		return nil, err
	}
	rc.setMulti(true)
	return &tx{rc: rc}, nil
}

// ErrTxAborted is returned by Commit when EXEC did not run the transaction
// because a WATCHed key changed.
var ErrTxAborted = errors.New("redis: transaction aborted: a watched key changed")

type tx struct{ rc *redisConn }

func (t *tx) Commit(ctx context.Context) error {
	v, err := t.rc.do(ctx, "EXEC")
	t.rc.setMulti(false)
	switch {
	case err != nil:
		t.rc.abandon("EXEC", false, err)
		return err
	case v.IsError():
		return serverError(&v)
	case v.IsNull():
		return ErrTxAborted
	}
	var errs []error
	for i := range v.Elems {
		if v.Elems[i].IsError() {
			errs = append(errs, fmt.Errorf("statement %d: %w", i+1, serverError(&v.Elems[i])))
		}
	}
	return errlist.Join(errs...)
}

func (t *tx) Rollback(ctx context.Context) error {
	err := t.rc.doOK(ctx, "DISCARD")
	t.rc.setMulti(false)
	t.rc.abandon("DISCARD", false, err)
	return err
}
