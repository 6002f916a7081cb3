package sqlish

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDSNDefaults(t *testing.T) {
	c, err := ParseDSN("redis://127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Scheme = "redis"
	want.Hosts = []string{"127.0.0.1:7000"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %#v\nwant %#v", c, want)
	}
	// The table of DESIGN.md, field by field.
	checks := []struct {
		name     string
		got, def any
	}{
		{"cluster_name", c.ClusterName, ""},
		{"auth_mode", c.AuthMode, AuthInternal},
		{"timeout", c.Timeout, time.Second},
		{"idle_timeout", c.IdleTimeout, 55 * time.Second},
		{"max_conns_per_node", c.MaxConnsPerNode, 100},
		{"min_conns_per_node", c.MinConnsPerNode, 0},
		{"max_idle_conns_per_node", c.MaxIdleConnsPerNode, 0}, // 0 = same as max
		{"max_connecting", c.MaxConnecting, 2},
		{"max_conn_lifetime", c.MaxConnLifetime, time.Duration(0)},
		{"tend_interval", c.TendInterval, time.Second},
		{"use_services_alternate", c.UseServicesAlternate, false},
		{"socket_timeout", c.Policy.SocketTimeout, 5 * time.Second},
		{"total_timeout", c.Policy.TotalTimeout, 10 * time.Second},
		{"max_retries", c.Policy.MaxRetries, 2},
		{"sleep_between_retries", c.Policy.SleepBetweenRetries, time.Millisecond},
		{"read_preference", c.Policy.ReadPreference, Primary},
		{"tls", c.TLS.Enabled, false},
	}
	for _, ck := range checks {
		if ck.got != ck.def {
			t.Errorf("%s = %v, want default %v", ck.name, ck.got, ck.def)
		}
	}
}

func TestParseDSNEveryKey(t *testing.T) {
	dsn := "redis://alice:s3cr%40t@h1:7000,h2:7001/ns1?" + strings.Join([]string{
		"cluster_name=prod", "auth_mode=pki", "timeout=250ms", "idle_timeout=30s",
		"max_conns_per_node=20", "min_conns_per_node=3", "max_idle_conns_per_node=7", "max_connecting=4",
		"max_conn_lifetime=1h", "tend_interval=2s", "use_services_alternate=true", "socket_timeout=300",
		"total_timeout=3s", "max_retries=5", "sleep_between_retries=10ms", "read_preference=prefer_replica",
		"tls=true", "tls_ca=/ca.pem", "tls_cert=/c.pem", "tls_key=/k.pem", "tls_server_name=db.local",
		"tls_insecure_skip_verify=true", "log_level=trace", "nodes=3",
	}, "&")
	c, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Scheme = "redis"
	want.Hosts = []string{"h1:7000", "h2:7001"}
	want.Namespace = "ns1"
	want.User, want.Password = "alice", "s3cr@t"
	want.ClusterName = "prod"
	want.AuthMode = AuthPKI
	want.Timeout = 250 * time.Millisecond
	want.IdleTimeout = 30 * time.Second
	want.MaxConnsPerNode, want.MinConnsPerNode, want.MaxIdleConnsPerNode, want.MaxConnecting = 20, 3, 7, 4
	want.MaxConnLifetime = time.Hour
	want.TendInterval = 2 * time.Second
	want.UseServicesAlternate = true
	want.Policy = Policy{SocketTimeout: 300 * time.Millisecond, TotalTimeout: 3 * time.Second, MaxRetries: 5,
		SleepBetweenRetries: 10 * time.Millisecond, ReadPreference: PreferReplica}
	want.TLS = TLSConfig{Enabled: true, CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem",
		ServerName: "db.local", InsecureSkipVerify: true}
	want.LogLevel = LogTrace
	want.Params = map[string]string{"nodes": "3"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if len(Keys()) != 25 {
		t.Errorf("Keys() has %d keys, the DSN above sets 25", len(Keys()))
	}
	// user and password may also come as keys.
	c, err = ParseDSN("redis://h?user=bob&password=pw")
	if err != nil || c.User != "bob" || c.Password != "pw" {
		t.Fatalf("user/password keys: %v %q %q", err, c.User, c.Password)
	}
}

func TestParseDSNHosts(t *testing.T) {
	for _, tc := range []struct {
		dsn   string
		hosts []string
		err   string
	}{
		{dsn: "redis://[::1]:7000", hosts: []string{"[::1]:7000"}},
		{dsn: "redis://[::1]:7000,[fe80::1]:7001,10.0.0.1:7002", hosts: []string{"[::1]:7000", "[fe80::1]:7001", "10.0.0.1:7002"}},
		{dsn: "redis://[::1]", hosts: []string{"[::1]"}},
		{dsn: "memory://demo", hosts: []string{"demo"}},
		{dsn: "redis://", err: "missing host"},
		{dsn: "redis:///ns", err: "missing host"},
		{dsn: "redis://u:p@", err: "missing host"},
		{dsn: "127.0.0.1:7000", err: "want scheme://"},
		{dsn: "redis://h1,,h2", err: "empty host"},
		{dsn: "redis://::1:7000", err: "brackets"},
		{dsn: "redis://[::1:7000", err: "missing ]"},
		{dsn: "redis://[127.0.0.1]:7000", err: "not an IPv6 address"},
		{dsn: "redis://h:0", err: "port \"0\""},
		{dsn: "redis://h:70000", err: "port \"70000\""},
		{dsn: "redis://h:x", err: "port \"x\""},
		{dsn: "redis://:7000", err: "missing host name"},
	} {
		c, err := ParseDSN(tc.dsn)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDSN(%q) error = %v, want one containing %q", tc.dsn, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(c.Hosts, tc.hosts) {
			t.Errorf("ParseDSN(%q) = %v, %v; want hosts %v", tc.dsn, c.Hosts, err, tc.hosts)
		}
	}
}

func TestParseDSNBadValues(t *testing.T) {
	for _, tc := range []struct{ query, key, want string }{
		{"timeout=abc", "timeout", "want a duration"},
		{"timeout=-1s", "timeout", "want a duration"},
		{"idle_timeout=5parsecs", "idle_timeout", "want a duration"},
		{"max_conns_per_node=-1", "max_conns_per_node", "non-negative integer"},
		{"max_retries=two", "max_retries", "non-negative integer"},
		{"use_services_alternate=yes", "use_services_alternate", "true or false"},
		{"read_preference=nearest", "read_preference", "primary, prefer_replica, replica"},
		{"auth_mode=kerberos", "auth_mode", "want one of internal, pki"},
		{"auth_mode=external", "auth_mode", "want one of internal, pki"}, // removed: no driver used it
		{"tls=maybe", "tls", "true or false"},
	} {
		_, err := ParseDSN("redis://h:1?" + tc.query)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), fmt.Sprintf("%q", tc.key)) {
			t.Errorf("%s: error %v, want a ConfigError naming %q and saying %q", tc.query, err, tc.key, tc.want)
		}
	}
}

// Reserved characters are fine percent-encoded, and an '@' in a key's
// value is not taken for the end of the user info.
func TestDSNReservedCharacters(t *testing.T) {
	c, err := ParseDSN("redis://alice:a%2Fb%3Fc%23d%40e@h1:7000/0?client_name=me@host")
	if err != nil {
		t.Fatal(err)
	}
	if c.Password != "a/b?c#d@e" || c.Hosts[0] != "h1:7000" || c.Namespace != "0" || c.Params["client_name"] != "me@host" {
		t.Fatalf("parsed %q %v %q %v", c.Password, c.Hosts, c.Namespace, c.Params)
	}
	c, err = ParseDSN("redis://alice:p@ss@h1:7000")
	if err != nil || c.Password != "p@ss" || c.Hosts[0] != "h1:7000" {
		t.Fatalf("an '@' in the password: %q %v %v", c.Password, c.Hosts, err)
	}
}

// A duration too long for time.Duration is an error, not a wrap-around
// (18446744073710 ms became 448µs).
func TestDurationOverflow(t *testing.T) {
	for _, v := range []string{"18446744073710", "9223372036855", "99999999999999999999", "3000000h"} {
		_, err := ParseDSN("redis://h?total_timeout=" + v)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "total_timeout" {
			t.Errorf("total_timeout=%s: %v; want a ConfigError", v, err)
		}
	}
	c, err := ParseDSN("redis://h?total_timeout=9223372036854")
	if err != nil || c.Policy.TotalTimeout <= 0 {
		t.Errorf("the longest duration in milliseconds: %v, %v", c.Policy.TotalTimeout, err)
	}
}

func TestBareIntegerDurationIsMilliseconds(t *testing.T) {
	c, err := ParseDSN("redis://h?timeout=1500&total_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 1500*time.Millisecond || c.Policy.TotalTimeout != 0 {
		t.Fatalf("timeout=%v total_timeout=%v", c.Timeout, c.Policy.TotalTimeout)
	}
}

func TestPasswordRedacted(t *testing.T) {
	const secret = "hunter2-Secret"
	c, err := ParseDSN("redis://alice:" + secret + "@h1:7000?max_retries=4&custom=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, &c)} {
		if strings.Contains(s, secret) {
			t.Fatalf("password printed: %s", s)
		}
	}
	// A key no driver knows may be a misspelled secret: its value is not
	// shown. A key the driver lists is.
	if got, want := c.String(), "redis://alice:xxxxx@h1:7000?custom=xxxxx&max_retries=4"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	m, _ := ParseDSN("memory://x?nodes=3&passwd=" + secret)
	if got, want := m.String(), "memory://x?nodes=3&passwd=xxxxx"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	// Every verb, not only those that call String.
	for _, s := range []string{fmt.Sprintf("%d %x %q %10v", c, c, c, c)} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Fatalf("password printed: %s", s)
		}
	}
	db, err := OpenConfig("memory", func() Config { c, _ := ParseDSN("memory://alice:" + secret + "@pw-db"); return c }())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{fmt.Sprint(db), fmt.Sprintf("%v %+v %#v %d %s %x", db, db, db, db, db, db)} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Fatalf("a DB printed its password: %s", s)
		}
	}
	// Errors about the password or elsewhere in the DSN never echo it.
	for _, dsn := range []string{
		"redis://alice:" + secret + "@h1:7000?timeout=bad",
		"redis://alice:" + secret + "@",
		"redis://alice:" + secret + "@h:99999",
		"redis://h?password=" + secret + "&timeout=x",
		"redis://alice:" + secret + "%zz@h",
		// Reserved characters in the password, not percent-encoded: they
		// would cut it into a host, a namespace or a key.
		"redis://alice:a/" + secret + "@h1:7000",
		"redis://alice:a?" + secret + "@h1:7000",
		"redis://alice:a#" + secret + "@h1:7000/0",
		"redis://alice:" + secret + "/x@h1:7000?timeout=1s",
		"redis://h?password=" + secret + "%zz",
	} {
		_, err := ParseDSN(dsn)
		if err == nil {
			t.Fatalf("ParseDSN(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	// And neither does an Open failure.
	_, err = Open("memory", "memory://alice:"+secret+"@h?bogus=1")
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Open error %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := OpenConfig("memory", Config{Hosts: []string{"x"}}); err == nil || !strings.Contains(err.Error(), "DefaultConfig") {
		t.Errorf("zero Config accepted: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Hosts = nil }, "missing host"},
		{func(c *Config) { c.Hosts = []string{"::1"} }, "brackets"},
		{func(c *Config) { c.Timeout = 0 }, `"timeout"`},
		{func(c *Config) { c.Timeout = -time.Second }, `"timeout"`},
		{func(c *Config) { c.TendInterval = 0 }, `"tend_interval"`},
		{func(c *Config) { c.MaxConnecting = 0 }, `"max_connecting"`},
		{func(c *Config) { c.MaxConnsPerNode = -2 }, `"max_conns_per_node"`},
		{func(c *Config) { c.MinConnsPerNode = 200 }, "exceeds max_conns_per_node (100)"},
		{func(c *Config) { c.Policy.ReadPreference = "closest" }, `"read_preference"`},
		{func(c *Config) { c.TLS.CertFile = "/c.pem" }, "tls_cert and tls_key"},
		{func(c *Config) { c.AuthMode = AuthPKI }, "needs tls_cert"},
		{func(c *Config) { c.TLS.Enabled, c.TLS.CAFile = true, "/does/not/exist.pem" }, `"tls_ca"`},
		{func(c *Config) { c.ClusterName = "other"; c.Params = map[string]string{"x": "1"} }, `unknown key "x"`},
	} {
		c := DefaultConfig()
		c.Hosts = []string{"demo"}
		tc.mod(&c)
		db, err := OpenConfig("memory", c)
		if err == nil {
			db.Close()
			t.Errorf("config %v accepted, want error containing %s", c, tc.want)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q, want one containing %s", err, tc.want)
		}
	}
}

func TestUnknownKeyListsValidKeys(t *testing.T) {
	_, err := Open("memory", "memory://demo?max_con=5")
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, want := range []string{`"max_con"`, "unknown key", "max_conns_per_node", "tend_interval", "memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
