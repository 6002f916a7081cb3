package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tendril-db/tendril/driver"
)

// serverError converts the server's error to the user API's.
func serverError(pe *pgconn.PgError) *driver.ServerError {
	return &driver.ServerError{
		Code: pe.Code, Msg: pe.Error(), Severity: pe.Severity,
		Detail: pe.Detail, Hint: pe.Hint, Position: int(pe.Position), Where: pe.Where,
		Schema: pe.SchemaName, Table: pe.TableName, Column: pe.ColumnName,
		DataType: pe.DataTypeName, Constraint: pe.ConstraintName,
	}
}

// StatementError is a server error with what the connection knew when it
// came: whether the statement was in a transaction block (which the error
// aborted) and whether the node was a standby. Classify reads them;
// errors.As reaches the *driver.ServerError inside.
type StatementError struct {
	Err *driver.ServerError
	// InTx: the statement ran in a transaction block, now aborted.
	InTx bool
	// Standby: the node said it was a hot standby (in_hot_standby=on).
	Standby bool
}

func (e *StatementError) Error() string {
	if e.Err.Code == "25006" && e.Standby {
		return e.Err.Msg + ": the node is a standby (in_hot_standby=on), and the statement writes: it must go to the primary (not declared a read, nor run in a read-only transaction)"
	}
	return e.Err.Msg
}

func (e *StatementError) Unwrap() error { return e.Err }

// fail converts an error of pgconn for the user API: the server's errors
// become a *StatementError wrapping a *driver.ServerError (the connection
// stays usable); a statement the server cancelled because ctx ended also
// wraps ctx's error; a failure before anything was sent wraps
// driver.ErrBadConn (safe to retry anywhere).
func (c *pgConn) fail(ctx context.Context, err error) error {
	var de *decodeError
	if err == nil || errors.As(err, &de) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		se := &StatementError{Err: serverError(pe), InTx: c.pg.TxStatus() == 'E'}
		se.Standby = c.pg.ParameterStatus("in_hot_standby") == "on"
		if pe.Code == "57014" && ctx.Err() != nil {
			// Our cancel request did it: the statement stopped, the
			// connection is in sync and stays usable.
			return fmt.Errorf("postgres: %w: the server cancelled the statement: %w", context.Cause(ctx), se)
		}
		return se
	}
	if ctx.Err() != nil {
		if errors.Is(err, ctx.Err()) {
			return fmt.Errorf("postgres: %w", err)
		}
		return fmt.Errorf("postgres: %w (%w)", context.Cause(ctx), err)
	}
	if c.armed && (pgconn.Timeout(err) || errors.Is(err, os.ErrDeadlineExceeded)) {
		// arm's deadline: socket_timeout passed; pgconn closed the
		// connection (the reply may still come).
		return fmt.Errorf("postgres: %s: no reply within socket_timeout %v: %w (%w)", c.addr, c.c.cfg.SocketTimeout, context.DeadlineExceeded, err)
	}
	if pgconn.SafeToRetry(err) {
		return fmt.Errorf("postgres: %w: %w", driver.ErrBadConn, err)
	}
	return fmt.Errorf("postgres: %w", err)
}

// Classify implements driver.Classifier.
func (c *connector) Classify(err error) driver.Retry {
	var se *driver.ServerError
	if !errors.As(err, &se) {
		return driver.RetryDefault
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// Our cancel stopped it: the caller's deadline or cancellation
		// decides, by the user API's rules.
		return driver.RetryDefault
	}
	var st *StatementError
	errors.As(err, &st)
	switch se.Code {
	case "25006": // read_only_sql_transaction
		// On a hot standby: the node was taken for a primary and is not
		// one (a demoted primary, or a caller that declared a write a
		// read): the statement did not run; retry once the topology is
		// refreshed. On a primary it is the caller's read-only
		// transaction: final.
		if st != nil && st.Standby {
			return driver.RetryDemoted
		}
		return driver.RetryNever
	case "57P01", "57P02", "57P03":
		// admin_shutdown, crash_shutdown, cannot_connect_now: the node is
		// going down or not up yet. The statement did not run, or was
		// rolled back with its backend (a commit completes before the
		// backend acts on a shutdown); retry once the tender has looked.
		return driver.RetryRefresh
	case "57P05":
		// idle_session_timeout: sent while the session was idle, before
		// the statement was read; the connection is gone. Retry now.
		return driver.RetryLater
	case "40001", "40P01":
		// serialization_failure, deadlock_detected: alone (outside a
		// transaction block) the statement was rolled back as a whole, so
		// another attempt may succeed. In a transaction the transaction is
		// aborted: only the caller can run it again.
		if st != nil && st.InTx {
			return driver.RetryNever
		}
		return driver.RetryLater
	case "53300":
		// too_many_connections: refused before anything ran; a slot may
		// free up.
		return driver.RetryLater
	}
	// Any other server error is the statement's own outcome (a syntax
	// error, a constraint, a missing table): another attempt cannot help.
	return driver.RetryNever
}
