package sql

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// fakeMySQLConnector stands in for a MySQL server, which does not run
// here (the tests' server is MariaDB): its connections answer every
// statement with err, as MySQL answers the SET of max_statement_time,
// a variable it does not have, with ER_UNKNOWN_SYSTEM_VARIABLE.
type fakeMySQLConnector struct {
	err  error
	conn *fakeMySQLConn
}

func (f *fakeMySQLConnector) Connect(context.Context) (driver.Conn, error) {
	f.conn = &fakeMySQLConn{err: f.err}
	return f.conn, nil
}

func (f *fakeMySQLConnector) Driver() driver.Driver { return nil }

type fakeMySQLConn struct {
	err    error
	execs  []string
	closed bool
}

func (c *fakeMySQLConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("no statements") }
func (c *fakeMySQLConn) Begin() (driver.Tx, error)           { return nil, errors.New("no transactions") }
func (c *fakeMySQLConn) Close() error                        { c.closed = true; return nil }

func (c *fakeMySQLConn) ExecContext(_ context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
	c.execs = append(c.execs, q)
	return driver.ResultNoRows, c.err
}

// TestMariaTimeoutOnMySQL: mariaTimeout sets max_statement_time on each
// new session where nothing set it; on MySQL, which has no such variable
// (ER_UNKNOWN_SYSTEM_VARIABLE), the session is kept as it is, and any
// other failure of the SET fails the connection, closed.
func TestMariaTimeoutOnMySQL(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kept bool
	}{
		{"MariaDB", nil, true},
		{"MySQL", &mysql.MySQLError{Number: erUnknownSystemVariable, Message: "Unknown system variable 'max_statement_time'"}, true},
		{"refused", &mysql.MySQLError{Number: 1227, Message: "Access denied"}, false},
		{"connection lost", mysql.ErrInvalidConn, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMySQLConnector{err: tc.err}
			conn, err := mariaTimeout{Connector: f, seconds: "1.500"}.Connect(t.Context())
			if len(f.conn.execs) != 1 || !strings.Contains(f.conn.execs[0], "max_statement_time = IF(@@SESSION.max_statement_time = 0, 1.500,") {
				t.Fatalf("statements sent %q, want the one SET of max_statement_time to 1.500 where it is 0", f.conn.execs)
			}
			if tc.kept {
				if err != nil || conn != f.conn || f.conn.closed {
					t.Errorf("Connect = %v, %v (closed %v), want the session kept", conn, err, f.conn.closed)
				}
				return
			}
			if !errors.Is(err, tc.err) || conn != nil || !f.conn.closed {
				t.Errorf("Connect = %v, %v (closed %v), want %v and the session closed", conn, err, f.conn.closed, tc.err)
			}
		})
	}
}
