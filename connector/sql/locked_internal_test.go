package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nhisync/nhisync"
)

// TestLockedMessage: a lock held elsewhere is said as such; the wait and
// the timeout setting are named only for SQLite, whose busy_timeout the
// setting is (a server waits as its own lock settings say), and only a
// write's message says the writes stay queued.
func TestLockedMessage(t *testing.T) {
	sys := &nhisync.System{Name: "inv"}
	for _, tc := range []struct {
		d       *dialect
		err     error
		dialect string
	}{
		{d: postgres, err: &pgconn.PgError{Code: "55P03"}, dialect: "postgres"},
		{d: mysqlDialect, err: &mysql.MySQLError{Number: 1205}, dialect: "mysql"},
		{d: postgres, err: &pgconn.PgError{Code: "40P01"}, dialect: "postgres deadlock"},
		{d: mysqlDialect, err: &mysql.MySQLError{Number: 1213}, dialect: "mysql deadlock"},
	} {
		c := &Connector{sys: sys, d: tc.d, pool: poolLimits{timeout: 100 * time.Millisecond}}
		read := c.unavail(tc.err, "cannot read table accounts").(*nhisync.Error).Message
		write := c.writeUnavail(tc.err, "cannot begin a transaction on table accounts").(*nhisync.Error).Message
		for _, m := range []string{read, write} {
			if !strings.Contains(m, "holds the table's lock") || strings.Contains(m, "within 100ms") {
				t.Errorf("%s: %q", tc.dialect, m)
			}
		}
		if strings.Contains(read, "writes stay queued") || !strings.Contains(write, "writes stay queued") {
			t.Errorf("%s: read %q, write %q", tc.dialect, read, write)
		}
	}
}

// TestEndsTx: on MySQL/MariaDB a deadlock and a full lock table (InnoDB
// rolls the transaction back for both) always roll the whole transaction
// back, a lock wait timeout only on a server with
// innodb_rollback_on_timeout, and so does the connection's end (broken,
// or the session killed); other errors (a statement killed alone), and
// every error elsewhere, leave it standing. A full lock table was taken as the statement's
// failure alone: the writes before it were said applied, and those after
// it ran outside any transaction.
func TestEndsTx(t *testing.T) {
	for _, tc := range []struct {
		d        *dialect
		rollback bool
		err      error
		want     bool
	}{
		{mysqlDialect, false, &mysql.MySQLError{Number: 1213}, true},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1206}, true},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1205}, false},
		{mysqlDialect, true, &mysql.MySQLError{Number: 1205}, true},
		{mysqlDialect, true, &mysql.MySQLError{Number: 1062}, false},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1927}, true},
		{mysqlDialect, false, &mysql.MySQLError{Number: 3169}, true},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1053}, true},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1180}, false},
		{mysqlDialect, false, &mysql.MySQLError{Number: 1317}, false},
		{mysqlDialect, false, mysql.ErrInvalidConn, true},
		{mysqlDialect, false, fmt.Errorf("read: %w", driver.ErrBadConn), true},
		{sqlite, false, driver.ErrBadConn, false},
		{postgres, true, &pgconn.PgError{Code: "40P01"}, false},
	} {
		c := &Connector{d: tc.d, rollbackOnTimeout: tc.rollback}
		if got := c.endsTx(tc.err); got != tc.want {
			t.Errorf("%s, rollback on timeout %v: endsTx(%v) = %v, want %v", tc.d.name, tc.rollback, tc.err, got, tc.want)
		}
	}
}

// TestCommitRefused: a commit's failure is taken as "nothing committed"
// only when the database answered with an error or the COMMIT never
// left; a connection lost or a context ended while it was out leaves the
// outcome unknown (pgx's "conn closed" after the COMMIT was sent too), and
// so do a PostgreSQL PANIC (the commit record may be on disk) and a
// MySQL/MariaDB error saying the COMMIT was killed or failed in an engine
// (mysqlCommitCut: it may have come after the commit point).
func TestCommitRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "40001"}, true},
		{&pgconn.PgError{Code: "23503"}, true},
		{&pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "25P03"}, true},
		{&pgconn.PgError{Severity: "PANIC", SeverityUnlocalized: "PANIC", Code: "58030"}, false},
		{&pgconn.PgError{Severity: "PANIC", Code: "XX000"}, false},
		{fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1213}), true},
		{&mysql.MySQLError{Number: 1205}, true},
		{&mysql.MySQLError{Number: 1317}, false},
		{&mysql.MySQLError{Number: 1927}, false},
		{&mysql.MySQLError{Number: 3169}, false},
		{&mysql.MySQLError{Number: 1053}, false},
		{fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1180}), false},
		{pgx.ErrTxCommitRollback, true},
		{driver.ErrBadConn, true},
		{stdsql.ErrTxDone, true},
		{pgconn.ErrConnClosed, false},
		{mysql.ErrInvalidConn, false},
		{io.ErrUnexpectedEOF, false},
		{context.Canceled, false},
	} {
		if got := commitRefused(tc.err); got != tc.want {
			t.Errorf("commitRefused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
