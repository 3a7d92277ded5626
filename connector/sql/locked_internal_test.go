package sql

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
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
