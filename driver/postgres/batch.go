package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tendril-db/tendril/driver"
)

// Batch implements driver.Batcher in pipeline mode: every statement is
// sent in one write and the results are read in order: one round trip.
// Statements not yet prepared on the connection are prepared first, all
// together in one more round trip.
//
// Each statement's outcome is as if it ran alone, in its own implicit
// transaction (unless an explicit transaction is open): one that fails
// reports its error in its BatchResult and the others run and commit all
// the same. Two ways get there:
//
//   - grouped, when no transaction is open and every statement is plain
//     DML (SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, TABLE, or WITH
//     one of them) that changes nothing of the session: the statements
//     share one Sync, so the server answers them in one flush (a Sync per
//     statement makes it flush per statement, and the client read as
//     often: 3.5 times pgx's CPU per batch). They run as one implicit
//     transaction; if any fails, that transaction rolled back and nothing
//     of the batch took effect, so the batch runs again the second way.
//     What shows of the grouping: the statements see one now(), hold
//     their locks until the batch ends, and a failed first try may have
//     used sequence values (nextval is not rolled back). Functions with
//     effects outside the transaction (dblink) do not belong in a batch;
//   - a Sync after each statement, otherwise.
//
// (pgconn's ExecBatch sends one Sync for the whole batch and stops there:
// a failure rolls back the statements before it and skips those after; a
// batch that must be all or nothing belongs in a transaction.)
func (c *pgConn) Batch(ctx context.Context, stmts []driver.Stmt, out []driver.BatchResult) error {
	c.arm()
	defer c.disarm()
	for i, s := range stmts {
		out[i].Err = c.track(s.Query)
	}
	ents := make([]*entry, len(stmts))
	temp, err := c.prepareBatch(ctx, stmts, ents, out)
	if err != nil {
		return err
	}
	if len(temp) == 0 && c.pg.TxStatus() == 'I' && c.groupable(stmts, out) {
		done, err := c.grouped(ctx, stmts, ents, out)
		if err != nil || done {
			return err
		}
		// A statement whose cached plan went stale failed the group and
		// was dropped (see grouped): prepare it again now, or the run
		// statement by statement would meet the same error and could only
		// redo the statement after those queued behind it.
		clear(ents) // the same query may be queued twice
		if temp, err = c.prepareBatch(ctx, stmts, ents, out); err != nil {
			return err
		}
	}
	p := c.pg.StartPipeline(ctx)
	sent := make([]int, 0, len(stmts))
	for i, s := range stmts {
		if out[i].Err != nil {
			continue
		}
		e := ents[i]
		if err := c.enc.encode(c.m, e.sd.ParamOIDs, s.Args); err != nil {
			out[i].Err = err
			continue
		}
		p.SendQueryStatement(e.run, c.enc.values, c.enc.formats, e.formats)
		p.SendPipelineSync()
		sent = append(sent, i)
	}
	for _, name := range temp {
		p.SendDeallocate(name)
	}
	if len(temp) > 0 {
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		p.Close()
		return c.fail(ctx, err)
	}
	redo := -1 // the last statement sent, when its cached plan went stale
	for _, i := range sent {
		res, err := p.GetResults()
		if err == nil {
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				p.Close()
				return c.fail(ctx, errors.New("pipeline: unexpected result for statement "+strconv.Itoa(i)))
			}
			err = c.collect(ents[i], rr, &out[i])
		}
		var pe *pgconn.PgError
		if err != nil && !errors.As(err, &pe) {
			p.Close()
			return c.fail(ctx, err) // the connection failed: the whole batch did
		}
		// The statement's Sync; an error before it is a deferred
		// constraint's, checked at the implicit commit.
		if serr := syncResult(p); serr != nil {
			var spe *pgconn.PgError
			if !errors.As(serr, &spe) {
				p.Close()
				return c.fail(ctx, serr)
			}
			if err == nil {
				err = serr
			}
		}
		if err != nil {
			out[i] = driver.BatchResult{Err: c.fail(ctx, err)}
			if stale(err) && ents[i].elem != nil {
				c.invalidate(ents[i])
				// It did not run. Run again after the statements queued
				// behind it, it would see what they did and they would not
				// see what it does: only the last one is run again (its
				// error stands otherwise, and the batch's next run
				// prepares it again).
				if c.pg.TxStatus() == 'I' && i == sent[len(sent)-1] {
					redo = i
				}
			}
		}
	}
	if err := p.Close(); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return c.fail(ctx, err)
		}
	}
	if i := redo; i >= 0 {
		// Prepared again and run once more, alone: it did not run.
		var r driver.BatchResult
		err := c.run(ctx, stmts[i].Query, stmts[i].Args, func(e *entry, rr *pgconn.ResultReader) error {
			return c.collect(e, rr, &r)
		})
		if err != nil {
			var se *driver.ServerError
			if !errors.As(err, &se) {
				return err
			}
			r = driver.BatchResult{Err: err}
		}
		out[i] = r
	}
	return nil
}

// groupable reports whether the statements to send (those without an
// error yet), two or more, may share one implicit transaction (see Batch).
func (c *pgConn) groupable(stmts []driver.Stmt, out []driver.BatchResult) bool {
	n := 0
	for i, s := range stmts {
		if out[i].Err != nil {
			continue
		}
		if !c.c.analyze(s.Query).plain {
			return false
		}
		n++
	}
	return n > 1
}

// grouped runs the batch's statements under one Sync (see Batch). done is
// false, with out as it came, when a statement failed: the implicit
// transaction rolled back, nothing of the batch took effect, and it is to
// run again statement by statement. err is a failure of the connection.
func (c *pgConn) grouped(ctx context.Context, stmts []driver.Stmt, ents []*entry, out []driver.BatchResult) (done bool, err error) {
	p := c.pg.StartPipeline(ctx)
	sent := make([]int, 0, len(stmts))
	for i, s := range stmts {
		if out[i].Err != nil {
			continue
		}
		if err := c.enc.encode(c.m, ents[i].sd.ParamOIDs, s.Args); err != nil {
			out[i].Err = err // never sent: run again, it fails the same
			continue
		}
		p.SendQueryStatement(ents[i].run, c.enc.values, c.enc.formats, ents[i].formats)
		sent = append(sent, i)
	}
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		p.Close()
		return false, c.fail(ctx, err)
	}
	rolledBack := func(err error) (bool, error) {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			p.Close()
			return false, c.fail(ctx, err)
		}
		// The server skips the rest until the Sync, which rolls back.
		if err := p.Close(); err != nil && !errors.As(err, &pe) {
			return false, c.fail(ctx, err)
		}
		for _, i := range sent {
			out[i] = driver.BatchResult{}
		}
		return false, nil
	}
	for _, i := range sent {
		res, err := p.GetResults()
		if err == nil {
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				p.Close()
				return false, c.fail(ctx, errors.New("pipeline: unexpected result for statement "+strconv.Itoa(i)))
			}
			err = c.collect(ents[i], rr, &out[i])
		}
		if err != nil {
			if stale(err) && ents[i].elem != nil {
				c.invalidate(ents[i]) // Batch prepares it again
			}
			return rolledBack(err)
		}
	}
	// The Sync commits: a deferred constraint fails there.
	if err := syncResult(p); err != nil {
		return rolledBack(err)
	}
	if err := p.Close(); err != nil {
		return rolledBack(err)
	}
	return true, nil
}

// prepareBatch finds the batch's statements in the cache and prepares the
// others, each query once, in one round trip (after closing evicted
// statements). A statement that cannot be prepared (a syntax error) gets
// its error in out. Without a statement cache the statements are prepared
// under temporary names, returned to be closed after the batch.
func (c *pgConn) prepareBatch(ctx context.Context, stmts []driver.Stmt, ents []*entry, out []driver.BatchResult) (temp []string, err error) {
	var todo []int
	first := map[string]int{}
	for i, s := range stmts {
		if out[i].Err != nil {
			continue
		}
		if e := c.cache.get(s.Query); e != nil {
			ents[i] = e
			continue
		}
		if _, ok := first[s.Query]; !ok {
			first[s.Query] = i
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	p := c.pg.StartPipeline(ctx)
	stale := len(c.cache.stale)
	for _, s := range c.cache.stale {
		p.SendDeallocate(s)
	}
	if stale > 0 {
		p.SendPipelineSync()
	}
	names := make([]string, len(todo))
	for k, i := range todo {
		if c.cache.size > 0 {
			names[k] = c.cache.name()
		} else {
			c.cache.seq++
			names[k] = "tendril_t" + strconv.FormatUint(c.cache.seq, 10)
		}
		p.SendPrepare(names[k], stmts[i].Query, nil)
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		p.Close()
		return nil, c.fail(ctx, err)
	}
	fatal := func(err error) ([]string, error) {
		p.Close()
		return nil, c.fail(ctx, err)
	}
	if stale > 0 {
		for range stale {
			if _, err := p.GetResults(); err != nil {
				return fatal(err)
			}
		}
		if err := syncResult(p); err != nil {
			return fatal(err)
		}
		c.cache.stale = c.cache.stale[:0]
	}
	byQuery := map[string]*entry{}
	failed := map[string]error{}
	for k, i := range todo {
		q := stmts[i].Query
		res, err := p.GetResults()
		var pe *pgconn.PgError
		switch {
		case err != nil && !errors.As(err, &pe):
			return fatal(err)
		case err != nil:
			failed[q] = err
		default:
			sd, ok := res.(*pgconn.StatementDescription)
			if !ok {
				return fatal(errors.New("pipeline: unexpected result preparing statement " + strconv.Itoa(i)))
			}
			sd.Name, sd.SQL = names[k], q
			e := c.newEntry(q, sd)
			byQuery[q] = e
			if c.cache.size > 0 {
				c.cache.put(e)
			} else {
				temp = append(temp, names[k])
			}
		}
		if err := syncResult(p); err != nil && !errors.As(err, &pe) {
			return fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil, c.fail(ctx, err)
		}
	}
	for i, s := range stmts {
		if ents[i] != nil || out[i].Err != nil {
			continue
		}
		if err := failed[s.Query]; err != nil {
			out[i].Err = c.fail(ctx, err)
			continue
		}
		ents[i] = byQuery[s.Query]
	}
	return temp, nil
}

// collect reads a statement's result into r, and closes rr: its rows, in
// memory (one row as a driver.Row, which saves the Rows object and the
// user API's copy), or, for a statement without result columns, the count
// of its command tag. Decoded values have memory of their own.
func (c *pgConn) collect(e *entry, rr *pgconn.ResultReader, r *driver.BatchResult) error {
	e, err := c.fit(e, rr.FieldDescriptions())
	if err != nil {
		rr.Close()
		return err
	}
	if len(e.cols) == 0 {
		tag, err := rr.Close()
		if err != nil {
			return err
		}
		r.Result = driver.RowsAffected(tag.RowsAffected())
		return nil
	}
	var first driver.Row
	var m *memRows
	n := 0
	for rr.NextRow() {
		if n == 1 { // a second row: the rows go to memRows
			m = &memRows{e: e}
			for i := range e.cols {
				m.vals = append(m.vals, first.Value(i))
			}
		}
		for i, v := range rr.Values() {
			d, err := decode(c.m, e.cols[i], v)
			if err != nil {
				rr.Close()
				return c.decodeError(e, i, err)
			}
			switch {
			case m != nil:
				m.vals = append(m.vals, d)
			case i < driver.InlineColumns:
				first.Values[i] = d
			default:
				first.More = append(first.More, d)
			}
		}
		n++
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	switch {
	case n == 1:
		first.Columns, first.Types = e.names, e.types
		r.Row = first
	case m == nil:
		r.Rows = &memRows{e: e}
	default:
		m.n = n
		r.Rows = m
	}
	return nil
}

// fit returns e, or, when the server described other columns than e has
// (a statement whose columns vary from run to run, see entry.run, or
// were not known when it was prepared), an entry for them as they came,
// in text or binary. A column that came in binary, bound with another
// column's format, and that the driver decodes only from text is an
// error, and e is dropped from the cache so that the next run describes
// the statement again.
func (c *pgConn) fit(e *entry, fields []pgconn.FieldDescription) (*entry, error) {
	if len(fields) == len(e.cols) && (e.run == e.sd || sameColumns(e.cols, fields)) {
		return e, nil
	}
	f := &entry{query: e.query, sd: e.sd, run: e.run}
	f.cols, f.formats, f.names, f.types = describe(c.m, fields)
	for i, fd := range fields {
		switch {
		case fd.Format == pgtype.TextFormatCode:
			f.cols[i].kind = kText
		case f.cols[i].kind == kText:
			c.invalidate(e)
			return nil, fmt.Errorf("the result columns of %q changed since it was prepared: column %d (%s, type OID %d) came in binary, which the driver does not decode: the statement ran, its rows are lost (its next run is described anew)", e.query, i+1, fd.Name, fd.DataTypeOID)
		}
	}
	return f, nil
}

// sameColumns reports whether the described fields are the columns cols
// decode, in the formats asked for them.
func sameColumns(cols []column, fields []pgconn.FieldDescription) bool {
	for i, fd := range fields {
		if fd.DataTypeOID != cols[i].oid || fd.Format != cols[i].format() {
			return false
		}
	}
	return true
}

// memRows holds a batch statement's rows, read in full.
type memRows struct {
	e    *entry
	vals []driver.Value // n rows of len(e.cols) values
	n    int
	pos  int
}

func (m *memRows) Columns() []string                { return m.e.names }
func (m *memRows) ColumnTypes() []driver.ColumnType { return m.e.types }
func (m *memRows) OwnedValues()                     {}
func (m *memRows) Close() error                     { m.pos = m.n; return nil }
func (m *memRows) Next(dest []driver.Value) error {
	if m.pos >= m.n {
		return io.EOF
	}
	w := len(m.e.cols)
	copy(dest, m.vals[m.pos*w:(m.pos+1)*w])
	m.pos++
	return nil
}

// syncResult reads results up to the next Sync's, returning the first
// error: an error reported at the Sync (a deferred constraint) comes
// before it.
func syncResult(p *pgconn.Pipeline) error {
	var first error
	for {
		res, err := p.GetResults()
		if err != nil {
			if first == nil {
				first = err
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				return first
			}
			continue
		}
		switch res.(type) {
		case *pgconn.PipelineSync:
			return first
		case nil:
			if first == nil {
				first = errors.New("pipeline: no Sync result")
			}
			return first
		}
	}
}
