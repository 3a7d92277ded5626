package sql_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// TestSnapshotWhileTableChanges: writes committed in the middle of a
// snapshot of a SQLite table larger than two pages neither repeat nor
// drop a row whose id holds still. Rows move in the file meanwhile: one
// already read is written again by INSERT OR REPLACE (a new rowid past
// the end), one not yet read gets a rowid before every other, VACUUM
// numbers the rows of a table without an index afresh. A read that
// follows the rowid without looking reads the first twice and misses
// the others; rows deleted or added meanwhile come at most once. Tables
// without a usable rowid (WITHOUT ROWID, a view, one whose every rowid
// name is a column) are read in id order.
func TestSnapshotWhileTableChanges(t *testing.T) {
	// n rows: the writes land when the read has emitted at rows, all of
	// its first two pages (of 2000 rows), before it fetches the third.
	const n, at = 4500, 4000
	// fill adds rows 0…k-1 to table: ids scattered, so that their order
	// is not the rows' order in the file.
	fill := func(table string, k int) string {
		return fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM seq WHERE i < %d)
			INSERT INTO %s (id, name) SELECT printf('%%08x', (i * 2654435761) %% 4294967296), 'n' || i FROM seq`, k-1, table)
	}
	for _, tc := range []struct {
		name string
		ddl  []string
		// write is the table the writes go to; rowid: it has one named
		// _rowid_.
		write string
		rowid bool
	}{
		{name: "rowid table", ddl: []string{"CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT)"}, rowid: true},
		{name: "integer primary key", ddl: []string{"CREATE TABLE accounts (k INTEGER PRIMARY KEY, id TEXT UNIQUE, name TEXT)"}, rowid: true},
		{name: "no index", ddl: []string{"CREATE TABLE accounts (id TEXT, name TEXT)"}, rowid: true},
		{name: "a column named _rowid_", ddl: []string{"CREATE TABLE accounts (id TEXT PRIMARY KEY, _rowid_ TEXT, name TEXT)"}},
		{name: "every rowid name a column", ddl: []string{"CREATE TABLE accounts (id TEXT PRIMARY KEY, rowid TEXT, _rowid_ TEXT, oid TEXT, name TEXT)"}},
		{name: "WITHOUT ROWID", ddl: []string{"CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT) WITHOUT ROWID"}},
		{name: "view", ddl: []string{"CREATE TABLE base (id TEXT PRIMARY KEY, name TEXT)", "CREATE VIEW accounts AS SELECT id, name FROM base"},
			write: "base", rowid: true},
	} {
		for _, vacuum := range []bool{false, true} {
			name := tc.name
			if vacuum {
				name += "/vacuum"
			}
			t.Run(name, func(t *testing.T) {
				w := tc.write
				if w == "" {
					w = "accounts"
				}
				stmts := append(tc.ddl[:len(tc.ddl):len(tc.ddl)], fill(w, n))
				if vacuum {
					// Gaps for VACUUM to close: every other row gone, n left.
					stmts = append(tc.ddl[:len(tc.ddl):len(tc.ddl)], fill(w, 2*n),
						"DELETE FROM "+w+" WHERE CAST(substr(name, 2) AS INTEGER) % 2 = 1")
				}
				dir := table(t, stmts...)
				db := openDB(t, filepath.Join(dir, "inv.db"))
				want := map[string]int{} // id: 1 must be read once, 0 at most once
				rows, err := db.Query("SELECT id FROM " + w)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id string
					rows.Scan(&id)
					want[id] = 1
				}
				rows.Close()
				if len(want) != n {
					t.Fatalf("%d rows, want %d", len(want), n)
				}
				c, err := nsql.Open(t.Context(), system(dir, nil, "id", "name=name"), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				got := map[string]int{}
				var order []string
				exec := func(q string, args ...any) {
					if _, err := db.Exec(q, args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				err = c.Snapshot(t.Context(), func(o nhisync.Observation) error {
					got[o.ID]++
					order = append(order, o.ID)
					if len(order) != at {
						return nil
					}
					if vacuum {
						exec("VACUUM")
						return nil
					}
					var unread []string
					for id := range want {
						if got[id] == 0 {
							unread = append(unread, id)
						}
					}
					// A row read already, written again whole.
					exec("INSERT OR REPLACE INTO "+w+" (id, name) VALUES (?, 'again')", order[0])
					// A row not read yet, written again whole.
					exec("INSERT OR REPLACE INTO "+w+" (id, name) VALUES (?, 'again')", unread[0])
					// A row not read yet, moved before every other.
					if tc.rowid {
						exec("UPDATE "+w+" SET _rowid_ = -1 WHERE id = ?", unread[1])
					}
					// Deleted and added: at most once.
					exec("DELETE FROM "+w+" WHERE id = ?", unread[2])
					want[unread[2]] = 0
					exec("INSERT INTO " + w + " (id, name) VALUES ('new', 'new')")
					want["new"] = 0
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				for id, k := range got {
					if k > 1 {
						t.Errorf("row %s read %d times", id, k)
					}
				}
				missing := 0
				for id, k := range want {
					if k == 1 && got[id] == 0 {
						if missing++; missing <= 5 {
							t.Errorf("row %s not read", id)
						}
					}
				}
				if missing > 0 {
					t.Errorf("%d rows not read", missing)
				}
			})
		}
	}
}
