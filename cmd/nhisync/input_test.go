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

// TestValuesCannotDriveTheTerminal (issue 6 finding 8): ESC, OSC and C1
// sequences in system values are printed escaped by explain, history,
// show, records and quarantine, never raw.
func TestValuesCannotDriveTheTerminal(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	p := w.path("systems/catalog.yaml")
	y := readFile(t, p)
	evil := `"\e]8;;http://evil.example/\a\e[2Jclick\e]8;;\a\x9b31m"`
	y = strings.Replace(y, "  tags:\n    - confidential\n  policy: monitor\n  description: Service account used by payments (prod)",
		"  tags:\n    - confidential\n    - "+evil+"\n  policy: monitor\n  description: Service account used by payments (prod)", 1)
	if !strings.Contains(y, evil) {
		t.Fatal("the catalog changed shape; fix the test's edit")
	}
	writeFile(t, p, y)
	w.ok(t, "sync")
	for _, args := range [][]string{
		{"explain", "service_account/aws/payments-bot", "classification"},
		{"history", "service_account/aws/payments-bot"},
		{"show", "service_account/aws/payments-bot"},
		{"records", "--limit", "500"},
	} {
		out := w.ok(t, args...)
		if i := strings.IndexAny(out, "\x1b\x07\u009b"); i >= 0 {
			t.Errorf("%v printed a control character raw: %q", args, out[max(0, i-30):min(len(out), i+30)])
		}
		if !strings.Contains(out, `\x1b]8;;http://evil.example/\x07`) {
			t.Errorf("%v does not show the value escaped:\n%s", args, out)
		}
	}
}

// TestTermSafeKeepsOwnColours: nhisync's own colour codes pass; anything
// else a terminal would act on is escaped.
func TestTermSafeKeepsOwnColours(t *testing.T) {
	for in, want := range map[string]string{
		ansiBold + "name" + ansiReset:     ansiBold + "name" + ansiReset,
		"a\x1b]0;title\x07b\n":            `a\x1b]0;title\x07b` + "\n",
		"\x1b[2Jx\x1b[1;1H":               `\x1b[2Jx\x1b[1;1H`,
		"r\u202eevil\u009b\x7f\xff\tok\r": `r\u202eevil\u009b\x7f\xff` + "\tok" + `\x0d`,
		"plain ünïcødé":                   "plain ünïcødé",
	} {
		if got := string(escapeTerminal([]byte(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

// TestCutShortRowSaysItsProblemOnce: sync listed a quarantined malformed
// value with its problem twice on one line ("→ (malformed: line 5 has 3 of
// the header's 11 fields…)  (malformed: owner is not a value: line 5 has
// 3…)"); the value now reads "(malformed)" and the reason says why.
func TestCutShortRowSaysItsProblemOnce(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	p := w.path(quickstart.CMDBFile)
	lines := strings.Split(readFile(t, p), "\n")
	cells := strings.Split(lines[4], ",")
	lines[4] = strings.Join(cells[:3], ",")
	writeFile(t, p, strings.Join(lines, "\n"))
	out := w.ok(t, "sync", "-v")
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "quarantine") || !strings.Contains(l, "line 5 has 3 of the header's") {
			continue
		}
		n++
		if c := strings.Count(l, "line 5 has 3 of the header's"); c != 1 || !strings.Contains(l, "→ (malformed)") {
			t.Errorf("quarantine line names the problem %d times:\n%s", c, l)
		}
	}
	if n == 0 {
		t.Errorf("sync lists no quarantined value of the cut-short row:\n%s", out)
	}
}
