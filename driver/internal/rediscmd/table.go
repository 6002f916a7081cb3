package rediscmd

import (
	"strings"

	"github.com/tendril-db/tendril/driver"
)

// Spec says where a command's keys are and what it does, in the shape of
// the key specification Redis' COMMAND reply gives: keys start at argument
// First, end at Last (negative counts from the end: -1 is the last
// argument) and repeat every Step arguments.
type Spec struct {
	Name              string // the command name in upper case
	First, Last, Step int
	ReadOnly          bool
	// Idempotent commands can run twice with the same outcome, so they may
	// be retried after they may have reached the server.
	Idempotent bool
	// Blocking commands hold their connection until the server answers
	// (BLPOP, WAIT) or change its state for what follows (MULTI, WATCH,
	// SUBSCRIBE): they need a connection of their own.
	Blocking bool
}

// Keyless commands have First == 0.
func spec(first, last, step int, flags string) Spec {
	return Spec{
		First: first, Last: last, Step: step,
		ReadOnly:   strings.Contains(flags, "r"),
		Idempotent: strings.Contains(flags, "r") || strings.Contains(flags, "i"),
		Blocking:   strings.Contains(flags, "b"),
	}
}

// Commands is the built-in command table. Flags: r = read-only (and so
// idempotent), i = idempotent write, b = blocking or connection state. Commands not in the table are treated
// as non-idempotent writes whose first argument is the key.
var Commands = map[string]Spec{
	"PING":     spec(0, 0, 0, "r"),
	"ECHO":     spec(0, 0, 0, "r"),
	"INFO":     spec(0, 0, 0, "r"),
	"DBSIZE":   spec(0, 0, 0, "r"),
	"KEYS":     spec(0, 0, 0, "r"),
	"FLUSHALL": spec(0, 0, 0, "i"),
	"FLUSHDB":  spec(0, 0, 0, "i"),
	"SELECT":   spec(0, 0, 0, "i"),
	"GET":      spec(1, 1, 1, "r"),
	"STRLEN":   spec(1, 1, 1, "r"),
	"EXISTS":   spec(1, -1, 1, "r"),
	"MGET":     spec(1, -1, 1, "r"),
	"TTL":      spec(1, 1, 1, "r"),
	"PTTL":     spec(1, 1, 1, "r"),
	"TYPE":     spec(1, 1, 1, "r"),
	"HGET":     spec(1, 1, 1, "r"),
	"HGETALL":  spec(1, 1, 1, "r"),
	"HLEN":     spec(1, 1, 1, "r"),
	"HEXISTS":  spec(1, 1, 1, "r"),
	"SET":      spec(1, 1, 1, "i"),
	"SETNX":    spec(1, 1, 1, "i"),
	"MSET":     spec(1, -1, 2, "i"),
	"DEL":      spec(1, -1, 1, "i"),
	"EXPIRE":   spec(1, 1, 1, "i"),
	"PEXPIRE":  spec(1, 1, 1, "i"),
	"PERSIST":  spec(1, 1, 1, "i"),
	"HSET":     spec(1, 1, 1, "i"),
	"HDEL":     spec(1, 1, 1, "i"),
	"INCR":     spec(1, 1, 1, ""),
	"INCRBY":   spec(1, 1, 1, ""),
	"DECR":     spec(1, 1, 1, ""),
	"DECRBY":   spec(1, 1, 1, ""),
	"HINCRBY":  spec(1, 1, 1, ""),
	"APPEND":   spec(1, 1, 1, ""),

	"TIME":        spec(0, 0, 0, "r"),
	"DEBUG":       spec(0, 0, 0, ""),
	"EXPIRETIME":  spec(1, 1, 1, "r"),
	"PEXPIRETIME": spec(1, 1, 1, "r"),
	"HMGET":       spec(1, 1, 1, "r"),
	"HKEYS":       spec(1, 1, 1, "r"),
	"HVALS":       spec(1, 1, 1, "r"),
	"HSTRLEN":     spec(1, 1, 1, "r"),
	"SETEX":       spec(1, 1, 1, "i"),
	"PSETEX":      spec(1, 1, 1, "i"),
	"MSETNX":      spec(1, -1, 2, ""),
	"UNLINK":      spec(1, -1, 1, "i"),
	"EXPIREAT":    spec(1, 1, 1, "i"),
	"PEXPIREAT":   spec(1, 1, 1, "i"),
	"HMSET":       spec(1, 1, 1, "i"),
	"HSETNX":      spec(1, 1, 1, ""),
	"GETSET":      spec(1, 1, 1, ""),
	"GETDEL":      spec(1, 1, 1, ""),
	"GETEX":       spec(1, 1, 1, "i"),
	"RENAME":      spec(1, 2, 1, ""),
	"RENAMENX":    spec(1, 2, 1, ""),

	"INCRBYFLOAT":  spec(1, 1, 1, ""),
	"HINCRBYFLOAT": spec(1, 1, 1, ""),
	"GETRANGE":     spec(1, 1, 1, "r"),
	"SETRANGE":     spec(1, 1, 1, "i"),
	"LPUSH":        spec(1, 1, 1, ""),
	"RPUSH":        spec(1, 1, 1, ""),
	"LPOP":         spec(1, 1, 1, ""),
	"RPOP":         spec(1, 1, 1, ""),
	"LRANGE":       spec(1, 1, 1, "r"),
	"LLEN":         spec(1, 1, 1, "r"),
	"LINDEX":       spec(1, 1, 1, "r"),
	"LREM":         spec(1, 1, 1, ""),
	"LTRIM":        spec(1, 1, 1, "i"),
	"SADD":         spec(1, 1, 1, "i"),
	"SREM":         spec(1, 1, 1, "i"),
	"SMEMBERS":     spec(1, 1, 1, "r"),
	"SISMEMBER":    spec(1, 1, 1, "r"),
	"SCARD":        spec(1, 1, 1, "r"),
	"ZADD":         spec(1, 1, 1, ""),
	"ZREM":         spec(1, 1, 1, "i"),
	"ZRANGE":       spec(1, 1, 1, "r"),
	"ZSCORE":       spec(1, 1, 1, "r"),
	"ZCARD":        spec(1, 1, 1, "r"),
	"ZINCRBY":      spec(1, 1, 1, ""),
	"XADD":         spec(1, 1, 1, ""),
	"XRANGE":       spec(1, 1, 1, "r"),
	"XLEN":         spec(1, 1, 1, "r"),
	"SCAN":         spec(0, 0, 0, "r"),
	"HSCAN":        spec(1, 1, 1, "r"),
	"BLPOP":        spec(1, -2, 1, "b"),
	"BRPOP":        spec(1, -2, 1, "b"),
	"BLMOVE":       spec(1, 2, 1, "b"),
	"BRPOPLPUSH":   spec(1, 2, 1, "b"),
	"BZPOPMIN":     spec(1, -2, 1, "b"),
	"BZPOPMAX":     spec(1, -2, 1, "b"),
	"WAIT":         spec(0, 0, 0, "b"),
	"MULTI":        spec(0, 0, 0, "b"),
	"EXEC":         spec(0, 0, 0, "b"),
	"DISCARD":      spec(0, 0, 0, "b"),
	"WATCH":        spec(1, -1, 1, "b"),
	"UNWATCH":      spec(0, 0, 0, "b"),
	"SUBSCRIBE":    spec(0, 0, 0, "b"),
	"PSUBSCRIBE":   spec(0, 0, 0, "b"),
	"MONITOR":      spec(0, 0, 0, "b"),
}

func init() {
	for name, s := range Commands {
		s.Name = name
		Commands[name] = s
	}
}

var unknownSpec = Spec{First: 1, Last: 1, Step: 1}

// Lookup returns the command name in upper case and its spec. Known
// commands are looked up without allocating.
func Lookup(argv [][]byte) (string, Spec) {
	if s, ok := Commands[string(argv[0])]; ok {
		return s.Name, s
	}
	var tmp [24]byte
	if len(argv[0]) <= len(tmp) {
		u := tmp[:len(argv[0])]
		for i, c := range argv[0] {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			u[i] = c
		}
		if s, ok := Commands[string(u)]; ok {
			return s.Name, s
		}
	}
	return upper(argv[0]), unknownSpec
}

// Keys calls fn for every key argument of argv.
func (s Spec) Keys(argv [][]byte, fn func(key []byte)) {
	if s.First == 0 || s.First >= len(argv) {
		return
	}
	last := s.Last
	if last < 0 {
		last += len(argv)
	}
	step := max(s.Step, 1)
	for i := s.First; i <= last && i < len(argv); i += step {
		fn(argv[i])
	}
}

// RouteOf parses a statement and routes it without allocating. The Route
// has no Key: the parsed arguments do not outlive the call.
func RouteOf(query string, args []driver.Value) (driver.Route, error) {
	c := Get()
	defer Put(c)
	if err := c.Parse(query, args); err != nil {
		return driver.Route{}, err
	}
	r := Route(c.Argv)
	r.Key = nil
	return r, nil
}

// Route maps a parsed command line to a driver.Route. The partition is the
// Redis Cluster slot of the first key.
func Route(argv [][]byte) driver.Route {
	name, s := Lookup(argv)
	r := driver.Route{Op: name, Partition: driver.AnyPartition, Idempotent: s.Idempotent, Exclusive: s.Blocking}
	if s.ReadOnly {
		r.Intent = driver.Read
	}
	if s.First > 0 && s.First < len(argv) {
		r.Key = argv[s.First]
		r.Partition = int(Slot(r.Key))
	}
	return r
}

// upper returns the ASCII upper case of b. Only ASCII letters change, as in
// Redis' own lookup: "ſet" must stay an unknown command, not become SET.
func upper(b []byte) string {
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			u := []byte(string(b))
			for j := i; j < len(u); j++ {
				if 'a' <= u[j] && u[j] <= 'z' {
					u[j] -= 'a' - 'A'
				}
			}
			return string(u)
		}
	}
	return string(b)
}
