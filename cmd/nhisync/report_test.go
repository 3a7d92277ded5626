package main

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
)

// TestReportCommand runs every finding report on the synced demo estate in
// every output, with filters and --fail-on.
func TestReportCommand(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	for _, name := range reportNames {
		var res obj
		w.json(t, &res, "report", name)
		requireKeys(t, "report "+name, res, "findings", "summary")
		findings, _ := res["findings"].([]any)
		for _, f := range findings {
			requireKeys(t, "finding", f.(obj), "type", "detail", "severity", "frameworks")
		}
		if out := w.ok(t, "report", name, "-o", "csv"); !strings.HasPrefix(out, "severity,type,kind,record,system,field,detail,frameworks,count\n") {
			t.Errorf("report %s -o csv: no header row:\n%s", name, out)
		} else if rows, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(rows) != len(findings)+1 {
			t.Errorf("report %s -o csv: %d rows (%v), want a header and %d findings", name, len(rows), err, len(findings))
		}
		if out := w.ok(t, "report", name, "-o", "md"); !strings.HasPrefix(out, "# nhisync report "+name) {
			t.Errorf("report %s -o md:\n%s", name, out)
		}
	}

	// The demo estate plants ownerless NHIs: orphans finds them, in a table
	// grouped by severity, and --fail-on high turns that into exit 1.
	out := w.ok(t, "report", "orphans")
	if !strings.HasPrefix(out, "HIGH (") || !strings.Contains(out, "no-owner") || !strings.Contains(out, "OWASP-NHI1") {
		t.Errorf("report orphans:\n%s", out)
	}
	if r := w.run(t, "report", "orphans", "--fail-on", "high"); r.code != exitFailed || !strings.Contains(r.stderr, "--fail-on high") {
		t.Errorf("report orphans --fail-on high: exit %d, stderr %q; want 1 naming --fail-on", r.code, r.stderr)
	}
	// --where selects records: an owner nobody has cannot match.
	if out := w.ok(t, "report", "orphans", "--where", `owner == "nobody@example.com"`, "--fail-on", "low"); !strings.Contains(out, "no findings") {
		t.Errorf("report orphans --where on no record:\n%s", out)
	}
	if out := w.ok(t, "report", "coverage", "--system", "cmdb"); strings.Contains(out, "policy") && strings.Contains(out, "unmatched") {
		t.Errorf("report coverage --system cmdb shows other systems:\n%s", out)
	}

	for _, bad := range [][]string{
		{"report", "orphans", "--fail-on", "urgent"},
		{"report", "orphans", "-o", "xml"},
		{"report", "orphans", "--kind", "robot"},
		{"report", "orphans", "--where", "owner +"},
		{"report", "nonsense"},
	} {
		if r := w.run(t, bad...); r.code != exitInvalid || r.stderr == "" {
			t.Errorf("nhisync %s: exit %d, stderr %q; want 2 with a message", strings.Join(bad, " "), r.code, r.stderr)
		}
	}
}
