package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tendril-db/tendril/driver"
)

// BeginTx implements driver.Beginner: BEGIN with the isolation level, the
// access mode (READ WRITE is said, so that a transaction meant to write
// fails at once on a standby) and DEFERRABLE. Levels PostgreSQL has not
// (write committed, snapshot, linearizable) are refused.
func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	q := "BEGIN"
	switch opts.Isolation {
	case driver.LevelDefault:
	case driver.LevelReadUncommitted:
		q += " ISOLATION LEVEL READ UNCOMMITTED" // PostgreSQL runs it as read committed
	case driver.LevelReadCommitted:
		q += " ISOLATION LEVEL READ COMMITTED"
	case driver.LevelRepeatableRead:
		q += " ISOLATION LEVEL REPEATABLE READ"
	case driver.LevelSerializable:
		q += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return nil, fmt.Errorf("postgres: transaction isolation %v: %w", opts.Isolation, driver.ErrNotSupported)
	}
	if opts.ReadOnly {
		q += " READ ONLY"
	} else {
		q += " READ WRITE"
	}
	if opts.Deferrable {
		q += " DEFERRABLE"
	}
	if _, err := c.simple(ctx, q); err != nil {
		return nil, err
	}
	return &tx{c: c}, nil
}

// ErrCommitRollback is wrapped by Commit's error when the server answered
// COMMIT with ROLLBACK: a statement of the transaction had failed, and
// nothing of it was kept.
var ErrCommitRollback = errors.New("postgres: COMMIT was answered by ROLLBACK: the transaction had failed and was rolled back")

type tx struct{ c *pgConn }

// Commit implements driver.Tx.
func (t *tx) Commit(ctx context.Context) error {
	tag, err := t.c.simple(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		// A server error too (25P02, in_failed_sql_transaction, as the
		// statements after the failed one got), so the user API knows the
		// connection is in sync and keeps it.
		return fmt.Errorf("%w: %w", ErrCommitRollback, &driver.ServerError{
			Code: "25P02", Severity: "ERROR",
			Msg: "ERROR: the transaction was aborted by an earlier error; COMMIT rolled it back (SQLSTATE 25P02)",
		})
	}
	return nil
}

// Rollback implements driver.Tx.
func (t *tx) Rollback(ctx context.Context) error {
	_, err := t.c.simple(ctx, "ROLLBACK")
	return err
}

// defaultResetTimeout bounds a session reset when socket_timeout is 0.
const defaultResetTimeout = 5 * time.Second

// ResetSession implements driver.SessionResetter. Nothing is sent when the
// session is as the connection began it: no statement changed it and no
// transaction is open (the common case, checked without a round trip).
// Otherwise an open or failed transaction is rolled back and, when the
// session changed, DISCARD ALL restores it (settings back to the
// connection's defaults, application_name included; temporary tables,
// cursors, LISTEN, advisory locks and prepared statements dropped, so the
// statement cache is cleared), in one round trip. A connection that is
// closed or still busy (unread rows) cannot be reset.
func (c *pgConn) ResetSession(ctx context.Context) error {
	switch {
	case c.pg.IsClosed():
		return fmt.Errorf("postgres: %s: connection closed", c.addr)
	case c.pg.IsBusy():
		return fmt.Errorf("postgres: %s: connection busy with a statement's result", c.addr)
	}
	inTx := c.pg.TxStatus() != 'I'
	if !inTx && !c.changed {
		return nil
	}
	// The user API gives no deadline: the reset's own is socket_timeout.
	t := c.c.cfg.SocketTimeout
	if t <= 0 {
		t = defaultResetTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	p := c.pg.StartPipeline(ctx)
	if inTx {
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		p.SendPipelineSync()
	}
	if c.changed {
		// A statement of its own, after the Sync that ended the
		// transaction: DISCARD ALL cannot run in a transaction block.
		p.SendQueryParams("DISCARD ALL", nil, nil, nil, nil)
		p.SendPipelineSync()
	}
	err := drain(p)
	if err != nil {
		return fmt.Errorf("postgres: %s: resetting the session: %w", c.addr, c.fail(ctx, err))
	}
	if c.changed {
		c.cache.clear()
		c.changed = false
	}
	return nil
}

// drain flushes a pipeline, reads every result and closes it, returning
// the first error.
func drain(p *pgconn.Pipeline) error {
	first := p.Flush()
	for first == nil {
		res, err := p.GetResults()
		if err != nil {
			first = err
			break
		}
		if res == nil {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil {
				first = err
			}
		}
	}
	if err := p.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
