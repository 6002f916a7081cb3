package rediscmd

import (
	"strings"
	"testing"

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
		{"DEL", "DEL", false, true},
		{"MSET", "MSET", false, true},
		{"FLUSHALL", "FLUSHALL", false, true},
		{"INCR", "INCR", false, false},
		{"incrby", "INCRBY", false, false},
		{"APPEND", "APPEND", false, false},
		{"HINCRBY", "HINCRBY", false, false},
		{"FOO", "FOO", false, false},
		{"foo", "FOO", false, false},
		{"123", "123", false, false},
	}
	for _, tt := range tests {
		name, s := Lookup(bs(tt.cmd, "k"))
		if name != tt.wantName {
			t.Errorf("Lookup(%q) name = %q, want %q", tt.cmd, name, tt.wantName)
		}
		if s.ReadOnly != tt.readOnly {
			t.Errorf("Lookup(%q) ReadOnly = %v, want %v", tt.cmd, s.ReadOnly, tt.readOnly)
		}
		if s.Idempotent != tt.idempotent {
			t.Errorf("Lookup(%q) Idempotent = %v, want %v", tt.cmd, s.Idempotent, tt.idempotent)
		}
	}
}

func TestLookupUnknownIsWriteWithFirstKey(t *testing.T) {
	_, s := Lookup(bs("NOSUCHCMD", "k", "a"))
	if want := (Spec{First: 1, Last: 1, Step: 1}); s != want {
		t.Errorf("unknown command spec = %+v, want %+v", s, want)
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

// Every command in the table is spelled in upper case, so Lookup finds it.
func TestCommandsTable(t *testing.T) {
	for name, s := range Commands {
		if name != strings.ToUpper(name) {
			t.Errorf("command %q is not upper case", name)
		}
		if s.ReadOnly && !s.Idempotent {
			t.Errorf("command %q is read-only but not idempotent", name)
		}
		if s.First < 0 || (s.First == 0 && (s.Last != 0 || s.Step != 0)) {
			t.Errorf("command %q has a bad key spec %+v", name, s)
		}
		if s.First > 0 && (s.Step < 1 || (s.Last > 0 && s.Last < s.First)) {
			t.Errorf("command %q has a bad key spec %+v", name, s)
		}
		if got, gs := Lookup(bs(strings.ToLower(name))); got != name || gs != s {
			t.Errorf("Lookup(lower %q) = %q %+v, want %q %+v", name, got, gs, name, s)
		}
	}
}

func keysOf(argv [][]byte) []string {
	_, s := Lookup(argv)
	var out []string
	s.Keys(argv, func(k []byte) { out = append(out, string(k)) })
	return out
}

func TestKeys(t *testing.T) {
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"GET", "k"}, []string{"k"}},
		{[]string{"get", "k"}, []string{"k"}},
		{[]string{"GET"}, nil},
		{[]string{"SET", "k", "v", "EX", "10"}, []string{"k"}},
		{[]string{"MSET", "a", "1", "b", "2", "c", "3"}, []string{"a", "b", "c"}},
		{[]string{"mset", "a", "1"}, []string{"a"}},
		{[]string{"MSET"}, nil},
		{[]string{"MSETNX", "a", "1", "b", "2"}, []string{"a", "b"}},
		{[]string{"DEL", "a", "b", "c"}, []string{"a", "b", "c"}},
		{[]string{"DEL", "a"}, []string{"a"}},
		{[]string{"DEL"}, nil},
		{[]string{"UNLINK", "a", "b"}, []string{"a", "b"}},
		{[]string{"EXISTS", "a", "b"}, []string{"a", "b"}},
		{[]string{"MGET", "a", "b", "c"}, []string{"a", "b", "c"}},
		{[]string{"HSET", "h", "f", "v", "f2", "v2"}, []string{"h"}},
		{[]string{"RENAME", "a", "b"}, []string{"a", "b"}},
		{[]string{"RENAME", "a"}, []string{"a"}},
		{[]string{"PING"}, nil},
		{[]string{"PING", "hello"}, nil},
		{[]string{"ECHO", "x"}, nil},
		{[]string{"KEYS", "*"}, nil},
		{[]string{"NOSUCHCMD", "k", "a", "b"}, []string{"k"}},
		{[]string{"NOSUCHCMD"}, nil},
	}
	for _, tt := range tests {
		got := keysOf(bs(tt.argv...))
		if strings.Join(got, ",") != strings.Join(tt.want, ",") || len(got) != len(tt.want) {
			t.Errorf("Keys(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestSpecKeys(t *testing.T) {
	argv := bs("CMD", "a", "b", "c", "d", "e")
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{}, ""},
		{Spec{First: 1, Last: 1, Step: 1}, "a"},
		{Spec{First: 1, Last: -1, Step: 1}, "a,b,c,d,e"},
		{Spec{First: 1, Last: -1, Step: 2}, "a,c,e"},
		{Spec{First: 2, Last: -2, Step: 1}, "b,c,d"},
		{Spec{First: 1, Last: 3, Step: 1}, "a,b,c"},
		{Spec{First: 1, Last: 100, Step: 1}, "a,b,c,d,e"},
		{Spec{First: 1, Last: -1, Step: 0}, "a,b,c,d,e"}, // step 0 is treated as 1
		{Spec{First: 6, Last: -1, Step: 1}, ""},
		{Spec{First: 1, Last: -10, Step: 1}, ""},
	}
	for _, tt := range tests {
		var got []string
		tt.spec.Keys(argv, func(k []byte) { got = append(got, string(k)) })
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%+v.Keys = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		argv       []string
		op         string
		key        string // "" means nil
		intent     driver.Intent
		idempotent bool
	}{
		{[]string{"GET", "foo"}, "GET", "foo", driver.Read, true},
		{[]string{"get", "foo"}, "GET", "foo", driver.Read, true},
		{[]string{"SET", "foo", "v"}, "SET", "foo", driver.Write, true},
		{[]string{"set", "{user1000}.following", "v"}, "SET", "{user1000}.following", driver.Write, true},
		{[]string{"INCR", "n"}, "INCR", "n", driver.Write, false},
		{[]string{"MSET", "a", "1", "b", "2"}, "MSET", "a", driver.Write, true},
		{[]string{"MGET", "b", "a"}, "MGET", "b", driver.Read, true},
		{[]string{"DEL", "x", "y"}, "DEL", "x", driver.Write, true},
		{[]string{"NOSUCHCMD", "k", "v"}, "NOSUCHCMD", "k", driver.Write, false},
		{[]string{"nosuchcmd", "k"}, "NOSUCHCMD", "k", driver.Write, false},
		{[]string{"NOSUCHCMD"}, "NOSUCHCMD", "", driver.Write, false},
		{[]string{"PING"}, "PING", "", driver.Read, true},
		{[]string{"ping", "hello"}, "PING", "", driver.Read, true},
		{[]string{"KEYS", "*"}, "KEYS", "", driver.Read, true},
		{[]string{"FLUSHALL"}, "FLUSHALL", "", driver.Write, true},
		{[]string{"GET"}, "GET", "", driver.Read, true},
	}
	for _, tt := range tests {
		argv := bs(tt.argv...)
		r := Route(argv)
		if r.Op != tt.op {
			t.Errorf("Route(%q).Op = %q, want %q", tt.argv, r.Op, tt.op)
		}
		if r.Intent != tt.intent {
			t.Errorf("Route(%q).Intent = %v, want %v", tt.argv, r.Intent, tt.intent)
		}
		if r.Idempotent != tt.idempotent {
			t.Errorf("Route(%q).Idempotent = %v, want %v", tt.argv, r.Idempotent, tt.idempotent)
		}
		if tt.key == "" {
			if r.Key != nil {
				t.Errorf("Route(%q).Key = %q, want nil", tt.argv, r.Key)
			}
			if r.Partition != driver.AnyPartition {
				t.Errorf("Route(%q).Partition = %d, want AnyPartition", tt.argv, r.Partition)
			}
			continue
		}
		if string(r.Key) != tt.key {
			t.Errorf("Route(%q).Key = %q, want %q", tt.argv, r.Key, tt.key)
		}
		if want := int(Slot([]byte(tt.key))); r.Partition != want {
			t.Errorf("Route(%q).Partition = %d, want Slot = %d", tt.argv, r.Partition, want)
		}
		if r.Partition < 0 || r.Partition >= Slots {
			t.Errorf("Route(%q).Partition = %d out of range", tt.argv, r.Partition)
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
