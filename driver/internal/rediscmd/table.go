package rediscmd

import (
	"github.com/tendril-db/tendril/driver"
)

// Flags are a command's flags as Redis' COMMAND INFO reports them.
type Flags uint32

const (
	FlagWrite           Flags = 1 << iota // may modify the dataset
	FlagReadOnly                          // reads keys and modifies nothing
	FlagDenyOOM                           // refused when maxmemory is reached
	FlagModule                            // implemented by a module
	FlagAdmin                             // administrative
	FlagPubSub                            // publish/subscribe
	FlagNoScript                          // not allowed in scripts
	FlagBlocking                          // may block the client
	FlagLoading                           // allowed while the dataset loads
	FlagStale                             // allowed on a replica with stale data
	FlagSkipMonitor                       // not shown to MONITOR
	FlagSkipSlowlog                       // not logged to SLOWLOG
	FlagAsking                            // accepted for an importing slot
	FlagFast                              // O(1) or O(log N)
	FlagNoAuth                            // runs without authentication
	FlagMayReplicate                      // may be replicated
	FlagNoMandatoryKeys                   // may take no key at all
	FlagProtected                         // refused unless enabled in the configuration
	FlagMovableKeys                       // key positions depend on the arguments
	FlagNoAsyncLoading                    // refused during async loading
	FlagNoMulti                           // not allowed in MULTI
	FlagAllowBusy                         // allowed while a script is busy
	FlagModuleNoCluster                   // a module command refused in a cluster
)

// KeyFlags are the flags of a key specification (COMMAND INFO key_specs).
type KeyFlags uint16

const (
	KeyRO            KeyFlags = 1 << iota // read only
	KeyRW                                 // read and modified
	KeyOW                                 // overwritten, not read
	KeyRM                                 // removed
	KeyAccess                             // the value is returned or used
	KeyUpdate                             // the value is updated
	KeyInsert                             // data is added
	KeyDelete                             // data is deleted
	KeyNotKey                             // not a key, but routed like one (a shard channel)
	KeyIncomplete                         // the spec may miss keys
	KeyVariableFlags                      // the flags depend on the arguments
)

// KeySpec says where some of a command's keys are, in the shape of a key
// specification of Redis' COMMAND INFO: a begin search (an argument index,
// or the argument after a keyword) and a find-keys rule (a range, or a
// count given by an argument).
type KeySpec struct {
	Flags KeyFlags
	// Unknown specs cannot be followed from the arguments alone (SORT's):
	// the command has its own key finder.
	Unknown bool
	// The search begins at argument Index, or, when Keyword is set, after
	// the argument equal to Keyword (ASCII case-insensitively), looked for
	// from argument StartFrom onwards; a negative StartFrom counts from
	// the end and looks backwards.
	Index     int
	Keyword   string
	StartFrom int
	// With KeyNum, argument begin+KeyNumIdx holds the number of keys, the
	// first of which is argument begin+FirstKey. Otherwise the keys range
	// from the beginning to begin+LastKey, or, with a negative LastKey, to
	// the argument that far from the end; with a Limit too, the keys are
	// the first 1/Limit of the remaining arguments (XREAD STREAMS).
	KeyNum              bool
	KeyNumIdx, FirstKey int
	LastKey, Limit      int
	KeyStep             int
}

// bounds returns the range of argv holding the keys ks finds, or false when
// it finds none: a keyword absent, a count not a number, a range out of the
// arguments (a command the server will reject anyway). It follows Redis'
// getKeysUsingKeySpecs.
func (ks *KeySpec) bounds(argv [][]byte) (first, last, step int, ok bool) {
	argc := len(argv)
	switch {
	case ks.Unknown:
		return 0, 0, 0, false
	case ks.Keyword != "":
		start, end := ks.StartFrom, argc-1
		if start <= 0 {
			start, end = argc+ks.StartFrom, 1
		}
		for i := start; i != end && i >= 1 && i < argc; {
			if equalFold(argv[i], ks.Keyword) {
				first = i + 1
				break
			}
			if start <= end {
				i++
			} else {
				i--
			}
		}
		if first == 0 {
			return 0, 0, 0, false
		}
	default:
		first = ks.Index
	}
	step = max(ks.KeyStep, 1)
	switch {
	case ks.KeyNum:
		ni := first + ks.KeyNumIdx
		if ni >= argc {
			return 0, 0, 0, false
		}
		n, numOK := atoi(argv[ni])
		if !numOK || n > argc {
			return 0, 0, 0, false
		}
		first += ks.FirstKey
		last = first + n - 1
	case ks.LastKey >= 0:
		last = first + ks.LastKey
	case ks.Limit == 0:
		last = argc + ks.LastKey
	default:
		last = first + (argc-first)/ks.Limit + ks.LastKey
	}
	if first >= argc || last >= argc || last < first {
		return 0, 0, 0, false
	}
	return first, last, step, true
}

// atoi parses a non-negative decimal count without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// equalFold reports whether b equals the upper-case ASCII word w, ignoring
// ASCII case (as Redis' strcasecmp does for keywords).
func equalFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// SessionKind says which part of a connection's session state a command
// changes, so that the driver resetting a pinned connection before its
// reuse knows what to undo. A driver records the kinds of the statements
// run on a pinned connection (Spec.Session) and, when it is released:
//
//	SessionDB         SELECT the configured database again
//	SessionTxBegin    DISCARD (unless a later SessionTxEnd closed it)
//	SessionTxEnd      nothing: EXEC and DISCARD end the transaction and
//	                  forget the WATCHed keys
//	SessionWatch      UNWATCH (unless a later SessionUnwatch or SessionTxEnd)
//	SessionUnwatch    nothing
//	SessionReadMode   READONLY or READWRITE, as the connection was configured
//	SessionName       CLIENT SETNAME (and SETINFO) to the configured values
//	SessionClient     CLIENT TRACKING OFF, CLIENT NO-EVICT OFF, CLIENT
//	                  NO-TOUCH OFF (CLIENT CACHING only lasts one command)
//	SessionAuth       the user, the protocol or everything changed (AUTH,
//	                  HELLO, RESET): redo the handshake, or destroy
//	SessionSubscribe  the connection is, or was, in subscriber mode (or
//	                  MONITOR): RESET and redo the handshake, or destroy
//	SessionOther      no targeted undo (CLIENT REPLY, QUIT, SYNC, ASKING,
//	                  SCRIPT DEBUG...): destroy the connection
//	SessionBound      nothing: the command changes nothing, but answers
//	                  about the connection's own earlier commands (WAIT,
//	                  WAITAOF count the replicas that acknowledged its
//	                  writes), so it is refused on a shared connection
//
// SessionNone is the zero value: the command changes no session state.
type SessionKind uint8

const (
	SessionNone SessionKind = iota
	SessionDB
	SessionTxBegin
	SessionTxEnd
	SessionWatch
	SessionUnwatch
	SessionReadMode
	SessionName
	SessionClient
	SessionAuth
	SessionSubscribe
	SessionOther
	SessionBound
)

var sessionNames = [...]string{"none", "db", "tx-begin", "tx-end", "watch", "unwatch", "read-mode", "name", "client", "auth", "subscribe", "other", "bound"}

func (k SessionKind) String() string {
	if int(k) < len(sessionNames) {
		return sessionNames[k]
	}
	return "SessionKind(?)"
}

// Shape is the shape of a command's reply where RESP2 and RESP3 differ. The
// RESP3 shape is canonical: a driver speaking RESP2 converts the reply to
// it, so rows and their Go types are the same whatever the protocol.
type Shape uint8

const (
	// ShapeAsIs: both protocols give the same rows (sets are arrays,
	// verbatim strings are strings, nested maps become flat arrays).
	ShapeAsIs Shape = iota
	// ShapeMap: a map (HGETALL, CONFIG GET, XINFO STREAM...); RESP2 sends
	// a flat array of field, value, field, value...
	ShapeMap
	// ShapeDouble: a double (ZSCORE, ZINCRBY, ZADD INCR) or null; RESP2
	// sends a string.
	ShapeDouble
	// ShapeDoubles: an array of doubles or nulls (ZMSCORE).
	ShapeDoubles
	// ShapeScorePair: one [member, score] pair whose score is a double
	// (ZPOPMIN without a count, ZRANK WITHSCORE).
	ShapeScorePair
	// ShapeKeyScorePair: [key, member, score] with a double score
	// (BZPOPMIN, BZPOPMAX).
	ShapeKeyScorePair
	// ShapeScorePairs: an array of [member, score] pairs with double
	// scores (WITHSCORES, ZPOPMIN with a count); RESP2 sends a flat array
	// member, score, member, score...
	ShapeScorePairs
	// ShapePairs: an array of [field, value] pairs (HRANDFIELD
	// WITHVALUES); RESP2 sends a flat array.
	ShapePairs
	// ShapeKeyScorePairs: [key, [[member, score]...]] with double scores
	// (ZMPOP, BZMPOP).
	ShapeKeyScorePairs
	// ShapeStreams: a map of stream name to entries (XREAD, XREADGROUP);
	// RESP2 sends an array of [name, entries] pairs.
	ShapeStreams
	// ShapeCoords: an array of [longitude, latitude] double pairs or nulls
	// (GEOPOS).
	ShapeCoords
	// ShapeGeoItems: an array of items whose last element is a
	// [longitude, latitude] double pair (GEOSEARCH ... WITHCOORD).
	ShapeGeoItems
	// ShapeMemoryStats: MEMORY STATS' map, whose ratios and percentages
	// are doubles.
	ShapeMemoryStats
	// ShapeACLLog: an array of maps whose "age-seconds" is a double (ACL
	// LOG).
	ShapeACLLog
)

var shapeNames = [...]string{"as-is", "map", "double", "doubles", "score-pair", "key-score-pair", "score-pairs", "pairs", "key-score-pairs", "streams", "coords", "geo-items", "memory-stats", "acl-log"}

func (s Shape) String() string {
	if int(s) < len(shapeNames) {
		return shapeNames[s]
	}
	return "Shape(?)"
}

// Spec is what tendril knows about a command (or a subcommand of a
// container command such as CLIENT): the server's facts, generated from
// COMMAND INFO (table_gen.go), and tendril's decisions on top of them
// (policy.go). Specs are shared: never modify one.
type Spec struct {
	// Name is the command name in upper case; a subcommand is named with
	// its container, "CLIENT SETNAME".
	Name string
	// Arity is Redis' arity: n means exactly n arguments (the command
	// name, and a subcommand's name, included), -n at least n.
	Arity    int
	Flags    Flags
	KeySpecs []KeySpec

	// ReadOnly commands change nothing on the server: they read data (the
	// server's readonly flag) or only inspect the server or the
	// connection (PING, INFO, CLIENT LIST...). Route gives them the Read
	// intent, and they are idempotent.
	ReadOnly bool
	// Session says which session state the command changes (SessionNone:
	// none). Route marks such commands Session and Exclusive.
	Session SessionKind

	idem     bool                      // idempotent, unless idemIf says otherwise
	idemIf   func(argv [][]byte) bool  // idempotency that depends on the options
	blocking bool                      // blocks, unless blockIf says otherwise
	blockIf  func(argv [][]byte) bool  // blocking that depends on the options (XREAD BLOCK)
	shape    Shape                     // reply shape, unless shapeIf says otherwise
	shapeIf  func(argv [][]byte) Shape // reply shape that depends on the options (WITHSCORES)
	keys     keyFinder                 // a key finder of its own (SORT, MIGRATE)
	subs     map[string]*Spec          // a container's subcommands, by upper- and lower-case name
	unknown  *Spec                     // a container's spec for a subcommand it does not have
	// uncacheable: its reply may change while its key does not (see
	// CacheKey); the map below, looked up once.
	uncacheable bool
}

// keyFinder selects a key finder for commands whose keys the key specs
// cannot describe.
type keyFinder uint8

const (
	keysBySpecs keyFinder = iota
	keysSort
	keysMigrate
)

// Idempotent reports whether argv, a command line of this command, may run
// twice: leaving the same state and returning the same reply, so that a
// retry after a lost reply cannot report another outcome. It depends on
// the options for some commands (SET NX is not idempotent, SET is).
func (s *Spec) Idempotent(argv [][]byte) bool {
	switch {
	case s.ReadOnly:
		return true
	case s.idemIf != nil:
		return s.idemIf(argv)
	}
	return s.idem
}

// Blocks reports whether argv may hold its connection until the server
// has something to say (BLPOP, WAIT, XREAD with BLOCK): it needs a
// connection of its own and no socket timeout.
func (s *Spec) Blocks(argv [][]byte) bool {
	if s.blockIf != nil {
		return s.blockIf(argv)
	}
	return s.blocking
}

// CacheKey returns argv's key when its reply may be kept in a client-side
// cache that the server's key tracking invalidates (CLIENT TRACKING): a
// read of exactly one key (the server's readonly flag), not blocking, whose
// reply depends on the key's value alone. The time to live (TTL, PTTL),
// access statistics (OBJECT) and random members (SRANDMEMBER...) change
// without the key changing, and a script's reply is the script's.
func (s *Spec) CacheKey(argv [][]byte) ([]byte, bool) {
	if s.Flags&FlagReadOnly == 0 || s.Blocks(argv) || s.uncacheable {
		return nil, false
	}
	key, n := -1, 0
	s.eachKey(argv, func(i int, _ KeyFlags) bool {
		key, n = i, n+1
		return n < 2
	})
	if n != 1 {
		return nil, false
	}
	return argv[key], true
}

// uncacheable are the readonly commands of one key whose reply may change
// while the key does not.
var uncacheable = map[string]bool{
	"TTL": true, "PTTL": true, "OBJECT ENCODING": true, "OBJECT FREQ": true, "OBJECT IDLETIME": true,
	"OBJECT REFCOUNT": true, "MEMORY USAGE": true, "SRANDMEMBER": true, "HRANDFIELD": true, "ZRANDMEMBER": true,
	"EVAL_RO": true, "EVALSHA_RO": true, "FCALL_RO": true, "SORT_RO": true, // SORT_RO BY/GET read other keys
	// Idle times of pending entries and consumers grow by themselves.
	"XPENDING": true, "XINFO CONSUMERS": true, "XINFO GROUPS": true, "XINFO STREAM": true,
}

// ReplyShape returns the shape of argv's reply where RESP2 and RESP3
// differ; it depends on the options for some commands (ZRANGE ...
// WITHSCORES).
func (s *Spec) ReplyShape(argv [][]byte) Shape {
	if s.shapeIf != nil {
		return s.shapeIf(argv)
	}
	return s.shape
}

// Container reports whether the command has subcommands (CLIENT, CONFIG,
// XINFO...), which Lookup finds as "CLIENT SETNAME".
func (s *Spec) Container() bool { return s.subs != nil }

// Keys calls fn for every key argument of argv, in the order of the key
// specs (for ZUNIONSTORE the destination, then the sources). Shard
// channels (SPUBLISH, SSUBSCRIBE) count as keys: they are routed by slot.
func (s *Spec) Keys(argv [][]byte, fn func(key []byte)) {
	s.eachKey(argv, func(i int, _ KeyFlags) bool {
		fn(argv[i])
		return true
	})
}

// eachKey calls fn with the index and flags of every key of argv until fn
// returns false.
func (s *Spec) eachKey(argv [][]byte, fn func(i int, f KeyFlags) bool) {
	switch s.keys {
	case keysSort:
		sortKeys(argv, fn)
		return
	case keysMigrate:
		migrateKeys(argv, fn)
		return
	}
	for k := range s.KeySpecs {
		ks := &s.KeySpecs[k]
		first, last, step, ok := ks.bounds(argv)
		if !ok {
			continue
		}
		for i := first; i <= last; i += step {
			if !fn(i, ks.Flags) {
				return
			}
		}
	}
}

// firstKey returns the index of argv's first key, or 0 when it has none.
// It is eachKey stopped at the first key, without a callback.
func (s *Spec) firstKey(argv [][]byte) int {
	if s.keys != keysBySpecs {
		first := 0
		s.eachKey(argv, func(i int, _ KeyFlags) bool {
			first = i
			return false
		})
		return first
	}
	for k := range s.KeySpecs {
		if first, _, _, ok := s.KeySpecs[k].bounds(argv); ok {
			return first
		}
	}
	return 0
}

// sortKeys finds SORT's keys as Redis' sortGetKeys does: the sorted key,
// and the destination of STORE. BY and GET take a pattern, LIMIT two
// numbers.
func sortKeys(argv [][]byte, fn func(int, KeyFlags) bool) {
	if len(argv) < 2 || !fn(1, KeyRO|KeyAccess) {
		return
	}
	store := 0
	for i := 2; i < len(argv); i++ {
		switch {
		case equalFold(argv[i], "LIMIT"):
			i += 2
		case equalFold(argv[i], "GET"), equalFold(argv[i], "BY"):
			i++
		case equalFold(argv[i], "STORE") && i+1 < len(argv):
			store = i + 1 // the last STORE wins, as in Redis
			i++
		}
	}
	if store > 0 {
		fn(store, KeyOW|KeyUpdate)
	}
}

// migrateKeys finds MIGRATE's keys as Redis' migrateGetKeys does: the key
// argument, or, when it is empty, the keys after KEYS (AUTH takes one
// argument, AUTH2 two, either of which may be spelled "KEYS").
func migrateKeys(argv [][]byte, fn func(int, KeyFlags) bool) {
	const flags = KeyRW | KeyAccess | KeyDelete
	if len(argv) < 6 {
		return
	}
	for i := 6; i < len(argv); i++ {
		switch {
		case equalFold(argv[i], "AUTH"):
			i++
		case equalFold(argv[i], "AUTH2"):
			i += 2
		case equalFold(argv[i], "KEYS"):
			if len(argv[3]) != 0 {
				return // a syntax error: the server will say so
			}
			for k := i + 1; k < len(argv); k++ {
				if !fn(k, flags) {
					return
				}
			}
			return
		}
	}
	if len(argv[3]) != 0 {
		fn(3, flags)
	}
}

// Commands holds every command and subcommand tendril knows, by upper-case
// name ("GET", "CLIENT SETNAME"). It must not be modified.
var Commands = map[string]*Spec{}

// lookup finds top-level commands by their upper- or lower-case name,
// which is how nearly every statement spells them, in one map access.
var lookup = map[string]*Spec{}

// unknownSpec is the spec of a command tendril does not know: a write whose
// first argument is the key, and which is not idempotent.
var unknownSpec = Spec{KeySpecs: []KeySpec{{Flags: KeyRW, Index: 1, KeyStep: 1}}}

// maxName bounds the command and subcommand names Lookup folds to upper
// case; longer names are unknown commands.
const maxName = 32

// Lookup returns the command name of argv in upper case and its spec: the
// subcommand's for a container command ("CLIENT SETNAME"), a keyless
// non-idempotent write named after the container for a subcommand it does
// not have (a session change for CLIENT: see unknownSubs), or, for an
// unknown command, a non-idempotent write whose first argument is the
// key. Known commands are looked up without allocating.
func Lookup(argv [][]byte) (string, *Spec) {
	if len(argv) == 0 {
		return "", &unknownSpec
	}
	s := lookup[string(argv[0])]
	if s == nil {
		if s = lookupFold(lookup, argv[0]); s == nil {
			return upper(argv[0]), &unknownSpec
		}
	}
	if s.subs != nil && len(argv) > 1 {
		sub := s.subs[string(argv[1])]
		if sub == nil {
			if sub = lookupFold(s.subs, argv[1]); sub == nil {
				sub = s.unknown
			}
		}
		s = sub
	}
	return s.Name, s
}

// lookupFold looks name up in m in upper case.
func lookupFold(m map[string]*Spec, name []byte) *Spec {
	var tmp [maxName]byte
	if len(name) > len(tmp) {
		return nil
	}
	u := tmp[:len(name)]
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		u[i] = c
	}
	return m[string(u)]
}

// containers holds the upper-case names of the container commands by
// their first letter; containerLens has bit n set for a letter that starts
// a container name of n bytes.
var (
	containers    [26][]string
	containerLens [26]uint64
)

// isContainer reports whether name is a container command (CLIENT,
// CONFIG...), whose subcommand must be in the statement text too. Parse
// asks for every "CMD ?" statement, so it compares name with the container
// names of its first letter (none for GET, two for SET) rather than
// hashing it.
func isContainer(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	c := name[0] &^ 0x20 // ASCII upper case
	if c < 'A' || c > 'Z' || len(name) >= 64 || containerLens[c-'A']&(1<<len(name)) == 0 {
		return false
	}
	for _, n := range containers[c-'A'] {
		if len(n) == len(name) && equalFold(name, n) {
			return true
		}
	}
	return false
}

// RouteOf parses a statement and routes it without allocating. The Route
// has no Key: the parsed arguments do not outlive the call.
func RouteOf(query string, args []driver.Value) (driver.Route, error) {
	c := Get()
	defer Put(c)
	if err := c.ParseRef(query, args, BigArg); err != nil { // a value is not copied to be routed
		return driver.Route{}, err
	}
	r := Route(c.Argv)
	r.Key = nil
	return r, nil
}

// Route maps a parsed command line to a driver.Route. The partition is the
// Redis Cluster slot of the first key. Session-changing commands are
// Exclusive as well as Session; so are blocking ones (XREAD only with
// BLOCK).
func Route(argv [][]byte) driver.Route {
	r, _ := RouteSpec(argv)
	return r
}

// RouteSpec is Route that also returns the command's Spec (see Lookup).
func RouteSpec(argv [][]byte) (driver.Route, *Spec) {
	name, s := Lookup(argv)
	return RouteWith(argv, name, s), s
}

// RouteWith is Route for an argv whose command's name and Spec are known
// (see Lookup).
func RouteWith(argv [][]byte, name string, s *Spec) driver.Route {
	r := driver.Route{
		Op:         name,
		Partition:  driver.AnyPartition,
		Idempotent: s.Idempotent(argv),
		Session:    s.Session != SessionNone,
	}
	r.Exclusive = r.Session || s.Blocks(argv)
	if s.ReadOnly {
		r.Intent = driver.Read
	}
	if i := s.firstKey(argv); i > 0 {
		r.Key = argv[i]
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
