package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	msqlite "modernc.org/sqlite"

	"github.com/nhisync/nhisync"
)

// The end of an Apply: its COMMIT, how long its answer is waited for,
// and what the answer (or none) says was applied.

// mysqlSession is the connection of one Apply's transaction on
// MySQL/MariaDB, with its session id (CONNECTION_ID()), taken out of the
// pool for the Apply: once its COMMIT is sent, it goes back only when
// the COMMIT's answer is in and no kill of the session can come, so a
// kill never reaches a connection the pool handed to another Apply.
type mysqlSession struct {
	conn *stdsql.Conn
	id   int64
	// committing: commitBounded has the connection, and gives it back.
	committing bool
	// killed: the session was killed; its connection is closed, not
	// given back.
	killed bool
}

// beginSession takes a connection out of the pool, reads its session id
// and begins a transaction on it.
func (c *Connector) beginSession(ctx context.Context) (*mysqlSession, *stdsql.Tx, error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	s := &mysqlSession{conn: conn}
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&s.id); err != nil {
		conn.Close()
		return nil, nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return s, tx, nil
}

// close gives the connection back to the pool, unless commitBounded has
// it. It waits for the transaction to end (database/sql holds the
// connection until then): call it after the transaction's Rollback.
func (s *mysqlSession) close() {
	if !s.committing {
		s.conn.Close()
	}
}

// commitBounded commits tx, the transaction of s, waiting for the
// COMMIT's answer up to the timeout setting, as pgx's context bounds it
// on PostgreSQL: the MySQL driver runs a COMMIT on no context. Past the
// bound the session is killed (KILL CONNECTION, from a connection of
// its own), which ends a COMMIT waiting for a lock, a backup stage or a
// semi-synchronous replica's ACK, and its answer (the kill's error,
// mysqlCommitCut, or the connection lost) is waited for up to the
// timeout setting again. A COMMIT still unanswered then (the server out
// of reach, so the kill could not get through either) is left to a
// goroutine, which gives the connection back once the driver does;
// Apply returns. Either way whether the writes were applied is unknown
// (commitRefused), unless the answer that came says so.
func (c *Connector) commitBounded(tx *stdsql.Tx, s *mysqlSession) error {
	s.committing = true
	answer := make(chan error, 1)
	settled := make(chan struct{}) // closed once no kill can come
	go func() {
		answer <- tx.Commit()
		<-settled
		if s.killed {
			// Discarded, not pooled: the server ended the session.
			_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		s.conn.Close()
	}()
	defer close(settled)
	t := time.NewTimer(c.pool.timeout)
	defer t.Stop()
	select {
	case err := <-answer:
		return err
	case <-t.C:
	}
	select {
	case err := <-answer: // came as the bound passed
		return err
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.pool.timeout)
	defer cancel()
	cut := fmt.Sprintf("the COMMIT got no answer within %s (setting %s), so its session was killed", c.pool.timeout, SettingTimeout)
	if err := c.t.killSession(ctx, s.id); err != nil {
		cut = fmt.Sprintf("the COMMIT got no answer within %s (setting %s), and killing its session failed (%v)", c.pool.timeout, SettingTimeout, err)
	} else {
		s.killed = true
	}
	select {
	case err := <-answer:
		if err == nil {
			// Committed, answered as the kill came.
			return nil
		}
		return fmt.Errorf("%s: %w", cut, err)
	case <-ctx.Done():
		return fmt.Errorf("%s; still no answer %s later", cut, c.pool.timeout)
	}
}

// commitRefused reports whether err, a commit's, says the transaction
// did not commit: the database answered the COMMIT with an error (a
// PostgreSQL or MySQL server's, SQLite's own: a deferred constraint, a
// lock, a serialization failure), committed nothing as the transaction
// had failed (pgx's ErrTxCommitRollback), or the COMMIT never left
// (driver.ErrBadConn, which a driver returns only before it sent
// anything, and a transaction database/sql had already rolled back).
// Anything else may have come once the COMMIT reached the server, with
// no answer: the connection lost, the timeout setting run out
// mid-flight (PostgreSQL). Not even pgconn.SafeToRetry tells: pgx v5.12 reports a
// connection lost while it waits for the COMMIT's answer as "conn
// closed", safe to retry. Nor does
// a PostgreSQL PANIC: the server crashed, and the commit record may be on
// disk (a failed WAL flush or fsync of it panics; so does an error after
// the commit, "cannot abort transaction …, it was already committed").
// A FATAL does say not committed: a backend ends the session only before
// the commit or once its answer is sent. Nor does a MySQL/MariaDB error
// saying the COMMIT was cut short rather than refused (mysqlCommitCut).
func commitRefused(err error) bool {
	var se *msqlite.Error
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.SeverityUnlocalized != "PANIC" && pe.Severity != "PANIC"
	}
	if errors.As(err, &me) {
		return !mysqlCommitCut(me.Number)
	}
	return errors.As(err, &se) ||
		errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, stdsql.ErrTxDone)
}

// mysqlCommitCut reports whether a MySQL/MariaDB error number, answering
// a COMMIT, says the statement was cut short, which may have been after
// its commit point: a kill (KILL QUERY: ER_QUERY_INTERRUPTED 1317; KILL
// CONNECTION: MariaDB's ER_CONNECTION_KILLED 1927, MySQL's
// ER_SESSION_WAS_KILLED 3169; the server shutting down:
// ER_SERVER_SHUTDOWN 1053), or an engine failing its part of the commit
// (ER_ERROR_DURING_COMMIT 1180) once the binary log may hold the
// transaction. A kill lands wherever the COMMIT is: waiting for a lock
// before its commit point (nothing committed), or after it, waiting for
// a semi-synchronous replica's ACK (committed, the session said killed
// all the same). A lost connection (2013, 2006) is no server error: the
// driver reports a broken connection, unknown too unless nothing was
// sent (driver.ErrBadConn). The numbers are mysqlErrors's cutsCommit.
func mysqlCommitCut(number uint16) bool {
	return mysqlErrors[number].cutsCommit
}

// commitUnknown is the error of a commit whose outcome is unknown (see
// commitRefused): EUNAVAIL, saying the writes may have been applied. A
// person reading that nothing was applied would be misled; the writes
// stay queued, and their retry, conditional, finds an update that was
// applied already holding its new values, and a create its row, where
// the system maps the kind's match fields.
func (c *Connector) commitUnknown(err error) error {
	e := c.errorf(nhisync.EUNAVAIL, "the commit of the writes to table %s got no answer, so whether they were applied is unknown (the next read of the table shows it); they stay queued and are retried: %v",
		c.sys.Settings.String(SettingTable), c.t.scrub(err))
	e.Err = c.t.scrub(err)
	return e
}
