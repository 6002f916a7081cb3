package sqlish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

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

// Grow makes room for n more statements with nargs arguments in all, for
// a caller that knows the batch's size: Queue then does not reallocate.
func (b *Batch) Grow(n, nargs int) {
	b.stmts = slices.Grow(b.stmts, n)
	b.args = slices.Grow(b.args, nargs)
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
	br := &BatchResults{slots: getSlots(len(b.stmts))}
	br.results = *br.slots
	if db.closed.Load() {
		br.err = ErrClosed
		return br
	}
	ctx, bo := db.tel.beginBatch(ctx, len(b.stmts))
	// The batch as a whole is bounded like one statement, by
	// total_timeout, and its context made as late as a statement's (see
	// boundAtOnce): a batch whose groups are sent and answered at once
	// then runs on the caller's context, and a caller whose context cannot
	// be cancelled reads its replies itself (see conn.Send).
	p := db.cfg.Policy
	var deadline time.Time
	if p.TotalTimeout > 0 {
		deadline = time.Now().Add(p.TotalTimeout)
	}
	bounded := deadline.IsZero()
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	bound := func() context.Context {
		if !bounded {
			bounded = true
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		return ctx
	}
	if db.boundAtOnce(db.requestTimeout) {
		bound()
	}
	defer db.tel.finishBatch(bo)
	type group = batchGroup
	groups := map[*topology.Node]*group{}
	var order []*topology.Node
	sc := scratchPool.Get().(*batchScratch)
	defer sc.put()
	// Two passes, so that the groups' slices are carved out of one
	// slice each: the first finds each statement's group.
	of := sc.grow(len(b.stmts), len(b.args))
	dargsAll := sc.dargs // every statement's arguments
	flat, args := dargsAll, b.args
	for i, s := range b.stmts {
		sc.ends[i] = len(sc.prep) // no encoding, unless RoutePrepare adds one
		dargs := flat[:s.nargs:s.nargs]
		flat = flat[s.nargs:]
		sargs := args[:s.nargs]
		args = args[s.nargs:]
		if err := normalizeInto(db.converter, dargs, sargs); err != nil {
			br.results[i].err = err
			continue
		}
		var route driver.Route
		var err error
		if db.preparer != nil {
			route, sc.prep, err = db.preparer.RoutePrepare(s.query, dargs, sc.prep)
			sc.ends[i] = len(sc.prep)
		} else {
			route, err = db.connector.Route(s.query, dargs)
		}
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
		n, err := db.batchNode(route, bound)
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
	idx, stmts := sc.idx[:placed], sc.stmts[:placed]
	br.drv = getResults(placed)
	res := *br.drv
	for _, n := range order {
		g := groups[n]
		g.idx, g.stmts, g.res = idx[:0:g.n], stmts[:0:g.n], res[:g.n:g.n]
		idx, stmts, res = idx[g.n:], stmts[g.n:], res[g.n:]
	}
	flat = dargsAll
	start := 0 // of statement i's encoding in sc.prep
	for i, s := range b.stmts {
		dargs := flat[:s.nargs:s.nargs]
		flat = flat[s.nargs:]
		if g := of[i]; g != nil {
			g.idx = append(g.idx, i)
			st := driver.Stmt{Query: s.query, Args: dargs}
			if end := sc.ends[i]; end > start {
				st.Prepared = sc.prep[start:end:end]
			}
			g.stmts = append(g.stmts, st)
		}
		start = sc.ends[i]
	}
	// On a multiplexed backend whose connections can send a batch without
	// waiting for its outcome (driver.BatchSender), every group's first
	// attempt is sent from here, one node after the other, before any is
	// waited for: the groups still run in parallel on the servers, with no
	// goroutine per group. Retries, and groups that cannot be sent so (no
	// healthy node or connection at hand, a statement that needs a
	// connection to itself), run as statements do.
	if db.multiplexed && (db.requestTimeout || db.cfg.Policy.SocketTimeout <= 0) && !db.noBatchSend.Load() {
		for _, n := range order {
			db.sendGroup(ctx, n, groups[n], bo)
		}
	}
	runGroup := func(ctx context.Context, g *group) {
		fn := func(ctx context.Context, l *lease, _ []driver.Value) error {
			var err error
			if g.sent { // the first attempt: sent by sendGroup, waited for below
				g.sent = false
				if err = g.sendErr; err == nil {
					err = readBatch(g.res, br.results, g.idx)
				}
			} else {
				err = runBatch(ctx, l.conn(), g.stmts, g.res, br.results, g.idx)
			}
			l.release(err)
			return err
		}
		var err error
		if l := g.lease; l != nil {
			g.lease = nil
			gctx := g.ctx
			if g.sendErr != nil && !deadline.IsZero() {
				// Retries follow: bounded by what is left of the batch's
				// total_timeout.
				var cancel context.CancelFunc
				gctx, cancel = context.WithDeadline(gctx, deadline)
				defer cancel()
			}
			err = db.runAttempts(gctx, g.route, nil, fn, &g.ob, l)
			db.tel.finish(g.ctx, &g.ob, g.route, err)
		} else {
			err = db.run(ctx, g.route, stmtInfo{group: bo}, nil, fn)
		}
		for k, i := range g.idx {
			switch {
			case err != nil:
				br.results[i] = slot{err: err}
			case isRedirect(br.results[i].errOf()):
				// The statement's partition lives elsewhere (the topology
				// moved under the batch): run it on its own, which follows
				// the redirect.
				br.results[i] = db.runOne(ctx, g.stmts[k], bo)
			}
		}
	}
	// Every group not sent runs on a goroutine of its own, but the last
	// when no group was sent (for most batches on other backends, the only
	// one): that one runs here.
	sent, unsent := false, false
	for _, n := range order {
		sent = sent || groups[n].lease != nil
		unsent = unsent || groups[n].lease == nil
	}
	if unsent {
		bound() // they may wait for a connection
	}
	var wg sync.WaitGroup
	for k, n := range order {
		g := groups[n]
		switch {
		case g.lease != nil:
		case !sent && k == len(order)-1:
			runGroup(ctx, g)
		default:
			wg.Add(1)
			go func(ctx context.Context) {
				defer wg.Done()
				runGroup(ctx, g)
			}(ctx)
		}
	}
	// Then the groups sent are waited for here, all of them before any
	// retry: a caller whose context cannot be cancelled reads each one's
	// replies itself (conn.Send), and until it does they are read only if
	// another request is queued on that connection.
	for _, n := range order {
		if g := groups[n]; g.pending != nil {
			g.sendErr, g.pending = g.pending.Wait(g.ctx), nil
		}
	}
	for _, n := range order {
		if g := groups[n]; g.lease != nil {
			runGroup(ctx, g)
		}
	}
	wg.Wait()
	return br
}

// sendGroup sends the first attempt of g's statements to n, without
// waiting for the outcome, when n is healthy, a connection of its pool is
// at hand and the driver can (driver.BatchSender); g.lease is then set,
// and runGroup waits for the outcome on it. Otherwise it does nothing.
func (db *DB) sendGroup(ctx context.Context, n *topology.Node, g *batchGroup, bo *batchObs) {
	if n == nil || g.route.Exclusive || !n.Healthy() || db.closed.Load() {
		return
	}
	l := db.tryAcquire(ctx, n)
	if l == nil {
		return
	}
	l.share()
	bs, ok := l.conn().(driver.BatchSender)
	if !ok {
		db.noBatchSend.Store(true)
		l.release(nil)
		db.recycle(l)
		return
	}
	g.ob = observation{group: bo}
	g.ctx = db.tel.begin(ctx, &g.ob, g.route, "", 0)
	g.lease, g.sent = l, true
	// g.res is zero: getResults hands out results cleared by Close.
	g.pending, g.sendErr = bs.SendBatch(g.ctx, g.stmts, g.res)
}

// batchGroup is the statements of a batch that go to one node.
type batchGroup struct {
	route driver.Route
	n     int
	idx   []int
	stmts []driver.Stmt
	res   []driver.BatchResult // the driver's results, for stmts

	// Set by sendGroup when it sent the group's first attempt: the
	// attempt's lease, its outcome to wait for (or the error of the
	// send), and the group's observation and context.
	lease   *lease
	sent    bool
	pending driver.PendingBatch
	sendErr error
	ob      observation
	ctx     context.Context
}

// batchScratch holds SendBatch's working slices, reused from batch to
// batch: nothing refers to them once SendBatch returns (the results hold
// none of the arguments).
type batchScratch struct {
	of    []*batchGroup
	dargs []driver.Value
	idx   []int
	stmts []driver.Stmt
	// prep holds the statements' encodings (driver.PrepareRouter), each
	// ending at ends[i].
	prep []byte
	ends []int
}

var scratchPool = sync.Pool{New: func() any { return new(batchScratch) }}

// maxScratch bounds the statements a batchScratch keeps room for, and
// maxScratchBytes their encodings.
const (
	maxScratch      = 1 << 12
	maxScratchBytes = 1 << 20
)

// grow makes room for n statements and nargs arguments; it returns of,
// cleared.
func (sc *batchScratch) grow(n, nargs int) []*batchGroup {
	if cap(sc.of) < n {
		sc.of, sc.idx, sc.stmts, sc.ends = make([]*batchGroup, n), make([]int, n), make([]driver.Stmt, n), make([]int, n)
	}
	if cap(sc.dargs) < nargs {
		sc.dargs = make([]driver.Value, nargs)
	}
	sc.of, sc.idx, sc.stmts, sc.dargs, sc.ends = sc.of[:n], sc.idx[:n], sc.stmts[:n], sc.dargs[:nargs], sc.ends[:n]
	sc.prep = sc.prep[:0]
	return sc.of
}

// put clears what refers to the caller's values and the groups, and pools
// sc unless it grew too big to keep.
func (sc *batchScratch) put() {
	if cap(sc.of) > maxScratch || cap(sc.dargs) > maxScratch || cap(sc.prep) > maxScratchBytes {
		return
	}
	clear(sc.of)
	clear(sc.dargs)
	clear(sc.stmts)
	scratchPool.Put(sc)
}

// batchNode returns the node a statement of a batch goes to, waiting for
// the topology when no node is known yet (on the context bound returns).
// It is nil when no node serves the statement's partition now: such
// statements make a group of their own, whose run waits for the tender
// like any operation.
func (db *DB) batchNode(route driver.Route, bound func() context.Context) (*topology.Node, error) {
	s := db.tender.Snapshot()
	if !s.HasHealthy() {
		var err error
		if s, err = db.tender.Wait(bound()); err != nil {
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
func (db *DB) runOne(ctx context.Context, s driver.Stmt, bo *batchObs) slot {
	route, err := db.connector.Route(s.Query, s.Args)
	if err != nil {
		return slot{err: err}
	}
	r := new(batchResult)
	err = db.run(ctx, route, stmtInfo{group: bo}, s.Args, func(ctx context.Context, l *lease, _ []driver.Value) error {
		rows, err := l.conn().Query(ctx, s.Query, s.Args)
		if err == nil {
			*r, err = collect(rows)
		}
		l.release(err)
		return err
	})
	if err != nil {
		return slot{err: err}
	}
	return slot{r: r}
}

// runBatch runs stmts on one connection, through the driver's Batcher when
// it has one (its results in res), and reads every result into memory so
// the connection can go back to its pool at once: statement k's into
// out[idx[k]]. A driver's one row, count or error is kept as the driver
// gave it, read when the caller gets to it (see slot); rows are collected
// here.
func runBatch(ctx context.Context, cn driver.Conn, stmts []driver.Stmt, res []driver.BatchResult, out []slot, idx []int) error {
	if b, ok := cn.(driver.Batcher); ok {
		clear(res) // an attempt before this one may have filled some
		if err := b.Batch(ctx, stmts, res); err != nil {
			return err
		}
		return readBatch(res, out, idx)
	}
	for k, s := range stmts {
		o := &out[idx[k]]
		rows, err := cn.Query(ctx, s.Query, s.Args)
		if err != nil {
			var se *driver.ServerError
			if !errors.As(err, &se) {
				return err
			}
			*o = slot{err: err}
			continue
		}
		c, err := collect(rows)
		if err != nil {
			return err
		}
		*o = slot{r: &c}
	}
	return nil
}

// readBatch reads the outcome a driver's Batcher (or BatchSender) left in
// res: statement k's into out[idx[k]].
func readBatch(res []driver.BatchResult, out []slot, idx []int) error {
	for k := range res {
		r, o := &res[k], &out[idx[k]]
		switch {
		case r.Err != nil:
			*o = slot{err: r.Err}
		case r.Rows != nil:
			c, err := collect(r.Rows)
			if err != nil {
				return err
			}
			*o = slot{r: &c}
		default:
			if err := checkRow(r); err != nil {
				return err
			}
			*o = slot{d: r}
		}
	}
	return nil
}

// slot is one statement's outcome as SendBatch keeps it until the caller
// reads it: an error, rows read into memory, or a driver's result without
// Rows (one row, a count), converted only when read, so that the common
// one-row result costs neither a copy nor memory of its own.
type slot struct {
	err error
	r   *batchResult
	d   *driver.BatchResult
}

func (s *slot) errOf() error {
	if s.r != nil {
		return s.r.err
	}
	return s.err
}

// checkRow refuses a driver's batch Row whose values do not match its
// columns.
func checkRow(r *driver.BatchResult) error {
	if r.Result != nil {
		return nil
	}
	if n := len(r.Row.Columns); n == 0 || len(r.Row.More) != max(n-driver.InlineColumns, 0) {
		return fmt.Errorf("driver bug: a batch Row with %d columns and %d more values", n, len(r.Row.More))
	}
	return nil
}

// readResult reads any driver result into memory: its error, its count,
// its one row (held by r) or its rows.
func readResult(r *driver.BatchResult) (batchResult, error) {
	switch {
	case r.Err != nil:
		return batchResult{err: r.Err}, r.Err
	case r.Rows != nil:
		return collect(r.Rows)
	}
	if err := checkRow(r); err != nil {
		return batchResult{}, err
	}
	return fromDriver(r), nil
}

// fromDriver is the batchResult of a driver's result without Rows (see
// slot): its count, or its one row (held by r: not boxed, not copied).
func fromDriver(r *driver.BatchResult) batchResult {
	if r.Result != nil {
		return batchResult{res: r.Result}
	}
	return batchResult{cols: r.Row.Columns, n: 1, first: &r.Row, types: r.Row.Types}
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
	results []slot                // never indexed once Close has pooled it again (pos is its length)
	slots   *[]slot               // results, pooled again by Close
	drv     *[]driver.BatchResult // the drivers' results, pooled again by Close
	cur     batchResult           // the result being read, when its slot holds a driver's
	pos     int
	err     error // of the whole batch
}

// resultsPool recycles the drivers' result slices of batches that were
// closed: nothing returned to the caller refers to them (QueryRow copies
// the row, Query copies it too).
var resultsPool = sync.Pool{New: func() any { return new([]driver.BatchResult) }}

// slotsPool recycles the slots of batches that were closed (see
// BatchResults.results).
var slotsPool = sync.Pool{New: func() any { return new([]slot) }}

func getSlots(n int) *[]slot {
	p := slotsPool.Get().(*[]slot)
	if cap(*p) < n {
		*p = make([]slot, n)
	}
	*p = (*p)[:n]
	return p
}

func getResults(n int) *[]driver.BatchResult {
	p := resultsPool.Get().(*[]driver.BatchResult)
	if cap(*p) < n {
		*p = make([]driver.BatchResult, n)
	}
	*p = (*p)[:n]
	return p
}

func (br *BatchResults) next() (*batchResult, error) {
	if br.err != nil {
		return nil, br.err
	}
	if br.pos >= len(br.results) {
		return nil, fmt.Errorf("sqlish: batch has only %d results", len(br.results))
	}
	sl := &br.results[br.pos]
	br.pos++
	switch {
	case sl.r != nil:
		return sl.r, sl.r.err
	case sl.d != nil:
		// Valid until the next call: Query copies it.
		br.cur = fromDriver(sl.d)
		return &br.cur, nil
	case sl.err != nil:
		return nil, sl.err
	}
	return &batchResult{}, nil // a statement the driver answered with nothing
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
	if r == &br.cur { // the Rows outlive the next call, and Close
		c := &batchResult{cols: r.cols, n: r.n, types: r.types, res: r.res}
		if r.first != nil {
			row := *r.first
			c.first = &row
		}
		r = c
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
// it only reports the error of the whole batch, if any. The results not
// read are dropped.
func (br *BatchResults) Close() error {
	br.pos = len(br.results)
	if br.slots != nil {
		clear(br.results) // they may point into *br.drv, and hold errors and rows
		if cap(br.results) <= maxScratch {
			slotsPool.Put(br.slots)
		}
		br.slots = nil
	}
	if br.drv != nil {
		if cap(*br.drv) <= maxScratch {
			clear(*br.drv)
			resultsPool.Put(br.drv)
		}
		br.drv = nil
	}
	return br.err
}
