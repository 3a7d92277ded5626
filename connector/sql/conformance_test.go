package sql_test

import (
	stdsql "database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/sql"
)

// sqliteHarness keeps the suite's records in a real SQLite table, written
// and read with plain SQL outside the connector.
type sqliteHarness struct {
	updated bool // give the system an updated_column
	edits   int
}

// base is when the harness's records were last updated; each record i
// at base+i seconds, each edit later than all of them.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func stamp(t time.Time) string { return t.Format("2006-01-02 15:04:05") }

func (h *sqliteHarness) Features() conntest.Features { return conntest.Features{} }

func openDB(t testing.TB, path string) *stdsql.DB {
	t.Helper()
	db, err := stdsql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (h *sqliteHarness) db(t *testing.T, sys *nhisync.System) *stdsql.DB {
	return openDB(t, filepath.Join(sys.BaseDir, "cmdb.db"))
}

func (h *sqliteHarness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	sys.BaseDir = t.TempDir()
	sys.Settings = nhisync.Settings{"dsn": "sqlite:cmdb.db", "table": "service_accounts"}
	if h.updated {
		sys.Settings["updated_column"] = "updated_at"
	}
	db := h.db(t, sys)
	cols := append(conntest.Columns[1:], "updated_at")
	ddl := "CREATE TABLE service_accounts (" + conntest.IDName + " TEXT PRIMARY KEY, " + strings.Join(cols, " TEXT, ") + " TEXT)"
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{conntest.IDName}, cols...)
	ins, err := tx.Prepare("INSERT INTO service_accounts (" + strings.Join(all, ", ") + ") VALUES (" + strings.Repeat("?, ", len(all)-1) + "?)")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r = conntest.Flatten(sys, r)
		args := make([]any, len(all))
		for k, c := range all {
			args[k] = r[c]
		}
		args[len(all)-1] = stamp(base.Add(time.Duration(i) * time.Second))
		if _, err := ins.Exec(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (h *sqliteHarness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	h.edits++
	var set []string
	var args []any
	for k, v := range conntest.Flatten(sys, native) {
		set = append(set, k+" = ?")
		args = append(args, v)
	}
	set = append(set, "updated_at = ?")
	args = append(args, stamp(base.Add(time.Duration(1e6+h.edits)*time.Second)), id)
	res, err := h.db(t, sys).Exec("UPDATE service_accounts SET "+strings.Join(set, ", ")+" WHERE "+conntest.IDName+" = ?", args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("Edit: no row %s", id)
	}
}

func (h *sqliteHarness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	if _, err := h.db(t, sys).Exec("DELETE FROM service_accounts WHERE "+conntest.IDName+" = ?", id); err != nil {
		t.Fatal(err)
	}
}

func (h *sqliteHarness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	rows, err := h.db(t, sys).Query("SELECT * FROM service_accounts WHERE "+conntest.IDName+" = ?", id)
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
		out[c] = vals[i]
	}
	return out
}

func TestConformanceSQLite(t *testing.T) {
	t.Run("cursor", func(t *testing.T) { conntest.Run(t, "sql", &sqliteHarness{updated: true}) })
	t.Run("plain", func(t *testing.T) { conntest.Run(t, "sql", &sqliteHarness{}) })
}
