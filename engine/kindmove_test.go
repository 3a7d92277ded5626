package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync/config"
)

// moveConfig has kinds app and team, whose fields are declared in
// another order; system s holds kind sKind.
func moveConfig(sKind string) string {
	appFrom, teamFrom := "[s]", "[t]"
	if sKind == "team" {
		appFrom, teamFrom = "[u]", "[s, t]"
	}
	return `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: ` + appFrom + `
    fields:
      name:  { type: string, required: true }
      owner: { type: string }
  team:
    match: [name]
    create_from: ` + teamFrom + `
    fields:
      owner: { type: string }
      name:  { type: string, required: true }
systems:
  s:
    connector: file
    path: s.json
    kind: ` + sKind + `
    id: id
    fields: { name: name, owner: owner }
  t:
    connector: file
    path: t.json
    kind: team
    id: id
    fields: { name: name, owner: owner }
  u:
    connector: file
    path: u.json
    kind: app
    id: id
    fields: { name: name, owner: owner }
`
}

// A system moved to another kind in the config still links records of
// its old kind, which a pass decides with their own kind's fields: a
// record of its new kind decided after one of them in the same pass
// takes the system's fields by name too, not by the old kind's field
// order (its proposals, and the writes planned to the system).
func TestSystemMovedToAnotherKindKeepsFieldsApart(t *testing.T) {
	w := newWorld(t, moveConfig("app"), map[string][]map[string]any{
		"s.json": {{"id": "s1", "name": "alpha", "owner": "a@x"}},
		"t.json": {},
		"u.json": {},
	})
	w.sync()
	if got := w.golden("app", "owner", "alpha"); got != "a@x" {
		t.Fatalf("app alpha owner = %s, want a@x", got)
	}

	if err := os.WriteFile(filepath.Join(w.dir, "nhisync.yaml"), []byte(moveConfig("team")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(w.dir, "nhisync.yaml"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w.cfg = cfg
	w.put("s.json", []map[string]any{
		{"id": "s1", "name": "alpha", "owner": "a@x"},
		{"id": "s2", "name": "beta", "owner": "b@x"},
	})
	w.put("t.json", []map[string]any{{"id": "t1", "name": "beta", "owner": "b@x"}})
	sum := w.sync()
	for field, want := range map[string]string{"name": "beta", "owner": "b@x"} {
		if got := w.golden("team", field, "beta"); got != want {
			t.Errorf("team beta %s = %s, want %s\n%s", field, got, want, actions(sum))
		}
	}
	if cs := w.conflicts("open"); len(cs) > 0 {
		t.Errorf("%d open conflicts, want none: the first on %s", len(cs), cs[0].Field)
	}
	for _, id := range []string{"s2"} {
		if got := w.field("s.json", id, "name"); got != "beta" {
			t.Errorf("s.json %s name = %v, want beta", id, got)
		}
		if got := w.field("s.json", id, "owner"); got != "b@x" {
			t.Errorf("s.json %s owner = %v, want b@x", id, got)
		}
	}
}
