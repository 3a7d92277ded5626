package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/storetest"
)

func notarized(t *testing.T, publish string) (*Store, *audit.Keys) {
	t.Helper()
	s := openTest(t)
	dir := t.TempDir()
	keys, err := audit.OpenKeys(filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.hmac"), publish, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetNotary(keys.Notary)
	return s, keys
}

func entryAt(at time.Time) *nhisync.AuditEntry {
	return &nhisync.AuditEntry{Time: at, Actor: "nhisync", Action: nhisync.ActObserved}
}

// TestCommitSignsItsEntries (issue 6 finding 9): each commit that appends
// entries stores, in its own transaction, a checkpoint covering exactly
// them; the log verifies after every commit, times never run backwards,
// and every checkpoint is appended to the publish file.
func TestCommitSignsItsEntries(t *testing.T) {
	publish := filepath.Join(t.TempDir(), "kept", "checkpoints.txt")
	s, keys := notarized(t, publish)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, n := range []int{1, 3, 70, 2} {
		b := &nhisync.Batch{}
		for j := range n {
			// The third batch's clock went back an hour.
			at := t0.Add(time.Duration(i*100+j) * time.Second)
			if i == 2 {
				at = at.Add(-time.Hour)
			}
			b.Audit = append(b.Audit, entryAt(at))
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		size, last, _ := s.AuditHead(ctx)
		cp, err := s.LatestCheckpoint(ctx)
		if err != nil || cp == nil || cp.Size != size || cp.LastHash != last || cp.State == nil {
			t.Fatalf("after commit %d: latest checkpoint %+v, head %d %s; want one covering the head with its tree state", i, cp, size, last)
		}
		rep, err := audit.Verify(ctx, s, keys.Signer.VerifierKey())
		if err != nil || !rep.OK || rep.Signed != size {
			t.Fatalf("after commit %d: verify %+v %v", i, rep, err)
		}
	}
	f, err := os.Open(publish)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kept, err := audit.ReadCheckpoints(f, keys.Signer.VerifierKey())
	if err != nil || len(kept) != 4 || kept[3].Size != 76 {
		t.Fatalf("published checkpoints: %d, %v; want the 4 commits' (last of size 76)", len(kept), err)
	}
	if rep, err := audit.VerifyAgainst(ctx, s, keys.Signer.VerifierKey(), kept); err != nil || !rep.OK {
		t.Fatalf("verify against the published checkpoints: %+v %v", rep, err)
	}
}

// TestCommitRefusesToSignAForeignTail (issue 6 finding 9): an entry
// appended without a checkpoint (outside nhisync) is never signed by the
// next commit, which refuses loudly and writes nothing.
func TestCommitRefusesToSignAForeignTail(t *testing.T) {
	s, keys := notarized(t, "")
	ctx := t.Context()
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(time.Now())}}); err != nil {
		t.Fatal(err)
	}
	s.SetNotary(nil) // an unsigned append, as a forger's
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(time.Now())}}); err != nil {
		t.Fatal(err)
	}
	s.SetNotary(keys.Notary)
	err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"k": "v"}, Audit: []*nhisync.AuditEntry{entryAt(time.Now())}})
	if nhisync.ErrorCode(err) != nhisync.ECONFLICT || !strings.Contains(nhisync.ErrorMessage(err), "entries 2 to 2 that no signed checkpoint covers") {
		t.Fatalf("commit over a foreign tail: %v; want ECONFLICT naming entry 2", err)
	}
	if size, _, _ := s.AuditHead(ctx); size != 2 {
		t.Errorf("the refused commit appended entries: head %d", size)
	}
	if v, _ := s.Meta(ctx, "k"); v != "" {
		t.Error("the refused commit wrote its other members")
	}
	if cp, _ := s.LatestCheckpoint(ctx); cp.Size != 1 {
		t.Errorf("latest checkpoint at size %d, want 1: the foreign entry was signed", cp.Size)
	}
}

// BenchmarkCommitAudit measures a commit of 500 audit entries, signed (a
// checkpoint in the same transaction) and unsigned.
func BenchmarkCommitAudit(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := "unsigned"
		if signed {
			name = "signed"
		}
		b.Run(name, func(b *testing.B) {
			s := openTest(b)
			if signed {
				dir := b.TempDir()
				keys, err := audit.OpenKeys(filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.hmac"), "", true, nil)
				if err != nil {
					b.Fatal(err)
				}
				s.SetNotary(keys.Notary)
			}
			t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			for i := 0; b.Loop(); i++ {
				batch := &nhisync.Batch{}
				for range 500 {
					batch.Audit = append(batch.Audit, entryAt(t0.Add(time.Duration(i)*time.Second)))
				}
				if err := s.Commit(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCommitExtendsALegacyCheckpoint: a store whose latest checkpoint was
// signed after the fact (before checkpoints kept their tree) is extended by
// the first signed commit, which hashes the log once.
func TestCommitExtendsALegacyCheckpoint(t *testing.T) {
	s, keys := notarized(t, "")
	ctx := t.Context()
	s.SetNotary(nil)
	b := &nhisync.Batch{}
	for range 7 {
		b.Audit = append(b.Audit, entryAt(time.Now()))
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Checkpoint(ctx, s, keys.Signer); err != nil {
		t.Fatal(err)
	}
	s.SetNotary(keys.Notary)
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(time.Now())}}); err != nil {
		t.Fatalf("first signed commit after a legacy checkpoint: %v", err)
	}
	if rep, err := audit.Verify(ctx, s, keys.Signer.VerifierKey()); err != nil || !rep.OK || rep.Signed != 8 || rep.Checkpoints != 2 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestBulkWindowPublishesOnceSynced: inside a bulk window with a WAL the writer
// does not sync at commit (synchronous=NORMAL), every commit is read at
// once by other connections, and the checkpoints its commits sign reach
// audit.publish only when EndBulk has synced them, all of them, in order;
// a window that does not open leaves the writer syncing every commit.
func TestBulkWindowPublishesOnceSynced(t *testing.T) {
	withWAL(t)
	publish := filepath.Join(t.TempDir(), "checkpoints.txt")
	s, keys := notarized(t, publish)
	ctx := t.Context()
	synchronous := func() int {
		t.Helper()
		var n int
		if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	published := func() []*nhisync.Checkpoint {
		t.Helper()
		f, err := os.Open(publish)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		kept, err := audit.ReadCheckpoints(f, keys.Signer.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		return kept
	}
	const full, normal = 2, 1
	if got := synchronous(); got != full {
		t.Fatalf("writer synchronous = %d before the window, want FULL (%d)", got, full)
	}
	beginBulk(t, s)
	if got := synchronous(); got != normal {
		t.Errorf("writer synchronous = %d inside the window, want NORMAL (%d)", got, normal)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		b := &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Duration(i) * time.Second)), entryAt(t0.Add(time.Duration(i)*time.Second + 1))}}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit`).Scan(&n); err != nil || n != 2*(i+1) {
			t.Fatalf("a reader counts %d audit entries after commit %d (%v), want %d", n, i, err, 2*(i+1))
		}
		if kept := published(); len(kept) != 0 {
			t.Fatalf("after commit %d inside the window %d checkpoints are published, want none before EndBulk", i, len(kept))
		}
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if got := synchronous(); got != full {
		t.Errorf("writer synchronous = %d after the window, want FULL (%d)", got, full)
	}
	kept := published()
	if len(kept) != 3 || kept[0].Size != 2 || kept[2].Size != 6 {
		t.Fatalf("published after EndBulk: %d checkpoints, want the window's 3 (sizes 2, 4, 6)", len(kept))
	}
	if rep, err := audit.VerifyAgainst(ctx, s, keys.Signer.VerifierKey(), kept); err != nil || !rep.OK {
		t.Fatalf("verify against the published checkpoints: %+v %v", rep, err)
	}
	// Outside the window a commit publishes at once; a window that does
	// not open (the store holds a record) keeps FULL.
	fillRecords(t, s, 1)
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	if n := len(published()); n != 4 {
		t.Errorf("%d checkpoints published after a commit outside the window, want 4", n)
	}
	if open, err := s.BeginBulk(ctx); err != nil || open {
		t.Fatalf("BeginBulk on a store with a record = %v, %v; want false", open, err)
	}
	if got := synchronous(); got != full {
		t.Errorf("writer synchronous = %d after a window that did not open, want FULL (%d)", got, full)
	}
}

// TestBulkWindowClosesWhenPublishFails: a window whose checkpoints cannot
// be published (audit.publish is a directory) still closes: EndBulk
// reports EUNAVAIL, and the staged links are in links with records'
// match-key index built, as a process that goes on using the store needs
// them; the next commit's checkpoint, published, covers the window's
// entries.
func TestBulkWindowClosesWhenPublishFails(t *testing.T) {
	publish := filepath.Join(t.TempDir(), "checkpoints.txt")
	s, keys := notarized(t, publish)
	ctx := t.Context()
	beginBulk(t, s)
	first, err := s.NewIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := storetest.BulkBatch(first, 10)
	b.Audit = []*nhisync.AuditEntry{entryAt(t0), entryAt(t0.Add(time.Second))}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(publish, 0o700); err != nil {
		t.Fatal(err)
	}
	err = s.EndBulk(ctx)
	var ne *nhisync.Error
	if !errors.As(err, &ne) || ne.Code != nhisync.EUNAVAIL {
		t.Fatalf("EndBulk with audit.publish a directory = %v, want EUNAVAIL", err)
	}
	if n := stagedCount(t, s); n != 0 {
		t.Errorf("%d links still staged after EndBulk, want them moved into links", n)
	}
	if !hasRecordsKey(t, s) {
		t.Error("records_key missing after EndBulk")
	}
	if err := os.Remove(publish); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(publish)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kept, err := audit.ReadCheckpoints(f, keys.Signer.VerifierKey())
	if err != nil || len(kept) != 1 || kept[0].Size != 3 {
		t.Fatalf("published after the window: %d checkpoints, %v; want one of size 3", len(kept), err)
	}
}
