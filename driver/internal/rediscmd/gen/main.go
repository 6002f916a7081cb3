// Command gen writes rediscmd's command table (table_gen.go) from what a
// running redis-server says about its commands: COMMAND INFO for the
// arity, flags and key specifications of every command and subcommand,
// COMMAND DOCS for a one-line summary of each.
//
// It talks to a real server, so it never runs in tests or CI. Run it by hand
// from driver/internal/rediscmd against a server of the version the table
// should describe:
//
//	redis-server --port 6399 --save '' --daemonize yes
//	go run ./gen -addr 127.0.0.1:6399
//	redis-cli -p 6399 shutdown nosave
//
// REDISCLI_AUTH, as for redis-cli, gives the default user's password.
// Commands newer than that server which tendril must know anyway are listed
// by hand in policy.go (extraCommands).
//
// Only the server's facts are generated. What tendril decides on top of them
// (idempotency, session changes, reply shapes, blocking options) is written
// by hand in policy.go.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"log"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tendril-db/tendril/proto/resp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "address of the redis-server to ask")
	out := flag.String("o", "table_gen.go", "file to write")
	flag.Parse()
	log.SetFlags(0)
	src, err := generate(*addr)
	if err != nil {
		log.Fatalf("gen: %v", err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatalf("gen: %v", err)
	}
}

// client is the least RESP3 client that can ask a server three questions.
type client struct {
	c net.Conn
	r *resp.Reader
	w *bufio.Writer
}

func (c *client) do(args ...string) (resp.Value, error) {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.w.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return resp.Value{}, err
	}
	if err := c.w.Flush(); err != nil {
		return resp.Value{}, err
	}
	v, err := c.r.ReadReply()
	if err != nil {
		return v, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	if v.IsError() {
		return v, fmt.Errorf("%s: %s", strings.Join(args, " "), v.Str)
	}
	return v, nil
}

// command is what the server says about one command.
type command struct {
	name    string // "GET", "CLIENT SETNAME"
	arity   int64
	flags   []string
	keys    []keySpec
	summary string
}

type keySpec struct {
	flags     []string
	index     int64 // begin_search index
	keyword   string
	startFrom int64
	unknown   bool // begin_search or find_keys "unknown"
	keyNum    bool
	lastKey   int64
	keyStep   int64
	limit     int64
	keyNumIdx int64
	firstKey  int64
}

func generate(addr string) ([]byte, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	c := &client{c: nc, r: resp.NewReader(nc), w: bufio.NewWriter(nc)}
	hello := []string{"HELLO", "3"}
	if pass := os.Getenv("REDISCLI_AUTH"); pass != "" {
		hello = append(hello, "AUTH", "default", pass)
	}
	if _, err := c.do(hello...); err != nil {
		return nil, fmt.Errorf("the server must speak RESP3 (Redis 7 or later): %w", err)
	}
	info, err := c.do("INFO", "server")
	if err != nil {
		return nil, err
	}
	version := infoField(string(info.Str), "redis_version")
	infos, err := c.do("COMMAND", "INFO")
	if err != nil {
		return nil, err
	}
	docs, err := c.do("COMMAND", "DOCS")
	if err != nil {
		return nil, err
	}
	summaries := map[string]string{}
	collectSummaries(&docs, summaries)
	var cmds []command
	for i := range infos.Elems {
		if err := collect(&infos.Elems[i], &cmds); err != nil {
			return nil, err
		}
	}
	for i := range cmds {
		cmds[i].summary = summaries[cmds[i].name]
	}
	slices.SortFunc(cmds, func(a, b command) int { return strings.Compare(a.name, b.name) })
	return render(version, cmds)
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "unknown"
}

// cmdName turns "client|setname" into "CLIENT SETNAME".
func cmdName(b []byte) string {
	return strings.ToUpper(strings.ReplaceAll(string(b), "|", " "))
}

func collectSummaries(v *resp.Value, out map[string]string) {
	if v.Kind != resp.KindMap {
		return
	}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		name := cmdName(v.Elems[i].Str)
		doc := &v.Elems[i+1]
		if s := field(doc, "summary"); s != nil {
			out[name] = string(s.Str)
		}
		if subs := field(doc, "subcommands"); subs != nil {
			collectSummaries(subs, out)
		}
	}
}

// field returns the value of key in map m, or nil.
func field(m *resp.Value, key string) *resp.Value {
	if m.Kind != resp.KindMap {
		return nil
	}
	for i := 0; i+1 < len(m.Elems); i += 2 {
		if string(m.Elems[i].Str) == key {
			return &m.Elems[i+1]
		}
	}
	return nil
}

// collect appends the command described by v (one COMMAND INFO entry) and
// its subcommands.
func collect(v *resp.Value, out *[]command) error {
	if v.Kind != resp.KindArray || len(v.Elems) < 10 {
		return fmt.Errorf("unexpected COMMAND INFO entry: %s with %d elements", v.Kind, len(v.Elems))
	}
	e := v.Elems
	c := command{name: cmdName(e[0].Str), arity: e[1].Int}
	for _, f := range e[2].Elems {
		c.flags = append(c.flags, string(f.Str))
	}
	for i := range e[8].Elems {
		ks, err := parseKeySpec(&e[8].Elems[i])
		if err != nil {
			return fmt.Errorf("%s: key spec %d: %w", c.name, i, err)
		}
		c.keys = append(c.keys, ks)
	}
	*out = append(*out, c)
	for i := range e[9].Elems {
		if err := collect(&e[9].Elems[i], out); err != nil {
			return err
		}
	}
	return nil
}

func parseKeySpec(m *resp.Value) (keySpec, error) {
	var ks keySpec
	if f := field(m, "flags"); f != nil {
		for _, x := range f.Elems {
			ks.flags = append(ks.flags, string(x.Str))
		}
	}
	bs, fk := field(m, "begin_search"), field(m, "find_keys")
	if bs == nil || fk == nil {
		return ks, errors.New("no begin_search or find_keys")
	}
	bt, bspec := field(bs, "type"), field(bs, "spec")
	ft, fspec := field(fk, "type"), field(fk, "spec")
	if bt == nil || ft == nil || bspec == nil || fspec == nil {
		return ks, errors.New("begin_search or find_keys without type and spec")
	}
	num := func(m *resp.Value, key string) int64 {
		if v := field(m, key); v != nil {
			return v.Int
		}
		return 0
	}
	switch string(bt.Str) {
	case "index":
		ks.index = num(bspec, "index")
	case "keyword":
		kw := field(bspec, "keyword")
		if kw == nil {
			return ks, errors.New("keyword search without a keyword")
		}
		ks.keyword, ks.startFrom = string(kw.Str), num(bspec, "startfrom")
	case "unknown":
		ks.unknown = true
		return ks, nil
	default:
		return ks, fmt.Errorf("begin_search type %q unknown to the generator", bt.Str)
	}
	switch string(ft.Str) {
	case "range":
		ks.lastKey, ks.keyStep, ks.limit = num(fspec, "lastkey"), num(fspec, "keystep"), num(fspec, "limit")
	case "keynum":
		ks.keyNum = true
		ks.keyNumIdx, ks.firstKey, ks.keyStep = num(fspec, "keynumidx"), num(fspec, "firstkey"), num(fspec, "keystep")
	case "unknown":
		ks.unknown = true
	default:
		return ks, fmt.Errorf("find_keys type %q unknown to the generator", ft.Str)
	}
	return ks, nil
}

// flagNames maps the server's command flags to rediscmd's constants. A flag
// missing here stops the generator: rediscmd must learn it first.
var flagNames = map[string]string{
	"write":             "FlagWrite",
	"readonly":          "FlagReadOnly",
	"denyoom":           "FlagDenyOOM",
	"module":            "FlagModule",
	"admin":             "FlagAdmin",
	"pubsub":            "FlagPubSub",
	"noscript":          "FlagNoScript",
	"blocking":          "FlagBlocking",
	"loading":           "FlagLoading",
	"stale":             "FlagStale",
	"skip_monitor":      "FlagSkipMonitor",
	"skip_slowlog":      "FlagSkipSlowlog",
	"asking":            "FlagAsking",
	"fast":              "FlagFast",
	"no_auth":           "FlagNoAuth",
	"may_replicate":     "FlagMayReplicate",
	"no_mandatory_keys": "FlagNoMandatoryKeys",
	"protected":         "FlagProtected",
	"movablekeys":       "FlagMovableKeys",
	"no_async_loading":  "FlagNoAsyncLoading",
	"no_multi":          "FlagNoMulti",
	"allow_busy":        "FlagAllowBusy",
	"module_no_cluster": "FlagModuleNoCluster",
}

var keyFlagNames = map[string]string{
	"RO":             "KeyRO",
	"RW":             "KeyRW",
	"OW":             "KeyOW",
	"RM":             "KeyRM",
	"access":         "KeyAccess",
	"update":         "KeyUpdate",
	"insert":         "KeyInsert",
	"delete":         "KeyDelete",
	"not_key":        "KeyNotKey",
	"incomplete":     "KeyIncomplete",
	"variable_flags": "KeyVariableFlags",
}

func flagExpr(names map[string]string, flags []string, what string) (string, error) {
	var parts []string
	for _, f := range flags {
		n, ok := names[f]
		if !ok {
			return "", fmt.Errorf("%s flag %q unknown to the generator (add it to rediscmd and to the generator's list)", what, f)
		}
		parts = append(parts, n)
	}
	if len(parts) == 0 {
		return "0", nil
	}
	return strings.Join(parts, "|"), nil
}

func render(version string, cmds []command) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by \"go run ./gen\" from redis-server %s; DO NOT EDIT.\n\n", version)
	b.WriteString("package rediscmd\n\n")
	fmt.Fprintf(&b, "// ServerVersion is the version of the redis-server the table was generated from.\nconst ServerVersion = %q\n\n", version)
	b.WriteString("// serverCommands is what COMMAND INFO says about every command and\n// subcommand: arity, flags and key specifications.\n")
	b.WriteString("var serverCommands = [...]Spec{\n")
	for _, c := range cmds {
		if c.summary != "" {
			fmt.Fprintf(&b, "// %s\n", c.summary)
		}
		flags, err := flagExpr(flagNames, c.flags, "command")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(&b, "{Name: %q, Arity: %d, Flags: %s", c.name, c.arity, flags)
		if len(c.keys) > 0 {
			b.WriteString(", KeySpecs: []KeySpec{")
			for i, k := range c.keys {
				if i > 0 {
					b.WriteString(", ")
				}
				kf, err := flagExpr(keyFlagNames, k.flags, "key")
				if err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
				b.WriteString("{Flags: " + kf)
				switch {
				case k.unknown:
					b.WriteString(", Unknown: true")
				case k.keyword != "":
					fmt.Fprintf(&b, ", Keyword: %q, StartFrom: %d", k.keyword, k.startFrom)
				default:
					fmt.Fprintf(&b, ", Index: %d", k.index)
				}
				switch {
				case k.unknown:
				case k.keyNum:
					fmt.Fprintf(&b, ", KeyNum: true, KeyNumIdx: %d, FirstKey: %d, KeyStep: %d", k.keyNumIdx, k.firstKey, k.keyStep)
				default:
					fmt.Fprintf(&b, ", LastKey: %d, KeyStep: %d", k.lastKey, k.keyStep)
					if k.limit != 0 {
						fmt.Fprintf(&b, ", Limit: %d", k.limit)
					}
				}
				b.WriteString("}")
			}
			b.WriteString("}")
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting the table: %w", err)
	}
	return src, nil
}
