package rediscmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tendril-db/tendril/internal/redistest"
)

// Keys agrees with the server's own key extraction (COMMAND GETKEYS) on
// command lines of every kind of key spec. (Shard channels are left out:
// the server does not call them keys, tendril routes them like keys.)
func TestKeysMatchServer(t *testing.T) {
	srv := redistest.StartServer(t)
	lines := []string{
		"GET k", "SET k v EX 10 NX", "MSET a 1 b 2 c 3", "MGET a b c", "DEL a b", "RENAME a b", "COPY a b REPLACE",
		"LMOVE src dst LEFT RIGHT", "BLMOVE src dst LEFT RIGHT 0", "BLPOP a b 0", "BRPOPLPUSH a b 0", "BZPOPMIN a b 1",
		"XREAD STREAMS s1 s2 0 0", "XREAD COUNT 10 BLOCK 0 STREAMS s1 $", "XREAD COUNT 1 STREAMS streams 0",
		"XREADGROUP GROUP g c BLOCK 100 NOACK STREAMS s1 s2 > >", "XREADGROUP GROUP STREAMS c STREAMS s 0",
		"EVAL script 2 k1 k2 a1 a2", "EVALSHA sha 1 k1 a1", "EVAL_RO s 1 k", "FCALL f 2 k1 k2 x", "FCALL_RO f 1 k",
		"BLMPOP 0 2 l1 l2 LEFT COUNT 2", "LMPOP 1 l RIGHT", "BZMPOP 1.5 1 z MIN", "ZMPOP 2 a b MAX",
		"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", "ZINTERSTORE dst 1 a", "ZDIFFSTORE dst 2 a b", "ZUNION 2 a b WITHSCORES",
		"ZINTER 2 a b", "ZDIFF 2 a b", "SINTERCARD 2 a b LIMIT 1", "ZINTERCARD 2 a b", "ZRANGESTORE dst src 0 -1",
		"SINTERSTORE d a b", "SUNIONSTORE d a b", "SDIFFSTORE d a b", "SMOVE a b m", "BITOP AND dst a b",
		"PFMERGE d a b", "PFCOUNT a b", "GEORADIUS g 15 37 200 km STORE dst", "GEORADIUS g 15 37 200 km STOREDIST dd",
		"GEORADIUSBYMEMBER g m 200 km STORE dst", "GEORADIUS g 15 37 200 km WITHDIST", "GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 km",
		"SORT k BY w_* GET # LIMIT 0 10 STORE dst", "SORT k", "SORT_RO k BY w_*", "MIGRATE h 6379 k 0 1000",
		"MIGRATE h 6379 \"\" 0 1000 COPY AUTH pw KEYS a b", "OBJECT ENCODING k", "XINFO STREAM s FULL", "XINFO CONSUMERS s g",
		"XGROUP CREATE s g $ MKSTREAM", "XGROUP DESTROY s g", "MEMORY USAGE k", "WATCH a b", "EXISTS a b", "TOUCH a b",
		"HSET h f v", "ZADD z 1 m", "XADD s * f v", "XAUTOCLAIM s g c 0 0", "LCS a b IDX", "GETEX k PERSIST",
		"RESTORE k 0 payload REPLACE", "SETRANGE k 0 v", "DUMP k", "BITFIELD k GET u8 0", "XCLAIM s g c 0 1-1",
	}
	for _, line := range lines {
		argv, err := Append(nil, line, nil)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"COMMAND", "GETKEYS"}
		for _, a := range argv {
			args = append(args, string(a))
		}
		v, err := srv.DoValue(context.Background(), args...)
		var want []string
		var re redistest.RedisError
		switch {
		case errors.As(err, &re) && strings.Contains(string(re), "no key arguments"):
		case err != nil:
			t.Errorf("COMMAND GETKEYS %s: %v", line, err)
			continue
		default:
			for _, k := range v.([]any) {
				want = append(want, fmt.Sprint(k))
			}
		}
		if got := keysOf(argv); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Keys(%s) = %q, the server says %q", line, got, want)
		}
	}
}

// The generated table is what the server says, when the server is the
// version it was generated from: every command and subcommand, its arity,
// and the flags tendril routes by.
func TestTableMatchesServer(t *testing.T) {
	srv := redistest.StartServer(t)
	info := srv.MustDo("INFO", "server")
	if !strings.Contains(info, "redis_version:"+ServerVersion+"\r") && !strings.Contains(info, "redis_version:"+ServerVersion+"\n") {
		t.Skipf("the table is from redis-server %s; this server is another version", ServerVersion)
	}
	v, err := srv.DoValue(context.Background(), "COMMAND", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var check func(e []any)
	check = func(e []any) {
		name := strings.ToUpper(strings.ReplaceAll(e[0].(string), "|", " "))
		seen[name] = true
		s := Commands[name]
		if s == nil {
			t.Errorf("%s is not in the table", name)
			return
		}
		if s.Arity != int(e[1].(int64)) {
			t.Errorf("%s: arity %d, the server says %d", name, s.Arity, e[1])
		}
		flags := map[string]bool{}
		for _, f := range e[2].([]any) {
			flags[f.(string)] = true
		}
		if flags["readonly"] != (s.Flags&FlagReadOnly != 0) || flags["write"] != (s.Flags&FlagWrite != 0) || flags["blocking"] != (s.Flags&FlagBlocking != 0) {
			t.Errorf("%s: flags %b, the server says %v", name, s.Flags, e[2])
		}
		for _, sub := range e[9].([]any) {
			check(sub.([]any))
		}
	}
	for _, e := range v.([]any) {
		check(e.([]any))
	}
	for name := range Commands {
		if !seen[name] && !containsName(extraCommands, name) {
			t.Errorf("%s is in the table, not in the server", name)
		}
	}
}
