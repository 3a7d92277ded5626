package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// drift lists the stored drift as "system record field reason" lines.
func (w *world) drift() []string {
	items, err := w.engine().Drift(context.Background())
	if err != nil {
		w.t.Fatalf("drift: %v", err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s %s/%s %s %s", it.System, it.Kind, it.Record, it.Field, it.Reason))
	}
	return out
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestDriftListsWhatIsHeldBack reproduces observation 4 of issue 5: a
// value refused under on_refused: report, a held or rejected approval, a
// quarantined value, a failing write and a read-only system all leave a
// system holding another value than golden, and Drift names each with
// its reason; a converged estate has none.
func TestDriftListsWhatIsHeldBack(t *testing.T) {
	cfg := baseConfig + "    on_refused: report\n" +
		"  hr:\n    connector: file\n    path: hr.json\n    kind: service_account\n    id: id\n    direction: read\n    fields: { name: name, platform: platform, owner: owner }\n"
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot"), sa("i2", "aws", "bot2")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "cmdb@example.com", "status", "active"), sa("c2", "aws", "bot2", "owner", "not an email")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com", "policy", "strict")},
		"hr.json":      {sa("h1", "aws", "bot", "owner", "hr@example.com")},
	})
	failIdp := true
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name == "idp" {
			return &failingApply{Connector: c, fail: failIdp}
		}
		return c
	}
	w.sync()
	got := w.drift()
	for _, want := range []string{
		"catalog service_account/aws/bot owner reported",
		"cmdb service_account/aws/bot policy_state held",
		"cmdb service_account/aws/bot2 owner quarantined",
		"idp service_account/aws/bot lifecycle failing",
		"hr service_account/aws/bot owner read-only",
	} {
		if !hasLine(got, want) {
			t.Errorf("drift lacks %q; got:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 5 {
		t.Errorf("drift has %d items, want 5:\n%s", len(got), strings.Join(got, "\n"))
	}
	sum := w.engine().SummarizeDrift(mustDrift(t, w))
	if sum.Fields != 5 || strings.Join(sum.Systems, ",") != "idp,cmdb,catalog,hr" || sum.ByReason[engine.DriftReported] != 1 {
		t.Errorf("summary = %+v", sum)
	}

	// A rejected write stays drift, named as rejected.
	as := w.approvals(nhisync.StatusPending)
	if len(as) != 1 {
		t.Fatalf("approvals = %+v", as)
	}
	if _, err := w.engine().Reject(context.Background(), as[0].ID, "dana"); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if got := w.drift(); !hasLine(got, "cmdb service_account/aws/bot policy_state rejected") {
		t.Errorf("after rejection, drift:\n%s", strings.Join(got, "\n"))
	}
}

// TestDriftNamesOpenConflicts: writes held by an open conflict are drift
// until a person resolves it, and then there is none.
func TestDriftNamesOpenConflicts(t *testing.T) {
	w := newWorld(t, manualConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "n", "owner": "ann"}},
		"b.json": {{"id": "1", "name": "n", "owner": "bob"}},
		"c.json": {{"id": "1", "name": "n"}},
	})
	w.sync()
	got := w.drift()
	for _, want := range []string{"a app/n owner conflicted", "b app/n owner conflicted"} {
		if !hasLine(got, want) {
			t.Errorf("drift lacks %q; got:\n%s", want, strings.Join(got, "\n"))
		}
	}
	cs := w.conflicts(nhisync.StatusOpen)
	if _, err := w.engine().ResolveConflict(context.Background(), cs[0].ID, "b", "", "carol"); err != nil {
		t.Fatal(err)
	}
	if got := w.drift(); !hasLine(got, "a app/n owner queued") || len(got) != 2 {
		t.Errorf("after resolving, before the writes go out, drift:\n%s", strings.Join(got, "\n"))
	}
	w.sync()
	if got := w.drift(); len(got) != 0 {
		t.Errorf("converged estate has drift:\n%s", strings.Join(got, "\n"))
	}
}

func mustDrift(t *testing.T, w *world) []engine.DriftItem {
	t.Helper()
	items, err := w.engine().Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// TestFirstSightingIsNoMerge: the quickstart's first pass said "merged
// 700" (issue 5, point 9) because a set seen for the first time was
// audited as a merge. Taken into an empty golden value with nothing to
// combine it is accepted; only combining counts as merged.
func TestFirstSightingIsNoMerge(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot"), sa("i2", "aws", "bot2")},
		"cmdb.json":    {sa("c1", "aws", "bot", "tags", []any{"pii"}), sa("c2", "aws", "bot2", "tags", []any{"pii"})},
		"catalog.json": {sa("k1", "aws", "bot", "tags", []any{"pii"}), sa("k2", "aws", "bot2", "tags", []any{"internal"})},
	})
	sum := w.sync()
	if sum.Merged != 2 {
		t.Errorf("first pass merged %d, want 2 (bot2's two sets combined; bot's agreeing sets are no merge)\n%s", sum.Merged, actions(sum))
	}
	if got := w.golden("service_account", "classification", "aws", "bot"); got != "pii" {
		t.Errorf("bot classification = %q", got)
	}
	if got := w.golden("service_account", "classification", "aws", "bot2"); got != "internal, pii" {
		t.Errorf("bot2 classification = %q", got)
	}
	accepted := 0
	for _, ev := range sum.Events {
		if ev.Action == nhisync.ActAccepted && ev.Field == "classification" {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("classification accepted %d times, want once (bot)\n%s", accepted, actions(sum))
	}
	// A later addition to a non-empty set is a merge.
	w.edit("catalog.json", "k1", map[string]any{"tags": []any{"pii", "pci"}})
	if sum := w.sync(); sum.Merged != 1 {
		t.Errorf("an added tag merged %d, want 1\n%s", sum.Merged, actions(sum))
	}
}
