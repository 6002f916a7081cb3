package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/tendril-db/tendril/driver"
)

func init() {
	driver.Register("postgres", Driver{})
	driver.Register("postgresql", Driver{})
}

// DefaultPort is the port of a host given without one.
const DefaultPort = "5432"

// DefaultStatementCacheSize is the number of prepared statements each
// connection keeps when statement_cache_size is not given.
const DefaultStatementCacheSize = 256

// maxStatementCacheSize bounds statement_cache_size: each statement holds
// memory on the server, per connection.
const maxStatementCacheSize = 1 << 16

// cancelGrace is how long a cancelled statement waits for the server to
// act on the cancel request before the connection is cut (and closed): a
// live server acts within a round trip (a few ms here), and a node that
// does not answer a cancel quickly is not answering at all. It is short so
// that a hung node cannot hold a caller much past its deadline (the user
// API promises total_timeout + 100 ms).
const cancelGrace = 80 * time.Millisecond

// Driver is the PostgreSQL driver.
type Driver struct{}

var params = []string{"application_name", "channel_binding", "require_auth", "search_path", "sslcert", "sslkey", "sslmode", "sslrootcert", "statement_cache_size", "timezone"}

// Params implements driver.ParamLister.
func (Driver) Params() []string { return slices.Clone(params) }

// OpenConnector implements driver.Driver. It parses the configuration
// once (pgconn.ParseConfig of a connection string built from cfg); every
// connection then copies it with its own host.
func (Driver) OpenConnector(cfg driver.Config) (driver.Connector, error) {
	c := &connector{cfg: cfg, cacheSize: DefaultStatementCacheSize, runtime: map[string]string{}}
	mode := ""
	var rootCert, cert, key string
	auth := authSettings{binding: "prefer"}
	for _, k := range slices.Sorted(maps.Keys(cfg.Params)) {
		v := cfg.Params[k]
		switch k {
		case "sslmode":
			switch v {
			case "disable", "require", "verify-ca", "verify-full":
				mode = v
			case "prefer", "allow":
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "TLS that may fall back to plaintext is refused: use disable, require, verify-ca or verify-full"}
			default:
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want disable, require, verify-ca or verify-full"}
			}
		case "sslrootcert":
			rootCert = v
		case "sslcert":
			cert = v
		case "sslkey":
			key = v
		case "channel_binding":
			switch v {
			case "disable", "prefer", "require":
				auth.binding = v
			default:
				return nil, &driver.ParamError{Key: k, Value: v, Reason: "want disable, prefer or require"}
			}
		case "require_auth":
			if err := checkRequireAuth(v); err != nil {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: err.Error()}
			}
			auth.require = v
		case "application_name", "search_path", "timezone":
			if strings.IndexByte(v, 0) >= 0 {
				return nil, &driver.ParamError{Key: k, Value: strings.ReplaceAll(v, "\x00", `\0`), Reason: "holds a NUL byte"}
			}
			c.runtime[k] = v
		case "statement_cache_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxStatementCacheSize {
				return nil, &driver.ParamError{Key: k, Value: v, Reason: fmt.Sprintf("want an integer from 0 (no cache) to %d", maxStatementCacheSize)}
			}
			c.cacheSize = n
		default:
			return nil, &driver.ParamError{Key: k, Reason: "unknown key", Valid: params}
		}
	}
	var err error
	if c.tls, c.mode, err = tlsConfig(cfg, mode, rootCert, cert, key); err != nil {
		return nil, err
	}
	switch cfg.AuthMode {
	case "", "internal":
	case "pki":
		if c.tls == nil || len(c.tls.Certificates) == 0 {
			return nil, &driver.ParamError{Key: "auth_mode", Value: "pki", Reason: "needs TLS with a client certificate (sslcert and sslkey, or tls_cert and tls_key)"}
		}
	default:
		return nil, &driver.ParamError{Key: "auth_mode", Value: cfg.AuthMode, Reason: "want internal or pki"}
	}
	if auth.binding == "require" && c.tls == nil {
		return nil, &driver.ParamError{Key: "channel_binding", Value: "require", Reason: "binds SCRAM to the TLS channel: needs TLS (sslmode=require or stronger)"}
	}
	c.wrap = testWrap
	if c.base, err = baseConfig(cfg, auth); err != nil {
		return nil, err
	}
	return c, nil
}

// authSettings are the DSN's authentication keys pgconn applies.
type authSettings struct {
	binding string // channel_binding: disable, prefer (default) or require
	require string // require_auth: libpq's list of methods the server may ask for ("" any)
}

// requireAuthMethods are the methods require_auth may name (libpq's, as
// pgconn accepts them), each optionally negated with "!".
var requireAuthMethods = []string{"password", "md5", "scram-sha-256", "gss", "sspi", "oauth", "none"}

// checkRequireAuth validates a require_auth value before pgconn sees it,
// so that the error names the key (pgconn's says the settings failed to
// parse).
func checkRequireAuth(v string) error {
	seen := map[string]bool{}
	for i, m := range strings.Split(v, ",") {
		m = strings.TrimSpace(m)
		if i > 0 && strings.HasPrefix(m, "!") != strings.HasPrefix(strings.TrimSpace(v), "!") {
			return errors.New("negated and plain methods cannot be mixed")
		}
		name := strings.TrimPrefix(m, "!")
		if !slices.Contains(requireAuthMethods, name) {
			return fmt.Errorf("want a comma-separated list of %s (each negated with ! to refuse it)", strings.Join(requireAuthMethods, ", "))
		}
		if seen[name] {
			return fmt.Errorf("%s is named twice", name)
		}
		seen[name] = true
	}
	return nil
}

// baseConfig parses the settings every connection shares. The connection
// string names every setting the PG* environment variables could give,
// so that they cannot change TLS, target roles, protocol or channel
// binding; Connect overrides the rest (host, TLS, runtime parameters).
func baseConfig(cfg driver.Config, auth authSettings) (*pgconn.Config, error) {
	var b strings.Builder
	kv := func(k, v string) {
		v = strings.ReplaceAll(v, `\`, `\\`)
		v = strings.ReplaceAll(v, `'`, `\'`)
		fmt.Fprintf(&b, "%s='%s' ", k, v)
	}
	kv("host", "localhost")
	kv("port", DefaultPort)
	if cfg.User != "" {
		kv("user", cfg.User)
	}
	if cfg.Namespace != "" {
		kv("dbname", cfg.Namespace)
	}
	for _, k := range []string{"sslrootcert", "sslcert", "sslkey", "sslpassword", "passfile"} {
		kv(k, "")
	}
	kv("require_auth", auth.require)
	kv("sslmode", "disable")
	kv("sslcertmode", "allow")
	kv("sslnegotiation", "postgres")
	kv("target_session_attrs", "any")
	kv("channel_binding", auth.binding)
	kv("min_protocol_version", "3.0")
	kv("max_protocol_version", "3.0")
	pc, err := pgconn.ParseConfig(b.String())
	if err != nil {
		// Not err's text: it may quote the connection string.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("postgres: parsing the connection settings failed (check the PGSERVICE and PGSERVICEFILE environment variables, which pgconn reads)")
		}
		return nil, fmt.Errorf("postgres: parsing the connection settings: %w", err)
	}
	pc.Password = cfg.Password // the DSN's, never PGPASSWORD's or a .pgpass file's
	pc.ValidateConnect = nil
	pc.Fallbacks = nil
	pc.TLSConfig = nil
	pc.ConnectTimeout = cfg.Timeout
	d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 5 * time.Minute}
	pc.DialFunc = d.DialContext
	pc.OnNotice = nil
	pc.OnNotification = nil
	return pc, nil
}

// tlsConfig builds the TLS template from sslmode, the ssl* files and the
// DSN's tls keys (cfg.TLS). TLS never falls back to plaintext: with TLS
// asked for (sslmode other than disable, or tls=true), a server without
// it is an error.
func tlsConfig(cfg driver.Config, mode, rootCert, cert, key string) (*tls.Config, string, error) {
	if mode == "" {
		switch {
		case cfg.TLS == nil && rootCert != "":
			mode = "verify-full"
		case cfg.TLS == nil && (cert != "" || key != ""):
			mode = "require"
		case cfg.TLS == nil:
			mode = "disable"
		case cfg.TLS.InsecureSkipVerify:
			mode = "require"
		default:
			mode = "verify-full"
		}
	}
	if mode == "disable" {
		if cfg.TLS != nil || rootCert != "" || cert != "" || key != "" {
			return nil, "", &driver.ParamError{Key: "sslmode", Value: mode, Reason: "conflicts with the TLS settings given (tls, tls_*, sslrootcert, sslcert, sslkey)"}
		}
		return nil, mode, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		t = cfg.TLS.Clone()
	}
	if cfg.TLS != nil && cfg.TLS.InsecureSkipVerify && (mode == "verify-ca" || mode == "verify-full") {
		return nil, "", &driver.ParamError{Key: "sslmode", Value: mode, Reason: "conflicts with tls_insecure_skip_verify=true"}
	}
	switch {
	case rootCert == "system":
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, "", &driver.ParamError{Key: "sslrootcert", Value: rootCert, Reason: err.Error()}
		}
		t.RootCAs, mode = pool, "verify-full" // as libpq does
	case rootCert != "":
		pem, err := os.ReadFile(rootCert)
		if err != nil {
			return nil, "", &driver.ParamError{Key: "sslrootcert", Value: rootCert, Reason: err.Error()}
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", &driver.ParamError{Key: "sslrootcert", Value: rootCert, Reason: "no PEM certificate found"}
		}
	}
	if (cert == "") != (key == "") {
		return nil, "", &driver.ParamError{Key: "sslcert", Value: cert, Reason: "sslcert and sslkey must be given together"}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, "", &driver.ParamError{Key: "sslcert", Value: cert, Reason: err.Error()}
		}
		t.Certificates = []tls.Certificate{pair}
	}
	if mode == "require" && t.RootCAs != nil {
		mode = "verify-ca" // a root certificate given: libpq verifies the chain
	}
	switch mode {
	case "require":
		t.InsecureSkipVerify = true
	case "verify-ca":
		// The chain is verified, the host name is not (libpq's verify-ca):
		// crypto/tls cannot do that by itself.
		roots := t.RootCAs
		t.InsecureSkipVerify = true
		t.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("postgres: sslmode=verify-ca: the server sent no certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("postgres: sslmode=verify-ca: bad server certificate: %w", err)
				}
				certs[i] = c
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range certs[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := certs[0].Verify(opts)
			return err
		}
	case "verify-full":
		t.InsecureSkipVerify = false
	}
	return t, mode, nil
}

// connector dials the nodes of one configured cluster.
type connector struct {
	cfg       driver.Config
	base      *pgconn.Config // parsed once; copied per connection
	tls       *tls.Config    // the template; nil: no TLS
	mode      string         // the effective sslmode
	runtime   map[string]string
	cacheSize int

	// names maps the addresses Resolve returned to the host names they
	// came from, for TLS verification (verify-full) and SNI.
	mu    sync.Mutex
	names map[string]string

	// reduced is set once a probe was refused the pg_control_* functions:
	// probes then do without them.
	reduced atomic.Bool

	// analyses caches analyze's answers by query (see connector.analyze).
	analyses  sync.Map
	nanalyses atomic.Int64

	// wrap, when set (by tests), wraps each connection's socket.
	wrap func(net.Conn) net.Conn
}

// testWrap is the wrap of the connectors opened while it is set (a test
// hook: tests count connections and round trips with it).
var testWrap func(net.Conn) net.Conn

// Backend implements driver.Connector.
func (c *connector) Backend() driver.Backend {
	return driver.Backend{System: "postgresql", Caps: caps}
}

// caps are the capabilities of every Conn: no CapMultiplex (a PostgreSQL
// connection runs one statement at a time). CapRequestTimeout: each
// statement is bounded by socket_timeout with a deadline on the socket
// (free, where a context per statement costs allocations and a timer); a
// statement that outlives it closes its connection. A context that ends
// first cancels the statement on the server and keeps the connection.
const caps = driver.CapPing | driver.CapResetSession | driver.CapValidate | driver.CapBatch | driver.CapTx |
	driver.CapInfo | driver.CapTopology | driver.CapClusterName | driver.CapRequestTimeout

// Resolve implements driver.Resolver: the default port is added and a host
// name stands for every address DNS gives it (the name is kept for TLS).
func (c *connector) Resolve(ctx context.Context, seed string) ([]string, error) {
	host, port := splitAddr(seed)
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]string{}
	}
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
		c.names[out[i]] = host
	}
	return out, nil
}

// splitAddr splits host[:port], the port defaulting to DefaultPort.
func splitAddr(addr string) (host, port string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return strings.Trim(addr, "[]"), DefaultPort
	}
	return host, port
}

// hostName is the name addr was resolved from, or addr's host.
func (c *connector) hostName(addr, host string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[addr]; ok {
		return n
	}
	return host
}

// Connect implements driver.Connector: one connection to the node at
// addr, with the connector's TLS settings and runtime parameters, and a
// context watcher that cancels a statement on the server when its context
// ends (the connection stays usable).
func (c *connector) Connect(ctx context.Context, addr string) (driver.Conn, error) {
	host, port := splitAddr(addr)
	addr = net.JoinHostPort(host, port)
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad port in address %s", addr)
	}
	pc := c.base.Copy()
	if c.cfg.Credentials != nil {
		// Asked for each connection: a token may have been rotated since
		// the last one (PostgreSQL checks a password at login only, so the
		// connections already open stay as they are).
		user, pass, err := c.cfg.Login(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		if user != "" {
			pc.User = user
		}
		pc.Password = pass
	}
	pc.Host, pc.Port = host, uint16(p)
	pc.Fallbacks, pc.ValidateConnect = nil, nil
	pc.TLSConfig = nil
	if c.tls != nil {
		t := c.tls.Clone()
		if t.ServerName == "" {
			name := c.hostName(addr, host)
			if c.mode == "verify-full" || net.ParseIP(name) == nil {
				t.ServerName = name
			}
		}
		pc.TLSConfig = t
	}
	pc.RuntimeParams = maps.Clone(c.runtime)
	h := &cancelHandler{grace: cancelGrace}
	pc.BuildContextWatcherHandler = func(pg *pgconn.PgConn) ctxwatch.Handler {
		h.pg = pg
		return h
	}
	pc.OnPgError = closeOnFatal
	if c.wrap != nil {
		pc.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, nc net.Conn) (net.Conn, error) { return c.wrap(nc), nil }
	}
	pg, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, c.connectError(addr, pc.User, err)
	}
	return newConn(c, pg, addr), nil
}

// connectError describes a failed connection: a refused password is an
// *AuthError; the message names the node and the user, never the password.
func (c *connector) connectError(addr, user string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		se := serverError(pe)
		switch pe.Code {
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return &AuthError{Addr: addr, User: user, Err: se}
		}
		return fmt.Errorf("postgres: connecting to %s as %q: %w", addr, user, se)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if inner := errors.Unwrap(ce); inner != nil {
			err = inner
		}
		// pgconn joins one error per address tried (one: there are no
		// fallbacks), which begins with the address ours names already.
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) == 1 {
			err = j.Unwrap()[0]
		}
		if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), addr+" ") {
			err = inner
		}
		// The client refused the server's authentication (require_auth,
		// channel_binding): a setting, not a fault another try can mend.
		// pgconn has no type for it, only these words.
		if msg := err.Error(); strings.HasPrefix(msg, "require_auth check failed") || strings.HasPrefix(msg, "channel binding check failed") {
			return &AuthError{Addr: addr, User: user, Err: err}
		}
	}
	return fmt.Errorf("postgres: connecting to %s as %q (sslmode=%s): %w", addr, user, c.mode, err)
}

// AuthError reports that the server refused the credentials, or that the
// client refused the server's way of checking them (require_auth,
// channel_binding). It never holds the password.
type AuthError struct {
	Addr string
	User string
	Err  error // the server's answer
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("postgres: authentication as %q at %s failed: %v", e.User, e.Addr, e.Err)
}

func (e *AuthError) Unwrap() []error { return []error{driver.ErrAuthFailed, e.Err} }
