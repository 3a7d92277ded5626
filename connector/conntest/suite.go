package conntest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// Run runs the conformance suite against the connector registered as
// driver, on systems h makes. Each test makes a fresh system.
func Run(t *testing.T, driver string, h Harness) {
	t.Helper()
	if _, ok := nhisync.LookupDriver(driver); !ok {
		t.Fatalf("conntest: no connector registered as %q (import its package)", driver)
	}
	s := &suite{driver: driver, h: h, f: h.Features()}
	t.Run("Snapshot", s.testSnapshot)
	t.Run("SnapshotStopsOnEmitError", s.testEmitError)
	t.Run("SetSeparator", s.testSeparator)
	t.Run("ApplyUpdate", s.testApplyUpdate)
	t.Run("ApplyClear", s.testApplyClear)
	t.Run("ApplyStale", s.testApplyStale)
	t.Run("ApplyIdempotent", s.testApplyIdempotent)
	t.Run("ApplyMissing", s.testApplyMissing)
	t.Run("ApplyRefused", s.testApplyRefused)
	t.Run("ApplySameRecordTwice", s.testSameRecordTwice)
	t.Run("WriteOnlyMapping", s.testWriteOnly)
	t.Run("Create", s.testCreate)
	t.Run("CreateWithoutProvision", s.testCreateNotProvisioned)
	if s.f.CompositeID {
		t.Run("CompositeID", s.testComposite)
	}
	t.Run("Changes", s.testChanges)
	t.Run("Check", s.testCheck)
	t.Run("Many", s.testMany)
}

type suite struct {
	driver string
	h      Harness
	f      Features
}

// Record returns the i-th record of the suite's data: every native name
// set, tags a set of two, notes holding a comma and quotes.
func Record(i int) map[string]any {
	platforms := []string{"aws", "gcp", "azure", "k8s", "github"}
	return map[string]any{
		IDName:         fmt.Sprintf("sa-%05d", i),
		NameName:       fmt.Sprintf("bot-%d", i),
		PlatformName:   platforms[i%len(platforms)],
		OwnerName:      fmt.Sprintf("owner%d@example.com", i),
		TagsName:       []string{"internal", fmt.Sprintf("team-%d", i%7)},
		StatusName:     "active",
		RotatedName:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour).Format(time.RFC3339),
		NotesName:      fmt.Sprintf("note %d, with \"quotes\"", i),
		CostCenterName: fmt.Sprintf("cc-%d", 100+i),
	}
}

func records(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = Record(i)
	}
	return out
}

// open sets up a system holding recs (after opts adjust the standard
// system) and opens a connector on it.
func (s *suite) open(t *testing.T, recs []map[string]any, opts ...func(*nhisync.System)) (*nhisync.System, nhisync.Connector) {
	t.Helper()
	sys := System("conntest", s.driver)
	for _, o := range opts {
		o(sys)
	}
	s.h.Setup(t, sys, recs)
	return sys, s.reopen(t, sys)
}

func (s *suite) reopen(t *testing.T, sys *nhisync.System) nhisync.Connector {
	t.Helper()
	d, _ := nhisync.LookupDriver(s.driver)
	if d.Validate != nil {
		if err := d.Validate(sys, Kind()); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	c, err := d.Open(t.Context(), sys, Kind())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// snap is one snapshot: ids in emitted order and observations by id.
type snap struct {
	ids []string
	obs map[string]nhisync.Observation
}

func snapshot(t *testing.T, c nhisync.Connector) snap {
	t.Helper()
	out := snap{obs: map[string]nhisync.Observation{}}
	err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		if o.ID == "" {
			t.Errorf("Snapshot emitted a record with an empty ID")
		}
		if _, dup := out.obs[o.ID]; dup {
			t.Errorf("Snapshot emitted ID %q twice", o.ID)
		}
		o.Values = slices.Clone(o.Values)
		out.ids = append(out.ids, o.ID)
		out.obs[o.ID] = o
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return out
}

// expected returns the canonical value a record holds for mapping m.
func expected(m *nhisync.Mapping, rec map[string]any) nhisync.Value {
	switch v := rec[m.Name].(type) {
	case []string:
		return nhisync.SetOf(v...)
	case string:
		if m.Type.IsSet() {
			return nhisync.SetOf(strings.Split(v, m.Separator())...)
		}
		return nhisync.Str(v)
	}
	return nhisync.Value{}
}

func same(m *nhisync.Mapping, a, b nhisync.Value) bool {
	return m.Type.Canonical(a).Equal(m.Type.Canonical(b))
}

// checkObs compares an observation with the record it came from.
func checkObs(t *testing.T, sys *nhisync.System, o nhisync.Observation, rec map[string]any) {
	t.Helper()
	if len(o.Values) != len(sys.Fields) {
		t.Errorf("record %s: %d values for %d mapped fields", o.ID, len(o.Values), len(sys.Fields))
		return
	}
	for i, m := range sys.Fields {
		want := nhisync.Value{}
		if m.Direction.Reads() {
			want = expected(m, rec)
		}
		if !same(m, o.Values[i], want) {
			t.Errorf("record %s field %s (%s): got %q, want %q", o.ID, m.Field, m.Name, o.Values[i], want)
		}
	}
}

func checkAll(t *testing.T, sys *nhisync.System, got snap, recs []map[string]any) {
	t.Helper()
	if len(got.ids) != len(recs) {
		t.Errorf("Snapshot emitted %d records, want %d", len(got.ids), len(recs))
	}
	for _, rec := range recs {
		id := IDOf(sys, rec)
		o, ok := got.obs[id]
		if !ok {
			t.Errorf("Snapshot lacks record %q", id)
			continue
		}
		checkObs(t, sys, o, rec)
	}
}

func ids(sys *nhisync.System, recs []map[string]any) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = IDOf(sys, r)
	}
	return out
}

func apply(t *testing.T, c nhisync.Connector, writes ...nhisync.Write) []nhisync.WriteResult {
	t.Helper()
	res, err := c.Apply(t.Context(), writes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(writes) {
		t.Fatalf("Apply returned %d results for %d writes", len(res), len(writes))
	}
	return res
}

func wantStatus(t *testing.T, res []nhisync.WriteResult, i int, want nhisync.WriteStatus) {
	t.Helper()
	if res[i].Status != want {
		t.Errorf("write %d: status %s (err %v), want %s", i, res[i].Status, res[i].Err, want)
	}
	if want == nhisync.WriteFailed && res[i].Err == nil {
		t.Errorf("write %d failed without an error", i)
	}
}

// change builds a Change of canonical field f from rec's current value.
func change(sys *nhisync.System, rec map[string]any, f string, to nhisync.Value) nhisync.Change {
	return nhisync.Change{Field: f, Old: expected(sys.Mapping(f), rec), New: to}
}

func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case []byte:
		return len(v) == 0
	case []any:
		return len(v) == 0
	case []string:
		return len(v) == 0
	}
	return false
}

// checkUnmapped verifies that unmapped native data of rec survived.
func (s *suite) checkUnmapped(t *testing.T, sys *nhisync.System, rec map[string]any) {
	t.Helper()
	raw := s.h.Raw(t, sys, IDOf(sys, rec))
	if raw == nil {
		t.Fatalf("record %s is gone", IDOf(sys, rec))
	}
	for _, k := range []string{NotesName, CostCenterName} {
		if got, want := Text(raw[k]), Text(rec[k]); got != want {
			t.Errorf("record %s: unmapped %s = %q, want %q", IDOf(sys, rec), k, got, want)
		}
	}
}

func (s *suite) testSnapshot(t *testing.T) {
	recs := records(6)
	recs[1][OwnerName] = ""
	recs[1][TagsName] = []string{" b ", "a", "a"}
	recs[2][OwnerName] = nil
	recs[2][TagsName] = nil
	delete(recs[3], OwnerName)
	delete(recs[3], TagsName)
	delete(recs[3], StatusName)
	recs[4][NameName] = "bötname-ünïcode-✓"
	recs[4][NotesName] = "line one\nline two, \"quoted\"; ok"
	recs[5][RotatedName] = "2026-03-04T05:06:07.5+02:00"
	sys, c := s.open(t, recs)
	got := snapshot(t, c)
	checkAll(t, sys, got, recs)
	if s.f.Ordered && !slices.Equal(got.ids, ids(sys, recs)) {
		t.Errorf("Snapshot order %v, want stored order %v", got.ids, ids(sys, recs))
	}
	// A second snapshot sees the same.
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testEmitError(t *testing.T) {
	_, c := s.open(t, records(5))
	stop := errors.New("stop here")
	calls := 0
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("Snapshot returned %v, want the emit error", err)
	}
	if calls != 1 {
		t.Errorf("emit called %d times after failing, want 1", calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Snapshot(ctx, func(nhisync.Observation) error { return nil }); err == nil {
		t.Errorf("Snapshot with a cancelled context succeeded")
	}
}

func (s *suite) testSeparator(t *testing.T) {
	recs := records(3)
	recs[0][TagsName] = []string{"pci", "pii"}
	recs[1][TagsName] = []string{"solo"}
	sys, c := s.open(t, recs, func(sys *nhisync.System) { sys.Mapping("classification").Join = ";" })
	checkAll(t, sys, snapshot(t, c), recs)
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, recs[0]), Changes: []nhisync.Change{
		change(sys, recs[0], "classification", nhisync.SetOf("c", "a", "b")),
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	recs[0][TagsName] = []string{"a", "b", "c"}
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testApplyUpdate(t *testing.T) {
	recs := records(4)
	sys, c := s.open(t, recs)
	r := recs[1]
	rotated := "2026-06-01T12:00:00Z"
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		change(sys, r, "owner", nhisync.Str("new.owner@example.com")),
		change(sys, r, "lifecycle", nhisync.Str("suspended")),
		change(sys, r, "last_rotated", nhisync.Str(rotated)),
		change(sys, r, "classification", nhisync.SetOf("pci", "confidential")),
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	r[OwnerName] = "new.owner@example.com"
	r[StatusName] = "suspended"
	r[RotatedName] = rotated
	r[TagsName] = []string{"confidential", "pci"}
	got := snapshot(t, c)
	checkAll(t, sys, got, recs)
	for _, rec := range recs {
		s.checkUnmapped(t, sys, rec)
	}
	if s.f.Ordered && !slices.Equal(got.ids, ids(sys, recs)) {
		t.Errorf("order after a write %v, want %v", got.ids, ids(sys, recs))
	}
	// A fresh connector reads the same from the system.
	checkAll(t, sys, snapshot(t, s.reopen(t, sys)), recs)
}

func (s *suite) testApplyClear(t *testing.T) {
	recs := records(3)
	sys, c := s.open(t, recs)
	r := recs[2]
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		change(sys, r, "owner", nhisync.Value{}),
		change(sys, r, "classification", nhisync.SetOf()),
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	delete(r, OwnerName)
	delete(r, TagsName)
	checkAll(t, sys, snapshot(t, c), recs)
	raw := s.h.Raw(t, sys, IDOf(sys, r))
	if !empty(raw[OwnerName]) || !empty(raw[TagsName]) {
		t.Errorf("cleared fields hold %q and %q, want no value", raw[OwnerName], raw[TagsName])
	}
	s.checkUnmapped(t, sys, r)
	// Filling an empty value back in.
	res = apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		{Field: "owner", New: nhisync.Str("back@example.com")},
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	r[OwnerName] = "back@example.com"
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testApplyStale(t *testing.T) {
	recs := records(4)
	sys, c := s.open(t, recs)
	snapshot(t, c)
	r1, r2 := recs[1], recs[2]
	s.h.Edit(t, sys, IDOf(sys, r1), map[string]any{OwnerName: "someone.else@example.com"})
	res := apply(t, c,
		nhisync.Write{ID: IDOf(sys, r1), Changes: []nhisync.Change{
			change(sys, r1, "lifecycle", nhisync.Str("suspended")), // Old still holds
			change(sys, r1, "owner", nhisync.Str("nhisync@example.com")),
		}},
		nhisync.Write{ID: IDOf(sys, r2), Changes: []nhisync.Change{
			change(sys, r2, "owner", nhisync.Str("fine@example.com")),
		}},
	)
	wantStatus(t, res, 0, nhisync.WriteStale)
	wantStatus(t, res, 1, nhisync.WriteApplied)
	raw := s.h.Raw(t, sys, IDOf(sys, r1))
	if got := Text(raw[OwnerName]); got != "someone.else@example.com" {
		t.Errorf("stale write overwrote the concurrent change: owner %q", got)
	}
	if got := Text(raw[StatusName]); got != "active" {
		t.Errorf("stale write applied part of itself: status %q", got)
	}
	r1[OwnerName] = "someone.else@example.com"
	r2[OwnerName] = "fine@example.com"
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testApplyIdempotent(t *testing.T) {
	recs := records(3)
	sys, c := s.open(t, recs)
	r := recs[0]
	w := nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		change(sys, r, "owner", nhisync.Str("retry@example.com")),
		change(sys, r, "classification", nhisync.SetOf("x", "y")),
	}}
	for try := range 2 {
		res := apply(t, c, w)
		if res[0].Status != nhisync.WriteApplied {
			t.Errorf("try %d: status %s (%v), want applied", try, res[0].Status, res[0].Err)
		}
	}
	// A write whose target already holds New is applied, whatever Old says.
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		{Field: "owner", Old: nhisync.Str("long-gone@example.com"), New: nhisync.Str("retry@example.com")},
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	r[OwnerName] = "retry@example.com"
	r[TagsName] = []string{"x", "y"}
	checkAll(t, sys, snapshot(t, c), recs)
	if res := apply(t, c); len(res) != 0 {
		t.Errorf("an empty batch returned %d results", len(res))
	}
}

func (s *suite) testApplyMissing(t *testing.T) {
	recs := records(3)
	sys, c := s.open(t, recs)
	snapshot(t, c)
	s.h.Remove(t, sys, IDOf(sys, recs[1]))
	res := apply(t, c,
		nhisync.Write{ID: IDOf(sys, recs[1]), Changes: []nhisync.Change{change(sys, recs[1], "owner", nhisync.Str("x@example.com"))}},
		nhisync.Write{ID: "no-such-record", Changes: []nhisync.Change{{Field: "owner", New: nhisync.Str("x@example.com")}}},
		nhisync.Write{ID: IDOf(sys, recs[2]), Changes: []nhisync.Change{change(sys, recs[2], "owner", nhisync.Str("y@example.com"))}},
	)
	wantStatus(t, res, 0, nhisync.WriteMissing)
	wantStatus(t, res, 1, nhisync.WriteMissing)
	wantStatus(t, res, 2, nhisync.WriteApplied)
	recs[2][OwnerName] = "y@example.com"
	checkAll(t, sys, snapshot(t, c), []map[string]any{recs[0], recs[2]})
}

func (s *suite) testApplyRefused(t *testing.T) {
	recs := records(3)
	sys, c := s.open(t, recs, func(sys *nhisync.System) { sys.Mapping("lifecycle").Direction = nhisync.DirRead })
	res := apply(t, c,
		nhisync.Write{ID: IDOf(sys, recs[0]), Changes: []nhisync.Change{{Field: "no_such_field", New: nhisync.Str("x")}}},
		nhisync.Write{ID: IDOf(sys, recs[1]), Changes: []nhisync.Change{
			change(sys, recs[1], "owner", nhisync.Str("x@example.com")),
			change(sys, recs[1], "lifecycle", nhisync.Str("suspended")),
		}},
		nhisync.Write{ID: IDOf(sys, recs[2]), Changes: []nhisync.Change{change(sys, recs[2], "owner", nhisync.Str("ok@example.com"))}},
	)
	wantStatus(t, res, 0, nhisync.WriteFailed)
	wantStatus(t, res, 1, nhisync.WriteFailed)
	wantStatus(t, res, 2, nhisync.WriteApplied)
	recs[2][OwnerName] = "ok@example.com"
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testSameRecordTwice(t *testing.T) {
	recs := records(2)
	sys, c := s.open(t, recs)
	r := recs[1]
	res := apply(t, c,
		nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{change(sys, r, "owner", nhisync.Str("first@example.com"))}},
		nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{change(sys, r, "lifecycle", nhisync.Str("rotation_due"))}},
	)
	wantStatus(t, res, 0, nhisync.WriteApplied)
	wantStatus(t, res, 1, nhisync.WriteApplied)
	r[OwnerName] = "first@example.com"
	r[StatusName] = "rotation_due"
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testWriteOnly(t *testing.T) {
	recs := records(2)
	sys, c := s.open(t, recs, func(sys *nhisync.System) { sys.Mapping("owner").Direction = nhisync.DirWrite })
	checkAll(t, sys, snapshot(t, c), recs) // owner reads as zero
	r := recs[0]
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
		change(sys, r, "owner", nhisync.Str("written@example.com")),
	}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	if got := Text(s.h.Raw(t, sys, IDOf(sys, r))[OwnerName]); got != "written@example.com" {
		t.Errorf("write-only field holds %q after a write", got)
	}
}

// createWrite returns a Create write of a new record and the record as
// the system should then hold it.
func createWrite(sys *nhisync.System) (nhisync.Write, map[string]any) {
	rec := map[string]any{
		NameName: "new-bot", PlatformName: "aws", OwnerName: "creator@example.com",
		TagsName: []string{"new", "pii"}, StatusName: "active", RotatedName: "2026-02-03T04:05:06Z",
	}
	w := nhisync.Write{Create: true}
	for _, m := range sys.Fields {
		w.Changes = append(w.Changes, nhisync.Change{Field: m.Field, New: expected(m, rec)})
	}
	return w, rec
}

func (s *suite) testCreate(t *testing.T) {
	recs := records(3)
	sys, c := s.open(t, recs, func(sys *nhisync.System) { sys.Provision = true })
	w, rec := createWrite(sys)
	res := apply(t, c, w)
	wantStatus(t, res, 0, nhisync.WriteApplied)
	id := res[0].ID
	if id == "" {
		t.Fatalf("Create returned no ID")
	}
	got := snapshot(t, c)
	o, ok := got.obs[id]
	if !ok {
		t.Fatalf("a new snapshot lacks created record %q (has %v)", id, got.ids)
	}
	checkObs(t, sys, o, rec)
	if len(got.ids) != len(recs)+1 {
		t.Errorf("%d records after one create, want %d", len(got.ids), len(recs)+1)
	}
	if s.f.Ordered && got.ids[len(got.ids)-1] != id {
		t.Errorf("created record is not last: %v", got.ids)
	}
	for _, r := range recs {
		s.checkUnmapped(t, sys, r)
	}
	// A retried create finds the record it made instead of making another.
	res = apply(t, c, w)
	wantStatus(t, res, 0, nhisync.WriteApplied)
	if res[0].ID != id {
		t.Errorf("retried create returned ID %q, want %q", res[0].ID, id)
	}
	if n := len(snapshot(t, c).ids); n != len(recs)+1 {
		t.Errorf("%d records after a retried create, want %d", n, len(recs)+1)
	}
}

func (s *suite) testCreateNotProvisioned(t *testing.T) {
	recs := records(2)
	sys, c := s.open(t, recs)
	w, _ := createWrite(sys)
	res := apply(t, c, w)
	wantStatus(t, res, 0, nhisync.WriteFailed)
	checkAll(t, sys, snapshot(t, c), recs)
}

func (s *suite) testComposite(t *testing.T) {
	recs := records(4)
	recs[2][NameName] = "  Padded-Name "
	sys, c := s.open(t, recs, func(sys *nhisync.System) { sys.ID = ""; sys.Provision = true })
	got := snapshot(t, c)
	checkAll(t, sys, got, recs)
	if want := "azure/Padded-Name"; got.obs[want].ID != want {
		t.Errorf("composite ids %v lack %q", got.ids, want)
	}
	r := recs[1]
	res := apply(t, c, nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{change(sys, r, "owner", nhisync.Str("c@example.com"))}})
	wantStatus(t, res, 0, nhisync.WriteApplied)
	r[OwnerName] = "c@example.com"
	w, rec := createWrite(sys)
	res = apply(t, c, w)
	wantStatus(t, res, 0, nhisync.WriteApplied)
	if res[0].ID != "aws/new-bot" {
		t.Errorf("created composite ID %q, want aws/new-bot", res[0].ID)
	}
	checkAll(t, sys, snapshot(t, c), append(recs, rec))
	for _, r := range recs {
		s.checkUnmapped(t, sys, r)
	}
}

func (s *suite) testChanges(t *testing.T) {
	recs := records(10)
	sys, c := s.open(t, recs)
	ch, ok := c.(nhisync.Changer)
	if !ok {
		t.Skipf("connector %s opened this system without a change cursor", s.driver)
	}
	changes := func(cursor string) (map[string]nhisync.Observation, string) {
		t.Helper()
		got := map[string]nhisync.Observation{}
		next, err := ch.Changes(t.Context(), cursor, func(o nhisync.Observation) error {
			o.Values = slices.Clone(o.Values)
			got[o.ID] = o
			return nil
		})
		if err != nil {
			t.Fatalf("Changes(%q): %v", cursor, err)
		}
		return got, next
	}
	all, c1 := changes("")
	if len(all) != len(recs) {
		t.Errorf("Changes(\"\") returned %d records, want all %d", len(all), len(recs))
	}
	for _, r := range recs {
		checkObs(t, sys, all[IDOf(sys, r)], r)
	}
	edited := IDOf(sys, recs[3])
	s.h.Edit(t, sys, edited, map[string]any{OwnerName: "changed@example.com"})
	recs[3][OwnerName] = "changed@example.com"
	got, c2 := changes(c1)
	o, ok := got[edited]
	if !ok {
		t.Fatalf("Changes after an edit lacks the edited record %s (got %d records)", edited, len(got))
	}
	checkObs(t, sys, o, recs[3])
	if len(got) > 2 {
		t.Errorf("Changes after one edit returned %d records, want the edit and at most one boundary record", len(got))
	}
	got, _ = changes(c2)
	for id := range got {
		if id != edited {
			t.Errorf("Changes with no new edit returned %s", id)
		}
	}
}

func (s *suite) testCheck(t *testing.T) {
	_, c := s.open(t, records(1))
	ch, ok := c.(nhisync.Checker)
	if !ok {
		t.Skipf("connector %s has no health check", s.driver)
	}
	if err := ch.Check(t.Context()); err != nil {
		t.Errorf("Check on a healthy system: %v", err)
	}
}

func (s *suite) testMany(t *testing.T) {
	const n, batch = 2000, 500
	recs := records(n)
	sys, c := s.open(t, recs)
	got := snapshot(t, c)
	checkAll(t, sys, got, recs)
	if s.f.Ordered && !slices.Equal(got.ids, ids(sys, recs)) {
		t.Errorf("Snapshot of %d records is out of stored order", n)
	}
	writes := make([]nhisync.Write, batch)
	for i := range writes {
		r := recs[i*3]
		writes[i] = nhisync.Write{ID: IDOf(sys, r), Changes: []nhisync.Change{
			change(sys, r, "owner", nhisync.Str(fmt.Sprintf("batch%d@example.com", i))),
			change(sys, r, "classification", nhisync.SetOf("batch")),
		}}
		r[OwnerName] = fmt.Sprintf("batch%d@example.com", i)
		r[TagsName] = []string{"batch"}
	}
	res := apply(t, c, writes...)
	for i := range res {
		wantStatus(t, res, i, nhisync.WriteApplied)
	}
	checkAll(t, sys, snapshot(t, c), recs)
}
