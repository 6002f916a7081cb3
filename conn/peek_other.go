//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package conn

import "net"

// peeker cannot look at a socket on this platform.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return nil }

func (*peeker) peek() peekResult { return peekUnknown }
