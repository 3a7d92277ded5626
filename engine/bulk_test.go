package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// bulkCheck is a world's store seen as a nhisync.BulkLoader (passing the
// window to the store when it has one) that holds the engine to the
// window's contract: inside it, commits only add records and links the
// store does not hold, each once, and nothing is looked up by key. Every
// engine test, the property tests among them, runs through it.
type bulkCheck struct {
	nhisync.Store
	t       tester
	systems []string
	open    bool
	// opened counts the windows opened, headScans the scans of every
	// record's head and keyLookups the look-ups of keys (tests read them).
	opened, headScans, keyLookups int
	// linkHeadScans counts the scans of a system's link heads (the systems
	// are read side by side).
	linkHeadScans atomic.Int64
	// plannedReads counts the reads of planned writes (OutboxWrites).
	plannedReads int
	recs         map[int64]bool
	keys         map[string]bool
	links        map[string]bool
	// ending, when set, is called as EndBulk starts.
	ending func()
}

// broken reports a breach of the window's contract as the test's failure
// and as the call's error: the store's methods run on the engine's
// goroutines (a commit on commitAsync's), where Fatalf would end the
// goroutine, not the test, and the pass would wait on it for ever.
func (b *bulkCheck) broken(format string, args ...any) error {
	b.t.Errorf(format, args...)
	return fmt.Errorf("bulkCheck: "+format, args...)
}

func (b *bulkCheck) BeginBulk(ctx context.Context) (bool, error) {
	if b.open {
		return false, b.broken("bulk window opened twice")
	}
	if bl, ok := b.Store.(nhisync.BulkLoader); ok {
		open, err := bl.BeginBulk(ctx)
		if err != nil || !open {
			return open, err
		}
	} else if !b.empty(ctx) {
		return false, nil
	}
	// A store that holds no records and no links holds no write either
	// (every write is a record's): a pass in the window takes every write
	// queued to be its own.
	if ws, err := b.Store.OutboxWrites(ctx, "", "", time.Time{}, 1); err != nil || len(ws) > 0 {
		return false, b.broken("bulk window opened over a store holding %d queued writes (%v)", len(ws), err)
	}
	b.open, b.opened = true, b.opened+1
	b.recs, b.keys, b.links = map[int64]bool{}, map[string]bool{}, map[string]bool{}
	return true, nil
}

func (b *bulkCheck) empty(ctx context.Context) bool {
	n := 0
	count := func(any) error { n++; return nil }
	if err := b.Store.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error { return count(h) }); err != nil {
		b.t.Fatal(err)
	}
	for _, s := range b.systems {
		if err := b.ScanLinkHeads(ctx, s, func(h nhisync.LinkHead) error { return count(h) }); err != nil {
			b.t.Fatal(err)
		}
	}
	return n == 0
}

func (b *bulkCheck) EndBulk(ctx context.Context) error {
	if !b.open {
		return b.broken("bulk window closed but not open")
	}
	b.open = false
	if b.ending != nil {
		b.ending()
	}
	if bl, ok := b.Store.(nhisync.BulkLoader); ok {
		return bl.EndBulk(ctx)
	}
	return nil
}

func (b *bulkCheck) Commit(ctx context.Context, batch *nhisync.Batch) error {
	if b.open {
		for _, r := range batch.Records {
			if b.recs[r.ID] {
				return b.broken("record %d committed twice inside the bulk window", r.ID)
			}
			b.recs[r.ID] = true
			if k := r.Kind + "\x00" + r.MatchKey; b.keys[k] {
				return b.broken("match key %s/%s committed twice inside the bulk window", r.Kind, r.MatchKey)
			} else {
				b.keys[k] = true
			}
		}
		for _, l := range batch.Links {
			k := l.System + "\x00" + l.ExternalID
			if b.links[k] {
				return b.broken("link %s/%s committed twice inside the bulk window", l.System, l.ExternalID)
			}
			b.links[k] = true
		}
	}
	return b.Store.Commit(ctx, batch)
}

func (b *bulkCheck) RecordByKey(ctx context.Context, kind, matchKey string) (*nhisync.Record, error) {
	if b.open {
		return nil, b.broken("RecordByKey(%s, %s) inside the bulk window", kind, matchKey)
	}
	return b.Store.RecordByKey(ctx, kind, matchKey)
}

func (b *bulkCheck) RecordIDsByKey(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
	if b.open {
		return nil, b.broken("RecordIDsByKey(%s, %d keys) inside the bulk window", kind, len(keys))
	}
	b.keyLookups++
	return b.Store.RecordIDsByKey(ctx, kind, keys)
}

func (b *bulkCheck) OutboxWrites(ctx context.Context, system, status string, due time.Time, limit int) ([]*nhisync.OutboxWrite, error) {
	if status == nhisync.OutboxPlanned {
		b.plannedReads++
	}
	return b.Store.OutboxWrites(ctx, system, status, due, limit)
}

func (b *bulkCheck) ScanRecordHeads(ctx context.Context, fn func(nhisync.RecordHead) error) error {
	b.headScans++
	return b.Store.ScanRecordHeads(ctx, fn)
}

// ScanLinkHeadPages passes the store's pages on (every head at once from a
// store without them) in memory of its own that it overwrites once fn
// returns: an engine that kept a head's id or hash past the call would
// read garbage and fail its test.
func (b *bulkCheck) ScanLinkHeadPages(ctx context.Context, system string, fn func([]nhisync.LinkHead) error) error {
	b.linkHeadScans.Add(1)
	var buf []byte
	var page []nhisync.LinkHead
	give := func(in []nhisync.LinkHead) error {
		buf, page = buf[:0], page[:0]
		for _, h := range in {
			buf = append(append(buf, h.ExternalID...), h.Hash...)
		}
		at := 0
		for _, h := range in {
			id := unsafe.String(unsafe.SliceData(buf[at:]), len(h.ExternalID))
			at += len(h.ExternalID)
			hash := buf[at : at+len(h.Hash) : at+len(h.Hash)]
			at += len(h.Hash)
			if h.Hash == nil {
				hash = nil
			}
			h.ExternalID, h.Hash = id, hash
			page = append(page, h)
		}
		err := fn(page)
		for i := range buf {
			buf[i] = 0xa5
		}
		return err
	}
	if pager, ok := b.Store.(nhisync.LinkHeadPager); ok {
		return pager.ScanLinkHeadPages(ctx, system, give)
	}
	var all []nhisync.LinkHead
	if err := b.Store.ScanLinkHeads(ctx, system, func(h nhisync.LinkHead) error { all = append(all, h); return nil }); err != nil {
		return err
	}
	return give(all)
}

func (b *bulkCheck) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	if b.open {
		return nil, b.broken("LoadLinks(%s) inside the bulk window", system)
	}
	return b.Store.LoadLinks(ctx, system, ids)
}

// TestFirstPassIsOneBulkWindow: a first pass into an empty store decides
// inside one bulk window, and later passes, a dry run and a store that
// holds records do not open one.
func TestFirstPassIsOneBulkWindow(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com"), sa("c2", "gcp", "etl")},
		"catalog.json": {sa("k9", "azure", "nobody")},
	})
	bc := w.store.(*bulkCheck)
	ctx := context.Background()
	if _, err := w.engine().Sync(ctx, engine.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if bc.opened != 0 {
		t.Fatalf("a dry run opened %d bulk windows", bc.opened)
	}
	w.sync()
	if bc.opened != 1 || bc.open {
		t.Fatalf("first pass: %d windows opened, open=%v; want one, closed", bc.opened, bc.open)
	}
	if len(bc.recs) != 3 || len(bc.links) != 5 {
		t.Fatalf("first pass committed %d records and %d links in the window, want 3 and 5 (one unmatched)", len(bc.recs), len(bc.links))
	}
	w.put("idp.json", []map[string]any{sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot"), sa("i3", "aws", "new-bot")})
	w.sync()
	if bc.opened != 1 {
		t.Fatalf("a pass over a store holding records opened a bulk window")
	}
}

// TestFirstPassReadsNoPlannedWriteBack: a first pass into an empty store
// (its bulk window) judges the writes it planned without reading the
// store's planned writes back, as every one is its own; a later pass
// reads them, for the writes an interrupted pass left planned.
func TestFirstPassReadsNoPlannedWriteBack(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com"), sa("c2", "aws", "billing-bot", "owner", "bob@example.com")},
		"catalog.json": {sa("k1", "aws", "payments-bot"), sa("k2", "aws", "billing-bot")},
	})
	bc := w.store.(*bulkCheck)
	sum := w.sync()
	if bc.opened != 1 || sum.WritesPlanned == 0 {
		t.Fatalf("first pass: %d windows opened, %d writes planned; want one window and some writes", bc.opened, sum.WritesPlanned)
	}
	if bc.plannedReads != 0 {
		t.Fatalf("a first pass into an empty store read the store's planned writes back %d times", bc.plannedReads)
	}
	w.put("cmdb.json", []map[string]any{sa("c1", "aws", "payments-bot", "owner", "carol@example.com"), sa("c2", "aws", "billing-bot", "owner", "bob@example.com")})
	w.sync()
	if bc.plannedReads != 1 {
		t.Fatalf("a pass over a store holding records read planned writes %d times, want once", bc.plannedReads)
	}
}

// TestFirstPassReleasesMemoryWhileClosingTheWindow: a first pass hands
// its freed memory back once every record is decided and committed,
// beside the store's closing of the window (not before it, on the
// pass's path), and goes on only once it is back; a pass without a
// window does not.
func TestFirstPassReleasesMemoryWhileClosingTheWindow(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":  {sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot")},
		"cmdb.json": {sa("c1", "aws", "payments-bot", "owner", "alice@example.com")},
	})
	bc := w.store.(*bulkCheck)
	ending := make(chan struct{})
	bc.ending = func() { close(ending) }
	var released atomic.Int32
	returned := make(chan struct{})
	defer engine.SetReleaseMemory(func() {
		if len(bc.recs) != 2 {
			t.Errorf("memory released with %d records committed; want 2", len(bc.recs))
		}
		select {
		case <-ending:
		case <-time.After(10 * time.Second):
			t.Errorf("memory released, but the window did not start closing beside it")
		}
		select {
		case <-returned:
			t.Errorf("the pass went on before the memory was back")
		case <-time.After(200 * time.Millisecond):
		}
		released.Add(1)
	})()
	w.sync()
	close(returned)
	if n := released.Load(); n != 1 {
		t.Fatalf("first pass had released memory %d times when it returned, want once", n)
	}
	bc.ending = nil
	w.put("idp.json", []map[string]any{sa("i1", "aws", "payments-bot"), sa("i3", "aws", "new-bot")})
	w.sync()
	if n := released.Load(); n != 1 {
		t.Errorf("a pass without a bulk window released memory (%d times in all)", n)
	}
}

// failingEnd is a bulk store whose commits inside the window fail, and
// whose window then fails to close.
type failingEnd struct{ *bulkCheck }

func (f failingEnd) Commit(ctx context.Context, b *nhisync.Batch) error {
	if f.open {
		return nhisync.Errorf(nhisync.EUNAVAIL, "disk full")
	}
	return f.bulkCheck.Commit(ctx, b)
}

func (f failingEnd) EndBulk(ctx context.Context) error {
	f.bulkCheck.EndBulk(ctx)
	return nhisync.Errorf(nhisync.EINTERNAL, "duplicate link idp/i1")
}

// TestBulkWindowThatFailsToCloseIsSaid: when deciding fails inside the
// window and the window then fails to close, both failures are said.
func TestBulkWindowThatFailsToCloseIsSaid(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json": {sa("i1", "aws", "payments-bot")},
	})
	w.store = failingEnd{w.store.(*bulkCheck)}
	_, err := w.engine().Sync(context.Background(), engine.PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "closing the store's bulk window") || !strings.Contains(err.Error(), "duplicate link idp/i1") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("sync: %v; want the commit's and the window's failures named", err)
	}
}
