package memory

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/driver/internal/rediscmd"
)

// The store is the command executor of the memory backend: an in-process,
// single-database key-value engine that answers a subset of the Redis 7
// command set with the replies, and the error messages, Redis gives.
//
// All state is guarded by one mutex, held for the duration of one command.
// Every command reads the clock once, like Redis' command time snapshot, so
// a key cannot expire half way through a command.
//
// Expiry is lazy (a key is deleted when a command touches it after its
// deadline) plus a small sample of keys with a deadline checked on every
// command, so that keys nobody reads again do not stay forever; commands
// that enumerate the keyspace (KEYS, DBSIZE, INFO) first remove every
// expired key.

// infoVersion is the redis_version the store reports in INFO.
const infoVersion = "7.2.0-tendril-memory"

// maxBulkLen is Redis' default proto-max-bulk-len, the largest string a
// command may build (APPEND).
const maxBulkLen = 512 << 20

// activeExpireSamples is how many keys with a deadline each command checks.
const activeExpireSamples = 8

type kind uint8

const (
	kindString kind = iota + 1
	kindHash
)

// object is the value held at a key.
type object struct {
	kind kind
	str  []byte // kindString; never mutated in place once stored
	hash *hash  // kindHash
}

// hash is a Redis hash that keeps its fields in insertion order, as Redis
// does for small (listpack-encoded) hashes. Deleted fields leave a hole that
// is compacted away once holes outnumber live fields.
type hash struct {
	idx    map[string]int // field -> position in fields
	fields []hashField
	dead   int
}

type hashField struct {
	name string
	val  []byte
	live bool
}

func newHash() *hash { return &hash{idx: make(map[string]int)} }

func (h *hash) len() int { return len(h.idx) }

func (h *hash) get(f string) ([]byte, bool) {
	i, ok := h.idx[f]
	if !ok {
		return nil, false
	}
	return h.fields[i].val, true
}

// set stores v (which the caller must own) and reports whether f is new.
func (h *hash) set(f string, v []byte) bool {
	if i, ok := h.idx[f]; ok {
		h.fields[i].val = v
		return false
	}
	h.idx[f] = len(h.fields)
	h.fields = append(h.fields, hashField{name: f, val: v, live: true})
	return true
}

func (h *hash) del(f string) bool {
	i, ok := h.idx[f]
	if !ok {
		return false
	}
	delete(h.idx, f)
	h.fields[i] = hashField{}
	h.dead++
	if h.dead > 16 && h.dead > len(h.idx) {
		live := make([]hashField, 0, len(h.idx))
		for _, fl := range h.fields {
			if fl.live {
				h.idx[fl.name] = len(live)
				live = append(live, fl)
			}
		}
		h.fields, h.dead = live, 0
	}
	return true
}

// each calls fn for every live field in insertion order.
func (h *hash) each(fn func(name string, val []byte)) {
	for _, fl := range h.fields {
		if fl.live {
			fn(fl.name, fl.val)
		}
	}
}

type stats struct {
	commands    int64 // total_commands_processed
	expired     int64 // expired_keys
	hits        int64 // keyspace_hits
	misses      int64 // keyspace_misses
	errReplies  int64 // total_error_replies
	rejectCalls int64 // commands refused before running (unknown, arity)
}

// store is an in-memory, Redis-compatible key-value store. It is safe for
// concurrent use.
type store struct {
	now     func() time.Time
	start   time.Time
	runID   string
	clients atomic.Int64 // connected_clients, maintained by the driver glue

	mu      sync.Mutex
	nowMs   int64 // the current command's time, Unix milliseconds
	data    map[string]*object
	expires map[string]int64 // key -> deadline, Unix milliseconds
	st      stats
}

// newStore returns an empty store reading the time from now (time.Now when
// nil).
func newStore(now func() time.Time) *store {
	if now == nil {
		now = time.Now
	}
	var id [20]byte
	_, _ = rand.Read(id[:])
	return &store{
		now:     now,
		start:   now(),
		runID:   hex.EncodeToString(id[:]),
		data:    make(map[string]*object),
		expires: make(map[string]int64),
	}
}

// clientConnected and clientDisconnected maintain the connected_clients
// figure INFO reports.
func (s *store) clientConnected()    { s.clients.Add(1) }
func (s *store) clientDisconnected() { s.clients.Add(-1) }

// cmdFunc runs one command with the store locked; argv has been checked
// against the command's arity.
type cmdFunc func(s *store, argv [][]byte) rediscmd.Reply

type command struct {
	name  string // lower case, as Redis' fullname
	arity int    // as in Redis: n exact, -n at least n
	fn    cmdFunc
}

var commands = map[string]*command{}

func init() {
	for _, c := range []command{
		{"ping", -1, cmdPing},
		{"echo", 2, cmdEcho},
		{"time", 1, cmdTime},
		{"select", 2, cmdSelect},
		{"info", -1, cmdInfo},
		{"dbsize", 1, cmdDBSize},
		{"flushall", -1, cmdFlush},
		{"flushdb", -1, cmdFlush},
		{"keys", 2, cmdKeys},
		{"get", 2, cmdGet},
		{"getdel", 2, cmdGetDel},
		{"getex", -2, cmdGetEx},
		{"getset", 3, cmdGetSet},
		{"set", -3, cmdSet},
		{"setnx", 3, cmdSetNX},
		{"setex", 4, cmdSetEX},
		{"psetex", 4, cmdSetEX},
		{"mget", -2, cmdMGet},
		{"mset", -3, cmdMSet},
		{"msetnx", -3, cmdMSet},
		{"strlen", 2, cmdStrlen},
		{"append", 3, cmdAppend},
		{"incr", 2, cmdIncrDecr},
		{"decr", 2, cmdIncrDecr},
		{"incrby", 3, cmdIncrDecr},
		{"decrby", 3, cmdIncrDecr},
		{"del", -2, cmdDel},
		{"unlink", -2, cmdDel},
		{"exists", -2, cmdExists},
		{"type", 2, cmdType},
		{"rename", 3, cmdRename},
		{"renamenx", 3, cmdRename},
		{"expire", -3, cmdExpire},
		{"pexpire", -3, cmdExpire},
		{"expireat", -3, cmdExpire},
		{"pexpireat", -3, cmdExpire},
		{"ttl", 2, cmdTTL},
		{"pttl", 2, cmdTTL},
		{"expiretime", 2, cmdTTL},
		{"pexpiretime", 2, cmdTTL},
		{"persist", 2, cmdPersist},
		{"hset", -4, cmdHSet},
		{"hmset", -4, cmdHSet},
		{"hsetnx", 4, cmdHSetNX},
		{"hget", 3, cmdHGet},
		{"hmget", -3, cmdHMGet},
		{"hdel", -3, cmdHDel},
		{"hgetall", 2, cmdHGetAll},
		{"hkeys", 2, cmdHGetAll},
		{"hvals", 2, cmdHGetAll},
		{"hlen", 2, cmdHLen},
		{"hexists", 3, cmdHExists},
		{"hstrlen", 3, cmdHStrlen},
		{"hincrby", 4, cmdHIncrBy},
	} {
		commands[c.name] = &c
	}
}

// lookupCommand finds argv[0], case-insensitively, without allocating for
// ordinary command names.
func lookupCommand(name []byte) *command {
	var buf [16]byte
	if len(name) > len(buf) {
		return nil // no command has so long a name
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return commands[string(buf[:len(name)])]
}

// exec runs one command and returns its reply. argv[0] is the command name.
// The store keeps copies of the bytes it stores and returns fresh copies,
// so the caller may reuse argv and keep or modify replies.
func (s *store) exec(argv [][]byte) rediscmd.Reply {
	if len(argv) == 0 {
		s.reject()
		return unknownCommand([][]byte{nil})
	}
	cmd := lookupCommand(argv[0])
	if cmd == nil {
		s.reject()
		return unknownCommand(argv)
	}
	if (cmd.arity > 0 && len(argv) != cmd.arity) || len(argv) < -cmd.arity {
		s.reject()
		return errArity(cmd.name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nowMs = s.now().UnixMilli()
	s.activeExpire()
	r := cmd.fn(s, argv)
	s.st.commands++
	if _, ok := r.(*driver.ServerError); ok {
		s.st.errReplies++
	}
	return r
}

func (s *store) reject() {
	s.mu.Lock()
	s.st.rejectCalls++
	s.st.errReplies++
	s.mu.Unlock()
}

// --- errors ---------------------------------------------------------------

func serverError(msg string) *driver.ServerError {
	// Like Redis' addReplyErrorFormat: no CR or LF may reach the protocol.
	// (Byte-wise: the message may hold arbitrary bytes from arguments.)
	if strings.ContainsAny(msg, "\r\n") {
		b := []byte(msg)
		for i, c := range b {
			if c == '\r' || c == '\n' {
				b[i] = ' '
			}
		}
		msg = string(b)
	}
	code := msg
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		code = msg[:i]
	}
	return &driver.ServerError{Code: code, Msg: msg}
}

const (
	msgWrongType   = "WRONGTYPE Operation against a key holding the wrong kind of value"
	msgNotInteger  = "ERR value is not an integer or out of range"
	msgOverflow    = "ERR increment or decrement would overflow"
	msgSyntax      = "ERR syntax error"
	msgNoSuchKey   = "ERR no such key"
	msgHashNotInt  = "ERR hash value is not an integer"
	msgStringLimit = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
)

func errWrongType() *driver.ServerError  { return serverError(msgWrongType) }
func errNotInteger() *driver.ServerError { return serverError(msgNotInteger) }
func errSyntax() *driver.ServerError     { return serverError(msgSyntax) }

func errArity(name string) *driver.ServerError {
	return serverError("ERR wrong number of arguments for '" + name + "' command")
}

func errExpireTime(name string) *driver.ServerError {
	return serverError("ERR invalid expire time in '" + name + "' command")
}

// cString is b as C's "%.*s" prints it: up to the first NUL byte, at most
// max bytes.
func cString(b []byte, max int) []byte {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if max >= 0 && len(b) > max {
		b = b[:max]
	}
	return b
}

// unknownCommand builds Redis 7's error for a command it does not know,
// including its quirks: at most about 128 bytes of arguments, each quoted
// and followed by a space, and CR/LF replaced by spaces.
func unknownCommand(argv [][]byte) *driver.ServerError {
	var args []byte
	for i := 1; i < len(argv) && len(args) < 128; i++ {
		args = append(args, '\'')
		args = append(args, cString(argv[i], 128-len(args)+1)...)
		args = append(args, '\'', ' ')
	}
	msg := make([]byte, 0, 64+len(args))
	msg = append(msg, "ERR unknown command '"...)
	msg = append(msg, cString(argv[0], 128)...)
	msg = append(msg, "', with args beginning with: "...)
	msg = append(msg, args...)
	return serverError(string(msg))
}

// --- helpers --------------------------------------------------------------

func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// parseInt parses b as Redis' string2ll does: an optional '-', no leading
// zeros, no '+', no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	n := len(b)
	if n == 0 || n >= 21 {
		return 0, false
	}
	if n == 1 && b[0] == '0' {
		return 0, true
	}
	i, neg := 0, false
	if b[0] == '-' {
		neg = true
		i++
		if i == n {
			return 0, false
		}
	}
	if b[i] < '1' || b[i] > '9' {
		return 0, false
	}
	var v uint64
	for ; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > math.MaxUint64/10 {
			return 0, false
		}
		v *= 10
		d := uint64(c - '0')
		if v > math.MaxUint64-d {
			return 0, false
		}
		v += d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return int64(-v), true // -v wraps to math.MinInt64 for 1<<63
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

func formatInt(v int64) []byte { return strconv.AppendInt(nil, v, 10) }

// equalFold reports whether b equals the lower-case ASCII word w, ignoring
// case.
func equalFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// --- keyspace -------------------------------------------------------------

// expireIfNeeded deletes key if its deadline has passed and reports whether
// it did. A key expires once the clock is past its deadline, as in Redis.
func (s *store) expireIfNeeded(key string) bool {
	if len(s.expires) == 0 {
		return false
	}
	when, ok := s.expires[key]
	if !ok || s.nowMs <= when {
		return false
	}
	delete(s.data, key)
	delete(s.expires, key)
	s.st.expired++
	return true
}

// activeExpire checks a few keys with a deadline, Go's randomised map
// iteration giving a cheap random sample.
func (s *store) activeExpire() {
	if len(s.expires) == 0 {
		return
	}
	n := 0
	for k, when := range s.expires {
		if s.nowMs > when {
			delete(s.data, k)
			delete(s.expires, k)
			s.st.expired++
		}
		if n++; n >= activeExpireSamples {
			break
		}
	}
}

// expireAll deletes every expired key.
func (s *store) expireAll() {
	for k, when := range s.expires {
		if s.nowMs > when {
			delete(s.data, k)
			delete(s.expires, k)
			s.st.expired++
		}
	}
}

// lookupRead returns the live object at key, counting a keyspace hit or
// miss like Redis' lookupKeyRead.
func (s *store) lookupRead(key string) *object {
	o := s.lookupWrite(key)
	if o == nil {
		s.st.misses++
	} else {
		s.st.hits++
	}
	return o
}

// lookupWrite returns the live object at key without touching the stats.
func (s *store) lookupWrite(key string) *object {
	if s.expireIfNeeded(key) {
		return nil
	}
	return s.data[key]
}

// setKey stores o at key, clearing any deadline unless keepTTL.
func (s *store) setKey(key string, o *object, keepTTL bool) {
	s.data[key] = o
	if !keepTTL {
		delete(s.expires, key)
	}
}

func (s *store) delKey(key string) bool {
	if _, ok := s.data[key]; !ok {
		return false
	}
	delete(s.data, key)
	delete(s.expires, key)
	return true
}

// ttlOf returns key's deadline, or -1 when it has none.
func (s *store) ttlOf(key string) int64 {
	if when, ok := s.expires[key]; ok {
		return when
	}
	return -1
}

// getString looks key up for reading and returns its string value; reply
// is non-nil (WRONGTYPE) when the key holds another type.
func (s *store) getString(key string) (val []byte, found bool, reply rediscmd.Reply) {
	o := s.lookupRead(key)
	if o == nil {
		return nil, false, nil
	}
	if o.kind != kindString {
		return nil, false, errWrongType()
	}
	return o.str, true, nil
}

// --- connection and server commands ---------------------------------------

func cmdPing(s *store, argv [][]byte) rediscmd.Reply {
	switch len(argv) {
	case 1:
		return rediscmd.Status("PONG")
	case 2:
		return clone(argv[1])
	}
	return errArity("ping")
}

func cmdEcho(s *store, argv [][]byte) rediscmd.Reply { return clone(argv[1]) }

func cmdTime(s *store, argv [][]byte) rediscmd.Reply {
	t := s.now()
	us := t.UnixMicro()
	return []any{formatInt(us / 1e6), formatInt(us % 1e6)}
}

func cmdSelect(s *store, argv [][]byte) rediscmd.Reply {
	id, ok := parseInt(argv[1])
	if !ok || id < math.MinInt32 || id > math.MaxInt32 {
		return serverError("ERR invalid DB index")
	}
	if id != 0 {
		return serverError("ERR DB index is out of range")
	}
	return rediscmd.Status("OK")
}

func cmdDBSize(s *store, argv [][]byte) rediscmd.Reply {
	s.expireAll()
	return int64(len(s.data))
}

func cmdFlush(s *store, argv [][]byte) rediscmd.Reply {
	if len(argv) > 2 || (len(argv) == 2 && !equalFold(argv[1], "sync") && !equalFold(argv[1], "async")) {
		return errSyntax()
	}
	clear(s.data)
	clear(s.expires)
	return rediscmd.Status("OK")
}

func cmdKeys(s *store, argv [][]byte) rediscmd.Reply {
	pat := argv[1]
	all := len(pat) == 1 && pat[0] == '*'
	var keys []string
	for k := range s.data {
		if when, ok := s.expires[k]; ok && s.nowMs > when {
			continue // Redis skips, but does not delete, expired keys here
		}
		if all || globMatch(pat, []byte(k)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

// --- string commands ------------------------------------------------------

func cmdGet(s *store, argv [][]byte) rediscmd.Reply {
	v, found, r := s.getString(string(argv[1]))
	if r != nil {
		return r
	}
	if !found {
		return nil
	}
	return clone(v)
}

func cmdGetDel(s *store, argv [][]byte) rediscmd.Reply {
	key := string(argv[1])
	v, found, r := s.getString(key)
	if r != nil || !found {
		return r
	}
	s.delKey(key)
	return clone(v)
}

func cmdGetSet(s *store, argv [][]byte) rediscmd.Reply {
	key := string(argv[1])
	v, found, r := s.getString(key)
	if r != nil {
		return r
	}
	s.setKey(key, &object{kind: kindString, str: clone(argv[2])}, false)
	if !found {
		return nil
	}
	return clone(v)
}

// SET / GETEX option flags, as in Redis' t_string.c.
const (
	setNX = 1 << iota
	setXX
	setGet
	setKeepTTL
	setPersist
	setEX
	setPX
	setEXAT
	setPXAT
)

const setAnyExpire = setEX | setPX | setEXAT | setPXAT

// parseSetOptions parses SET's (forSet) or GETEX's options from argv[from:]
// exactly like Redis' parseExtendedStringArgumentsOrReply, including which
// repetitions and combinations it accepts.
func parseSetOptions(argv [][]byte, from int, forSet bool) (flags int, expire []byte, ok bool) {
	for j := from; j < len(argv); j++ {
		opt := argv[j]
		hasNext := j+1 < len(argv)
		switch {
		case forSet && equalFold(opt, "nx") && flags&setXX == 0:
			flags |= setNX
		case forSet && equalFold(opt, "xx") && flags&setNX == 0:
			flags |= setXX
		case forSet && equalFold(opt, "get"):
			flags |= setGet
		case forSet && equalFold(opt, "keepttl") && flags&(setPersist|setAnyExpire) == 0:
			flags |= setKeepTTL
		case !forSet && equalFold(opt, "persist") && flags&(setKeepTTL|setAnyExpire) == 0:
			flags |= setPersist
		case equalFold(opt, "ex") && hasNext && flags&(setKeepTTL|setPersist|setAnyExpire&^setEX) == 0:
			flags |= setEX
			expire = argv[j+1]
			j++
		case equalFold(opt, "px") && hasNext && flags&(setKeepTTL|setPersist|setAnyExpire&^setPX) == 0:
			flags |= setPX
			expire = argv[j+1]
			j++
		case equalFold(opt, "exat") && hasNext && flags&(setKeepTTL|setPersist|setAnyExpire&^setEXAT) == 0:
			flags |= setEXAT
			expire = argv[j+1]
			j++
		case equalFold(opt, "pxat") && hasNext && flags&(setKeepTTL|setPersist|setAnyExpire&^setPXAT) == 0:
			flags |= setPXAT
			expire = argv[j+1]
			j++
		default:
			return 0, nil, false
		}
	}
	return flags, expire, true
}

// expireMillis turns a SET-style expire argument into an absolute deadline
// in Unix milliseconds, like Redis' getExpireMillisecondsOrReply.
func (s *store) expireMillis(arg []byte, flags int, cmd string) (int64, rediscmd.Reply) {
	ms, ok := parseInt(arg)
	if !ok {
		return 0, errNotInteger()
	}
	seconds := flags&(setEX|setEXAT) != 0
	if ms <= 0 || (seconds && ms > math.MaxInt64/1000) {
		return 0, errExpireTime(cmd)
	}
	if seconds {
		ms *= 1000
	}
	if flags&(setEX|setPX) != 0 {
		ms += s.nowMs // wraps negative on overflow, caught below
	}
	if ms <= 0 {
		return 0, errExpireTime(cmd)
	}
	return ms, nil
}

// setGeneric is Redis' setGenericCommand. okReply and abortReply replace
// +OK and the nil reply (SETNX answers 1 and 0).
func (s *store) setGeneric(cmd string, key string, val []byte, flags int, expire []byte, okReply, abortReply rediscmd.Reply) rediscmd.Reply {
	var when int64
	if expire != nil {
		var r rediscmd.Reply
		if when, r = s.expireMillis(expire, flags, cmd); r != nil {
			return r
		}
	}
	var reply rediscmd.Reply
	if flags&setGet != 0 {
		old, found, r := s.getString(key)
		if r != nil {
			return r
		}
		if found {
			reply = clone(old)
		}
	}
	found := s.lookupWrite(key) != nil
	if (flags&setNX != 0 && found) || (flags&setXX != 0 && !found) {
		if flags&setGet != 0 {
			return reply
		}
		return abortReply
	}
	s.setKey(key, &object{kind: kindString, str: clone(val)}, flags&setKeepTTL != 0)
	if expire != nil {
		s.expires[key] = when
	}
	if flags&setGet != 0 {
		return reply
	}
	return okReply
}

func cmdSet(s *store, argv [][]byte) rediscmd.Reply {
	flags, expire, ok := parseSetOptions(argv, 3, true)
	if !ok {
		return errSyntax()
	}
	return s.setGeneric("set", string(argv[1]), argv[2], flags, expire, rediscmd.Status("OK"), nil)
}

func cmdSetNX(s *store, argv [][]byte) rediscmd.Reply {
	return s.setGeneric("setnx", string(argv[1]), argv[2], setNX, nil, int64(1), int64(0))
}

func cmdSetEX(s *store, argv [][]byte) rediscmd.Reply {
	name, flags := "setex", setEX
	if equalFold(argv[0], "psetex") {
		name, flags = "psetex", setPX
	}
	return s.setGeneric(name, string(argv[1]), argv[3], flags, argv[2], rediscmd.Status("OK"), nil)
}

func cmdGetEx(s *store, argv [][]byte) rediscmd.Reply {
	flags, expire, ok := parseSetOptions(argv, 2, false)
	if !ok {
		return errSyntax()
	}
	key := string(argv[1])
	v, found, r := s.getString(key)
	if r != nil || !found {
		return r
	}
	var when int64
	if expire != nil {
		if when, r = s.expireMillis(expire, flags, "getex"); r != nil {
			return r
		}
	}
	reply := clone(v)
	switch {
	case flags&(setEXAT|setPXAT) != 0 && when <= s.nowMs:
		s.delKey(key)
	case expire != nil:
		s.expires[key] = when
	case flags&setPersist != 0:
		delete(s.expires, key)
	}
	return reply
}

func cmdMGet(s *store, argv [][]byte) rediscmd.Reply {
	out := make([]any, len(argv)-1)
	for i, k := range argv[1:] {
		if o := s.lookupRead(string(k)); o != nil && o.kind == kindString {
			out[i] = clone(o.str)
		}
	}
	return out
}

func cmdMSet(s *store, argv [][]byte) rediscmd.Reply {
	nx := equalFold(argv[0], "msetnx")
	if len(argv)%2 == 0 {
		if nx {
			return errArity("msetnx")
		}
		return errArity("mset")
	}
	if nx {
		for j := 1; j < len(argv); j += 2 {
			if s.lookupWrite(string(argv[j])) != nil {
				return int64(0)
			}
		}
	}
	for j := 1; j < len(argv); j += 2 {
		s.setKey(string(argv[j]), &object{kind: kindString, str: clone(argv[j+1])}, false)
	}
	if nx {
		return int64(1)
	}
	return rediscmd.Status("OK")
}

func cmdStrlen(s *store, argv [][]byte) rediscmd.Reply {
	v, _, r := s.getString(string(argv[1]))
	if r != nil {
		return r
	}
	return int64(len(v))
}

func cmdAppend(s *store, argv [][]byte) rediscmd.Reply {
	key := string(argv[1])
	o := s.lookupWrite(key)
	if o == nil {
		s.setKey(key, &object{kind: kindString, str: clone(argv[2])}, false)
		return int64(len(argv[2]))
	}
	if o.kind != kindString {
		return errWrongType()
	}
	total := len(o.str) + len(argv[2])
	if total > maxBulkLen {
		return serverError(msgStringLimit)
	}
	// Build a new slice: stored strings are never mutated in place.
	nv := make([]byte, total)
	copy(nv, o.str)
	copy(nv[len(o.str):], argv[2])
	o.str = nv
	return int64(total)
}

func cmdIncrDecr(s *store, argv [][]byte) rediscmd.Reply {
	var incr int64
	switch {
	case equalFold(argv[0], "incr"):
		incr = 1
	case equalFold(argv[0], "decr"):
		incr = -1
	default:
		v, ok := parseInt(argv[2])
		if !ok {
			return errNotInteger()
		}
		incr = v
		if equalFold(argv[0], "decrby") {
			if v == math.MinInt64 {
				return serverError("ERR decrement would overflow")
			}
			incr = -v
		}
	}
	key := string(argv[1])
	o := s.lookupWrite(key)
	var old int64
	if o != nil {
		if o.kind != kindString {
			return errWrongType()
		}
		v, ok := parseInt(o.str)
		if !ok {
			return errNotInteger()
		}
		old = v
	}
	if (incr < 0 && old < 0 && incr < math.MinInt64-old) ||
		(incr > 0 && old > 0 && incr > math.MaxInt64-old) {
		return serverError(msgOverflow)
	}
	n := old + incr
	if o != nil {
		o.str = formatInt(n) // keeps the key's TTL
	} else {
		s.setKey(key, &object{kind: kindString, str: formatInt(n)}, false)
	}
	return n
}

// --- generic key commands -------------------------------------------------

func cmdDel(s *store, argv [][]byte) rediscmd.Reply {
	var n int64
	for _, k := range argv[1:] {
		key := string(k)
		s.expireIfNeeded(key)
		if s.delKey(key) {
			n++
		}
	}
	return n
}

func cmdExists(s *store, argv [][]byte) rediscmd.Reply {
	var n int64
	for _, k := range argv[1:] {
		if s.lookupRead(string(k)) != nil {
			n++
		}
	}
	return n
}

func cmdType(s *store, argv [][]byte) rediscmd.Reply {
	o := s.lookupRead(string(argv[1]))
	switch {
	case o == nil:
		return rediscmd.Status("none")
	case o.kind == kindHash:
		return rediscmd.Status("hash")
	}
	return rediscmd.Status("string")
}

func cmdRename(s *store, argv [][]byte) rediscmd.Reply {
	nx := equalFold(argv[0], "renamenx")
	src, dst := string(argv[1]), string(argv[2])
	o := s.lookupWrite(src)
	if o == nil {
		return serverError(msgNoSuchKey)
	}
	if src == dst {
		if nx {
			return int64(0)
		}
		return rediscmd.Status("OK")
	}
	if s.lookupWrite(dst) != nil {
		if nx {
			return int64(0)
		}
		s.delKey(dst)
	}
	when := s.ttlOf(src)
	s.delKey(src)
	s.data[dst] = o
	if when != -1 {
		s.expires[dst] = when
	}
	if nx {
		return int64(1)
	}
	return rediscmd.Status("OK")
}

const (
	expireNX = 1 << iota
	expireXX
	expireGT
	expireLT
)

func cmdExpire(s *store, argv [][]byte) rediscmd.Reply {
	var flags int
	for _, opt := range argv[3:] {
		switch {
		case equalFold(opt, "nx"):
			flags |= expireNX
		case equalFold(opt, "xx"):
			flags |= expireXX
		case equalFold(opt, "gt"):
			flags |= expireGT
		case equalFold(opt, "lt"):
			flags |= expireLT
		default:
			return serverError("ERR Unsupported option " + string(cString(opt, -1)))
		}
	}
	if flags&expireNX != 0 && flags&(expireXX|expireGT|expireLT) != 0 {
		return serverError("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if flags&expireGT != 0 && flags&expireLT != 0 {
		return serverError("ERR GT and LT options at the same time are not compatible")
	}
	var name string
	var seconds, relative bool
	switch {
	case equalFold(argv[0], "expire"):
		name, seconds, relative = "expire", true, true
	case equalFold(argv[0], "pexpire"):
		name, relative = "pexpire", true
	case equalFold(argv[0], "expireat"):
		name, seconds = "expireat", true
	default:
		name = "pexpireat"
	}
	when, ok := parseInt(argv[2])
	if !ok {
		return errNotInteger()
	}
	if seconds {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			return errExpireTime(name)
		}
		when *= 1000
	}
	if relative {
		if when > math.MaxInt64-s.nowMs {
			return errExpireTime(name)
		}
		when += s.nowMs
	}
	key := string(argv[1])
	if s.lookupWrite(key) == nil {
		return int64(0)
	}
	if flags != 0 {
		cur := s.ttlOf(key)
		if flags&expireNX != 0 && cur != -1 {
			return int64(0)
		}
		if flags&expireXX != 0 && cur == -1 {
			return int64(0)
		}
		if flags&expireGT != 0 && (when <= cur || cur == -1) {
			return int64(0)
		}
		if flags&expireLT != 0 && cur != -1 && when >= cur {
			return int64(0)
		}
	}
	if when <= s.nowMs {
		s.delKey(key) // already expired: Redis deletes it at once
		return int64(1)
	}
	s.expires[key] = when
	return int64(1)
}

func cmdTTL(s *store, argv [][]byte) rediscmd.Reply {
	var ms, abs bool
	switch {
	case equalFold(argv[0], "pttl"):
		ms = true
	case equalFold(argv[0], "expiretime"):
		abs = true
	case equalFold(argv[0], "pexpiretime"):
		ms, abs = true, true
	}
	key := string(argv[1])
	if s.lookupRead(key) == nil {
		return int64(-2)
	}
	when := s.ttlOf(key)
	if when == -1 {
		return int64(-1)
	}
	ttl := when
	if !abs {
		ttl = when - s.nowMs
	}
	if ttl < 0 {
		ttl = 0
	}
	if ms {
		return ttl
	}
	return (ttl + 500) / 1000
}

func cmdPersist(s *store, argv [][]byte) rediscmd.Reply {
	key := string(argv[1])
	if s.lookupWrite(key) == nil {
		return int64(0)
	}
	if _, ok := s.expires[key]; !ok {
		return int64(0)
	}
	delete(s.expires, key)
	return int64(1)
}

// --- hash commands --------------------------------------------------------

// hashRead returns the hash at key for reading: nil, nil when the key is
// missing, or a WRONGTYPE reply.
func (s *store) hashRead(key string) (*hash, rediscmd.Reply) {
	o := s.lookupRead(key)
	if o == nil {
		return nil, nil
	}
	if o.kind != kindHash {
		return nil, errWrongType()
	}
	return o.hash, nil
}

// hashWrite returns the hash at key, creating it when create is set.
func (s *store) hashWrite(key string, create bool) (*hash, rediscmd.Reply) {
	o := s.lookupWrite(key)
	if o == nil {
		if !create {
			return nil, nil
		}
		o = &object{kind: kindHash, hash: newHash()}
		s.setKey(key, o, false)
	}
	if o.kind != kindHash {
		return nil, errWrongType()
	}
	return o.hash, nil
}

func cmdHSet(s *store, argv [][]byte) rediscmd.Reply {
	hmset := equalFold(argv[0], "hmset")
	if len(argv)%2 == 1 {
		if hmset {
			return errArity("hmset")
		}
		return errArity("hset")
	}
	h, r := s.hashWrite(string(argv[1]), true)
	if r != nil {
		return r
	}
	var created int64
	for j := 2; j < len(argv); j += 2 {
		if h.set(string(argv[j]), clone(argv[j+1])) {
			created++
		}
	}
	if hmset {
		return rediscmd.Status("OK")
	}
	return created
}

func cmdHSetNX(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashWrite(string(argv[1]), true)
	if r != nil {
		return r
	}
	f := string(argv[2])
	if _, ok := h.get(f); ok {
		return int64(0)
	}
	h.set(f, clone(argv[3]))
	return int64(1)
}

func cmdHGet(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if h == nil {
		return r
	}
	if v, ok := h.get(string(argv[2])); ok {
		return clone(v)
	}
	return nil
}

func cmdHMGet(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if r != nil {
		return r
	}
	out := make([]any, len(argv)-2)
	if h != nil {
		for i, f := range argv[2:] {
			if v, ok := h.get(string(f)); ok {
				out[i] = clone(v)
			}
		}
	}
	return out
}

func cmdHDel(s *store, argv [][]byte) rediscmd.Reply {
	key := string(argv[1])
	h, r := s.hashWrite(key, false)
	if h == nil {
		if r != nil {
			return r
		}
		return int64(0)
	}
	var n int64
	for _, f := range argv[2:] {
		if h.del(string(f)) {
			n++
			if h.len() == 0 {
				s.delKey(key)
				break
			}
		}
	}
	return n
}

func cmdHGetAll(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if r != nil {
		return r
	}
	keys := !equalFold(argv[0], "hvals")
	vals := !equalFold(argv[0], "hkeys")
	n := 0
	if h != nil {
		n = h.len()
	}
	if keys && vals {
		out := make(rediscmd.Map, 0, 2*n)
		if h != nil {
			h.each(func(f string, v []byte) { out = append(out, []byte(f), clone(v)) })
		}
		return out
	}
	out := make([]any, 0, n)
	if h != nil {
		h.each(func(f string, v []byte) {
			if keys {
				out = append(out, []byte(f))
			} else {
				out = append(out, clone(v))
			}
		})
	}
	return out
}

func cmdHLen(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if h == nil {
		if r != nil {
			return r
		}
		return int64(0)
	}
	return int64(h.len())
}

func cmdHExists(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if h == nil {
		if r != nil {
			return r
		}
		return int64(0)
	}
	if _, ok := h.get(string(argv[2])); ok {
		return int64(1)
	}
	return int64(0)
}

func cmdHStrlen(s *store, argv [][]byte) rediscmd.Reply {
	h, r := s.hashRead(string(argv[1]))
	if h == nil {
		if r != nil {
			return r
		}
		return int64(0)
	}
	v, _ := h.get(string(argv[2]))
	return int64(len(v))
}

func cmdHIncrBy(s *store, argv [][]byte) rediscmd.Reply {
	incr, ok := parseInt(argv[3])
	if !ok {
		return errNotInteger()
	}
	h, r := s.hashWrite(string(argv[1]), true)
	if r != nil {
		return r
	}
	f := string(argv[2])
	var old int64
	if v, found := h.get(f); found {
		if old, ok = parseInt(v); !ok {
			return serverError(msgHashNotInt)
		}
	}
	if (incr < 0 && old < 0 && incr < math.MinInt64-old) ||
		(incr > 0 && old > 0 && incr > math.MaxInt64-old) {
		return serverError(msgOverflow)
	}
	n := old + incr
	h.set(f, formatInt(n))
	return n
}

// --- INFO -----------------------------------------------------------------

var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication", "keyspace"}

func cmdInfo(s *store, argv [][]byte) rediscmd.Reply {
	want := map[string]bool{}
	if len(argv) == 1 {
		for _, sec := range infoSections {
			want[sec] = true
		}
	}
	for _, a := range argv[1:] {
		switch sec := strings.ToLower(string(a)); sec {
		case "all", "default", "everything":
			for _, sec := range infoSections {
				want[sec] = true
			}
		default:
			want[sec] = true
		}
	}
	var b strings.Builder
	section := func(title string) {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + title + "\r\n")
	}
	field := func(name string, v any) {
		b.WriteString(name)
		b.WriteByte(':')
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case int:
			b.WriteString(strconv.Itoa(v))
		}
		b.WriteString("\r\n")
	}
	now := time.UnixMilli(s.nowMs)
	if want["server"] {
		up := int64(now.Sub(s.start) / time.Second)
		section("Server")
		field("redis_version", infoVersion)
		field("redis_git_sha1", "00000000")
		field("redis_git_dirty", "0")
		field("redis_mode", "standalone")
		field("os", runtime.GOOS+" "+runtime.GOARCH)
		field("arch_bits", strconv.Itoa(strconv.IntSize))
		field("process_id", os.Getpid())
		field("run_id", s.runID)
		field("tcp_port", "0")
		field("server_time_usec", now.UnixMicro())
		field("uptime_in_seconds", up)
		field("uptime_in_days", up/86400)
		field("hz", "10")
	}
	if want["clients"] {
		section("Clients")
		field("connected_clients", s.clients.Load())
		field("cluster_connections", "0")
		field("maxclients", "10000")
		field("blocked_clients", "0")
	}
	if want["memory"] {
		used := s.usedMemory()
		section("Memory")
		field("used_memory", used)
		field("used_memory_human", humanBytes(used))
		field("maxmemory", "0")
		field("maxmemory_human", "0B")
		field("maxmemory_policy", "noeviction")
	}
	if want["persistence"] {
		section("Persistence")
		field("loading", "0")
		field("rdb_changes_since_last_save", "0")
		field("aof_enabled", "0")
	}
	if want["stats"] {
		section("Stats")
		field("total_commands_processed", s.st.commands)
		field("expired_keys", s.st.expired)
		field("evicted_keys", "0")
		field("keyspace_hits", s.st.hits)
		field("keyspace_misses", s.st.misses)
		field("total_error_replies", s.st.errReplies)
	}
	if want["replication"] {
		section("Replication")
		field("role", "master")
		field("connected_slaves", "0")
	}
	if want["keyspace"] {
		s.expireAll()
		section("Keyspace")
		if n := len(s.data); n > 0 {
			var avg int64
			if len(s.expires) > 0 {
				var sum float64
				for _, when := range s.expires {
					sum += float64(when - s.nowMs)
				}
				avg = int64(sum / float64(len(s.expires)))
			}
			b.WriteString("db0:keys=" + strconv.Itoa(n) +
				",expires=" + strconv.Itoa(len(s.expires)) +
				",avg_ttl=" + strconv.FormatInt(avg, 10) + "\r\n")
		}
	}
	return []byte(b.String())
}

// usedMemory is a rough estimate of the bytes the data occupies.
func (s *store) usedMemory() int64 {
	const base, perKey, perField = 1 << 20, 64, 48
	n := int64(base)
	for k, o := range s.data {
		n += perKey + int64(len(k))
		switch o.kind {
		case kindString:
			n += int64(cap(o.str))
		case kindHash:
			n += int64(len(o.hash.fields)) * perField
			o.hash.each(func(f string, v []byte) { n += int64(len(f) + cap(v)) })
		}
	}
	n += int64(len(s.expires)) * 32
	return n
}

// humanBytes formats n as Redis' bytesToHuman does.
func humanBytes(n int64) string {
	d := float64(n)
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10) + "B"
	case n < 1<<20:
		return strconv.FormatFloat(d/(1<<10), 'f', 2, 64) + "K"
	case n < 1<<30:
		return strconv.FormatFloat(d/(1<<20), 'f', 2, 64) + "M"
	case n < 1<<40:
		return strconv.FormatFloat(d/(1<<30), 'f', 2, 64) + "G"
	}
	return strconv.FormatFloat(d/(1<<40), 'f', 2, 64) + "T"
}

// --- glob matching --------------------------------------------------------

// globMatch reports whether str matches the glob pattern with the exact
// semantics of Redis' stringmatchlen (case-sensitive): '*' and '?' match
// any byte including '/', "[...]" sets with '^' negation, 'a-z' ranges
// (reversed ranges allowed, bytes compared as signed chars like Redis on
// x86) and '\' escapes, and an unterminated '[' runs to the end of the
// pattern.
func globMatch(pattern, str []byte) bool {
	skipLonger := false
	return globMatchImpl(pattern, str, &skipLonger, 0)
}

func globMatchImpl(p, s []byte, skipLonger *bool, nesting int) bool {
	if nesting > 1000 {
		return false // Redis' protection against abusive patterns
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if globMatchImpl(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// The rest of the pattern matches nowhere in the rest of
			// the string, so longer matches of earlier stars cannot
			// help either.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if len(p) == 0 {
					break // unterminated: the set runs to the end
				}
				if p[0] == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					start, end, c := int8(p[0]), int8(p[2]), int8(s[0])
					if start > end {
						start, end = end, start
					}
					p = p[2:]
					if c >= start && c <= end {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		if len(p) > 0 {
			p = p[1:]
		}
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// --- cluster support --------------------------------------------------------

// slotKey is a key moved between stores with its value and deadline.
type slotKey struct {
	key      string
	obj      *object
	deadline int64 // Unix milliseconds, -1 for none
}

// takeSlotKeys removes up to n keys (every key when n <= 0) of the given
// hash slot, in key order, and returns them for putKeys. Expired keys are
// dropped rather than moved.
func (s *store) takeSlotKeys(slot uint16, n int) []slotKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nowMs = s.now().UnixMilli()
	s.expireAll()
	var keys []string
	for k := range s.data {
		if rediscmd.Slot([]byte(k)) == slot {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if n > 0 && len(keys) > n {
		keys = keys[:n]
	}
	out := make([]slotKey, len(keys))
	for i, k := range keys {
		out[i] = slotKey{key: k, obj: s.data[k], deadline: s.ttlOf(k)}
		s.delKey(k)
	}
	return out
}

// putKeys stores keys taken from another store by takeSlotKeys.
func (s *store) putKeys(keys []slotKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.data[k.key] = k.obj
		delete(s.expires, k.key)
		if k.deadline >= 0 {
			s.expires[k.key] = k.deadline
		}
	}
}

// countSlotKeys returns how many keys of the given slot the store holds.
func (s *store) countSlotKeys(slot uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nowMs = s.now().UnixMilli()
	s.expireAll()
	n := 0
	for k := range s.data {
		if rediscmd.Slot([]byte(k)) == slot {
			n++
		}
	}
	return n
}

// countExisting returns how many of keys exist (and have not expired),
// without touching the keyspace statistics.
func (s *store) countExisting(keys [][]byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nowMs = s.now().UnixMilli()
	n := 0
	for _, k := range keys {
		if s.lookupWrite(string(k)) != nil {
			n++
		}
	}
	return n
}
