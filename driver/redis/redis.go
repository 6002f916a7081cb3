// Package redis is tendril's Redis backend, registered as "redis" and
// "valkey": Redis Cluster and standalone Redis or Valkey over RESP3 (RESP2
// for servers that lack HELLO).
//
// DSN: redis://[user:password@]host1:port1[,host2:port2...][/db][?key=value...]
// (the port defaults to 6379; /db selects a database on a standalone
// server). Driver keys:
//
//	protocol         3 (default: RESP3, falling back to RESP2 when the
//	                 server has no HELLO) or 2
//	client_name      the name the connections give themselves (CLIENT
//	                 SETNAME)
//	cache_size       bytes of client-side cache per node (default 0: no
//	                 cache); needs RESP3 and Redis 6 or later
//	cache_ttl        how long a read is cached when the call does not say
//	                 (sqlish.WithCache); default 0: only reads made with
//	                 WithCache are cached
//
// Client-side caching (see cache.go) is assisted by the server: with
// cache_size, every connection turns on CLIENT TRACKING (OPTIN), and a
// cached read of one key (GET, HGETALL, LRANGE...: a read whose reply
// depends on the key alone) asks the server to tell the connection when
// the key changes. Until then, or until its ttl or the key's own expiry,
// the reply is served from memory without I/O. An entry is dropped when the
// server says its key changed (a write by anyone, an expiry, an eviction, a
// FLUSHALL, the slot migrating away), when the connection that read it is
// lost (invalidations may have been lost with it), when the caller writes
// the key through the same DB (a caller reads its own writes), and to fit
// cache_size (the least recently used of a few sampled). A write by another
// client is seen by the next read once its invalidation has arrived: at
// the latest one round trip on the connection that read the key. Reads
// inside a transaction, and of commands whose reply changes while the key
// does not (TTL, OBJECT, SRANDMEMBER...) or of several keys, go to the
// server. DB.Stats().Cache counts hits, misses and invalidations.
//
// Limits on what a server may send, so that a broken or hostile server
// fails a reply with a clear error instead of exhausting memory (see
// resp.Limits; values are integers, 0 means the default):
//
//	max_line_len     longest simple string, error, double, big number,
//	                 integer or length line, in bytes (default 65536; below
//	                 20 it rejects some valid integers)
//	max_bulk_len     largest bulk string, in bytes (default 536870912,
//	                 Redis's proto-max-bulk-len)
//	max_array_len    most elements of one array, set or push, or pairs of
//	                 one map (default 16777216)
//	max_depth        deepest nesting of aggregates (default 64)
//	max_reply_bytes  most memory one decoded reply may hold, in bytes: each
//	                 element costs resp.ValueSize (80) bytes, each string its
//	                 length (default 536870912; growing buffers leaves
//	                 garbage behind, up to twice as much again)
//
// Every wait is bounded. socket_timeout bounds each request on a shared
// connection; one that times out takes its connection out of service
// (requests queued behind a reply that does not come would wait for it
// too), and the pool dials another. It also bounds each write: a node that
// stops reading fails the write, and every request pending on that
// connection, after socket_timeout. With socket_timeout=0 requests have no
// bound of their own and writes are bounded by DefaultWriteTimeout.
//
// Cluster mode is detected: the tender follows the cluster through
// CLUSTER SHARDS (CLUSTER SLOTS before Redis 7), each node's generation
// being a hash of its answer, and statements go to the primary of their
// key's slot (or a replica for reads, with READONLY, as read_preference
// allows). MOVED and ASK redirects are reported to the user API as
// driver.RedirectError, which follows them. Connections are multiplexed:
// many callers pipeline requests over one socket; blocking commands,
// transactions and pinned connections get a connection of their own.
//
// Redis has no cluster name: a DSN with cluster_name is refused.
//
// Authentication: a password (requirepass) or an ACL user and password,
// from the DSN or from sqlish.Config.Credentials, sent with HELLO (AUTH
// on servers without HELLO); a TLS client certificate with tls_cert and
// tls_key (auth_mode=pki insists on one). With Credentials, every new
// connection asks the provider, and the tender's probes ask it again
// (once a tend_interval, at most once a second): when its answer changes,
// each open connection sends
// AUTH with the new credentials before its next request, in the same
// write, so requests in flight are not disturbed (see auth.go). Redis has
// no SASL.
package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/conn"
	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

func init() {
	driver.Register("redis", Driver{})
	driver.Register("valkey", Driver{system: "valkey"})
}

// DefaultPort is the port of a host given without one.
const DefaultPort = "6379"

// DefaultWriteTimeout bounds a write when socket_timeout is 0: that asks
// for no bound on requests (they may wait for a slow command as long as
// ctx allows), but a write cannot be cancelled, and one to a node that
// stopped reading would otherwise block until the socket dies. 30 s is
// long enough for a 512 MB value at ~150 Mbit/s.
const DefaultWriteTimeout = 30 * time.Second

// Driver is the Redis driver.
type Driver struct {
	system string // telemetry name: "redis" (default) or "valkey"
}

var params = []string{"cache_size", "cache_ttl", "client_name", "max_array_len", "max_bulk_len", "max_depth", "max_line_len", "max_reply_bytes", "protocol"}

// Params implements driver.ParamLister.
func (Driver) Params() []string { return params }

// OpenConnector implements driver.Driver.
func (d Driver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	c := &connector{cfg: cfg, protocol: 3, system: d.system, seed: maphash.MakeSeed()}
	if c.system == "" {
		c.system = "redis"
	}
	if cfg.ClusterName != "" {
		return nil, &driver.ParamError{Key: "cluster_name", Value: cfg.ClusterName,
			Reason: "Redis has no cluster name to check; remove cluster_name from the DSN"}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Params)) {
		v := cfg.Params[k]
		switch k {
		case "protocol":
			if v != "2" && v != "3" {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want 2 or 3"}
			}
			c.protocol = int(v[0] - '0')
		case "client_name":
			c.clientName = v
		case "cache_size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want a number of bytes (0: no client-side cache)"}
			}
			c.cacheSize = n
		case "cache_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want a non-negative duration such as 30s (0: cache only reads made with sqlish.WithCache)"}
			}
			c.cacheTTL = d
		case "max_line_len", "max_bulk_len", "max_array_len", "max_depth", "max_reply_bytes":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || k == "max_depth" && n > math.MaxInt32 {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want a non-negative integer (0: the default)"}
			}
			switch k {
			case "max_line_len":
				c.limits.MaxLineLen = n
			case "max_bulk_len":
				c.limits.MaxBulkLen = n
			case "max_array_len":
				c.limits.MaxArrayLen = n
			case "max_depth":
				c.limits.MaxDepth = int(n)
			case "max_reply_bytes":
				c.limits.MaxReplyBytes = n
			}
		default:
			return nil, &driver.ParamError{Key: k, Reason: "unknown key", Valid: params}
		}
	}
	if cfg.Namespace != "" {
		db, err := strconv.Atoi(cfg.Namespace)
		if err != nil || db < 0 {
			return nil, &driver.ParamError{Key: "namespace", Value: cfg.Namespace, Reason: "the DSN path must be a database number"}
		}
		c.db = db
	}
	if c.cacheSize > 0 && c.protocol != 3 {
		return nil, &driver.ParamError{Key: "cache_size", Value: strconv.FormatInt(c.cacheSize, 10),
			Reason: "client-side caching needs protocol=3 (the server's invalidations come as RESP3 pushes)"}
	}
	if c.cacheTTL > 0 && c.cacheSize == 0 {
		return nil, &driver.ParamError{Key: "cache_ttl", Value: c.cacheTTL.String(), Reason: "needs cache_size (the cache's budget in bytes)"}
	}
	if c.cacheSize > 0 {
		c.caches = map[string]*cache{}
	}
	if cfg.AuthMode == "pki" && cfg.TLS == nil {
		return nil, &driver.ParamError{Key: "auth_mode", Value: "pki", Reason: "needs TLS with a client certificate"}
	}
	c.codec = newCodec(c.limits)
	c.static = login{user: cfg.User, password: cfg.Password}
	if c.cacheSize > 0 {
		return cachingConnector{c}, nil
	}
	return c, nil
}

type connector struct {
	cfg        driver.Config
	protocol   int
	clientName string
	db         int
	system     string
	limits     resp.Limits // from the DSN; zero fields: the defaults
	codec      conn.Codec[resp.Value]

	// The client-side cache (see cache.go): off while cacheSize is 0.
	cacheSize int64         // bytes per node
	cacheTTL  time.Duration // for reads without sqlish.WithCache
	cacheMu   sync.Mutex
	caches    map[string]*cache                 // by node address
	byAddr    atomic.Pointer[map[string]*cache] // a copy of caches, read without cacheMu

	// static is the DSN's login, used without a credentials provider.
	static login
	// creds is the provider's last answer (nil: none yet), and nextCheck
	// when a probe may ask it again (unix ns); see auth.go.
	creds     atomic.Pointer[login]
	nextCheck atomic.Int64

	// tpls caches the Templates of statements RoutePrepare has seen twice
	// in a row in their slot (by a hash of their text), so that a batch's
	// statements, most often of a few texts run with other arguments, are
	// not tokenized and looked up each time; seen holds the hash of the
	// last text that missed in each slot. Texts seen once (values written
	// into the text) are parsed as they come, and cost no Template.
	tpls [64]atomic.Pointer[rediscmd.Template]
	seen [64]atomic.Uint64
	seed maphash.Seed
}

// Backend implements driver.Connector.
func (c *connector) Backend() driver.Backend {
	return driver.Backend{
		System: c.system,
		Caps: driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapTx | driver.CapInfo |
			driver.CapTopology | driver.CapMultiplex | driver.CapRequestTimeout,
	}
}

// Route implements driver.Router.
func (c *connector) Route(query string, args []driver.Value) (driver.Route, error) {
	return rediscmd.RouteOf(query, args)
}

// RoutePrepare implements driver.PrepareRouter: it appends the shape of
// the statement's reply (one byte) and the statement's RESP frame, which a
// batch then sends as they are (see encodeBatch).
func (c *connector) RoutePrepare(query string, args []driver.Value, buf []byte) (driver.Route, []byte, error) {
	cmd := rediscmd.Get()
	defer rediscmd.Put(cmd)
	var r driver.Route
	var spec *rediscmd.Spec
	if t := c.template(query); t != nil {
		name, s, err := cmd.ParseTemplate(t, args)
		if err != nil {
			return driver.Route{}, buf, err
		}
		r, spec = rediscmd.RouteWith(cmd.Argv, name, s), s
	} else {
		if err := cmd.ParseRef(query, args, rediscmd.BigArg); err != nil { // a big value is copied once, into buf
			return driver.Route{}, buf, err
		}
		r, spec = rediscmd.RouteSpec(cmd.Argv)
	}
	r.Key = nil // the parsed arguments do not outlive the call
	head := byte(spec.ReplyShape(cmd.Argv))
	if spec.Blocks(cmd.Argv) {
		head |= preparedBlocks
	}
	buf = append(buf, head)
	return r, resp.AppendCommand(buf, cmd.Argv...), nil
}

// preparedBlocks is set in the first byte of a prepared statement (after
// its reply shape) when the command blocks: see batchBuf.blocks.
const preparedBlocks = 0x80

// template returns query's Template from the cache (see connector.tpls),
// compiling it the second time in a row the text misses in its slot; nil
// when it is not cached (yet), or has none.
func (c *connector) template(query string) *rediscmd.Template {
	h := maphash.String(c.seed, query)
	i := h % uint64(len(c.tpls))
	if t := c.tpls[i].Load(); t != nil && t.Is(query) {
		return t
	}
	if c.seen[i].Swap(h) != h {
		return nil
	}
	t := rediscmd.Compile(query)
	if t == nil {
		c.seen[i].Store(0) // not compiled again at the next sighting
		return nil
	}
	c.tpls[i].Store(t)
	return t
}

// Resolve implements driver.Resolver: the default port is added and a
// host name stands for every address DNS gives it.
func (c *connector) Resolve(ctx context.Context, seed string) ([]string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		host, port = seed, DefaultPort
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}

// Connect implements driver.Connector: it dials addr, then runs the
// handshake (HELLO with AUTH and SETNAME, SELECT, READONLY), logging in
// with the credentials provider's answer when there is one.
func (c *connector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, DefaultPort)
	}
	wt := c.cfg.SocketTimeout
	if wt <= 0 {
		wt = DefaultWriteTimeout
	}
	// The provider first: when it fails, no socket is wasted.
	lg, err := c.login(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	rc := &redisConn{addr: addr, connector: c}
	codec := c.codec
	if c.cacheSize > 0 {
		// Invalidations come as pushes, which need a reader goroutine for
		// the connection's life (see conn.Codec.OnPush).
		codec.OnPush = rc.onPush
	}
	mc, err := conn.Dial(ctx, conn.Options{
		Network: "tcp", Addr: addr, DialTimeout: c.cfg.Timeout, TLS: c.cfg.TLS,
		WriteTimeout: wt,
	}, codec)
	if err != nil {
		return nil, err
	}
	rc.c = mc
	rc.initSession()
	if err := rc.handshake(ctx, lg); err != nil {
		reason := conn.ReasonBroken
		if errors.Is(err, driver.ErrAuthFailed) {
			reason = conn.ReasonAuthFailure
		}
		mc.CloseWithReason(reason, err)
		mc.Close()
		c.releaseCache(rc)
		var ae *AuthError
		if !errors.As(err, &ae) {
			err = fmt.Errorf("redis: handshake with %s: %w", addr, err)
		}
		return nil, err
	}
	return rc, nil
}

// newCodec tells a conn.Conn how RESP replies are read, within lim.
func newCodec(lim resp.Limits) conn.Codec[resp.Value] {
	return conn.Codec[resp.Value]{
		NewDecoder: func(rd io.Reader) conn.Decoder[resp.Value] {
			r := resp.NewReader(rd)
			r.SetLimits(lim)
			return decoder{r}
		},
		IsPush: func(v *resp.Value) bool { return v.Kind == resp.KindPush },
	}
}

type decoder struct{ r *resp.Reader }

// Decode reads into v, which is a fresh Value owned by one request, so
// the strings it gets are its own.
func (d decoder) Decode(v *resp.Value) error { return d.r.ReadValue(v) }

// Buffered tells the Conn about bytes read ahead (see conn.Decoder).
func (d decoder) Buffered() int { return d.r.Buffered() }

// DecodeOrSkip skips a reply nobody waits for any more, deciding once it
// begins to arrive; pushes are always decoded (see conn.Decoder).
func (d decoder) DecodeOrSkip(v *resp.Value, skip func() bool) (bool, error) {
	if _, err := d.r.Peek(); err != nil {
		return false, err
	}
	if skip() {
		return d.r.SkipReply(v)
	}
	return false, d.r.ReadValue(v)
}

// AuthError reports that the server refused the credentials. It never
// holds the password.
type AuthError struct {
	Addr string
	User string
	Err  error // the server's answer
}

func (e *AuthError) Error() string {
	user := e.User
	if user == "" {
		user = "default"
	}
	return fmt.Sprintf("redis: authentication as %q at %s failed: %v", user, e.Addr, e.Err)
}

func (e *AuthError) Unwrap() []error { return []error{driver.ErrAuthFailed, e.Err} }
