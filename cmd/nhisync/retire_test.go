package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nhisync/nhisync/quickstart"
)

// TestEmptiedIdPTableRetiresNothing reproduces issue 5, observation 2 as
// a new user met it: the identity provider's table (the retire_from
// system) is emptied and `sync` runs. Nothing is retired and nothing
// written; one guard request holds the vanishing. The table is restored:
// `sync` writes nothing, golden is as before, the request is closed as
// superseded, and `plan` says what it said before the table was emptied.
func TestEmptiedIdPTableRetiresNothing(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	w.ok(t, "sync")
	planBefore := w.ok(t, "plan")
	var before []obj
	w.json(t, &before, "records")

	db, err := sql.Open("sqlite", w.path(quickstart.IDPFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE kept AS SELECT * FROM service_accounts`)
	exec(`DELETE FROM service_accounts`)

	var sum obj
	w.json(t, &sum, "sync")
	if intOf(t, "sync", sum, "retired") != 0 || intOf(t, "sync", sum, "writes_planned") != 0 || intOf(t, "sync", sum, "approvals_requested") != 1 {
		t.Fatalf("sync over an emptied idp table: %v", sum)
	}
	var after []obj
	w.json(t, &after, "records")
	if d := cmp.Diff(before, after); d != "" {
		t.Fatalf("golden changed when the idp table was emptied (-before +after):\n%s", d)
	}
	var pending []obj
	w.json(t, &pending, "approvals")
	var guard obj
	for _, a := range pending {
		if a["guard"] == true {
			guard = a
		}
	}
	if guard == nil || strOf(t, "approval", guard, "system") != "idp" || !strings.HasPrefix(strOf(t, "approval", guard, "value"), "retire ") || intOf(t, "approval", guard, "count") < 100 {
		t.Fatalf("no guard request for the vanishing among %v", pending)
	}
	out := w.ok(t, "approvals")
	if !strings.Contains(out, "(guard)") || !strings.Contains(out, strOf(t, "approval", guard, "value")) {
		t.Errorf("approvals does not show the guard request:\n%s", out)
	}

	exec(`INSERT INTO service_accounts SELECT * FROM kept`)
	exec(`DROP TABLE kept`)
	w.json(t, &sum, "sync")
	if intOf(t, "sync", sum, "retired") != 0 || intOf(t, "sync", sum, "writes_planned") != 0 || intOf(t, "sync", sum, "approvals_requested") != 0 {
		t.Fatalf("sync after the idp table was restored: %v", sum)
	}
	w.json(t, &after, "records")
	if d := cmp.Diff(before, after); d != "" {
		t.Fatalf("golden after the idp table was restored (-before +after):\n%s", d)
	}
	var all []obj
	w.json(t, &all, "approvals", "--all")
	for _, a := range all {
		if a["id"] == guard["id"] && a["status"] != "superseded" {
			t.Errorf("guard request after the records reappeared: %v", a)
		}
	}
	if planAfter := w.ok(t, "plan"); planAfter != planBefore {
		t.Errorf("plan after the restore differs from before the idp was emptied:\n%s\nbefore:\n%s", planAfter, planBefore)
	}
}

// retireEstate is a small estate with nothing left to do: an idp
// (retire_from) and a cmdb, as JSON files.
const retireEstate = `version: 1
store: sqlite:./data/nhisync.db
audit:
  signing_key: ./data/audit.key
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp]
    retire_from: [idp]
    fields:
      name:      { type: string, required: true }
      platform:  { type: string, required: true }
      lifecycle: { type: enum, values: [active, suspended, decommissioned], resolve: strictest }
systems:
  idp:  { connector: file, path: idp.json, kind: service_account, id: id, fields: { name: name, platform: platform, lifecycle: status } }
  cmdb: { connector: file, path: cmdb.json, kind: service_account, id: id, fields: { name: name, platform: platform, lifecycle: status } }
`

// TestEmptiedExportIsNotInStep: while the guard holds the retirement of
// every record of an emptied idp export, sync and plan say the estate is
// not in step and why; once the export is back, plan says in step.
func TestEmptiedExportIsNotInStep(t *testing.T) {
	var rows []string
	for i := range 30 {
		rows = append(rows, fmt.Sprintf(`{"id": "%d", "platform": "aws", "name": "bot%d", "status": "active"}`, i, i))
	}
	export := "[" + strings.Join(rows, ",\n") + "]"
	w := newWorkspace(t, map[string]string{"nhisync.yaml": retireEstate, "idp.json": export, "cmdb.json": export})
	w.ok(t, "sync")
	if out := w.ok(t, "plan"); !strings.Contains(out, "In step") {
		t.Fatalf("plan of a settled estate:\n%s", out)
	}

	writeFile(t, w.path("idp.json"), "[]")
	out := w.ok(t, "sync")
	for _, want := range []string{"guard holds", "retire 30 records", "nhisync approvals", "Not in step", "30 held by the guard"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync over an emptied idp export does not say %q:\n%s", want, out)
		}
	}
	out = w.ok(t, "plan")
	if strings.Contains(out, "In step") || !strings.Contains(out, "held by the guard") {
		t.Errorf("plan while the guard holds the retirement:\n%s", out)
	}
	var recs []obj
	w.json(t, &recs, "records")
	for _, r := range recs {
		if f := r["fields"].(map[string]any)["lifecycle"].(map[string]any); f["value"] != "active" {
			t.Fatalf("record retired while the guard holds it: %v", r)
		}
	}

	writeFile(t, w.path("idp.json"), export)
	w.ok(t, "sync")
	if out := w.ok(t, "plan"); !strings.Contains(out, "In step") {
		t.Errorf("plan once the export is back:\n%s", out)
	}
}
