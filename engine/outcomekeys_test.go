package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// keyReads is a store that notes the record ids RecordKeys is asked for,
// passing the bulk window on.
type keyReads struct {
	nhisync.Store
	mu    sync.Mutex
	asked []int64
}

func (k *keyReads) RecordKeys(ctx context.Context, ids []int64) (map[int64]string, error) {
	k.mu.Lock()
	k.asked = append(k.asked, ids...)
	k.mu.Unlock()
	return k.Store.RecordKeys(ctx, ids)
}

func (k *keyReads) BeginBulk(ctx context.Context) (bool, error) {
	return k.Store.(nhisync.BulkLoader).BeginBulk(ctx)
}

func (k *keyReads) EndBulk(ctx context.Context) error {
	return k.Store.(nhisync.BulkLoader).EndBulk(ctx)
}

// take returns the ids asked for since the last take, sorted.
func (k *keyReads) take() []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := slices.Sorted(slices.Values(k.asked))
	k.asked = nil
	return ids
}

// TestPassOutcomesTakeTheKeysItCommitted: the outcomes of a pass's writes
// name each record by the key the pass committed it with, without reading
// it again (Store.RecordKeys), and the outcomes of writes an earlier pass
// queued, sent by the next pass's drain before it reads, read the keys
// as they are then: renamed since, the entries say the new name.
func TestPassOutcomesTakeTheKeysItCommitted(t *testing.T) {
	const n = 3
	var cmdb, catalog []map[string]any
	for i := range n {
		id := fmt.Sprintf("x%d", i)
		cmdb = append(cmdb, sa(id, "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i)))
		catalog = append(catalog, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
	bc := w.store.(*bulkCheck)
	reads := &keyReads{Store: bc.Store}
	bc.Store = reads
	ctx := context.Background()

	// The first pass's writes fail: their outcomes are committed by the
	// pass, naming the records it made.
	down := w.process("first", func(c nhisync.Connector) nhisync.Connector {
		return &scriptedOutcomes{Connector: c, status: map[string]nhisync.WriteStatus{}}
	})
	size := auditSize(t, w)
	if _, err := down.Sync(ctx, engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if asked := reads.take(); len(asked) != 0 {
		t.Errorf("the first pass read the keys of records %v, which it committed", asked)
	}
	keys := map[int64]string{}
	for _, r := range allRecords(t, w) {
		keys[r.ID] = r.Key
	}
	if got := outcomeNames(t, w, size, nhisync.ActWriteFailed); !maps(got, keys, n) {
		t.Errorf("failed writes name records %v, want their keys %v", got, keys)
	}

	// Renamed since (as a person's action would, holding the lease): the
	// next pass's first drain reads the keys of the writes it sends.
	recs := allRecords(t, w)
	b := &nhisync.Batch{}
	for _, r := range recs {
		r.Key += "-renamed"
		keys[r.ID] = r.Key
		b.Records = append(b.Records, r)
	}
	if err := w.store.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(time.Hour)
	size = auditSize(t, w)
	if _, err := w.process("second", nil).Sync(ctx, engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for id := range keys {
		want = append(want, id)
	}
	slices.Sort(want)
	if asked := reads.take(); !slices.Equal(asked, want) {
		t.Errorf("the queued writes' outcomes read the keys of records %v, want %v", asked, want)
	}
	if got := outcomeNames(t, w, size, nhisync.ActWriteApplied); !maps(got, keys, n) {
		t.Errorf("applied writes name records %v, want their keys now %v", got, keys)
	}
}

// auditSize is how many entries the audit log holds.
func auditSize(t *testing.T, w *world) int64 {
	t.Helper()
	size, _, err := w.store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// outcomeNames returns the record each catalog entry of action after seq
// size names, by record id.
func outcomeNames(t *testing.T, w *world, size int64, action string) map[int64]string {
	t.Helper()
	got := map[int64]string{}
	err := w.store.ScanAudit(context.Background(), size+1, 0, func(ev *nhisync.AuditEntry, _ []byte) error {
		if ev.System == "catalog" && ev.Action == action {
			got[ev.RecordID] = ev.Record
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// maps reports whether got holds n records, each named as in want.
func maps(got, want map[int64]string, n int) bool {
	if len(got) != n {
		return false
	}
	for id, name := range got {
		if want[id] != name {
			return false
		}
	}
	return true
}

// allRecords loads every record of the world.
func allRecords(t *testing.T, w *world) []*nhisync.Record {
	t.Helper()
	var recs []*nhisync.Record
	if err := w.store.ScanRecords(context.Background(), "", func(r *nhisync.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}
