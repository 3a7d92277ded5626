package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

func TestUnmatchedAndDisputed(t *testing.T) {
	const cfg = `version: 1
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
  tags:   { connector: file, path: tags.json, kind: sa, id: id, fields: { name: name, owner: owner } }
`
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":    {sa("1", "aws", "bot"), sa("2", "gcp", "bot")},
		"policy.json": {sa("p1", "aws", "bot"), sa("p2", "aws", "ghost"), sa("p3", "AWS", "BOT")},
		"tags.json":   {{"id": "t1", "name": "bot"}},
	})
	sum := w.sync()
	if sum.Unmatched != 1 || sum.Disputed != 2 {
		t.Fatalf("unmatched %d disputed %d\n%s", sum.Unmatched, sum.Disputed, actions(sum))
	}
	q := w.quarantine(nhisync.StatusOpen)
	if len(q) != 2 {
		t.Fatalf("disputed not quarantined: %+v", q)
	}
	// Reported once, not once per pass.
	if sum := w.sync(); sum.Unmatched+sum.Disputed+sum.Quarantined != 0 {
		t.Fatalf("reported again\n%s", actions(sum))
	}
	// The ghost appears in the idp: the policy record now links.
	w.put("idp.json", []map[string]any{sa("1", "aws", "bot"), sa("2", "gcp", "bot"), sa("3", "aws", "ghost")})
	sum = w.sync()
	if sum.Linked != 1 {
		t.Fatalf("unmatched record not linked once its golden record exists\n%s", actions(sum))
	}
	// The duplicate goes away: its dispute clears.
	w.put("policy.json", []map[string]any{sa("p1", "aws", "bot", "owner", "o@x"), sa("p2", "aws", "ghost")})
	w.sync()
	open := 0
	for _, q := range w.quarantine(nhisync.StatusOpen) {
		if q.ExternalID == "p3" {
			open++
		}
	}
	if open != 0 {
		t.Fatal("dispute of a vanished record still open")
	}
}

func TestRetireFromDecommissionsAndPropagates(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot", "status", "active")},
		"cmdb.json":    {sa("c1", "aws", "bot", "status", "active")},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	w.sync()
	w.put("idp.json", []map[string]any{})
	sum := w.sync()
	if sum.Retired != 1 {
		t.Fatalf("retired %d\n%s", sum.Retired, actions(sum))
	}
	if got := w.field("cmdb.json", "c1", "status"); got != "decommissioned" {
		t.Fatalf("cmdb status = %v", got)
	}
	// nhisync never deletes: the cmdb record is still there.
	if len(w.get("cmdb.json")) != 1 {
		t.Fatal("cmdb record deleted")
	}
}

func TestBlastRadiusGuardHoldsAPass(t *testing.T) {
	var idp, cmdb, cat []map[string]any
	for i := range 40 {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id))
		cmdb = append(cmdb, sa(id, "aws", "bot"+id, "owner", "a@x"))
		cat = append(cat, sa(id, "aws", "bot"+id))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat})
	sum := w.sync()
	// Filling empty values does not count.
	if sum.WritesHeld != 0 {
		t.Fatalf("first pass held %d writes\n%s", sum.WritesHeld, actions(sum))
	}
	for i := range 40 {
		cmdb[i]["owner"] = "b@x"
	}
	w.put("cmdb.json", cmdb)
	sum = w.sync()
	if sum.Systems["catalog"].Held != 40 || sum.Systems["catalog"].Written != 0 {
		t.Fatalf("guard did not hold the catalog's writes: %+v", sum.Systems["catalog"])
	}
	guard := w.approvals(nhisync.StatusPending)
	if len(guard) != 1 || !guard[0].Guard || guard[0].Count != 40 || len(guard[0].Sample) == 0 {
		t.Fatalf("guard approval = %+v", guard)
	}
	e := w.engine()
	if _, err := e.Approve(context.Background(), guard[0].ID, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.field("catalog.json", "7", "steward"); got != "b@x" {
		t.Fatalf("approved guard writes not applied: %v", got)
	}
}

func TestGuardOff(t *testing.T) {
	var idp, cmdb, cat []map[string]any
	for i := range 40 {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id))
		cmdb = append(cmdb, sa(id, "aws", "bot"+id, "owner", "a@x"))
		cat = append(cat, sa(id, "aws", "bot"+id, "steward", "z@x"))
	}
	w := newWorld(t, baseConfig+"    guard: off\n", map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat})
	sum := w.sync()
	if sum.WritesHeld != 0 || sum.Systems["catalog"].Written != 40 {
		t.Fatalf("guard: off still held: %+v", sum.Systems["catalog"])
	}
}

// editBeforeApply wraps a real connector and edits its file just before
// the engine's writes arrive: a change made between read and write.
type editBeforeApply struct {
	nhisync.Connector
	edit func()
}

func (c *editBeforeApply) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.edit != nil {
		c.edit()
		c.edit = nil
	}
	return c.Connector.Apply(ctx, ws)
}

func TestConditionalWriteNeverOverwritesAConcurrentChange(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "a@x")},
	})
	w.sync()
	w.edit("cmdb.json", "c1", map[string]any{"owner": "b@x"})
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name != "catalog" {
			return c
		}
		return &editBeforeApply{Connector: c, edit: func() {
			w.edit("catalog.json", "k1", map[string]any{"steward": "person@x"})
		}}
	}
	sum := w.sync()
	if sum.WritesStale != 1 {
		t.Fatalf("stale = %d\n%s", sum.WritesStale, actions(sum))
	}
	if got := w.field("catalog.json", "k1", "steward"); got != "person@x" {
		t.Fatalf("concurrent change overwritten blind: %v", got)
	}
	w.wrap = nil
	// Re-observed: the catalog's change is a proposal, refused by rank,
	// and the catalog is then repaired knowing what it holds.
	sum = w.sync()
	if sum.Refused != 1 {
		t.Fatalf("re-observation\n%s", actions(sum))
	}
	if got := w.field("catalog.json", "k1", "steward"); got != "b@x" {
		t.Fatalf("catalog = %v", got)
	}
}

// TestStaleWriteToANewLinkIsReread: a record linked in the pass (an
// unmatched one a golden record appeared for) whose write went stale kept
// the content hash of its first reading, so when a person set it back to
// that content the next pass skipped it and it never converged (found by
// TestPropertySyncRules).
func TestStaleWriteToANewLinkIsReread(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {},
		"cmdb.json":    {},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	if sum := w.sync(); sum.Unmatched != 1 {
		t.Fatalf("first pass\n%s", actions(sum))
	}
	w.put("idp.json", []map[string]any{sa("i1", "aws", "bot")})
	w.put("cmdb.json", []map[string]any{sa("c1", "aws", "bot", "owner", "a@x")})
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name != "catalog" {
			return c
		}
		return &editBeforeApply{Connector: c, edit: func() {
			w.edit("catalog.json", "k1", map[string]any{"steward": "person@x"})
		}}
	}
	if sum := w.sync(); sum.WritesStale != 1 || sum.Linked == 0 {
		t.Fatalf("second pass: stale %d\n%s", sum.WritesStale, actions(sum))
	}
	w.wrap = nil
	w.edit("catalog.json", "k1", map[string]any{"steward": nil})
	w.sync()
	if got := w.field("catalog.json", "k1", "steward"); got != "a@x" {
		t.Fatalf("catalog steward = %v after the person undid their change, want the golden a@x", got)
	}
}

// failingApply wraps a real connector whose writes fail.
type failingApply struct {
	nhisync.Connector
	fail bool
}

func (c *failingApply) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.fail {
		out := make([]nhisync.WriteResult, len(ws))
		for i := range out {
			out[i] = nhisync.WriteResult{Status: nhisync.WriteFailed, Err: nhisync.Errorf(nhisync.EUNAVAIL, "catalog is down")}
		}
		return out, nil
	}
	return c.Connector.Apply(ctx, ws)
}

func TestFailedWritesRetryAndDegradeOnlyThatSystem(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot"), sa("i2", "aws", "bot2")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x", "status", "active"), sa("c2", "aws", "bot2", "owner", "a@x")},
		"catalog.json": {sa("k1", "aws", "bot"), sa("k2", "aws", "bot2")},
	})
	down := true
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name == "catalog" {
			return &failingApply{Connector: c, fail: down}
		}
		return c
	}
	sum := w.sync()
	if sum.Systems["catalog"].Failed == 0 || sum.Systems["idp"].Written == 0 {
		t.Fatalf("catalog failed %d, idp written %d", sum.Systems["catalog"].Failed, sum.Systems["idp"].Written)
	}
	// The pass failed the catalog, and says why (SPEC §3.13: exit 1).
	if got := sum.FailedSystems(w.cfg); len(got) != 1 || got[0] != "catalog" || !strings.Contains(sum.Systems["catalog"].Error, "catalog is down") {
		t.Fatalf("failed systems %v, catalog error %q", got, sum.Systems["catalog"].Error)
	}
	states, _ := w.store.Systems(context.Background())
	health := map[string]string{}
	for _, s := range states {
		health[s.Name] = s.Health
	}
	if health["catalog"] != nhisync.HealthDegraded || health["idp"] != nhisync.HealthOK {
		t.Fatalf("health = %v", health)
	}
	queued, _ := w.store.OutboxWrites(context.Background(), "catalog", nhisync.OutboxReady, nhisync.FakeClock{}.T, 0)
	if len(queued) == 0 || queued[0].Attempts != 1 {
		t.Fatalf("failed writes not kept for retry: %+v", queued)
	}
	// Back up; after the backoff the retry lands.
	down = false
	w.clock.Advance(2 * time.Hour)
	w.sync()
	if got := w.field("catalog.json", "k1", "steward"); got != "a@x" {
		t.Fatalf("retry not applied: %v", got)
	}
	states, _ = w.store.Systems(context.Background())
	for _, s := range states {
		if s.Name == "catalog" && s.Health != nhisync.HealthOK {
			t.Fatalf("catalog not recovered: %+v", s)
		}
	}
}

func TestPlanWritesNothing(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x")},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	sum := w.pass(engine.PassOptions{DryRun: true})
	if sum.Created != 1 || sum.WritesPlanned == 0 {
		t.Fatalf("plan: %+v", sum)
	}
	if n, _, _ := w.store.AuditHead(context.Background()); n != 0 {
		t.Fatalf("plan appended %d audit entries", n)
	}
	if got := w.field("catalog.json", "k1", "steward"); got != nil {
		t.Fatalf("plan wrote to a system: %v", got)
	}
	// The same decisions come out of the real pass.
	real := w.sync()
	if real.Created != sum.Created || real.Accepted != sum.Accepted || real.WritesPlanned != sum.WritesPlanned {
		t.Fatalf("plan %+v differs from sync %+v", sum, real)
	}
}

func TestProvisionCreatesRecords(t *testing.T) {
	cfg := baseConfig + "    provision: true\n"
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot"), sa("i2", "gcp", "job")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x")},
		"catalog.json": {},
	})
	w.sync()
	if got := len(w.get("catalog.json")); got != 2 {
		t.Fatalf("catalog holds %d records, want 2 provisioned", got)
	}
	if sum := w.sync(); sum.WritesPlanned != 0 || sum.Linked != 0 {
		t.Fatalf("provisioned records not linked\n%s", actions(sum))
	}
	// Systems without provision get nothing.
	if got := len(w.get("cmdb.json")); got != 1 {
		t.Fatalf("cmdb holds %d records", got)
	}
}

func TestExplainAndWhatIf(t *testing.T) {
	// The catalog is report-only so it keeps asserting its own value.
	w := newWorld(t, baseConfig+"    on_refused: report\n", map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "cmdb@x")},
		"catalog.json": {sa("k1", "aws", "bot", "steward", "cat@x")},
	})
	w.sync()
	x, err := w.engine().Explain(context.Background(), "service_account", nhisync.NormalizeKey([]string{"aws", "bot"}), "owner")
	if err != nil {
		t.Fatal(err)
	}
	if x.Golden.Source != "cmdb" || len(x.Assertions) != 2 || x.Recomputed.Value.Text() != "cmdb@x" {
		t.Fatalf("explain = %+v", x)
	}
	// What if the catalog outranked the cmdb?
	proposed := *w.cfg
	kinds := map[string]*nhisync.Kind{}
	for n, k := range w.cfg.Kinds {
		kc := *k
		kc.Fields = map[string]*nhisync.Field{}
		for fn, f := range k.Fields {
			fc := *f
			kc.Fields[fn] = &fc
		}
		kinds[n] = &kc
	}
	kinds["service_account"].Fields["owner"].Authority = []string{"catalog", "cmdb"}
	proposed.Kinds = kinds
	changes, n, err := w.engine().WhatIf(context.Background(), &proposed)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(changes) != 1 || changes[0].Proposed.Value.Text() != "cat@x" {
		t.Fatalf("what-if = %d %+v", n, changes)
	}
}

func TestDegradedSystemRestsWithBackoff(t *testing.T) {
	w := newWorld(t, baseConfig+"    poll: 10m\n", map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot"), sa("i2", "aws", "bot2")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x"), sa("c2", "aws", "bot2", "owner", "a@x")},
		"catalog.json": {sa("k1", "aws", "bot"), sa("k2", "aws", "bot2")},
	})
	calls := 0
	down := true
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name != "catalog" {
			return c
		}
		return &countingApply{failingApply: failingApply{Connector: c, fail: down}, calls: &calls}
	}
	opt := engine.PassOptions{RespectPause: true}
	w.pass(opt) // fails: catalog degraded, paused for its poll interval
	calls = 0
	sum := w.pass(opt) // a minute later: still resting (its poll, 10m)
	if calls != 0 || sum.Systems["catalog"].Mode != "paused" {
		t.Fatalf("paused system was called: %d calls, %+v", calls, sum.Systems["catalog"])
	}
	// The pass says the system rests, until when, and counts it as failed
	// (SPEC §3.13).
	if ss := sum.Systems["catalog"]; !ss.Paused || !ss.PausedUntil.After(w.clock.Now()) || !ss.Failing() ||
		!strings.Contains(ss.Error, ss.PausedUntil.Format(time.RFC3339)) || !strings.Contains(ss.Error, "catalog is down") {
		t.Fatalf("paused system's summary = %+v", ss)
	}
	if got := sum.FailedSystems(w.cfg); len(got) != 1 || got[0] != "catalog" {
		t.Fatalf("failed systems = %v", got)
	}
	if sum.Systems["idp"].Mode != "full" {
		t.Fatalf("other systems did not go on: %+v", sum.Systems["idp"])
	}
	down = false
	w.clock.Advance(2 * time.Hour)
	w.pass(opt)
	if got := w.field("catalog.json", "k1", "steward"); got != "a@x" {
		t.Fatalf("after the backoff the system was not tried again: %v", got)
	}
}

type countingApply struct {
	failingApply
	calls *int
}

func (c *countingApply) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	*c.calls++
	return c.failingApply.Apply(ctx, ws)
}

func TestLeaseOfADeadHolderIsTakenOver(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": {}, "catalog.json": {}})
	ctx := context.Background()
	if ok, err := w.store.AcquireLease(ctx, "pass", "ghost", w.clock.Now(), time.Hour); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if _, err := w.engine().Sync(ctx, engine.PassOptions{}); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("sync while another holds the lease: %v", err)
	}
	e := engine.New(w.cfg, w.store, w.conns, engine.WithClock(w.clock), engine.WithDeadHolder(func(h string) bool { return h == "ghost" }))
	if _, err := e.Sync(ctx, engine.PassOptions{}); err != nil {
		t.Fatalf("sync did not take over a dead holder's lease: %v", err)
	}
	if h, _, _ := w.store.Lease(ctx, "pass"); h != "" {
		t.Fatalf("lease still held by %q after the pass", h)
	}
}

func TestMatchFieldsAreNotWrittenWhereTheyAreTheID(t *testing.T) {
	const cfg = `version: 1
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
  idp:     { connector: file, path: idp.json, kind: sa, id: id, fields: { name: name, platform: platform, owner: owner } }
  catalog: { connector: file, path: catalog.json, kind: sa, fields: { name: name, platform: platform, owner: owner } }
`
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":     {{"id": "1", "platform": "aws", "name": "Bot", "owner": "a@x"}},
		"catalog.json": {{"platform": "aws", "name": "bot"}},
	})
	w.sync()
	cat := w.get("catalog.json")
	if cat[0]["name"] != "bot" || cat[0]["owner"] != "a@x" {
		t.Fatalf("catalog = %v: the name identifies it there and must stay, the owner must be written", cat[0])
	}
	if sum := w.sync(); sum.Linked+sum.WritesPlanned != 0 || sum.Systems["catalog"].Changed != 0 {
		t.Fatalf("second pass not quiet\n%s", actions(sum))
	}
}

func TestIncrementalReadsOnlyWhatChanged(t *testing.T) {
	const cfg = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [name]
    create_from: [idp]
    fields:
      name:  { type: string }
      owner: { type: string }
systems:
  idp:
    connector: sql
    dsn: sqlite:./idp.db
    table: accounts
    id: id
    updated_column: updated_at
    kind: sa
    fields: { name: name, owner: owner }
  cat: { connector: file, path: cat.json, kind: sa, id: id, fields: { name: name, owner: owner } }
`
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, owner TEXT, updated_at TEXT)`)
	for i := range 50 {
		mustExec(`INSERT INTO accounts VALUES (?, ?, 'a@x', ?)`, fmt.Sprint(i), fmt.Sprintf("svc-%02d", i), fmt.Sprintf("2026-01-01T00:00:%02dZ", i))
	}
	w := newWorldIn(t, dir, cfg, map[string][]map[string]any{"cat.json": {}})
	w.sync()
	mustExec(`UPDATE accounts SET owner = 'b@x', updated_at = '2026-01-02T00:00:00Z' WHERE id = '7'`)
	// An incremental read loads the heads of the records it read, not
	// every head of the system.
	heads := &headCounter{Store: w.store, scans: map[string]int{}}
	w.store = heads
	sum := w.pass(engine.PassOptions{Incremental: true, KeepEvents: true})
	idp := sum.Systems["idp"]
	// The cursor is inclusive: the row at the old cursor is read again.
	if idp.Mode != "incremental" || idp.Read != 2 || idp.Changed != 1 || sum.Accepted != 1 {
		t.Fatalf("incremental pass: %+v, accepted %d\n%s", idp, sum.Accepted, actions(sum))
	}
	if n := heads.count("idp"); n != 0 {
		t.Errorf("the incremental pass scanned the idp's link heads %d times, want none", n)
	}
	if got := w.golden("sa", "owner", "svc-07"); got != "b@x" {
		t.Fatalf("owner = %q", got)
	}
	// A new row, and a row under another id with the name of one the
	// idp holds already (its record links to the idp's row 3: disputed),
	// read incrementally.
	mustExec(`INSERT INTO accounts VALUES ('new', 'svc-new', 'c@x', '2026-01-03T00:00:00Z')`)
	mustExec(`INSERT INTO accounts VALUES ('dup', 'svc-03', 'd@x', '2026-01-03T00:00:01Z')`)
	// Two more clashing rows: correlation looks up the stored links of
	// the records they match in one call to the store, not one each.
	mustExec(`INSERT INTO accounts VALUES ('dup4', 'svc-04', 'd@x', '2026-01-03T00:00:01Z')`)
	mustExec(`INSERT INTO accounts VALUES ('dup5', 'svc-05', 'd@x', '2026-01-03T00:00:01Z')`)
	heads.correlating.Store(true)
	w.opts = append(w.opts, engine.WithProgress(func(p engine.Progress) {
		if p.Stage == "decide" {
			heads.correlating.Store(false) // correlation is done
		}
	}))
	sum = w.pass(engine.PassOptions{Incremental: true, KeepEvents: true})
	if sum.Systems["idp"].Mode != "incremental" || sum.Created != 1 || sum.OpenDisputed != 3 || heads.count("idp") != 0 {
		t.Fatalf("incremental pass with a new and clashing rows: created %d, disputed %d, head scans %d\n%s", sum.Created, sum.OpenDisputed, heads.count("idp"), actions(sum))
	}
	if n := heads.loads.Load(); n != 1 {
		t.Errorf("correlating 3 clashing rows loaded records %d times, want once", n)
	}
	if got := w.golden("sa", "owner", "svc-03"); got != "a@x" {
		t.Fatalf("svc-03 owner = %q after a clashing row, want a@x", got)
	}
	mustExec(`DELETE FROM accounts WHERE id IN ('new', 'dup', 'dup4', 'dup5')`)
	// A full pass still sees everything and finds nothing new.
	if sum := w.sync(); sum.Systems["idp"].Mode != "full" || sum.Systems["idp"].Read != 50 || sum.Accepted != 0 {
		t.Fatalf("full pass: %+v\n%s", sum.Systems["idp"], actions(sum))
	}
}

// headCounter is a store that counts its link head scans by system (the
// systems are read side by side).
type headCounter struct {
	nhisync.Store
	mu    sync.Mutex
	scans map[string]int
	// loads counts LoadRecords calls while correlating is set.
	correlating atomic.Bool
	loads       atomic.Int32
}

func (s *headCounter) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	if s.correlating.Load() {
		s.loads.Add(1)
	}
	return s.Store.LoadRecords(ctx, ids)
}

func (s *headCounter) ScanLinkHeads(ctx context.Context, system string, fn func(nhisync.LinkHead) error) error {
	s.mu.Lock()
	s.scans[system]++
	s.mu.Unlock()
	return s.Store.ScanLinkHeads(ctx, system, fn)
}

func (s *headCounter) count(system string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans[system]
}

// slowRead wraps a real connector whose reads take (fake) time, and whose
// writes let another process try to take the pass lease.
type slowRead struct {
	nhisync.Connector
	during  func()
	onApply func()
}

func (c *slowRead) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	c.during()
	return c.Connector.Snapshot(ctx, emit)
}

func (c *slowRead) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.onApply != nil {
		c.onApply()
	}
	return c.Connector.Apply(ctx, ws)
}

func TestLongPassKeepsItsLease(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot")},
		"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x")},
		"catalog.json": {sa("k1", "aws", "bot")},
	})
	const ttl = 3 * time.Minute
	ctx := context.Background()
	var intruded bool
	w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
		if name != "catalog" {
			return c
		}
		return &slowRead{Connector: c,
			// Reading takes two minutes: past a third of the lease.
			during: func() { w.clock.Advance(2 * time.Minute) },
			// When the writes go out, another process tries the lease at a
			// time the first lease (taken before the read) has run out.
			onApply: func() {
				ok, err := w.store.AcquireLease(ctx, "pass", "intruder", w.clock.Now().Add(2*time.Minute), ttl)
				if err != nil {
					t.Fatal(err)
				}
				intruded = intruded || ok
			}}
	}
	if sum := w.pass(engine.PassOptions{LeaseTTL: ttl}); sum.WritesApplied == 0 {
		t.Fatal("nothing was written: the test did not reach the writes")
	}
	if intruded {
		t.Fatal("another process took the lease of a running pass: it was not renewed")
	}
}

// mutelyFailingApply wraps a real connector whose writes fail with the
// status status and no error, as a connector with a bug may answer.
type mutelyFailingApply struct {
	nhisync.Connector
	status nhisync.WriteStatus
}

func (c *mutelyFailingApply) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	out := make([]nhisync.WriteResult, len(ws))
	for i := range out {
		out[i] = nhisync.WriteResult{Status: c.status}
	}
	return out, nil
}

// TestAWriteFailedWithoutAReasonIsSaid (SPEC §3.13): a connector that
// fails writes without an error, or answers with a status nhisync does
// not know, fails them loudly all the same: the summary, the queued
// write and the audit log say it did, naming the connector.
func TestAWriteFailedWithoutAReasonIsSaid(t *testing.T) {
	for _, status := range []nhisync.WriteStatus{nhisync.WriteFailed, ""} {
		w := newWorld(t, baseConfig, map[string][]map[string]any{
			"idp.json":     {sa("i1", "aws", "bot")},
			"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x")},
			"catalog.json": {sa("k1", "aws", "bot")},
		})
		w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
			if name == "catalog" {
				return &mutelyFailingApply{Connector: c, status: status}
			}
			return c
		}
		sum := w.sync()
		cat := sum.Systems["catalog"]
		if cat.Failed == 0 || !strings.Contains(cat.Error, "the file connector") || !slices.Contains(sum.FailedSystems(w.cfg), "catalog") {
			t.Errorf("status %q: catalog failed %d, error %q; want the failed writes said, naming the connector", status, cat.Failed, cat.Error)
		}
		queued, err := w.store.OutboxWrites(context.Background(), "catalog", nhisync.OutboxReady, nhisync.FakeClock{}.T, 0)
		if err != nil || len(queued) == 0 || queued[0].LastError == "" {
			t.Errorf("status %q: queued writes %+v, %v; want them kept with why they failed", status, queued, err)
		}
		failed := 0
		if err := w.store.ScanAudit(context.Background(), 0, 0, func(e *nhisync.AuditEntry, _ []byte) error {
			if e.Action == nhisync.ActWriteFailed && strings.Contains(e.Reason, "the file connector") {
				failed++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if failed == 0 {
			t.Errorf("status %q: no write.failed audit entry says why", status)
		}
	}
}
