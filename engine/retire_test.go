package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// estate returns n service accounts held alike by the idp (retire_from),
// the cmdb and the catalog of baseConfig.
func estate(n int) map[string][]map[string]any {
	var idp, cmdb, cat []map[string]any
	for i := range n {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id, "status", "active"))
		cmdb = append(cmdb, sa(id, "aws", "bot"+id, "status", "active", "owner", "a@x"))
		cat = append(cat, sa(id, "aws", "bot"+id, "steward", "a@x"))
	}
	return map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat}
}

// goldenState returns every golden value of every record, by record key.
func (w *world) goldenState() map[string]map[string]string {
	out := map[string]map[string]string{}
	err := w.store.ScanRecords(context.Background(), "", func(r *nhisync.Record) error {
		m := map[string]string{}
		for f, g := range r.Fields {
			m[f] = g.Value.String()
		}
		out[r.Key] = m
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// guards returns the guard approvals of status that hold a vanishing.
func (w *world) vanishGuards(status string) []*nhisync.Approval {
	var out []*nhisync.Approval
	for _, a := range w.approvals(status) {
		if a.HoldsVanishing() {
			out = append(out, a)
		}
	}
	return out
}

// TestEmptiedRetireFromRetiresNothing reproduces issue 5, observation 2:
// the identity provider's export (a retire_from system) comes back empty.
// Nothing is retired and nothing written; the vanishing waits as one
// guard request with the count and a sample; restoring the export makes
// zero writes, leaves golden as it was, and closes the request.
func TestEmptiedRetireFromRetiresNothing(t *testing.T) {
	files := estate(40)
	w := newWorld(t, baseConfig, files)
	w.sync()
	before := w.goldenState()

	w.put("idp.json", []map[string]any{})
	sum := w.sync()
	if sum.Retired != 0 || sum.WritesPlanned != 0 {
		t.Fatalf("an emptied idp retired %d records and planned %d writes\n%s", sum.Retired, sum.WritesPlanned, actions(sum))
	}
	if d := cmp.Diff(before, w.goldenState()); d != "" {
		t.Fatalf("golden changed after the idp came back empty (-before +after):\n%s", d)
	}
	held := w.vanishGuards(nhisync.StatusPending)
	if len(held) != 1 {
		t.Fatalf("pending vanish guards = %+v, want one", held)
	}
	g := held[0]
	if g.System != "idp" || g.Count != 40 || len(g.Vanished) != 40 || len(g.Sample) != 10 || !strings.Contains(g.Sample[0], "service_account/aws/") ||
		!strings.Contains(g.Reason, "40 records vanished from idp") {
		t.Fatalf("guard request = %+v", g)
	}
	// Not in step while the request waits: each missing record is drift
	// the guard holds.
	drift, err := w.engine().Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 40 || drift[0].Reason != engine.DriftGuard || drift[0].System != "idp" || drift[0].Field != "lifecycle" ||
		!strings.Contains(drift[0].Detail, fmt.Sprint("guard request ", g.ID)) {
		t.Fatalf("drift while the vanishing is held: %d items, first %+v", len(drift), drift[0])
	}
	// Still empty: the same request stands, no new one.
	sum = w.sync()
	if sum.ApprovalsRequested != 0 || sum.Retired != 0 {
		t.Fatalf("a second pass over the same empty export asked again or retired\n%s", actions(sum))
	}
	if again := w.vanishGuards(nhisync.StatusPending); len(again) != 1 || again[0].ID != g.ID {
		t.Fatalf("pending vanish guards after a second pass = %+v", again)
	}

	// The export is restored: zero writes, golden as before, request closed.
	w.put("idp.json", files["idp.json"])
	sum = w.sync()
	if sum.WritesPlanned != 0 || sum.Retired != 0 {
		t.Fatalf("restoring the idp planned %d writes\n%s", sum.WritesPlanned, actions(sum))
	}
	if d := cmp.Diff(before, w.goldenState()); d != "" {
		t.Fatalf("golden after the idp was restored (-before +after):\n%s", d)
	}
	if p := w.vanishGuards(nhisync.StatusPending); len(p) != 0 {
		t.Fatalf("guard still pending after every record reappeared: %+v", p)
	}
	closed, err := w.store.Approval(context.Background(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Status != nhisync.StatusSuperseded || !strings.Contains(closed.Reason, "reappeared") {
		t.Fatalf("the request after every record reappeared = %+v", closed)
	}
	// plan then finds everything in step.
	plan, err := w.engine().Sync(context.Background(), engine.PassOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	drift, err = w.engine().Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.WritesPlanned != 0 || plan.ApprovalsRequested != 0 || plan.Retired != 0 || len(drift) != 0 || len(w.approvals(nhisync.StatusPending)) != 0 {
		t.Fatalf("plan after the restore: %d writes, %d approvals, %d retired, drift %+v\n%s", plan.WritesPlanned, plan.ApprovalsRequested, plan.Retired, drift, actions(plan))
	}
}

// TestApprovingAVanishGuardRetires: a person approves the held vanishing;
// the records retire through the usual path, audited with the approver,
// and the other systems get "decommissioned".
func TestApprovingAVanishGuardRetires(t *testing.T) {
	w := newWorld(t, baseConfig, estate(40))
	w.opts = []engine.Option{engine.WithBatchSize(7)} // several batches of held records
	w.sync()
	w.put("idp.json", []map[string]any{})
	w.sync()
	held := w.vanishGuards(nhisync.StatusPending)
	if len(held) != 1 {
		t.Fatalf("pending vanish guards = %+v", held)
	}
	e := w.engine()
	if _, err := e.Approve(context.Background(), held[0].ID, held[0].RequestedBy); nhisync.ErrorCode(err) != nhisync.EFORBIDDEN {
		t.Fatalf("the system that caused the vanishing approved it: %v", err)
	}
	if _, err := e.Approve(context.Background(), held[0].ID, "ops"); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if got := w.golden("service_account", "lifecycle", "aws", fmt.Sprint("bot", i)); got != "decommissioned" {
			t.Fatalf("bot%d lifecycle = %q after approval", i, got)
		}
	}
	rec := w.record("service_account", "aws", "bot7")
	entries, err := w.store.AuditByRecord(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	retired := false
	for _, e := range entries {
		if e.Action == nhisync.ActRecordRetired && strings.Contains(e.Reason, "ops approved request") {
			retired = true
		}
	}
	if !retired {
		t.Fatalf("no record.retired entry naming the approver for bot7: %+v", entries)
	}
	if _, err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.field("cmdb.json", "7", "status"); got != "decommissioned" {
		t.Fatalf("cmdb status of bot7 = %v after approval", got)
	}
	// Converged: the next pass writes nothing and asks nothing.
	if sum := w.sync(); sum.WritesPlanned != 0 || sum.ApprovalsRequested != 0 || sum.Retired != 0 {
		t.Fatalf("pass after the approved retirement\n%s", actions(sum))
	}
}

// TestVanishGuardShrinksAndSupersedes: half the export comes back before
// anyone approved. A new request for the records still missing replaces
// the old one, which can no longer be approved; records that reappeared
// were never retired.
func TestVanishGuardShrinksAndSupersedes(t *testing.T) {
	files := estate(60)
	w := newWorld(t, baseConfig, files)
	w.sync()
	w.put("idp.json", []map[string]any{})
	w.sync()
	first := w.vanishGuards(nhisync.StatusPending)
	if len(first) != 1 || first[0].Count != 60 {
		t.Fatalf("first request = %+v", first)
	}
	w.put("idp.json", files["idp.json"][:30])
	sum := w.sync()
	if sum.Retired != 0 || sum.WritesPlanned != 0 {
		t.Fatalf("a half export retired or wrote\n%s", actions(sum))
	}
	second := w.vanishGuards(nhisync.StatusPending)
	if len(second) != 1 || second[0].Count != 30 || second[0].ID == first[0].ID {
		t.Fatalf("requests after half came back = %+v", second)
	}
	old, err := w.store.Approval(context.Background(), first[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != nhisync.StatusSuperseded || old.SupersededBy != second[0].ID {
		t.Fatalf("older request = %+v, want superseded by %d", old, second[0].ID)
	}
	e := w.engine()
	_, err = e.Approve(context.Background(), first[0].ID, "ops")
	if nhisync.ErrorCode(err) != nhisync.ECONFLICT || !strings.Contains(nhisync.ErrorMessage(err), fmt.Sprint("superseded by guard request ", second[0].ID)) {
		t.Fatalf("approving the superseded request: %v", err)
	}
	if _, err := e.Approve(context.Background(), second[0].ID, "ops"); err != nil {
		t.Fatal(err)
	}
	if got := w.golden("service_account", "lifecycle", "aws", "bot10"); got != "active" {
		t.Fatalf("bot10 reappeared yet lifecycle = %q", got)
	}
	if got := w.golden("service_account", "lifecycle", "aws", "bot40"); got != "decommissioned" {
		t.Fatalf("bot40 still missing and approved, yet lifecycle = %q", got)
	}
}

// TestFewVanishedStillRetire: within the guard's limit, vanishing retires
// as before, and a pending request for the system is closed.
func TestFewVanishedStillRetire(t *testing.T) {
	files := estate(40)
	w := newWorld(t, baseConfig, files)
	w.sync()
	w.put("idp.json", []map[string]any{})
	w.sync()
	if len(w.vanishGuards(nhisync.StatusPending)) != 1 {
		t.Fatal("no guard request for an emptied idp")
	}
	w.put("idp.json", files["idp.json"][3:])
	sum := w.sync()
	if sum.Retired != 3 {
		t.Fatalf("3 vanished (within the limit), retired %d\n%s", sum.Retired, actions(sum))
	}
	if p := w.vanishGuards(nhisync.StatusPending); len(p) != 0 {
		t.Fatalf("request still pending: %+v", p)
	}
}

// TestRejectedVanishGuardIsNotAskedAgain: a person said the records did
// not go; while the same ones stay missing nothing is asked or retired.
func TestRejectedVanishGuardIsNotAskedAgain(t *testing.T) {
	w := newWorld(t, baseConfig, estate(40))
	w.sync()
	w.put("idp.json", []map[string]any{})
	w.sync()
	held := w.vanishGuards(nhisync.StatusPending)
	if _, err := w.engine().Reject(context.Background(), held[0].ID, "ops"); err != nil {
		t.Fatal(err)
	}
	if sum := w.sync(); sum.ApprovalsRequested != 0 || sum.Retired != 0 {
		t.Fatalf("asked again after a rejection\n%s", actions(sum))
	}
	// Not asked again, but not in step either: the idp still lacks all 40
	// records, and drift says so with the rejection.
	items, err := w.engine().Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, it := range items {
		if it.System == "idp" && it.Reason == engine.DriftRejected && strings.Contains(it.Detail, "ops rejected") {
			missing++
		}
	}
	if missing != 40 {
		t.Fatalf("drift lists %d of the 40 records missing from idp after the rejection: %+v", missing, items)
	}
	// The records come back: the rejected request closes, and nothing is
	// missing any more.
	w.put("idp.json", estate(40)["idp.json"])
	w.sync()
	if got := w.vanishGuards(nhisync.StatusRejected); len(got) != 0 {
		t.Fatalf("rejected request still in force after the records reappeared: %+v", got)
	}
	items, err = w.engine().Drift(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.System == "idp" && it.Field == nhisync.FieldLifecycle {
			t.Fatalf("drift after the records reappeared: %+v", it)
		}
	}
	// Emptied again: a new request is asked, since the rejection was about
	// a vanishing that ended.
	w.put("idp.json", []map[string]any{})
	if sum := w.sync(); sum.ApprovalsRequested != 1 || sum.Retired != 0 {
		t.Fatalf("a new vanishing after the records came back is not asked about\n%s", actions(sum))
	}
}

// TestNewerWriteGuardSupersedesOlder reproduces issue 5, observation 3:
// two passes each trip the write guard for one system. The newer request
// takes over every write the older one held, the older is closed as
// superseded and cannot be approved, and approving the newer applies all.
func TestNewerWriteGuardSupersedesOlder(t *testing.T) {
	var idp, cmdb, cat []map[string]any
	for i := range 40 {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id))
		cmdb = append(cmdb, sa(id, "aws", "bot"+id, "owner", "a@x"))
		cat = append(cat, sa(id, "aws", "bot"+id))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat})
	w.sync()
	for i := range 40 {
		cmdb[i]["owner"] = "b@x"
	}
	w.put("cmdb.json", cmdb)
	w.sync()
	first := w.approvals(nhisync.StatusPending)
	if len(first) != 1 || first[0].Count != 40 {
		t.Fatalf("first guard = %+v", first)
	}
	// A few records change again, within the limit: their writes stay
	// held by the pending request instead of slipping out.
	for i := range 5 {
		cmdb[i]["owner"] = "c@x"
	}
	w.put("cmdb.json", cmdb)
	sum := w.sync()
	if sum.Systems["catalog"].Written != 0 || sum.ApprovalsRequested != 0 {
		t.Fatalf("writes held by a pending guard went out: %+v\n%s", sum.Systems["catalog"], actions(sum))
	}
	// Thirty change again: the guard trips anew.
	for i := range 30 {
		cmdb[i]["owner"] = "d@x"
	}
	w.put("cmdb.json", cmdb)
	sum = w.sync()
	pending := w.approvals(nhisync.StatusPending)
	if len(pending) != 1 || pending[0].ID == first[0].ID || pending[0].Count != 40 || pending[0].Value.String() != "40 writes" {
		t.Fatalf("pending guards after a second trip = %+v\n%s", pending, actions(sum))
	}
	old, err := w.store.Approval(context.Background(), first[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != nhisync.StatusSuperseded || old.SupersededBy != pending[0].ID {
		t.Fatalf("older guard = %+v", old)
	}
	all := w.approvals("")
	if len(all) != 2 {
		t.Fatalf("approvals --all lists %d, want the superseded and the pending one", len(all))
	}
	e := w.engine()
	if _, err := e.Approve(context.Background(), first[0].ID, "ops"); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("approving the superseded guard: %v", err)
	}
	if _, err := e.Approve(context.Background(), pending[0].ID, "ops"); err != nil {
		t.Fatal(err)
	}
	drained, err := e.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if drained.WritesApplied != 40 {
		t.Fatalf("approving the newer guard applied %d writes, want 40", drained.WritesApplied)
	}
	for id, want := range map[string]string{"0": "d@x", "35": "b@x"} {
		if got := w.field("catalog.json", id, "steward"); got != want {
			t.Fatalf("catalog %s steward = %v, want %s", id, got, want)
		}
	}
}

// TestVanishDropsEveryQueuedWrite: a record that vanishes while several
// writes to it wait in the outbox (held by the blast-radius guard) drops
// them all, and its retirement is planned like any change.
func TestVanishDropsEveryQueuedWrite(t *testing.T) {
	const n = 30
	var idp, cmdb []map[string]any
	for i := range n {
		id := fmt.Sprint(i)
		idp = append(idp, sa(id, "aws", "bot"+id, "status", "active", "scopes", []any{"s1"}))
		cmdb = append(cmdb, sa(id, "aws", "bot"+id, "status", "suspended", "scopes", []any{"s2"}, "owner", "a@x"))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": {}})
	w.sync()
	// Every idp record gets two writes (lifecycle, entitlements): more
	// overwrites than the guard allows, so they wait.
	held, err := w.store.OutboxWrites(context.Background(), "idp", nhisync.OutboxHeld, time.Time{}, 0)
	if err != nil || len(held) != 2*n {
		t.Fatalf("%d idp writes held (%v), want %d", len(held), err, 2*n)
	}
	w.remove("idp.json", "0")
	sum := w.sync()
	if sum.Retired != 1 {
		t.Fatalf("retired %d, want 1\n%s", sum.Retired, actions(sum))
	}
	held, err = w.store.OutboxWrites(context.Background(), "idp", nhisync.OutboxHeld, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range held {
		if o.ExternalID == "0" {
			t.Errorf("a write to the vanished idp record stays queued: %+v", o)
		}
	}
	if len(held) != 2*(n-1) {
		t.Errorf("%d idp writes held, want %d", len(held), 2*(n-1))
	}
}

// loadCounter is a store that counts, by record ID, how often
// LoadRecords loaded each record.
type loadCounter struct {
	nhisync.Store
	loads map[int64]int
}

func (s *loadCounter) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	for _, id := range ids {
		s.loads[id]++
	}
	return s.Store.LoadRecords(ctx, ids)
}

// TestVanishedRecordsLoadedOnce: a pass loads a record that vanished
// from a retire_from system once, to count it against the guard, and
// decides it from that load, not from a second one.
func TestVanishedRecordsLoadedOnce(t *testing.T) {
	w := newWorld(t, baseConfig, estate(40))
	w.sync()
	gone := []*nhisync.Record{w.record("service_account", "aws", "bot3"), w.record("service_account", "aws", "bot7")}
	w.remove("idp.json", "3")
	w.remove("idp.json", "7")
	counter := &loadCounter{Store: w.store, loads: map[int64]int{}}
	w.store = counter
	if sum := w.sync(); sum.Retired != 2 {
		t.Fatalf("retired %d records, want 2\n%s", sum.Retired, actions(sum))
	}
	for _, r := range gone {
		if n := counter.loads[r.ID]; n != 1 {
			t.Errorf("record %s was loaded %d times in the pass, want once", r.Key, n)
		}
		if got := w.golden("service_account", "lifecycle", "aws", r.Fields["name"].Value.Text()); got != nhisync.LifecycleDecommissioned {
			t.Errorf("record %s: lifecycle %q, want %s", r.Key, got, nhisync.LifecycleDecommissioned)
		}
	}
}

// TestBatchSizeBelowOneKeepsTheDefault: WithBatchSize(0) would leave the
// loops that page by it unable to advance; it keeps the default, and
// passes (full and incremental) finish and decide as usual.
func TestBatchSizeBelowOneKeepsTheDefault(t *testing.T) {
	w := newWorld(t, baseConfig, estate(12))
	w.opts = []engine.Option{engine.WithBatchSize(0)}
	sum := w.sync()
	if sum.Created != 12 {
		t.Fatalf("first pass created %d records, want 12", sum.Created)
	}
	w.pass(engine.PassOptions{Incremental: true})
	if got := w.golden("service_account", "lifecycle", "aws", "bot3"); got == "" {
		t.Fatalf("bot3 has no lifecycle after the passes")
	}
}
