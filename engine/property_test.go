package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/engine"

	_ "modernc.org/sqlite"
)

// The sync rules as properties (SPEC §3): random configs of 2–4 systems,
// random edits, random concurrent changes between read and write; after
// every pass authority, conditional writes and the merge laws hold, and
// after quiet the systems converge, a further pass plans nothing, and the
// audit log verifies.

var (
	propNames   = []string{"n1", "n2", "n3", "n4", "n5"}
	propOwners  = []string{"", "a@x", "b@x", "c@x", "bad"}
	propTags    = []string{"p", "q", "r"}
	propStates  = []string{"", "active", "suspended", "decommissioned", "bogus"}
	propFields  = []string{"owner", "tags", "lifecycle"}
	propNatives = map[string]string{"name": "name", "owner": "owner", "tags": "tags", "lifecycle": "state"}
)

// propSystem is one generated system.
type propSystem struct {
	name     string
	fields   []string // canonical fields mapped besides name
	report   bool
	readOnly bool
	// sqlTable: the system is a SQLite table (sql connector, with an
	// updated_at cursor), else a JSON file (file connector).
	sqlTable bool
}

type propConfig struct {
	dir        string
	clock      int
	systems    []propSystem
	yaml       string
	ownerAuth  []string
	ownerRes   string
	lifeRes    string
	tagsRemove bool
	approveTo  string
}

func genConfig(t *rapid.T) *propConfig {
	n := rapid.IntRange(2, 4).Draw(t, "systems")
	pc := &propConfig{}
	for i := range n {
		s := propSystem{name: fmt.Sprintf("s%d", i)}
		for _, f := range propFields {
			if rapid.Float64Range(0, 1).Draw(t, "maps-"+s.name+"-"+f) < 0.75 {
				s.fields = append(s.fields, f)
			}
		}
		s.report = rapid.Float64Range(0, 1).Draw(t, "report-"+s.name) < 0.2
		s.readOnly = i > 0 && rapid.Float64Range(0, 1).Draw(t, "ro-"+s.name) < 0.1
		s.sqlTable = rapid.Bool().Draw(t, "sql-"+s.name)
		pc.systems = append(pc.systems, s)
	}
	maps := func(f string) []string {
		var out []string
		for _, s := range pc.systems {
			if slices.Contains(s.fields, f) {
				out = append(out, s.name)
			}
		}
		return out
	}
	owners := maps("owner")
	if len(owners) > 0 && rapid.Bool().Draw(t, "owner-authority") {
		perm := rapid.Permutation(owners).Draw(t, "authority-order")
		pc.ownerAuth = perm[:rapid.IntRange(1, len(perm)).Draw(t, "authority-len")]
	}
	pc.ownerRes = rapid.SampledFrom([]string{"priority", "latest", "manual"}).Draw(t, "owner-resolve")
	pc.lifeRes = rapid.SampledFrom([]string{"strictest", "priority", "latest", "manual"}).Draw(t, "lifecycle-resolve")
	pc.tagsRemove = rapid.Bool().Draw(t, "tags-remove-wins")
	var writers []string
	for _, s := range pc.systems {
		if slices.Contains(s.fields, "lifecycle") && !s.readOnly {
			writers = append(writers, s.name)
		}
	}
	if len(writers) > 0 && rapid.Float64Range(0, 1).Draw(t, "approve") < 0.3 {
		pc.approveTo = rapid.SampledFrom(writers).Draw(t, "approve-to")
	}
	var create []string
	for _, s := range pc.systems {
		if rapid.Bool().Draw(t, "create-"+s.name) {
			create = append(create, s.name)
		}
	}
	if len(create) == 0 {
		create = []string{pc.systems[0].name}
	}

	var b strings.Builder
	b.WriteString("version: 1\nstore: sqlite:./state/nhisync.db\nkinds:\n  sa:\n    match: [name]\n")
	fmt.Fprintf(&b, "    create_from: [%s]\n", strings.Join(create, ", "))
	if rapid.Float64Range(0, 1).Draw(t, "retire") < 0.3 {
		if life := maps("lifecycle"); len(life) > 0 {
			fmt.Fprintf(&b, "    retire_from: [%s]\n", life[0])
		}
	}
	b.WriteString("    fields:\n      name: { type: string }\n")
	fmt.Fprintf(&b, "      owner: { type: string, resolve: %s", pc.ownerRes)
	if len(pc.ownerAuth) > 0 {
		fmt.Fprintf(&b, ", authority: [%s]", strings.Join(pc.ownerAuth, ", "))
	}
	b.WriteString(" }\n")
	wins := "add"
	if pc.tagsRemove {
		wins = "remove"
	}
	fmt.Fprintf(&b, "      tags: { type: set, resolve: merge, wins: %s }\n", wins)
	fmt.Fprintf(&b, "      lifecycle: { type: enum, values: [active, suspended, decommissioned], resolve: %s", pc.lifeRes)
	if pc.approveTo != "" {
		fmt.Fprintf(&b, ", approve_to: [%s]", pc.approveTo)
	}
	b.WriteString(" }\n")
	b.WriteString("    rules:\n      - name: owner-is-email\n        check: owner == \"\" || owner.endsWith(\"@x\")\n")
	b.WriteString("systems:\n")
	for _, s := range pc.systems {
		if s.sqlTable {
			fmt.Fprintf(&b, "  %s:\n    connector: sql\n    dsn: sqlite:./%s.db\n    table: t\n    updated_column: updated_at\n    kind: sa\n    id: id\n", s.name, s.name)
		} else {
			fmt.Fprintf(&b, "  %s:\n    connector: file\n    path: %s.json\n    kind: sa\n    id: id\n", s.name, s.name)
		}
		if s.report {
			b.WriteString("    on_refused: report\n")
		}
		if s.readOnly {
			b.WriteString("    direction: read\n")
		}
		b.WriteString("    fields: { name: name")
		for _, f := range s.fields {
			fmt.Fprintf(&b, ", %s: %s", f, propNatives[f])
		}
		b.WriteString(" }\n")
	}
	pc.yaml = b.String()
	return pc
}

func genValue(t *rapid.T, field, label string) any {
	switch field {
	case "name":
		return rapid.SampledFrom(propNames).Draw(t, label)
	case "owner":
		return rapid.SampledFrom(propOwners).Draw(t, label)
	case "tags":
		sub := rapid.SliceOfDistinct(rapid.SampledFrom(propTags), rapid.ID[string]).Draw(t, label)
		out := make([]any, len(sub))
		for i, s := range sub {
			out[i] = s
		}
		return out
	default:
		return rapid.SampledFrom(propStates).Draw(t, label)
	}
}

func genRecord(t *rapid.T, s propSystem, id, name string) map[string]any {
	r := map[string]any{"id": id, "name": name}
	for _, f := range s.fields {
		if v := genValue(t, f, "init-"+s.name+"-"+id+"-"+f); v != "" {
			r[propNatives[f]] = v
		}
	}
	return r
}

// concurrentEdit changes a record in a system just before nhisync's first
// write of that record's field there, after the pass read everything.
type concurrentEdit struct {
	nhisync.Connector
	read   bool
	field  string // canonical
	edit   func(id string) (value any)
	did    *injected
	active bool
}

type injected struct {
	system, id, field, native string
	value                     any
}

func (c *concurrentEdit) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	err := c.Connector.Snapshot(ctx, emit)
	c.read = true
	return err
}

func (c *concurrentEdit) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.read && c.active && c.did.system == "" {
		for _, w := range ws {
			for _, ch := range w.Changes {
				if ch.Field == c.field && !w.Create {
					v := c.edit(w.ID)
					if c.did.system != "" {
						c.did.id, c.did.value = w.ID, v
					}
					c.active = false
					break
				}
			}
			if !c.active {
				break
			}
		}
	}
	return c.Connector.Apply(ctx, ws)
}

func TestPropertySyncRules(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pc := genConfig(rt)
		dir, err := os.MkdirTemp("", "nhisync-prop-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		files := map[string][]map[string]any{}
		initial := map[string][]map[string]any{}
		nextID := map[string]int{}
		for _, s := range pc.systems {
			names := rapid.SliceOfDistinct(rapid.SampledFrom(propNames), rapid.ID[string]).Draw(rt, "names-"+s.name)
			recs := []map[string]any{}
			for _, n := range names {
				recs = append(recs, genRecord(rt, s, "id-"+n, n))
			}
			if s.sqlTable {
				createTable(rt, dir, s.name)
				initial[s.name] = recs
			} else {
				files[s.name+".json"] = recs
			}
		}
		w := newWorldIn(rt, dir, pc.yaml, files)
		// Batches of one to three records (or the default 500), with
		// stored records read a batch or two at a time, put the records of
		// one pass in several reads, each begun while the batches before
		// it commit (recLoader).
		w.opts = append(w.opts, engine.WithBatchSize(rapid.SampledFrom([]int{1, 2, 3, 500}).Draw(rt, "batch")))
		defer engine.SetLoadAheadChunks(rapid.IntRange(1, 2).Draw(rt, "read-batches"))()
		// Half the worlds' engines keep the link heads from pass to pass,
		// as nhisync serve's does: the people's actions and the passes of
		// another process (propHuman, keysAlike's plans) change heads in
		// between.
		if rapid.Bool().Draw(rt, "head-cache") {
			w.opts = append(w.opts, engine.WithHeadCache(engine.NewHeadCache()))
		}
		pc.dir = dir
		for name, recs := range initial {
			pc.put(w, pc.systemByName(name), recs)
		}
		steps := rapid.IntRange(1, 10).Draw(rt, "steps")
		for step := range steps {
			switch rapid.IntRange(0, 9).Draw(rt, fmt.Sprintf("action-%d", step)) {
			case 0, 1, 2, 3:
				propEdit(rt, w, pc)
			case 4:
				s := rapid.SampledFrom(pc.systems).Draw(rt, "add-system")
				nextID[s.name]++
				id := fmt.Sprintf("new-%d", nextID[s.name])
				recs := pc.get(w, s)
				recs = append(recs, genRecord(rt, s, id, rapid.SampledFrom(propNames).Draw(rt, "add-name")))
				pc.put(w, s, recs)
			case 5:
				s := rapid.SampledFrom(pc.systems).Draw(rt, "remove-system")
				recs := pc.get(w, s)
				if len(recs) > 0 {
					i := rapid.IntRange(0, len(recs)-1).Draw(rt, "remove-index")
					pc.put(w, s, slices.Delete(recs, i, i+1))
				}
			case 6:
				propHuman(rt, w)
			default:
				propPass(rt, w, pc)
			}
		}
		propQuietAndConverge(rt, w, pc)
	})
}

// propEdit changes one field of one record of one system.
func propEdit(t *rapid.T, w *world, pc *propConfig) {
	s := rapid.SampledFrom(pc.systems).Draw(t, "edit-system")
	recs := pc.get(w, s)
	if len(recs) == 0 {
		return
	}
	i := rapid.IntRange(0, len(recs)-1).Draw(t, "edit-index")
	field := rapid.SampledFrom(append([]string{"name"}, s.fields...)).Draw(t, "edit-field")
	v := genValue(t, field, "edit-value")
	if v == "" {
		delete(recs[i], propNatives[field])
	} else {
		recs[i][propNatives[field]] = v
	}
	pc.put(w, s, recs)
}

// propHuman resolves a random open conflict or decides a random approval.
func propHuman(t *rapid.T, w *world) {
	ctx := context.Background()
	e := w.engine()
	if cs := w.conflicts(nhisync.StatusOpen); len(cs) > 0 {
		c := rapid.SampledFrom(cs).Draw(t, "conflict")
		p := rapid.SampledFrom(c.Proposals).Draw(t, "pick")
		if _, err := e.ResolveConflict(ctx, c.ID, p.System, "", "pat"); err != nil {
			t.Fatalf("resolve %d: %v", c.ID, err)
		}
	}
	if as := w.approvals(nhisync.StatusPending); len(as) > 0 {
		a := rapid.SampledFrom(as).Draw(t, "approval")
		var err error
		if rapid.Bool().Draw(t, "grant") {
			_, err = e.Approve(ctx, a.ID, "pat")
		} else {
			_, err = e.Reject(ctx, a.ID, "pat")
		}
		if err != nil && nhisync.ErrorCode(err) != nhisync.EFORBIDDEN {
			t.Fatalf("decide approval %d: %v", a.ID, err)
		}
	}
	if _, err := e.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// propSnapshot is what the test knows before a pass: golden values and
// every system's shadows.
type propSnapshot struct {
	golden  map[int64]*nhisync.Record
	shadows map[string]map[string]*nhisync.Link // system → ext id → link
	files   map[string]map[string]map[string]any
}

func takeSnapshot(t *rapid.T, w *world, pc *propConfig) *propSnapshot {
	ctx := context.Background()
	s := &propSnapshot{golden: map[int64]*nhisync.Record{}, shadows: map[string]map[string]*nhisync.Link{}, files: map[string]map[string]map[string]any{}}
	if err := w.store.ScanRecords(ctx, "", func(r *nhisync.Record) error { s.golden[r.ID] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, sys := range pc.systems {
		s.shadows[sys.name] = map[string]*nhisync.Link{}
		if err := w.store.ScanLinks(ctx, sys.name, nil, func(l *nhisync.Link) error { s.shadows[sys.name][l.ExternalID] = l; return nil }); err != nil {
			t.Fatal(err)
		}
		s.files[sys.name] = map[string]map[string]any{}
		for _, r := range pc.get(w, sys) {
			s.files[sys.name][fmt.Sprint(r["id"])] = r
		}
	}
	return s
}

func nativeSet(v any) nhisync.Value {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return nhisync.SetOf(out...)
}

func nativeValue(field string, v any) nhisync.Value {
	if field == "tags" {
		return nativeSet(v)
	}
	if v == nil {
		return nhisync.Value{}
	}
	return nhisync.Str(fmt.Sprint(v))
}

// propPass runs a pass, maybe with a concurrent edit, and checks the
// per-pass properties.
func propPass(t *rapid.T, w *world, pc *propConfig) {
	incremental := rapid.Float64Range(0, 1).Draw(t, "incremental") < 0.3
	// Keys looked up one by one or loaded in full: the pass decides alike
	// (planned both ways); the pass itself takes either way, or chooses.
	keysAlike(t, w, engine.PassOptions{Incremental: incremental})
	defer engine.SetLazyShare(rapid.SampledFrom([]int{0, -1, 8}).Draw(t, "lazy-share"))()
	before := takeSnapshot(t, w, pc)
	did := &injected{}
	if rapid.Float64Range(0, 1).Draw(t, "concurrent") < 0.4 {
		target := rapid.SampledFrom(pc.systems).Draw(t, "concurrent-system")
		field := rapid.SampledFrom(append([]string{"name"}, target.fields...)).Draw(t, "concurrent-field")
		value := genValue(t, field, "concurrent-value")
		w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
			if name != target.name {
				return c
			}
			return &concurrentEdit{Connector: c, field: field, did: did, active: true, edit: func(id string) any {
				var v any = value
				if value == "" {
					v = nil
				}
				recs := pc.get(w, target)
				i := slices.IndexFunc(recs, func(r map[string]any) bool { return fmt.Sprint(r["id"]) == id })
				if i < 0 || nativeValue(field, recs[i][propNatives[field]]).Equal(nativeValue(field, v)) {
					return nil // not a change: nothing to protect
				}
				did.system, did.field, did.native = name, field, propNatives[field]
				if v == nil {
					delete(recs[i], propNatives[field])
				} else {
					recs[i][propNatives[field]] = v
				}
				pc.put(w, target, recs)
				return v
			}}
		}
	}
	sum := w.pass(engine.PassOptions{KeepEvents: true, Incremental: incremental})
	w.wrap = nil
	after := takeSnapshot(t, w, pc)

	// Conditional writes: nothing nhisync wrote replaced the change made
	// after it read the record.
	if did.system != "" {
		got := after.files[did.system][did.id][did.native]
		if !nativeValue(did.field, got).Equal(nativeValue(did.field, did.value)) {
			t.Fatalf("a change made in %s after the read (%s=%v) was overwritten with %v\n%s", did.system, did.native, did.value, got, actions(sum))
		}
	}
	checkAuthority(t, pc, before, after, sum)
	checkMerge(t, pc, before, after, sum)
}

// checkAuthority: with resolve: priority, a lower-ranked system never
// replaces a value a higher-ranked system set (there is no stale_after).
func checkAuthority(t *rapid.T, pc *propConfig, before, after *propSnapshot, sum *engine.Summary) {
	if pc.ownerRes != "priority" || len(pc.ownerAuth) == 0 {
		return
	}
	rank := func(s string) int {
		if nhisync.IsPerson(s) {
			return 0
		}
		if i := slices.Index(pc.ownerAuth, s); i >= 0 {
			return i
		}
		return len(pc.ownerAuth)
	}
	for id, a := range after.golden {
		b := before.golden[id]
		if b == nil {
			continue
		}
		ob, oa := b.Fields["owner"], a.Fields["owner"]
		if ob == nil || oa == nil || ob.Value.IsZero() || ob.Value.Equal(oa.Value) {
			continue
		}
		if rank(oa.Source) > rank(ob.Source) {
			t.Fatalf("record %s: owner %q set by %s was replaced by %q from lower-ranked %s\n%s", a.Key, ob.Value, ob.Source, oa.Value, oa.Source, actions(sum))
		}
	}
}

// checkMerge: every element a system added (against its own shadow) and
// no system removed is in the merged set; every element removed and not
// added is gone; an element both added and removed follows wins.
func checkMerge(t *rapid.T, pc *propConfig, before, after *propSnapshot, sum *engine.Summary) {
	type delta struct{ adds, removes map[string]bool }
	deltas := map[int64]*delta{}
	for _, s := range pc.systems {
		if !slices.Contains(s.fields, "tags") {
			continue
		}
		for id, rec := range before.files[s.name] {
			l := after.shadows[s.name][id]
			if l == nil || l.RecordID == 0 || l.Status != nhisync.LinkLive {
				continue
			}
			var shadow nhisync.Value
			if old := before.shadows[s.name][id]; old != nil && old.RecordID == l.RecordID && old.Status == nhisync.LinkLive {
				shadow = old.Fields["tags"].Shadow
				if old.Fields["tags"] == nil {
					shadow = nhisync.Value{}
				}
			}
			obs := nativeSet(rec["tags"])
			d := deltas[l.RecordID]
			if d == nil {
				d = &delta{adds: map[string]bool{}, removes: map[string]bool{}}
				deltas[l.RecordID] = d
			}
			for _, e := range obs.Elems() {
				if !shadow.Has(e) {
					d.adds[e] = true
				}
			}
			for _, e := range shadow.Elems() {
				if !obs.Has(e) {
					d.removes[e] = true
				}
			}
		}
	}
	for id, d := range deltas {
		a := after.golden[id]
		if a == nil {
			continue
		}
		var was nhisync.Value
		if b := before.golden[id]; b != nil {
			was = b.Value("tags")
		}
		now := a.Value("tags")
		for _, e := range propTags {
			want := was.Has(e)
			switch {
			case d.adds[e] && d.removes[e]:
				want = !pc.tagsRemove
			case d.adds[e]:
				want = true
			case d.removes[e]:
				want = false
			}
			if now.Has(e) != want {
				t.Fatalf("record %s: tag %q present=%v, want %v (was %v, adds %v, removes %v, wins remove %v)\n%s",
					a.Key, e, now.Has(e), want, was, keys(d.adds), keys(d.removes), pc.tagsRemove, actions(sum))
			}
		}
	}
}

// propQuietAndConverge stops editing, lets passes settle, and checks
// idempotence, convergence and the audit log.
func propQuietAndConverge(t *rapid.T, w *world, pc *propConfig) {
	var sum *engine.Summary
	for range 4 {
		sum = w.pass(engine.PassOptions{KeepEvents: true})
		if sum.WritesPlanned == 0 && sum.WritesApplied == 0 && len(sum.Events) == 0 {
			break
		}
	}
	// Idempotence: a quiet pass plans no write and decides nothing.
	sum = w.pass(engine.PassOptions{KeepEvents: true})
	if sum.WritesPlanned != 0 || sum.WritesApplied != 0 {
		t.Fatalf("quiet pass planned %d writes\n%s", sum.WritesPlanned, actions(sum))
	}
	for _, ev := range sum.Events {
		switch ev.Action {
		case nhisync.ActAccepted, nhisync.ActRefused, nhisync.ActMerged, nhisync.ActQuarantined, nhisync.ActConflictOpened, nhisync.ActApprovalRequested, nhisync.ActRecordCreated:
			t.Fatalf("quiet pass decided: %s\n%s", ev.Action, actions(sum))
		}
	}
	// Convergence: every writable system holds the golden value of every
	// field it maps, except held, quarantined or conflicted ones.
	snap := takeSnapshot(t, w, pc)
	for _, rec := range snap.golden {
		for _, l := range rec.Links {
			if l.Status != nhisync.LinkLive {
				continue
			}
			s := pc.systemByName(l.System)
			if s.readOnly {
				continue
			}
			native := snap.files[l.System][l.ExternalID]
			if native == nil {
				t.Fatalf("%s: live link to missing record %s", l.System, l.ExternalID)
			}
			for _, f := range append([]string{"name"}, s.fields...) {
				if exempt(rec, l, f) {
					continue
				}
				got := nativeValue(f, native[propNatives[f]])
				if f == "name" {
					if !strings.EqualFold(strings.TrimSpace(got.Text()), rec.Value(f).Text()) && !got.Equal(rec.Value(f)) {
						t.Fatalf("%s/%s %s = %v, golden %v", l.System, l.ExternalID, f, got, rec.Value(f))
					}
					continue
				}
				if !got.Equal(rec.Value(f)) {
					t.Fatalf("not converged: %s record %s %s = %q, golden %q (%s)\nconfig:\n%s", l.System, l.ExternalID, f, got, rec.Value(f), rec.Key, pc.yaml)
				}
			}
		}
	}
	// Drift names what stays behind, and why (SPEC §3.13): once converged,
	// nothing is merely queued, failing or not yet planned.
	items, err := w.engine().Drift(context.Background())
	if err != nil {
		t.Fatalf("drift: %v", err)
	}
	for _, it := range items {
		switch it.Reason {
		case engine.DriftBehind, engine.DriftQueued, engine.DriftFailing:
			t.Fatalf("converged estate lists %s %s/%s %s = %q (golden %q) as %s: %s\nconfig:\n%s", it.System, it.Kind, it.Record, it.Field, it.Value, it.Golden, it.Reason, it.Detail, pc.yaml)
		}
	}
	// The audit log verifies: every entry is covered by the checkpoint its
	// commit signed.
	rep, err := audit.Verify(context.Background(), w.store, w.verifier)
	if err != nil || !rep.OK {
		t.Fatalf("audit verify: %v %+v", err, rep)
	}
}

func (pc *propConfig) systemByName(name string) propSystem {
	for _, s := range pc.systems {
		if s.name == name {
			return s
		}
	}
	return propSystem{}
}

// exempt reports whether (record, system, field) may stay behind: a
// conflict, quarantine, drift report, or a write waiting for a person.
func exempt(rec *nhisync.Record, l *nhisync.Link, field string) bool {
	for _, c := range rec.Conflicts {
		if c.Field == field && c.Status == nhisync.StatusOpen {
			return true
		}
	}
	for _, q := range rec.Quarantine {
		if q.Field == field && q.System == l.System && q.Status == nhisync.StatusOpen {
			return true
		}
	}
	if fs := l.Fields[field]; fs != nil && fs.Report != nil && fs.Report.Equal(rec.Value(field)) {
		return true
	}
	for _, a := range rec.Approvals {
		if a.Field == field && a.System == l.System && a.Value.Equal(rec.Value(field)) && (a.Status == nhisync.StatusPending || a.Status == nhisync.StatusRejected) {
			return true
		}
	}
	return false
}

// createTable makes a system's SQLite table.
func createTable(t *rapid.T, dir, name string) {
	db, err := sql.Open("sqlite", filepath.Join(dir, name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT, owner TEXT, tags TEXT, state TEXT, updated_at INTEGER)`); err != nil {
		t.Fatal(err)
	}
}

// get reads a system's records as native maps (sets as []any).
func (pc *propConfig) get(w *world, s propSystem) []map[string]any {
	if !s.sqlTable {
		return w.get(s.name + ".json")
	}
	db, err := sql.Open("sqlite", filepath.Join(pc.dir, s.name+".db"))
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, name, owner, tags, state FROM t ORDER BY rowid`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var id string
		var name, owner, tags, state sql.NullString
		if err := rows.Scan(&id, &name, &owner, &tags, &state); err != nil {
			w.t.Fatal(err)
		}
		r := map[string]any{"id": id}
		for k, v := range map[string]sql.NullString{"name": name, "owner": owner, "state": state} {
			if v.Valid && v.String != "" {
				r[k] = v.String
			}
		}
		if tags.Valid && tags.String != "" {
			var l []any
			for _, e := range strings.Split(tags.String, ",") {
				l = append(l, e)
			}
			r["tags"] = l
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// put makes a system hold exactly recs; in a table, rows that change get
// a new updated_at so the change cursor sees them.
func (pc *propConfig) put(w *world, s propSystem, recs []map[string]any) {
	if !s.sqlTable {
		w.put(s.name+".json", recs)
		return
	}
	old := map[string]string{}
	for _, r := range pc.get(w, s) {
		old[fmt.Sprint(r["id"])] = fmt.Sprint(r)
	}
	db, err := sql.Open("sqlite", filepath.Join(pc.dir, s.name+".db"))
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		w.t.Fatal(err)
	}
	keep := map[string]bool{}
	text := func(v any) any {
		switch v := v.(type) {
		case nil:
			return nil
		case []any:
			var parts []string
			for _, e := range v {
				parts = append(parts, fmt.Sprint(e))
			}
			slices.Sort(parts)
			return strings.Join(parts, ",")
		default:
			return fmt.Sprint(v)
		}
	}
	for _, r := range recs {
		id := fmt.Sprint(r["id"])
		keep[id] = true
		if old[id] == fmt.Sprint(r) {
			continue
		}
		pc.clock++
		if _, err := tx.Exec(`INSERT INTO t (id, name, owner, tags, state, updated_at) VALUES (?,?,?,?,?,?)
			ON CONFLICT (id) DO UPDATE SET name=excluded.name, owner=excluded.owner, tags=excluded.tags, state=excluded.state, updated_at=excluded.updated_at`,
			id, text(r["name"]), text(r["owner"]), text(r["tags"]), text(r["state"]), pc.clock); err != nil {
			w.t.Fatal(err)
		}
	}
	for id := range old {
		if !keep[id] {
			if _, err := tx.Exec(`DELETE FROM t WHERE id = ?`, id); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		w.t.Fatal(err)
	}
}
