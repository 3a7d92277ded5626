package engine_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// keysAlike plans a pass (opt, a dry run) twice, with the golden key index
// loaded in full and with the keys looked up one by one, and fails when
// the two differ in anything they decide. It returns the look-ups and the
// scans of every head the second made, so a test can tell it took the lazy
// path.
func keysAlike(t tester, w *world, opt engine.PassOptions) (lookups, scans int) {
	opt.DryRun, opt.KeepEvents = true, true
	// One engine for both: each holds its own audit secret.
	e := w.engine()
	plan := func(share int) *engine.Summary {
		defer engine.SetLazyShare(share)()
		sum, err := e.Sync(context.Background(), opt)
		if err != nil {
			w.t.Fatalf("plan with lazyShare %d: %v", share, err)
		}
		return sum
	}
	full := plan(0)
	bc := w.store.(*bulkCheck)
	l0, s0 := bc.keyLookups, bc.headScans
	lazy := plan(-1)
	// Whether a plan took the link heads the one before it kept
	// (HeadsKept) says how it read, not what it decided.
	same := []cmp.Option{cmpopts.IgnoreUnexported(engine.Summary{}), cmpopts.IgnoreFields(engine.Summary{}, "DurationMS"),
		cmpopts.IgnoreFields(engine.SystemSummary{}, "HeadsKept"), cmpopts.EquateEmpty()}
	if d := cmp.Diff(full, lazy, same...); d != "" {
		t.Fatalf("a pass looking keys up decides otherwise than one loading every key (-full +lazy):\n%s", d)
	}
	lookups, scans = bc.keyLookups-l0, bc.headScans-s0
	// Unchanged strays left alone or all staged again: the pass decides
	// alike (leaveStrays).
	restore := engine.SetLeaveStrays(false)
	defer restore()
	for _, share := range []int{0, -1} {
		if d := cmp.Diff(full, plan(share), same...); d != "" {
			t.Fatalf("a pass staging every unchanged stray again decides otherwise than one leaving those nothing could match alone (-leaving +restaging, lazyShare %d):\n%s", share, d)
		}
	}
	return lookups, scans
}

// TestLazyKeysDecideAsFullIndex: a pass that looks up the keys it needs
// instead of loading every record's key decides what the full index
// decides: records matched and created by key, strays matched again, a
// key given up by one record and taken by another in the same pass (either
// order), a key taken by a record that keeps it, and the record count.
func TestLazyKeysDecideAsFullIndex(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json": {sa("i1", "aws", "alpha"), sa("i2", "aws", "beta"), sa("i3", "aws", "gamma"), sa("i4", "aws", "delta"), sa("i5", "aws", "eps")},
		"cmdb.json": {sa("c1", "aws", "alpha", "owner", "a@x.io"), sa("c2", "aws", "beta", "owner", "b@x.io"),
			sa("c3", "aws", "gamma", "owner", "c@x.io"), sa("c4", "aws", "delta"), sa("c5", "aws", "eps")},
		"catalog.json": {sa("k1", "aws", "alpha", "steward", "a@x.io"), sa("k9", "aws", "nobody")},
	})
	w.sync()
	if l, _ := keysAlike(t, w, engine.PassOptions{}); l != 1 {
		t.Errorf("a quiet pass looked keys up %d times, want once (the catalog's stray)", l)
	}
	// In one pass: alpha (the lower ID) gives its key up and beta takes it;
	// delta takes epsilon's key, which eps gives up after it (the higher
	// ID); gamma takes beta's old key... held by beta until beta moves,
	// decided before it. A new record in idp, one in the catalog that
	// matches it, and the catalog's stray that now matches a new record.
	w.put("idp.json", []map[string]any{sa("i1", "aws", "alpha2"), sa("i2", "aws", "alpha"), sa("i3", "aws", "beta"),
		sa("i4", "aws", "eps"), sa("i5", "aws", "eps2"), sa("i6", "aws", "zeta"), sa("i7", "aws", "nobody")})
	w.put("catalog.json", []map[string]any{sa("k1", "aws", "alpha2", "steward", "a@x.io"), sa("k9", "aws", "nobody"), sa("k2", "aws", "zeta")})
	lookups, scans := keysAlike(t, w, engine.PassOptions{})
	if lookups == 0 || scans != 0 {
		t.Errorf("the lazy plan looked keys up %d times and scanned every head %d times, want some and none", lookups, scans)
	}
	defer engine.SetLazyShare(-1)()
	before := w.store.(*bulkCheck).headScans
	sum := w.sync()
	if got := w.store.(*bulkCheck).headScans - before; got != 0 {
		t.Errorf("the lazy pass scanned every head %d times, want none", got)
	}
	if sum.Records != 7 {
		t.Errorf("Summary.Records = %d, want 7", sum.Records)
	}
	keysAlike(t, w, engine.PassOptions{})
	recs, err := w.store.CountRecords(context.Background())
	if err != nil || recs["service_account"] != 7 {
		t.Errorf("CountRecords = %v, %v; want 7 service accounts", recs, err)
	}
	for _, key := range [][]string{{"aws", "alpha"}, {"aws", "alpha2"}, {"aws", "beta"}, {"aws", "eps2"}, {"aws", "zeta"}, {"aws", "nobody"}} {
		if _, err := w.store.RecordByKey(context.Background(), "service_account", nhisync.NormalizeKey(key)); err != nil {
			t.Errorf("no record holds %v after the pass: %v", key, err)
		}
	}
}

// TestLazyKeysPartialMatchLoadsEveryKey: a system that maps some match
// fields only matches by them, which only the full index answers: a pass
// with such an observation to match loads every head even when told to
// look keys up.
func TestLazyKeysPartialMatchLoadsEveryKey(t *testing.T) {
	cfg := baseConfig + `  names:
    connector: file
    path: names.json
    kind: service_account
    id: id
    fields: { name: name, owner: owner }
`
	w := newWorld(t, cfg, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "alpha"), sa("i2", "aws", "beta")},
		"cmdb.json":    {sa("c1", "aws", "alpha")},
		"catalog.json": {},
		"names.json":   {},
	})
	w.sync()
	w.put("names.json", []map[string]any{{"id": "n1", "name": "beta", "owner": "b@x.io"}})
	lookups, scans := keysAlike(t, w, engine.PassOptions{})
	if scans != 1 || lookups != 0 {
		t.Errorf("a plan told to look keys up, with an observation matched by some match fields, scanned every head %d times and looked keys up %d times, want once and none", scans, lookups)
	}
}
