//go:build linux || darwin || freebsd || netbsd || openbsd

package conn

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// peeker looks at a socket without reading from it or blocking. Its state
// is built once per Conn so that a peek allocates nothing.
type peeker struct {
	mu  sync.Mutex
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	buf [1]byte
	n   int
	err error
}

// newPeeker returns nil when nc is not a socket.
func newPeeker(nc net.Conn) *peeker {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = func(fd uintptr) bool {
		p.n, _, p.err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}
	return p
}

func (p *peeker) peek() peekResult {
	if p == nil {
		return peekUnknown
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.rc.Read(p.fn); err != nil {
		return peekUnknown
	}
	switch {
	case p.n > 0:
		return peekData
	case p.err == nil: // a 0-byte read: end of stream
		return peekClosed
	case errors.Is(p.err, syscall.EAGAIN) || errors.Is(p.err, syscall.EWOULDBLOCK) || errors.Is(p.err, syscall.EINTR):
		return peekNothing
	}
	return peekClosed // ECONNRESET and the like
}
