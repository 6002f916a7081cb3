package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/tendril-db/tendril/driver"
	"github.com/tendril-db/tendril/topology"
)

// Batch is a list of statements sent together by DB.SendBatch.
type Batch struct {
	stmts []queued
	// args holds every statement's arguments in order: the variadic slice
	// of Queue is not kept, so it need not be allocated.
	args []any
}

type queued struct {
	query string
	nargs int
}

// Queue adds a statement to the batch.
func (b *Batch) Queue(query string, args ...any) {
	b.args = append(b.args, args...)
	b.stmts = append(b.stmts, queued{query, len(args)})
}

// Len returns the number of statements queued.
func (b *Batch) Len() int { return len(b.stmts) }

// SendBatch sends every statement of b, pipelined: the statements are
// grouped by the node that serves them and the groups run in parallel. The
// results are read back in the order the statements were queued. Within a
// group a whole-group failure is retried by the policy like a single
// statement; a statement's own error (a server error) is reported for that
// statement only.
func (db *DB) SendBatch(ctx context.Context, b *Batch) *BatchResults {
	br := &BatchResults{results: make([]batchResult, len(b.stmts))}
	if db.closed.Load() {
		br.err = ErrClosed
		return br
	}
	if t := db.cfg.Policy.TotalTimeout; t > 0 {
		// Grouping waits for the topology when no node is known yet:
		// the batch as a whole is bounded like one statement.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	ctx, bo := db.tel.beginBatch(ctx, len(b.stmts))
	defer db.tel.finishBatch(bo)
	type group struct {
		route driver.Route
		n     int
		idx   []int
		stmts []driver.Stmt
	}
	groups := map[*topology.Node]*group{}
	var order []*topology.Node
	// Two passes, so that the groups' slices are carved out of one
	// allocation each: the first finds each statement's group.
	of := make([]*group, len(b.stmts))
	dargsAll := make([]driver.Value, len(b.args)) // every statement's arguments
	flat, args := dargsAll, b.args
	for i, s := range b.stmts {
		dargs := flat[:s.nargs:s.nargs]
		flat = flat[s.nargs:]
		sargs := args[:s.nargs]
		args = args[s.nargs:]
		if err := normalizeInto(db.converter, dargs, sargs); err != nil {
			br.results[i].err = err
			continue
		}
		route, err := db.connector.Route(s.query, dargs)
		if err != nil {
			br.results[i].err = fmt.Errorf("sqlish: %w", err)
			continue
		}
		if route.Session {
			br.results[i].err = sessionErr(route)
			continue
		}
		if route.Unsure && readIntent(ctx) {
			route.Intent, route.Idempotent = driver.Read, true
		}
		n, err := db.batchNode(ctx, route)
		if err != nil {
			br.results[i].err = err
			continue
		}
		g := groups[n]
		if g == nil {
			g = &group{route: driver.Route{Op: "BATCH", Partition: route.Partition, Intent: route.Intent, Idempotent: true}}
			groups[n] = g
			order = append(order, n)
		}
		g.route.Idempotent = g.route.Idempotent && route.Idempotent
		g.route.Exclusive = g.route.Exclusive || route.Exclusive
		if route.Intent == driver.Write {
			g.route.Intent = driver.Write
		}
		g.n++
		of[i] = g
	}
	placed := 0
	for _, n := range order {
		placed += groups[n].n
	}
	idx, stmts := make([]int, placed), make([]driver.Stmt, placed)
	for _, n := range order {
		g := groups[n]
		g.idx, g.stmts = idx[:0:g.n], stmts[:0:g.n]
		idx, stmts = idx[g.n:], stmts[g.n:]
	}
	flat = dargsAll
	for i, s := range b.stmts {
		dargs := flat[:s.nargs:s.nargs]
		flat = flat[s.nargs:]
		if g := of[i]; g != nil {
			g.idx = append(g.idx, i)
			g.stmts = append(g.stmts, driver.Stmt{Query: s.query, Args: dargs})
		}
	}
	runGroup := func(g *group) {
		err := db.run(ctx, g.route, stmtInfo{group: bo}, nil, func(ctx context.Context, l *lease, _ []driver.Value) error {
			err := runBatch(ctx, l.conn(), g.stmts, br.results, g.idx)
			l.release(err)
			return err
		})
		for k, i := range g.idx {
			switch {
			case err != nil:
				br.results[i] = batchResult{err: err}
			case isRedirect(br.results[i].err):
				// The statement's partition lives elsewhere (the topology
				// moved under the batch): run it on its own, which follows
				// the redirect.
				br.results[i] = db.runOne(ctx, g.stmts[k], bo)
			}
		}
	}
	// Every group but the last runs on a goroutine of its own; the last
	// (for most batches, the only one) runs here.
	var wg sync.WaitGroup
	for k, n := range order {
		g := groups[n]
		if k == len(order)-1 {
			runGroup(g)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runGroup(g)
		}()
	}
	wg.Wait()
	return br
}

// batchNode returns the node a statement of a batch goes to, waiting for
// the topology when no node is known yet. It is nil when no node serves
// the statement's partition now: such statements make a group of their
// own, whose run waits for the tender like any operation.
func (db *DB) batchNode(ctx context.Context, route driver.Route) (*topology.Node, error) {
	s := db.tender.Snapshot()
	if !s.HasHealthy() {
		var err error
		if s, err = db.tender.Wait(ctx); err != nil {
			return nil, fmt.Errorf("sqlish: %s: %w", route.Op, err)
		}
	}
	return s.Pick(route, db.pref, 0), nil
}

func isRedirect(err error) bool {
	if err == nil {
		return false
	}
	var re *driver.RedirectError
	return errors.As(err, &re)
}

// runOne runs one statement of a batch with the policy and collects its
// rows.
func (db *DB) runOne(ctx context.Context, s driver.Stmt, bo *batchObs) batchResult {
	var r batchResult
	route, err := db.connector.Route(s.Query, s.Args)
	if err != nil {
		return batchResult{err: err}
	}
	err = db.run(ctx, route, stmtInfo{group: bo}, s.Args, func(ctx context.Context, l *lease, _ []driver.Value) error {
		rows, err := l.conn().Query(ctx, s.Query, s.Args)
		if err == nil {
			r, err = collect(rows)
		}
		l.release(err)
		return err
	})
	if err != nil {
		return batchResult{err: err}
	}
	return r
}

// runBatch runs stmts on one connection, through the driver's Batcher when
// it has one, and reads every result into memory so the connection can go
// back to its pool at once: statement k's into out[idx[k]].
func runBatch(ctx context.Context, cn driver.Conn, stmts []driver.Stmt, out []batchResult, idx []int) error {
	if b, ok := cn.(driver.Batcher); ok {
		res, err := b.Batch(ctx, stmts)
		if err != nil {
			return err
		}
		if len(res) != len(stmts) {
			return fmt.Errorf("driver returned %d batch results for %d statements", len(res), len(stmts))
		}
		for k := range res {
			r, o := &res[k], &out[idx[k]]
			if r.Err != nil {
				*o = batchResult{err: r.Err}
				continue
			}
			if *o, err = fromDriver(r); err != nil {
				return err
			}
		}
		return nil
	}
	for k, s := range stmts {
		o := &out[idx[k]]
		rows, err := cn.Query(ctx, s.Query, s.Args)
		if err != nil {
			var se *driver.ServerError
			if !errors.As(err, &se) {
				return err
			}
			*o = batchResult{err: err}
			continue
		}
		if *o, err = collect(rows); err != nil {
			return err
		}
	}
	return nil
}

// fromDriver reads a driver's batch result into memory: its error, its
// one row (held by r: not boxed, not copied) or its rows.
func fromDriver(r *driver.BatchResult) (batchResult, error) {
	switch {
	case r.Err != nil:
		return batchResult{err: r.Err}, r.Err
	case r.Rows == nil && r.Result != nil:
		return batchResult{res: r.Result}, nil
	case r.Rows == nil:
		if n := len(r.Row.Columns); n == 0 || len(r.Row.More) != max(n-driver.InlineColumns, 0) {
			return batchResult{}, fmt.Errorf("driver bug: a batch Row with %d columns and %d more values", n, len(r.Row.More))
		}
		return batchResult{cols: r.Row.Columns, n: 1, first: &r.Row, types: r.Row.Types}, nil
	}
	return collect(r.Rows)
}

// collect reads all rows into memory, []byte values copied out of the
// driver's buffers unless the driver owns none of them (OwnedValues).
func collect(rows driver.Rows) (batchResult, error) {
	defer rows.Close()
	r := batchResult{cols: rows.Columns()}
	if ct, ok := rows.(driver.RowsColumnTypes); ok {
		r.types = ct.ColumnTypes()
	}
	w := len(r.cols)
	_, owned := rows.(driver.OwnedValues)
	for {
		var row []driver.Value
		inline := r.n == 0 && w <= len(r.one)
		if inline {
			row = r.one[:w]
		} else {
			if r.n == 1 && r.vals == nil {
				r.vals = append(r.vals, r.one[:w]...) // the first row was inline
			}
			r.vals = slices.Grow(r.vals, w)
			row = r.vals[len(r.vals) : len(r.vals)+w]
		}
		err := rows.Next(row)
		if err == io.EOF {
			return r, nil
		}
		if err != nil {
			return r, err
		}
		if !owned {
			for i, v := range row {
				if b, ok := v.([]byte); ok {
					row[i] = clone(b)
				}
			}
		}
		if !inline {
			r.vals = r.vals[:len(r.vals)+w]
		}
		r.n++
	}
}

// batchResult is one statement's outcome, read into memory. It is its own
// driver.Rows: a batch's rows need no connection.
type batchResult struct {
	cols  []string
	n     int             // rows
	one   [1]driver.Value // the only row, when it is one value
	vals  []driver.Value  // n rows of len(cols) values, when not in one
	first *driver.Row     // the only row, when the driver gave it as a Row
	types []driver.ColumnType
	res   driver.Result // a statement without rows (the driver's count)
	pos   int           // next row to return
	err   error
}

// ColumnTypes implements driver.RowsColumnTypes.
func (r *batchResult) ColumnTypes() []driver.ColumnType { return r.types }

// fill copies row i into dest; a driver Row's []byte is boxed only here
// (QueryRow reads it without).
func (r *batchResult) fill(dest []driver.Value, i int) {
	w := len(r.cols)
	switch {
	case r.first != nil:
		for c := range dest {
			dest[c] = r.first.Value(c)
		}
	case r.vals == nil:
		copy(dest, r.one[:w])
	default:
		copy(dest, r.vals[i*w:(i+1)*w])
	}
}

// OwnedValues implements driver.OwnedValues: collect gave the values
// memory of their own, and each result is read once.
func (*batchResult) OwnedValues() {}

func (r *batchResult) Columns() []string { return r.cols }
func (r *batchResult) Close() error      { r.pos = r.n; return nil }
func (r *batchResult) Next(dest []driver.Value) error {
	if r.pos >= r.n {
		return io.EOF
	}
	r.fill(dest, r.pos)
	r.pos++
	return nil
}

// BatchResults holds the results of SendBatch, read in queue order.
type BatchResults struct {
	results []batchResult
	pos     int
	err     error // of the whole batch
}

func (br *BatchResults) next() (*batchResult, error) {
	if br.err != nil {
		return nil, br.err
	}
	if br.pos >= len(br.results) {
		return nil, fmt.Errorf("sqlish: batch has only %d results", len(br.results))
	}
	r := &br.results[br.pos]
	br.pos++
	return r, r.err
}

// Exec returns the next statement's result.
func (br *BatchResults) Exec() (Result, error) {
	r, err := br.next()
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(r.affected()), nil
}

// affected is the count Exec reports: a lone integer value, else the
// number of rows.
func (r *batchResult) affected() int64 {
	if r.res != nil {
		if n, err := r.res.RowsAffected(); err == nil {
			return n
		}
	}
	n := int64(r.n)
	if r.n == 1 && len(r.cols) == 1 {
		var v [1]driver.Value
		r.fill(v[:], 0)
		if i, ok := v[0].(int64); ok {
			n = i
		}
	}
	return n
}

// Query returns the next statement's rows.
func (br *BatchResults) Query() (*Rows, error) {
	r, err := br.next()
	if err != nil {
		return nil, err
	}
	return newRows(r, nil), nil
}

// QueryRow returns the next statement's row.
func (br *BatchResults) QueryRow() *Row {
	r := &Row{} // stays on the caller's stack when scanned at once
	br.queryRow(r)
	return r
}

func (br *BatchResults) queryRow(row *Row) {
	res, err := br.next()
	if err != nil {
		row.err = err
		return
	}
	rows := rowsPool.Get().(*Rows)
	if res.first != nil {
		rows.first = *res.first
		rows.initFirst(false) // runBatch checked the columns
	} else {
		rows.init(res, nil)
	}
	row.rows, row.pooled = rows, true
}

// Close releases the results. The connections were returned already, so
// it only reports the error of the whole batch, if any.
func (br *BatchResults) Close() error {
	br.pos = len(br.results)
	return br.err
}
