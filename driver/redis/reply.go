package redis

import (
	"strconv"
	"strings"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
	"github.com/tendril-db/tendril/proto/resp"
)

// toReply converts a decoded value to the reply form rows are made from.
// The value's strings belong to it alone (each request decodes into its
// own Value), so they are not copied.
func toReply(v *resp.Value) rediscmd.Reply {
	switch v.Kind {
	case resp.KindSimpleString:
		return rediscmd.Status(v.Str)
	case resp.KindError, resp.KindBulkError:
		return serverError(v)
	case resp.KindInteger:
		return v.Int
	case resp.KindBulkString, resp.KindVerbatim, resp.KindBigNumber:
		if v.Str == nil {
			return []byte{}
		}
		return v.Str
	case resp.KindNull:
		return nil
	case resp.KindBoolean:
		return v.Bool()
	case resp.KindDouble:
		return v.Float
	case resp.KindMap:
		m := make(rediscmd.Map, len(v.Elems))
		for i := range v.Elems {
			m[i] = toReply(&v.Elems[i])
		}
		return m
	case resp.KindArray, resp.KindSet, resp.KindPush:
		a := make([]any, len(v.Elems))
		for i := range v.Elems {
			a[i] = toReply(&v.Elems[i])
		}
		return a
	}
	return nil
}

// serverError converts an error reply. MOVED and ASK become a
// driver.RedirectError (wrapping the server error) so the user API can
// follow them.
func serverError(v *resp.Value) error {
	se := replyError(v)
	if code := se.Code; code == "MOVED" || code == "ASK" {
		_, rest, _ := strings.Cut(se.Msg, " ")
		// "MOVED 3999 127.0.0.1:6381"
		slot, addr, ok := strings.Cut(rest, " ")
		if p, err := strconv.Atoi(slot); ok && err == nil {
			if strings.HasPrefix(addr, ":") {
				// An empty host means "the address you reached me at";
				// the caller fills it in (see redisConn.reply).
				addr = "?" + addr
			}
			return &driver.RedirectError{Partition: p, Addr: addr, Ask: code == "ASK", Err: se}
		}
	}
	return se
}

// replyError converts an error reply into the server's code and message.
func replyError(v *resp.Value) *driver.ServerError {
	msg := string(v.Str)
	code, _, _ := strings.Cut(msg, " ")
	return &driver.ServerError{Code: code, Msg: msg}
}
