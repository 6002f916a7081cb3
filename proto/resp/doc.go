// Package resp is the RESP2/RESP3 wire codec used by tendril's Redis backend.
//
// It sits on the hot path of every Redis round trip, so it is written to
// avoid allocation rather than for brevity, and it deliberately knows nothing
// about connections, drivers or pools: it turns bytes into [Value]s and
// commands into bytes, nothing more.
//
// # Encoding
//
// Commands are built by appending into a caller-owned []byte ([AppendCommand],
// [AppendArrayHeader], [AppendBulk], [AppendBulkString], [AppendBulkInt], ...).
// Appending never allocates when dst has enough capacity, which lets a
// connection keep one write buffer per pipeline and reuse it forever.
// [AppendValue] encodes any [Value] as RESP3, which is what a fake server or a
// proxy needs.
//
// # Decoding
//
// A [Reader] owns its read buffer (no bufio, so the scalar fast paths are a
// few index operations) and decodes one reply per call. [Reader.ReadValue]
// decodes into a caller-supplied *Value and reuses every buffer that value
// already holds — Str, Elems, Attrs and, recursively, the buffers of elements
// still sitting in Elems' capacity — so a connection that decodes each reply
// into the same Value reaches a steady state with zero allocations per reply.
// The price is the usual one: data read by ReadValue belongs to the Value and
// is overwritten by the next ReadValue into it; copy it ([Value.Clone]) or use
// [Reader.ReadReply], which always returns freshly allocated data, when it has
// to outlive the next read.
//
// # Safety against hostile or broken peers
//
// Declared lengths are checked against [Limits] before anything is allocated,
// and even lengths within the limits are trusted only as far as bytes actually
// arrive: a bulk body gets at most 1 MiB (or what is buffered) up front and an
// aggregate a slot per element whose bytes may be buffered already, and both
// grow geometrically as data is read, so a 14-byte header can never make the
// decoder reserve gigabytes. Lines (simple strings, errors, doubles, big
// numbers, lengths) are bounded by Limits.MaxLineLen, 64 KiB by default: a
// peer that sends "+" and then bytes without CRLF fails there. The memory one
// reply may hold is bounded by Limits.MaxReplyBytes, counting [ValueSize]
// bytes per element slot plus string bytes, because a small element costs 20
// to 27 times its wire size once decoded: a 16M-element array of ":1" is 64 MB
// on the wire and 1.3 GB decoded. Nesting is bounded by Limits.MaxDepth so the
// recursive decoder cannot exhaust the stack. Malformed or over-limit input
// yields an error wrapping [ErrProtocol] that names the limit; the decoder
// never panics. After any error other than a clean io.EOF between replies,
// the stream position is unknown and the connection must be discarded.
//
// [Reader.Skip] and [Reader.SkipReply] consume a reply without keeping it
// (bulk payloads are discarded straight from the buffer): a connection
// drops the replies of requests nobody waits for any more this way, at no
// cost in memory.
package resp
