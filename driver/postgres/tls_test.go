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

// certs writes two CAs and a server certificate for db.test signed by
// the first, readable by the user the servers run as; it returns the
// directory and the CA files.
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
	return dir, ca1, ca2
}
