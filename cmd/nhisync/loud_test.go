package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
)

// goldenRecords returns `records -o json`, to show a failed read changed
// nothing in golden.
func goldenRecords(t *testing.T, w *workspace) string {
	t.Helper()
	return w.ok(t, "records", "-o", "json")
}

// requireLoud checks a pass that failed system: exit 1, the system named
// first with the cause in full, never "in step".
func requireLoud(t *testing.T, what string, r result, system, cause string) {
	t.Helper()
	if r.code != exitFailed {
		t.Errorf("%s: exit %d, want 1\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "FAILED "+system+" could not be read: ") {
		t.Errorf("%s: output does not start by naming %s as failed:\n%s", what, system, r.stdout)
	}
	first, _, _ := strings.Cut(r.stdout, "\n")
	if !strings.Contains(first, cause) {
		t.Errorf("%s: first line lacks the cause %q in full:\n%s", what, cause, first)
	}
	if strings.Contains(r.stdout, "In step") || strings.Contains(r.stdout, "every system is in step") {
		t.Errorf("%s: says in step although %s failed:\n%s", what, system, r.stdout)
	}
	if !strings.Contains(r.stderr, system) {
		t.Errorf("%s: stderr does not name %s: %q", what, system, r.stderr)
	}
}

// TestUnreadableSystemIsLoud reproduces observation 1 of issue 5: with the
// CMDB's path wrong, or a CSV with a broken quote, plan said "every system
// is in step" and exited 0, sync exited 0 with the cause in a truncated
// column, and check --connect called the broken CSV reachable.
func TestUnreadableSystemIsLoud(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	before := goldenRecords(t, w)

	t.Run("wrong path", func(t *testing.T) {
		editFile(t, w.config, "path: ./systems/cmdb.csv", "path: ./systems/cmdb-renamed.csv")
		defer editFile(t, w.config, "path: ./systems/cmdb-renamed.csv", "path: ./systems/cmdb.csv")
		requireLoud(t, "plan", w.run(t, "plan"), "cmdb", "cmdb-renamed.csv")
		requireLoud(t, "sync", w.run(t, "sync"), "cmdb", "cmdb-renamed.csv")
		r := w.run(t, "check", "--connect")
		if r.code != exitFailed || !strings.Contains(r.stdout, "FAILED cmdb: ") {
			t.Errorf("check --connect: exit %d\n%s", r.code, r.stdout)
		}
	})

	t.Run("broken quote", func(t *testing.T) {
		csv := w.path(quickstart.CMDBFile)
		orig := readFile(t, csv)
		lines := strings.SplitN(orig, "\n", 4)
		lines[2] = strings.Replace(lines[2], ",", `,"broken`, 1)
		writeFile(t, csv, strings.Join(lines, "\n"))
		defer writeFile(t, csv, orig)
		r := w.run(t, "check", "--connect")
		if r.code != exitFailed || !strings.Contains(r.stdout, "FAILED cmdb: ") || !strings.Contains(r.stdout, "quoted-field") {
			t.Errorf("check --connect on a CSV it cannot parse: exit %d\n%s", r.code, r.stdout)
		}
		requireLoud(t, "plan", w.run(t, "plan"), "cmdb", `cmdb.csv line 3: extraneous or missing " in quoted-field`)
		r = w.run(t, "sync", "--retry-paused")
		requireLoud(t, "sync", r, "cmdb", `cmdb.csv line 3: extraneous or missing " in quoted-field`)
		// The failed read pauses the CMDB: "fix it and run sync again"
		// would leave it unread for its backoff; the first failure says
		// how to read it at once once fixed.
		if !strings.Contains(r.stdout, "fix it, then run `nhisync sync --retry-paused`") {
			t.Errorf("sync's first read failure does not say to retry with --retry-paused:\n%s", r.stdout)
		}
		// The pass with the failed read degraded the CMDB: the next sync
		// names it as paused, says until when and how to retry now.
		r = w.run(t, "sync")
		if r.code != exitFailed || !strings.HasPrefix(r.stdout, "PAUSED cmdb ") || !strings.Contains(r.stdout, "retried after ") ||
			!strings.Contains(r.stdout, "nhisync sync --retry-paused") || !strings.Contains(r.stdout, "quoted-field") {
			t.Errorf("sync after a failed read: exit %d\n%s", r.code, r.stdout)
		}
	})

	t.Run("unreachable database", func(t *testing.T) {
		editFile(t, w.config, `dsn: "sqlite:./systems/idp.db"`, `dsn: "sqlite:./no-such-dir/idp.db"`)
		defer editFile(t, w.config, `dsn: "sqlite:./no-such-dir/idp.db"`, `dsn: "sqlite:./systems/idp.db"`)
		r := w.run(t, "sync", "--retry-paused")
		if r.code != exitFailed || !strings.Contains(r.stdout, "FAILED idp ") {
			t.Errorf("sync with the idp unreachable: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("every system unreadable", func(t *testing.T) {
		orig := readFile(t, w.config)
		defer writeFile(t, w.config, orig)
		s := strings.ReplaceAll(orig, "path: ./systems/", "path: ./gone/")
		writeFile(t, w.config, strings.Replace(s, "sqlite:./systems/idp.db", "sqlite:./gone/idp.db?mode=ro", 1))
		r := w.run(t, "sync", "--retry-paused")
		if r.code != exitFailed || !strings.Contains(r.stderr, "nothing was synced") {
			t.Errorf("sync with every system unreadable: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		for _, s := range []string{"idp", "cmdb", "catalog", "policy"} {
			if !strings.Contains(r.stdout, "FAILED "+s+" ") {
				t.Errorf("sync does not name %s as failed:\n%s", s, r.stdout)
			}
		}
	})

	if after := goldenRecords(t, w); after != before {
		t.Error("failed reads changed golden records")
	}
	// Fixed, the systems sync again and the pass succeeds.
	w.ok(t, "sync", "--retry-paused")
}

// TestJSONErrors: with -o json every error is also on stdout in SPEC §6's
// shape, exit codes kept; a failed pass puts it in its summary object.
func TestJSONErrors(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	errorOf := func(t *testing.T, r result) (code, msg string) {
		t.Helper()
		var v struct {
			Error *errorJSON `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Error == nil {
			t.Fatalf("stdout is not one JSON object with an error (%v):\n%s", err, r.stdout)
		}
		return v.Error.Code, v.Error.Message
	}
	for _, tc := range []struct {
		args []string
		exit int
		code string
	}{
		{[]string{"show", "service_account/aws/no-such-bot", "-o", "json"}, exitFailed, "not_found"},
		{[]string{"-o", "json", "show", "nokind/x"}, exitInvalid, "invalid"},
		{[]string{"--output=json", "no-such-command"}, exitInvalid, "invalid"},
		{[]string{"approvals", "approve", "abc", "-o", "json"}, exitInvalid, "invalid"},
		{[]string{"quarantine", "--status", "bogus", "-o", "json"}, exitInvalid, "invalid"},
	} {
		r := w.run(t, tc.args...)
		if r.code != tc.exit {
			t.Errorf("%v: exit %d, want %d", tc.args, r.code, tc.exit)
		}
		if code, msg := errorOf(t, r); code != tc.code || msg == "" {
			t.Errorf("%v: error %q %q, want code %q", tc.args, code, msg, tc.code)
		}
	}

	editFile(t, w.config, "path: ./systems/policy.json", "path: ./systems/nope.json")
	r := w.run(t, "sync", "-o", "json")
	if r.code != exitFailed {
		t.Errorf("sync -o json with policy unreadable: exit %d", r.code)
	}
	var sum obj
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("sync -o json prints more than one JSON object: %v\n%s", err, r.stdout)
	}
	for _, k := range summaryKeys {
		intOf(t, "failed sync", sum, k)
	}
	e := objOf(t, "failed sync", sum, "error")
	if e["code"] != "unavailable" || !strings.Contains(e["message"].(string), "policy") {
		t.Errorf("failed sync's error = %v", e)
	}
	if p := objOf(t, "systems", objOf(t, "failed sync", sum, "systems"), "policy"); p["read_failed"] != true || !strings.Contains(p["error"].(string), "nope.json") {
		t.Errorf("systems.policy = %v", p)
	}
	r = w.run(t, "plan", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != exitFailed || err != nil || sum["error"] == nil {
		t.Errorf("plan -o json with policy unreadable: exit %d, %v\n%s", r.code, err, r.stdout)
	}
}

// TestAuditHashesOneEncoding: audit verify printed roots in base64 and
// audit proof's table in hex (issue 5, point 9); both print base64, as
// SPEC §4's JSON does.
func TestAuditHashesOneEncoding(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	var p obj
	w.json(t, &p, "audit", "proof", "1")
	root := strOf(t, "proof", p, "root_hash")
	if out := w.ok(t, "audit", "verify"); !strings.Contains(out, "hash to root "+root) {
		t.Errorf("audit verify does not print the root %s:\n%s", root, out)
	}
	out := w.ok(t, "audit", "proof", "1")
	if !strings.Contains(out, "with root "+root) || !strings.Contains(out, "leaf hash "+strOf(t, "proof", p, "leaf_hash")) {
		t.Errorf("audit proof table does not print the JSON's base64 hashes (root %s):\n%s", root, out)
	}
}

// TestSyncListsChanges: sync printed only counts, unlike plan, and a
// guard trip showed as "approvals requested 1" with an empty note (issue
// 5, point 9). sync now lists per system what it changed, capped with
// "and N more" (all with -v), and names a guard trip with its count and
// the command to review it.
func TestSyncListsChanges(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	editFile(t, w.config, "  catalog:\n    connector: file\n", "  catalog:\n    connector: file\n    guard: 2\n")
	csv := w.path(quickstart.CMDBFile)
	writeFile(t, csv, strings.ReplaceAll(readFile(t, csv), "@example.com", "@example.net"))
	out := w.ok(t, "sync")
	for _, want := range []string{"\ncmdb\n  accept            service_account/", "more (all of them with -v)", "\ncatalog\n", "guard holds", "review with `nhisync approvals`", "held by the guard"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
	var as []obj
	w.json(t, &as, "approvals")
	guards := 0
	for _, a := range as {
		if a["guard"] == true {
			guards++
			if n := intOf(t, "guard approval", a, "count"); !strings.Contains(out, fmt.Sprintf("%d non-empty values in catalog", n)) {
				t.Errorf("sync does not give the guard's count %d:\n%s", n, out)
			}
		}
	}
	if guards != 1 {
		t.Fatalf("%d guard approvals, want 1: %v", guards, as)
	}

	writeFile(t, csv, strings.ReplaceAll(readFile(t, csv), "@example.net", "@example.org"))
	out = w.ok(t, "sync", "-v")
	if strings.Contains(out, "more (all of them with -v)") || strings.Count(out, "  accept            service_account/") < 10 {
		t.Errorf("sync -v does not list every decision:\n%s", out)
	}
}

// TestInStepMeansInStep reproduces observation 4 of issue 5: after
// rejecting held writes plan said every system was in step. plan and
// sync now end with the drift line, and nhisync drift lists the fields.
func TestInStepMeansInStep(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	var as []obj
	w.json(t, &as, "approvals")
	if len(as) == 0 {
		t.Fatal("the demo estate holds no writes for approval")
	}
	for _, a := range as {
		w.ok(t, "approvals", "reject", fmt.Sprint(intOf(t, "approval", a, "id")), "--as", "dana")
	}
	for _, cmd := range []string{"plan", "sync"} {
		out := w.ok(t, cmd)
		if strings.Contains(out, "In step") || strings.Contains(out, "every system is in step") {
			t.Errorf("%s says in step after rejected writes:\n%s", cmd, out)
		}
		if want := fmt.Sprintf("%d rejected by a person", len(as)); !strings.Contains(out, "Not in step: ") || !strings.Contains(out, want) {
			t.Errorf("%s lacks the drift line with %q:\n%s", cmd, want, out)
		}
	}
	var items []obj
	w.json(t, &items, "drift")
	rejected := 0
	for _, it := range items {
		requireKeys(t, "drift item", it, "kind", "record", "field", "system", "value", "golden", "reason")
		if it["reason"] == "rejected" {
			rejected++
		}
	}
	if rejected != len(as) {
		t.Errorf("drift lists %d rejected writes, want %d: %v", rejected, len(as), items)
	}
	w.json(t, &items, "drift", "--reason", "quarantined", "--system", "cmdb")
	if len(items) == 0 {
		t.Error("drift --reason quarantined --system cmdb lists nothing")
	}
	if r := w.run(t, "drift", "--reason", "bogus"); r.code != exitInvalid || !strings.Contains(r.stderr, "rejected") {
		t.Errorf("drift --reason bogus: exit %d %q", r.code, r.stderr)
	}
}

// TestUnmatchedCommand reproduces observation 8 of issue 5: quickstart
// reported "unmatched 3", the next sync "unmatched 0", and no command
// listed them (quarantine's help promised them). nhisync unmatched lists
// them until they link or a person dismisses them, audited.
func TestUnmatchedCommand(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	out := w.ok(t, "sync")
	if !strings.Contains(out, "3 records link to no golden record (3 unmatched, 0 disputed): nhisync unmatched lists them.") {
		t.Errorf("the second sync does not tell the open unmatched records:\n%s", out)
	}
	// The long reasons are said once each, with how many records they
	// hold for (a bare "2:" read as a footnote number no row pointed at).
	if table := w.ok(t, "unmatched"); !strings.Contains(table, "\n2 records: no golden record matches, and policy is not in create_from") ||
		!strings.Contains(table, "\n1 record: no golden record matches, and catalog") {
		t.Errorf("unmatched table does not count its reasons in records:\n%s", table)
	}
	var us []obj
	w.json(t, &us, "unmatched")
	if len(us) != 3 {
		t.Fatalf("unmatched lists %d records, want 3: %v", len(us), us)
	}
	for _, u := range us {
		requireKeys(t, "unmatched item", u, "id", "kind", "system", "native_id", "key", "first_seen", "last_seen", "status", "reason")
	}
	id := strOf(t, "unmatched", us[0], "id")
	if r := w.run(t, "unmatched", "dismiss", id); r.code == exitOK && strings.TrimSpace(r.stdout) == "" {
		t.Errorf("dismiss printed nothing")
	}
	w.ok(t, "unmatched", "dismiss", strOf(t, "unmatched", us[1], "id"), "--as", "erin")
	w.json(t, &us, "unmatched")
	if len(us) != 1 {
		t.Errorf("after dismissing two, unmatched lists %d", len(us))
	}
	w.json(t, &us, "unmatched", "--dismissed")
	if len(us) != 3 {
		t.Errorf("unmatched --dismissed lists %d, want 3", len(us))
	}
	var verify obj
	w.json(t, &verify, "audit", "verify")
	if verify["ok"] != true {
		t.Errorf("audit verify after dismissals: %v", verify)
	}
	if r := w.run(t, "unmatched", "dismiss", "nosuchsystem/x", "--as", "erin"); r.code != exitInvalid {
		t.Errorf("dismiss of an unknown system: exit %d %q", r.code, r.stderr)
	}
	if r := w.run(t, "unmatched", "dismiss", "idp/nope", "--as", "erin"); r.code != exitFailed || !strings.Contains(r.stderr, "nhisync unmatched") {
		t.Errorf("dismiss of an unknown record: exit %d %q", r.code, r.stderr)
	}
	if help := w.ok(t, "quarantine", "--help"); !strings.Contains(help, "nhisync unmatched") {
		t.Errorf("quarantine's help does not point to nhisync unmatched:\n%s", help)
	}
}

// TestNoCreateFromSaysWhy: with a fresh config whose kind has no
// create_from, every record is unmatched; sync says why and what to add.
func TestNoCreateFromSaysWhy(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"nhisync.yaml": `version: 1
store: sqlite:./state/nhisync.db
kinds:
  service_account:
    match: [name]
    fields:
      name:  { type: string }
      owner: { type: string }
systems:
  cmdb: { connector: file, path: cmdb.json, kind: service_account, id: id, fields: { name: name, owner: owner } }
`,
		"cmdb.json": `[{"id": "1", "name": "bot", "owner": "a@x"}]`,
	})
	out := w.ok(t, "sync")
	if !strings.Contains(out, "Kind service_account has no create_from") || !strings.Contains(out, "kinds.service_account.create_from") {
		t.Errorf("sync does not say why every record is unmatched:\n%s", out)
	}
	var us []obj
	w.json(t, &us, "unmatched")
	if len(us) != 1 || !strings.Contains(strOf(t, "unmatched", us[0], "reason"), "create_from: [cmdb]") {
		t.Errorf("unmatched = %v", us)
	}
}

// TestShowKeepsLongValues: show clipped a single record's values at 60
// characters (issue 5, point 9); it prints them in full.
func TestShowKeepsLongValues(t *testing.T) {
	long := "platform-engineering-shared-services-oncall-rotation-team@example.com"
	w := newWorkspace(t, map[string]string{
		"nhisync.yaml": `version: 1
store: sqlite:./state/nhisync.db
kinds:
  service_account:
    match: [name]
    create_from: [cmdb]
    fields:
      name:  { type: string }
      owner: { type: string }
      tags:  { type: set }
systems:
  cmdb: { connector: file, path: cmdb.json, kind: service_account, id: id, fields: { name: name, owner: owner, tags: tags } }
`,
		"cmdb.json": `[{"id": "1", "name": "bot", "owner": "` + long + `", "tags": ["confidential", "customer-data", "payment-card-industry", "personally-identifiable"]}]`,
	})
	w.ok(t, "sync")
	out := w.ok(t, "show", "service_account/bot")
	for _, want := range []string{long, "confidential, customer-data, payment-card-industry, personally-identifiable"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not print %q in full:\n%s", want, out)
		}
	}
}

// TestQueueStatuses: quarantine --all had no STATUS column and --status
// took any string, silently listing nothing (issue 5, point 9).
func TestQueueStatuses(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, true)
	var qs []obj
	w.json(t, &qs, "quarantine")
	if len(qs) == 0 {
		t.Fatal("the demo estate quarantined nothing")
	}
	w.ok(t, "quarantine", "dismiss", fmt.Sprint(intOf(t, "quarantine", qs[0], "id")), "--as", "erin")
	out := w.ok(t, "quarantine", "--all")
	header, _, _ := strings.Cut(out, "\n")
	if !strings.HasSuffix(strings.TrimSpace(header), "STATUS") || !strings.Contains(out, "dismissed") || !strings.Contains(out, " open") {
		t.Errorf("quarantine --all does not show each item's status:\n%s", out)
	}
	for _, q := range []string{"quarantine", "conflicts", "approvals"} {
		r := w.run(t, q, "--status", "bogus")
		if r.code != exitInvalid || !strings.Contains(r.stderr, `--status "bogus"`) || !strings.Contains(r.stderr, "(or use --all)") {
			t.Errorf("%s --status bogus: exit %d %q", q, r.code, r.stderr)
		}
	}
	if r := w.run(t, "quarantine", "--status", "dismissed"); r.code != exitOK || !strings.HasPrefix(strings.SplitN(r.stdout, "\n", 3)[1], fmt.Sprint(intOf(t, "quarantine", qs[0], "id"))+" ") {
		t.Errorf("quarantine --status dismissed: exit %d\n%s", r.code, r.stdout)
	}
}

// TestPlanOfAHeldRetirementIsNotInStep: planned before any sync holds it,
// a mass vanishing shows as a guard trip, and plan must not promise that
// every system will hold every golden value once its writes land.
func TestPlanOfAHeldRetirementIsNotInStep(t *testing.T) {
	var rows []string
	for i := range 30 {
		rows = append(rows, fmt.Sprintf(`{"id": "%d", "platform": "aws", "name": "bot%d", "status": "active"}`, i, i))
	}
	export := "[" + strings.Join(rows, ",\n") + "]"
	w := newWorkspace(t, map[string]string{"nhisync.yaml": retireEstate, "idp.json": export, "cmdb.json": export})
	w.ok(t, "sync")
	writeFile(t, w.path("idp.json"), "[]")
	out := w.ok(t, "plan")
	if !strings.Contains(out, "guard holds") || strings.Contains(out, "Once these writes land") || !strings.Contains(out, "Not in step after these writes: 1 guard requests") {
		t.Errorf("plan of an emptied idp export:\n%s", out)
	}
}
