package main

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
	_ "modernc.org/sqlite"
)

// TestSQLTableChangedFailsOnlyThatSystem (issue 6 finding 2): a SQL table
// whose mapped column was renamed, or that is gone, fails that system's
// read (exit 1, named) while the others sync; it used to end the whole
// pass with exit 2.
func TestSQLTableChangedFailsOnlyThatSystem(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	db, err := sql.Open("sqlite", w.path("systems/idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, step := range []struct{ ddl, want string }{
		{"ALTER TABLE service_accounts RENAME COLUMN status TO state", `has no column "status"`},
		{"ALTER TABLE service_accounts RENAME TO gone", "no such table"},
	} {
		if _, err := db.Exec(step.ddl); err != nil {
			t.Fatal(err)
		}
		r := w.run(t, "sync", "--retry-paused")
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, step.want) || !strings.Contains(r.stderr, "idp") {
			t.Fatalf("%s: exit %d\n%s\n%s", step.ddl, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "cmdb     full") {
			t.Errorf("the other systems were not synced:\n%s", r.stdout)
		}
		if r := w.run(t, "check", "--connect"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, step.want) {
			t.Errorf("check --connect: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
}
