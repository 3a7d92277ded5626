package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func testCommitEmpty(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	for _, b := range []*nhisync.Batch{nil, {}, {Meta: map[string]string{}}} {
		if err := s.Commit(ctx, b); err != nil {
			t.Errorf("Commit(%+v): %v", b, err)
		}
	}
	if size, hash, err := s.AuditHead(ctx); err != nil || size != 0 || hash != "" {
		t.Errorf("AuditHead after empty commits: %d, %q, %v; want an empty log", size, hash, err)
	}
}

// testCommitAtomicity commits batches that each hold one caller bug among
// valid rows of every kind: the whole batch must be refused with EINVALID
// and leave nothing behind, audit entries included.
func testCommitAtomicity(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 10)
	valid := func() *nhisync.Batch {
		r := record(ids[0], "service_account", "bot")
		return &nhisync.Batch{
			Records: []*nhisync.Record{r},
			Links:   []*nhisync.Link{link("idp", "u-1", r.ID, nhisync.LinkLive), link("idp", "u-2", 0, nhisync.LinkUnmatched)},
			Conflicts: []*nhisync.Conflict{{ID: ids[1], Kind: r.Kind, RecordID: r.ID, Field: "owner", Status: nhisync.StatusOpen,
				Proposals: []nhisync.Proposal{{System: "idp", Value: nhisync.Str("a")}}, Opened: at(1)}},
			Quarantine: []*nhisync.QuarantineItem{{ID: ids[2], Kind: r.Kind, RecordID: r.ID, Field: "owner", System: "idp",
				Status: nhisync.StatusOpen, Rule: "r", At: at(1)}},
			Approvals: []*nhisync.Approval{{ID: ids[3], Kind: r.Kind, RecordID: r.ID, Field: "owner", System: "policy",
				Status: nhisync.StatusPending, At: at(1)}},
			Outbox: []*nhisync.OutboxWrite{{ID: ids[4], System: "cmdb", ExternalID: "c-1", RecordID: r.ID, Field: "owner",
				Status: nhisync.OutboxReady, NextAt: at(1)}},
			Systems: []*nhisync.SystemState{{Name: "idp", Health: nhisync.HealthOK}},
			Meta:    map[string]string{"hlc": "42"},
			Audit: []*nhisync.AuditEntry{
				audit(r.ID, nhisync.ActRecordCreated, "", nhisync.Value{}, nhisync.Value{}),
				audit(r.ID, nhisync.ActAccepted, "owner", nhisync.Value{}, nhisync.Str("a@x")),
			},
		}
	}
	tests := []struct {
		name  string
		spoil func(b *nhisync.Batch)
	}{
		{"record without ID", func(b *nhisync.Batch) {
			b.Records = append(b.Records, record(0, "service_account", "other"))
		}},
		{"conflict without ID", func(b *nhisync.Batch) {
			b.Conflicts = append(b.Conflicts, &nhisync.Conflict{Kind: "service_account", RecordID: ids[0], Status: nhisync.StatusOpen})
		}},
		{"quarantine item without ID", func(b *nhisync.Batch) {
			b.Quarantine = append(b.Quarantine, &nhisync.QuarantineItem{Kind: "service_account", Status: nhisync.StatusOpen})
		}},
		{"approval without ID", func(b *nhisync.Batch) {
			b.Approvals = append(b.Approvals, &nhisync.Approval{Kind: "service_account", Status: nhisync.StatusPending})
		}},
		{"outbox write without ID", func(b *nhisync.Batch) {
			b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{System: "cmdb", Status: nhisync.OutboxReady})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			tc.spoil(b)
			wantCode(t, "Commit", s.Commit(ctx, b), nhisync.EINVALID)
			assertNothing(t, s, ids)
		})
	}

	// The same batch, unspoiled, commits, and its audit log starts at 1:
	// nothing of the failed attempts took a seq.
	b := valid()
	commit(t, s, b)
	if b.Audit[0].Seq != 1 || b.Audit[1].Seq != 2 {
		t.Errorf("after failed commits, the first entries got seqs %d and %d, want 1 and 2", b.Audit[0].Seq, b.Audit[1].Seq)
	}
	if recs, err := s.LoadRecords(ctx, ids[:1]); err != nil || len(recs) != 1 || len(recs[0].Links) != 1 ||
		len(recs[0].Conflicts) != 1 || len(recs[0].Quarantine) != 1 || len(recs[0].Approvals) != 1 || len(recs[0].Outbox) != 1 {
		t.Errorf("the valid batch did not commit whole: %v, %v", recs, err)
	}
}

// assertNothing checks that the store holds nothing a batch of
// testCommitAtomicity writes.
func assertNothing(t *testing.T, s nhisync.Store, ids []int64) {
	t.Helper()
	ctx := ctxOf(t)
	if recs, err := s.LoadRecords(ctx, ids); err != nil || len(recs) != 0 {
		t.Errorf("records left behind: %v, %v", recs, err)
	}
	if links, err := s.LoadLinks(ctx, "idp", []string{"u-1", "u-2"}); err != nil || len(links) != 0 {
		t.Errorf("links left behind: %v, %v", links, err)
	}
	if cs, err := s.Conflicts(ctx, nhisync.ItemFilter{}); err != nil || len(cs) != 0 {
		t.Errorf("conflicts left behind: %v, %v", cs, err)
	}
	if qs, err := s.QuarantineItems(ctx, nhisync.ItemFilter{}); err != nil || len(qs) != 0 {
		t.Errorf("quarantine left behind: %v, %v", qs, err)
	}
	if as, err := s.Approvals(ctx, nhisync.ItemFilter{}); err != nil || len(as) != 0 {
		t.Errorf("approvals left behind: %v, %v", as, err)
	}
	if ws, err := s.OutboxWrites(ctx, "", "", time.Time{}, 0); err != nil || len(ws) != 0 {
		t.Errorf("outbox left behind: %v, %v", ws, err)
	}
	if sys, err := s.Systems(ctx); err != nil || len(sys) != 0 {
		t.Errorf("systems left behind: %v, %v", sys, err)
	}
	if v, err := s.Meta(ctx, "hlc"); err != nil || v != "" {
		t.Errorf("meta left behind: %q, %v", v, err)
	}
	if size, hash, err := s.AuditHead(ctx); err != nil || size != 0 || hash != "" {
		t.Errorf("audit entries left behind: %d, %q, %v", size, hash, err)
	}
}

func testNewIDs(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	steps := []struct {
		n    int
		want int64
	}{{1, 1}, {5, 2}, {1, 7}, {1000, 8}, {1, 1008}}
	for _, st := range steps {
		got, err := s.NewIDs(ctx, st.n)
		if err != nil || got != st.want {
			t.Fatalf("NewIDs(%d) = %d, %v; want %d", st.n, got, err, st.want)
		}
	}
	for _, n := range []int{0, -1} {
		_, err := s.NewIDs(ctx, n)
		wantCode(t, fmt.Sprintf("NewIDs(%d)", n), err, nhisync.EINVALID)
	}
	if got, err := s.NewIDs(ctx, 1); err != nil || got != 1009 {
		t.Errorf("NewIDs after refused calls = %d, %v; want 1009", got, err)
	}
}

func testNewIDsConcurrent(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const workers, calls = 8, 40
	type span struct{ first, n int64 }
	var mu sync.Mutex
	var spans []span
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				n := 1 + (w*calls+i)%7
				first, err := s.NewIDs(ctx, n)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				spans = append(spans, span{first, int64(n)})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("NewIDs: %v", err)
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.first - b.first) })
	next := int64(1)
	for _, sp := range spans {
		if sp.first != next {
			t.Fatalf("ranges overlap or leave a gap: a range starts at %d, want %d", sp.first, next)
		}
		next += sp.n
	}
}

// testConcurrentUse commits and reads from several goroutines at once;
// under the race detector it also shows the store is safe for concurrent
// use. Afterwards every batch is whole and the audit log one chain.
func testConcurrentUse(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const writers, batches, perBatch = 4, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				first, err := s.NewIDs(ctx, perBatch)
				if err != nil {
					errs <- err
					return
				}
				var batch nhisync.Batch
				for i := range perBatch {
					r := record(first+int64(i), "service_account", fmt.Sprintf("w%d-b%d-%d", w, b, i))
					batch.Records = append(batch.Records, r)
					batch.Links = append(batch.Links, link(fmt.Sprintf("sys%d", w), r.Key, r.ID, nhisync.LinkLive))
					batch.Audit = append(batch.Audit, audit(r.ID, nhisync.ActRecordCreated, "", nhisync.Value{}, nhisync.Value{}))
				}
				if err := s.Commit(ctx, &batch); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range batches {
				if _, _, err := s.AuditHead(ctx); err != nil {
					errs <- err
					return
				}
				if err := s.ScanLinkHeads(ctx, fmt.Sprintf("sys%d", w), func(nhisync.LinkHead) error { return nil }); err != nil {
					errs <- err
					return
				}
				if _, err := s.LoadRecords(ctx, []int64{1, 2, 3, 40, 41}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent use: %v", err)
	}

	const total = writers * batches * perBatch
	heads := 0
	if err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { heads++; return nil }); err != nil || heads != total {
		t.Errorf("records after concurrent commits: %d, %v; want %d", heads, err, total)
	}
	verifyChain(t, s, total)
}
