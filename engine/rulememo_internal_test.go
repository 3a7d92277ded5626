package engine

import (
	"testing"

	"github.com/nhisync/nhisync"
)

// countedRule is a rule passing every value of its fields but "bad",
// counting the times it runs.
type countedRule struct {
	fields []string
	system bool
	runs   int
}

func (r *countedRule) Name() string      { return "counted" }
func (r *countedRule) Fields() []string  { return r.fields }
func (r *countedRule) ReadsSystem() bool { return r.system }
func (r *countedRule) Check(fields map[string]nhisync.Value, system string) (bool, error) {
	r.runs++
	for _, name := range r.fields {
		if fields[name].Text() == "bad" {
			return false, nil
		}
	}
	return !r.system || system != "c", nil
}

// TestRuleMemo: a rule not reading the system runs once per values of its
// fields that it passes, and again for any other values (a field it reads
// besides the one proposed among them); one reading the system, and
// values it failed, run every time, and fail every time.
func TestRuleMemo(t *testing.T) {
	owner := &countedRule{fields: []string{"owner", "team"}}
	label := &countedRule{fields: []string{"label"}, system: true}
	kind := &nhisync.Kind{Name: "sa", Rules: []nhisync.Rule{owner, label}}
	vd := validator{kind: kind, passed: &ruleMemo{}}
	check := func(field, system string, view map[string]nhisync.Value) string {
		t.Helper()
		rule, _, err := vd.checkRules(&nhisync.Field{Name: field}, system, view[field], func() map[string]nhisync.Value { return view })
		if err != nil {
			t.Fatal(err)
		}
		return rule
	}
	good := map[string]nhisync.Value{"owner": nhisync.Str("o@example.com"), "team": nhisync.Str("good"), "label": nhisync.Str("L")}
	bad := map[string]nhisync.Value{"owner": nhisync.Str("o@example.com"), "team": nhisync.Str("bad"), "label": nhisync.Str("L")}
	steps := []struct {
		field, system string
		view          map[string]nhisync.Value
		fails         string
		ownerRuns     int
		labelRuns     int
	}{
		{"owner", "a", good, "", 1, 0},
		{"owner", "b", good, "", 1, 0},        // remembered, whoever proposes
		{"team", "a", good, "", 1, 0},         // the same values, for another field it reads
		{"owner", "a", bad, "counted", 2, 0},  // owner alike, team not
		{"owner", "a", bad, "counted", 3, 0},  // a failure is not remembered
		{"label", "a", good, "", 3, 1},        // reads the system: runs
		{"label", "a", good, "", 3, 2},        // every time
		{"label", "c", good, "counted", 3, 3}, // and fails for c
		{"owner", "c", good, "", 3, 3},        // still remembered
	}
	for i, s := range steps {
		if got := check(s.field, s.system, s.view); got != s.fails {
			t.Fatalf("step %d: %s from %s fails %q, want %q", i, s.field, s.system, got, s.fails)
		}
		if owner.runs != s.ownerRuns || label.runs != s.labelRuns {
			t.Fatalf("step %d: rules ran %d and %d times, want %d and %d", i, owner.runs, label.runs, s.ownerRuns, s.labelRuns)
		}
	}
	// Without a memo (explain, what-if) every rule runs.
	vd.passed = nil
	check("owner", "a", good)
	if owner.runs != 4 {
		t.Fatalf("without a memo the rule ran %d times in all, want 4", owner.runs)
	}
}

// TestRuleMemoBound: the memo stops growing at ruleMemoBytes, and keeps
// answering for what it holds.
func TestRuleMemoBound(t *testing.T) {
	r := &countedRule{fields: []string{"owner"}}
	kind := &nhisync.Kind{Name: "sa", Rules: []nhisync.Rule{r}}
	m := &ruleMemo{}
	first := m.key(r, map[string]nhisync.Value{"owner": nhisync.Str("first")})
	m.add(kind, 0, first)
	big := make([]byte, ruleMemoBytes)
	for i := range big {
		big[i] = 'x'
	}
	k := m.key(r, map[string]nhisync.Value{"owner": nhisync.Str(string(big))})
	m.add(kind, 0, k)
	if m.has(kind, 0, k) {
		t.Fatal("the memo took a value past its bound")
	}
	if !m.has(kind, 0, m.key(r, map[string]nhisync.Value{"owner": nhisync.Str("first")})) {
		t.Fatal("the memo lost a value it held")
	}
	if m.has(kind, 0, m.key(r, map[string]nhisync.Value{"owner": nhisync.Str("second")})) {
		t.Fatal("the memo holds a value never added")
	}
}
