package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync/quickstart"
)

// summaryKeys are the integer keys SPEC §6 fixes for `sync -o json`.
var summaryKeys = []string{"records", "created", "accepted", "refused", "merged", "quarantined",
	"conflicts_opened", "approvals_requested", "writes_applied", "writes_failed", "writes_held"}

// syncJSON runs sync -o json and checks the summary's shape.
func syncJSON(t *testing.T, w *workspace) obj {
	t.Helper()
	var sum obj
	w.json(t, &sum, "sync")
	for _, k := range summaryKeys {
		intOf(t, "sync summary", sum, k)
	}
	for name, s := range objOf(t, "sync summary", sum, "systems") {
		ss, _ := s.(map[string]any)
		for _, k := range []string{"read", "written", "failed"} {
			intOf(t, "systems."+name, ss, k)
		}
	}
	return sum
}

func TestSyncSummary(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, false)

	first := syncJSON(t, w)
	created, records := intOf(t, "first", first, "created"), intOf(t, "first", first, "records")
	if created == 0 || created != records {
		t.Errorf("first sync: created %d of %d records, want every record created", created, records)
	}
	for _, k := range []string{"accepted", "merged", "quarantined", "approvals_requested", "writes_applied", "writes_held"} {
		if intOf(t, "first", first, k) == 0 {
			t.Errorf("first sync of the demo estate: %s is 0, want some", k)
		}
	}
	systems := objOf(t, "first", first, "systems")
	if got := slices.Sorted(maps.Keys(systems)); !slices.Equal(got, []string{"apps", "catalog", "cmdb", "idp", "policy"}) {
		t.Errorf("systems = %v, want the four demo systems and the application register", got)
	}
	written := 0
	for name, s := range systems {
		ss := s.(map[string]any)
		if got, want := intOf(t, name, ss, "read"), w.sc.Records[name]; got != want {
			t.Errorf("systems.%s.read = %d, want the %d records its file holds", name, got, want)
		}
		if n := intOf(t, name, ss, "failed"); n != 0 {
			t.Errorf("systems.%s.failed = %d", name, n)
		}
		written += intOf(t, name, ss, "written")
	}
	if applied := intOf(t, "first", first, "writes_applied"); written != applied {
		t.Errorf("systems written add up to %d, writes_applied is %d", written, applied)
	}

	// SPEC §3.8: with no outside change the next pass writes nothing.
	second := syncJSON(t, w)
	for _, k := range []string{"created", "accepted", "refused", "merged", "quarantined", "conflicts_opened",
		"approvals_requested", "writes_applied", "writes_failed", "writes_held", "writes_planned"} {
		if n := intOf(t, "second", second, k); n != 0 {
			t.Errorf("second (quiet) sync: %s = %d, want 0", k, n)
		}
	}
	if got := intOf(t, "second", second, "records"); got != records {
		t.Errorf("second sync: records = %d, want %d", got, records)
	}

	table := w.ok(t, "sync")
	if !strings.HasPrefix(table, fmt.Sprintf("Synced %d records in ", records)) || !strings.Contains(table, "SYSTEM") {
		t.Errorf("sync table output:\n%s", table)
	}
}

// TestReadCommands runs the commands that only look, on a synced demo
// workspace.
func TestReadCommands(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	sc := w.sc
	conflictRec := "service_account/" + sc.OwnerConflict[0]

	t.Run("show", func(t *testing.T) {
		var rec obj
		w.json(t, &rec, "show", conflictRec)
		requireKeys(t, "show", rec, "id", "kind", "key", "links", "fields")
		intOf(t, "show", rec, "id")
		if k := strOf(t, "show", rec, "kind"); k != "service_account" {
			t.Errorf("kind = %q", k)
		}
		if k := strOf(t, "show", rec, "key"); k != sc.OwnerConflict[0] {
			t.Errorf("key = %q, want %q", k, sc.OwnerConflict[0])
		}
		links := objOf(t, "show", rec, "links")
		for _, sys := range []string{"cmdb", "catalog"} {
			if id, ok := links[sys].(string); !ok || id == "" {
				t.Errorf("links.%s = %#v, want the system's id", sys, links[sys])
			}
		}
		fields := objOf(t, "show", rec, "fields")
		for name, f := range fields {
			fo, _ := f.(map[string]any)
			requireKeys(t, "fields."+name, fo, "value", "source", "updated_at")
			if _, err := time.Parse(time.RFC3339Nano, strOf(t, "fields."+name, fo, "updated_at")); err != nil {
				t.Errorf("fields.%s.updated_at: %v", name, err)
			}
		}
		// cmdb outranks the catalog for owner (quickstart config).
		if owner := objOf(t, "show", fields, "owner"); owner["source"] != "cmdb" {
			t.Errorf("fields.owner = %v, want set by cmdb", owner)
		}
		table := w.ok(t, "show", conflictRec)
		for _, want := range []string{conflictRec, "FIELD", "SOURCE", "owner", "LINK"} {
			if !strings.Contains(table, want) {
				t.Errorf("show table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("records", func(t *testing.T) {
		var all []obj
		w.json(t, &all, "records")
		if len(all) == 0 {
			t.Fatal("records -o json printed no records")
		}
		for _, r := range all {
			requireKeys(t, "records item", r, "id", "kind", "key", "links", "fields")
		}
		var orphans []obj
		w.json(t, &orphans, "records", "--kind", "service_account", "--where", `owner == ""`)
		if len(orphans) == 0 || len(orphans) >= len(all) {
			t.Fatalf("--where 'owner == \"\"' kept %d of %d records", len(orphans), len(all))
		}
		keys := map[string]bool{}
		for _, r := range orphans {
			keys[r["key"].(string)] = true
			if f, ok := r["fields"].(map[string]any)["owner"].(map[string]any); ok && f["value"] != nil {
				t.Errorf("%s kept by owner == \"\" has owner %v", r["key"], f["value"])
			}
		}
		for _, k := range sc.Orphans {
			if !keys[k] {
				t.Errorf("orphan %s (no owner anywhere) missing from --where 'owner == \"\"'", k)
			}
		}
		var decom []obj
		w.json(t, &decom, "records", "--where", `lifecycle == "decommissioned"`)
		keys = map[string]bool{}
		for _, r := range decom {
			keys[r["key"].(string)] = true
		}
		for _, k := range sc.Decommissioned {
			if !keys[k] {
				t.Errorf("%s (decommissioned in idp) missing from --where lifecycle == \"decommissioned\"", k)
			}
		}
		// README's example, without --kind: the filter applies to the kinds
		// whose fields it reads (service_account), as report --where does,
		// instead of failing on the application kind.
		var pii []obj
		w.json(t, &pii, "records", "--where", `"pii" in classification || owner == ""`)
		if len(pii) == 0 {
			t.Error(`records --where '"pii" in classification || owner == ""' (no --kind) listed nothing`)
		}
		for _, r := range pii {
			if r["kind"] != "service_account" {
				t.Errorf("--where over service_account fields listed a %v record", r["kind"])
			}
		}
		var three []obj
		w.json(t, &three, "records", "--limit", "3")
		if len(three) != 3 {
			t.Errorf("--limit 3 printed %d records", len(three))
		}
		if table := w.ok(t, "records", "--limit", "3"); !strings.Contains(table, "RECORD") || !strings.Contains(table, "3 records") {
			t.Errorf("records table:\n%s", table)
		}
		for _, args := range [][]string{
			{"records", "--kind", "nosuchkind"},
			{"records", "--where", "owner =="},
			{"records", "--where", "nosuchfield == 1"},
		} {
			if r := w.run(t, args...); r.code != exitInvalid || r.stderr == "" {
				t.Errorf("%v: exit %d (%s), want 2 with a message", args, r.code, r.stderr)
			}
		}
	})

	t.Run("history", func(t *testing.T) {
		var rec obj
		w.json(t, &rec, "show", conflictRec)
		var entries []obj
		w.json(t, &entries, "history", conflictRec)
		if len(entries) == 0 {
			t.Fatal("no history")
		}
		actions := map[string]bool{}
		last := 0
		for _, e := range entries {
			requireKeys(t, "history entry", e, "seq", "time", "actor", "action", "prev_hash", "hash")
			seq := intOf(t, "history", e, "seq")
			if seq <= last {
				t.Errorf("history out of order: seq %d after %d", seq, last)
			}
			last = seq
			if e["record_id"] != rec["id"] {
				t.Errorf("history entry %d is about record %v, not %v", seq, e["record_id"], rec["id"])
			}
			actions[e["action"].(string)] = true
			if e["action"] == "record.created" {
				// The record's first values ride on its record.created entry
				// (SPEC §4): each with its field, source system and value.
				fields, _ := e["fields"].([]any)
				if len(fields) == 0 {
					t.Errorf("record.created entry %d carries no fields: %v", seq, e)
				}
				for _, f := range fields {
					requireKeys(t, "record.created field", f.(obj), "field", "system", "value")
				}
			}
		}
		for _, a := range []string{"record.created", "refused"} {
			if !actions[a] {
				t.Errorf("history of %s has no %s entry (actions %v)", conflictRec, a, actions)
			}
		}
		// The table reads a record.created entry's first values as one
		// accepted row per field, and its links as one record.linked row
		// per system, as before they were folded into it: every system
		// the record links to is named with its native id.
		table := w.ok(t, "history", conflictRec)
		if !strings.Contains(table, "record.created") || !strings.Contains(table, "accepted") {
			t.Errorf("history table:\n%s", table)
		}
		links, _ := rec["links"].(map[string]any)
		if len(links) < 2 {
			t.Fatalf("%s links %v, want several systems", conflictRec, links)
		}
		for sys, id := range links {
			named := false
			for _, line := range strings.Split(table, "\n") {
				f := strings.Fields(line)
				named = named || (slices.Contains(f, sys) && strings.Contains(line, fmt.Sprintf("%q", id)) &&
					(slices.Contains(f, "record.created") || slices.Contains(f, "record.linked")))
			}
			if !named {
				t.Errorf("history does not say %s's record %v was linked:\n%s", sys, id, table)
			}
		}
	})

	t.Run("explain", func(t *testing.T) {
		var x obj
		w.json(t, &x, "explain", conflictRec, "owner")
		requireKeys(t, "explain", x, "kind", "record", "field", "golden", "assertions", "recomputed")
		golden := objOf(t, "explain", x, "golden")
		if golden["source"] != "cmdb" {
			t.Errorf("golden owner set by %v, want cmdb", golden["source"])
		}
		as, _ := x["assertions"].([]any)
		bySystem := map[string]obj{}
		for _, a := range as {
			ao := a.(map[string]any)
			requireKeys(t, "assertion", ao, "system", "value", "state", "allowed")
			bySystem[ao["system"].(string)] = ao
		}
		for _, sys := range []string{"cmdb", "catalog"} {
			a := bySystem[sys]
			if a == nil || a["value"] != golden["value"] || a["state"] != "agrees" {
				t.Errorf("after sync, %s asserts %v, want %v (agrees)", sys, a, golden["value"])
			}
		}
		if table := w.ok(t, "explain", conflictRec, "owner"); !strings.Contains(table, "rules now choose") {
			t.Errorf("explain table:\n%s", table)
		}
		if r := w.run(t, "explain", conflictRec, "nosuchfield"); r.code != exitInvalid {
			t.Errorf("explain of an unknown field: exit %d, want 2", r.code)
		}
	})

	t.Run("lists", func(t *testing.T) {
		if out := w.ok(t, "conflicts", "-o", "json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("conflicts -o json with none open = %q, want []", out)
		}
		var approvals []obj
		w.json(t, &approvals, "approvals")
		if len(approvals) == 0 {
			t.Fatal("no pending approvals after the first sync of the demo estate")
		}
		for _, a := range approvals {
			requireKeys(t, "approval", a, "id", "kind", "record", "field", "system", "value", "requested_by", "status")
			if a["status"] != "pending" || a["field"] != "policy_state" || a["system"] != "policy" {
				t.Errorf("approval %v: want a pending policy_state write to policy", a)
			}
			if !slices.Contains(sc.PolicyApproval, a["record"].(string)) {
				t.Errorf("approval for %v, not one of the planted policy-approval accounts %v", a["record"], sc.PolicyApproval)
			}
		}
		var quarantine []obj
		w.json(t, &quarantine, "quarantine")
		if len(quarantine) == 0 {
			t.Fatal("nothing quarantined after the first sync of the demo estate")
		}
		for _, q := range quarantine {
			requireKeys(t, "quarantine item", q, "id", "kind", "record", "field", "system", "value", "rule")
			if q["rule"] != "owner-is-email" || !slices.Contains(sc.InvalidOwner, q["record"].(string)) {
				t.Errorf("quarantine item %v: want an invalid-owner account failing owner-is-email", q)
			}
		}
		for _, cmd := range []string{"conflicts", "approvals", "quarantine"} {
			if out := w.ok(t, cmd); out == "" {
				t.Errorf("%s table printed nothing", cmd)
			}
		}
	})

	t.Run("plan and check", func(t *testing.T) {
		var plan obj
		w.json(t, &plan, "plan")
		requireKeys(t, "plan", plan, "summary", "decisions", "writes")
		if ws, _ := plan["writes"].([]any); len(ws) != 0 {
			t.Errorf("plan after a sync plans %d writes, want 0", len(ws))
		}
		// Nothing to write, but quarantined values and held writes leave
		// the estate out of step, and plan says so (issue 5, point 4).
		if out := w.ok(t, "plan"); !strings.Contains(out, "Nothing to write") || !strings.Contains(out, "Not in step: ") {
			t.Errorf("plan after a sync:\n%s", out)
		}
		var check obj
		w.json(t, &check, "check")
		if check["ok"] != true {
			t.Errorf("check -o json = %v", check)
		}
	})
}

// TestWhatIf tries a config where the policy engine outranks the catalog
// for policy_state: the held policy writes planted in the demo would go
// the other way, and nothing is written.
func TestWhatIf(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	cfg := readFile(t, w.config)
	if !strings.Contains(cfg, "authority: [catalog]\n") {
		t.Fatal("the demo config no longer gives policy_state authority: [catalog]")
	}
	rules := w.path("proposed.yaml")
	writeFile(t, rules, strings.Replace(cfg, "authority: [catalog]\n", "authority: [policy, catalog]\n", 1))
	before := readFile(t, w.path(quickstart.CatalogFile))

	var x struct {
		Records int `json:"records"`
		Changes []struct {
			Kind     string `json:"kind"`
			Record   string `json:"record"`
			Field    string `json:"field"`
			Proposed struct {
				Source string `json:"source"`
			} `json:"proposed"`
			Writes []string `json:"writes"`
		} `json:"changes"`
	}
	w.json(t, &x, "plan", "--rules", rules)
	var changed []string
	for _, c := range x.Changes {
		if c.Field != "policy_state" || c.Proposed.Source != "policy" || !slices.Contains(c.Writes, "catalog") {
			t.Errorf("what-if change %+v: want policy_state from policy, written to the catalog", c)
		}
		changed = append(changed, c.Record)
	}
	slices.Sort(changed)
	if want := slices.Sorted(slices.Values(w.sc.PolicyApproval)); !slices.Equal(changed, want) {
		t.Errorf("what-if changes records %v, want the planted policy-approval accounts %v", changed, want)
	}
	if x.Records == 0 {
		t.Error("what-if reports 0 records")
	}
	if out := w.ok(t, "plan", "--rules", rules); !strings.Contains(out, "would change") {
		t.Errorf("plan --rules table:\n%s", out)
	}
	if readFile(t, w.path(quickstart.CatalogFile)) != before {
		t.Error("plan --rules wrote to the catalog")
	}
	if r := w.run(t, "plan", "--rules", w.path("missing.yaml")); r.code != exitInvalid || !strings.Contains(r.stderr, "--rules ") || strings.Contains(r.stderr, "-c FILE") {
		t.Errorf("plan --rules with a missing file: exit %d %q, want 2 naming --rules", r.code, r.stderr)
	}
}

func TestApprovals(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	var pending []obj
	w.json(t, &pending, "approvals")
	if len(pending) < 2 {
		t.Fatalf("%d pending approvals, the test needs 2", len(pending))
	}
	grant, deny := pending[0], pending[1]
	id := func(a obj) string { return fmt.Sprint(intOf(t, "approval", a, "id")) }
	policyAsserts := func(a obj) any {
		var x obj
		w.json(t, &x, "explain", "service_account/"+a["record"].(string), "policy_state")
		for _, as := range x["assertions"].([]any) {
			if ao := as.(map[string]any); ao["system"] == "policy" {
				return ao["value"]
			}
		}
		return nil
	}
	if got := policyAsserts(grant); got == grant["value"] {
		t.Fatalf("policy already holds %v before approval", got)
	}

	var ap obj
	w.json(t, &ap, "approvals", "approve", id(grant), "--as", "dana")
	if ap["status"] != "approved" || ap["decided_by"] != "dana" {
		t.Errorf("approve -o json = %v, want approved by dana", ap)
	}
	if got := policyAsserts(grant); got != grant["value"] {
		t.Errorf("after approval the policy engine holds %v, want %v", got, grant["value"])
	}
	out := w.ok(t, "approvals", "reject", id(deny), "--as", "dana")
	if !strings.Contains(out, "rejected by dana") {
		t.Errorf("reject printed %q", out)
	}
	if got := policyAsserts(deny); got == deny["value"] {
		t.Errorf("a rejected write reached the policy engine")
	}

	var rest []obj
	w.json(t, &rest, "approvals")
	for _, a := range rest {
		if a["id"] == grant["id"] || a["id"] == deny["id"] {
			t.Errorf("decided approval %v still listed as pending", a["id"])
		}
	}
	var all []obj
	w.json(t, &all, "approvals", "--all")
	status := map[string]string{}
	for _, a := range all {
		status[id(a)] = a["status"].(string)
	}
	if status[id(grant)] != "approved" || status[id(deny)] != "rejected" {
		t.Errorf("approvals --all statuses %v", status)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"approvals", "approve", id(deny), "--as", "erin"}, exitFailed, "already rejected"},
		{[]string{"approvals", "reject", id(grant), "--as", "erin"}, exitFailed, "already approved"},
		{[]string{"approvals", "approve", "999999", "--as", "erin"}, exitFailed, "999999"},
		{[]string{"approvals", "approve", "abc", "--as", "erin"}, exitInvalid, "positive number"},
		{[]string{"approvals", "approve", "--as", "erin"}, exitInvalid, "usage"},
	} {
		r := w.run(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d %q, want exit %d naming %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
	}
	// The rejected target stays behind without being written again.
	if n := intOf(t, "sync", syncJSON(t, w), "writes_applied"); n != 0 {
		t.Errorf("sync after the decisions applied %d writes, want 0", n)
	}
}

// TestApprovedWriteThatFailsIsLoud: approving a held write whose target
// cannot be written printed "Approval N approved by dana; 0 writes
// applied." and exited 0. The decision stays recorded, the failure is
// named (system and cause) and the command exits 1.
func TestApprovedWriteThatFailsIsLoud(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	var pending []obj
	w.json(t, &pending, "approvals")
	if len(pending) < 2 {
		t.Fatalf("%d pending approvals, the test needs 2", len(pending))
	}
	policy := w.path(quickstart.PolicyFile)
	orig := readFile(t, policy)
	writeFile(t, policy, "{broken")
	r := w.run(t, "approvals", "approve", fmt.Sprint(intOf(t, "approval", pending[0], "id")), "--as", "dana")
	if r.code != exitFailed || !strings.Contains(r.stdout, "approved by dana") ||
		!strings.Contains(r.stderr, "the approval is recorded, but 1 writes failed (policy: ") || !strings.Contains(r.stderr, "policy.json") {
		t.Errorf("approve with the policy file broken: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	r = w.run(t, "approvals", "approve", fmt.Sprint(intOf(t, "approval", pending[1], "id")), "--as", "dana", "-o", "json")
	var ap obj
	if err := json.Unmarshal([]byte(r.stdout), &ap); err != nil || r.code != exitFailed || ap["status"] != "approved" {
		t.Errorf("approve -o json with the policy file broken: exit %d, stdout %q (%v), want one JSON item, approved, exit 1", r.code, r.stdout, err)
	}
	writeFile(t, policy, orig)
	// Both writes wait in the outbox for their retry, listed as failing.
	var failing []obj
	w.json(t, &failing, "drift", "--reason", "failing", "--system", "policy")
	if len(failing) != 2 {
		t.Errorf("drift --reason failing lists %d policy fields, want the 2 approved writes: %v", len(failing), failing)
	}
}

// TestApprovedWriteGoneStaleIsSaid: the policy engine changed the field
// after the write was held; approving it sends nothing (conditional
// write) and said only "0 writes applied".
func TestApprovedWriteGoneStaleIsSaid(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	var pending []obj
	w.json(t, &pending, "approvals")
	if len(pending) == 0 {
		t.Fatal("no pending approval")
	}
	old := strOf(t, "approval", pending[0], "old")
	policy := w.path(quickstart.PolicyFile)
	// The quickstart's policy.json is an array of records, the state in
	// "state"; the pending write's target is the first record whose state
	// still is old that the approval names.
	var recs []map[string]any
	if err := json.Unmarshal([]byte(readFile(t, policy)), &recs); err != nil {
		t.Fatal(err)
	}
	name := strings.SplitN(strOf(t, "approval", pending[0], "record"), "/", 2)
	edited := false
	for _, r := range recs {
		if r["platform"] == name[0] && r["account"] == name[1] && r["state"] == old {
			r["state"], edited = "audit", true
		}
	}
	if !edited {
		t.Fatalf("no record %v holding %q in %s", name, old, policy)
	}
	b, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, policy, string(b))
	out := w.ok(t, "approvals", "approve", fmt.Sprint(intOf(t, "approval", pending[0], "id")), "--as", "dana")
	if !strings.Contains(out, "0 writes applied") || !strings.Contains(out, "1 writes not sent: the record changed in its system") {
		t.Errorf("approving a write whose target changed printed:\n%s", out)
	}
}

func TestQuarantineDismiss(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	var open []obj
	w.json(t, &open, "quarantine")
	if len(open) == 0 {
		t.Fatal("nothing quarantined")
	}
	q := open[0]
	id := fmt.Sprint(intOf(t, "quarantine", q, "id"))
	rec := "service_account/" + q["record"].(string)

	var d obj
	w.json(t, &d, "quarantine", "dismiss", id, "--as", "erin")
	if d["status"] != "dismissed" || d["closed_by"] != "erin" {
		t.Errorf("dismiss -o json = %v", d)
	}
	var after []obj
	w.json(t, &after, "quarantine")
	if len(after) != len(open)-1 {
		t.Errorf("%d open items after dismissing one of %d", len(after), len(open))
	}
	var all []obj
	w.json(t, &all, "quarantine", "--all")
	found := false
	for _, x := range all {
		if fmt.Sprint(intOf(t, "quarantine", x, "id")) == id {
			found = x["status"] == "dismissed"
		}
	}
	if !found {
		t.Errorf("quarantine --all does not list item %s as dismissed", id)
	}
	// The source is repaired with the golden value.
	var x obj
	w.json(t, &x, "explain", rec, q["field"].(string))
	repaired := false
	for _, a := range x["assertions"].([]any) {
		if ao := a.(map[string]any); ao["system"] == q["system"] {
			repaired = ao["state"] == "agrees" && ao["value"] != q["value"]
		}
	}
	if !repaired {
		t.Errorf("after dismissal %s does not hold the golden value: %v", q["system"], x["assertions"])
	}
	r := w.run(t, "quarantine", "dismiss", id, "--as", "erin")
	if r.code != exitFailed || !strings.Contains(r.stderr, "already dismissed") {
		t.Errorf("second dismissal: exit %d %q", r.code, r.stderr)
	}
	if r := w.run(t, "quarantine", "dismiss", "0", "--as", "erin"); r.code != exitInvalid {
		t.Errorf("dismiss 0: exit %d, want 2", r.code)
	}
}

// manualConfig has two JSON systems that may both create records and whose
// owner and policy_state disagreements go to a person; writes of
// policy_state to b wait for approval.
const manualConfig = `version: 1
store: sqlite:./data/nhisync.db
audit:
  signing_key: ./data/audit.key
kinds:
  service_account:
    match: [name]
    create_from: [a, b]
    fields:
      name: { type: string, required: true }
      owner: { type: string, resolve: manual }
      policy_state: { type: string, resolve: manual, approve_to: [b] }
systems:
  a:
    connector: file
    kind: service_account
    path: ./a.json
    id: id
    fields: { name: name, owner: owner, policy_state: policy }
  b:
    connector: file
    kind: service_account
    path: ./b.json
    id: id
    fields: { name: name, owner: owner, policy_state: policy }
`

func newManualWorkspace(t *testing.T) *workspace {
	return newWorkspace(t, map[string]string{
		"nhisync.yaml": manualConfig,
		"a.json": `[
  {"id": "a1", "name": "bot-one", "owner": "alice@example.com", "policy": "monitor"},
  {"id": "a2", "name": "bot-two", "owner": "x@example.com"}
]
`,
		"b.json": `[
  {"id": "b1", "name": "bot-one", "owner": "bob@example.com", "policy": "enforced"},
  {"id": "b2", "name": "bot-two", "owner": "y@example.com"}
]
`,
	})
}

// jsonField returns the native field of the record with id in a JSON
// array file.
func jsonField(t *testing.T, path, id, field string) any {
	t.Helper()
	var rows []obj
	if err := json.Unmarshal([]byte(readFile(t, path)), &rows); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	for _, r := range rows {
		if r["id"] == id {
			return r[field]
		}
	}
	t.Fatalf("%s has no record %s", filepath.Base(path), id)
	return nil
}

func TestConflicts(t *testing.T) {
	w := newManualWorkspace(t)
	if n := intOf(t, "sync", syncJSON(t, w), "conflicts_opened"); n != 3 {
		t.Fatalf("conflicts_opened = %d, want 3", n)
	}
	var open []obj
	w.json(t, &open, "conflicts")
	byKey := map[string]obj{}
	for _, c := range open {
		requireKeys(t, "conflict", c, "id", "kind", "record", "field", "status", "proposals")
		if c["status"] != "open" {
			t.Errorf("conflict %v is %v", c["id"], c["status"])
		}
		ps, _ := c["proposals"].([]any)
		systems := map[any]any{}
		for _, p := range ps {
			po := p.(map[string]any)
			requireKeys(t, "proposal", po, "system", "value")
			systems[po["system"]] = po["value"]
		}
		if len(systems) != 2 {
			t.Errorf("conflict %v proposals %v, want one from a and one from b", c["id"], ps)
		}
		byKey[c["record"].(string)+" "+c["field"].(string)] = c
	}
	cid := func(key string) string {
		c := byKey[key]
		if c == nil {
			t.Fatalf("no conflict on %s; open: %v", key, open)
		}
		return fmt.Sprint(intOf(t, key, c, "id"))
	}
	one, two, policy := cid("bot-one owner"), cid("bot-two owner"), cid("bot-one policy_state")

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"conflicts", "resolve", one, "--as", "carol"}, exitInvalid, "exactly one of --pick"},
		{[]string{"conflicts", "resolve", one, "--pick", "a", "--value", "v", "--as", "carol"}, exitInvalid, "exactly one of --pick"},
		{[]string{"conflicts", "resolve", one, "--pick", "c", "--as", "carol"}, exitInvalid, "pick one of: a, b"},
		{[]string{"conflicts", "resolve", "x", "--pick", "a", "--as", "carol"}, exitInvalid, "positive number"},
		{[]string{"conflicts", "resolve", "--pick", "a", "--as", "carol"}, exitInvalid, "usage"},
		{[]string{"conflicts", "resolve", "999999", "--pick", "a", "--as", "carol"}, exitFailed, "999999"},
	} {
		r := w.run(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d %q, want exit %d naming %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
	}

	// --pick takes b's value; a is written with it.
	var c obj
	w.json(t, &c, "conflicts", "resolve", one, "--pick", "b", "--as", "carol")
	if c["status"] != "resolved" || c["resolved_by"] != "carol" || c["resolution"] != "bob@example.com" {
		t.Errorf("resolve --pick -o json = %v", c)
	}
	if got := jsonField(t, w.path("a.json"), "a1", "owner"); got != "bob@example.com" {
		t.Errorf("a.json a1 owner = %v after picking b's value", got)
	}
	// --value gives a value nobody proposed; both systems get it.
	out := w.ok(t, "conflicts", "resolve", two, "--value", "zed@example.com", "--as", "carol")
	if !strings.Contains(out, "resolved by carol") || !strings.Contains(out, "2 writes applied") {
		t.Errorf("resolve --value printed %q", out)
	}
	for file, id := range map[string]string{"a.json": "a2", "b.json": "b2"} {
		if got := jsonField(t, w.path(file), id, "owner"); got != "zed@example.com" {
			t.Errorf("%s %s owner = %v, want the value carol gave", file, id, got)
		}
	}
	if r := w.run(t, "conflicts", "resolve", one, "--pick", "a", "--as", "carol"); r.code != exitFailed || !strings.Contains(r.stderr, "already resolved") {
		t.Errorf("resolving a resolved conflict: exit %d %q", r.code, r.stderr)
	}

	// Separation of duties: alice gives policy_state a value, so the write
	// it causes to b waits for someone else.
	w.ok(t, "conflicts", "resolve", policy, "--value", "strict", "--as", "alice")
	if got := jsonField(t, w.path("a.json"), "a1", "policy"); got != "strict" {
		t.Errorf("a.json a1 policy = %v, want strict (a needs no approval)", got)
	}
	var pending []obj
	w.json(t, &pending, "approvals")
	if len(pending) != 1 || pending[0]["requested_by"] != "person:alice" || pending[0]["system"] != "b" || pending[0]["value"] != "strict" {
		t.Fatalf("pending approvals %v, want one write of strict to b requested by person:alice", pending)
	}
	aid := fmt.Sprint(intOf(t, "approval", pending[0], "id"))
	for _, who := range []string{"alice", "Alice "} {
		r := w.run(t, "approvals", "approve", aid, "--as", who)
		if r.code != exitFailed || !strings.Contains(r.stderr, "separation of duties") || !strings.Contains(r.stderr, "person:alice") {
			t.Errorf("alice approving her own change as %q: exit %d %q, want exit 1 explaining separation of duties", who, r.code, r.stderr)
		}
	}
	if got := jsonField(t, w.path("b.json"), "b1", "policy"); got != "enforced" {
		t.Errorf("b.json b1 policy = %v before approval", got)
	}
	var ap obj
	w.json(t, &ap, "approvals", "approve", aid, "--as", "bob")
	if ap["status"] != "approved" || ap["decided_by"] != "bob" {
		t.Errorf("bob's approval = %v", ap)
	}
	if got := jsonField(t, w.path("b.json"), "b1", "policy"); got != "strict" {
		t.Errorf("b.json b1 policy = %v after approval, want strict", got)
	}

	if out := w.ok(t, "conflicts", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("open conflicts left: %s", out)
	}
	sum := syncJSON(t, w)
	if n := intOf(t, "sync", sum, "writes_applied") + intOf(t, "sync", sum, "conflicts_opened"); n != 0 {
		t.Errorf("sync after every resolution: %d writes and conflicts, want 0", n)
	}
	// Every person's action is in the audit log with their name.
	var hist []obj
	w.json(t, &hist, "history", "service_account/bot-one")
	actors := map[string]bool{}
	for _, e := range hist {
		actors[e["actor"].(string)+" "+e["action"].(string)] = true
	}
	for _, want := range []string{"person:carol conflict.resolved", "person:alice conflict.resolved", "person:bob approval.granted"} {
		if !actors[want] {
			t.Errorf("history of bot-one lacks %q", want)
		}
	}
	w.ok(t, "audit", "verify")
}
