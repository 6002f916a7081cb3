package postgres

import (
	"container/list"
	"context"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tendril-db/tendril/driver"
)

// entry is a prepared (described) statement: what executing it by name
// needs, and how its rows are decoded.
type entry struct {
	query string
	sd    *pgconn.StatementDescription
	// run, when set, is sd without its fields, what a statement whose
	// result columns may differ from run to run (FETCH, EXECUTE) is
	// executed by: the server then describes them with each result, and
	// fit checks them. The server catches a plannable statement's change
	// of result type (0A000), but not theirs.
	run     *pgconn.StatementDescription
	cols    []column
	formats []int16 // result formats, one per column
	names   []string
	types   []driver.ColumnType
	elem    *list.Element // in the cache's LRU list; nil when not cached
}

// stmtCache is a connection's LRU cache of prepared statements by query
// text. Evicted statements are closed on the server with the next
// prepare, in the same round trip.
type stmtCache struct {
	size  int
	m     map[string]*entry
	lru   list.List // front: most recently used
	stale []string  // names of evicted statements, to close on the server
	seq   uint64
}

func (sc *stmtCache) get(query string) *entry {
	e := sc.m[query]
	if e != nil {
		sc.lru.MoveToFront(e.elem)
	}
	return e
}

// name returns a new statement name; "" (the unnamed statement) when
// there is no cache.
func (sc *stmtCache) name() string {
	if sc.size == 0 {
		return ""
	}
	sc.seq++
	return "tendril_" + strconv.FormatUint(sc.seq, 10)
}

// put caches e, evicting the least recently used statement when full.
func (sc *stmtCache) put(e *entry) {
	if sc.size == 0 || e.sd.Name == "" {
		return
	}
	if sc.m == nil {
		sc.m = map[string]*entry{}
	}
	if old := sc.m[e.query]; old != nil {
		sc.remove(old)
	}
	for sc.lru.Len() >= sc.size {
		sc.remove(sc.lru.Back().Value.(*entry))
	}
	e.elem = sc.lru.PushFront(e)
	sc.m[e.query] = e
}

// remove drops e from the cache; its statement is closed on the server
// with the next prepare.
func (sc *stmtCache) remove(e *entry) {
	if e.elem == nil {
		return
	}
	sc.lru.Remove(e.elem)
	e.elem = nil
	delete(sc.m, e.query)
	sc.stale = append(sc.stale, e.sd.Name)
}

// clear forgets every statement: the server dropped them (DISCARD ALL,
// DEALLOCATE ALL).
func (sc *stmtCache) clear() {
	clear(sc.m)
	sc.lru.Init()
	sc.stale = sc.stale[:0]
}

// prepare returns the described statement for query: from the cache, or
// prepared now (after closing evicted statements, in the same round trip).
func (c *pgConn) prepare(ctx context.Context, query string) (*entry, error) {
	if e := c.cache.get(query); e != nil {
		return e, nil
	}
	name := c.cache.name()
	if c.cache.size > 0 && c.cache.lru.Len() >= c.cache.size {
		// Evicted now, closed in the prepare's round trip: the server
		// never holds more than statement_cache_size statements.
		c.cache.remove(c.cache.lru.Back().Value.(*entry))
	}
	var sd *pgconn.StatementDescription
	var err error
	if len(c.cache.stale) == 0 {
		sd, err = c.pg.Prepare(ctx, name, query, nil)
	} else {
		sd, err = c.prepareClosing(ctx, name, query)
	}
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	e := c.newEntry(query, sd)
	c.cache.put(e)
	return e, nil
}

// prepareClosing closes the evicted statements and prepares query, in one
// pipeline. Closing a statement that does not exist is no error, so the
// prepare runs whatever became of them.
func (c *pgConn) prepareClosing(ctx context.Context, name, query string) (*pgconn.StatementDescription, error) {
	p := c.pg.StartPipeline(ctx)
	stale := c.cache.stale
	for _, s := range stale {
		p.SendDeallocate(s)
	}
	p.SendPrepare(name, query, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, err
	}
	var sd *pgconn.StatementDescription
	var first error
	for {
		res, err := p.GetResults()
		if err != nil {
			if first == nil {
				first = err
			}
			if _, ok := err.(*pgconn.PgError); !ok {
				break
			}
			continue
		}
		if res == nil {
			break
		}
		switch r := res.(type) {
		case *pgconn.StatementDescription:
			sd = r
		case *pgconn.PipelineSync:
			c.cache.stale = c.cache.stale[:0]
		}
	}
	if err := p.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return nil, first
	}
	sd.Name, sd.SQL = name, query
	return sd, nil
}

func (c *pgConn) newEntry(query string, sd *pgconn.StatementDescription) *entry {
	e := &entry{query: query, sd: sd, run: sd}
	e.cols, e.formats, e.names, e.types = describe(c.m, sd.Fields)
	if c.c.analyze(query).varies {
		run := *sd
		run.Fields = nil
		e.run = &run
	}
	return e
}

// invalidate drops query's statement: the server says its plan no longer
// fits (0A000) or it does not exist (26000).
func (c *pgConn) invalidate(e *entry) {
	c.cache.remove(e)
}
