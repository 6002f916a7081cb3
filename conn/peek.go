package conn

// peekResult is what peek saw on an idle socket.
type peekResult int

const (
	peekUnknown peekResult = iota // could not look (not a socket, unsupported)
	peekNothing                   // open, nothing to read
	peekData                      // bytes to read
	peekClosed                    // end of stream or a socket error
)
