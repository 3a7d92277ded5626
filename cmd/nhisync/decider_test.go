package main

import (
	"fmt"
	"strings"
	"testing"
)

// refConfig has a ref field settled by priority (application, which the
// registry sets) and one settled by a person (backup_team), both pointing
// at records of another kind.
const refConfig = `version: 1
store: sqlite:./data/nhisync.db
audit:
  signing_key: ./data/audit.key
kinds:
  service_account:
    match: [name]
    create_from: [registry]
    fields:
      name: { type: string, required: true }
      application: { type: ref, to: application, authority: [registry] }
      backup_team: { type: ref, to: team, resolve: manual }
  application:
    match: [name]
    create_from: [apps]
    fields:
      name: { type: string }
  team:
    match: [name]
    create_from: [teams]
    fields:
      name: { type: string }
systems:
  registry:
    connector: file
    kind: service_account
    path: ./registry.json
    id: id
    fields: { name: name, application: app, backup_team: backup }
  catalog:
    connector: file
    kind: service_account
    path: ./catalog.json
    id: id
    fields: { name: name, application: app, backup_team: backup }
  apps:
    connector: file
    kind: application
    path: ./apps.json
    id: id
    fields: { name: name }
  teams:
    connector: file
    kind: team
    path: ./teams.json
    id: id
    fields: { name: name }
`

func newRefWorkspace(t *testing.T) *workspace {
	return newWorkspace(t, map[string]string{
		"nhisync.yaml": refConfig,
		// app1 is no application anyone knows: the ref is quarantined.
		"registry.json": `[
  {"id": "r1", "name": "bot-one", "app": "app1", "backup": "core"},
  {"id": "r2", "name": "bot-two", "app": "billing"}
]`,
		"catalog.json": `[
  {"id": "c1", "name": "bot-one", "backup": "ops"}
]`,
		"apps.json":  `[{"id": "billing", "name": "billing"}]`,
		"teams.json": `[{"id": "core", "name": "core"}, {"id": "ops", "name": "ops"}]`,
	})
}

// Issue 5 observation 6: what-if with the unchanged config chose a value
// sync had quarantined for a missing ref target, because Recompute skipped
// the ref check (and required and unique key) that the pass runs.
func TestWhatIfValidatesLikeSync(t *testing.T) {
	w := newRefWorkspace(t)
	sum := syncJSON(t, w)
	if n := intOf(t, "sync", sum, "quarantined"); n != 1 {
		t.Fatalf("sync quarantined %d, want 1 (bot-one's application app1 has no target)", n)
	}
	var q []obj
	w.json(t, &q, "quarantine")
	if len(q) != 1 || q[0]["rule"] != "ref" || q[0]["field"] != "application" {
		t.Fatalf("quarantine = %v, want bot-one's application held by rule ref", q)
	}

	var x struct {
		Records int `json:"records"`
		Changes []struct {
			Record string `json:"record"`
			Field  string `json:"field"`
		} `json:"changes"`
	}
	w.json(t, &x, "plan", "--rules", w.config)
	if len(x.Changes) != 0 {
		t.Errorf("plan --rules with the unchanged config proposes %+v; it must choose what sync chose", x.Changes)
	}
	if out := w.ok(t, "plan", "--rules", w.config); !strings.Contains(out, "keep every value") {
		t.Errorf("plan --rules with the unchanged config printed:\n%s", out)
	}

	// explain's recomputed value is the pass's too: app1 is not chosen.
	var ex obj
	w.json(t, &ex, "explain", "service_account/bot-one", "application")
	re, _ := ex["recomputed"].(map[string]any)
	if v, _ := re["value"].(string); v != "" {
		t.Errorf("explain recomputes application = %q, want no value (app1 fails ref)", v)
	}

	// Issue 5 point 9: explain -o json gives the rank the table prints
	// (1 for the first system of authority; 0 for one that may not set it).
	as, _ := ex["assertions"].([]any)
	ranks := map[string]any{}
	for _, a := range as {
		ao, _ := a.(map[string]any)
		ranks[fmt.Sprint(ao["system"])] = ao["rank"]
	}
	if ranks["registry"] != float64(1) || ranks["catalog"] != float64(0) {
		t.Errorf("explain -o json ranks %v, want registry 1 and catalog 0", ranks)
	}
	if out := w.ok(t, "explain", "service_account/bot-one", "application"); !strings.Contains(out, "rank 1") {
		t.Errorf("explain table does not say rank 1 for the registry:\n%s", out)
	}
}

// Issue 5 observation 7: a person's --value skipped the ref check (the
// human path had no record index), so a team nobody knows was accepted.
func TestResolveValueChecksRef(t *testing.T) {
	w := newRefWorkspace(t)
	if n := intOf(t, "sync", syncJSON(t, w), "conflicts_opened"); n != 1 {
		t.Fatalf("conflicts_opened = %d, want 1 (backup_team: core from the registry, ops from the catalog)", n)
	}
	var open []obj
	w.json(t, &open, "conflicts")
	if len(open) != 1 || open[0]["field"] != "backup_team" {
		t.Fatalf("open conflicts %v, want one on backup_team", open)
	}
	id := fmt.Sprint(intOf(t, "conflict", open[0], "id"))

	r := w.run(t, "conflicts", "resolve", id, "--value", "no-such-team", "--as", "carol")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "ref") || !strings.Contains(r.stderr, `no team "no-such-team" exists`) {
		t.Fatalf("resolve --value no-such-team: exit %d %q, want exit %d naming the missing team", r.code, r.stderr, exitInvalid)
	}
	w.json(t, &open, "conflicts")
	if len(open) != 1 || open[0]["status"] != "open" {
		t.Fatalf("after a refused --value the conflict is %v, want still open", open)
	}

	var c obj
	w.json(t, &c, "conflicts", "resolve", id, "--value", "OPS", "--as", "carol")
	if c["status"] != "resolved" {
		t.Errorf("resolve --value OPS (an existing team, any case) = %v", c)
	}
	if got := jsonField(t, w.path("registry.json"), "r1", "backup"); got != "OPS" {
		t.Errorf("registry r1 backup = %v after carol gave OPS", got)
	}
}
