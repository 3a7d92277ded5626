package postgres

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/sqlite"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

// parityBatches are the same operations for both stores: records, links
// and audit entries over three commits, one of them with an entry whose
// clock ran back, one with its leaves encoded ahead (PrepareAudit).
func parityBatches() []*nhisync.Batch {
	var out []*nhisync.Batch
	for c := range 3 {
		b := &nhisync.Batch{}
		for i := range 4 {
			id := int64(c*4 + i + 1)
			b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: fmt.Sprintf("aws/bot-%d", id),
				MatchKey: fmt.Sprintf("aws/bot-%d", id), Created: t0, Updated: t0,
				Fields: map[string]*nhisync.Golden{"owner": {Value: nhisync.Str("ana@example.com"), Source: "cmdb", Rule: "priority", At: t0}}})
			b.Links = append(b.Links, &nhisync.Link{System: "idp", ExternalID: fmt.Sprint(id), RecordID: id, Status: nhisync.LinkLive,
				FirstSeen: t0, SeenAt: t0, Fields: map[string]*nhisync.FieldState{"owner": {Shadow: nhisync.Str("ana@example.com"), Asserted: nhisync.Str("ana@example.com")}}})
			at := t0.Add(time.Duration(c*10+i) * time.Second)
			if c == 2 && i == 0 {
				at = t0 // a clock that went back: raised to the last entry's time
			}
			b.Audit = append(b.Audit, &nhisync.AuditEntry{Time: at, Actor: "idp", Action: nhisync.ActAccepted, Kind: "service_account",
				RecordID: id, Record: "service_account/aws/bot", Field: "owner", System: "idp",
				New: nhisync.SetOf("s3:read", "naïve \x01"), Reason: "priority"})
		}
		if c == 1 {
			b.PrepareAudit() // leaves encoded ahead, as the engine does
		}
		out = append(out, b)
	}
	return out
}

// TestSameAuditAsSQLite: the same commits on the SQLite and the PostgreSQL
// store give the same leaf bytes, chain, signed checkpoints and root, and
// audit verify and an inclusion proof read alike on both.
func TestSameAuditAsSQLite(t *testing.T) {
	ctx := t.Context()
	signer, err := audit.LoadOrCreateKey(filepath.Join(t.TempDir(), "signing.key"), "nhisync.test")
	if err != nil {
		t.Fatal(err)
	}
	notary, err := audit.NewNotary(signer, "", &nhisync.FakeClock{T: t0})
	if err != nil {
		t.Fatal(err)
	}
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nhisync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg := openTest(t)
	stores := []nhisync.Store{lite, pg}
	for _, s := range stores {
		s.SetNotary(notary)
		for i, b := range parityBatches() {
			if err := s.Commit(ctx, b); err != nil {
				t.Fatalf("%T commit %d: %v", s, i, err)
			}
		}
	}
	type leaf struct {
		seq  int64
		leaf []byte
		hash string
	}
	var logs [2][]leaf
	var cps [2][]*nhisync.Checkpoint
	var reports [2]*audit.Report
	var proofs [2]*audit.Proof
	for i, s := range stores {
		if err := s.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, l []byte) error {
			logs[i] = append(logs[i], leaf{e.Seq, l, e.Hash})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.ScanCheckpoints(ctx, func(c *nhisync.Checkpoint) error { cps[i] = append(cps[i], c); return nil }); err != nil {
			t.Fatal(err)
		}
		if reports[i], err = audit.Verify(ctx, s, signer.VerifierKey()); err != nil || !reports[i].OK {
			t.Fatalf("%T: audit verify = %+v, %v", s, reports[i], err)
		}
		latest, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if proofs[i], err = audit.InclusionProof(ctx, s, 5, latest); err != nil {
			t.Fatal(err)
		}
	}
	if len(logs[0]) != 12 || len(logs[1]) != 12 {
		t.Fatalf("entries: sqlite %d, postgres %d; want 12", len(logs[0]), len(logs[1]))
	}
	for i := range logs[0] {
		a, b := logs[0][i], logs[1][i]
		if a.seq != b.seq || a.hash != b.hash || !bytes.Equal(a.leaf, b.leaf) {
			t.Fatalf("entry %d differs:\nsqlite   %d %s %s\npostgres %d %s %s", i+1, a.seq, a.hash, a.leaf, b.seq, b.hash, b.leaf)
		}
	}
	if len(cps[0]) != 3 || len(cps[1]) != 3 {
		t.Fatalf("checkpoints: sqlite %d, postgres %d; want 3", len(cps[0]), len(cps[1]))
	}
	for i := range cps[0] {
		a, b := cps[0][i], cps[1][i]
		if a.Size != b.Size || !bytes.Equal(a.Root, b.Root) || !bytes.Equal(a.Note, b.Note) || !a.At.Equal(b.At) {
			t.Errorf("checkpoint %d differs:\nsqlite   %d %x\n%s\npostgres %d %x\n%s", i, a.Size, a.Root, a.Note, b.Size, b.Root, b.Note)
		}
	}
	if reports[0].Root != reports[1].Root || reports[0].Entries != reports[1].Entries || reports[0].Checkpoints != reports[1].Checkpoints {
		t.Errorf("audit verify: sqlite %+v, postgres %+v", reports[0], reports[1])
	}
	if fmt.Sprint(proofs[0]) != fmt.Sprint(proofs[1]) {
		t.Errorf("inclusion proofs differ:\nsqlite   %+v\npostgres %+v", proofs[0], proofs[1])
	}
}

// TestLostConnectionMidCommit: the server ends the connection of a commit
// after every write of the batch and before COMMIT. Commit fails with
// EUNAVAIL, nothing of the batch is in the store (records, audit, meta),
// and the next commit, on a new connection, writes normally.
func TestLostConnectionMidCommit(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	beforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Errorf("pid: %v", err)
			return nil
		}
		if err := s.ExecRaw(context.Background(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Errorf("terminate: %v", err)
		}
		return nil
	}
	defer func() { beforeCommit = nil }()
	b := parityBatches()[0]
	b.Meta = map[string]string{"k": "v"}
	err := s.Commit(ctx, b)
	if nhisync.ErrorCode(err) != nhisync.EUNAVAIL {
		t.Fatalf("Commit on a lost connection = %v, want EUNAVAIL", err)
	}
	if b.Audit[0].Seq != 0 || b.Audit[0].Hash != "" {
		t.Errorf("a failed commit left its entries sealed: seq %d", b.Audit[0].Seq)
	}
	if n, _, err := s.AuditHead(ctx); err != nil || n != 0 {
		t.Fatalf("after the lost commit: %d audit entries, %v; want 0", n, err)
	}
	if recs, err := s.LoadRecords(ctx, []int64{1, 2, 3, 4}); err != nil || len(recs) != 0 {
		t.Fatalf("after the lost commit: %d records, %v; want none", len(recs), err)
	}
	if v, _ := s.Meta(ctx, "k"); v != "" {
		t.Fatalf("after the lost commit: meta k = %q", v)
	}
	beforeCommit = nil
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("the next commit: %v", err)
	}
	if n, _, err := s.AuditHead(ctx); err != nil || n != 4 {
		t.Fatalf("after the next commit: %d audit entries, %v; want 4", n, err)
	}
}

// TestCommitRetriesSerializationFailures: a commit whose transaction hits
// a serialization failure, then a deadlock, runs again and commits once:
// its entries are sealed once, after the last stored one.
func TestCommitRetriesSerializationFailures(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	if err := s.Commit(ctx, parityBatches()[0]); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	beforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		code := map[int]string{1: "serialization_failure", 2: "deadlock_detected"}[attempts]
		if code == "" {
			return nil
		}
		_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '`+code+`'; END $$`)
		return err
	}
	defer func() { beforeCommit = nil }()
	b := parityBatches()[1]
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit after a serialization failure and a deadlock: %v", err)
	}
	if attempts != 3 {
		t.Errorf("the commit ran %d times, want 3", attempts)
	}
	if n, _, err := s.AuditHead(ctx); err != nil || n != 8 || b.Audit[0].Seq != 5 {
		t.Fatalf("after the retried commit: %d entries (%v), first new seq %d; want 8 and 5", n, err, b.Audit[0].Seq)
	}
	// A failure that is not one of those is not retried.
	attempts = 10
	beforeCommit = func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = 'data_exception'; END $$`)
		return err
	}
	if err := s.Commit(ctx, parityBatches()[2]); err == nil || attempts != 11 {
		t.Fatalf("Commit with another failure = %v after %d attempts, want it failed after 1", err, attempts-10)
	}
}
