package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

const manualConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: [a]
    fields:
      name:  { type: string }
      owner: { type: string, resolve: manual }
      tier:  { type: string, resolve: latest }
      note:  { type: string, sensitive: true }
systems:
  a: { connector: file, path: a.json, kind: app, id: id, fields: { name: name, owner: owner, tier: tier, note: note } }
  b: { connector: file, path: b.json, kind: app, id: id, fields: { name: name, owner: owner, tier: tier } }
  c: { connector: file, path: c.json, kind: app, id: id, fields: { name: name, owner: owner } }
`

func TestManualConflictHoldsWritesUntilResolved(t *testing.T) {
	w := newWorld(t, manualConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "n", "owner": "ann"}},
		"b.json": {{"id": "1", "name": "n", "owner": "bob"}},
		"c.json": {{"id": "1", "name": "n"}},
	})
	sum := w.sync()
	if sum.ConflictsOpened != 1 {
		t.Fatalf("conflicts opened = %d\n%s", sum.ConflictsOpened, actions(sum))
	}
	if got := w.golden("app", "owner", "n"); got != "" {
		t.Fatalf("golden owner set while conflicted: %q", got)
	}
	if got := w.field("c.json", "1", "owner"); got != nil {
		t.Fatalf("write of a conflicted field not held: c owner = %v", got)
	}
	// Quiet passes do not reopen it.
	if sum := w.sync(); sum.ConflictsOpened != 0 || sum.WritesPlanned != 0 {
		t.Fatalf("second pass\n%s", actions(sum))
	}
	cs := w.conflicts(nhisync.StatusOpen)
	if len(cs) != 1 || len(cs[0].Proposals) != 2 {
		t.Fatalf("conflicts = %+v", cs)
	}
	e := w.engine()
	if _, err := e.ResolveConflict(context.Background(), cs[0].ID, "nobody", "", "carol"); nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Fatalf("pick of a system without a proposal: %v", err)
	}
	if _, err := e.ResolveConflict(context.Background(), cs[0].ID, "b", "", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.json", "b.json", "c.json"} {
		if got := w.field(f, "1", "owner"); got != "bob" {
			t.Errorf("%s owner = %v, want bob", f, got)
		}
	}
	hist, err := w.store.AuditByRecord(context.Background(), cs[0].RecordID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range hist {
		if h.Action == nhisync.ActConflictResolved && h.Actor == "person:carol" {
			found = true
		}
	}
	if !found {
		t.Fatal("resolution not audited with the person's name")
	}
	if sum := w.sync(); sum.WritesPlanned+sum.ConflictsOpened != 0 {
		t.Fatalf("not quiet after resolution\n%s", actions(sum))
	}
}

func TestLatestUsesSourceTimeOrder(t *testing.T) {
	w := newWorld(t, manualConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "n", "tier": "gold"}},
		"b.json": {{"id": "1", "name": "n"}},
		"c.json": {{"id": "1", "name": "n"}},
	})
	w.sync()
	w.edit("b.json", "1", map[string]any{"tier": "silver"})
	w.sync()
	if got := w.golden("app", "tier", "n"); got != "silver" {
		t.Fatalf("tier = %q, want the latest change", got)
	}
	if got := w.field("a.json", "1", "tier"); got != "silver" {
		t.Fatalf("a not written: %v", got)
	}
}

func TestSensitiveValuesStayOutOfTheAuditLog(t *testing.T) {
	w := newWorld(t, manualConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "n", "note": "hunter2"}},
		"b.json": {{"id": "1", "name": "n"}},
		"c.json": {{"id": "1", "name": "n"}},
	})
	w.sync()
	if got := w.golden("app", "note", "n"); got != "hunter2" {
		t.Fatalf("note = %q", got)
	}
	err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		if strings.Contains(string(leaf), "hunter2") {
			t.Errorf("audit entry %d holds the sensitive value: %s", e.Seq, leaf)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const approvalConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: [catalog]
    fields:
      name:   { type: string }
      policy: { type: string, authority: [catalog], approve_to: [engine] }
systems:
  catalog: { connector: file, path: catalog.json, kind: app, id: id, fields: { name: name, policy: policy } }
  engine:  { connector: file, path: engine.json, kind: app, id: id, fields: { name: name, policy: state } }
`

func TestApprovalHoldsWriteAndSeparatesDuties(t *testing.T) {
	w := newWorld(t, approvalConfig, map[string][]map[string]any{
		"catalog.json": {{"id": "1", "name": "n", "policy": "strict"}},
		"engine.json":  {{"id": "1", "name": "n", "state": "open"}},
	})
	sum := w.sync()
	if sum.ApprovalsRequested != 1 || sum.WritesHeld != 1 {
		t.Fatalf("approvals %d held %d\n%s", sum.ApprovalsRequested, sum.WritesHeld, actions(sum))
	}
	if got := w.field("engine.json", "1", "state"); got != "open" {
		t.Fatalf("held write was applied: %v", got)
	}
	// One request per (record, field, system, value): quiet passes add none.
	if sum := w.sync(); sum.ApprovalsRequested != 0 {
		t.Fatalf("request repeated\n%s", actions(sum))
	}
	as := w.approvals(nhisync.StatusPending)
	if len(as) != 1 || as[0].RequestedBy != "catalog" {
		t.Fatalf("approvals = %+v", as)
	}
	// The catalog's change was made by a person known to the catalog as
	// "catalog"? No: requested_by is the system; a person named like the
	// cause may not approve.
	e := w.engine()
	if _, err := e.Approve(context.Background(), as[0].ID, "catalog"); nhisync.ErrorCode(err) != nhisync.EFORBIDDEN {
		t.Fatalf("approval by the causing actor: %v", err)
	}
	if _, err := e.Approve(context.Background(), as[0].ID, "dana"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.field("engine.json", "1", "state"); got != "strict" {
		t.Fatalf("approved write not applied: %v", got)
	}
	// A newer golden value supersedes; rejection leaves the system alone.
	w.edit("catalog.json", "1", map[string]any{"policy": "stricter"})
	w.sync()
	as = w.approvals(nhisync.StatusPending)
	if len(as) != 1 || as[0].Value.Text() != "stricter" {
		t.Fatalf("approvals = %+v", as)
	}
	if _, err := e.Reject(context.Background(), as[0].ID, "dana"); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if got := w.field("engine.json", "1", "state"); got != "strict" {
		t.Fatalf("rejected write applied: %v", got)
	}
	if sum := w.sync(); sum.ApprovalsRequested != 0 {
		t.Fatalf("rejected request asked again\n%s", actions(sum))
	}
	w.edit("catalog.json", "1", map[string]any{"policy": "relaxed"})
	if sum := w.sync(); sum.ApprovalsRequested != 1 {
		t.Fatalf("new value did not ask again\n%s", actions(sum))
	}
}

func TestPersonCausingChangeMayNotApprove(t *testing.T) {
	const cfg = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: [catalog]
    fields:
      name:   { type: string }
      policy: { type: string, resolve: manual, approve_to: [engine] }
systems:
  catalog: { connector: file, path: catalog.json, kind: app, id: id, fields: { name: name, policy: policy } }
  other:   { connector: file, path: other.json, kind: app, id: id, fields: { name: name, policy: policy } }
  engine:  { connector: file, path: engine.json, kind: app, id: id, fields: { name: name, policy: state } }
`
	w := newWorld(t, cfg, map[string][]map[string]any{
		"catalog.json": {{"id": "1", "name": "n", "policy": "a"}},
		"other.json":   {{"id": "1", "name": "n", "policy": "b"}},
		"engine.json":  {{"id": "1", "name": "n"}},
	})
	w.sync()
	cs := w.conflicts(nhisync.StatusOpen)
	if len(cs) != 1 {
		t.Fatalf("conflicts = %v", cs)
	}
	e := w.engine()
	if _, err := e.ResolveConflict(context.Background(), cs[0].ID, "", "c", "erin"); err != nil {
		t.Fatal(err)
	}
	as := w.approvals(nhisync.StatusPending)
	if len(as) != 1 || as[0].RequestedBy != "person:erin" {
		t.Fatalf("approvals = %+v", as)
	}
	if _, err := e.Approve(context.Background(), as[0].ID, "Erin"); nhisync.ErrorCode(err) != nhisync.EFORBIDDEN {
		t.Fatalf("erin approved her own change: %v", err)
	}
	if _, err := e.Approve(context.Background(), as[0].ID, "frank"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.field("engine.json", "1", "state"); got != "c" {
		t.Fatalf("engine state = %v", got)
	}
}

// A conflict whose record's kind has left the config is refused with a
// message naming the kind, not a panic of the engine.
func TestResolveConflictOfKindNoLongerInConfig(t *testing.T) {
	w := newWorld(t, manualConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "n", "owner": "ann"}},
		"b.json": {{"id": "1", "name": "n", "owner": "bob"}},
		"c.json": {{"id": "1", "name": "n"}},
	})
	if sum := w.sync(); sum.ConflictsOpened != 1 {
		t.Fatalf("conflicts opened = %d\n%s", sum.ConflictsOpened, actions(sum))
	}
	cs := w.conflicts(nhisync.StatusOpen)
	if len(cs) != 1 {
		t.Fatalf("conflicts = %+v", cs)
	}
	cfg := *w.cfg
	cfg.Kinds, cfg.KindNames = map[string]*nhisync.Kind{}, nil
	cfg.Systems, cfg.SystemNames = map[string]*nhisync.System{}, nil
	w.cfg = &cfg
	_, err := w.engine().ResolveConflict(context.Background(), cs[0].ID, "b", "", "carol")
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), "kind app") {
		t.Fatalf("resolve with the kind gone: %v, want EINVALID naming kind app", err)
	}
}
