package rediscmd

import (
	"strings"
	"time"
)

// This file holds what tendril decides about commands on top of what the
// server says (table_gen.go): which change nothing though the server does
// not flag them readonly, which writes are idempotent (and with which
// options), which change the connection's session, which block, and where
// the RESP2 and RESP3 replies differ.
//
// Idempotent means: running the command twice leaves the same state AND
// returns the same reply, so that a retry after a lost reply cannot report
// another outcome than the first attempt had. Reads are idempotent. A
// write is not unless listed here; so are unknown commands, EVAL and
// FCALL (a script may do anything).

// policy is tendril's decision about one command; the zero policy keeps
// the server's flags: readonly commands read, blocking ones block, all
// others are non-idempotent writes.
type policy struct {
	read    bool                     // changes nothing, though not flagged readonly
	idem    bool                     // an idempotent write
	idemIf  func(argv [][]byte) bool // idempotent with these options only
	block   bool                     // blocks, though not flagged blocking
	blockIf func(argv [][]byte) bool // blocks with these options only
	session SessionKind
	shape   Shape
	shapeIf func(argv [][]byte) Shape
	keys    keyFinder
}

var (
	read       = policy{read: true}
	idempotent = policy{idem: true}
)

// session is the policy of a session command; idem says whether running
// it twice changes nothing more than running it once.
func session(k SessionKind, idem bool) policy { return policy{session: k, idem: idem} }

var policies = map[string]policy{
	// Keyless commands that only inspect the server or the connection.
	// The server does not flag them readonly (that flag is for commands
	// reading keys) but they change nothing, so they are reads.
	"PING": read, "ECHO": read, "INFO": read, "TIME": read, "LASTSAVE": read, "ROLE": read,
	"COMMAND": read, "COMMAND COUNT": read, "COMMAND GETKEYS": read, "COMMAND GETKEYSANDFLAGS": read,
	"COMMAND INFO": read, "COMMAND LIST": read, "COMMAND HELP": read,
	"COMMAND DOCS": {read: true, shape: ShapeMap},
	"CONFIG GET":   {read: true, shape: ShapeMap},
	"CONFIG HELP":  read,
	"CLIENT ID":    read, "CLIENT INFO": read, "CLIENT LIST": read, "CLIENT GETNAME": read,
	"CLIENT GETREDIR": read, "CLIENT HELP": read,
	"CLIENT TRACKINGINFO": {read: true, shape: ShapeMap},
	"MEMORY DOCTOR":       read, "MEMORY MALLOC-STATS": read, "MEMORY HELP": read,
	"MEMORY STATS":   {read: true, shape: ShapeMemoryStats},
	"LATENCY DOCTOR": read, "LATENCY GRAPH": read, "LATENCY HISTORY": read, "LATENCY LATEST": read,
	"LATENCY HELP":      read,
	"LATENCY HISTOGRAM": {read: true, shape: ShapeMap},
	"SLOWLOG GET":       read, "SLOWLOG LEN": read, "SLOWLOG HELP": read,
	"ACL CAT": read, "ACL LIST": read, "ACL USERS": read, "ACL WHOAMI": read,
	"ACL GENPASS": read, "ACL DRYRUN": read, "ACL HELP": read,
	"ACL GETUSER": {read: true, shape: ShapeMap},
	"MODULE LIST": read, "MODULE HELP": read,
	"FUNCTION LIST": read, "FUNCTION DUMP": read, "FUNCTION HELP": read,
	"FUNCTION STATS": {read: true, shape: ShapeMap},
	"SCRIPT EXISTS":  read, "SCRIPT HELP": read,
	"PUBSUB CHANNELS": read, "PUBSUB NUMPAT": read, "PUBSUB NUMSUB": read,
	"PUBSUB SHARDCHANNELS": read, "PUBSUB SHARDNUMSUB": read, "PUBSUB HELP": read,
	"CLUSTER INFO": read, "CLUSTER NODES": read, "CLUSTER SLOTS": read, "CLUSTER SHARDS": read,
	"CLUSTER MYID": read, "CLUSTER KEYSLOT": read, "CLUSTER COUNTKEYSINSLOT": read,
	"CLUSTER GETKEYSINSLOT": read, "CLUSTER LINKS": read, "CLUSTER COUNT-FAILURE-REPORTS": read,
	"CLUSTER REPLICAS": read, "CLUSTER SLAVES": read, "CLUSTER HELP": read,
	"OBJECT HELP": read, "XINFO HELP": read, "XGROUP HELP": read,

	// Idempotent writes: the same state and the same reply on a repeat.
	"MSET": idempotent, "HMSET": idempotent, "SETEX": idempotent, "PSETEX": idempotent,
	// SETRANGE replies with the string's length, the same on a repeat.
	"SETRANGE": idempotent,
	// LSET replies OK and sets the same element.
	"LSET": idempotent,
	// PFMERGE merges into the destination: a union, unchanged by a repeat.
	"PFMERGE":      idempotent,
	"XGROUP SETID": idempotent, "XSETID": idempotent,
	"FLUSHALL": idempotent, "FLUSHDB": idempotent,
	"SAVE": idempotent, "REPLICAOF": idempotent, "SLAVEOF": idempotent,
	"CONFIG SET": idempotent, "CONFIG REWRITE": idempotent, "CONFIG RESETSTAT": idempotent,
	// ACL SETUSER applies rules that set state (a repeat adds nothing);
	// ACL LOG is a read, or, with RESET, clears the log (OK twice).
	"ACL SETUSER": idempotent, "ACL LOAD": idempotent, "ACL SAVE": idempotent, "ACL LOG": {idem: true, shape: ShapeACLLog},
	"SCRIPT LOAD": idempotent, "SCRIPT FLUSH": idempotent, "FUNCTION FLUSH": idempotent,
	"CLIENT PAUSE": idempotent, "CLIENT UNPAUSE": idempotent,
	"MEMORY PURGE": idempotent, "SLOWLOG RESET": idempotent,
	"CLUSTER SAVECONFIG": idempotent, "CLUSTER SETSLOT": idempotent, "CLUSTER MEET": idempotent,
	"CLUSTER REPLICATE": idempotent,

	// Idempotent with some options only.
	"SET":       {idemIf: setIdempotent},
	"EXPIRE":    {idemIf: expireIdempotent},
	"PEXPIRE":   {idemIf: expireIdempotent},
	"EXPIREAT":  {idemIf: expireAtIdempotent(time.Second)},
	"PEXPIREAT": {idemIf: expireAtIdempotent(time.Millisecond)},
	"GETEX":     {idemIf: getexIdempotent},
	"LTRIM":     {idemIf: ltrimIdempotent},
	// COPY without REPLACE replies 0 when the destination exists, which
	// it does after a first attempt.
	"COPY": {idemIf: optFrom(3, "REPLACE")},
	// RESTORE without REPLACE fails with BUSYKEY after a first attempt.
	"RESTORE":        {idemIf: optFrom(4, "REPLACE")},
	"RESTORE-ASKING": {idemIf: optFrom(4, "REPLACE")},
	// MIGRATE moves the keys away, so a repeat finds none; with COPY and
	// REPLACE the source stays and the target is overwritten again.
	"MIGRATE": {idemIf: migrateIdempotent, keys: keysMigrate},
	// FUNCTION LOAD fails on a second run unless it may REPLACE; RESTORE
	// too, unless it FLUSHes or REPLACEs.
	"FUNCTION LOAD": {idemIf: func(argv [][]byte) bool { return len(argv) > 3 && equalFold(argv[2], "REPLACE") }},
	"FUNCTION RESTORE": {idemIf: func(argv [][]byte) bool {
		return len(argv) > 3 && (equalFold(argv[3], "REPLACE") || equalFold(argv[3], "FLUSH"))
	}},
	// The *STORE commands compute the destination from the sources and
	// reply with its size: the same on a repeat, unless the destination is
	// also a source (ZUNIONSTORE d 2 d a adds a's scores again).
	"SINTERSTORE": {idemIf: storeIdempotent}, "SUNIONSTORE": {idemIf: storeIdempotent},
	"SDIFFSTORE": {idemIf: storeIdempotent}, "ZUNIONSTORE": {idemIf: storeIdempotent},
	"ZINTERSTORE": {idemIf: storeIdempotent}, "ZDIFFSTORE": {idemIf: storeIdempotent},
	"ZRANGESTORE": {idemIf: storeIdempotent}, "GEOSEARCHSTORE": {idemIf: storeIdempotent},
	"BITOP": {idemIf: storeIdempotent},
	// SORT and GEORADIUS are writes only with STORE: reads otherwise.
	"SORT":              {idemIf: storeIdempotent, keys: keysSort},
	"SORT_RO":           {keys: keysSort},
	"GEORADIUS":         {idemIf: storeIdempotent, shapeIf: geoShape(6, geoRadiusSkips)},
	"GEORADIUSBYMEMBER": {idemIf: storeIdempotent, shapeIf: geoShape(5, geoRadiusSkips)},

	// Not idempotent, stated where it may not be obvious (every write not
	// listed above is not either):
	//   SETNX, HSETNX, MSETNX, RENAMENX, PERSIST: the repeat replies 0.
	//   DEL, UNLINK, HDEL, SREM, ZREM, SADD, HSET, ZADD, GEOADD, PFADD,
	//   XACK, XDEL, XTRIM, LREM, ZREMRANGEBY*: the count changes.
	//   GETSET, GETDEL, SETBIT: the repeat returns what the first wrote.
	//   RENAME: the repeat fails, the source is gone. MOVE: replies 0.
	//   SWAPDB: a repeat swaps back. PUBLISH: delivers twice.
	//   INCR..., APPEND, LPUSH..., XADD...: they accumulate.

	// Blocking commands not flagged blocking by the server: WAIT and
	// WAITAOF hold the connection until the replicas acknowledge. They
	// change nothing: a repeat asks again about the same writes. They
	// count the acknowledgements of their own connection's writes: on a
	// shared one, or a fresh one, they report replication that did not
	// happen (SessionBound).
	"WAIT":    {block: true, idem: true, session: SessionBound},
	"WAITAOF": {block: true, idem: true, session: SessionBound},
	// XREAD and XREADGROUP block only with BLOCK; without it they are
	// ordinary commands that may share a connection.
	"XREAD":      {blockIf: streamsBlock(1), shape: ShapeStreams},
	"XREADGROUP": {blockIf: streamsBlock(4), shape: ShapeStreams},

	// Session commands (Route marks them Session and Exclusive).
	"SELECT":          session(SessionDB, true),
	"MULTI":           session(SessionTxBegin, false), // MULTI inside MULTI is an error
	"EXEC":            session(SessionTxEnd, false),
	"DISCARD":         session(SessionTxEnd, false),
	"WATCH":           session(SessionWatch, true),
	"UNWATCH":         session(SessionUnwatch, true),
	"READONLY":        session(SessionReadMode, true),
	"READWRITE":       session(SessionReadMode, true),
	"CLIENT SETNAME":  session(SessionName, true),
	"CLIENT SETINFO":  session(SessionName, true),
	"CLIENT TRACKING": session(SessionClient, true),
	"CLIENT CACHING":  session(SessionClient, true),
	"CLIENT NO-EVICT": session(SessionClient, true),
	"CLIENT NO-TOUCH": session(SessionClient, true),
	"AUTH":            session(SessionAuth, true),
	"HELLO":           {session: SessionAuth, idem: true, shape: ShapeMap},
	"RESET":           session(SessionAuth, true),
	"SUBSCRIBE":       session(SessionSubscribe, true),
	"PSUBSCRIBE":      session(SessionSubscribe, true),
	"SSUBSCRIBE":      session(SessionSubscribe, true),
	"UNSUBSCRIBE":     session(SessionSubscribe, true),
	"PUNSUBSCRIBE":    session(SessionSubscribe, true),
	"SUNSUBSCRIBE":    session(SessionSubscribe, true),
	"MONITOR":         session(SessionSubscribe, false),
	"ASKING":          session(SessionOther, true),
	"QUIT":            session(SessionOther, false),
	"SYNC":            session(SessionOther, false),
	"PSYNC":           session(SessionOther, false),
	"REPLCONF":        session(SessionOther, false),
	"CLIENT REPLY":    session(SessionOther, false),
	// SCRIPT DEBUG makes the connection's next EVAL a debugging session.
	"SCRIPT DEBUG": session(SessionOther, false),

	// Replies whose RESP2 and RESP3 shapes differ.
	"HGETALL":              {shape: ShapeMap},
	"XINFO STREAM":         {shape: ShapeMap},
	"LCS":                  {shapeIf: optShape(3, "IDX", ShapeMap)},
	"ZSCORE":               {shape: ShapeDouble},
	"ZINCRBY":              {shape: ShapeDouble},
	"ZMSCORE":              {shape: ShapeDoubles},
	"ZADD":                 {shapeIf: zaddShape},
	"ZRANGE":               {shapeIf: optShape(4, "WITHSCORES", ShapeScorePairs)},
	"ZRANGEBYSCORE":        {shapeIf: optShape(4, "WITHSCORES", ShapeScorePairs)},
	"ZREVRANGE":            {shapeIf: optShape(4, "WITHSCORES", ShapeScorePairs)},
	"ZREVRANGEBYSCORE":     {shapeIf: optShape(4, "WITHSCORES", ShapeScorePairs)},
	"ZUNION":               {shapeIf: numkeysShape},
	"ZINTER":               {shapeIf: numkeysShape},
	"ZDIFF":                {shapeIf: numkeysShape},
	"ZRANDMEMBER":          {shapeIf: optShape(3, "WITHSCORES", ShapeScorePairs)},
	"ZPOPMIN":              {shapeIf: zpopShape},
	"ZPOPMAX":              {shapeIf: zpopShape},
	"ZRANK":                {shapeIf: optShape(3, "WITHSCORE", ShapeScorePair)}, // Redis 7.2
	"ZREVRANK":             {shapeIf: optShape(3, "WITHSCORE", ShapeScorePair)},
	"BZPOPMIN":             {shape: ShapeKeyScorePair},
	"BZPOPMAX":             {shape: ShapeKeyScorePair},
	"ZMPOP":                {shape: ShapeKeyScorePairs},
	"BZMPOP":               {shape: ShapeKeyScorePairs},
	"HRANDFIELD":           {shapeIf: optShape(3, "WITHVALUES", ShapePairs)},
	"GEOPOS":               {shape: ShapeCoords},
	"GEORADIUS_RO":         {shapeIf: geoShape(6, geoRadiusSkips)},
	"GEORADIUSBYMEMBER_RO": {shapeIf: geoShape(5, geoRadiusSkips)},
	"GEOSEARCH":            {shapeIf: geoShape(2, geoSearchSkips)},
}

// unknownSubs is the session kind of the subcommands a container does not
// have (a server newer than the table, or a typo the server will refuse).
// CLIENT is a container of session switches (CLIENT CAPA, CLIENT
// IMPORT-SOURCE came after the table): an unknown one is taken for one
// that may change the session, refused on shared connections and never
// undone on a pinned one. Other containers' unknown subcommands change no
// session.
var unknownSubs = map[string]SessionKind{"CLIENT": SessionOther}

// extraCommands are commands newer than the server the table was generated
// from, which tendril must know anyway. Where the generated table has
// them (a newer server), its spec is used.
var extraCommands = []Spec{
	// WAITAOF numlocal numreplicas timeout (Redis 7.2)
	{Name: "WAITAOF", Arity: 4, Flags: FlagNoScript},
	// CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2)
	{Name: "CLIENT SETINFO", Arity: 4, Flags: FlagNoScript | FlagLoading | FlagStale},
	// CLIENT NO-TOUCH ON|OFF (Redis 7.2)
	{Name: "CLIENT NO-TOUCH", Arity: 3, Flags: FlagNoScript | FlagLoading | FlagStale},
}

func init() {
	specs := make([]Spec, 0, len(serverCommands)+len(extraCommands))
	specs = append(specs, serverCommands[:]...)
	for _, e := range extraCommands {
		if !containsName(specs, e.Name) {
			specs = append(specs, e)
		}
	}
	for i := range specs {
		s := &specs[i]
		s.ReadOnly = s.Flags&FlagReadOnly != 0
		s.blocking = s.Flags&FlagBlocking != 0
		if p, ok := policies[s.Name]; ok {
			s.ReadOnly = s.ReadOnly || p.read
			s.idem, s.idemIf = p.idem, p.idemIf
			s.blocking = s.blocking || p.block
			s.blockIf = p.blockIf
			s.Session = p.session
			s.shape, s.shapeIf = p.shape, p.shapeIf
			s.keys = p.keys
		}
		s.uncacheable = uncacheable[s.Name]
		Commands[s.Name] = s
	}
	for i := range specs {
		s := &specs[i]
		parent, sub, ok := strings.Cut(s.Name, " ")
		if !ok {
			lookup[s.Name], lookup[strings.ToLower(s.Name)] = s, s
			continue
		}
		c := Commands[parent]
		if c == nil {
			continue // a subcommand of a container the table lacks
		}
		if c.subs == nil {
			i := c.Name[0] - 'A'
			containers[i] = append(containers[i], c.Name)
			containerLens[i] |= 1 << len(c.Name)
			c.subs = map[string]*Spec{}
			// A subcommand the container does not have: the server may
			// reject it, but until then it is a keyless write to retry
			// never (and, for some containers, a session change).
			c.unknown = &Spec{Name: c.Name, Arity: c.Arity, Flags: c.Flags, Session: unknownSubs[c.Name]}
		}
		c.subs[sub], c.subs[strings.ToLower(sub)] = s, s
	}
}

func containsName(specs []Spec, name string) bool {
	for i := range specs {
		if specs[i].Name == name {
			return true
		}
	}
	return false
}

// hasOpt reports whether an argument from index from on is the option w
// (upper case), ASCII case-insensitively. Callers start after the
// positional arguments, where an option's own values (numbers, mostly)
// cannot be mistaken for w.
func hasOpt(argv [][]byte, from int, w string) bool {
	for i := from; i < len(argv); i++ {
		if equalFold(argv[i], w) {
			return true
		}
	}
	return false
}

func optFrom(from int, w string) func([][]byte) bool {
	return func(argv [][]byte) bool { return hasOpt(argv, from, w) }
}

func optShape(from int, w string, sh Shape) func([][]byte) Shape {
	return func(argv [][]byte) Shape {
		if hasOpt(argv, from, w) {
			return sh
		}
		return ShapeAsIs
	}
}

// parseInt parses a decimal integer as Redis' string2ll does, without
// allocating.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// setIdempotent: SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL].
// NX replies nil on a repeat, GET returns the value the first attempt set.
// XX is idempotent: the key exists on the repeat too.
func setIdempotent(argv [][]byte) bool {
	return !hasOpt(argv, 3, "NX") && !hasOpt(argv, 3, "GET")
}

// expireIdempotent: EXPIRE key seconds without NX|XX|GT|LT sets the same
// deadline (later by the retry's delay) and replies the same. NX, GT and
// LT compare with the deadline the first attempt set and reply 0; a
// non-positive TTL deletes the key, so the repeat replies 0.
func expireIdempotent(argv [][]byte) bool {
	if len(argv) != 3 {
		return false
	}
	n, ok := parseInt(argv[2])
	return ok && n > 0
}

// expireAtMargin is how far in the future (by this machine's clock) an
// EXPIREAT deadline must be for the command to count as idempotent: a
// deadline the server sees as past deletes the key, and the repeat replies
// 0. The margin covers the clock difference between client and server.
const expireAtMargin = time.Minute

// expireAtIdempotent: EXPIREAT key timestamp without options, for a
// deadline safely in the future (see expireAtMargin).
func expireAtIdempotent(unit time.Duration) func([][]byte) bool {
	return func(argv [][]byte) bool {
		return len(argv) == 3 && future(argv[2], unit)
	}
}

// future reports whether b is a timestamp in unit more than expireAtMargin
// from now.
func future(b []byte, unit time.Duration) bool {
	n, ok := parseInt(b)
	if !ok {
		return false
	}
	limit := time.Now().Add(expireAtMargin)
	if unit == time.Second {
		return n > limit.Unix()
	}
	return n > limit.UnixMilli()
}

// getexIdempotent: GETEX key [EX|PX n|EXAT|PXAT ts|PERSIST] returns the
// value and sets the same TTL again; only a past EXAT or PXAT deletes the
// key, so that the repeat returns nil.
func getexIdempotent(argv [][]byte) bool {
	if len(argv) == 4 {
		switch {
		case equalFold(argv[2], "EXAT"):
			return future(argv[3], time.Second)
		case equalFold(argv[2], "PXAT"):
			return future(argv[3], time.Millisecond)
		}
	}
	return true
}

// ltrimIdempotent: LTRIM key start stop replies OK, but trims again on a
// repeat unless the kept range is a prefix (0 to n, n >= -1) or a suffix
// (-n to -1) of the list: LTRIM k 1 -1 drops one more element each time.
func ltrimIdempotent(argv [][]byte) bool {
	if len(argv) != 4 {
		return false
	}
	start, ok1 := parseInt(argv[2])
	stop, ok2 := parseInt(argv[3])
	return ok1 && ok2 && (start == 0 && stop >= -1 || start < 0 && stop == -1)
}

// migrateIdempotent: MIGRATE host port key db timeout [COPY] [REPLACE]
// [AUTH pw] [AUTH2 user pw] [KEYS key...] is idempotent with both COPY and
// REPLACE.
func migrateIdempotent(argv [][]byte) bool {
	cp, replace := false, false
	for i := 6; i < len(argv); i++ {
		switch {
		case equalFold(argv[i], "COPY"):
			cp = true
		case equalFold(argv[i], "REPLACE"):
			replace = true
		case equalFold(argv[i], "AUTH"):
			i++
		case equalFold(argv[i], "AUTH2"):
			i += 2
		case equalFold(argv[i], "KEYS"):
			i = len(argv)
		}
	}
	return cp && replace
}

// storeIdempotent: a command storing what it computed from source keys is
// idempotent unless a destination (a key written: OW, or RW as SINTERSTORE
// flags its destination) is also a source (a key only read: RO).
func storeIdempotent(argv [][]byte) bool {
	_, s := Lookup(argv)
	ok := true
	s.eachKey(argv, func(i int, f KeyFlags) bool {
		if f&KeyRO != 0 {
			return true
		}
		s.eachKey(argv, func(j int, g KeyFlags) bool {
			if g&KeyRO != 0 && string(argv[i]) == string(argv[j]) {
				ok = false
			}
			return ok
		})
		return ok
	})
	return ok
}

// streamsBlock: XREAD [COUNT n] [BLOCK ms] STREAMS ... blocks with BLOCK
// among the options before STREAMS (after it, BLOCK is a stream name).
// XREADGROUP's options start after GROUP group consumer.
func streamsBlock(from int) func([][]byte) bool {
	return func(argv [][]byte) bool {
		for i := from; i < len(argv); i++ {
			switch {
			case equalFold(argv[i], "STREAMS"):
				return false
			case equalFold(argv[i], "BLOCK"):
				return true
			case equalFold(argv[i], "COUNT"):
				i++
			}
		}
		return false
	}
}

// zaddShape: ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member... replies
// with the new score, a double, with INCR.
func zaddShape(argv [][]byte) Shape {
	for i := 2; i < len(argv); i++ {
		switch {
		case equalFold(argv[i], "INCR"):
			return ShapeDouble
		case equalFold(argv[i], "NX"), equalFold(argv[i], "XX"), equalFold(argv[i], "GT"),
			equalFold(argv[i], "LT"), equalFold(argv[i], "CH"):
		default:
			return ShapeAsIs // the first score: the options are over
		}
	}
	return ShapeAsIs
}

// zpopShape: ZPOPMIN key replies one [member, score] pair, ZPOPMIN key
// count an array of them.
func zpopShape(argv [][]byte) Shape {
	if len(argv) > 2 {
		return ShapeScorePairs
	}
	return ShapeScorePair
}

// numkeysShape: ZUNION numkeys key... [WEIGHTS w...] [AGGREGATE a]
// [WITHSCORES]; the options follow the keys (which may be named
// WITHSCORES).
func numkeysShape(argv [][]byte) Shape {
	if len(argv) < 2 {
		return ShapeAsIs
	}
	n, ok := parseInt(argv[1])
	if !ok || n < 0 || n > int64(len(argv)) {
		return ShapeAsIs
	}
	if hasOpt(argv, 2+int(n), "WITHSCORES") {
		return ShapeScorePairs
	}
	return ShapeAsIs
}

// skip is an option followed by n arguments of its own.
type skip struct {
	opt string
	n   int
}

var (
	geoRadiusSkips = []skip{{"COUNT", 1}, {"STORE", 1}, {"STOREDIST", 1}}
	geoSearchSkips = []skip{{"FROMMEMBER", 1}, {"FROMLONLAT", 2}, {"BYRADIUS", 2}, {"BYBOX", 3}, {"COUNT", 1}}
)

// geoShape: GEOSEARCH and GEORADIUS items carry their coordinates, doubles,
// WITHCOORD. The options start at from; a member or a key given to an
// option (FROMMEMBER, STORE) may be named WITHCOORD, so those are skipped.
func geoShape(from int, skips []skip) func([][]byte) Shape {
	return func(argv [][]byte) Shape {
	next:
		for i := from; i < len(argv); i++ {
			if equalFold(argv[i], "WITHCOORD") {
				return ShapeGeoItems
			}
			for _, s := range skips {
				if equalFold(argv[i], s.opt) {
					i += s.n
					continue next
				}
			}
		}
		return ShapeAsIs
	}
}
