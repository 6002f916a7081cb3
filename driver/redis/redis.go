// Package redis is tendril's Redis backend, registered as "redis" and
// "valkey": Redis Cluster and standalone Redis or Valkey over RESP3 (RESP2
// for servers that lack HELLO).
//
// DSN: redis://[user:password@]host1:port1[,host2:port2...][/db][?key=value...]
// (the port defaults to 6379; /db selects a database on a standalone
// server). Driver keys:
//
//	protocol     3 (default: RESP3, falling back to RESP2 when the server
//	             has no HELLO) or 2
//	client_name  the name the connections give themselves (CLIENT SETNAME)
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
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"

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

// Driver is the Redis driver.
type Driver struct {
	system string // telemetry name: "redis" (default) or "valkey"
}

var params = []string{"client_name", "protocol"}

// Params implements driver.ParamLister.
func (Driver) Params() []string { return params }

// OpenConnector implements driver.Driver.
func (d Driver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	c := &connector{cfg: cfg, protocol: 3, system: d.system}
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
	if cfg.AuthMode == "pki" && cfg.TLS == nil {
		return nil, &driver.ParamError{Key: "auth_mode", Value: "pki", Reason: "needs TLS with a client certificate"}
	}
	return c, nil
}

type connector struct {
	cfg        driver.Config
	protocol   int
	clientName string
	db         int
	system     string
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
// handshake (HELLO with AUTH and SETNAME, SELECT, READONLY).
func (c *connector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, DefaultPort)
	}
	mc, err := conn.Dial(ctx, conn.Options{
		Network: "tcp", Addr: addr, DialTimeout: c.cfg.Timeout, TLS: c.cfg.TLS,
	}, codec)
	if err != nil {
		return nil, err
	}
	rc := &redisConn{c: mc, addr: addr, connector: c}
	rc.initSession()
	if err := rc.handshake(ctx); err != nil {
		reason := conn.ReasonBroken
		if errors.Is(err, driver.ErrAuthFailed) {
			reason = conn.ReasonAuthFailure
		}
		mc.CloseWithReason(reason, err)
		mc.Close()
		var ae *AuthError
		if !errors.As(err, &ae) {
			err = fmt.Errorf("redis: handshake with %s: %w", addr, err)
		}
		return nil, err
	}
	return rc, nil
}

// codec tells a conn.Conn how RESP replies are read.
var codec = conn.Codec[resp.Value]{
	NewDecoder: func(rd io.Reader) conn.Decoder[resp.Value] { return decoder{resp.NewReader(rd)} },
	IsPush:     func(v *resp.Value) bool { return v.Kind == resp.KindPush },
}

type decoder struct{ r *resp.Reader }

// Decode reads into v, which is a fresh Value owned by one request, so
// the strings it gets are its own.
func (d decoder) Decode(v *resp.Value) error { return d.r.ReadValue(v) }

// Buffered tells the Conn about bytes read ahead (see conn.Decoder).
func (d decoder) Buffered() int { return d.r.Buffered() }

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
