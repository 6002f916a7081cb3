package redis

import (
	"context"
	"time"

	"github.com/tendril-db/tendril/proto/resp"
)

// Credentials that rotate (driver.Config.Credentials) reach live
// connections without a round trip of their own: when they changed since
// a connection logged in, its next request is preceded by AUTH in the same
// write. Redis runs a connection's commands in order, so the requests
// already in flight on a multiplexed connection finish under the old
// login, the ones after it under the new one, and nothing is cut. A
// connection whose session holds state (MULTI, subscriptions, a pinned
// connection's changes) is left alone until ResetSession clears it: an
// AUTH there would be queued in the transaction, or refused. A refused
// AUTH leaves the connection logged in as before (Redis keeps the old
// login); it is then retired, and the pool dials a new one, whose
// handshake reports the refusal. Idle connections log in again on their
// next request; a server that closed them meanwhile (an expired token) is
// noticed by the pool's ping after idle.

// recheckInterval is how often, at most, the tender's probes ask the
// provider whether the credentials changed (a probe runs once per
// tend_interval per node; the connector asks once for all of them). The
// provider answers from a cache: once a second costs nothing, and with
// the default tend_interval bounds how long live connections keep a
// rotated-out token. There is no push from the provider: polling needs no
// goroutine and no lifecycle of its own, and a provider that knows of a
// change has to be asked for the new token anyway.
const recheckInterval = time.Second

// login is one answer of the credentials provider, numbered: gen grows
// with each answer that differs from the one before.
type login struct {
	user, password string
	gen            uint64
}

// login returns the credentials a new connection to addr logs in with,
// asking the provider when there is one (its error is a
// *driver.CredentialsError).
func (c *connector) login(ctx context.Context, addr string) (*login, error) {
	if c.cfg.Credentials == nil {
		return &c.static, nil
	}
	user, password, err := c.cfg.Login(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.record(user, password), nil
}

// record makes user and password the current credentials, with a new
// generation when they differ from the last ones: live connections then
// log in again.
func (c *connector) record(user, password string) *login {
	for {
		cur := c.creds.Load()
		if cur != nil && cur.user == user && cur.password == password {
			return cur
		}
		next := &login{user: user, password: password, gen: 1}
		if cur != nil {
			next.gen = cur.gen + 1
		}
		if c.creds.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// recheck asks the provider again, at most once per recheckInterval over
// all of the connector's probes, so that credentials that changed reach
// the live connections even when no connection is dialled. An error keeps
// the current credentials: the connections open are logged in, and the
// next connection dialled reports it.
func (c *connector) recheck(ctx context.Context) {
	if c.cfg.Credentials == nil {
		return
	}
	now := time.Now().UnixNano()
	next := c.nextCheck.Load()
	if now < next || !c.nextCheck.CompareAndSwap(next, now+int64(recheckInterval)) {
		return
	}
	if user, password, err := c.cfg.Login(ctx, ""); err == nil {
		c.record(user, password)
	}
}

// relogin appends AUTH to frame when the credentials changed since the
// connection logged in and its session holds no state, and returns the
// credentials sent (nil: none). One caller sends it; the others' requests
// go before or after it, and either is right.
func (rc *redisConn) relogin(frame []byte) ([]byte, *login) {
	lg := rc.connector.creds.Load()
	if lg == nil {
		return frame, nil
	}
	old := rc.gen.Load()
	if old == lg.gen || rc.sess.changed.Load() || !rc.gen.CompareAndSwap(old, lg.gen) {
		return frame, nil
	}
	return appendAuth(frame, lg), lg
}

// unsent is called when a request that carried AUTH for lg failed: it may
// not have been sent, so the next request sends it again (AUTH twice is
// harmless).
func (rc *redisConn) unsent(lg *login) {
	if lg != nil {
		rc.gen.CompareAndSwap(lg.gen, 0)
	}
}

// relogged checks the reply to the AUTH relogin sent. A refusal leaves the
// connection logged in as before: it is retired (it finishes the requests
// it holds and takes no more), and the next connection's handshake says
// why.
func (rc *redisConn) relogged(v *resp.Value) {
	if v.IsError() {
		rc.c.Shutdown(max(rc.connector.cfg.SocketTimeout, time.Second))
	}
}

// appendAuth appends AUTH [user] password to frame.
func appendAuth(frame []byte, lg *login) []byte {
	if lg.user == "" {
		return resp.AppendCommandString(frame, "AUTH", lg.password)
	}
	return resp.AppendCommandString(frame, "AUTH", lg.user, lg.password)
}
