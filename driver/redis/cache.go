package redis

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// Client-side caching, assisted by the server (Redis 6+ key tracking, as
// rueidis' DoCache does it). With cache_size set, every connection turns
// tracking on in OPTIN mode at its handshake (RESP3 only: the
// invalidations come as push messages on the same connection, in order with
// the replies). A cached read sends CLIENT CACHING YES, the command and PTTL
// of its key in one write; from then on the server remembers that this
// connection holds the key, and the first change to it (a write, an expiry,
// an eviction, a FLUSHALL, the slot migrating away) sends an "invalidate"
// push naming it, which the connection's reader goroutine applies before it
// reads anything else.
//
// The cache is per node, shared by that node's connections; an entry is
// valid while the connection whose tracking covers it (its owner) is usable:
// a connection that breaks or is retired may have lost invalidations, so
// its entries are dropped with it and, until then, never served.
//
// The race that matters: the reply and an invalidation of the same key may
// be handled in either order by different goroutines (the caller stores
// the reply; the reader applies the invalidation as soon as it is read).
// So an entry is created pending before the request is written, an
// invalidation removes pending entries too, and the reply is stored only
// if its pending entry is still there: a value the server invalidated
// after sending it can never be stored.
type cache struct {
	max int64 // bytes

	mu      sync.RWMutex
	entries map[string]*entry   // by the command's encoding
	byKey   map[string][]*entry // by key: what an invalidation of it removes
	size    int64
	conns   int // connections using the cache (see connector.cacheFor)

	hits, misses, invalidations, evictions atomic.Int64
}

// entry is a cached reply.
type entry struct {
	frame   string // the command, as sent
	key     string
	owner   *redisConn // whose tracking covers the entry
	ready   bool       // the reply is in; until then the request is in flight
	val     resp.Value // read only once ready
	expires int64      // cacheNow() after which the entry is not served
	used    atomic.Int64
	size    int64
}

// entryOverhead approximates what an entry costs beyond its command, key
// and value: the entry itself, its map slots and its index slice.
const entryOverhead = 160

func newCache(max int64) *cache {
	return &cache{max: max, entries: map[string]*entry{}, byKey: map[string][]*entry{}}
}

// cacheEpoch is the origin of cacheNow.
var cacheEpoch = time.Now()

// cacheNow reads the monotonic clock, in nanoseconds.
func cacheNow() int64 { return int64(time.Since(cacheEpoch)) }

// get returns the value cached for frame, if it can be served at now. It
// counts hits; misses are counted by the reads that then go to the server.
func (c *cache) get(frame []byte, now int64) (resp.Value, bool) {
	c.mu.RLock()
	e := c.entries[string(frame)]
	ok := e != nil && e.ready && now < e.expires && e.owner.c.Usable()
	var v resp.Value
	if ok {
		v = e.val
		if now-e.used.Load() > int64(time.Millisecond) {
			// Only now and then: a hot entry's line is not written by
			// every hit, and eviction needs no finer clock.
			e.used.Store(now)
		}
	}
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	}
	return v, ok
}

// begin records that owner is about to read frame, a command on key, to
// cache its reply: it returns the pending entry to fill, or nil when
// another read of frame is already in flight (this one is then not cached).
func (c *cache) begin(frame, key []byte, owner *redisConn, now int64) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[string(frame)]; e != nil {
		if !e.ready && e.owner.c.Usable() {
			return nil
		}
		c.removeLocked(e) // expired, or its owner's tracking is gone
	}
	e := &entry{frame: string(frame), key: string(key), owner: owner}
	e.size = int64(len(e.frame)+len(e.key)) + entryOverhead
	e.used.Store(now)
	c.entries[e.frame] = e
	c.byKey[e.key] = append(c.byKey[e.key], e)
	c.size += e.size
	c.evictLocked(e)
	return e
}

// fill stores pending entry e's reply, unless e was invalidated (or
// evicted) meanwhile. v must not change afterwards.
func (c *cache) fill(e *entry, v resp.Value, expires int64) {
	n := valueSize(&v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.frame] != e {
		return
	}
	e.val, e.ready, e.expires = v, true, expires
	e.size += n
	c.size += n
	c.evictLocked(e)
}

// abort drops pending entry e: its read failed or is not to be cached.
func (c *cache) abort(e *entry) {
	c.mu.Lock()
	if c.entries[e.frame] == e {
		c.removeLocked(e)
	}
	c.mu.Unlock()
}

// invalidate drops every entry of key, pending or not.
func (c *cache) invalidate(key []byte) {
	c.mu.Lock()
	for _, e := range c.byKey[string(key)] {
		delete(c.entries, e.frame)
		c.size -= e.size
		c.invalidations.Add(1)
	}
	delete(c.byKey, string(key))
	c.mu.Unlock()
}

// flush drops the entries owner's tracking covers, or every entry when
// owner is nil.
func (c *cache) flush(owner *redisConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if owner == nil {
		clear(c.entries)
		clear(c.byKey)
		c.size = 0
		return
	}
	for _, e := range c.entries {
		if e.owner == owner {
			c.removeLocked(e)
		}
	}
}

// removeLocked drops e.
func (c *cache) removeLocked(e *entry) {
	delete(c.entries, e.frame)
	c.size -= e.size
	es := c.byKey[e.key]
	for i, x := range es {
		if x == e {
			es[i] = es[len(es)-1]
			es[len(es)-1] = nil
			es = es[:len(es)-1]
			break
		}
	}
	if len(es) == 0 {
		delete(c.byKey, e.key)
	} else {
		c.byKey[e.key] = es
	}
}

// evictSamples is how many entries eviction compares: it drops the least
// recently used of a few picked at random, as Redis' own LRU does, instead
// of keeping a list in order (which every hit would have to lock).
const evictSamples = 5

// evictLocked drops entries until the cache fits its budget, sparing keep
// (the entry being stored) unless it is all that is left.
func (c *cache) evictLocked(keep *entry) {
	for c.size > c.max && len(c.entries) > 0 {
		var victim *entry
		n := 0
		for _, e := range c.entries { // map iteration starts at random
			if e == keep && len(c.entries) > 1 {
				continue
			}
			if victim == nil || e.used.Load() < victim.used.Load() {
				victim = e
			}
			if n++; n == evictSamples {
				break
			}
		}
		c.removeLocked(victim)
		c.evictions.Add(1)
	}
}

// valueSize approximates the memory v holds.
func valueSize(v *resp.Value) int64 {
	n := resp.ValueSize + int64(cap(v.Str))
	for i := range v.Elems {
		n += valueSize(&v.Elems[i])
	}
	return n
}

// cacheFor returns the cache of the node at addr, counting a connection
// that uses it until releaseCache.
func (c *connector) cacheFor(addr string) *cache {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	ch := c.caches[addr]
	if ch == nil {
		ch = newCache(c.cacheSize)
		c.caches[addr] = ch
		c.publishCaches()
	}
	ch.conns++
	return ch
}

// publishCaches gives CachedRow a copy of the caches by address, which it
// reads without a lock; c.cacheMu is held.
func (c *connector) publishCaches() {
	m := maps.Clone(c.caches)
	c.byAddr.Store(&m)
}

// cachingConnector is the connector of a DSN with cache_size: it answers
// cached reads before any connection is taken (driver.RowCacher).
type cachingConnector struct{ *connector }

// RoutePrepare implements driver.PrepareRouter as connector's does, but
// for writes, which are left unprepared: their Conn parses them to learn
// the keys it drops from the cache (see batchBuf.dropWritten).
func (c cachingConnector) RoutePrepare(query string, args []driver.Value, buf []byte) (driver.Route, []byte, error) {
	r, out, err := c.connector.RoutePrepare(query, args, buf)
	if err == nil && r.Intent != driver.Read {
		out = buf
	}
	return r, out, err
}

// CachedRow implements driver.RowCacher: a hit costs a parse of the
// statement and a map lookup, no connection.
func (c cachingConnector) CachedRow(ctx context.Context, query string, args []driver.Value, pick func(driver.Route) string, row *driver.Row) (bool, error) {
	if c.ttl(ctx) <= 0 || driver.IsAsk(ctx) {
		return false, nil
	}
	m := c.byAddr.Load()
	if m == nil {
		return false, nil
	}
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd)
	name, spec, _, ok, err := c.parseCacheable(cmd, query, args)
	if !ok || err != nil {
		return false, nil // an error is the statement's own run's to report
	}
	ch := (*m)[pick(rediscmd.RouteWith(cmd.Argv, name, spec))]
	if ch == nil {
		return false, nil
	}
	v, hit := ch.get(cmd.Frame, cacheNow())
	if !hit {
		return false, nil
	}
	return true, cachedRow(&v, row)
}

// ttl returns how long a read under ctx may be cached (0: not).
func (c *connector) ttl(ctx context.Context) time.Duration {
	if ttl, ok := driver.CacheTTL(ctx); ok {
		return ttl
	}
	return c.cacheTTL
}

// parseCacheable parses query into cmd (through the statement's template
// when it has one: see connector.template) and, when its reply may be
// cached (Spec.CacheKey), encodes it into cmd.Frame, the entry's name, and
// returns its key. cmd.Argv may refer to args' memory.
func (c *connector) parseCacheable(cmd *rediscmd.Cmd, query string, args []driver.Value) (name string, spec *rediscmd.Spec, key []byte, ok bool, err error) {
	if t := c.template(query); t != nil {
		name, spec, err = cmd.ParseTemplate(t, args)
	} else if err = cmd.Parse(query, args); err == nil {
		name, spec = rediscmd.Lookup(cmd.Argv)
	}
	if err != nil {
		return "", nil, nil, false, err
	}
	if key, ok = spec.CacheKey(cmd.Argv); ok {
		cmd.Frame = resp.AppendCommand(cmd.Frame[:0], cmd.Argv...)
	}
	return name, spec, key, ok, nil
}

// cachedRow stores cached reply v as row: shared with the cache.
func cachedRow(v *resp.Value, row *driver.Row) error {
	row.Shared = true
	if isString(v.Kind) {
		rediscmd.BytesRow(v.Str, row)
		return nil
	}
	return rediscmd.FirstRow(toReply(v), row)
}

// untracks reports whether a session command of kind k may end or change
// the connection's key tracking, and with it the invalidations that keep
// the entries it owns true: CLIENT TRACKING, RESET, HELLO, AUTH, CLIENT
// REPLY, subscriptions... The others (SELECT, MULTI, WATCH, read mode,
// name) leave tracking as it is.
func untracks(k rediscmd.SessionKind) bool {
	switch k {
	case rediscmd.SessionNone, rediscmd.SessionDB, rediscmd.SessionTxBegin, rediscmd.SessionTxEnd,
		rediscmd.SessionWatch, rediscmd.SessionUnwatch, rediscmd.SessionReadMode, rediscmd.SessionName, rediscmd.SessionBound:
		return false
	}
	return true
}

// releaseCache drops what rc's tracking covered; the node's cache goes
// with its last connection. It also runs before a command that may turn
// rc's tracking off (see untracks): rc then caches nothing more.
func (c *connector) releaseCache(rc *redisConn) {
	ch := rc.cache
	if ch == nil || rc.uncached.Swap(true) {
		return
	}
	ch.flush(rc)
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	if ch.conns--; ch.conns == 0 && c.caches[rc.addr] == ch {
		delete(c.caches, rc.addr)
		c.publishCaches()
	}
}

// CacheStats implements driver.CacheStatser: the sums over the nodes'
// caches (a node's counts go with its last connection).
func (c *connector) CacheStats() driver.CacheStats {
	var s driver.CacheStats
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	for _, ch := range c.caches {
		s.Hits += ch.hits.Load()
		s.Misses += ch.misses.Load()
		s.Invalidations += ch.invalidations.Load()
		s.Evictions += ch.evictions.Load()
		ch.mu.RLock()
		s.Entries += len(ch.entries)
		s.Bytes += ch.size
		ch.mu.RUnlock()
	}
	return s
}

// onPush applies the server's invalidations to the cache. It runs on the
// connection's reader goroutine, before the reader reads anything else.
func (rc *redisConn) onPush(v resp.Value) {
	ch := rc.cache
	if ch == nil || len(v.Elems) < 2 || string(v.Elems[0].Str) != "invalidate" {
		return
	}
	keys := &v.Elems[1]
	if keys.IsNull() {
		// FLUSHALL, FLUSHDB, a replica's full resync...: every key of the
		// node (every connection of the node is told so too).
		ch.flush(nil)
		return
	}
	for i := range keys.Elems {
		ch.invalidate(keys.Elems[i].Str)
	}
}

// wrote drops what the cache holds of the keys a command that is not a
// read (spec, argv) may have changed, once its reply v is in (or its
// request failed). The server's invalidation goes to the connection that
// read the key, which may be another than this one and read it later: a
// caller must read its own write. A write queued in MULTI runs at EXEC:
// its keys are dropped again then (see endTx). A keyless write (FLUSHALL,
// FLUSHDB, SWAPDB) drops the node's whole cache.
func (rc *redisConn) wrote(spec *rediscmd.Spec, argv [][]byte, v *resp.Value) {
	ch, queued, n := rc.cache, rc.sess.changed.Load() && isQueuedReply(v), 0
	spec.Keys(argv, func(key []byte) {
		ch.invalidate(key)
		if queued {
			rc.sess.mu.Lock()
			rc.sess.written = append(rc.sess.written, string(key))
			rc.sess.mu.Unlock()
		}
		n++
	})
	if n == 0 && spec.Flags&rediscmd.FlagWrite != 0 {
		ch.flush(nil)
	}
}

func isQueuedReply(v *resp.Value) bool {
	return v.Kind == resp.KindSimpleString && string(v.Str) == "QUEUED"
}

// endTx drops the keys written by the statements of a transaction that
// just ended (EXEC's reply is in, or DISCARD's).
func (rc *redisConn) endTx(keys []string) {
	if rc.cache == nil {
		return
	}
	for _, k := range keys {
		rc.cache.invalidate([]byte(k))
	}
}

// cachedValue runs query as runValue does, through the cache: ok is false
// when the connection has no cache, ctx's ttl is 0 (see connector.ttl) or
// the statement is not one to cache (the caller runs it as usual). The
// value returned is shared with the cache: read only.
func (rc *redisConn) cachedValue(ctx context.Context, query string, args []driver.Value) (v resp.Value, ok bool, err error) {
	if rc.cache == nil {
		return v, false, nil
	}
	ttl := rc.connector.ttl(ctx)
	if ttl <= 0 || rc.sess.changed.Load() || rc.uncached.Load() || driver.IsAsk(ctx) {
		// A transaction queues the read; an ASK redirect is a one-off;
		// a connection released from the cache may no longer track.
		return v, false, nil
	}
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd)
	_, spec, key, cacheable, err := rc.connector.parseCacheable(cmd, query, args)
	if err != nil || !cacheable {
		return v, err != nil, err
	}
	ch := rc.cache
	now := cacheNow()
	if v, hit := ch.get(cmd.Frame, now); hit {
		return v, true, nil
	}
	ch.misses.Add(1)
	e := ch.begin(cmd.Frame, key, rc, now)
	if e == nil {
		return v, false, nil // another caller is reading it into the cache
	}
	// CLIENT CACHING YES makes the server track the next command only
	// (OPTIN); PTTL bounds the entry by the key's own expiry.
	frame, lg := rc.relogin(nil)
	frame = append(frame, cachingYes...)
	frame = append(frame, cmd.Frame...)
	frame = resp.AppendCommand(frame, pttl, key)
	n := 3
	if lg != nil {
		n++
	}
	var vs [4]resp.Value
	if err := rc.c.DoInto(ctx, frame, vs[:n], rc.connector.cfg.SocketTimeout); err != nil {
		ch.abort(e)
		rc.unsent(lg)
		return v, true, rc.transportError(err)
	}
	if lg != nil {
		rc.relogged(&vs[0])
	}
	got, ms := vs[n-2], vs[n-1]
	canonical(&got, spec.ReplyShape(cmd.Argv))
	switch {
	case vs[n-3].IsError() || got.IsError() || ms.Kind != resp.KindInteger || ms.Int == 0 || ms.Int < -2:
		// Tracking refused, a redirect, an error, or a key expiring now.
		ch.abort(e)
	default:
		life := ttl
		if ms.Int > 0 {
			life = min(life, time.Duration(ms.Int)*time.Millisecond)
		}
		ch.fill(e, got, now+int64(life))
	}
	return got, true, nil
}

var (
	cachingYes = resp.AppendCommandString(nil, "CLIENT", "CACHING", "YES")
	pttl       = []byte("PTTL")
)
