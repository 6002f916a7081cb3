package postgres

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/internal/pgtest"
	"github.com/tendril-db/tendril/sqlish"
)

// TestTLS runs against a server with TLS whose certificate names db.test
// (not 127.0.0.1): sslmode=require and verify-ca connect over TLS,
// verify-full refuses the address unless tls_server_name gives the name,
// an unknown CA is refused, and a cancel request works over TLS.
func TestTLS(t *testing.T) {
	dir, ca1, ca2 := certs(t)
	srv := pgtest.StartPrimary(t, pgtest.WithConfig("ssl = on",
		"ssl_cert_file = '"+filepath.Join(dir, "server.crt")+"'", "ssl_key_file = '"+filepath.Join(dir, "server.key")+"'"))
	c := ctx(t)
	for _, tc := range []struct {
		params []string
		fail   string // what the error says; "" to connect
	}{
		{[]string{"sslmode=require"}, ""},
		{[]string{"sslmode=verify-ca", "sslrootcert=" + ca1}, ""},
		{[]string{"sslmode=verify-ca", "sslrootcert=" + ca2}, "unknown authority"},
		{[]string{"sslmode=require", "sslrootcert=" + ca2}, "unknown authority"}, // a root certificate: the chain is verified
		{[]string{"sslmode=verify-full", "sslrootcert=" + ca1}, "cannot validate certificate for 127.0.0.1"},
		{[]string{"sslrootcert=" + ca1}, "cannot validate certificate for 127.0.0.1"}, // verify-full by default
		{[]string{"tls=true", "tls_ca=" + ca1}, "cannot validate certificate for 127.0.0.1"},
		{[]string{"tls=true", "tls_ca=" + ca1, "tls_server_name=db.test"}, ""},
		{[]string{"sslmode=verify-full", "tls=true", "tls_ca=" + ca1, "tls_server_name=db.test"}, ""},
	} {
		cctx, cancel := context.WithTimeout(c, 10*time.Second)
		db, err := sqlish.Connect(cctx, "postgres", srv.DSN(tc.params...))
		cancel()
		if tc.fail != "" {
			if err == nil {
				db.Close()
				t.Errorf("%v: connected, want an error about %s", tc.params, tc.fail)
			} else if !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%v: %v, want it to say %s", tc.params, err, tc.fail)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.params, err)
			continue
		}
		var ssl bool
		if err := db.QueryRow(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Errorf("%v: ssl %v, %v", tc.params, ssl, err)
		}
		db.Close()
	}
	// A cancel request goes over TLS too.
	db := connect(t, srv.DSN("sslmode=require", "max_conns_per_node=1"))
	var pid, again int
	db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&pid)
	cctx, cancel := context.WithTimeout(c, 50*time.Millisecond)
	start := time.Now()
	_, err := db.Exec(cctx, "SELECT pg_sleep(10)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("cancelled over TLS: %v after %v", err, time.Since(start))
	}
	if err := db.QueryRow(c, "SELECT pg_backend_pid()").Scan(&again); err != nil || again != pid {
		t.Fatalf("after a cancel over TLS: backend %d (%v), was %d", again, err, pid)
	}
}

// certs writes two CAs, a server certificate for db.test and a client
// certificate for certuser (client.crt, client.key) signed by the first,
// readable by the user the servers run as; it returns the directory and
// the CA files.
func certs(t *testing.T) (dir, ca1, ca2 string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "tendril-pg-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("postgres"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	write := func(name string, block *pem.Block, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), mode); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			os.Chown(p, uid, gid)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	var caCerts [2]*x509.Certificate
	var caKeys [2]*ecdsa.PrivateKey
	for i := range caCerts {
		caKeys[i] = newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "tendril test CA " + strconv.Itoa(i)},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKeys[i].PublicKey, caKeys[i])
		if err != nil {
			t.Fatal(err)
		}
		caCerts[i], _ = x509.ParseCertificate(der)
		name := "ca" + strconv.Itoa(i+1) + ".crt"
		p := write(name, &pem.Block{Type: "CERTIFICATE", Bytes: der}, 0o644)
		if i == 0 {
			ca1 = p
		} else {
			ca2 = p
		}
	}
	key := newKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "db.test"}, DNSNames: []string{"db.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCerts[0], &key.PublicKey, caKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	write("server.crt", &pem.Block{Type: "CERTIFICATE", Bytes: der}, 0o644)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write("server.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}, 0o600)

	// A client certificate for the role certuser (its CN), signed by the
	// first CA, for "cert" authentication.
	ckey := newKey()
	ctmpl := &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "certuser"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, caCerts[0], &ckey.PublicKey, caKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	write("client.crt", &pem.Block{Type: "CERTIFICATE", Bytes: cder}, 0o644)
	ckder, err := x509.MarshalECPrivateKey(ckey)
	if err != nil {
		t.Fatal(err)
	}
	write("client.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ckder}, 0o600)
	return dir, ca1, ca2
}

// TestAuthMechanisms runs against a server with TLS and three roles:
// certuser logs in with a TLS client certificate (pg_hba "cert"),
// plainuser with a clear-text password (pg_hba "password", what a server
// checking against LDAP or PAM asks for), scramuser with SCRAM-SHA-256
// (the default rule). It checks that SCRAM with channel binding over TLS
// works and that channel_binding=require and require_auth refuse a server
// that asks for less, and that a client certificate logs in without a
// password (sslcert/sslkey, or tls_cert/tls_key with auth_mode=pki).
func TestAuthMechanisms(t *testing.T) {
	dir, ca1, _ := certs(t)
	srv := pgtest.StartPrimary(t, pgtest.WithConfig("ssl = on",
		"ssl_cert_file = '"+filepath.Join(dir, "server.crt")+"'", "ssl_key_file = '"+filepath.Join(dir, "server.key")+"'",
		"ssl_ca_file = '"+ca1+"'"),
		pgtest.WithHBA("hostssl all certuser 127.0.0.1/32 cert", "host all plainuser 127.0.0.1/32 password"))
	c := ctx(t)
	const pw = "mech-Secret-1"
	for _, q := range []string{"CREATE ROLE certuser LOGIN", "CREATE ROLE plainuser LOGIN PASSWORD '" + pw + "'",
		"CREATE ROLE scramuser LOGIN PASSWORD '" + pw + "'"} {
		if err := srv.Exec(c, q); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	dsn := func(user, pass string, params ...string) string {
		userinfo := user
		if pass != "" {
			userinfo += ":" + pass
		}
		return "postgres://" + userinfo + "@" + srv.Addr + "/postgres?" + strings.Join(params, "&")
	}
	for _, tc := range []struct {
		name string
		dsn  string
		fail string // what the error says; "" to connect
		auth bool   // the error wraps driver.ErrAuthFailed (not retried)
	}{
		{"scram, channel binding required, TLS", dsn("scramuser", pw, "sslmode=require", "channel_binding=require"), "", false},
		{"scram, channel binding required, no TLS", dsn("scramuser", pw, "channel_binding=require"), "needs TLS", false},
		{"scram, channel binding disabled", dsn("scramuser", pw, "sslmode=require", "channel_binding=disable"), "", false},
		{"scram, require_auth=scram-sha-256", dsn("scramuser", pw, "sslmode=require", "require_auth=scram-sha-256"), "", false},
		{"clear text, channel binding required", dsn("plainuser", pw, "sslmode=require", "channel_binding=require"), "channel binding", true},
		{"clear text, require_auth=scram-sha-256", dsn("plainuser", pw, "sslmode=require", "require_auth=scram-sha-256"), "password", true},
		{"clear text, require_auth=password", dsn("plainuser", pw, "sslmode=require", "require_auth=password"), "", false},
		{"clear text, require_auth=!password", dsn("plainuser", pw, "sslmode=require", "require_auth=!password"), "password", true},
		{"client certificate", dsn("certuser", "", "sslmode=require", "sslcert="+cert, "sslkey="+key), "", false},
		{"client certificate, auth_mode=pki", dsn("certuser", "", "auth_mode=pki", "tls=true", "tls_insecure_skip_verify=true", "tls_cert="+cert, "tls_key="+key), "", false},
		{"client certificate, verify-full", dsn("certuser", "", "sslrootcert="+ca1, "tls_server_name=db.test", "tls=true", "tls_ca="+ca1, "sslcert="+cert, "sslkey="+key), "", false},
		{"no client certificate", dsn("certuser", "", "sslmode=require"), "certificate", true},
		{"bad require_auth", dsn("scramuser", pw, "sslmode=require", "require_auth=kerberos"), `"require_auth"`, false},
		{"bad channel_binding", dsn("scramuser", pw, "sslmode=require", "channel_binding=maybe"), `"channel_binding"`, false},
		{"auth_mode=external is gone", dsn("scramuser", pw, "sslmode=require", "auth_mode=external"), "want one of internal, pki", false},
	} {
		cctx, cancel := context.WithTimeout(c, 10*time.Second)
		db, err := sqlish.Connect(cctx, "postgres", tc.dsn)
		cancel()
		if tc.fail != "" {
			if err == nil {
				db.Close()
				t.Errorf("%s: connected, want an error about %s", tc.name, tc.fail)
			} else if !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%s: %v, want it to say %s", tc.name, err, tc.fail)
			} else if t.Logf("%s: %v", tc.name, err); strings.Contains(err.Error(), pw) {
				t.Errorf("%s: the error holds the password: %v", tc.name, err)
			} else if tc.auth && !errors.Is(err, driver.ErrAuthFailed) {
				t.Errorf("%s: the error does not wrap ErrAuthFailed: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		user := strings.TrimPrefix(tc.dsn[:strings.IndexAny(tc.dsn[len("postgres://"):], ":@")+len("postgres://")], "postgres://")
		var who string
		var ssl bool
		if err := db.QueryRow(c, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&who, &ssl); err != nil || who != user || !ssl {
			t.Errorf("%s: current_user %q (want %s), ssl %v, %v", tc.name, who, user, ssl, err)
		}
		db.Close()
	}
}
