package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// session is what a connection's statements changed of its session
// state, for ResetSession to undo before the connection is reused. The
// user API runs session-changing statements on pinned connections only;
// the tracking is kept under a lock anyway (it is cheap: only session
// commands touch it), so that a misrouted one cannot go unnoticed.
type session struct {
	// changed is set while anything needs undoing: IsValid reads it on
	// every checkout, without the lock.
	changed  atomic.Bool
	mu       sync.Mutex
	multi    bool   // inside MULTI
	watch    bool   // keys are WATCHed
	db       int    // the selected database
	readonly bool   // READONLY mode (a cluster replica serves reads)
	named    bool   // CLIENT SETNAME changed the name
	poisoned string // what changed that ResetSession cannot undo ("" if nothing)
	// shapes holds the reply shape of each statement queued in MULTI, for
	// EXEC's replies to take their RESP3 shape too.
	shapes []rediscmd.Shape
	// written holds the keys of the writes queued in MULTI, for the
	// client-side cache to drop at EXEC (see redisConn.wrote).
	written []string
}

// dirty reports whether anything needs undoing, given the connection's
// configured database and read mode.
func (s *session) dirty(db int, readonly bool) bool {
	return s.multi || s.watch || s.db != db || s.readonly != readonly || s.named || s.poisoned != ""
}

// track records what a session-changing command (name, its kind, argv,
// its reply shape sh) did, given its reply v.
func (rc *redisConn) track(name string, kind rediscmd.SessionKind, sh rediscmd.Shape, argv [][]byte, v *resp.Value) {
	s := &rc.sess
	s.mu.Lock()
	defer func() {
		s.changed.Store(s.dirty(rc.connector.db, rc.connector.cfg.ReplicaReads))
		s.mu.Unlock()
	}()
	ok := v.Kind == resp.KindSimpleString && string(v.Str) == "OK"
	switch {
	case kind == rediscmd.SessionTxEnd && !s.multi && v.IsError():
		// EXEC or DISCARD without MULTI: refused ("EXEC without MULTI"),
		// and the keys WATCHed stay watched; ResetSession must unwatch
		// them, or the next user's transaction aborts on them.
		return
	case kind == rediscmd.SessionTxEnd:
		// EXEC or DISCARD of an open transaction: whatever the reply
		// (EXECABORT included), the transaction and the keys WATCHed are
		// over.
		s.multi, s.watch, s.shapes = false, false, nil
		rc.endTx(s.written)
		s.written = nil
		return
	case isQueued(s, v):
		// Queued in MULTI, it will run at EXEC: too late to follow. Its
		// reply is one of EXEC's, whose shapes must stay in step.
		s.poisoned = name + " inside MULTI"
		s.shapes = append(s.shapes, sh)
		return
	case v.IsError():
		return // refused: nothing changed
	}
	switch kind {
	case rediscmd.SessionBound:
		// Nothing changed.
	case rediscmd.SessionTxBegin:
		s.multi = s.multi || ok
	case rediscmd.SessionWatch:
		s.watch = s.watch || ok
	case rediscmd.SessionUnwatch:
		s.watch = s.watch && !ok
	case rediscmd.SessionDB:
		if n, err := strconv.Atoi(string(argv[1])); ok && err == nil {
			s.db = n
		} else if ok {
			s.poisoned = "SELECT of a database that is not a number"
		}
	case rediscmd.SessionReadMode:
		if ok {
			s.readonly = name == "READONLY"
		}
	case rediscmd.SessionName:
		if name == "CLIENT SETNAME" {
			s.named = s.named || ok
			return
		}
		s.poisoned = name
	default:
		// Credentials, subscriptions, tracking, CLIENT REPLY...: the
		// connection cannot be handed to anyone else.
		s.poisoned = name
	}
}

// isQueued reports whether v says a statement was queued in MULTI.
func isQueued(s *session, v *resp.Value) bool {
	return s.multi && v.Kind == resp.KindSimpleString && string(v.Str) == "QUEUED"
}

// queue notes the reply shape of a statement run while the session has
// changed: one queued in MULTI (v says QUEUED) is converted at EXEC.
func (rc *redisConn) queue(sh rediscmd.Shape, v *resp.Value) {
	s := &rc.sess
	s.mu.Lock()
	if isQueued(s, v) {
		s.shapes = append(s.shapes, sh)
	}
	s.mu.Unlock()
}

// errUnresettable is wrapped by ResetSession's error when the session
// changed in a way the driver does not undo: the connection is closed.
var errUnresettable = errors.New("session cannot be reset")

// ResetSession implements driver.SessionResetter: it undoes what the
// statements run on the connection changed (an open transaction is
// discarded, WATCHed keys unwatched, the configured database, read mode
// and client name restored) in one round trip, and does nothing when
// nothing changed. Changes it cannot undo (AUTH, HELLO, subscriptions,
// CLIENT TRACKING...) are an error, and so are requests still pending
// (replies the caller gave up on): the connection is then closed.
func (rc *redisConn) ResetSession(ctx context.Context) error {
	if err := rc.c.Err(); err != nil {
		return err
	}
	if n := rc.c.Pending(); n > 0 {
		return fmt.Errorf("redis: %s: %d replies still pending: %w", rc.addr, n, errUnresettable)
	}
	cfg := rc.connector
	s := &rc.sess
	s.mu.Lock()
	if !s.dirty(cfg.db, cfg.cfg.ReplicaReads) {
		s.mu.Unlock()
		return nil
	}
	if s.poisoned != "" {
		what := s.poisoned
		s.mu.Unlock()
		return fmt.Errorf("redis: %s: %s changed the session: %w", rc.addr, what, errUnresettable)
	}
	var frame []byte
	n := 0
	add := func(args ...string) {
		frame = resp.AppendCommandString(frame, args...)
		n++
	}
	switch {
	case s.multi:
		add("DISCARD") // unwatches too
	case s.watch:
		add("UNWATCH")
	}
	if s.db != cfg.db {
		add("SELECT", strconv.Itoa(cfg.db))
	}
	if s.readonly != cfg.cfg.ReplicaReads {
		if cfg.cfg.ReplicaReads {
			add("READONLY")
		} else {
			add("READWRITE")
		}
	}
	if s.named {
		add("CLIENT", "SETNAME", cfg.clientName)
	}
	s.mu.Unlock()
	timeout := cfg.cfg.SocketTimeout
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	vs, err := rc.c.DoTimeout(ctx, frame, n, timeout)
	if err != nil {
		return rc.transportError(err)
	}
	for i := range vs {
		if vs[i].IsError() {
			return fmt.Errorf("redis: %s: resetting the session: %w", rc.addr, serverError(&vs[i]))
		}
	}
	s.mu.Lock()
	s.multi, s.watch, s.db, s.readonly, s.named = false, false, cfg.db, cfg.cfg.ReplicaReads, false
	s.shapes, s.written = nil, nil // DISCARDed: nothing was written
	s.changed.Store(false)
	s.mu.Unlock()
	return nil
}

// CommitResults implements driver.QueuedTx: EXEC runs the queued
// statements and its reply holds one result per statement.
func (t *tx) CommitResults(ctx context.Context) ([]driver.BatchResult, error) {
	v, err := t.rc.do(ctx, "EXEC")
	shapes := t.rc.takeShapes() // before setMulti forgets them
	t.rc.setMulti(false)
	switch {
	case err != nil:
		t.rc.abandon("EXEC", false, err)
		return nil, err
	case v.IsError():
		return nil, serverError(&v)
	case v.IsNull():
		return nil, ErrTxAborted
	case v.Kind != resp.KindArray:
		return nil, fmt.Errorf("redis: EXEC at %s: unexpected %s reply", t.rc.addr, v.Kind)
	}
	out := make([]driver.BatchResult, len(v.Elems))
	for i := range v.Elems {
		e := &v.Elems[i]
		if i < len(shapes) {
			canonical(e, shapes[i])
		}
		if isString(e.Kind) {
			rediscmd.BytesRow(e.Str, &out[i].Row)
			continue
		}
		out[i].Rows, out[i].Err = rediscmd.Rows(t.rc.reply(e))
	}
	return out, nil
}

// takeShapes returns the shapes of the statements queued in MULTI.
func (rc *redisConn) takeShapes() []rediscmd.Shape {
	s := &rc.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shapes
	s.shapes = nil
	return sh
}

// setMulti records that a transaction began (MULTI answered OK) or
// ended (EXEC or DISCARD sent).
func (rc *redisConn) setMulti(on bool) {
	s := &rc.sess
	s.mu.Lock()
	s.multi, s.shapes = on, nil
	if !on {
		s.watch = false
		rc.endTx(s.written)
		s.written = nil
	}
	s.changed.Store(s.dirty(rc.connector.db, rc.connector.cfg.ReplicaReads))
	s.mu.Unlock()
}

// initSession records the session the handshake set up.
func (rc *redisConn) initSession() {
	rc.sess.db, rc.sess.readonly = rc.connector.db, rc.connector.cfg.ReplicaReads
}

// Classify implements driver.Classifier: which server errors mean the
// statement did not run and may be tried again (see rediscmd.Classify).
func (c *connector) Classify(err error) driver.Retry { return rediscmd.Classify(err) }
