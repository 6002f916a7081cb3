package conformance

import (
	"strconv"
	"strings"
	"time"
)

// RedisDialect is the dialect of the Redis-speaking backends (redis,
// valkey, memory): SET, GET, MGET, DEL, INCR, BLPOP of an empty key as
// the slow statement, an unknown command as the server error and the
// client name as the session state. Keys
// of one GetMany share a hash tag, so a cluster serves them from one slot.
func RedisDialect() Dialect {
	return Dialect{
		Set: func(key string, value any) (string, []any) { return "SET ? ?", []any{key, value} },
		Get: func(key string) (string, []any) { return "GET ?", []any{key} },
		GetMany: func(keys ...string) (string, []any) {
			args := make([]any, len(keys))
			for i, k := range keys {
				args[i] = k
			}
			return "MGET" + strings.Repeat(" ?", len(keys)), args
		},
		Del: func(key string) (string, []any) { return "DEL ?", []any{key} },
		Slow: func(d time.Duration) (string, []any) {
			// A blocking pop of a key nobody pushes to: it waits d on every
			// server (DEBUG SLEEP needs enable-debug-command, off by
			// default) without stopping the server for other callers.
			return "BLPOP tendril-conformance-slow ?", []any{strconv.FormatFloat(d.Seconds(), 'f', -1, 64)}
		},
		ServerError: func() (string, []any) { return "TENDRIL-CONFORMANCE-NO-SUCH-COMMAND", nil },
		SetSession:  func(v string) (string, []any) { return "CLIENT SETNAME ?", []any{v} },
		Session:     func() (string, []any) { return "CLIENT GETNAME", nil },
		Incr:        func(key string) (string, []any) { return "INCR ?", []any{key} },
		Colocated: func(group string, i int) string {
			return "{" + group + "}:" + strconv.Itoa(i)
		},
	}
}
