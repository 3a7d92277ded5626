package sql_test

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// rewriting is a driver.Connector handing every statement to the real
// server's driver after rewrite: how a test has a real server refuse one
// statement of the connector, or sees which statements it sends.
type rewriting struct {
	driver.Connector
	rewrite func(q string) string
}

func (r *rewriting) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := r.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rewritingConn{Conn: c, rewrite: r.rewrite}, nil
}

type rewritingConn struct {
	driver.Conn
	rewrite func(q string) string
}

func (c *rewritingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, c.rewrite(q))
	}
	return c.Conn.Prepare(c.rewrite(q))
}

func (c *rewritingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if qc, ok := c.Conn.(driver.QueryerContext); ok {
		return qc.QueryContext(ctx, c.rewrite(q), args)
	}
	return nil, driver.ErrSkip
}

func (c *rewritingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if ec, ok := c.Conn.(driver.ExecerContext); ok {
		return ec.ExecContext(ctx, c.rewrite(q), args)
	}
	return nil, driver.ErrSkip
}

func (c *rewritingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *rewritingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *rewritingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// rewritten opens the server s as the connector c would reach it, with
// every statement rewritten, and hands the pool to c.
func rewritten(t *testing.T, s *server, c nhisync.Connector, rewrite func(q string) string) {
	t.Helper()
	nsql.SetDB(c.(*nsql.Connector), stdsql.OpenDB(&rewriting{Connector: serverConnector(t, s), rewrite: rewrite}))
}

// serverConnector reaches the server s as the connector would (in UTC).
func serverConnector(t *testing.T, s *server) driver.Connector {
	t.Helper()
	if s.kind == "postgres" {
		cfg, err := pgx.ParseConfig(s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["timezone"] = "UTC"
		return stdlib.GetConnector(*cfg)
	}
	conn, err := mysql.NewConnector(mysqlConfig(t, s.dsn))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// windowRead marks the batch read: it alone counts rows by id with a
// window function.
const windowRead = "COUNT(*) OVER ("

// TestApplyBatchReadRefusedFails: a batch read the server refuses as SQL
// it cannot parse (MariaDB's 1064, PostgreSQL's 42601: here made so by
// breaking the statement on its way) is a bug of the connector: the
// batch's writes fail, EINTERNAL, with the server's words and saying it
// is a bug, and nothing is written. On MariaDB a 1064 was taken as "no
// window functions", logged once at info level, and the writes went one
// by one: the bug was hidden for good.
func TestApplyBatchReadRefusedFails(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *server{"mariadb": mysqlDatabase, "postgres": pgDatabase} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
			s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
			c := ownerConnector(t, s.dsn, "", "accounts")
			var log bytes.Buffer
			c.(*nsql.Connector).Log = slog.New(slog.NewTextHandler(&log, nil))
			rewritten(t, s, c, func(q string) string {
				return strings.Replace(q, windowRead, "COUNT(*) OVER OVER (", 1)
			})
			res, err := c.Apply(t.Context(), []nhisync.Write{
				ownerWrite("a", "old@example.com", "a1@example.com"),
				ownerWrite("b", "old@example.com", "b1@example.com"),
			})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for i, r := range res {
				msg := nhisync.ErrorMessage(r.Err)
				if r.Status != nhisync.WriteFailed || nhisync.ErrorCode(r.Err) != nhisync.EINTERNAL ||
					!strings.Contains(msg, "a bug") || !strings.Contains(strings.ToLower(msg), "syntax") {
					t.Errorf("write %d: %s %s %q, want failed, %s, saying it is a bug and the server's words", i, r.Status, nhisync.ErrorCode(r.Err), msg, nhisync.EINTERNAL)
				}
			}
			for _, id := range []string{"a", "b"} {
				if got := s.owner(t, "accounts", id); got != "old@example.com" {
					t.Errorf("row %s: owner %q, want it untouched", id, got)
				}
			}
		})
	}
}

// TestApplyWithoutWindowFunctions: a MariaDB whose version says it has
// window functions (10.2 and later) is taken so at open; one taken to
// have none gets no batch read (which would fail), its writes reading
// their rows one by one, all applied, and that is logged once.
func TestApplyWithoutWindowFunctions(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com'), ('c', 'old@example.com')")
	c := ownerConnector(t, s.dsn, "", "accounts")
	if !nsql.WindowFunctions(c.(*nsql.Connector)) {
		var v string
		_ = s.db.QueryRow("SELECT VERSION()").Scan(&v)
		t.Errorf("MariaDB %s taken to have no window functions", v)
	}
	var log bytes.Buffer
	c.(*nsql.Connector).Log = slog.New(slog.NewTextHandler(&log, nil))
	var reads atomic.Int32
	rewritten(t, s, c, func(q string) string {
		if strings.Contains(q, windowRead) {
			reads.Add(1)
		}
		return q
	})
	nsql.SetWindowFunctions(c.(*nsql.Connector), false)
	for _, step := range [][2]string{{"old", "new"}, {"new", "newer"}} {
		var writes []nhisync.Write
		for _, id := range []string{"a", "b", "c"} {
			writes = append(writes, ownerWrite(id, step[0]+"@example.com", step[1]+"@example.com"))
		}
		res, err := c.Apply(t.Context(), writes)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		for i, r := range res {
			if r.Status != nhisync.WriteApplied {
				t.Errorf("write %d: %s (%v), want applied", i, r.Status, r.Err)
			}
		}
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("%d batch reads sent to a server taken to have no window functions", n)
	}
	if n := strings.Count(log.String(), "no window functions"); n != 1 {
		t.Errorf("said %d times that the server has no window functions, want once: %q", n, log.String())
	}
}

// batchUpdate reports whether q is a batch UPDATE: UPDATE … FROM
// (VALUES …) on PostgreSQL, CASE id WHEN … on MariaDB.
func batchUpdate(q string) bool {
	return strings.HasPrefix(q, "UPDATE ") && (strings.Contains(q, "FROM (VALUES") || strings.Contains(q, " = CASE "))
}

// TestApplyBatchUpdateFails: a batch UPDATE the server refuses as SQL it
// cannot parse fails its writes as the connector's bug (EINTERNAL, the
// server's words), nothing written; one that fails otherwise while each
// of its writes goes through alone (here: its table renamed on the way,
// so the server finds none) is logged as a warning with its cause, the
// writes applied one by one. Both sent the writes one by one with
// nothing said: a broken batch UPDATE made every Apply slower, unseen.
func TestApplyBatchUpdateFails(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *server{"mariadb": mysqlDatabase, "postgres": pgDatabase} {
		for _, tc := range []struct {
			name    string
			rewrite func(q string) string
			applied bool
		}{
			{"syntax", func(q string) string { return strings.Replace(q, "UPDATE ", "UPDATE UPDATE ", 1) }, false},
			{"no such table", func(q string) string { return strings.Replace(q, "accounts", "no_such_table", 1) }, true},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				s := open(t)
				s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
				s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
				c := ownerConnector(t, s.dsn, "", "accounts")
				var log bytes.Buffer
				c.(*nsql.Connector).Log = slog.New(slog.NewTextHandler(&log, nil))
				var batches atomic.Int32
				rewritten(t, s, c, func(q string) string {
					if !batchUpdate(q) {
						return q
					}
					batches.Add(1)
					return tc.rewrite(q)
				})
				res, err := c.Apply(t.Context(), []nhisync.Write{
					ownerWrite("a", "old@example.com", "a1@example.com"),
					ownerWrite("b", "old@example.com", "b1@example.com"),
				})
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if batches.Load() == 0 {
					t.Fatal("no batch UPDATE sent")
				}
				want := map[string]string{"a": "old@example.com", "b": "old@example.com"}
				for i, r := range res {
					msg := nhisync.ErrorMessage(r.Err)
					switch {
					case tc.applied && r.Status != nhisync.WriteApplied:
						t.Errorf("write %d: %s (%v), want applied", i, r.Status, r.Err)
					case !tc.applied && (r.Status != nhisync.WriteFailed || nhisync.ErrorCode(r.Err) != nhisync.EINTERNAL ||
						!strings.Contains(msg, "a bug") || !strings.Contains(strings.ToLower(msg), "syntax")):
						t.Errorf("write %d: %s %s %q, want failed, %s, saying it is a bug and the server's words", i, r.Status, nhisync.ErrorCode(r.Err), msg, nhisync.EINTERNAL)
					}
				}
				if tc.applied {
					want = map[string]string{"a": "a1@example.com", "b": "b1@example.com"}
					for _, w := range []string{"level=WARN", "batch update failed", "system=ids", "table=accounts", "writes=2", "no_such_table"} {
						if !strings.Contains(log.String(), w) {
							t.Errorf("the log %q lacks %q", log.String(), w)
						}
					}
				}
				for id, w := range want {
					if got := s.owner(t, "accounts", id); got != w {
						t.Errorf("row %s: owner %q, want %q", id, got, w)
					}
				}
			})
		}
	}
}

// TestWindowFunctionsTried: a server whose version says it has window
// functions but that refuses one (here every window function is broken
// on its way, and the version read says 8.0.11, as ProxySQL 3.0.4 answers
// SELECT VERSION() in front of a MySQL 5.7) is taken to have none: its
// writes read their rows one by one and are applied. Taken by its
// version alone, its every batch read was refused as SQL it cannot
// parse, and the writes failed as the connector's bug, for good.
func TestWindowFunctionsTried(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := ownerConnector(t, s.dsn, "", "accounts")
	rewritten(t, s, c, func(q string) string {
		if q == "SELECT VERSION()" {
			return "SELECT '8.0.11'"
		}
		return strings.Replace(q, "COUNT(*) OVER (", "COUNT(*) OVER OVER (", 1)
	})
	if err := nsql.ReadWindows(t.Context(), c.(*nsql.Connector)); err != nil {
		t.Fatal(err)
	}
	if nsql.WindowFunctions(c.(*nsql.Connector)) {
		t.Error("a server refusing window functions is taken to have them")
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Errorf("write %d: %s (%v), want applied", i, r.Status, r.Err)
		}
	}
}
