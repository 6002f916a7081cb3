package postgres

import (
	"fmt"
	"strings"

	"github.com/tendril-db/tendril/driver"
)

// Route implements driver.Router. A SQL statement's first word does not
// say whether it writes (SELECT nextval(...), WITH ... INSERT, SELECT ...
// FOR UPDATE), so every statement is a Write the driver is unsure of: it
// goes to the primary unless the caller declares a read (sqlish.WithRead)
// or runs a read-only transaction. None is idempotent. Native $1
// placeholders are passed through untouched.
func (c *connector) Route(query string, _ []driver.Value) (driver.Route, error) {
	a := c.analyze(query)
	if a.copy {
		return driver.Route{}, errCopy
	}
	return driver.Route{
		Op:        a.op,
		Partition: driver.AnyPartition,
		Intent:    driver.Write,
		Unsure:    true,
		Session:   a.session,
	}, nil
}

// analysis is what the scanner learns of a query string.
type analysis struct {
	op string // the first statement's keyword, upper case ("" for none)
	// session: some statement changes the session (see stmt.session),
	// which is its purpose: refused on the DB's shared pool. dirty: some
	// statement may change it as a side effect (a DO block): it runs on
	// the shared pool, and the connection is reset before its reuse.
	// reset: some statement may drop prepared statements (DISCARD ALL,
	// DEALLOCATE), so the statement cache must be cleared.
	session, dirty, reset bool
	// copy: some statement is a COPY from the client or to it (FROM
	// STDIN, TO STDOUT), which needs the copy sub-protocol.
	copy bool
	// plain: one statement of plain DML (see keywords) that changes
	// nothing of the session; a batch may group it with others in one
	// implicit transaction.
	plain bool
	// varies: the first statement's result columns may differ from one
	// run to the next without the server saying so (FETCH from a cursor,
	// EXECUTE of a prepared statement): see entry.run.
	varies bool
}

// errCopy refuses COPY FROM STDIN and COPY TO STDOUT: without the copy
// sub-protocol the server would wait for data that never comes.
var errCopy = fmt.Errorf("postgres: COPY FROM STDIN and COPY TO STDOUT need the copy protocol, which the driver does not speak: use INSERT (a batch), or COPY to or from a file on the server: %w", driver.ErrNotSupported)

// maxAnalyses bounds the analyses a connector keeps: an application runs
// a bounded set of statements, but one that builds its SQL with literals in
// it would otherwise grow the cache without end.
const maxAnalyses = 4096

// analyze is analyze with a cache: a statement is scanned once per
// connector, not twice per run (to route it, and to track its session
// effects on the connection).
func (c *connector) analyze(query string) analysis {
	if a, ok := c.analyses.Load(query); ok {
		return a.(analysis)
	}
	a := analyze(query)
	if c.nanalyses.Add(1) <= maxAnalyses {
		c.analyses.Store(query, a)
	}
	return a
}

// analyze scans a query (one statement or several separated by ';') for
// its operation and what it does to the session. Comments, string
// literals (including E'...' and $tag$...$tag$), quoted identifiers and
// parentheses are skipped properly, so a keyword inside them counts for
// nothing.
func analyze(query string) analysis {
	var a analysis
	s := scanner{q: query}
	n := 0
	for {
		st, ok := s.statement()
		if !ok {
			break
		}
		if st.first == "" {
			continue
		}
		if n++; n == 1 {
			a.op = st.op()
			a.varies = st.first == "FETCH" || st.first == "EXECUTE"
		}
		ses, reset := st.session()
		a.session = a.session || ses
		a.reset = a.reset || reset
		if st.first == "DO" {
			// An anonymous code block can do to the session anything a
			// statement can, DEALLOCATE ALL included, but is rarely run
			// for that (a migration's conditional DDL).
			a.dirty, a.reset = true, true
		}
		a.copy = a.copy || st.copy()
	}
	a.plain = n == 1 && keywords[a.op] && !a.session && !a.dirty
	return a
}

// stmt is one statement: its words at parenthesis depth 0 (upper case,
// up to maxWords), and whether a session function is called anywhere.
type stmt struct {
	first string // the first word, at any depth of parentheses
	words []string
	// afterParen[i] says a closing parenthesis came right before words[i].
	afterParen []bool
	// calls is set when the statement calls a function that changes the
	// session (set_config, session-level advisory locks), selects INTO a
	// temporary table, or names an object in pg_temp (which makes one).
	calls bool
}

// maxWords bounds the words kept per statement: only the first few are
// looked at, except for WITH, whose main statement follows its queries.
const maxWords = 64

var keywords = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true, "VALUES": true, "TABLE": true}

// op is the statement's operation: its first keyword, or for WITH the
// keyword of the main statement that follows the WITH queries.
func (st *stmt) op() string {
	op := st.first
	if op != "WITH" || len(st.words) == 0 || st.words[0] != "WITH" {
		return op
	}
	for i := 1; i < len(st.words); i++ {
		if st.afterParen[i] && keywords[st.words[i]] {
			return st.words[i]
		}
	}
	return op
}

// copy reports whether the statement is a COPY through the client.
func (st *stmt) copy() bool {
	if len(st.words) == 0 || st.words[0] != "COPY" {
		return false
	}
	for _, w := range st.words[1:] {
		if w == "STDIN" || w == "STDOUT" {
			return true
		}
	}
	return false
}

// session reports whether the statement changes the session state, and
// whether it drops prepared statements.
func (st *stmt) session() (session, reset bool) {
	w := st.words
	if len(w) == 0 {
		return st.calls, false
	}
	next := func(i int) string {
		if i < len(w) {
			return w[i]
		}
		return ""
	}
	switch w[0] {
	case "EXPLAIN":
		// EXPLAIN ANALYZE runs its statement: judge that one.
		i := 1
		for i < len(w) && (w[i] == "ANALYZE" || w[i] == "ANALYSE" || w[i] == "VERBOSE") {
			i++
		}
		if i < len(w) {
			inner := stmt{first: w[i], words: w[i:], afterParen: st.afterParen[i:], calls: st.calls}
			return inner.session()
		}
	case "UPDATE":
		// UPDATE pg_settings is SET.
		for _, x := range w[1:min(len(w), 4)] {
			if x == "PG_SETTINGS" {
				return true, false
			}
		}
	case "SET":
		// SET LOCAL and SET TRANSACTION last until the transaction ends;
		// SET SESSION CHARACTERISTICS and plain SET last for the session.
		n := next(1)
		return n != "LOCAL" && n != "TRANSACTION" || st.calls, false
	case "RESET", "PREPARE", "LISTEN", "UNLISTEN", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
		"SAVEPOINT", "RELEASE", "DECLARE", "LOAD":
		return true, false
	case "DISCARD":
		n := next(1)
		return true, n == "ALL"
	case "DEALLOCATE":
		return true, true
	case "CREATE":
		i := 1
		if next(i) == "OR" && next(i+1) == "REPLACE" {
			i += 2
		}
		if n := next(i); n == "GLOBAL" || n == "LOCAL" {
			i++
		}
		if n := next(i); n == "TEMP" || n == "TEMPORARY" {
			return true, false
		}
	}
	return st.calls, false
}

// sessionFuncs are functions whose effect outlasts the statement: a
// session setting, the session's random seed, a lock held until the
// session ends, a dblink connection.
var sessionFuncs = map[string]bool{
	"set_config": true, "setseed": true, "pg_advisory_lock": true, "pg_advisory_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
	"dblink_connect": true, "dblink_connect_u": true,
}

// ident notes what an identifier (name: folded to lower case unless it
// was quoted) does to the session: a session function called, or an
// object of pg_temp, the session's temporary schema, named.
func (s *scanner) ident(st *stmt, name string) {
	switch {
	case sessionFuncs[name]:
		st.calls = st.calls || s.nextNonSpace() == '('
	case name == "pg_temp" || strings.HasPrefix(name, "pg_temp_"):
		st.calls = st.calls || s.nextNonSpace() == '.'
	}
}

// scanner walks a query string statement by statement.
type scanner struct {
	q   string
	pos int
}

// statement returns the next statement, false at the end of the query.
func (s *scanner) statement() (stmt, bool) {
	var st stmt
	if s.pos >= len(s.q) {
		return st, false
	}
	depth := 0
	paren := false // a ')' closed depth 0 right before the next word
	prevInto := false
	for s.pos < len(s.q) {
		c := s.q[s.pos]
		switch {
		case c == ';' && depth == 0:
			s.pos++
			return st, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			s.pos++
		case c == '-' && s.at(1) == '-':
			s.lineComment()
		case c == '/' && s.at(1) == '*':
			s.blockComment()
		case c == '(':
			depth++
			s.pos++
		case c == ')':
			if depth > 0 {
				depth--
			}
			paren = depth == 0
			s.pos++
		case c == '\'':
			s.quoted('\'', false)
			prevInto = false
		case (c == 'E' || c == 'e') && s.at(1) == '\'':
			s.pos++
			s.quoted('\'', true)
			prevInto = false
		case c == '"':
			start := s.pos
			s.quoted('"', false)
			if end := s.pos - 1; end > start && s.q[end] == '"' {
				s.ident(&st, s.q[start+1:end])
			}
			prevInto = false
		case c == '$' && s.dollarQuote():
			prevInto = false
		case isIdentStart(c):
			start := s.pos
			for s.pos < len(s.q) && isIdentPart(s.q[s.pos]) {
				s.pos++
			}
			word := s.q[start:s.pos]
			s.ident(&st, strings.ToLower(word))
			up := strings.ToUpper(word)
			if prevInto && (up == "TEMP" || up == "TEMPORARY") {
				st.calls = true // SELECT ... INTO TEMP t
			}
			prevInto = up == "INTO"
			if st.first == "" {
				st.first = up
			}
			if depth == 0 && len(st.words) < maxWords {
				st.words = append(st.words, up)
				st.afterParen = append(st.afterParen, paren)
			}
			paren = false
		default:
			s.pos++
		}
	}
	return st, true
}

func (s *scanner) at(off int) byte {
	if s.pos+off < len(s.q) {
		return s.q[s.pos+off]
	}
	return 0
}

// nextNonSpace returns the next byte that is neither white space nor in
// a comment.
func (s *scanner) nextNonSpace() byte {
	t := scanner{q: s.q, pos: s.pos}
	for t.pos < len(t.q) {
		switch c := t.q[t.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			t.pos++
		case c == '-' && t.at(1) == '-':
			t.lineComment()
		case c == '/' && t.at(1) == '*':
			t.blockComment()
		default:
			return c
		}
	}
	return 0
}

func (s *scanner) lineComment() {
	for s.pos < len(s.q) && s.q[s.pos] != '\n' {
		s.pos++
	}
}

// blockComment skips a /* */ comment; they nest in PostgreSQL.
func (s *scanner) blockComment() {
	depth := 0
	for s.pos < len(s.q) {
		switch {
		case s.q[s.pos] == '/' && s.at(1) == '*':
			depth++
			s.pos += 2
		case s.q[s.pos] == '*' && s.at(1) == '/':
			depth--
			s.pos += 2
			if depth == 0 {
				return
			}
		default:
			s.pos++
		}
	}
}

// quoted skips a literal or identifier quoted by q, a doubled q standing
// for itself; with backslash, a backslash escapes the next byte (E'...').
func (s *scanner) quoted(q byte, backslash bool) {
	s.pos++
	for s.pos < len(s.q) {
		c := s.q[s.pos]
		switch {
		case backslash && c == '\\':
			s.pos += 2
		case c == q && s.at(1) == q:
			s.pos += 2
		case c == q:
			s.pos++
			return
		default:
			s.pos++
		}
	}
}

// dollarQuote skips a $tag$...$tag$ string at s.pos and reports whether
// there was one ($1 is a placeholder, not a string).
func (s *scanner) dollarQuote() bool {
	end := dollarTagEnd(s.q, s.pos)
	if end < 0 {
		s.pos++
		return false
	}
	tag := s.q[s.pos:end]
	if i := strings.Index(s.q[end:], tag); i >= 0 {
		s.pos = end + i + len(tag)
	} else {
		s.pos = len(s.q)
	}
	return true
}

// dollarTagEnd returns the end of the dollar-quote tag starting at i
// ("$$" or "$name$"), or -1 when q[i:] does not start one.
func dollarTagEnd(q string, i int) int {
	j := i + 1
	if j < len(q) && q[j] == '$' {
		return j + 1
	}
	if j >= len(q) || !isIdentStart(q[j]) {
		return -1
	}
	for j < len(q) && isIdentPart(q[j]) && q[j] != '$' {
		j++
	}
	if j < len(q) && q[j] == '$' {
		return j + 1
	}
	return -1
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}
