package main

import (
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
)

// corruptStoreTable overwrites the root page of a table of the store at
// path (closed) with garbage.
func corruptStoreTable(t *testing.T, path, table string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xde\xad\xbe\xef", int(pageSize/4))), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStoreWritesNoSystem (issue 6 finding 14): a pass on a corrupt
// store stops, says the store is corrupt and what to do, and writes
// nothing to any system, though it had a write for the CMDB to make.
func TestCorruptStoreWritesNoSystem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		table   string
		unclean bool // a WAL left behind, as by a killed process
	}{
		{"after an unclean shutdown", "links", true},
		{"found while running", "records", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
			editFile(t, w.path("systems/catalog.yaml"), "  tags:\n    - confidential\n  policy: monitor\n", "  tags:\n    - confidential\n    - pii\n  policy: monitor\n")
			var plan obj
			w.json(t, &plan, "plan")
			if n := intOf(t, "plan", objOf(t, "plan", objOf(t, "plan", objOf(t, "plan", plan, "summary"), "systems"), "cmdb"), "planned"); n == 0 {
				t.Fatalf("the edit plans no write to the CMDB; the test would prove nothing: %v", plan)
			}
			store := w.path(quickstart.DataDir + "/nhisync.db")
			corruptStoreTable(t, store, tc.table)
			if tc.unclean {
				writeFile(t, store+"-wal", "")
			}
			cmdb := readFile(t, w.path("systems/cmdb.csv"))
			r := w.run(t, "sync")
			if r.code == exitOK || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, "backup") {
				t.Errorf("sync on a corrupt store: exit %d, stderr %q; want a failure naming the corruption and the remedy", r.code, r.stderr)
			}
			if got := readFile(t, w.path("systems/cmdb.csv")); got != cmdb {
				t.Errorf("sync on a corrupt store wrote to the CMDB")
			}
		})
	}
}
