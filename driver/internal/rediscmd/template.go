package rediscmd

import "github.com/tendril-db/tendril/driver"

// Template is a statement's text parsed once, for statements run again and
// again with other arguments: its tokens, where its placeholders are, and
// its command's Spec. Only statements whose command (and subcommand, for a
// container command) are tokens of the text have one.
type Template struct {
	query string
	buf   []byte // the tokens, one after the other
	items []int  // per item of the command line: the end of a token in buf, or hole
	holes int
	name  string // the command's, as Lookup returns it
	spec  *Spec
}

const hole = -1

// Compile parses query's text. It returns nil when the statement has no
// Template (a parse error, a placeholder where the command or a container's
// subcommand must be): Parse then says why.
func Compile(query string) *Template {
	t := &Template{query: query}
	i := 0
	for {
		for i < len(query) && isSpace(query[i]) {
			i++
		}
		if i == len(query) {
			break
		}
		if query[i] == '?' && (i+1 == len(query) || isSpace(query[i+1])) {
			t.items = append(t.items, hole)
			t.holes++
			i++
			continue
		}
		var n int
		var err error
		if t.buf, n, err = appendToken(t.buf, query[i:]); err != nil {
			return nil
		}
		t.items = append(t.items, len(t.buf))
		i += n
	}
	// The command, and a container's subcommand, must be tokens: then no
	// argument can be taken for them, however many there are.
	if len(t.items) == 0 || t.items[0] == hole {
		return nil
	}
	verb := t.buf[:t.items[0]]
	var argv [2][]byte
	argv[0] = verb
	n := 1
	if isContainer(verb) {
		if len(t.items) < 2 || t.items[1] == hole {
			return nil
		}
		argv[1] = t.buf[t.items[0]:t.items[1]]
		n = 2
	}
	t.name, t.spec = Lookup(argv[:n])
	return t
}

// Is reports whether t is query's Template.
func (t *Template) Is(query string) bool { return t.query == query }

// ParseTemplate is ParseRef(query, args, 1) for t, query's Template: the
// tokens are copied, not parsed again, and no string or []byte argument is
// copied (Argv refers to the arguments' memory, read only). It returns the
// command's name and Spec, as Lookup(c.Argv) would.
func (c *Cmd) ParseTemplate(t *Template, args []driver.Value) (string, *Spec, error) {
	c.reset()
	if len(args) < t.holes {
		return "", nil, tooFewArgs(len(args))
	}
	next, start := 0, 0
	for _, end := range t.items {
		if end == hole {
			if err := c.appendArg(args[next], 1); err != nil {
				return "", nil, argError(next+1, err)
			}
			next++
			continue
		}
		c.buf = append(c.buf, t.buf[start:end]...)
		c.ends = append(c.ends, len(c.buf))
		start = end
	}
	for ; next < len(args); next++ {
		if err := c.appendArg(args[next], 1); err != nil {
			return "", nil, argError(next+1, err)
		}
	}
	c.slice()
	return t.name, t.spec, nil
}
