package conn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ---- A tiny line protocol for unit tests -------------------------------
//
// Requests are lines "VERB arg\n"; replies are lines. A reply starting with
// '>' is a push; one starting with '!' is malformed (a protocol error).

var errBadLine = errors.New("line protocol: malformed line")

type lineDecoder struct{ br *bufio.Reader }

// linesSkipped counts the lines lineDecoders skipped.
var linesSkipped atomic.Int64

func (d *lineDecoder) Buffered() int { return d.br.Buffered() }

func (d *lineDecoder) Decode(s *string) error {
	b, err := d.br.ReadSlice('\n')
	return decodeLine(s, b, err)
}

// DecodeOrSkip consumes a line without keeping it when skip says so,
// unless it is a push.
func (d *lineDecoder) DecodeOrSkip(s *string, skip func() bool) (bool, error) {
	b, err := d.br.ReadSlice('\n')
	if err == nil && b[0] != '>' && b[0] != '!' && skip() {
		linesSkipped.Add(1)
		return true, nil
	}
	return false, decodeLine(s, b, err)
}

func decodeLine(s *string, b []byte, err error) error {
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err == bufio.ErrBufferFull {
			err = fmt.Errorf("%w: line too long", errBadLine)
		}
		return err
	}
	if b[0] == '!' {
		return fmt.Errorf("%w: %q", errBadLine, b)
	}
	*s = string(b[:len(b)-1])
	return nil
}

func lineCodec(onPush func(string)) Codec[string] {
	return Codec[string]{
		NewDecoder: func(rd io.Reader) Decoder[string] { return &lineDecoder{br: bufio.NewReader(rd)} },
		IsPush:     func(s *string) bool { return strings.HasPrefix(*s, ">") },
		OnPush:     onPush,
	}
}

func echo(args ...string) []byte {
	var b []byte
	for _, a := range args {
		b = append(b, "ECHO "...)
		b = append(b, a...)
		b = append(b, '\n')
	}
	return b
}

// ---- A fake server ------------------------------------------------------
//
// Commands (one per line):
//
//	ECHO x     reply "x"
//	HOLD x     reply "x" once the test calls release (later lines wait)
//	PUSH p x   send the push ">p", then reply "x"
//	EXTRA x    reply "x" twice (the second is unsolicited)
//	SILENT     no reply
//	GARBAGE    reply "!garbage" (a protocol error for the client)
//	CLOSE      close the connection
type fakeServer struct {
	tb      testing.TB
	ln      net.Listener
	addr    string
	record  bool // keep received lines (off for benchmarks)
	release chan struct{}
	quit    chan struct{}
	wg      sync.WaitGroup
	reads   atomic.Int64 // server-side read calls

	mu     sync.Mutex
	closed bool
	conns  []net.Conn
	lines  []string
}

func newFakeServer(tb testing.TB) *fakeServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return serveFake(tb, ln)
}

func serveFake(tb testing.TB, ln net.Listener) *fakeServer {
	s := &fakeServer{
		tb:      tb,
		ln:      ln,
		addr:    ln.Addr().String(),
		record:  true,
		release: make(chan struct{}, 1024),
		quit:    make(chan struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.quit)
	s.ln.Close()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns = append(s.conns, nc)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(nc)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	c.n.Add(1)
	return c.r.Read(p)
}

func (s *fakeServer) handle(nc net.Conn) {
	defer s.wg.Done()
	defer nc.Close()
	br := bufio.NewReader(countingReader{nc, &s.reads})
	bw := bufio.NewWriter(nc)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		cmd := line[:len(line)-1]
		if s.record {
			s.mu.Lock()
			s.lines = append(s.lines, string(cmd))
			s.mu.Unlock()
		}
		verb, arg, _ := bytes.Cut(cmd, []byte{' '})
		switch string(verb) {
		case "ECHO":
			bw.Write(arg)
			bw.WriteByte('\n')
		case "HOLD":
			if bw.Flush() != nil {
				return
			}
			select {
			case <-s.release:
			case <-s.quit:
				return
			}
			bw.Write(arg)
			bw.WriteByte('\n')
		case "PUSH":
			p, x, _ := bytes.Cut(arg, []byte{' '})
			bw.WriteByte('>')
			bw.Write(p)
			bw.WriteByte('\n')
			bw.Write(x)
			bw.WriteByte('\n')
		case "EXTRA":
			for range 2 {
				bw.Write(arg)
				bw.WriteByte('\n')
			}
		case "SILENT":
		case "GARBAGE":
			bw.WriteString("!garbage\n")
		case "CLOSE":
			bw.Flush()
			return
		default:
			bw.WriteString("ERR unknown command\n")
		}
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// Lines returns the request lines received so far, all connections merged.
func (s *fakeServer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// waitLines waits until the server has received at least n lines.
func (s *fakeServer) waitLines(n int) {
	s.tb.Helper()
	waitFor(s.tb, fmt.Sprintf("server to receive %d lines", n), func() bool {
		return len(s.Lines()) >= n
	})
}

// conn returns the server side of the i-th accepted connection.
func (s *fakeServer) conn(i int) net.Conn {
	s.tb.Helper()
	waitFor(s.tb, "server to accept", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) > i
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[i]
}

// send writes raw bytes to the client on connection i; only while the
// connection's handler is idle or blocked.
func (s *fakeServer) send(i int, data string) {
	s.tb.Helper()
	if _, err := io.WriteString(s.conn(i), data); err != nil {
		s.tb.Fatal(err)
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ---- A client-side net.Conn wrapper -------------------------------------

// gateConn counts writes and can hold them at a gate, to make the writer's
// coalescing and the "queued, not written" state deterministic.
type gateConn struct {
	net.Conn
	writes  atomic.Int64
	bytes   atomic.Int64
	started atomic.Int64  // when the last Write began (unix nanoseconds)
	delay   time.Duration // added to every write
	entered chan struct{} // a token when a write reaches a closed gate

	mu   sync.Mutex
	gate chan struct{} // non-nil: writes wait until it is closed
	// failAt >= 0 makes the next write send that many bytes and fail with
	// ECONNRESET, as a write to a peer that reset the connection does.
	failAt int

	closeOnce sync.Once
	closed    chan struct{}
}

func (g *gateConn) block() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gateConn) unblock() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gateConn) Write(p []byte) (int, error) {
	g.started.Store(time.Now().UnixNano())
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-g.closed:
			return 0, net.ErrClosed
		}
	}
	if g.delay > 0 {
		time.Sleep(g.delay)
	}
	g.mu.Lock()
	failAt := g.failAt
	g.failAt = -1
	g.mu.Unlock()
	if failAt >= 0 {
		n, _ := g.Conn.Write(p[:min(failAt, len(p))])
		return n, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	}
	g.writes.Add(1)
	g.bytes.Add(int64(len(p)))
	return g.Conn.Write(p)
}

func (g *gateConn) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// gateDialer returns a Dialer that wraps the connection it dials in a
// gateConn, and a function returning that gateConn (valid after Dial).
func gateDialer(delay time.Duration) (func(ctx context.Context, network, addr string) (net.Conn, error), func() *gateConn) {
	var g atomic.Pointer[gateConn]
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		gc := &gateConn{Conn: nc, delay: delay, entered: make(chan struct{}, 1), closed: make(chan struct{}), failAt: -1}
		g.Store(gc)
		return gc, nil
	}
	return dial, g.Load
}

// dialLine dials the fake server with the line codec and closes the Conn at
// the end of the test.
func dialLine(tb testing.TB, opts Options, onPush func(string)) *Conn[string] {
	tb.Helper()
	if opts.Network == "" {
		opts.Network = "tcp"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, opts, lineCodec(onPush))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// doLine is Do for one request with a generous bound.
func doLine(tb testing.TB, c *Conn[string], frame []byte, n int) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Do(ctx, frame, n)
	if err != nil {
		tb.Fatalf("Do(%q): %v", frame, err)
	}
	return r
}

func closeError(tb testing.TB, err error) *CloseError {
	tb.Helper()
	var ce *CloseError
	if !errors.As(err, &ce) {
		tb.Fatalf("error %v (%T) is not a *CloseError", err, err)
	}
	return ce
}

// ---- TLS ----------------------------------------------------------------

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conn test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
