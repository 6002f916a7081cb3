package rediscmd

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendril-db/tendril/driver"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		cmd        string
		wantName   string
		readOnly   bool
		idempotent bool
	}{
		{"GET", "GET", true, true},
		{"get", "GET", true, true},
		{"gEt", "GET", true, true},
		{"PING", "PING", true, true},
		{"ping", "PING", true, true},
		{"MGET", "MGET", true, true},
		{"hgetall", "HGETALL", true, true},
		{"SET", "SET", false, true},
		{"set", "SET", false, true},
		{"MSET", "MSET", false, true},
		{"FLUSHALL", "FLUSHALL", false, true},
		{"DEL", "DEL", false, false},
		{"INCR", "INCR", false, false},
		{"incrby", "INCRBY", false, false},
		{"APPEND", "APPEND", false, false},
		{"HINCRBY", "HINCRBY", false, false},
		{"georadiusbymember_ro", "GEORADIUSBYMEMBER_RO", true, true},
		{"restore-asking", "RESTORE-ASKING", false, false},
		{"FOO", "FOO", false, false},
		{"foo", "FOO", false, false},
		{"123", "123", false, false},
	}
	for _, tt := range tests {
		argv := bs(tt.cmd, "k")
		name, s := Lookup(argv)
		if name != tt.wantName {
			t.Errorf("Lookup(%q) name = %q, want %q", tt.cmd, name, tt.wantName)
		}
		if s.ReadOnly != tt.readOnly {
			t.Errorf("Lookup(%q) ReadOnly = %v, want %v", tt.cmd, s.ReadOnly, tt.readOnly)
		}
		if got := s.Idempotent(argv); got != tt.idempotent {
			t.Errorf("Lookup(%q) Idempotent = %v, want %v", tt.cmd, got, tt.idempotent)
		}
	}
}

func TestLookupUnknownIsWriteWithFirstKey(t *testing.T) {
	argv := bs("NOSUCHCMD", "k", "a")
	name, s := Lookup(argv)
	if name != "NOSUCHCMD" || s.ReadOnly || s.Idempotent(argv) || s.Blocks(argv) || s.Session != SessionNone {
		t.Errorf("unknown command = %q %+v, want a non-idempotent write", name, s)
	}
	if got := keysOf(argv); strings.Join(got, ",") != "k" {
		t.Errorf("unknown command keys = %q, want [k]", got)
	}
}

// Lookup's name must be the ASCII upper case: Unicode case mapping turns
// commands Redis does not know into known ones.
func TestLookupASCIIOnly(t *testing.T) {
	for _, cmd := range []string{"ſet", "pıng", "get\xff"} {
		name, _ := Lookup(bs(cmd))
		want := asciiUpper(cmd)
		if name != want {
			t.Errorf("Lookup(%q) name = %q, want %q", cmd, name, want)
		}
	}
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Subcommands of container commands are found as "CLIENT SETNAME", in any
// case; a subcommand the container lacks is a keyless write never to
// retry, named after the container (the unknown word stays out of
// telemetry).
func TestLookupSubcommands(t *testing.T) {
	tests := []struct {
		argv []string
		name string
		read bool
	}{
		{[]string{"CLIENT", "SETNAME", "x"}, "CLIENT SETNAME", false},
		{[]string{"client", "setname", "x"}, "CLIENT SETNAME", false},
		{[]string{"Client", "SetName", "x"}, "CLIENT SETNAME", false},
		{[]string{"CLIENT", "LIST"}, "CLIENT LIST", true},
		{[]string{"config", "get", "maxmemory"}, "CONFIG GET", true},
		{[]string{"CONFIG", "SET", "maxmemory", "1"}, "CONFIG SET", false},
		{[]string{"XINFO", "STREAM", "s"}, "XINFO STREAM", true},
		{[]string{"OBJECT", "ENCODING", "k"}, "OBJECT ENCODING", true},
		{[]string{"XGROUP", "CREATE", "s", "g", "$"}, "XGROUP CREATE", false},
		{[]string{"CLIENT", "NOSUCH"}, "CLIENT", false},
		{[]string{"CLIENT", "a-subcommand-name-longer-than-any-buffer"}, "CLIENT", false},
		{[]string{"CLIENT"}, "CLIENT", false},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "tendril"}, "CLIENT SETINFO", false}, // Redis 7.2, added by hand
	}
	for _, tt := range tests {
		argv := bs(tt.argv...)
		name, s := Lookup(argv)
		if name != tt.name || s.Name != tt.name || s.ReadOnly != tt.read {
			t.Errorf("Lookup(%q) = %q (spec %q, read %v), want %q read %v", tt.argv, name, s.Name, s.ReadOnly, tt.name, tt.read)
		}
	}
	argv := bs("CLIENT", "NOSUCH", "k")
	if _, s := Lookup(argv); s.Idempotent(argv) || len(keysOf(argv)) != 0 {
		t.Errorf("unknown subcommand: idempotent %v keys %q, want neither", s.Idempotent(argv), keysOf(argv))
	}
	for _, c := range []string{"CLIENT", "CONFIG", "XINFO", "OBJECT", "XGROUP", "SCRIPT", "FUNCTION", "MEMORY", "CLUSTER", "ACL", "COMMAND"} {
		if _, s := Lookup(bs(c)); !s.Container() {
			t.Errorf("%s is not a container", c)
		}
	}
}

// Known commands, subcommands and routes cost no allocation: Lookup runs
// for every statement.
func TestLookupAllocs(t *testing.T) {
	for _, argv := range [][][]byte{
		bs("GET", "k"), bs("get", "k"), bs("gEt", "k"), bs("CLIENT", "SETNAME", "x"),
		bs("client", "setname", "x"), bs("Client", "SetName", "x"), bs("XREAD", "BLOCK", "0", "STREAMS", "s", "0"),
		bs("SET", "k", "v", "NX"), bs("EVAL", "s", "2", "a", "b"), bs("ZRANGE", "z", "0", "-1", "WITHSCORES"),
		bs("ZUNIONSTORE", "d", "2", "a", "b"), bs("SORT", "k", "STORE", "d"),
	} {
		if n := testing.AllocsPerRun(100, func() {
			_, s := Lookup(argv)
			s.Idempotent(argv)
			s.Blocks(argv)
			s.ReplyShape(argv)
			Route(argv)
		}); n != 0 {
			t.Errorf("Lookup and Route of %q: %v allocations, want 0", argv, n)
		}
	}
}

// The table is consistent: names are upper case and found in any case,
// tendril's reads are not server writes, every policy names a command.
func TestCommandsTable(t *testing.T) {
	if len(Commands) < 350 {
		t.Fatalf("only %d commands in the table", len(Commands))
	}
	for name, s := range Commands {
		if name != strings.ToUpper(name) || s.Name != name {
			t.Errorf("command %q (spec %q) is not upper case", name, s.Name)
		}
		if s.ReadOnly && s.Flags&FlagWrite != 0 {
			t.Errorf("command %q is read-only but the server flags it write", name)
		}
		if s.Flags&FlagReadOnly != 0 && !s.ReadOnly {
			t.Errorf("command %q is flagged readonly by the server but not read-only", name)
		}
		for _, k := range s.KeySpecs {
			if !k.Unknown && k.Keyword == "" && k.Index < 1 {
				t.Errorf("command %q has a key spec with no begin: %+v", name, k)
			}
		}
		argv := bs(strings.Fields(strings.ToLower(name))...)
		if got, gs := Lookup(argv); got != name || gs != s {
			t.Errorf("Lookup(lower %q) = %q, want %q", name, got, name)
		}
	}
	for name := range policies {
		if Commands[name] == nil {
			t.Errorf("policy for %q, which the table does not have", name)
		}
	}
}

func keysOf(argv [][]byte) []string {
	_, s := Lookup(argv)
	var out []string
	s.Keys(argv, func(k []byte) { out = append(out, string(k)) })
	return out
}

// Keys follows the server's key specs: ranges, keyword searches (XREAD
// STREAMS, GEORADIUS STORE), key counts (EVAL, BLMPOP, ZUNIONSTORE
// numkeys), and the commands with key finders of their own (SORT,
// MIGRATE). TestKeysMatchServer checks the same lines against a server.
func TestKeys(t *testing.T) {
	tests := []struct {
		argv string
		want string
	}{
		{"GET k", "k"},
		{"get k", "k"},
		{"GET", ""},
		{"SET k v EX 10", "k"},
		{"MSET a 1 b 2 c 3", "a,b,c"},
		{"mset a 1", "a"},
		{"MSET", ""},
		{"MSETNX a 1 b 2", "a,b"},
		{"DEL a b c", "a,b,c"},
		{"UNLINK a b", "a,b"},
		{"MGET a b c", "a,b,c"},
		{"HSET h f v f2 v2", "h"},
		{"RENAME a b", "a,b"},
		{"RENAME a", "a"},
		{"LMOVE src dst LEFT RIGHT", "src,dst"},
		{"BLPOP a b 0", "a,b"},
		{"BLPOP a", ""},
		{"BRPOPLPUSH src dst 0", "src,dst"},
		{"PING", ""},
		{"PING hello", ""},
		{"KEYS *", ""},
		{"XREAD STREAMS s1 s2 0 0", "s1,s2"},
		{"xread count 10 block 0 streams s1 $", "s1"},
		{"XREAD COUNT 1 STREAMS streams 0", "streams"},
		{"XREAD STREAMS a b c", "a"},
		{"XREAD COUNT 1 BLOCK 0", ""},
		{"XREADGROUP GROUP STREAMS c STREAMS s 0", "s"},
		{"XREADGROUP GROUP g c BLOCK 100 NOACK STREAMS s1 s2 > >", "s1,s2"},
		{"EVAL script 2 k1 k2 a1 a2", "k1,k2"},
		{"EVAL script 0 a1", ""},
		{"EVAL script x k1", ""},
		{"EVAL script -1 k1", ""},
		{"EVAL script 5 k1", ""},
		{"EVALSHA sha 1 k1 a1", "k1"},
		{"FCALL f 1 k1 a1", "k1"},
		{"BLMPOP 0 2 l1 l2 LEFT COUNT 2", "l1,l2"},
		{"BZMPOP 1.5 1 z MIN", "z"},
		{"LMPOP 1 l RIGHT", "l"},
		{"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", "dst,a,b"},
		{"ZUNION 2 a b WITHSCORES", "a,b"},
		{"SINTERCARD 2 a b LIMIT 1", "a,b"},
		{"GEORADIUS g 15 37 200 km STORE dst", "g,dst"},
		{"GEORADIUS g 15 37 200 km STOREDIST dd STORE d", "g,d,dd"},
		{"GEORADIUS g 15 37 200 km WITHDIST", "g"},
		{"SORT k BY w_* GET STORE LIMIT 0 10 STORE dst", "k,dst"},
		{"SORT k", "k"},
		{"SORT_RO k BY store", "k"},
		{"MIGRATE h 6379 k 0 1000", "k"},
		{"MIGRATE h 6379 \"\" 0 1000 COPY AUTH KEYS KEYS a b", "a,b"},
		{"MIGRATE h 6379 \"\" 0 1000 AUTH2 u KEYS KEYS a", "a"},
		{"OBJECT ENCODING k", "k"},
		{"XINFO STREAM s FULL", "s"},
		{"XGROUP CREATE s g $", "s"},
		{"MEMORY USAGE k", "k"},
		{"WATCH a b", "a,b"},
		{"SPUBLISH ch msg", "ch"},
		{"SSUBSCRIBE c1 c2", "c1,c2"},
		{"CLIENT SETNAME x", ""},
		{"BITOP AND dst a b", "dst,a,b"},
		{"NOSUCHCMD k a b", "k"},
		{"NOSUCHCMD", ""},
	}
	for _, tt := range tests {
		argv, err := Append(nil, tt.argv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(keysOf(argv), ","); got != tt.want {
			t.Errorf("Keys(%s) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestKeySpecBounds(t *testing.T) {
	argv := bs("CMD", "a", "b", "c", "d", "e")
	tests := []struct {
		spec KeySpec
		want string
	}{
		{KeySpec{Unknown: true}, ""},
		{KeySpec{Index: 1, KeyStep: 1}, "a"},
		{KeySpec{Index: 1, LastKey: -1, KeyStep: 1}, "a,b,c,d,e"},
		{KeySpec{Index: 1, LastKey: -1, KeyStep: 2}, "a,c,e"},
		{KeySpec{Index: 2, LastKey: -2, KeyStep: 1}, "b,c,d"},
		{KeySpec{Index: 1, LastKey: 2, KeyStep: 1}, "a,b,c"},
		{KeySpec{Index: 1, LastKey: 100, KeyStep: 1}, ""}, // out of the arguments: a syntax error
		{KeySpec{Index: 1, LastKey: -1}, "a,b,c,d,e"},     // step 0 is 1
		{KeySpec{Index: 6, KeyStep: 1}, ""},
		{KeySpec{Index: 1, LastKey: -10, KeyStep: 1}, ""},
		{KeySpec{Index: 1, LastKey: -1, KeyStep: 1, Limit: 2}, "a,b"},
		{KeySpec{Keyword: "B", StartFrom: 1, LastKey: -1, KeyStep: 1}, "c,d,e"},
		{KeySpec{Keyword: "B", StartFrom: 3, LastKey: -1, KeyStep: 1}, ""},
		{KeySpec{Keyword: "D", StartFrom: -1, KeyStep: 1}, "e"},
		{KeySpec{Keyword: "B", StartFrom: -2, KeyStep: 1}, "c"},
		{KeySpec{Keyword: "E", StartFrom: 1, KeyStep: 1}, ""}, // nothing after the keyword
		{KeySpec{Keyword: "X", StartFrom: 1, KeyStep: 1}, ""},
	}
	for _, tt := range tests {
		s := Spec{KeySpecs: []KeySpec{tt.spec}}
		var got []string
		s.Keys(argv, func(k []byte) { got = append(got, string(k)) })
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%+v.Keys = %q, want %q", tt.spec, got, tt.want)
		}
	}
	// A count: keys start FirstKey after the count.
	s := Spec{KeySpecs: []KeySpec{{Index: 1, KeyNum: true, FirstKey: 1, KeyStep: 1}}}
	for _, tt := range []struct{ argv, want string }{
		{"CMD 2 a b c", "a,b"}, {"CMD 0 a", ""}, {"CMD 3 a b", ""}, {"CMD x a", ""},
		{"CMD 99999999999999999999 a", ""}, {"CMD", ""},
	} {
		var got []string
		s.Keys(bs(strings.Fields(tt.argv)...), func(k []byte) { got = append(got, string(k)) })
		if strings.Join(got, ",") != tt.want {
			t.Errorf("keynum Keys(%s) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// Route: op, key, partition and intent of a statement.
func TestRoute(t *testing.T) {
	tests := []struct {
		argv   string
		op     string
		key    string // "" means nil
		intent driver.Intent
	}{
		{"GET foo", "GET", "foo", driver.Read},
		{"get foo", "GET", "foo", driver.Read},
		{"SET foo v", "SET", "foo", driver.Write},
		{"set {user1000}.following v", "SET", "{user1000}.following", driver.Write},
		{"MSET a 1 b 2", "MSET", "a", driver.Write},
		{"MGET b a", "MGET", "b", driver.Read},
		{"NOSUCHCMD k v", "NOSUCHCMD", "k", driver.Write},
		{"NOSUCHCMD", "NOSUCHCMD", "", driver.Write},
		{"PING", "PING", "", driver.Read},
		{"ping hello", "PING", "", driver.Read},
		{"KEYS *", "KEYS", "", driver.Read},
		{"FLUSHALL", "FLUSHALL", "", driver.Write},
		{"GET", "GET", "", driver.Read},
		{"XREAD COUNT 2 STREAMS s1 s2 0 0", "XREAD", "s1", driver.Read},
		{"XREAD BLOCK 0 STREAMS {t}a {t}b $ $", "XREAD", "{t}a", driver.Read},
		{"XREADGROUP GROUP g c STREAMS s >", "XREADGROUP", "s", driver.Write},
		{"EVAL script 2 k1 k2 a", "EVAL", "k1", driver.Write},
		{"EVAL script 0", "EVAL", "", driver.Write},
		{"EVAL_RO script 1 k", "EVAL_RO", "k", driver.Read},
		{"BLMPOP 0 2 l1 l2 LEFT", "BLMPOP", "l1", driver.Write},
		{"BZMPOP 0 1 z MAX", "BZMPOP", "z", driver.Write},
		{"ZUNIONSTORE d 2 a b", "ZUNIONSTORE", "d", driver.Write},
		{"CLIENT SETNAME x", "CLIENT SETNAME", "", driver.Write},
		{"CLIENT LIST", "CLIENT LIST", "", driver.Read},
		{"CONFIG GET maxmemory", "CONFIG GET", "", driver.Read},
		{"OBJECT ENCODING k", "OBJECT ENCODING", "k", driver.Read},
		{"WATCH k", "WATCH", "k", driver.Write},
		{"SPUBLISH ch m", "SPUBLISH", "ch", driver.Write},
	}
	for _, tt := range tests {
		argv, err := Append(nil, tt.argv, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := Route(argv)
		if r.Op != tt.op {
			t.Errorf("Route(%s).Op = %q, want %q", tt.argv, r.Op, tt.op)
		}
		if r.Intent != tt.intent {
			t.Errorf("Route(%s).Intent = %v, want %v", tt.argv, r.Intent, tt.intent)
		}
		if tt.key == "" {
			if r.Key != nil || r.Partition != driver.AnyPartition {
				t.Errorf("Route(%s) = key %q partition %d, want no key, AnyPartition", tt.argv, r.Key, r.Partition)
			}
			continue
		}
		if string(r.Key) != tt.key {
			t.Errorf("Route(%s).Key = %q, want %q", tt.argv, r.Key, tt.key)
		}
		if want := int(Slot([]byte(tt.key))); r.Partition != want {
			t.Errorf("Route(%s).Partition = %d, want Slot = %d", tt.argv, r.Partition, want)
		}
	}
}

// Blocking, session and idempotent flags of commands with their options.
func TestRouteFlags(t *testing.T) {
	const (
		B = 1 << iota // Exclusive, not Session: blocking
		S             // Session (and Exclusive)
		I             // Idempotent
	)
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	soon := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	later := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	laterMs := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	tests := []struct {
		argv  string
		flags int
	}{
		// Blocking.
		{"BLPOP l 0", B},
		{"BRPOP l1 l2 1.5", B},
		{"BLMOVE a b LEFT RIGHT 0", B},
		{"BRPOPLPUSH a b 0", B},
		{"BZPOPMIN z 0", B},
		{"BZPOPMAX z 0", B},
		{"BLMPOP 0 1 l LEFT", B},
		{"BZMPOP 0 1 z MIN", B},
		{"WAIT 1 0", S | I},      // answers about its own connection's writes
		{"WAITAOF 1 0 0", S | I}, // (SessionBound): refused where shared
		{"XREAD BLOCK 0 STREAMS s $", B | I},
		{"xread count 5 block 100 streams s 0", B | I},
		{"XREAD COUNT 5 STREAMS s 0", I},
		{"XREAD STREAMS BLOCK 0", I}, // a stream named BLOCK
		{"XREADGROUP GROUP g c BLOCK 0 STREAMS s >", B},
		{"XREADGROUP GROUP g c STREAMS s >", 0},
		{"XREADGROUP GROUP BLOCK c STREAMS s >", 0}, // a group named BLOCK
		{"LPOP l", 0},
		{"RPOPLPUSH a b", 0},
		{"DEBUG SLEEP 0", 0},
		// Session.
		{"SELECT 1", S | I},
		{"MULTI", S},
		{"EXEC", S},
		{"DISCARD", S},
		{"WATCH k", S | I},
		{"UNWATCH", S | I},
		{"READONLY", S | I},
		{"READWRITE", S | I},
		{"AUTH u p", S | I},
		{"HELLO 3", S | I},
		{"RESET", S | I},
		{"ASKING", S | I},
		{"QUIT", S},
		{"SUBSCRIBE c", S | I},
		{"PSUBSCRIBE p*", S | I},
		{"SSUBSCRIBE c", S | I},
		{"UNSUBSCRIBE", S | I},
		{"PUNSUBSCRIBE", S | I},
		{"SUNSUBSCRIBE c", S | I},
		{"MONITOR", S},
		{"SYNC", S},
		{`PSYNC "?" -1`, S},
		{"REPLCONF listening-port 1", S},
		{"CLIENT REPLY OFF", S},
		{"CLIENT SETNAME x", S | I},
		{"CLIENT SETINFO LIB-NAME x", S | I},
		{"CLIENT TRACKING ON", S | I},
		{"CLIENT CACHING YES", S | I},
		{"CLIENT NO-EVICT ON", S | I},
		{"CLIENT NO-TOUCH ON", S | I},
		{"SCRIPT DEBUG YES", S},
		{"CLIENT ID", I},
		{"CLIENT INFO", I},
		{"CLIENT LIST", I},
		{"CLIENT GETNAME", I},
		{"CLIENT GETREDIR", I},
		{"CLIENT TRACKINGINFO", I},
		{"CLIENT KILL ID 1", 0},
		{"CLIENT PAUSE 10", I},
		{"CLIENT UNPAUSE", I},
		{"CLIENT UNBLOCK 1", 0},
		{"PUBLISH c m", 0},
		// Idempotency from the command and its options.
		{"GET k", I},
		{"SET k v", I},
		{"SET k v EX 10", I},
		{"SET k v XX", I},
		{"SET k v NX", 0},
		{"set k v ex 10 nx", 0},
		{"SET k v GET", 0},
		{"SET k NX", I}, // sets k to "NX"
		{"SETNX k v", 0},
		{"SETEX k 10 v", I},
		{"PSETEX k 10 v", I},
		{"MSET a 1 b 2", I},
		{"MSETNX a 1", 0},
		{"HMSET h f v", I},
		{"HSET h f v", 0},
		{"HSETNX h f v", 0},
		{"HDEL h f", 0},
		{"DEL k", 0},
		{"UNLINK k", 0},
		{"SADD s m", 0},
		{"SREM s m", 0},
		{"ZADD z 1 m", 0},
		{"ZREM z m", 0},
		{"RENAME a b", 0},
		{"RENAMENX a b", 0},
		{"EXPIRE k 10", I},
		{"EXPIRE k 10 NX", 0},
		{"EXPIRE k 10 xx", 0},
		{"EXPIRE k 10 GT", 0},
		{"EXPIRE k 10 LT", 0},
		{"EXPIRE k 0", 0},
		{"EXPIRE k -1", 0},
		{"PEXPIRE k 10000", I},
		{"PEXPIRE k 10000 NX", 0},
		{"EXPIREAT k " + later, I},
		{"EXPIREAT k " + soon, 0},
		{"EXPIREAT k " + past, 0},
		{"EXPIREAT k " + later + " NX", 0},
		{"PEXPIREAT k " + laterMs, I},
		{"PEXPIREAT k " + later, 0}, // seconds read as milliseconds: 1970
		{"PERSIST k", 0},
		{"GETEX k", I},
		{"GETEX k EX 10", I},
		{"GETEX k PERSIST", I},
		{"GETEX k EXAT " + later, I},
		{"GETEX k EXAT " + past, 0},
		{"GETEX k PXAT " + laterMs, I},
		{"GETDEL k", 0},
		{"GETSET k v", 0},
		{"INCR k", 0},
		{"INCRBYFLOAT k 1.5", 0},
		{"APPEND k v", 0},
		{"LPUSH l v", 0},
		{"RPUSH l v", 0},
		{"XADD s * f v", 0},
		{"LSET l 0 v", I},
		{"LTRIM l 0 9", I},
		{"LTRIM l 0 -1", I},
		{"LTRIM l -10 -1", I},
		{"LTRIM l 1 -1", 0},
		{"LTRIM l 0 -2", 0},
		{"SETRANGE k 0 v", I},
		{"SETBIT k 0 1", 0},
		{"COPY a b", 0},
		{"COPY a b REPLACE", I},
		{"RESTORE k 0 payload", 0},
		{"RESTORE k 0 payload REPLACE", I},
		{"MIGRATE h 1 k 0 10", 0},
		{"MIGRATE h 1 k 0 10 COPY REPLACE", I},
		{"MIGRATE h 1 \"\" 0 10 COPY KEYS REPLACE", 0}, // a key named REPLACE
		{"SINTERSTORE d a b", I},
		{"SINTERSTORE a a b", 0},
		{"ZUNIONSTORE d 2 a b", I},
		{"ZUNIONSTORE d 2 d b", 0},
		{"ZRANGESTORE d s 0 1", I},
		{"BITOP AND d a b", I},
		{"BITOP XOR a a b", 0},
		{"SORT k", I},
		{"SORT k STORE d", I},
		{"SORT k STORE k", 0},
		{"GEORADIUS g 1 2 3 km", I},
		{"GEORADIUS g 1 2 3 km STORE g", 0},
		{"PFMERGE d a b", I},
		{"PFADD h a", 0},
		{"FLUSHDB", I},
		{"FLUSHALL ASYNC", I},
		{"SWAPDB 0 1", 0},
		{"EVAL s 0", 0},
		{"EVALSHA s 0", 0},
		{"FCALL f 0", 0},
		{"EVAL_RO s 0", I},
		{"FCALL_RO f 0", I},
		{"FUNCTION LOAD code", 0},
		{"FUNCTION LOAD REPLACE code", I},
		{"FUNCTION RESTORE p", 0},
		{"FUNCTION RESTORE p REPLACE", I},
		{"SCRIPT LOAD s", I},
		{"CONFIG SET maxmemory 1", I},
		{"CONFIG GET maxmemory", I},
		{"XGROUP CREATE s g $", 0},
		{"XGROUP SETID s g $", I},
		{"NOSUCHCMD k", 0},
		// An unknown CLIENT subcommand may switch the session (Valkey 8's
		// CLIENT CAPA, 8.1's CLIENT IMPORT-SOURCE); other containers'
		// change none.
		{"CLIENT NOSUCH", S},
		{"CLIENT CAPA redirect", S},
		{"CLIENT IMPORT-SOURCE on", S},
		{"CONFIG NOSUCH x", 0},
	}
	for _, tt := range tests {
		argv, err := Append(nil, tt.argv, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := Route(argv)
		want := driver.Route{Exclusive: tt.flags&(B|S) != 0, Session: tt.flags&S != 0, Idempotent: tt.flags&I != 0}
		if r.Exclusive != want.Exclusive || r.Session != want.Session || r.Idempotent != want.Idempotent {
			t.Errorf("Route(%s): Exclusive %v Session %v Idempotent %v, want %v %v %v",
				tt.argv, r.Exclusive, r.Session, r.Idempotent, want.Exclusive, want.Session, want.Idempotent)
		}
	}
}

func TestSessionKinds(t *testing.T) {
	for cmd, want := range map[string]SessionKind{
		"SELECT 1": SessionDB, "MULTI": SessionTxBegin, "EXEC": SessionTxEnd, "DISCARD": SessionTxEnd,
		"WATCH k": SessionWatch, "UNWATCH": SessionUnwatch, "READONLY": SessionReadMode, "READWRITE": SessionReadMode,
		"CLIENT SETNAME x": SessionName, "CLIENT SETINFO LIB-VER 1": SessionName,
		"CLIENT TRACKING ON": SessionClient, "CLIENT CACHING YES": SessionClient, "CLIENT NO-EVICT ON": SessionClient,
		"CLIENT NO-TOUCH ON": SessionClient, "AUTH p": SessionAuth, "HELLO 3": SessionAuth, "RESET": SessionAuth,
		"SUBSCRIBE c": SessionSubscribe, "SUNSUBSCRIBE": SessionSubscribe, "MONITOR": SessionSubscribe,
		"CLIENT REPLY SKIP": SessionOther, "ASKING": SessionOther, "QUIT": SessionOther, "PSYNC ? -1": SessionOther,
		"CLIENT CAPA redirect": SessionOther, "CLIENT NOSUCH": SessionOther, "CONFIG NOSUCH": SessionNone,
		"WAIT 1 0": SessionBound, "WAITAOF 1 0 0": SessionBound,
		"CLIENT LIST": SessionNone, "CLIENT KILL ID 1": SessionNone, "GET k": SessionNone, "NOSUCH": SessionNone,
	} {
		if _, s := Lookup(bs(strings.Fields(cmd)...)); s.Session != want {
			t.Errorf("%s: Session = %v, want %v", cmd, s.Session, want)
		}
	}
}

func TestReplyShape(t *testing.T) {
	for cmd, want := range map[string]Shape{
		"GET k":                    ShapeAsIs,
		"HGETALL h":                ShapeMap,
		"hgetall h":                ShapeMap,
		"CONFIG GET *":             ShapeMap,
		"XINFO STREAM s FULL":      ShapeMap,
		"ACL GETUSER u":            ShapeMap,
		"LCS a b IDX":              ShapeMap,
		"LCS a b":                  ShapeAsIs,
		"ZSCORE z m":               ShapeDouble,
		"ZINCRBY z 1 m":            ShapeDouble,
		"ZADD z INCR 1 m":          ShapeDouble,
		"ZADD z XX CH INCR 1 m":    ShapeDouble,
		"ZADD z 1 INCR":            ShapeAsIs, // a member named INCR
		"ZMSCORE z a b":            ShapeDoubles,
		"ZRANGE z 0 -1 WITHSCORES": ShapeScorePairs,
		"ZRANGE z 0 -1":            ShapeAsIs,
		"ZRANGEBYSCORE z 0 1 WITHSCORES LIMIT 0 1":          ShapeScorePairs,
		"ZREVRANGE z 0 1 withscores":                        ShapeScorePairs,
		"ZUNION 2 a b WITHSCORES":                           ShapeScorePairs,
		"ZUNION 1 WITHSCORES":                               ShapeAsIs, // a key named WITHSCORES
		"ZINTER 2 a b WEIGHTS 1 2 AGGREGATE MAX WITHSCORES": ShapeScorePairs,
		"ZDIFF 1 a":                        ShapeAsIs,
		"ZRANDMEMBER z 2 WITHSCORES":       ShapeScorePairs,
		"ZPOPMIN z":                        ShapeScorePair,
		"ZPOPMAX z 2":                      ShapeScorePairs,
		"ZRANK z m WITHSCORE":              ShapeScorePair,
		"BZPOPMIN z 0":                     ShapeKeyScorePair,
		"ZMPOP 1 z MIN":                    ShapeKeyScorePairs,
		"BZMPOP 0 1 z MAX":                 ShapeKeyScorePairs,
		"HRANDFIELD h 2 WITHVALUES":        ShapePairs,
		"HRANDFIELD h 2":                   ShapeAsIs,
		"XREAD STREAMS s 0":                ShapeStreams,
		"XREADGROUP GROUP g c STREAMS s >": ShapeStreams,
		"GEOPOS g a":                       ShapeCoords,
		"GEOSEARCH g FROMLONLAT 1 2 BYRADIUS 3 km WITHCOORD": ShapeGeoItems,
		"GEOSEARCH g FROMMEMBER WITHCOORD BYRADIUS 3 km":     ShapeAsIs,
		"GEORADIUS g 1 2 3 km WITHDIST WITHCOORD":            ShapeGeoItems,
		"GEORADIUSBYMEMBER_RO g m 3 km WITHCOORD":            ShapeGeoItems,
		"GEORADIUS g 1 2 3 km STORE WITHCOORD":               ShapeAsIs,
		"MEMORY STATS":                                       ShapeMemoryStats,
		"ACL LOG":                                            ShapeACLLog,
		"SMEMBERS s":                                         ShapeAsIs,
	} {
		argv := bs(strings.Fields(cmd)...)
		if _, s := Lookup(argv); s.ReplyShape(argv) != want {
			t.Errorf("%s: ReplyShape = %v, want %v", cmd, s.ReplyShape(argv), want)
		}
	}
}

func TestRouteHashTagsShareSlot(t *testing.T) {
	a := Route(bs("GET", "{user1000}.following"))
	b := Route(bs("SET", "{user1000}.followers", "v"))
	if a.Partition != b.Partition || a.Partition != int(Slot([]byte("user1000"))) {
		t.Errorf("partitions %d and %d, want both %d", a.Partition, b.Partition, Slot([]byte("user1000")))
	}
	if r := Route(bs("GET", "foo")); r.Partition != 12182 {
		t.Errorf("Route(GET foo).Partition = %d, want 12182", r.Partition)
	}
}

// Route from a parsed statement, as the drivers use it.
func TestRouteFromAppend(t *testing.T) {
	argv, err := Append(nil, "get ?", []driver.Value{"bar"})
	if err != nil {
		t.Fatal(err)
	}
	r := Route(argv)
	if r.Op != "GET" || string(r.Key) != "bar" || r.Partition != 5061 || r.Intent != driver.Read || !r.Idempotent {
		t.Errorf("Route = %+v, want GET bar 5061 read idempotent", r)
	}
}

func TestRouteOf(t *testing.T) {
	r, err := RouteOf("XREAD BLOCK 0 STREAMS ? $", []driver.Value{"s"})
	if err != nil || r.Op != "XREAD" || r.Key != nil || r.Partition != int(Slot([]byte("s"))) || !r.Exclusive {
		t.Errorf("RouteOf = %+v, %v, want XREAD on s's slot, exclusive, no key", r, err)
	}
	if _, err := RouteOf("?", []driver.Value{"FLUSHDB"}); err == nil {
		t.Error("RouteOf(?, FLUSHDB) succeeded")
	}
}
