package rule_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/rule"
)

// FuzzRuleCheck evaluates rules on arbitrary field values: a result or an
// EINVALID error naming the rule, never a panic.
func FuzzRuleCheck(f *testing.F) {
	kind := conntest.Kind()
	var rules []*rule.Rule
	for i, expr := range []string{
		`owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')`,
		`size(classification) < 5 || "pci" in classification`,
		`lifecycle != "decommissioned" || owner != ""`,
		`name.startsWith(platform) || system == "idp" || name.size() > 3`,
		`last_rotated == timestamp("1970-01-01T00:00:00Z") || last_rotated < timestamp("2100-01-01T00:00:00Z")`,
	} {
		r, err := rule.Compile(kind, "r"+string(rune('0'+i)), expr)
		if err != nil {
			f.Fatal(err)
		}
		rules = append(rules, r)
	}
	f.Add("alice@example.com", "bot", "aws", "pci,pii", "active", "2026-01-02T03:04:05Z", "idp")
	f.Add("", "", "", "", "", "", "")
	f.Add("x\x00", "b\xffd", "\u202e", ",,,", "decommissioned", "not a time", "cmdb")
	f.Fuzz(func(t *testing.T, owner, name, platform, tags, lifecycle, rotated, system string) {
		fields := map[string]nhisync.Value{
			"owner": nhisync.Str(owner), "name": nhisync.Str(name), "platform": nhisync.Str(platform),
			"classification": nhisync.SetOf(strings.Split(tags, ",")...), "lifecycle": nhisync.Str(lifecycle),
			"last_rotated": nhisync.TypeTime.Canonical(nhisync.Str(rotated)),
		}
		for _, r := range rules {
			if _, err := r.Check(fields, system); err != nil && (nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), r.Name())) {
				t.Fatalf("%s: %v", r.Name(), err)
			}
		}
	})
}
