package conformance

import (
	"strconv"
	"strings"
	"time"
)

// RedisDialect is the dialect of the Redis-speaking backends (redis,
// valkey, memory): SET, GET, MGET, DEL, DEBUG SLEEP (a Redis server needs
// enable-debug-command) and an unknown command as the server error. Keys
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
			return "DEBUG SLEEP ?", []any{strconv.FormatFloat(d.Seconds(), 'f', -1, 64)}
		},
		ServerError: func() (string, []any) { return "TENDRIL-CONFORMANCE-NO-SUCH-COMMAND", nil },
		Colocated: func(group string, i int) string {
			return "{" + group + "}:" + strconv.Itoa(i)
		},
	}
}
