package quickstart

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// briefConfig is the workspace config as the assignment states it, in
// flow style, plus what the governance reports read (max_age, used_by,
// the application register, poll). The generated file must mean exactly
// this.
const briefConfig = `
version: 1
store: sqlite:./nhisync-data/nhisync.db
audit:
  signing_key: ./nhisync-data/audit.key
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog], stale_after: 2160h }
      application:    { type: string, authority: [cmdb] }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp, policy] }
      last_rotated:   { type: time, authority: [idp], max_age: 2160h }
      used_by:        { type: set, resolve: merge }
      policy_state:   { type: string, authority: [catalog], approve_to: [policy] }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
  application:
    match: [name]
    create_from: [apps]
    fields:
      name:      { type: string }
      team:      { type: string }
      lifecycle: { type: enum, values: [active, decommissioned] }
systems:
  idp:      { connector: sql, kind: service_account, dsn: "sqlite:./systems/idp.db", table: service_accounts, id: id, updated_column: updated_at, poll: 1h,
              fields: { name: name, platform: platform, lifecycle: status, entitlements: scopes, last_rotated: rotated_at } }
  cmdb:     { connector: file, kind: service_account, path: ./systems/cmdb.csv, id: sys_id, poll: 1h,
              fields: { name: name, platform: platform, owner: owned_by, application: app, lifecycle: status, classification: tags } }
  catalog:  { connector: file, kind: service_account, path: ./systems/catalog.yaml, poll: 1h,
              fields: { name: name, platform: platform, owner: steward, classification: tags, policy_state: policy, used_by: used_by } }
  policy:   { connector: file, kind: service_account, path: ./systems/policy.json, id: id, poll: 1h,
              fields: { name: account, platform: platform, entitlements: grants, policy_state: state } }
  apps:     { connector: file, kind: application, path: ./systems/apps.csv, id: name, poll: 1h,
              fields: { name: name, team: team, lifecycle: status } }
`

func TestConfig(t *testing.T) {
	sc, err := Generate(t.TempDir(), Options{Seed: 1, Accounts: MinAccounts})
	if err != nil {
		t.Fatal(err)
	}
	if sc.ConfigPath != filepath.Join(sc.Dir, ConfigFile) {
		t.Errorf("ConfigPath %s, want %s in %s", sc.ConfigPath, ConfigFile, sc.Dir)
	}
	written := readFile(t, sc.ConfigPath)
	var got, want any
	if err := yaml.Unmarshal(written, &got); err != nil {
		t.Fatalf("nhisync.yaml does not parse: %v", err)
	}
	if err := yaml.Unmarshal([]byte(briefConfig), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nhisync.yaml means something else (-want +got):\n%s", diff)
	}

	// The rule reaches CEL with its backslashes doubled, so CEL's string
	// unescaping leaves the regular expression \s.
	var doc struct {
		Kinds map[string]struct {
			Rules []struct{ Check string }
		}
	}
	if err := yaml.Unmarshal(written, &doc); err != nil {
		t.Fatal(err)
	}
	if rules := doc.Kinds["service_account"].Rules; len(rules) != 1 || rules[0].Check != `owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')` {
		t.Errorf("rule check = %+v", rules)
	}

	// Block style for mappings, and comments for a newcomer.
	for i, line := range strings.Split(string(written), "\n") {
		if strings.Contains(line, "{") {
			t.Errorf("line %d is a flow mapping: %s", i+1, line)
		}
	}
	if n := strings.Count(string(written), "\n#") + strings.Count(string(written), "  # "); n < 10 {
		t.Errorf("nhisync.yaml has %d comment lines, want it explained", n)
	}
}
