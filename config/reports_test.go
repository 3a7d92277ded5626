package config

import (
	"strings"
	"testing"
	"time"
)

// TestMaxAgeAndReports covers the settings only reports read: a time
// field's max_age and reports.hygiene.overprivileged, valid and invalid
// (with the line and what to change).
func TestMaxAgeAndReports(t *testing.T) {
	rotated := "      last_rotated: { type: time, max_age: 90d }"
	cfg, err := Parse([]byte(edited(map[int]string{7: "      owner: { type: string }\n" + rotated},
		"reports:", "  hygiene:", `    overprivileged: 'owner == ""'`)), "nhisync.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kinds["service_account"].Field("last_rotated").MaxAge; got != 90*24*time.Hour {
		t.Errorf("max_age = %s, want 2160h", got)
	}
	if cfg.Reports.Overprivileged != `owner == ""` || len(cfg.Reports.OverprivilegedKinds) != 1 {
		t.Errorf("reports = %+v", cfg.Reports)
	}

	for _, c := range []struct {
		name, src, want string
	}{
		{"max_age on a string", edited(map[int]string{7: "      owner: { type: string, max_age: 90d }"}),
			"nhisync.yaml:7: kinds.service_account.fields.owner.max_age: max_age only applies to time fields"},
		{"max_age not a duration", edited(map[int]string{7: "      owner: { type: string }\n      last_rotated: { type: time, max_age: soon }"}),
			"nhisync.yaml:8: kinds.service_account.fields.last_rotated.max_age: \"soon\" is not a positive duration"},
		{"overprivileged compiles for no kind", edited(nil, "reports:", "  hygiene:", `    overprivileged: '"admin" in grants'`),
			"nhisync.yaml:17: reports.hygiene.overprivileged: "},
		{"unknown key under reports", edited(nil, "reports:", "  hygeine: {}"),
			`nhisync.yaml:16: reports: unknown key "hygeine"`},
	} {
		_, err := Parse([]byte(c.src), "nhisync.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}
