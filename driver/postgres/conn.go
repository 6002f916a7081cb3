package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tendril-db/tendril/driver"
)

// pgConn is one connection to one node. It runs one statement at a time:
// its user holds it alone (no CapMultiplex).
type pgConn struct {
	pg   *pgconn.PgConn
	c    *connector
	addr string
	m    *pgtype.Map // per connection: a Map caches plans and is not safe for concurrent use
	enc  encoder

	cache stmtCache
	// changed is set when a statement changed the session (SET, LISTEN,
	// a temporary table...): ResetSession then discards it all.
	changed bool
	// standby records what the node was when the connection was made
	// (in_hot_standby, PostgreSQL 14+); known is false for older servers.
	standby, known bool
	// role is what the last probe on this connection said.
	role driver.Role
	// armed is set while a statement's socket_timeout deadline is on the
	// socket (see arm).
	armed bool
}

// arm bounds the statement about to run by socket_timeout with a deadline
// on the socket (driver.CapRequestTimeout): free, where a context per
// statement costs allocations and a timer. A statement that outlives it
// fails the read, and pgconn closes the connection. disarm lifts it once
// the statement's result is read.
func (c *pgConn) arm() {
	if t := c.c.cfg.SocketTimeout; t > 0 {
		c.pg.Conn().SetDeadline(time.Now().Add(t))
		c.armed = true
	}
}

func (c *pgConn) disarm() {
	if c.armed {
		c.armed = false
		c.pg.Conn().SetDeadline(time.Time{})
	}
}

func newConn(c *connector, pg *pgconn.PgConn, addr string) *pgConn {
	pc := &pgConn{pg: pg, c: c, addr: addr, m: pgtype.NewMap()}
	pc.cache.size = c.cacheSize
	hs := pg.ParameterStatus("in_hot_standby")
	pc.known, pc.standby = hs != "", hs == "on"
	return pc
}

// track records what query does to the session before it runs: a
// statement that fails may still have changed it (a SET before the
// failing statement of a multi-statement query). It refuses a COPY
// through the client (see errCopy), which Route refuses already.
func (c *pgConn) track(query string) error {
	a := c.c.analyze(query)
	if a.copy {
		return errCopy
	}
	if a.session || a.dirty {
		c.changed = true
	}
	if a.reset {
		c.cache.clear()
	}
	return nil
}

// Exec implements driver.Conn. Without arguments the statement goes by
// the simple query protocol, in one round trip, and may hold several
// statements separated by semicolons; the Result is the last one's. With
// arguments it is prepared once per connection (see statement_cache_size)
// and executed by name with binary parameters.
func (c *pgConn) Exec(ctx context.Context, query string, args []driver.Value) (driver.Result, error) {
	if err := c.track(query); err != nil {
		return nil, err
	}
	c.arm()
	defer c.disarm()
	if len(args) == 0 {
		tag, err := c.simple(ctx, query)
		if err != nil {
			return nil, err
		}
		return driver.RowsAffected(tag.RowsAffected()), nil
	}
	var tag pgconn.CommandTag
	err := c.run(ctx, query, args, func(e *entry, rr *pgconn.ResultReader) error {
		var err error
		tag, err = rr.Close()
		return err
	})
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

// simple runs query by the simple protocol, its rows discarded, and
// returns the last statement's command tag.
func (c *pgConn) simple(ctx context.Context, query string) (pgconn.CommandTag, error) {
	mrr := c.pg.Exec(ctx, query)
	var tag pgconn.CommandTag
	for mrr.NextResult() {
		tag, _ = mrr.ResultReader().Close()
	}
	if err := mrr.Close(); err != nil {
		return tag, c.fail(ctx, err)
	}
	return tag, nil
}

// run prepares query (or takes it from the cache), executes it with args
// and hands its result to read, which must close it. A cached statement
// whose plan no longer fits its result type (0A000, after an ALTER TABLE)
// or that the server no longer has (26000) is prepared again and run once
// more when it ran alone (outside a transaction nothing of it remains);
// in a transaction the error stands, the transaction being aborted.
func (c *pgConn) run(ctx context.Context, query string, args []driver.Value, read func(*entry, *pgconn.ResultReader) error) error {
	for attempt := 0; ; attempt++ {
		e, err := c.prepare(ctx, query)
		if err != nil {
			return err
		}
		if err := c.enc.encode(c.m, e.sd.ParamOIDs, args); err != nil {
			return err
		}
		rr := c.pg.ExecStatement(ctx, e.run, c.enc.values, c.enc.formats, e.formats)
		err = read(e, rr)
		if err == nil {
			return nil
		}
		if stale(err) && e.elem != nil {
			c.invalidate(e)
			if attempt == 0 && c.pg.TxStatus() == 'I' {
				continue
			}
		}
		return c.fail(ctx, err)
	}
}

// stale reports whether err says a cached statement must be prepared
// again: its result type changed, or the server dropped it. 0A000
// (feature_not_supported) says much else; the routine that raised it
// tells, whatever the language of the server's messages (the English
// message is the fallback for a server or proxy that sends no routine).
func stale(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	if pe.Code == "0A000" {
		return pe.Routine == "RevalidateCachedQuery" || strings.Contains(pe.Message, "cached plan must not change result type")
	}
	return pe.Code == "26000"
}

// Query implements driver.Conn. The statement is prepared once per
// connection and its rows come in binary where the driver decodes the
// type (see the package documentation for the Go types). The first row is
// read before Query returns, so a statement's error is Query's. The rows
// stream from the connection as Next is called; the context bounds the
// statement until Query returns, and its deadline then bounds the rest.
func (c *pgConn) Query(ctx context.Context, query string, args []driver.Value) (driver.Rows, error) {
	if err := c.track(query); err != nil {
		return nil, err
	}
	// The statement and its rows are bounded by socket_timeout (a deadline
	// on the socket, lifted when the rows are done).
	c.arm()
	sctx, detach := ctx, func() bool { return false }
	r := &rows{c: c, ctx: ctx, stop: c.disarm}
	if ctx.Done() != nil {
		// The caller may cancel ctx as soon as Query returns (a statement's
		// attempt context): the rows must not be cut by that, only by the
		// deadline, or by Close.
		sctx = context.WithoutCancel(ctx)
		var stop context.CancelFunc = func() {}
		if dl, ok := ctx.Deadline(); ok {
			sctx, stop = context.WithDeadline(sctx, dl)
		}
		var cancel context.CancelCauseFunc
		sctx, cancel = context.WithCancelCause(sctx)
		detach = context.AfterFunc(ctx, func() {
			if ctx.Err() != context.DeadlineExceeded { // sctx's own deadline says that one
				cancel(context.Cause(ctx))
			}
		})
		r.ctx, r.stop = sctx, func() { cancel(nil); stop(); c.disarm() }
	}
	err := c.run(sctx, query, args, func(e *entry, rr *pgconn.ResultReader) error {
		fe, err := c.fit(e, rr.FieldDescriptions())
		if err != nil {
			rr.Close()
			return err
		}
		r.e, r.rr, r.done = fe, rr, false
		if rr.NextRow() {
			r.pending = true
			return nil
		}
		_, err = rr.Close()
		r.done = true
		return err
	})
	detach()
	if err != nil {
		r.stop()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, err
	}
	return r, nil
}

// QueryRow implements driver.RowQueryer: the first row is decoded into
// row, the rest discarded.
func (c *pgConn) QueryRow(ctx context.Context, query string, args []driver.Value, row *driver.Row) error {
	if err := c.track(query); err != nil {
		return err
	}
	c.arm()
	defer c.disarm()
	found := false
	err := c.run(ctx, query, args, func(e *entry, rr *pgconn.ResultReader) error {
		found = rr.NextRow()
		var derr error
		if found {
			var fe *entry
			if fe, derr = c.fit(e, rr.FieldDescriptions()); derr == nil {
				derr = c.fillRow(fe, rr.Values(), row)
			}
		}
		_, err := rr.Close()
		if err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return io.EOF
	}
	return nil
}

// fillRow decodes one row into row.
func (c *pgConn) fillRow(e *entry, vals [][]byte, row *driver.Row) error {
	row.Columns, row.Types = e.names, e.types
	row.Values, row.Bytes = [driver.InlineColumns]driver.Value{}, [driver.InlineColumns][]byte{}
	row.More = nil
	if n := len(e.cols) - driver.InlineColumns; n > 0 {
		row.More = make([]driver.Value, n)
	}
	for i, col := range e.cols {
		v, err := decode(c.m, col, vals[i])
		if err != nil {
			return c.decodeError(e, i, err)
		}
		switch {
		case i >= driver.InlineColumns:
			row.More[i-driver.InlineColumns] = v
		default:
			if b, ok := v.([]byte); ok {
				row.Bytes[i] = b
			} else {
				row.Values[i] = v
			}
		}
	}
	return nil
}

func (c *pgConn) decodeError(e *entry, i int, err error) error {
	return &decodeError{fmt.Errorf("postgres: decoding column %d (%s, %s): %w", i, e.names[i], e.types[i].DatabaseType, err)}
}

// decodeError is a value the driver could not decode: the connection is
// in sync (the rest of the result was read), fail leaves it as it is.
type decodeError struct{ error }

func (e *decodeError) Unwrap() error { return e.error }

// rows streams a statement's rows from the connection.
type rows struct {
	c       *pgConn
	ctx     context.Context
	stop    func()
	e       *entry
	rr      *pgconn.ResultReader
	pending bool // rr holds a row not yet returned
	done    bool
	err     error
}

func (r *rows) Columns() []string                { return r.e.names }
func (r *rows) ColumnTypes() []driver.ColumnType { return r.e.types }
func (r *rows) OwnedValues()                     {}
func (r *rows) Next(dest []driver.Value) error {
	if r.done {
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	if !r.pending && !r.rr.NextRow() {
		r.finish()
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	r.pending = false
	vals := r.rr.Values()
	for i, col := range r.e.cols {
		v, err := decode(r.c.m, col, vals[i])
		if err != nil {
			r.err = r.c.decodeError(r.e, i, err)
			r.finish()
			return r.err
		}
		dest[i] = v
	}
	return nil
}

// finish reads what is left of the result (the rows are discarded) and
// releases the connection.
func (r *rows) finish() {
	if r.done {
		return
	}
	r.done = true
	_, err := r.rr.Close()
	if err != nil && r.err == nil {
		r.err = r.c.fail(r.ctx, err)
	}
	r.stop()
}

// Close implements driver.Rows: the rows left are read and discarded,
// which is cheaper than cancelling the statement for a few rows.
func (r *rows) Close() error {
	r.finish()
	return r.err
}

// Ping implements driver.Pinger.
func (c *pgConn) Ping(ctx context.Context) error { return c.fail(ctx, c.pg.Ping(ctx)) }

// Info implements driver.Infoer: cmd is run as a query, and its rows come
// back as text, a line per row and a tab between columns; an empty cmd
// asks for version().
func (c *pgConn) Info(ctx context.Context, cmd string) (string, error) {
	if strings.TrimSpace(cmd) == "" {
		cmd = "SELECT version()"
	}
	if err := c.track(cmd); err != nil {
		return "", err
	}
	mrr := c.pg.Exec(ctx, cmd)
	var b strings.Builder
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			for i, v := range rr.Values() {
				if i > 0 {
					b.WriteByte('\t')
				}
				if v == nil {
					b.WriteString("NULL")
				} else {
					b.Write(v)
				}
			}
			b.WriteByte('\n')
		}
		rr.Close()
	}
	if err := mrr.Close(); err != nil {
		return "", c.fail(ctx, err)
	}
	return b.String(), nil
}

// IsValid implements driver.Validator: false once the connection is
// closed, while it is busy (unread rows) or in a transaction, while its
// session holds something to undo, and when the node it reached as a
// primary now says it is a standby (in_hot_standby, reported by the
// server with every change): a pooled connection to a demoted primary is
// never used for a write again.
func (c *pgConn) IsValid() bool {
	if c.pg.IsClosed() || c.pg.IsBusy() || c.pg.TxStatus() != 'I' || c.changed {
		return false
	}
	return !c.known || c.standby || c.pg.ParameterStatus("in_hot_standby") != "on"
}

// Close implements driver.Conn: a Terminate message, then the socket.
func (c *pgConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return c.pg.Close(ctx)
}

// closeTimeout bounds the goodbye to a node that may not be listening.
const closeTimeout = time.Second
