package engine_test

import (
	"slices"
	"strings"
	"testing"
)

// validateOnceConfig has a rule reading two fields (team-owner) and one
// reading the proposing system (label-system), over three systems that
// all map every field.
const validateOnceConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [platform, name]
    create_from: [a]
    fields:
      name:     { type: string, required: true }
      platform: { type: string, required: true }
      owner:    { type: string }
      team:     { type: string }
      label:    { type: string }
    rules:
      - name: team-owner
        check: owner == "" || team != "bad"
      - name: label-system
        check: label == "" || system != "c"
systems:
  a:
    connector: file
    path: a.json
    kind: sa
    id: id
    fields: { name: name, platform: platform, owner: owner, team: team, label: label }
  b:
    connector: file
    path: b.json
    kind: sa
    id: id
    fields: { name: name, platform: platform, owner: owner, team: team, label: label }
  c:
    connector: file
    path: c.json
    kind: sa
    id: id
    fields: { name: name, platform: platform, owner: owner, team: team, label: label }
`

// TestRulesRunPerProposalOfEqualValues: systems proposing one value of a
// field share the checks of the value alone, but not the rules: a rule
// reading another field the systems hold differently, or the proposing
// system, fails for one proposal of the value and passes for another. b
// alone holds team "bad": its owner and its team fail team-owner, a's and
// c's equal values pass. label-system fails c's label only, the value a
// and b propose too.
func TestRulesRunPerProposalOfEqualValues(t *testing.T) {
	w := newWorld(t, validateOnceConfig, map[string][]map[string]any{
		"a.json": {sa("a1", "aws", "bot", "owner", "o@example.com", "team", "good", "label", "L")},
		"b.json": {sa("b1", "aws", "bot", "owner", "o@example.com", "team", "bad", "label", "L")},
		"c.json": {sa("c1", "aws", "bot", "owner", "o@example.com", "team", "good", "label", "L")},
	})
	sum := w.sync()
	var got []string
	for _, q := range w.quarantine("open") {
		got = append(got, q.Field+" "+q.System+" "+q.Rule)
	}
	slices.Sort(got)
	want := []string{"label c label-system", "owner b team-owner", "team b team-owner"}
	if !slices.Equal(got, want) {
		t.Fatalf("quarantined:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), actions(sum))
	}
	for field, want := range map[string]string{"owner": "o@example.com", "team": "good", "label": "L"} {
		if got := w.golden("sa", field, "aws", "bot"); got != want {
			t.Errorf("golden %s = %q, want %q", field, got, want)
		}
	}
}

// TestRulesRememberedAcrossRecords: a pass remembers the values a rule not
// reading the system passed (ruleMemo), never more: bot2's owner is bot1's,
// which passed team-owner, but its team is "bad", so it fails; c's label
// is the one a's passed label-system with, but that rule reads the system.
func TestRulesRememberedAcrossRecords(t *testing.T) {
	w := newWorld(t, validateOnceConfig, map[string][]map[string]any{
		"a.json": {
			sa("a1", "aws", "bot1", "owner", "o@example.com", "team", "good", "label", "L"),
			sa("a2", "aws", "bot2", "owner", "o@example.com", "team", "bad", "label", "L"),
		},
		"b.json": {},
		"c.json": {sa("c1", "aws", "bot1", "owner", "o@example.com", "team", "good", "label", "L")},
	})
	sum := w.sync()
	var got []string
	for _, q := range w.quarantine("open") {
		got = append(got, q.Record+" "+q.Field+" "+q.System+" "+q.Rule)
	}
	slices.Sort(got)
	want := []string{"aws/bot1 label c label-system", "aws/bot2 owner a team-owner", "aws/bot2 team a team-owner"}
	if !slices.Equal(got, want) {
		t.Fatalf("quarantined:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), actions(sum))
	}
}
