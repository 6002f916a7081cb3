package sqlish

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tendril-db/tendril/driver"
)

// ReadPreference says which nodes may serve reads.
type ReadPreference string

const (
	Primary       ReadPreference = "primary"        // reads go to the partition's primary
	PreferReplica ReadPreference = "prefer_replica" // a replica when one is up, else the primary
	Replica       ReadPreference = "replica"        // replicas only
)

// Credentials supplies the user and password of each new connection; see
// Config.Credentials and driver.Credentials.
type Credentials = driver.Credentials

// CredentialsFunc is a function used as Credentials.
type CredentialsFunc = driver.CredentialsFunc

// CredentialsError reports that Config.Credentials failed; it wraps
// ErrAuthFailed and the provider's error.
type CredentialsError = driver.CredentialsError

// AuthMode says how a client proves who it is. What a driver sends is
// what the server asks for (a password, a certificate); AuthPKI makes a
// missing client certificate a configuration error rather than a refused
// login.
type AuthMode string

const (
	AuthInternal AuthMode = "internal" // user and password (or Credentials), and a client certificate if one is given
	AuthPKI      AuthMode = "pki"      // a TLS client certificate is required (tls_cert and tls_key)
)

// Policy is the default operation policy.
type Policy struct {
	// SocketTimeout bounds one attempt on one node (0: no bound but the
	// total timeout).
	SocketTimeout time.Duration
	// TotalTimeout bounds the whole operation, retries and waits for the
	// topology included, unless the caller's context ends earlier (0: only
	// the context bounds it). Within it, a statement that did not run (no
	// connection, a node down, a failover under way, a server that
	// refused it before running it) is tried again as often as it takes.
	TotalTimeout time.Duration
	// MaxRetries is the number of retries of a statement that may have run
	// (a timeout, a connection lost mid-request), made only when the
	// statement is idempotent: at most 1 + MaxRetries such attempts. When
	// neither TotalTimeout nor the context bounds the operation, every
	// retry counts.
	MaxRetries int
	// SleepBetweenRetries is the first pause between attempts; it doubles
	// with each retry up to max(SleepBetweenRetries, 100ms), with jitter. A
	// redirect (MOVED/ASK) is followed without a pause; an operation
	// waiting for the topology is woken by the tender's next tend.
	SleepBetweenRetries time.Duration
	// ReadPreference says where reads may go.
	ReadPreference ReadPreference
}

// TLSConfig describes TLS to the nodes.
type TLSConfig struct {
	Enabled            bool
	CAFile             string // PEM bundle of CAs to trust (default: system pool)
	CertFile, KeyFile  string // client certificate, for mutual TLS / pki auth
	ServerName         string // overrides the name checked in the server certificate
	InsecureSkipVerify bool   // for tests only
}

// Config configures a DB. Create one with DefaultConfig or ParseDSN and
// change fields as needed; OpenConfig refuses a Config made otherwise, since
// a zero field cannot tell "default" from "zero".
type Config struct {
	Scheme    string   // the DSN scheme; informational
	Hosts     []string // seed nodes as host:port; IPv6 as [::1]:7000
	Namespace string   // the DSN path (database, keyspace or namespace)

	User     string
	Password string // never printed: String redacts it
	AuthMode AuthMode
	// Credentials, when set, gives the user and password (or token) of
	// every new connection, in place of User and Password: for
	// credentials that rotate (cloud IAM tokens, rotated passwords). An
	// empty user it returns keeps User. Its error fails the connection
	// with a *CredentialsError (errors.Is ErrAuthFailed), never retried.
	// Redis connections also log in again while open when its answer
	// changes; see driver.Credentials. Config.String does not show it.
	Credentials Credentials

	ClusterName          string        // refuse nodes reporting another name
	Timeout              time.Duration // connect and tend-request timeout
	IdleTimeout          time.Duration // close connections idle longer (0: never)
	MaxConnsPerNode      int           // hard cap per node (0: unlimited)
	MinConnsPerNode      int           // kept open per node in the background
	MaxIdleConnsPerNode  int           // idle kept after use (0: MaxConnsPerNode)
	MaxConnecting        int           // dials in flight per node
	MaxConnLifetime      time.Duration // recycle older connections, with jitter (0: off)
	TendInterval         time.Duration // topology refresh period
	UseServicesAlternate bool          // use the alternate addresses nodes advertise

	Policy Policy
	TLS    TLSConfig

	// Params holds the driver-specific keys; the driver rejects the ones
	// it does not know.
	Params map[string]string

	// Logger receives node changes (added, down, removed), cleared pools,
	// tend overruns, refused credentials, connections closed out of sync
	// and, at LevelTrace, one record per operation. nil discards them.
	// Records never hold a password or a statement's values.
	Logger *slog.Logger
	// LogLevel is the least level passed on to Logger (default LogWarn).
	LogLevel LogLevel

	// TracerProvider makes one CLIENT span per operation (nil: the global
	// provider, otel.GetTracerProvider, followed when it is set later).
	TracerProvider trace.TracerProvider
	// MeterProvider records the operation, pool and topology metrics (nil:
	// the global provider, otel.GetMeterProvider).
	MeterProvider metric.MeterProvider

	created bool
}

// DefaultConfig returns a Config holding every default.
func DefaultConfig() Config {
	return Config{
		AuthMode:        AuthInternal,
		Timeout:         time.Second,
		IdleTimeout:     55 * time.Second,
		MaxConnsPerNode: 100,
		MaxConnecting:   2,
		TendInterval:    time.Second,
		LogLevel:        LogWarn,
		Policy: Policy{
			SocketTimeout:       5 * time.Second,
			TotalTimeout:        10 * time.Second,
			MaxRetries:          2,
			SleepBetweenRetries: time.Millisecond,
			ReadPreference:      Primary,
		},
		created: true,
	}
}

// key describes one configuration key: how to read it into a Config and
// how to print it back.
type key struct {
	name string
	set  func(c *Config, v string) error
	get  func(c *Config) string
}

func durationKey(name string, f func(*Config) *time.Duration) key {
	return key{name,
		func(c *Config, v string) error {
			d, err := parseDuration(v)
			if err == nil {
				*f(c) = d
			}
			return err
		},
		func(c *Config) string { return f(c).String() },
	}
}

func intKey(name string, f func(*Config) *int) key {
	return key{name,
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errors.New("want a non-negative integer")
			}
			*f(c) = n
			return nil
		},
		func(c *Config) string { return strconv.Itoa(*f(c)) },
	}
}

func boolKey(name string, f func(*Config) *bool) key {
	return key{name,
		func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			*f(c) = b
			return nil
		},
		func(c *Config) string { return strconv.FormatBool(*f(c)) },
	}
}

func stringKey(name string, f func(*Config) *string) key {
	return key{name,
		func(c *Config, v string) error { *f(c) = v; return nil },
		func(c *Config) string { return *f(c) },
	}
}

func enumKey[T ~string](name string, f func(*Config) *T, valid ...T) key {
	return key{name,
		func(c *Config, v string) error {
			if !slices.Contains(valid, T(v)) {
				s := make([]string, len(valid))
				for i, x := range valid {
					s[i] = string(x)
				}
				return fmt.Errorf("want one of %s", strings.Join(s, ", "))
			}
			*f(c) = T(v)
			return nil
		},
		func(c *Config) string { return string(*f(c)) },
	}
}

// keys lists every key of the DSN, in the order of the reference table.
var keys = []key{
	stringKey("cluster_name", func(c *Config) *string { return &c.ClusterName }),
	enumKey("auth_mode", func(c *Config) *AuthMode { return &c.AuthMode }, AuthInternal, AuthPKI),
	stringKey("user", func(c *Config) *string { return &c.User }),
	stringKey("password", func(c *Config) *string { return &c.Password }),
	durationKey("timeout", func(c *Config) *time.Duration { return &c.Timeout }),
	durationKey("idle_timeout", func(c *Config) *time.Duration { return &c.IdleTimeout }),
	intKey("max_conns_per_node", func(c *Config) *int { return &c.MaxConnsPerNode }),
	intKey("min_conns_per_node", func(c *Config) *int { return &c.MinConnsPerNode }),
	intKey("max_idle_conns_per_node", func(c *Config) *int { return &c.MaxIdleConnsPerNode }),
	intKey("max_connecting", func(c *Config) *int { return &c.MaxConnecting }),
	durationKey("max_conn_lifetime", func(c *Config) *time.Duration { return &c.MaxConnLifetime }),
	durationKey("tend_interval", func(c *Config) *time.Duration { return &c.TendInterval }),
	boolKey("use_services_alternate", func(c *Config) *bool { return &c.UseServicesAlternate }),
	durationKey("socket_timeout", func(c *Config) *time.Duration { return &c.Policy.SocketTimeout }),
	durationKey("total_timeout", func(c *Config) *time.Duration { return &c.Policy.TotalTimeout }),
	intKey("max_retries", func(c *Config) *int { return &c.Policy.MaxRetries }),
	durationKey("sleep_between_retries", func(c *Config) *time.Duration { return &c.Policy.SleepBetweenRetries }),
	enumKey("read_preference", func(c *Config) *ReadPreference { return &c.Policy.ReadPreference }, Primary, PreferReplica, Replica),
	boolKey("tls", func(c *Config) *bool { return &c.TLS.Enabled }),
	stringKey("tls_ca", func(c *Config) *string { return &c.TLS.CAFile }),
	stringKey("tls_cert", func(c *Config) *string { return &c.TLS.CertFile }),
	stringKey("tls_key", func(c *Config) *string { return &c.TLS.KeyFile }),
	stringKey("tls_server_name", func(c *Config) *string { return &c.TLS.ServerName }),
	boolKey("tls_insecure_skip_verify", func(c *Config) *bool { return &c.TLS.InsecureSkipVerify }),
	enumKey("log_level", func(c *Config) *LogLevel { return &c.LogLevel }, LogOff, LogError, LogWarn, LogInfo, LogDebug, LogTrace),
}

// Keys returns the names of the configuration keys sqlish itself knows.
func Keys() []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

func lookupKey(name string) (key, bool) {
	for _, k := range keys {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

// parseDuration accepts Go durations ("250ms", "2s") and, as the Aerospike
// configuration does, bare integers as milliseconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("too long: at most %dms (%v)", math.MaxInt64/int64(time.Millisecond), time.Duration(math.MaxInt64).Truncate(time.Millisecond))
		}
		return time.Duration(n) * time.Millisecond, nil
	} else if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("too long: at most %dms", math.MaxInt64/int64(time.Millisecond))
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("want a duration such as 500ms or 2s (a bare number is milliseconds)")
	}
	return d, nil
}

// ConfigError reports a bad DSN or Config.
type ConfigError struct {
	Key    string   // the offending key, "" when the problem is elsewhere
	Value  string   // the offending value; never a password
	Reason string   // what is wrong
	Valid  []string // for an unknown key: the keys that are known
	Driver string   // for an unknown key: the driver that was asked
}

func (e *ConfigError) Error() string {
	switch {
	case e.Valid != nil:
		return fmt.Sprintf("sqlish: %s %q for driver %s (valid keys: %s)", e.Reason, e.Key, e.Driver, strings.Join(e.Valid, ", "))
	case e.Key == "":
		return "sqlish: bad DSN: " + e.Reason
	case e.Value == "":
		return fmt.Sprintf("sqlish: bad config key %q: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("sqlish: bad value %q for key %q: %s", e.Value, e.Key, e.Reason)
}

// ParseDSN parses a data source name of the form
//
//	scheme://[user[:password]@]host1:port1[,host2:port2...][/namespace][?key=value&...]
//
// into a Config holding the defaults for every key not given. Keys sqlish
// does not know are kept in Params for the driver to check.
func ParseDSN(dsn string) (Config, error) {
	c := DefaultConfig()
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok || scheme == "" {
		return c, &ConfigError{Reason: "want scheme://host[:port][,host:port...][/namespace][?key=value...]"}
	}
	c.Scheme = scheme
	if err := checkUserInfo(rest); err != nil {
		return c, err
	}
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if c.User, err = url.PathUnescape(user); err != nil {
			return c, &ConfigError{Key: "user", Reason: "bad %-escape in the user name"}
		}
		if hasPass {
			if c.Password, err = url.PathUnescape(pass); err != nil {
				return c, &ConfigError{Key: "password", Reason: "bad %-escape in the password"}
			}
		}
	}
	if authority != "" {
		for _, h := range strings.Split(authority, ",") {
			if err := checkHost(h); err != nil {
				return c, err
			}
			c.Hosts = append(c.Hosts, h)
		}
	}
	if len(c.Hosts) == 0 {
		return c, &ConfigError{Reason: "missing host: want at least one host[:port] after " + scheme + "://"}
	}
	ns, err := url.PathUnescape(path)
	if err != nil {
		return c, &ConfigError{Reason: "bad %-escape in the namespace"}
	}
	c.Namespace = ns

	values, err := url.ParseQuery(query)
	if err != nil {
		// Not err's text: it quotes the bad part, which may be a secret.
		return c, &ConfigError{Reason: "bad query string: check its %-escapes and separators (key=value&key=value)"}
	}
	names := slices.Sorted(maps.Keys(values))
	for _, name := range names {
		vs := values[name]
		v := vs[len(vs)-1]
		k, ok := lookupKey(name)
		if !ok {
			if c.Params == nil {
				c.Params = map[string]string{}
			}
			c.Params[name] = v
			continue
		}
		if err := k.set(&c, v); err != nil {
			shown := v
			if name == "password" {
				shown = ""
			}
			return c, &ConfigError{Key: name, Value: shown, Reason: err.Error()}
		}
	}
	return c, nil
}

// checkUserInfo refuses a DSN whose user info holds a raw '/', '?' or
// '#': by the URL rules those end the host list, so the password would be
// cut in two and its pieces taken for a host, the namespace or a key, and
// shown as such (in an error, or by Config.String). They must be
// percent-encoded (%2F, %3F, %23). The error never quotes the DSN. rest is
// the DSN after "scheme://".
func checkUserInfo(rest string) error {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 || strings.IndexByte(rest[:end], '@') >= 0 {
		return nil // no '@' could be cut off, or the user info ends before
	}
	at := strings.IndexByte(rest[end:], '@')
	if at < 0 || strings.ContainsAny(rest[end:end+at], "=&") {
		return nil // no user info, or an '@' inside a key's value
	}
	return &ConfigError{Key: "password", Reason: "the user info before '@' holds a raw '/', '?' or '#': percent-encode them (%2F, %3F, %23)"}
}

// checkHost validates one host[:port] of a DSN.
func checkHost(h string) error {
	if h == "" {
		return &ConfigError{Reason: "empty host in the host list"}
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return &ConfigError{Reason: fmt.Sprintf("host %q: missing ] after IPv6 address", h)}
		}
		host = h[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return &ConfigError{Reason: fmt.Sprintf("host %q: %q is not an IPv6 address", h, host)}
		}
		switch rest := h[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return &ConfigError{Reason: fmt.Sprintf("host %q: unexpected %q after ]", h, rest)}
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		if strings.Count(h, ":") > 1 {
			return &ConfigError{Reason: fmt.Sprintf("host %q: put IPv6 addresses in brackets, e.g. [::1]:7000", h)}
		}
		host, port = h[:i], h[i+1:]
	}
	if host == "" {
		return &ConfigError{Reason: fmt.Sprintf("host %q: missing host name", h)}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return &ConfigError{Reason: fmt.Sprintf("host %q: port %q is not a number from 1 to 65535", h, port)}
		}
	}
	return nil
}

// validate checks the values that are wrong whatever the driver.
func (c *Config) validate() error {
	if !c.created {
		return &ConfigError{Reason: "Config must be created by DefaultConfig or ParseDSN"}
	}
	if len(c.Hosts) == 0 {
		return &ConfigError{Reason: "missing host: Config.Hosts is empty"}
	}
	for _, h := range c.Hosts {
		if err := checkHost(h); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if k.name == "password" {
			continue
		}
		v := k.get(c)
		if err := k.set(new(Config), v); err != nil {
			return &ConfigError{Key: k.name, Value: v, Reason: err.Error()}
		}
	}
	if c.Timeout == 0 {
		return &ConfigError{Key: "timeout", Value: "0s", Reason: "must be positive"}
	}
	if c.TendInterval == 0 {
		return &ConfigError{Key: "tend_interval", Value: "0s", Reason: "must be positive"}
	}
	if c.MaxConnecting == 0 {
		return &ConfigError{Key: "max_connecting", Value: "0", Reason: "must be at least 1"}
	}
	if c.MaxConnsPerNode > 0 && c.MinConnsPerNode > c.MaxConnsPerNode {
		return &ConfigError{Key: "min_conns_per_node", Value: strconv.Itoa(c.MinConnsPerNode),
			Reason: fmt.Sprintf("exceeds max_conns_per_node (%d)", c.MaxConnsPerNode)}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return &ConfigError{Key: "tls_cert", Reason: "tls_cert and tls_key must be given together"}
	}
	if tlsOff := !c.TLS.Enabled && c.TLS.CAFile == "" && c.TLS.CertFile == ""; tlsOff {
		// Without TLS these would be dropped without a word.
		switch {
		case c.TLS.ServerName != "":
			return &ConfigError{Key: "tls_server_name", Value: c.TLS.ServerName, Reason: "has no effect without tls=true (or tls_ca, tls_cert)"}
		case c.TLS.InsecureSkipVerify:
			return &ConfigError{Key: "tls_insecure_skip_verify", Value: "true", Reason: "has no effect without tls=true (or tls_ca, tls_cert)"}
		}
	}
	if c.AuthMode == AuthPKI && c.TLS.CertFile == "" {
		return &ConfigError{Key: "auth_mode", Value: "pki", Reason: "needs tls_cert and tls_key"}
	}
	return nil
}

// tlsConfig builds the *tls.Config the TLS keys describe, nil when TLS is
// off.
func (c *Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.Enabled && t.CAFile == "" && t.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &ConfigError{Key: "tls_ca", Reason: err.Error()}
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Key: "tls_ca", Value: t.CAFile, Reason: "no PEM certificate found"}
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &ConfigError{Key: "tls_cert", Reason: err.Error()}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// String returns the Config as a DSN holding the hosts, the namespace and
// every key whose value differs from the default. The password is shown as
// "xxxxx".
func (c Config) String() string {
	var b strings.Builder
	scheme := c.Scheme
	if scheme == "" {
		scheme = "tendril"
	}
	b.WriteString(scheme + "://")
	if c.User != "" || c.Password != "" {
		b.WriteString(url.PathEscape(c.User))
		if c.Password != "" {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	b.WriteString(strings.Join(c.Hosts, ","))
	if c.Namespace != "" {
		b.WriteString("/" + url.PathEscape(c.Namespace))
	}
	def := DefaultConfig()
	q := url.Values{}
	for _, k := range keys {
		if k.name == "user" || k.name == "password" {
			continue
		}
		if v := k.get(&c); v != k.get(&def) {
			q.Set(k.name, v)
		}
	}
	for k, v := range c.Params {
		if !driver.KnownParam(c.Scheme, k) {
			// A key the driver does not know may be a misspelled secret
			// (passwd=...): its value is not shown.
			v = "xxxxx"
		}
		q.Set(k, v)
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// GoString is String, so that %#v cannot print the password either.
func (c Config) GoString() string { return "sqlish.Config(" + c.String() + ")" }

// Format prints String (GoString for %#v) whatever the verb: printed
// field by field (%d, %x...) the Config would show its password.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// driverConfig is the part of c a driver gets.
func (c *Config) driverConfig() (driver.Config, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return driver.Config{}, err
	}
	return driver.Config{
		Scheme:      c.Scheme,
		Hosts:       slices.Clone(c.Hosts),
		User:        c.User,
		Password:    c.Password,
		Namespace:   c.Namespace,
		ClusterName: c.ClusterName,
		AuthMode:    string(c.AuthMode),
		Timeout:     c.Timeout,
		TLS:         tc,
		Params:      maps.Clone(c.Params),

		ReplicaReads:  c.Policy.ReadPreference != Primary,
		SocketTimeout: c.Policy.SocketTimeout,
		Credentials:   c.Credentials,
	}, nil
}
