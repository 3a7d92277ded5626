package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// baseConfig is the SPEC's example kind over three JSON systems.
const baseConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog], stale_after: 2160h }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp, cmdb] }
      policy_state:   { type: string, authority: [catalog], approve_to: [cmdb] }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
systems:
  idp:
    connector: file
    path: idp.json
    kind: service_account
    id: id
    fields: { name: name, platform: platform, lifecycle: status, entitlements: scopes }
  cmdb:
    connector: file
    path: cmdb.json
    kind: service_account
    id: id
    fields: { name: name, platform: platform, owner: owner, lifecycle: status, classification: tags, entitlements: scopes, policy_state: policy }
  catalog:
    connector: file
    path: catalog.json
    kind: service_account
    id: id
    fields: { name: name, platform: platform, owner: steward, classification: tags, policy_state: policy }
`

func TestFirstPassCreatesLinksAndConverges(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot", "status", "active", "scopes", []any{"s3:read"})},
		"cmdb.json":    {sa("c1", "AWS", " Payments-Bot ", "owner", "alice@example.com", "tags", []any{"pci"})},
		"catalog.json": {sa("k1", "aws", "payments-bot", "steward", "alice@example.com")},
	})
	sum := w.sync()
	if sum.Created != 1 || sum.Linked != 2 {
		t.Fatalf("created %d linked %d, want 1 and 2\n%s", sum.Created, sum.Linked, actions(sum))
	}
	rec := w.record("service_account", "aws", "payments-bot")
	if got := len(rec.Links); got != 3 {
		t.Fatalf("links = %d, want 3", got)
	}
	// Every system is brought to the golden values it maps.
	if got := w.field("catalog.json", "k1", "tags"); got == nil {
		t.Fatalf("catalog tags not filled: %v", w.get("catalog.json"))
	}
	if got := w.field("cmdb.json", "c1", "scopes"); got == nil {
		t.Fatalf("cmdb scopes not filled")
	}
	// A second quiet pass plans and applies nothing.
	sum = w.sync()
	if sum.WritesPlanned != 0 || sum.WritesApplied != 0 || sum.Accepted != 0 {
		t.Fatalf("second pass not quiet: %+v\n%s", sum, actions(sum))
	}
	for name, s := range sum.Systems {
		if s.Changed != 0 {
			t.Errorf("%s: %d records read as changed after nhisync's own writes (echo)", name, s.Changed)
		}
	}
}

func TestAuthorityRanksAndRepairs(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "cmdb@example.com")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com")},
	})
	sum := w.sync()
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "cmdb@example.com" {
		t.Fatalf("owner = %q, want cmdb's\n%s", got, actions(sum))
	}
	if got := w.field("catalog.json", "k1", "steward"); got != "cmdb@example.com" {
		t.Fatalf("catalog not repaired: steward = %v", got)
	}
	// The lower-ranked catalog changes the owner: refused, repaired.
	w.edit("catalog.json", "k1", map[string]any{"steward": "mallory@example.com"})
	sum = w.sync()
	if sum.Refused != 1 || sum.Accepted != 0 {
		t.Fatalf("want one refusal\n%s", actions(sum))
	}
	if got := w.field("catalog.json", "k1", "steward"); got != "cmdb@example.com" {
		t.Fatalf("catalog not repaired after refusal: %v", got)
	}
	// The authority changes it: accepted and propagated.
	w.edit("cmdb.json", "c1", map[string]any{"owner": "bob@example.com"})
	w.sync()
	if got := w.field("catalog.json", "k1", "steward"); got != "bob@example.com" {
		t.Fatalf("catalog = %v, want bob", got)
	}
	// Refused once is heard: it is not proposed again.
	sum = w.sync()
	if sum.Refused+sum.Accepted+sum.WritesPlanned != 0 {
		t.Fatalf("quiet pass decided something\n%s", actions(sum))
	}
}

func TestStaleValueMayBeReplaced(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "old@example.com")},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	w.sync()
	// The cmdb record disappears; its value is no longer seen held.
	w.remove("cmdb.json", "c1")
	w.sync()
	w.edit("catalog.json", "k1", map[string]any{"steward": "new@example.com"})
	w.clock.Advance(24 * time.Hour)
	sum := w.sync()
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "old@example.com" {
		t.Fatalf("fresh value replaced by lower rank: %q\n%s", got, actions(sum))
	}
	w.edit("catalog.json", "k1", map[string]any{"steward": "newer@example.com"})
	w.clock.Advance(2200 * time.Hour)
	sum = w.sync()
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "newer@example.com" {
		t.Fatalf("stale value not replaced: %q\n%s", got, actions(sum))
	}
}

func TestOnRefusedReportLeavesSystemAsIs(t *testing.T) {
	cfg := baseConfig + "    on_refused: report\n"
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "cmdb@example.com")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com")},
	})
	w.sync()
	if got := w.field("catalog.json", "k1", "steward"); got != "cat@example.com" {
		t.Fatalf("report-only system was written: %v", got)
	}
	sum := w.sync()
	if sum.WritesPlanned != 0 || sum.Refused != 0 {
		t.Fatalf("second pass not quiet\n%s", actions(sum))
	}
	// A new golden value is still propagated to it.
	w.edit("cmdb.json", "c1", map[string]any{"owner": "bob@example.com"})
	w.sync()
	if got := w.field("catalog.json", "k1", "steward"); got != "bob@example.com" {
		t.Fatalf("new golden value not propagated to report-only system: %v", got)
	}
}

func TestMergeAddWinsAndRemoveWins(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot", "scopes", []any{"a", "b"})},
		"cmdb.json":    {sa("c1", "aws", "bot", "tags", []any{"x", "y"}, "scopes", []any{"a", "b"})},
		"catalog.json": {sa("k1", "aws", "bot", "tags", []any{"x", "y"})},
	})
	w.sync()
	// Concurrently: cmdb removes tag y and adds z; catalog... re-adds y?
	// classification is add-wins: cmdb removes x, catalog adds w.
	w.edit("cmdb.json", "c1", map[string]any{"tags": []any{"y"}, "scopes": []any{"a", "b", "c"}})
	w.edit("catalog.json", "k1", map[string]any{"tags": []any{"x", "y", "w"}})
	// entitlements is remove-wins: idp revokes b while cmdb adds c.
	w.edit("idp.json", "i1", map[string]any{"scopes": []any{"a"}})
	sum := w.sync()
	if got := w.golden("service_account", "classification", "aws", "bot"); got != "w, y" {
		t.Fatalf("classification = %q, want w, y\n%s", got, actions(sum))
	}
	if got := w.golden("service_account", "entitlements", "aws", "bot"); got != "a, c" {
		t.Fatalf("entitlements = %q, want a, c\n%s", got, actions(sum))
	}
}

func TestMergeConcurrentAddRemoveOfSameElement(t *testing.T) {
	for _, tc := range []struct {
		wins, want string
	}{
		{"add", "a, x"},
		{"remove", "a"},
	} {
		t.Run("wins "+tc.wins, func(t *testing.T) {
			// a is read-only, so it stays behind the golden value: its
			// shadow lacks x while b's holds it. Then a adds x while b
			// removes it: a concurrent add and remove of one element.
			cfg := `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: [a]
    fields:
      name: { type: string }
      labels: { type: set, resolve: merge, wins: ` + tc.wins + ` }
systems:
  a: { connector: file, path: a.json, kind: app, id: id, direction: read, fields: { name: name, labels: labels } }
  b: { connector: file, path: b.json, kind: app, id: id, fields: { name: name, labels: labels } }
`
			w := newWorld(t, cfg, map[string][]map[string]any{
				"a.json": {{"id": "1", "name": "n", "labels": []any{"a"}}},
				"b.json": {{"id": "1", "name": "n", "labels": []any{"a", "x"}}},
			})
			w.sync()
			if got := w.golden("app", "labels", "n"); got != "a, x" {
				t.Fatalf("labels after first pass = %q", got)
			}
			w.edit("a.json", "1", map[string]any{"labels": []any{"a", "x"}})
			w.edit("b.json", "1", map[string]any{"labels": []any{"a"}})
			sum := w.sync()
			if got := w.golden("app", "labels", "n"); got != tc.want {
				t.Fatalf("labels = %q, want %q\n%s", got, tc.want, actions(sum))
			}
		})
	}
}

func TestStrictestFailsClosed(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot", "status", "decommissioned")},
		"cmdb.json":    {sa("c1", "aws", "bot", "status", "active")},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	sum := w.sync()
	if got := w.golden("service_account", "lifecycle", "aws", "bot"); got != "decommissioned" {
		t.Fatalf("lifecycle = %q\n%s", got, actions(sum))
	}
	if got := w.field("cmdb.json", "c1", "status"); got != "decommissioned" {
		t.Fatalf("cmdb status = %v", got)
	}
	// A later, deliberate reactivation by a system that saw the
	// decommission is an ordinary change.
	w.edit("cmdb.json", "c1", map[string]any{"status": "active"})
	w.sync()
	if got := w.golden("service_account", "lifecycle", "aws", "bot"); got != "active" {
		t.Fatalf("sequential reactivation refused: %q", got)
	}
}

func TestQuarantineOnceAndLeave(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "not-an-email")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com")},
	})
	sum := w.sync()
	if sum.Quarantined != 1 {
		t.Fatalf("quarantined %d\n%s", sum.Quarantined, actions(sum))
	}
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "cat@example.com" {
		t.Fatalf("owner = %q", got)
	}
	if got := w.field("cmdb.json", "c1", "owner"); got != "not-an-email" {
		t.Fatalf("quarantined source was repaired: %v", got)
	}
	sum = w.sync()
	if sum.Quarantined != 0 || sum.WritesPlanned != 0 {
		t.Fatalf("quarantined again\n%s", actions(sum))
	}
	q := w.quarantine(nhisync.StatusOpen)
	if len(q) != 1 || q[0].Rule != "owner-is-email" {
		t.Fatalf("quarantine = %+v", q)
	}
	// The source fixes the value: the item clears and the value is accepted.
	w.edit("cmdb.json", "c1", map[string]any{"owner": "fixed@example.com"})
	w.sync()
	if len(w.quarantine(nhisync.StatusOpen)) != 0 {
		t.Fatal("item did not leave quarantine when the source changed")
	}
	if got := w.golden("service_account", "owner", "aws", "bot"); got != "fixed@example.com" {
		t.Fatalf("owner = %q", got)
	}
}

func TestDismissRepairs(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "bad value")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com")},
	})
	w.sync()
	q := w.quarantine(nhisync.StatusOpen)
	if len(q) != 1 {
		t.Fatalf("quarantine = %v", q)
	}
	e := w.engine()
	if _, err := e.DismissQuarantine(context.Background(), q[0].ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.field("cmdb.json", "c1", "owner"); got != "cat@example.com" {
		t.Fatalf("dismissed source not repaired: %v", got)
	}
	if _, err := e.DismissQuarantine(context.Background(), q[0].ID, "carol"); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("second dismiss: %v", err)
	}
	sum := w.sync()
	if sum.Quarantined+sum.WritesPlanned != 0 {
		t.Fatalf("not quiet after dismiss\n%s", actions(sum))
	}
}

// recordingConn keeps the writes a connector was asked to apply.
type recordingConn struct {
	nhisync.Connector
	writes []nhisync.Write
}

func (c *recordingConn) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	c.writes = append(c.writes, ws...)
	return c.Connector.Apply(ctx, ws)
}

// A write tells the connector why its value is golden (source and rule),
// so a system that keeps a message with a change (a git commit) can say so.
func TestWritesCarryTheirReason(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "cmdb@example.com")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@example.com")},
	})
	rec := &recordingConn{}
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name != "catalog" {
			return c
		}
		rec.Connector = c
		return rec
	}
	w.sync()
	for _, wr := range rec.writes {
		for _, ch := range wr.Changes {
			if ch.Field == "owner" {
				if !strings.HasPrefix(ch.Reason, "cmdb: ") || !strings.Contains(ch.Reason, "priority") {
					t.Fatalf("owner write to the catalog carries reason %q, want cmdb's priority", ch.Reason)
				}
				return
			}
		}
	}
	t.Fatalf("no owner write reached the catalog: %+v", rec.writes)
}
