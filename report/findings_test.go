package report_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync/report"
)

// findingCase is the smallest estate that triggers one finding type, or
// one that must not (want empty).
type findingCase struct {
	name   string
	report string
	typ    string
	estate func() estate
	// after runs after the first sync (more syncs, a clock step).
	after func(w *world)
	want  []string
}

func runCases(t *testing.T, cases []findingCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.typ+"/"+c.name, func(t *testing.T) {
			w := newWorld(t, estateYAML, c.estate())
			w.sync()
			if c.after != nil {
				c.after(w)
			}
			res := w.report(c.report, report.Options{})
			if got := of(res, c.typ); !slices.Equal(got, c.want) {
				t.Errorf("%s findings:\n got %q\nwant %q\nall findings:\n%s", c.typ, got, c.want, details(res))
			}
			for _, f := range res.Findings {
				if strings.Contains(f.Detail, "s3cr3t") {
					t.Errorf("a finding shows a sensitive value: %s", f.Detail)
				}
			}
		})
	}
}

func TestOrphans(t *testing.T) {
	runCases(t, []findingCase{
		{name: "no owner anywhere", report: "orphans", typ: "no-owner",
			estate: func() estate {
				return cleanEstate().set("idp.json", "i1", "owner", nil).set("cat.json", "c1", "steward", nil)
			},
			want: []string{"no-owner service_account/pay-bot .owner"}},
		{name: "owner in one system only", report: "orphans", typ: "no-owner",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "owner", nil) }},
		{name: "owner no person record knows", report: "orphans", typ: "unknown-owner",
			estate: func() estate {
				return cleanEstate().set("idp.json", "i1", "owner", "bob@example.com").set("cat.json", "c1", "steward", "bob@example.com")
			},
			want: []string{"unknown-owner service_account/pay-bot .owner"}},
		{name: "owner is a person", report: "orphans", typ: "unknown-owner", estate: cleanEstate},
		{name: "owner departed", report: "orphans", typ: "departed-owner",
			estate: func() estate { return cleanEstate().set("hr.json", "p1", "status", "departed") },
			want:   []string{"departed-owner service_account/pay-bot .owner"}},
		{name: "owner active", report: "orphans", typ: "departed-owner", estate: cleanEstate},
		{name: "application retired, NHI active", report: "orphans", typ: "retired-application",
			estate: func() estate { return cleanEstate().set("apps.json", "a1", "status", "decommissioned") },
			want:   []string{"retired-application service_account/pay-bot .application"}},
		{name: "application retired, NHI retired too", report: "orphans", typ: "retired-application",
			estate: func() estate {
				return cleanEstate().set("apps.json", "a1", "status", "decommissioned").set("idp.json", "i1", "status", "decommissioned")
			}},
	})
}

func TestStale(t *testing.T) {
	old := t0.Add(-100 * 24 * time.Hour).Format(time.RFC3339)
	runCases(t, []findingCase{
		{name: "setter gone for longer than stale_after", report: "stale", typ: "stale-value", estate: cleanEstate,
			after: func(w *world) {
				w.write(estate{"cat.json": {}})
				w.sync()
				w.clock.Advance(31 * 24 * time.Hour)
			},
			want: []string{"stale-value service_account/pay-bot @cat .owner"}},
		{name: "setter still holds it", report: "stale", typ: "stale-value", estate: cleanEstate,
			after: func(w *world) {
				w.clock.Advance(31 * 24 * time.Hour)
				w.sync()
			}},
		{name: "rotation older than max_age", report: "stale", typ: "max-age",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "rotated", old) },
			want:   []string{"max-age service_account/pay-bot @idp .last_rotated"}},
		{name: "rotation within max_age", report: "stale", typ: "max-age", estate: cleanEstate},
		{name: "old rotation of a retired NHI", report: "stale", typ: "max-age",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "rotated", old, "status", "decommissioned") }},
		{name: "systems unread for more than 10 polls", report: "stale", typ: "system-unread", estate: cleanEstate,
			after: func(w *world) { w.clock.Advance(10*time.Hour + time.Minute) },
			want: []string{"system-unread application @apps", "system-unread person @hr",
				"system-unread service_account @cat", "system-unread service_account @idp"}},
		{name: "systems read within 10 polls", report: "stale", typ: "system-unread", estate: cleanEstate,
			after: func(w *world) { w.clock.Advance(9 * time.Hour) }},
	})
}

func TestCoverage(t *testing.T) {
	runCases(t, []findingCase{
		{name: "catalog lacks a record", report: "coverage", typ: "system-coverage",
			estate: func() estate {
				return cleanEstate().add("idp.json", map[string]any{"id": "i2", "name": "ci-bot", "owner": "alice@example.com"})
			},
			want: []string{"system-coverage service_account @cat"}},
		{name: "every system holds every record", report: "coverage", typ: "system-coverage", estate: cleanEstate},
		{name: "only the catalog knows an NHI", report: "coverage", typ: "unmatched",
			estate: func() estate {
				return cleanEstate().add("cat.json", map[string]any{"id": "c2", "name": "ghost-bot", "steward": "alice@example.com", "env": "prod"})
			},
			want: []string{"unmatched service_account/ghost-bot @cat"}},
		{name: "every catalog entry is known", report: "coverage", typ: "unmatched", estate: cleanEstate},
		{name: "two catalog entries for one NHI", report: "coverage", typ: "disputed",
			estate: func() estate {
				return cleanEstate().add("cat.json", map[string]any{"id": "c2", "name": "PAY-BOT", "steward": "alice@example.com", "env": "prod"})
			},
			want: []string{"disputed service_account/PAY-BOT @cat"}},
		{name: "one catalog entry per NHI", report: "coverage", typ: "disputed", estate: cleanEstate},
		{name: "no system gives an environment", report: "coverage", typ: "empty-field",
			estate: func() estate {
				return cleanEstate().set("cat.json", "c1", "env", nil).set("idp.json", "i1", "env", nil)
			},
			want: []string{"empty-field service_account .environment"}},
		{name: "every field has a value somewhere", report: "coverage", typ: "empty-field", estate: cleanEstate},
	})
}

func TestHygiene(t *testing.T) {
	runCases(t, []findingCase{
		{name: "used by two applications", report: "hygiene", typ: "reuse",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "used_by", []any{"payments", "billing"}) },
			want:   []string{"reuse service_account/pay-bot .used_by"}},
		{name: "used by one application", report: "hygiene", typ: "reuse", estate: cleanEstate},
		{name: "systems place it in two environments", report: "hygiene", typ: "cross-environment",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "env", "dev") },
			want:   []string{"cross-environment service_account/pay-bot .environment"}},
		{name: "one environment", report: "hygiene", typ: "cross-environment", estate: cleanEstate},
		{name: "a person signs in with it", report: "hygiene", typ: "human-use",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "interactive", true) },
			want:   []string{"human-use service_account/pay-bot .interactive"}},
		{name: "nobody signs in with it", report: "hygiene", typ: "human-use", estate: cleanEstate},
		{name: "admin grant", report: "hygiene", typ: "overprivileged",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "grants", []any{"read", "admin"}) },
			want:   []string{"overprivileged service_account/pay-bot"}},
		{name: "read grant", report: "hygiene", typ: "overprivileged", estate: cleanEstate},
	})
}

// TestCleanEstateHasNoFindings keeps the base of the cases above honest:
// a case that must not trigger only proves something if nothing else does.
func TestCleanEstateHasNoFindings(t *testing.T) {
	w := newWorld(t, estateYAML, cleanEstate())
	w.sync()
	for _, name := range report.Names {
		if res := w.report(name, report.Options{}); len(res.Findings) > 0 {
			t.Errorf("report %s on the clean estate:\n%s", name, details(res))
		}
	}
}

func TestDrift(t *testing.T) {
	runCases(t, []findingCase{
		{name: "refused and left as is (on_refused: report)", report: "drift", typ: "drift",
			estate: func() estate { return cleanEstate().set("idp.json", "i1", "env", "dev") },
			want:   []string{"drift service_account/pay-bot @idp .environment"}},
		{name: "in step", report: "drift", typ: "drift", estate: cleanEstate},
	})
	// The finding says why, in the engine's words, and names the values.
	w := newWorld(t, estateYAML, cleanEstate().set("idp.json", "i1", "env", "dev"))
	w.sync()
	res := w.report("drift", report.Options{})
	if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Detail, `"dev"`) || !strings.Contains(res.Findings[0].Detail, "on_refused: report") {
		t.Errorf("drift detail:\n%s", details(res))
	}
}
