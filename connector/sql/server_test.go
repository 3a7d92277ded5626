package sql_test

import (
	"crypto/rand"
	stdsql "database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
)

// The servers the tests reach: the PostgreSQL and MariaDB that run on
// the development and CI machines. Each test makes a database of its own
// and drops it at the end; a server that cannot be reached fails the test.
func pgAdminDSN() string {
	if v := os.Getenv("NHISYNC_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func mysqlAdminDSN() string {
	if v := os.Getenv("NHISYNC_TEST_MYSQL"); v != "" {
		return v
	}
	return "mysql://root@127.0.0.1:3306/test"
}

func randName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// server is a database made for one test on a real server.
type server struct {
	kind string // "postgres" or "mysql"
	name string // the database
	dsn  string // nhisync's dsn setting for the database
	db   *stdsql.DB
	// tables counts the tables made, for fresh names.
	tables int
}

// pgDatabase creates a fresh PostgreSQL database, dropped when t ends.
func pgDatabase(t testing.TB) *server {
	t.Helper()
	admin, err := stdsql.Open("pgx", pgAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randName("nhisync_test_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("PostgreSQL at %s is needed for this test (set NHISYNC_TEST_POSTGRES to reach another): %v", pgAdminDSN(), err)
	}
	u, _ := url.Parse(pgAdminDSN())
	u.Path = "/" + name
	s := &server{kind: "postgres", name: name, dsn: u.String()}
	if s.db, err = stdsql.Open("pgx", s.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.db.Close()
		admin, err := stdsql.Open("pgx", pgAdminDSN())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return s
}

// mysqlConfig returns the driver config of a nhisync mysql:// dsn.
func mysqlConfig(t testing.TB, dsn string) *mysql.Config {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.ParseTime, cfg.Loc = true, time.UTC
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	return cfg
}

func openMySQL(t testing.TB, dsn string) *stdsql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(mysqlConfig(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	return stdsql.OpenDB(conn)
}

// mysqlDatabase creates a fresh MariaDB/MySQL database, dropped when t
// ends.
func mysqlDatabase(t testing.TB) *server {
	t.Helper()
	admin := openMySQL(t, mysqlAdminDSN())
	defer admin.Close()
	name := randName("nhisync_test_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("MariaDB/MySQL at %s is needed for this test (set NHISYNC_TEST_MYSQL to reach another): %v", mysqlAdminDSN(), err)
	}
	u, _ := url.Parse(mysqlAdminDSN())
	u.Path = "/" + name
	s := &server{kind: "mysql", name: name, dsn: u.String()}
	s.db = openMySQL(t, s.dsn)
	t.Cleanup(func() {
		s.db.Close()
		admin := openMySQL(t, mysqlAdminDSN())
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return s
}

// p returns the i-th (1-based) placeholder of the server's SQL.
func (s *server) p(i int) string {
	if s.kind == "postgres" {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

func (s *server) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := s.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// serverHarness keeps the suite's records in a table of a real server,
// with the server's native types: on PostgreSQL tags is text[] and the
// times timestamptz; on MariaDB tags is a JSON column and the times
// DATETIME(6).
type serverHarness struct {
	s       *server
	updated bool
	edits   int
}

func (h *serverHarness) Features() conntest.Features { return conntest.Features{} }

func (h *serverHarness) ddl(table string) string {
	types := map[string]string{conntest.IDName: "text PRIMARY KEY", conntest.TagsName: "text[]", conntest.RotatedName: "timestamptz", "updated_at": "timestamptz"}
	other := "text"
	if h.s.kind == "mysql" {
		types = map[string]string{conntest.IDName: "VARCHAR(64) PRIMARY KEY", conntest.TagsName: "JSON", conntest.RotatedName: "DATETIME(6)", "updated_at": "DATETIME(6)"}
		other = "VARCHAR(200)"
	}
	var cols []string
	for _, c := range append(append([]string{}, conntest.Columns...), "updated_at") {
		t, ok := types[c]
		if !ok {
			t = other
		}
		cols = append(cols, c+" "+t)
	}
	return "CREATE TABLE " + table + " (" + strings.Join(cols, ", ") + ")"
}

// native turns a suite value into what the harness binds for column c.
func (h *serverHarness) native(c string, v any) any {
	switch c {
	case conntest.TagsName:
		elems, ok := v.([]string)
		if !ok {
			return nil
		}
		if h.s.kind == "postgres" {
			return elems
		}
		b, _ := json.Marshal(elems)
		return string(b)
	case conntest.RotatedName:
		s, _ := v.(string)
		if tm, ok := nhisync.ParseTime(s); ok {
			return tm
		}
		return nil
	}
	return v
}

func (h *serverHarness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	h.s.tables++
	table := fmt.Sprintf("service_accounts_%d", h.s.tables)
	sys.Settings = nhisync.Settings{"dsn": h.s.dsn, "table": table}
	if h.updated {
		sys.Settings["updated_column"] = "updated_at"
	}
	h.s.exec(t, h.ddl(table))
	tx, err := h.s.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	all := append(append([]string{}, conntest.Columns...), "updated_at")
	ph := make([]string, len(all))
	for i := range ph {
		ph[i] = h.s.p(i + 1)
	}
	ins, err := tx.Prepare("INSERT INTO " + table + " (" + strings.Join(all, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ")")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		args := make([]any, len(all))
		for k, c := range all {
			args[k] = h.native(c, r[c])
		}
		args[len(all)-1] = base.Add(time.Duration(i) * time.Second)
		if _, err := ins.Exec(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (h *serverHarness) table(sys *nhisync.System) string { return sys.Settings.String("table") }

func (h *serverHarness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	h.edits++
	var set []string
	var args []any
	for k, v := range native {
		args = append(args, h.native(k, v))
		set = append(set, k+" = "+h.s.p(len(args)))
	}
	args = append(args, base.Add(time.Duration(1e6+h.edits)*time.Second))
	set = append(set, "updated_at = "+h.s.p(len(args)))
	args = append(args, id)
	res, err := h.s.db.Exec("UPDATE "+h.table(sys)+" SET "+strings.Join(set, ", ")+" WHERE "+conntest.IDName+" = "+h.s.p(len(args)), args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("Edit: no row %s", id)
	}
}

func (h *serverHarness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	h.s.exec(t, "DELETE FROM "+h.table(sys)+" WHERE "+conntest.IDName+" = "+h.s.p(1), id)
}

func (h *serverHarness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	rows, err := h.s.db.Query("SELECT * FROM "+h.table(sys)+" WHERE "+conntest.IDName+" = "+h.s.p(1), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return nil
	}
	vals := make([]any, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for i, c := range cols {
		if b, ok := vals[i].([]byte); ok {
			vals[i] = string(b)
		}
		out[c] = vals[i]
	}
	return out
}

func TestConformancePostgres(t *testing.T) {
	s := pgDatabase(t)
	t.Run("cursor", func(t *testing.T) { conntest.Run(t, "sql", &serverHarness{s: s, updated: true}) })
	t.Run("plain", func(t *testing.T) { conntest.Run(t, "sql", &serverHarness{s: s}) })
}

func TestConformanceMariaDB(t *testing.T) {
	s := mysqlDatabase(t)
	t.Run("cursor", func(t *testing.T) { conntest.Run(t, "sql", &serverHarness{s: s, updated: true}) })
	t.Run("plain", func(t *testing.T) { conntest.Run(t, "sql", &serverHarness{s: s}) })
}
