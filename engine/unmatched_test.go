package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

const strayConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [platform, name]
    create_from: [idp]
    fields:
      name:     { type: string }
      platform: { type: string }
      owner:    { type: string }
systems:
  idp:    { connector: file, path: idp.json, kind: sa, id: id, fields: { name: name, platform: platform } }
  policy: { connector: file, path: policy.json, kind: sa, id: id, fields: { name: name, platform: platform, owner: owner } }
`

// unmatchedIDs lists the open unmatched and disputed records.
func (w *world) unmatchedIDs(dismissed bool) []string {
	us, err := w.engine().Unmatched(context.Background(), "", dismissed)
	if err != nil {
		w.t.Fatalf("unmatched: %v", err)
	}
	var out []string
	for _, u := range us {
		out = append(out, u.ID+" "+u.Key+" "+u.Status)
	}
	return out
}

// TestUnmatchedStayVisible reproduces observation 8 of issue 5: an NHI no
// registry knows was reported once by the pass that saw it and then could
// be found nowhere. It stays listed, with when it was first and last
// seen, until it links, vanishes or a person dismisses it; the
// dismissal is audited; a change in the system opens it again.
func TestUnmatchedStayVisible(t *testing.T) {
	w := newWorld(t, strayConfig, map[string][]map[string]any{
		"idp.json":    {sa("1", "aws", "bot")},
		"policy.json": {sa("p1", "aws", "bot"), sa("p2", "aws", "ghost"), sa("p3", "gcp", "shadow")},
	})
	w.sync()
	w.sync()
	sum := w.sync()
	if sum.Unmatched != 0 || sum.OpenUnmatched != 2 {
		t.Fatalf("third pass: unmatched %d, open %d", sum.Unmatched, sum.OpenUnmatched)
	}
	got := strings.Join(w.unmatchedIDs(false), "\n")
	if got != "policy/p2 aws/ghost unmatched\npolicy/p3 gcp/shadow unmatched" {
		t.Fatalf("unmatched after three passes:\n%s", got)
	}
	us, _ := w.engine().Unmatched(context.Background(), "policy", false)
	if u := us[0]; u.Kind != "sa" || u.NativeID != "p2" || !u.FirstSeen.Equal(t0) || !u.LastSeen.After(u.FirstSeen) || !strings.Contains(u.Reason, "policy is not in create_from of sa") {
		t.Errorf("unmatched item = %+v", u)
	}

	e := w.engine()
	if _, err := e.DismissUnmatched(context.Background(), "policy", "p1", "erin"); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Errorf("dismissing a linked record: %v", err)
	}
	if _, err := e.DismissUnmatched(context.Background(), "policy", "nope", "erin"); nhisync.ErrorCode(err) != nhisync.ENOTFOUND {
		t.Errorf("dismissing an unknown record: %v", err)
	}
	if _, err := e.DismissUnmatched(context.Background(), "policy", "p3", "erin"); err != nil {
		t.Fatal(err)
	}
	sum = w.sync()
	if got := strings.Join(w.unmatchedIDs(false), "\n"); got != "policy/p2 aws/ghost unmatched" || sum.OpenUnmatched != 1 {
		t.Fatalf("after dismissing p3 and a pass (open %d):\n%s", sum.OpenUnmatched, got)
	}
	if got := strings.Join(w.unmatchedIDs(true), "\n"); !strings.Contains(got, "policy/p3 gcp/shadow dismissed") {
		t.Fatalf("dismissed record not listed with dismissed:\n%s", got)
	}
	var audited bool
	_ = w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action == nhisync.ActRecordDismissed && e.Actor == nhisync.Person("erin") && e.System == "policy" && e.New.Text() == "p3" {
			audited = true
		}
		return nil
	})
	if !audited {
		t.Error("the dismissal is not in the audit log with the person's name")
	}

	// A change in the system opens it again; a golden record appearing
	// links the other.
	w.edit("policy.json", "p3", map[string]any{"owner": "o@x"})
	w.put("idp.json", []map[string]any{sa("1", "aws", "bot"), sa("2", "aws", "ghost")})
	sum = w.sync()
	if got := strings.Join(w.unmatchedIDs(false), "\n"); got != "policy/p3 gcp/shadow unmatched" || sum.Unmatched != 1 {
		t.Fatalf("after p3 changed and ghost appeared (unmatched %d):\n%s", sum.Unmatched, got)
	}
}

// TestNoCreateFromExplainsUnmatched: a fresh config with no create_from
// leaves every record unmatched; the reason says why and what to add.
func TestNoCreateFromExplainsUnmatched(t *testing.T) {
	w := newWorld(t, strings.Replace(strayConfig, "    create_from: [idp]\n", "", 1), map[string][]map[string]any{
		"idp.json":    {sa("1", "aws", "bot")},
		"policy.json": {sa("p1", "aws", "bot")},
	})
	sum := w.sync()
	if sum.Created != 0 || sum.OpenUnmatched != 2 {
		t.Fatalf("created %d, open unmatched %d", sum.Created, sum.OpenUnmatched)
	}
	us, err := w.engine().Unmatched(context.Background(), "", false)
	if err != nil || len(us) != 2 {
		t.Fatalf("unmatched = %+v, %v", us, err)
	}
	for _, u := range us {
		if !strings.Contains(u.Reason, "kind sa has no create_from") || !strings.Contains(u.Reason, "create_from: ["+u.System+"]") {
			t.Errorf("%s: reason %q does not say create_from is missing and how to add it", u.ID, u.Reason)
		}
	}
}

// linkLoads is a world's store that counts how often LoadLinks is asked
// for each external id of each system.
type linkLoads struct {
	nhisync.Store
	n map[string]int
}

func (s *linkLoads) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	for _, id := range ids {
		s.n[system+"/"+id]++
	}
	return s.Store.LoadLinks(ctx, system, ids)
}

// TestRestagedStraysLoadedOnce: a pass correlates its stored unmatched
// records again (a golden record may have appeared for them) and then
// stores them, seen once more: it loads each one's link once for both.
func TestRestagedStraysLoadedOnce(t *testing.T) {
	w := newWorld(t, strayConfig, map[string][]map[string]any{
		"idp.json":    {sa("1", "aws", "bot")},
		"policy.json": {sa("p1", "aws", "bot"), sa("p2", "aws", "ghost"), sa("p3", "gcp", "shadow")},
	})
	w.sync()
	before, _ := w.engine().Unmatched(context.Background(), "policy", false)
	counter := &linkLoads{Store: w.store, n: map[string]int{}}
	w.store = counter
	if sum := w.sync(); sum.OpenUnmatched != 2 {
		t.Fatalf("second pass: open unmatched %d, want 2", sum.OpenUnmatched)
	}
	for _, id := range []string{"policy/p2", "policy/p3"} {
		if n := counter.n[id]; n != 1 {
			t.Errorf("the link of unmatched %s was loaded %d times in the pass, want once", id, n)
		}
	}
	after, _ := w.engine().Unmatched(context.Background(), "policy", false)
	if len(before) != 2 || len(after) != 2 {
		t.Fatalf("unmatched before %d, after %d; want 2 and 2", len(before), len(after))
	}
	for i := range after {
		if !after[i].LastSeen.After(before[i].LastSeen) || !after[i].FirstSeen.Equal(before[i].FirstSeen) {
			t.Errorf("%s: first seen %v then %v, last seen %v then %v; want the same first seen and a later last seen",
				after[i].ID, before[i].FirstSeen, after[i].FirstSeen, before[i].LastSeen, after[i].LastSeen)
		}
	}
}
