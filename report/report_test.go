package report_test

import (
	"bytes"
	"encoding/csv"
	"regexp"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/report"
)

// TestFrameworkIDs checks every finding type's ids against the one list
// and the id formats SPEC §6 names.
func TestFrameworkIDs(t *testing.T) {
	idRE := regexp.MustCompile(`^(OWASP-NHI([1-9]|10)|NIST-CSF-(GV|ID|PR|DE|RS|RC)\.[A-Z]{2}-\d{2})$`)
	seen := map[string]bool{}
	for _, f := range report.Frameworks {
		if !idRE.MatchString(f.ID) || f.Title == "" || seen[f.ID] {
			t.Errorf("framework %q (%q): bad id, no title or listed twice", f.ID, f.Title)
		}
		seen[f.ID] = true
	}
	names := map[string]bool{}
	for _, typ := range report.Types {
		if names[typ.Name] {
			t.Errorf("type %s listed twice", typ.Name)
		}
		names[typ.Name] = true
		if len(typ.Frameworks) == 0 {
			t.Errorf("type %s carries no framework id", typ.Name)
		}
		for _, id := range typ.Frameworks {
			if !seen[id] {
				t.Errorf("type %s carries %q, which is not in report.Frameworks", typ.Name, id)
			}
		}
		if !strings.Contains(strings.Join(report.Names, " "), typ.Report) {
			t.Errorf("type %s belongs to no report (%q)", typ.Name, typ.Report)
		}
	}
}

// TestFilters runs one report over an estate of two NHIs with --kind,
// --system and --where.
func TestFilters(t *testing.T) {
	e := cleanEstate().set("idp.json", "i1", "owner", nil).set("cat.json", "c1", "steward", nil).
		add("idp.json", map[string]any{"id": "i2", "name": "ci-bot", "grants": []any{"admin"}}).
		add("cat.json", map[string]any{"id": "c2", "name": "ci-bot", "env": "prod"})
	w := newWorld(t, estateYAML, e)
	w.sync()
	all := of(w.report("orphans", report.Options{}), "no-owner")
	if len(all) != 2 {
		t.Fatalf("no-owner findings %q, want both NHIs", all)
	}
	got := of(w.report("orphans", report.Options{Where: `"admin" in entitlements`}), "no-owner")
	if len(got) != 1 || !strings.Contains(got[0], "ci-bot") {
		t.Errorf("--where admin: %q, want ci-bot only", got)
	}
	if got := w.report("orphans", report.Options{Kind: "person"}); len(got.Findings) != 0 {
		t.Errorf("--kind person: %s", details(got))
	}
	cov := w.report("coverage", report.Options{System: "cat"})
	for _, f := range cov.Findings {
		if f.System != "cat" {
			t.Errorf("--system cat kept %s", f.Detail)
		}
	}
	if cov := w.report("coverage", report.Options{Where: "true"}); len(cov.Findings) != 0 {
		t.Errorf("--where keeps findings about no record:\n%s", details(cov))
	}
	for _, opt := range []report.Options{{Kind: "robot"}, {System: "crm"}, {Where: "owner +"}, {Where: "owner"}} {
		if _, err := report.New(w.cfg, w.store, opt); err == nil {
			t.Errorf("report.New(%+v) accepted bad options", opt)
		}
	}
	r, _ := report.New(w.cfg, w.store, report.Options{})
	if _, err := r.Run(t.Context(), "everything"); err == nil {
		t.Error("an unknown report ran")
	}
}

func TestFormats(t *testing.T) {
	w := newWorld(t, estateYAML, cleanEstate().set("idp.json", "i1", "owner", nil).set("cat.json", "c1", "steward", "a|b"))
	w.sync()
	res := w.report("orphans", report.Options{})
	if len(res.Findings) == 0 {
		t.Fatal("no findings to format")
	}
	var b bytes.Buffer
	if err := report.WriteCSV(&b, res); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != len(res.Findings)+1 || rows[1][0] != string(res.Findings[0].Severity) {
		t.Errorf("csv rows %q (%v)", rows, err)
	}
	b.Reset()
	if err := report.WriteMarkdown(&b, res); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "a\\|b") || !strings.Contains(md, "## medium") {
		t.Errorf("markdown does not escape | or group by severity:\n%s", md)
	}
	if res.Worst() != report.Medium {
		t.Errorf("worst = %s", res.Worst())
	}
}
