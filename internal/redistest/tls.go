package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// tlsFiles is a throw-away CA plus one certificate signed by it, valid for
// 127.0.0.1, ::1 and localhost, for server and client authentication.
type tlsFiles struct {
	caFile, certFile, keyFile string
	client                    *tls.Config
}

func generateTLS(dir string) (*tlsFiles, error) {
	now := time.Now()
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{
		caFile:   filepath.Join(dir, "ca.crt"),
		certFile: filepath.Join(dir, "redis.crt"),
		keyFile:  filepath.Join(dir, "redis.key"),
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, w := range []struct {
		path string
		data []byte
	}{{f.caFile, caPEM}, {f.certFile, certPEM}, {f.keyFile, keyPEM}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return nil, err
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	f.client = &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}
	return f, nil
}

var (
	tlsProbeMu sync.Mutex
	tlsProbe   = map[string]error{} // binary -> nil if TLS is supported
)

// TLSSupported reports whether the redis-server binary at path was built with
// TLS support; when not, the error says why. The result is cached.
//
// It starts the binary with a TLS port and non-existent certificate files:
// a TLS-capable build fails loading them, one without TLS rejects the
// tls-port directive.
func TLSSupported(server string) error {
	tlsProbeMu.Lock()
	defer tlsProbeMu.Unlock()
	if err, ok := tlsProbe[server]; ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	missing := "/nonexistent/redistest-probe"
	cmd := exec.CommandContext(ctx, server, "--port", "0", "--tls-port", "1",
		"--tls-cert-file", missing, "--tls-key-file", missing, "--tls-ca-cert-file", missing,
		"--save", "", "--appendonly", "no")
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = sysProcAttr()
	out, _ := cmd.CombinedOutput()
	text := string(out)
	var err error
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("redistest: probing %s for TLS support timed out", server)
	case strings.Contains(text, "Bad directive") || strings.Contains(text, "wrong number of arguments") ||
		strings.Contains(text, "not supported"):
		err = fmt.Errorf("redistest: %s was built without TLS support: %s", server, lastLines(text, 3))
	case strings.Contains(strings.ToLower(text), "tls"):
		err = nil // it tried to configure TLS
	default:
		err = fmt.Errorf("redistest: cannot tell whether %s supports TLS: %s", server, lastLines(text, 3))
	}
	tlsProbe[server] = err
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
