package memory

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
)

// clock is a manual clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errMsg is an expected error reply, by its full message.
type errMsg string

// bulk is an expected bulk-string reply.
func bulk(s string) []byte { return []byte(s) }

// arr is an expected array reply.
func arr(v ...any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// step is one command and its expected reply. A step with a non-zero
// advance only moves the clock.
type step struct {
	argv    []string
	want    any
	advance time.Duration
}

// cmd builds a step from a space-separated command line.
func cmd(line string, want any) step { return step{argv: strings.Fields(line), want: want} }

// cmdv builds a step from explicit arguments (for spaces and binary data).
func cmdv(want any, argv ...string) step { return step{argv: argv, want: want} }

func sleep(d time.Duration) step { return step{advance: d} }

const (
	wrongType = errMsg("WRONGTYPE Operation against a key holding the wrong kind of value")
	notInt    = errMsg("ERR value is not an integer or out of range")
	overflow  = errMsg("ERR increment or decrement would overflow")
	syntaxErr = errMsg("ERR syntax error")
)

func arity(name string) errMsg {
	return errMsg("ERR wrong number of arguments for '" + name + "' command")
}

func toArgv(ss []string) [][]byte {
	argv := make([][]byte, len(ss))
	for i, s := range ss {
		argv[i] = []byte(s)
	}
	return argv
}

func checkReply(t *testing.T, label string, got, want any) {
	t.Helper()
	if w, ok := want.(errMsg); ok {
		e, ok := got.(*driver.ServerError)
		if !ok {
			t.Fatalf("%s: got %#v, want error %q", label, got, w)
		}
		if e.Msg != string(w) {
			t.Fatalf("%s: got error %q, want %q", label, e.Msg, w)
		}
		code, _, _ := strings.Cut(string(w), " ")
		if e.Code != code {
			t.Fatalf("%s: got code %q, want %q", label, e.Code, code)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %s, want %s", label, show(got), show(want))
	}
}

func show(v any) string {
	switch v := v.(type) {
	case []byte:
		return fmt.Sprintf("bulk(%q)", v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case rediscmd.Map:
		return "map" + show([]any(v))
	case *driver.ServerError:
		return fmt.Sprintf("error(%q)", v.Msg)
	}
	return fmt.Sprintf("%T(%#v)", v, v)
}

func runSteps(t *testing.T, s *store, c *clock, steps []step) {
	t.Helper()
	for i, st := range steps {
		if st.advance != 0 {
			c.advance(st.advance)
			continue
		}
		got := s.exec(toArgv(st.argv))
		checkReply(t, fmt.Sprintf("step %d %q", i, st.argv), got, st.want)
	}
}

func TestCommands(t *testing.T) {
	ok := rediscmd.Status("OK")
	tests := []struct {
		name  string
		steps []step
	}{
		{"ping echo", []step{
			cmd("PING", rediscmd.Status("PONG")),
			cmd("ping hello", bulk("hello")),
			cmd("PING a b", arity("ping")),
			cmdv(bulk("hi there"), "echo", "hi there"),
			cmd("ECHO", arity("echo")),
			cmd("ECHO a b", arity("echo")),
			cmd("TIME", arr(bulk("1700000000"), bulk("0"))),
			cmd("TIME x", arity("time")),
		}},
		{"unknown command", []step{
			cmd("foo a b", errMsg("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")),
			cmd("FooBar", errMsg("ERR unknown command 'FooBar', with args beginning with: ")),
			cmdv(errMsg("ERR unknown command 'x', with args beginning with: 'a b' 'c  d' "), "x", "a b", "c\r\nd"),
			cmdv(errMsg("ERR unknown command 'x', with args beginning with: 'ab' "), "x", "ab\x00cd"),
			cmdv(errMsg("ERR unknown command 'x', with args beginning with: '"+strings.Repeat("a", 128)+"' "),
				"x", strings.Repeat("a", 200), "b"),
			cmdv(errMsg("ERR unknown command '"+strings.Repeat("c", 128)+"', with args beginning with: "),
				strings.Repeat("c", 200)),
			cmdv(errMsg("ERR unknown command 'x', with args beginning with: '"+strings.Repeat("a", 120)+"' 'bbbbb' "),
				"x", strings.Repeat("a", 120), "bbbbbbbbbb", "c"),
		}},
		{"get set", []step{
			cmd("GET k", nil),
			cmd("SET k v", ok),
			cmd("get k", bulk("v")),
			cmd("GeT k", bulk("v")),
			cmd("SET k w", ok),
			cmd("GET k", bulk("w")),
			cmd("GET", arity("get")),
			cmd("GET a b", arity("get")),
			cmd("SET k", arity("set")),
			cmdv(ok, "SET", "", ""),
			cmdv(bulk(""), "GET", ""),
		}},
		{"set options", []step{
			cmd("SET k v NX", ok),
			cmd("SET k v2 NX", nil),
			cmd("GET k", bulk("v")),
			cmd("SET k v3 XX", ok),
			cmd("GET k", bulk("v3")),
			cmd("SET missing v XX", nil),
			cmd("EXISTS missing", int64(0)),
			cmd("SET k v NX XX", syntaxErr),
			cmd("SET k v XX NX", syntaxErr),
			cmd("SET k v nx nx", nil),
			cmd("SET k v EX", syntaxErr),
			cmd("SET k v EX 10 PX 100", syntaxErr),
			cmd("SET k v EX 10 KEEPTTL", syntaxErr),
			cmd("SET k v KEEPTTL EX 10", syntaxErr),
			cmd("SET k v FOO", syntaxErr),
			cmd("SET k v EX abc", notInt),
			cmd("SET k v EX 0", errMsg("ERR invalid expire time in 'set' command")),
			cmd("SET k v PX -5", errMsg("ERR invalid expire time in 'set' command")),
			cmd("SET k v EX 9223372036854775", errMsg("ERR invalid expire time in 'set' command")),
			cmd("SET k v PX 9223372036854775807", errMsg("ERR invalid expire time in 'set' command")),
			cmd("SET k v EXAT 0", errMsg("ERR invalid expire time in 'set' command")),
			cmd("GET k", bulk("v3")),
			cmd("SET k v4 GET", bulk("v3")),
			cmd("SET new v GET", nil),
			cmd("GET new", bulk("v")),
			cmd("SET k v5 NX GET", bulk("v4")),
			cmd("GET k", bulk("v4")),
			cmd("SET nope v XX GET", nil),
			cmd("EXISTS nope", int64(0)),
			cmd("HSET h f v", int64(1)),
			cmd("SET h v GET", wrongType),
			cmd("TYPE h", rediscmd.Status("hash")),
			cmd("SET h v", ok),
			cmd("TYPE h", rediscmd.Status("string")),
			cmd("SETNX k x", int64(0)),
			cmd("SETNX fresh x", int64(1)),
			cmd("SETNX fresh", arity("setnx")),
			cmd("SET k v EX 10 EX 20", ok),
			cmd("TTL k", int64(20)),
		}},
		{"binary values", []step{
			cmdv(ok, "SET", "bin\x00key", "a\x00b\x00\xff"),
			cmdv(bulk("a\x00b\x00\xff"), "GET", "bin\x00key"),
			cmdv(int64(5), "STRLEN", "bin\x00key"),
			cmdv(nil, "GET", "bin"),
			cmdv(int64(1), "HSET", "h\x00", "f\x00", "\x00\x00"),
			cmdv(bulk("\x00\x00"), "HGET", "h\x00", "f\x00"),
			cmdv(rediscmd.Map{bulk("f\x00"), bulk("\x00\x00")}, "HGETALL", "h\x00"),
			cmdv(arr(bulk("bin\x00key")), "KEYS", "bin*"),
			cmdv(int64(7), "APPEND", "bin\x00key", "\x00\x00"),
			cmdv(bulk("a\x00b\x00\xff\x00\x00"), "GET", "bin\x00key"),
		}},
		{"del exists", []step{
			cmd("MSET a 1 b 2 c 3", ok),
			cmd("EXISTS a a b z", int64(3)),
			cmd("DEL a a z", int64(1)),
			cmd("DEL b c", int64(2)),
			cmd("DEL b", int64(0)),
			cmd("DEL", arity("del")),
			cmd("EXISTS", arity("exists")),
			cmd("UNLINK x", int64(0)),
		}},
		{"incr decr", []step{
			cmd("INCR n", int64(1)),
			cmd("INCR n", int64(2)),
			cmd("INCRBY n 10", int64(12)),
			cmd("DECR n", int64(11)),
			cmd("DECRBY n 20", int64(-9)),
			cmd("GET n", bulk("-9")),
			cmd("INCRBY n abc", notInt),
			cmd("INCRBY n +1", notInt),
			cmd("INCRBY n 01", notInt),
			cmd("INCRBY n -0", notInt),
			cmdv(notInt, "INCRBY", "n", " 1"),
			cmd("INCRBY n 9223372036854775808", notInt),
			cmd("SET s abc", ok),
			cmd("INCR s", notInt),
			cmdv(ok, "SET", "s", "1 "),
			cmd("INCR s", notInt),
			cmd("SET s +1", ok),
			cmd("INCR s", notInt),
			cmd("SET big 9223372036854775807", ok),
			cmd("INCR big", overflow),
			cmd("GET big", bulk("9223372036854775807")),
			cmd("DECRBY big -1", overflow),
			cmd("SET small -9223372036854775808", ok),
			cmd("DECR small", overflow),
			cmd("INCRBY small -1", overflow),
			cmd("DECRBY small 9223372036854775807", overflow),
			cmd("DECRBY x -9223372036854775808", errMsg("ERR decrement would overflow")),
			cmd("INCRBY z -9223372036854775808", int64(-9223372036854775808)),
			cmd("SET zero 0", ok),
			cmd("INCR zero", int64(1)),
			cmd("HSET h f 1", int64(1)),
			cmd("INCR h", wrongType),
			cmd("INCR", arity("incr")),
			cmd("INCRBY n", arity("incrby")),
			cmd("DECRBY n 1 2", arity("decrby")),
			cmd("DECR a b", arity("decr")),
		}},
		{"mget mset", []step{
			cmd("MSET a 1 b 2", ok),
			cmd("HSET h f v", int64(1)),
			cmd("MGET a h missing b", arr(bulk("1"), nil, nil, bulk("2"))),
			cmd("MSET a", arity("mset")),
			cmd("MSET a 1 b", arity("mset")),
			cmd("MGET", arity("mget")),
			cmd("MSETNX a 5 new 6", int64(0)),
			cmd("EXISTS new", int64(0)),
			cmd("MSETNX new 6 new2 7", int64(1)),
			cmd("MGET new new2", arr(bulk("6"), bulk("7"))),
			cmd("MSETNX a 1 b", arity("msetnx")),
		}},
		{"strlen append getset getdel", []step{
			cmd("STRLEN k", int64(0)),
			cmd("APPEND k abc", int64(3)),
			cmd("APPEND k de", int64(5)),
			cmd("STRLEN k", int64(5)),
			cmd("GET k", bulk("abcde")),
			cmd("HSET h f v", int64(1)),
			cmd("STRLEN h", wrongType),
			cmd("APPEND h x", wrongType),
			cmd("GETSET k new", bulk("abcde")),
			cmd("GETSET fresh new", nil),
			cmd("GETSET h x", wrongType),
			cmd("GETDEL k", bulk("new")),
			cmd("GETDEL k", nil),
			cmd("GETDEL h", wrongType),
			cmd("STRLEN", arity("strlen")),
		}},
		{"type", []step{
			cmd("TYPE k", rediscmd.Status("none")),
			cmd("SET k v", ok),
			cmd("TYPE k", rediscmd.Status("string")),
			cmd("HSET h a b", int64(1)),
			cmd("TYPE h", rediscmd.Status("hash")),
			cmd("TYPE", arity("type")),
		}},
		{"hashes", []step{
			cmd("HSET h f1 v1 f2 v2", int64(2)),
			cmd("HSET h f1 x f3 v3", int64(1)),
			cmd("HGET h f1", bulk("x")),
			cmd("HGET h nope", nil),
			cmd("HGET nokey f", nil),
			cmd("HGETALL h", rediscmd.Map{bulk("f1"), bulk("x"), bulk("f2"), bulk("v2"), bulk("f3"), bulk("v3")}),
			cmd("HGETALL nokey", rediscmd.Map{}),
			cmd("HKEYS h", arr(bulk("f1"), bulk("f2"), bulk("f3"))),
			cmd("HVALS h", arr(bulk("x"), bulk("v2"), bulk("v3"))),
			cmd("HKEYS nokey", arr()),
			cmd("HMGET h f1 nope f3", arr(bulk("x"), nil, bulk("v3"))),
			cmd("HMGET nokey a", arr(nil)),
			cmd("HLEN h", int64(3)),
			cmd("HLEN nokey", int64(0)),
			cmd("HEXISTS h f2", int64(1)),
			cmd("HEXISTS h zz", int64(0)),
			cmd("HEXISTS nokey zz", int64(0)),
			cmd("HSTRLEN h f2", int64(2)),
			cmd("HDEL h f2 zz f2", int64(1)),
			cmd("HLEN h", int64(2)),
			cmd("HDEL nokey f", int64(0)),
			cmd("HDEL h f1 f3", int64(2)),
			cmd("EXISTS h", int64(0)),
			cmd("TYPE h", rediscmd.Status("none")),
			cmd("HSET h f", arity("hset")),
			cmd("HSET h f v g", arity("hset")),
			cmd("HSET h", arity("hset")),
			cmd("HGET h", arity("hget")),
			cmd("HDEL h", arity("hdel")),
			cmd("HGETALL", arity("hgetall")),
			cmd("HLEN", arity("hlen")),
			cmd("HEXISTS h", arity("hexists")),
			cmd("HMSET h a 1 b 2", ok),
			cmd("HSETNX h a 9", int64(0)),
			cmd("HSETNX h c 3", int64(1)),
			cmd("HGETALL h", rediscmd.Map{bulk("a"), bulk("1"), bulk("b"), bulk("2"), bulk("c"), bulk("3")}),
			cmd("SET s v", ok),
			cmd("HSET s f v", wrongType),
			cmd("HGET s f", wrongType),
			cmd("HGETALL s", wrongType),
			cmd("HDEL s f", wrongType),
			cmd("HLEN s", wrongType),
			cmd("HEXISTS s f", wrongType),
			cmd("HMGET s f", wrongType),
			cmd("GET h", wrongType),
		}},
		{"hincrby", []step{
			cmd("HINCRBY h n 5", int64(5)),
			cmd("HINCRBY h n -7", int64(-2)),
			cmd("HGET h n", bulk("-2")),
			cmd("HINCRBY h n x", notInt),
			cmd("HSET h s abc", int64(1)),
			cmd("HINCRBY h s 1", errMsg("ERR hash value is not an integer")),
			cmd("HSET h m 9223372036854775807", int64(1)),
			cmd("HINCRBY h m 1", overflow),
			cmd("SET str v", ok),
			cmd("HINCRBY str f 1", wrongType),
			cmd("HINCRBY str f", arity("hincrby")),
		}},
		{"keys dbsize flush select", []step{
			cmd("MSET hello 1 hallo 2 hxllo 3 hllo 4 heeeello 5 a/b 6", ok),
			cmd("KEYS h?llo", arr(bulk("hallo"), bulk("hello"), bulk("hxllo"))),
			cmd("KEYS h*llo", arr(bulk("hallo"), bulk("heeeello"), bulk("hello"), bulk("hllo"), bulk("hxllo"))),
			cmd("KEYS h[ae]llo", arr(bulk("hallo"), bulk("hello"))),
			cmd("KEYS h[^e]llo", arr(bulk("hallo"), bulk("hxllo"))),
			cmd("KEYS h[a-b]llo", arr(bulk("hallo"))),
			cmd("KEYS a*", arr(bulk("a/b"))),
			cmd("KEYS *", arr(bulk("a/b"), bulk("hallo"), bulk("heeeello"), bulk("hello"), bulk("hllo"), bulk("hxllo"))),
			cmd("KEYS nomatch", arr()),
			cmd("KEYS", arity("keys")),
			cmd("DBSIZE", int64(6)),
			cmd("DBSIZE x", arity("dbsize")),
			cmd("SELECT 0", ok),
			cmd("SELECT 1", errMsg("ERR DB index is out of range")),
			cmd("SELECT -1", errMsg("ERR DB index is out of range")),
			cmd("SELECT abc", errMsg("ERR invalid DB index")),
			cmd("SELECT 4294967296", errMsg("ERR invalid DB index")),
			cmd("SELECT", arity("select")),
			cmd("FLUSHDB", ok),
			cmd("DBSIZE", int64(0)),
			cmd("SET a 1", ok),
			cmd("FLUSHALL ASYNC", ok),
			cmd("DBSIZE", int64(0)),
			cmd("SET a 1", ok),
			cmd("FLUSHALL sync", ok),
			cmd("FLUSHALL now", syntaxErr),
			cmd("FLUSHALL sync async", syntaxErr),
			cmd("FLUSHDB x", syntaxErr),
		}},
		{"expire ttl", []step{
			cmd("TTL k", int64(-2)),
			cmd("PTTL k", int64(-2)),
			cmd("EXPIRE k 10", int64(0)),
			cmd("SET k v", ok),
			cmd("TTL k", int64(-1)),
			cmd("PTTL k", int64(-1)),
			cmd("EXPIRE k 10", int64(1)),
			cmd("TTL k", int64(10)),
			cmd("PTTL k", int64(10000)),
			sleep(1500 * time.Millisecond),
			cmd("TTL k", int64(9)), // 8500 ms rounds to 9, as in Redis
			cmd("PTTL k", int64(8500)),
			sleep(8499 * time.Millisecond),
			cmd("PTTL k", int64(1)),
			cmd("GET k", bulk("v")),
			sleep(time.Millisecond),
			cmd("PTTL k", int64(0)), // deadline reached but not passed
			cmd("GET k", bulk("v")),
			sleep(time.Millisecond),
			cmd("GET k", nil),
			cmd("TTL k", int64(-2)),
			cmd("EXISTS k", int64(0)),
			cmd("SET k v EX 5", ok),
			cmd("TTL k", int64(5)),
			cmd("SET k v", ok),
			cmd("TTL k", int64(-1)), // SET clears the TTL
			cmd("SET k v PX 2500", ok),
			cmd("PTTL k", int64(2500)),
			cmd("SET k v2 KEEPTTL", ok),
			cmd("PTTL k", int64(2500)),
			cmd("INCR k", notInt),
			cmd("SET k 5 KEEPTTL", ok),
			cmd("INCR k", int64(6)), // INCR keeps the TTL
			cmd("PTTL k", int64(2500)),
			cmd("APPEND k 0", int64(2)),
			cmd("PTTL k", int64(2500)),
			cmd("PERSIST k", int64(1)),
			cmd("PERSIST k", int64(0)),
			cmd("PERSIST nokey", int64(0)),
			cmd("TTL k", int64(-1)),
			cmd("PEXPIRE k 1500", int64(1)),
			cmd("TTL k", int64(2)),
			cmd("EXPIRE k 0", int64(1)), // non-positive: deleted at once
			cmd("EXISTS k", int64(0)),
			cmd("SET k v", ok),
			cmd("EXPIRE k -5", int64(1)),
			cmd("EXISTS k", int64(0)),
			cmd("EXPIRE k abc", notInt),
			cmd("EXPIRE k 9223372036854775", errMsg("ERR invalid expire time in 'expire' command")),
			cmd("SET k v", ok),
			cmd("PEXPIRE k 9223372036854775807", errMsg("ERR invalid expire time in 'pexpire' command")),
			cmd("EXPIRE k", arity("expire")),
			cmd("TTL", arity("ttl")),
			cmd("PTTL a b", arity("pttl")),
			cmd("PERSIST", arity("persist")),
		}},
		{"expire options", []step{
			cmd("SET k v", ok),
			cmd("EXPIRE k 10 XX", int64(0)),
			cmd("EXPIRE k 10 GT", int64(0)),
			cmd("EXPIRE k 10 LT", int64(1)),
			cmd("EXPIRE k 20 NX", int64(0)),
			cmd("EXPIRE k 20 LT", int64(0)),
			cmd("EXPIRE k 5 lt", int64(1)),
			cmd("EXPIRE k 3 GT", int64(0)),
			cmd("EXPIRE k 30 gt xx", int64(1)),
			cmd("TTL k", int64(30)),
			cmd("SET n v", ok),
			cmd("EXPIRE n 7 nx", int64(1)),
			cmd("TTL n", int64(7)),
			cmd("EXPIRE k 10 NX XX", errMsg("ERR NX and XX, GT or LT options at the same time are not compatible")),
			cmd("EXPIRE k 10 GT LT", errMsg("ERR GT and LT options at the same time are not compatible")),
			cmd("EXPIRE k 10 FOO", errMsg("ERR Unsupported option FOO")),
			cmd("EXPIRE k abc FOO", errMsg("ERR Unsupported option FOO")),
		}},
		{"expireat and expiretime", []step{
			cmd("SET k v", ok),
			cmd("EXPIRETIME k", int64(-1)),
			cmd("EXPIREAT k 1700000100", int64(1)),
			cmd("EXPIRETIME k", int64(1700000100)),
			cmd("PEXPIRETIME k", int64(1700000100000)),
			cmd("TTL k", int64(100)),
			cmd("PEXPIREAT k 1700000000500", int64(1)),
			cmd("PTTL k", int64(500)),
			cmd("EXPIREAT k 1699999999", int64(1)),
			cmd("EXISTS k", int64(0)),
			cmd("EXPIRETIME k", int64(-2)),
			cmd("SET k v EXAT 1700000010", ok),
			cmd("TTL k", int64(10)),
			cmd("SET k v PXAT 1700000000001", ok),
			cmd("PTTL k", int64(1)),
			cmd("SET k v PXAT 1", ok), // deadline in the past: gone at once
			cmd("GET k", nil),
		}},
		{"getex setex", []step{
			cmd("SETEX k 10 v", ok),
			cmd("TTL k", int64(10)),
			cmd("PSETEX k 1500 v", ok),
			cmd("PTTL k", int64(1500)),
			cmd("SETEX k 0 v", errMsg("ERR invalid expire time in 'setex' command")),
			cmd("PSETEX k -1 v", errMsg("ERR invalid expire time in 'psetex' command")),
			cmd("SETEX k x v", notInt),
			cmd("GETEX k", bulk("v")),
			cmd("GETEX k EX 100", bulk("v")),
			cmd("TTL k", int64(100)),
			cmd("GETEX k PERSIST", bulk("v")),
			cmd("TTL k", int64(-1)),
			cmd("GETEX k EX 0", errMsg("ERR invalid expire time in 'getex' command")),
			cmd("GETEX k PERSIST EX 10", syntaxErr),
			cmd("GETEX k NX", syntaxErr),
			cmd("GETEX nokey EX 10", nil),
			cmd("GETEX k PXAT 1700000000000", bulk("v")),
			cmd("EXISTS k", int64(0)),
		}},
		{"rename", []step{
			cmd("RENAME a b", errMsg("ERR no such key")),
			cmd("SET a 1 EX 100", ok),
			cmd("RENAME a a", ok),
			cmd("RENAME a b", ok),
			cmd("GET b", bulk("1")),
			cmd("TTL b", int64(100)),
			cmd("EXISTS a", int64(0)),
			cmd("SET c 2", ok),
			cmd("RENAMENX b c", int64(0)),
			cmd("RENAMENX b d", int64(1)),
			cmd("RENAME d c", ok),
			cmd("GET c", bulk("1")),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			s := newStore(c.now)
			runSteps(t, s, c, tc.steps)
		})
	}
}

func TestExpiryHidesKeys(t *testing.T) {
	c := newClock()
	s := newStore(c.now)
	ok := rediscmd.Status("OK")
	runSteps(t, s, c, []step{
		cmd("SET a 1", ok),
		cmd("SET b 2 PX 100", ok),
		cmd("HSET h f v", int64(1)),
		cmd("PEXPIRE h 200", int64(1)),
		cmd("DBSIZE", int64(3)),
		sleep(101 * time.Millisecond),
		cmd("KEYS *", arr(bulk("a"), bulk("h"))),
		cmd("DBSIZE", int64(2)),
		cmd("EXISTS a b h", int64(2)),
		cmd("MGET a b", arr(bulk("1"), nil)),
		sleep(100 * time.Millisecond),
		cmd("KEYS *", arr(bulk("a"))),
		cmd("HGETALL h", rediscmd.Map{}),
		cmd("DBSIZE", int64(1)),
		cmd("DEL h b", int64(0)),
	})
	info := string(s.exec(toArgv([]string{"INFO", "stats"})).([]byte))
	if !strings.Contains(info, "expired_keys:2\r\n") {
		t.Errorf("INFO stats lacks expired_keys:2:\n%s", info)
	}
}

// TestActiveExpire checks that keys nobody touches again are reclaimed.
func TestActiveExpire(t *testing.T) {
	c := newClock()
	s := newStore(c.now)
	for i := 0; i < 100; i++ {
		s.exec(toArgv([]string{"SET", "k" + strconv.Itoa(i), "v", "PX", "10"}))
	}
	c.advance(time.Second)
	for i := 0; i < 200; i++ {
		s.exec(toArgv([]string{"PING"}))
	}
	s.mu.Lock()
	n := len(s.data)
	s.mu.Unlock()
	if n == 100 {
		t.Errorf("no key was reclaimed by active expiry")
	}
}

func TestInfo(t *testing.T) {
	c := newClock()
	s := newStore(c.now)
	exec := func(args ...string) any { return s.exec(toArgv(args)) }
	exec("SET", "a", "1")
	exec("SET", "b", "2", "EX", "100")
	exec("GET", "a")
	exec("GET", "zz")
	exec("GET", "zz")
	exec("NOSUCH")
	c.advance(3 * time.Second)

	info := string(exec("INFO").([]byte))
	if !strings.HasPrefix(info, "# Server\r\nredis_version:7.2.0-tendril-memory\r\n") {
		t.Fatalf("INFO starts %q", info[:min(len(info), 60)])
	}
	for _, want := range []string{
		"\r\nredis_mode:standalone\r\n",
		"\r\nuptime_in_seconds:3\r\n",
		"\r\n\r\n# Clients\r\nconnected_clients:0\r\n",
		"\r\n\r\n# Memory\r\nused_memory:",
		"\r\n\r\n# Stats\r\n",
		"\r\ntotal_commands_processed:5\r\n", // the unknown command never ran
		"\r\nkeyspace_hits:1\r\n",
		"\r\nkeyspace_misses:2\r\n",
		"\r\nexpired_keys:0\r\n",
		"\r\ntotal_error_replies:1\r\n",
		"\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=97000\r\n",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
	if !strings.HasSuffix(info, "\r\n") || strings.HasSuffix(info, "\r\n\r\n") {
		t.Errorf("INFO ends badly: %q", info[len(info)-10:])
	}
	for _, line := range strings.Split(strings.TrimSuffix(info, "\r\n"), "\r\n") {
		if line != "" && !strings.HasPrefix(line, "# ") && !strings.Contains(line, ":") {
			t.Errorf("bad INFO line %q", line)
		}
	}
	if i := strings.Index(info, "run_id:"); i < 0 || len(info) < i+47 || info[i+47:i+49] != "\r\n" {
		t.Errorf("run_id is not 40 hex characters")
	}

	ks := string(exec("INFO", "KEYSPACE").([]byte))
	if ks != "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=97000\r\n" {
		t.Errorf("INFO keyspace = %q", ks)
	}
	two := string(exec("info", "server", "stats").([]byte))
	if !strings.HasPrefix(two, "# Server\r\n") || !strings.Contains(two, "\r\n\r\n# Stats\r\n") || strings.Contains(two, "# Memory") {
		t.Errorf("INFO server stats = %q", two)
	}
	if got := exec("INFO", "nosuchsection"); !bytes.Equal(got.([]byte), nil) || got.([]byte) == nil {
		t.Errorf("INFO nosuchsection = %#v, want empty bulk", got)
	}
	exec("FLUSHALL")
	if ks := string(exec("INFO", "keyspace").([]byte)); ks != "# Keyspace\r\n" {
		t.Errorf("empty INFO keyspace = %q", ks)
	}
	s.clientConnected()
	if cl := string(exec("INFO", "clients").([]byte)); !strings.Contains(cl, "connected_clients:1\r\n") {
		t.Errorf("INFO clients = %q", cl)
	}
}

// TestCopies checks that the store neither keeps the caller's buffers nor
// hands out its own.
func TestCopies(t *testing.T) {
	s := newStore(nil)
	argv := toArgv([]string{"SET", "key", "value"})
	s.exec(argv)
	copy(argv[1], "XXX")
	copy(argv[2], "XXXXX")
	got := s.exec(toArgv([]string{"GET", "key"})).([]byte)
	if string(got) != "value" {
		t.Fatalf("GET = %q after caller reused its buffers", got)
	}
	copy(got, "YYYYY")
	if got := s.exec(toArgv([]string{"GET", "key"})).([]byte); string(got) != "value" {
		t.Fatalf("GET = %q after caller modified a reply", got)
	}

	hargv := toArgv([]string{"HSET", "h", "field", "val"})
	s.exec(hargv)
	copy(hargv[2], "XXXXX")
	copy(hargv[3], "XXX")
	m := s.exec(toArgv([]string{"HGETALL", "h"})).(rediscmd.Map)
	if string(m[0].([]byte)) != "field" || string(m[1].([]byte)) != "val" {
		t.Fatalf("HGETALL = %s after caller reused its buffers", show(m))
	}
	copy(m[1].([]byte), "ZZZ")
	if got := s.exec(toArgv([]string{"HGET", "h", "field"})).([]byte); string(got) != "val" {
		t.Fatalf("HGET = %q after caller modified a reply", got)
	}

	old := s.exec(toArgv([]string{"GET", "key"})).([]byte)
	s.exec(toArgv([]string{"APPEND", "key", "more"}))
	if string(old) != "value" {
		t.Fatalf("APPEND changed an earlier reply to %q", old)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, str string
		want         bool
	}{
		{"*", "", false}, // stringmatchlen quirk (KEYS * short-circuits)
		{"", "", true},
		{"", "a", false},
		{"*", "anything", true},
		{"**", "x", true},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*a", "bca", true},
		{"*a", "ab", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b", "a/b", true}, // '/' is an ordinary byte
		{"a?b", "a/b", true},
		{"*/*", "a/b/c", true},
		{"?", "", false},
		{"?", "a", true},
		{"??", "a", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h*llo", "hllo", true},
		{"h[ae]llo", "hello", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[a-b]llo", "hcllo", false},
		{"h[b-a]llo", "hallo", true}, // reversed range
		{"[a-]", "]", true},          // "a-]" is the range ']'..'a'
		{"[a-]x", "ax", false},       // ...so the set is unterminated and swallows 'x'
		{"[]]", "]", false},          // ']' right after '[' closes an empty set
		{"[]", "a", false},
		{"[^]", "a", true},
		{"[abc", "a", true}, // unterminated set runs to the end
		{"[abc", "ab", false},
		{"[^", "x", true},
		{"[", "x", false},
		{"[\\]]", "]", true},
		{"[\\-]", "-", true},
		{"[a\\-z]", "b", false},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"\\?", "?", true},
		{"a\\", "a\\", true},
		{"\\", "\\", true},
		{"a\\\\b", "a\\b", true},
		{"[*]", "*", true},
		{"[*]", "a", false},
		{"*[", "a", false},
		{"a**", "a", true},
		{"a*?", "a", false},
		{"a*?", "ab", true},
		{"*\x00*", "a\x00b", true},
		{"[\x80-\xff]", "\x90", true},
		{"[a-\xff]", "b", false}, // signed chars: '\xff' is -1, so the range is -1..'a'
		{"[a-\xff]", "\x00", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 40), false},
	}
	for _, tc := range tests {
		if got := globMatch([]byte(tc.pattern), []byte(tc.str)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.str, got, tc.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1": 1, "-1": -1, "123": 123,
		"9223372036854775807":  9223372036854775807,
		"-9223372036854775808": -9223372036854775808,
	}
	for in, want := range good {
		if got, ok := parseInt([]byte(in)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "+1", "01", "-0", "00", " 1", "1 ", "1a", "0x10",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999", "1.5"} {
		if got, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) = %d, want failure", in, got)
		}
	}
}

func TestConcurrentIncr(t *testing.T) {
	s := newStore(nil)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if r, ok := s.exec(toArgv([]string{"INCR", "counter"})).(int64); !ok || r <= 0 {
					t.Errorf("INCR = %#v", r)
					return
				}
				s.exec(toArgv([]string{"HINCRBY", "h", "f", "2"}))
				s.exec(toArgv([]string{"SET", "k" + strconv.Itoa(w), "v", "PX", "1"}))
				s.exec(toArgv([]string{"KEYS", "k*"}))
				s.exec(toArgv([]string{"INFO"}))
			}
		}(w)
	}
	wg.Wait()
	if got := s.exec(toArgv([]string{"GET", "counter"})); string(got.([]byte)) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %q, want %d", got, workers*each)
	}
	if got := s.exec(toArgv([]string{"HGET", "h", "f"})); string(got.([]byte)) != strconv.Itoa(2*workers*each) {
		t.Fatalf("h.f = %q, want %d", got, 2*workers*each)
	}
}

func TestHashCompaction(t *testing.T) {
	s := newStore(nil)
	for i := 0; i < 100; i++ {
		s.exec(toArgv([]string{"HSET", "h", "f" + strconv.Itoa(i), strconv.Itoa(i)}))
	}
	for i := 0; i < 90; i++ {
		s.exec(toArgv([]string{"HDEL", "h", "f" + strconv.Itoa(i)}))
	}
	s.exec(toArgv([]string{"HSET", "h", "f5", "new"}))
	m := s.exec(toArgv([]string{"HGETALL", "h"})).(rediscmd.Map)
	if len(m) != 22 {
		t.Fatalf("HGETALL has %d items, want 22", len(m))
	}
	for i := 0; i < 10; i++ {
		if f := string(m[2*i].([]byte)); f != "f"+strconv.Itoa(90+i) {
			t.Fatalf("field %d = %q", i, f)
		}
	}
	if string(m[20].([]byte)) != "f5" || string(m[21].([]byte)) != "new" {
		t.Fatalf("last field = %s", show(m[20:]))
	}
	if got := s.exec(toArgv([]string{"HGET", "h", "f95"})); string(got.([]byte)) != "95" {
		t.Fatalf("HGET f95 = %s", show(got))
	}
}

func TestEmptyArgv(t *testing.T) {
	s := newStore(nil)
	checkReply(t, "empty", s.exec(nil), errMsg("ERR unknown command '', with args beginning with: "))
}
