// Package conn is one multiplexed network connection for tendril's backends
// (the Redis driver first).
//
// A [Conn] is dialed once and then shared by any number of goroutines: each
// [Conn.Do] hands over the encoded bytes of one or more requests and waits for
// the same number of replies. Requests are pipelined — nobody waits for the
// previous reply before sending — and replies are matched to requests purely
// by order, which is how Redis (and every other in-order request/response
// protocol) frames a stream. The package knows a protocol only through a
// [Codec]: a decoder factory plus an optional classifier for out-of-band
// (push) messages.
//
// # Goroutines
//
// No goroutine is started per request, and a Conn that nobody uses has no
// goroutine at all. [Conn.Close] returns only after the Conn's goroutines
// have exited.
//
//   - Writing needs no goroutine: the caller of Do that finds nobody
//     writing becomes the writer. It takes every frame queued so far
//     (swapping the shared write buffer with a spare one under a short
//     lock), writes them with a single Write call, and repeats until the
//     buffer is empty. A lone caller's request so goes on the wire without a
//     goroutine hand-off, and under load one syscall carries the frames of
//     every caller that arrived during the previous write. [Conn.DoV]
//     (a frame in pieces, a large value among them, not copied) waits for
//     the writer's role instead and writes the queued frames and its own
//     with one writev on its own goroutine, returning only once the write
//     is over: the Conn never reads a caller's memory after its call.
//   - Reading is done by whoever holds the read token. The caller that finds
//     the Conn idle takes it; if its context cannot be cancelled
//     (ctx.Done() == nil) it reads its own reply on its own goroutine, which
//     saves the two goroutine wake-ups a hand-off costs (about 10 µs per
//     round trip on a 2-core machine). Otherwise, or when requests were
//     queued behind it meanwhile, a reader goroutine reads until nothing is
//     pending and exits. [Conn.Send] reads the same way, but later, in
//     [Call.Wait]: until then a request queued behind it starts a reader
//     goroutine rather than wait for the caller. The reader decodes
//     replies with the Codec's decoder, routes push messages to
//     Codec.OnPush, and hands every other reply to the oldest pending
//     request, completing it once its n replies are in.
//   - With a Codec.OnPush, pushes must be delivered when they come: the
//     reader goroutine then runs for the Conn's life. OnPush runs on it: it
//     must return quickly and must not wait for a reply on the same Conn.
//
// Because nobody reads an idle Conn, the caller that takes the read token
// of a Conn idle for a millisecond or more first looks at the socket
// without reading (a non-blocking peek): a Conn the peer closed while idle
// fails the request with [ErrNotSent] before it is written, and bytes that
// answer no request are decoded (a push) or close the Conn out of sync
// before they can be taken for the reply. Bytes that arrive with the last
// reply are caught at once; only a stray reply arriving on its own within
// the millisecond before the next request could go unnoticed, which no
// correct server sends.
//
// A lone caller's request that times out (DoTimeout) closes the Conn with
// [ReasonTimeout]: nobody else would read its late reply. A request read
// by the reader goroutine that times out retires the Conn instead: replies
// come in order, so a reply that never comes (a hung server, a command that
// blocks) would hold up every request behind it. A retired Conn takes no new
// request (they fail with [ErrNotSent], [Conn.Usable] reports false, and a
// pool should lend out another connection) and closes with ReasonTimeout
// once the replies still pending are in, or the request's timeout later if
// they do not come.
//
// # Ordering and ownership
//
// A frame is appended to the write buffer and its request to the FIFO of
// pending requests under the same lock, so the order of bytes on the wire is
// the order of the FIFO. No lock is ever held across I/O. Replies are decoded
// into memory owned by the Conn's reader and then moved into the pending
// request's own reply slice; a caller's memory is never written to after Do
// returns, so a caller that gave up cannot race with a late reply.
//
// # Cancellation
//
// When a caller's context ends, Do returns at once. If the request's frame is
// still in the write buffer it is cut out of it (the server never sees it)
// and the error wraps [ErrNotSent]; otherwise the request stays in the FIFO,
// marked abandoned, and its replies are read and discarded when they come —
// skipped without being decoded into memory when the decoder has a
// DecodeOrSkip method (see [Decoder]), as are the late replies of requests
// that timed out. An abandoned request does not retire the Conn: its reply is expected
// to come, and Options.ReadTimeout still bounds the wait for it.
//
// # Closing
//
// A Conn closes itself when the stream can no longer be trusted, with a
// [Reason] that says why: [ReasonBroken] for I/O errors and EOF,
// [ReasonOutOfSync] for a reply nobody asked for or a protocol error from the
// decoder, [ReasonTimeout] when requests are pending and the server sends
// nothing for Options.ReadTimeout, a write exceeds Options.WriteTimeout, or
// a request timed out (DoTimeout; the reason's error says which).
// Owners close it with [ReasonShutdown] ([Conn.Close]) or their own reason
// ([ReasonIdle], [ReasonAuthFailure], ...). Every pending request then fails
// with the [*CloseError]; requests whose frame had not been handed to the
// socket yet also wrap [ErrNotSent] and are safe to retry on any connection.
package conn
