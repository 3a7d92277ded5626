package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/storetest"
)

// windowBatch is a first pass's commit inside the bulk window: n new
// records linked in idp, a queued write to each link, two audit entries.
func windowBatch(t *testing.T, s *Store, n int, at time.Time) *nhisync.Batch {
	t.Helper()
	b, err := windowBatchOr(t.Context(), s, n, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// windowBatchOr is windowBatch returning the store's failure to give it
// IDs, for a test whose store may fail any call by then.
func windowBatchOr(ctx context.Context, s *Store, n int, at time.Time) (*nhisync.Batch, error) {
	first, err := s.NewIDs(ctx, 2*n)
	if err != nil {
		return nil, err
	}
	b := storetest.BulkBatch(first, n)
	for i, l := range b.Links {
		b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: first + int64(n+i), System: "idp", ExternalID: l.ExternalID, RecordID: l.RecordID,
			Kind: "service_account", Record: b.Records[i].Key, Field: "owner", New: nhisync.Str("a@x"),
			Status: nhisync.OutboxReady, Cause: "cmdb", NextAt: at, Created: at})
	}
	b.Audit = []*nhisync.AuditEntry{entryAt(at), entryAt(at.Add(time.Second))}
	return b, nil
}

func claimAt(s *Store, at time.Time) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	return s.ClaimOutbox(context.Background(), nhisync.ClaimRequest{System: "idp", Holder: "drain", Now: at, TTL: time.Minute})
}

func latestSize(t *testing.T, s *Store) int64 {
	t.Helper()
	cp, err := s.LatestCheckpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cp == nil {
		return 0
	}
	return cp.Size
}

// TestBulkWindowHandsOutSyncedCheckpoints: while the bulk window's
// commits are not synced, LatestCheckpoint (and so audit proof) serves
// the last checkpoint signed before the window, in this process and in
// another that has the store open; no queued write of the window is
// claimed; the window's mark is no setting store copy carries. Once
// EndBulk has synced the window, its latest checkpoint is served and its
// writes are claimed.
func TestBulkWindowHandsOutSyncedCheckpoints(t *testing.T) {
	s, _ := notarized(t, "")
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0)}}); err != nil {
		t.Fatal(err)
	}
	other, err := Open(ctx, s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	beginBulk(t, s)
	for i := range 2 {
		if err := s.Commit(ctx, windowBatch(t, s, 5, t0.Add(time.Duration(i+1)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []*Store{s, other} {
		if got := latestSize(t, st); got != 1 {
			t.Errorf("LatestCheckpoint inside the window: size %d, want 1 (the last one synced)", got)
		}
		p, err := audit.InclusionProof(ctx, st, 1, nil)
		if err != nil || p.TreeSize != 1 {
			t.Errorf("audit proof of entry 1 inside the window: %+v, %v; want one in the tree of size 1", p, err)
		}
		if _, err := audit.InclusionProof(ctx, st, 3, nil); nhisync.ErrorCode(err) != nhisync.EINVALID {
			t.Errorf("audit proof of entry 3 (the window's) = %v, want EINVALID: no synced checkpoint covers it", err)
		}
		_, ws, err := claimAt(st, t0.Add(time.Hour))
		if nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(nhisync.ErrorMessage(err), "not synced") || len(ws) != 0 {
			t.Errorf("ClaimOutbox inside the window = %d writes, %v; want none, EINTERNAL saying the window is not synced", len(ws), err)
		}
		meta, err := st.MetaAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := meta[windowMark]; ok {
			t.Errorf("MetaAll carries the window's mark: %v", meta)
		}
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Store{s, other} {
		if got := latestSize(t, st); got != 5 {
			t.Errorf("LatestCheckpoint after EndBulk: size %d, want 5", got)
		}
	}
	if _, ws, err := claimAt(other, t0.Add(time.Hour)); err != nil || len(ws) != 10 {
		t.Errorf("ClaimOutbox after EndBulk = %d writes, %v; want the window's 10", len(ws), err)
	}
}

// TestBulkWindowSyncFailureRefuses: when EndBulk cannot sync a window with a WAL,
// the Store refuses every later commit and claim, with EINTERNAL saying
// what happened and to restart; another process's claims are refused
// too, and the last checkpoint handed out stays the one synced before
// the window. Opening the store alone again syncs the window: its
// checkpoint is served and its writes claimed.
func TestBulkWindowSyncFailureRefuses(t *testing.T) {
	withWAL(t)
	s, keys := notarized(t, "")
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	beginBulk(t, s)
	if err := s.Commit(ctx, windowBatch(t, s, 5, t0)); err != nil {
		t.Fatal(err)
	}
	syncWindowFault = func() error { return errors.New("input/output error") }
	defer func() { syncWindowFault = func() error { return nil } }()
	err := s.EndBulk(ctx)
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Fatalf("EndBulk with a failing sync = %v, want EINTERNAL", err)
	}
	syncWindowFault = func() error { return nil }
	refused := func(what string, err error) {
		t.Helper()
		msg := nhisync.ErrorMessage(err)
		if nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(msg, "input/output error") || !strings.Contains(msg, "restart nhisync") {
			t.Errorf("%s after the failed sync = %v; want EINTERNAL naming the failure and saying to restart", what, err)
		}
	}
	_, ws, err := claimAt(s, t0.Add(time.Hour))
	refused("ClaimOutbox", err)
	if len(ws) != 0 {
		t.Errorf("ClaimOutbox after the failed sync returned %d writes", len(ws))
	}
	refused("Commit", s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Minute))}}))
	if _, err := s.BeginBulk(ctx); err == nil {
		t.Error("BeginBulk after the failed sync succeeded")
	}
	if got := latestSize(t, s); got != 0 {
		t.Errorf("LatestCheckpoint after the failed sync: size %d, want none (none was synced)", got)
	}
	other, err := Open(ctx, s.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ws, err := claimAt(other, t0.Add(time.Hour)); nhisync.ErrorCode(err) != nhisync.EINTERNAL || len(ws) != 0 {
		t.Errorf("another process's ClaimOutbox after the failed sync = %d writes, %v; want none, EINTERNAL", len(ws), err)
	}
	if got := latestSize(t, other); got != 0 {
		t.Errorf("another process's LatestCheckpoint after the failed sync: size %d, want none", got)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopenTest(t, s)
	again.SetNotary(keys.Notary)
	if got := latestSize(t, again); got != 2 {
		t.Errorf("LatestCheckpoint once reopened: size %d, want the window's 2", got)
	}
	if _, ws, err := claimAt(again, t0.Add(time.Hour)); err != nil || len(ws) != 5 {
		t.Errorf("ClaimOutbox once reopened = %d writes, %v; want the window's 5", len(ws), err)
	}
	if err := again.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Minute))}}); err != nil {
		t.Errorf("Commit once reopened: %v", err)
	}
	if rep, err := audit.Verify(ctx, again, keys.Signer.VerifierKey()); err != nil || !rep.OK {
		t.Errorf("verify once reopened: %+v %v", rep, err)
	}
}
