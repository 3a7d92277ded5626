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
			// SPEC §6: every finding has these keys, empty where they do not apply.
			requireKeys(t, "finding", f.(obj), "type", "kind", "record", "system", "detail", "severity", "frameworks")
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
	// With -o json the failure is not a second JSON document on stdout.
	if r := w.run(t, "report", "orphans", "--fail-on", "high", "-o", "json"); r.code != exitFailed || strings.Count(r.stdout, `"findings"`) != 1 || strings.Contains(r.stdout, `"error"`) {
		t.Errorf("report orphans --fail-on high -o json: exit %d, stdout %.200q", r.code, r.stdout)
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

// TestReportEvidenceCommand writes the pack of the synced demo estate as
// HTML and as JSON, and refuses unclear requests.
func TestReportEvidenceCommand(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	out := w.path("pack.html")
	if msg := w.ok(t, "report", "evidence", "--out", out, "--since", "2020-01-01"); !strings.Contains(msg, "Wrote "+out) {
		t.Errorf("report evidence: %q", msg)
	}
	html := readFile(t, out)
	for _, want := range []string{"Content-Security-Policy", `id="scope"`, `data-chart="coverage"`, "<svg", "OWASP-NHI1", "verify_inclusion.py", "BEGIN", "@media print"} {
		if want == "BEGIN" {
			want = "-----BEGIN PUBLIC KEY-----"
		}
		if !strings.Contains(html, want) {
			t.Errorf("the pack lacks %q", want)
		}
	}
	var ev obj
	w.json(t, &ev, "report", "evidence")
	requireKeys(t, "evidence", ev, "window", "scope", "coverage", "findings", "summary", "by_framework", "changes", "decisions", "open", "audit")
	requireKeys(t, "evidence.audit", objOf(t, "evidence", ev, "audit"), "checkpoint", "verifier_key", "proof", "commands", "script", "verified")
	for _, bad := range [][]string{
		{"report", "evidence"},
		{"report", "evidence", "--out", out, "-o", "json"},
		{"report", "evidence", "--out", out, "--since", "last tuesday"},
		{"report", "evidence", "--out", out, "-o", "csv"},
	} {
		if r := w.run(t, bad...); r.code != exitInvalid || r.stderr == "" {
			t.Errorf("nhisync %s: exit %d, stderr %q; want 2 with a message", strings.Join(bad, " "), r.code, r.stderr)
		}
	}
}

// TestAuditExportOCSF exports the demo estate's log as OCSF events.
func TestAuditExportOCSF(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	plain := strings.Split(strings.TrimSpace(w.ok(t, "audit", "export")), "\n")
	lines := strings.Split(strings.TrimSpace(w.ok(t, "audit", "export", "--format", "ocsf")), "\n")
	if len(lines) != len(plain) || len(lines) < 10 {
		t.Fatalf("%d OCSF events for %d audit entries", len(lines), len(plain))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"class_uid":3004,`) || !strings.Contains(l, `"metadata":{"version":"1.`) {
			t.Fatalf("not an OCSF Entity Management event: %s", l)
		}
	}
	if r := w.run(t, "audit", "export", "--format", "cef"); r.code != exitInvalid || !strings.Contains(r.stderr, "ocsf") {
		t.Errorf("audit export --format cef: exit %d %q", r.code, r.stderr)
	}
}
