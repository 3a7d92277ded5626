package storetest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nhisync/nhisync"
)

// verifyChain reads the whole audit log and checks it holds n entries with
// seqs 1..n, each leaf hashing to its stored hash and chaining to the one
// before.
func verifyChain(t *testing.T, s nhisync.Store, n int64) {
	t.Helper()
	ctx := ctxOf(t)
	var seq int64
	prev := ""
	err := s.ScanAudit(ctx, 0, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		seq++
		if e.Seq != seq {
			return fmt.Errorf("entry %d has seq %d", seq, e.Seq)
		}
		if e.PrevHash != prev {
			return fmt.Errorf("entry %d: prev_hash %q, want %q", seq, e.PrevHash, prev)
		}
		if h := base64.StdEncoding.EncodeToString(nhisync.LeafHash(leaf)); e.Hash != h {
			return fmt.Errorf("entry %d: stored hash %q, the leaf hashes to %q", seq, e.Hash, h)
		}
		if lb := e.LeafBytes(); !bytes.Equal(lb, leaf) {
			return fmt.Errorf("entry %d: the decoded entry's LeafBytes differ from the stored leaf:\n%s\n%s", seq, lb, leaf)
		}
		prev = e.Hash
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	if seq != n {
		t.Errorf("audit log holds %d entries, want %d", seq, n)
	}
	size, last, err := s.AuditHead(ctx)
	if err != nil || size != n || last != prev {
		t.Errorf("AuditHead = %d, %q, %v; want %d, %q", size, last, err, n, prev)
	}
}

// auditFixture commits entries in three batches (one without entries)
// and returns them as the caller holds them after Commit.
func auditFixture(t *testing.T, s nhisync.Store) []*nhisync.AuditEntry {
	ids := newIDs(t, s, 2)
	r1, r2 := record(ids[0], "service_account", "a"), record(ids[1], "service_account", "b")
	// A first adoption: the record.created entry carries the links made
	// with the record and its first values with the systems that agreed.
	created := audit(r1.ID, nhisync.ActRecordCreated, "", nhisync.Value{}, nhisync.Str("u-1"))
	created.Links = []nhisync.AuditLink{{System: "cmdb", ID: "c-1", Reason: "match"}, {System: "catalog", ID: "aws/bot", Reason: "match"}}
	created.Fields = []nhisync.AuditField{
		{Field: "name", System: "idp", Value: nhisync.Str("bot"), Reason: "priority: the golden value was empty", Agreed: []string{"cmdb", "catalog:ana"}},
		{Field: "tags", System: "cmdb", Actor: "cmdb:bo", Value: nhisync.SetOf("pci", "pii"), Reason: "merge: the golden value was empty"},
	}
	b1 := []*nhisync.AuditEntry{
		{Time: t0, Actor: nhisync.Actor, Action: nhisync.ActConfigLoaded, Reason: "fingerprint abc"},
		created,
		audit(r1.ID, nhisync.ActAccepted, "owner", nhisync.Value{}, nhisync.Str("ana@example.com")),
	}
	// The first batch's leaves are encoded ahead, as the engine does; the
	// others' by the store: the leaves are the same.
	first := &nhisync.Batch{Records: []*nhisync.Record{r1, r2}, Audit: b1}
	first.PrepareAudit()
	commit(t, s, first)
	commit(t, s, &nhisync.Batch{Meta: map[string]string{"k": "v"}})
	b2 := []*nhisync.AuditEntry{
		audit(r2.ID, nhisync.ActMerged, "entitlements", nhisync.SetOf("a"), nhisync.SetOf("a", "b")),
		audit(r1.ID, nhisync.ActRefused, "owner", nhisync.Str("ana@example.com"), nhisync.SensitiveValue([]byte("storetest audit secret, 32 bytes"), nhisync.Str("secret"))),
		{Time: t0.Add(1), Actor: "person:ana", Action: nhisync.ActConflictResolved, Kind: "service_account", RecordID: r2.ID,
			Field: "note", Old: nhisync.Str("naïve \"q\" \\ \x01"), New: nhisync.Str("✓"), Reason: "manual"},
	}
	commit(t, s, &nhisync.Batch{Audit: b2})
	return append(b1, b2...)
}

func testAuditSealing(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	want := auditFixture(t, s)
	prev := ""
	for i, e := range want {
		if e.Seq != int64(i+1) {
			t.Errorf("entry %d: caller's Seq = %d, want %d", i, e.Seq, i+1)
		}
		if e.PrevHash != prev {
			t.Errorf("entry %d: caller's PrevHash = %q, want %q", i, e.PrevHash, prev)
		}
		if h := base64.StdEncoding.EncodeToString(nhisync.LeafHash(e.LeafBytes())); e.Hash != h {
			t.Errorf("entry %d: caller's Hash = %q, want base64(LeafHash(LeafBytes())) = %q", i, e.Hash, h)
		}
		prev = e.Hash
	}
	i := 0
	err := s.ScanAudit(ctx, 0, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		if i >= len(want) {
			return fmt.Errorf("more entries than committed: %+v", e)
		}
		if !bytes.Equal(leaf, want[i].LeafBytes()) {
			t.Errorf("entry %d: stored leaf\n%s\nwant the entry's LeafBytes\n%s", i+1, leaf, want[i].LeafBytes())
		}
		if d := cmp.Diff(want[i], e, cmpOpts); d != "" {
			t.Errorf("entry %d decoded from its leaf (-want +got):\n%s", i+1, d)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	if i != len(want) {
		t.Errorf("ScanAudit returned %d entries, want %d", i, len(want))
	}
	verifyChain(t, s, int64(len(want)))

	// The next batch chains on.
	more := []*nhisync.AuditEntry{audit(0, nhisync.ActSystemDegraded, "", nhisync.Value{}, nhisync.Value{})}
	commit(t, s, &nhisync.Batch{Audit: more})
	if more[0].Seq != int64(len(want)+1) || more[0].PrevHash != want[len(want)-1].Hash {
		t.Errorf("a later entry got seq %d prev %q; want %d, %q", more[0].Seq, more[0].PrevHash, len(want)+1, want[len(want)-1].Hash)
	}
	verifyChain(t, s, int64(len(want)+1))
}

func testScanAuditRanges(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	// Enough entries to span pages of any sensible store.
	const n = 5200
	ids := newIDs(t, s, 1)
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{record(ids[0], "service_account", "bot")}})
	var b nhisync.Batch
	for i := range n {
		b.Audit = append(b.Audit, audit(ids[0], nhisync.ActObserved, "owner", nhisync.Value{}, nhisync.Str(fmt.Sprint(i))))
	}
	commit(t, s, &b)
	verifyChain(t, s, n)

	tests := []struct {
		from, to    int64
		first, last int64 // 0, 0: none
	}{
		{0, 0, 1, n},
		{1, 0, 1, n},
		{2, 4, 2, 3},
		{3, 3, 0, 0},
		{5, 2, 0, 0},
		{n - 1, n + 100, n - 1, n},
		{n + 1, 0, 0, 0},
		{0, 2, 1, 1},
		{4999, 5002, 4999, 5001},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d", tc.from, tc.to), func(t *testing.T) {
			var got []int64
			err := s.ScanAudit(ctx, tc.from, tc.to, func(e *nhisync.AuditEntry, _ []byte) error {
				got = append(got, e.Seq)
				return nil
			})
			if err != nil {
				t.Fatalf("ScanAudit: %v", err)
			}
			var want []int64
			for seq := tc.first; tc.first > 0 && seq <= tc.last; seq++ {
				want = append(want, seq)
			}
			if len(got) != len(want) || len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1]) {
				t.Fatalf("ScanAudit(%d, %d): got %d entries, want seqs %d..%d", tc.from, tc.to, len(got), tc.first, tc.last)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("ScanAudit(%d, %d): entry %d has seq %d, want %d", tc.from, tc.to, i, got[i], want[i])
				}
			}
		})
	}
	calls := 0
	err := s.ScanAudit(ctx, 0, 0, func(*nhisync.AuditEntry, []byte) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("ScanAudit stopped by its callback: got %v after %d calls", err, calls)
	}
}

func testAuditByRecord(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	all := auditFixture(t, s)
	byRecord := map[int64][]*nhisync.AuditEntry{}
	for _, e := range all {
		byRecord[e.RecordID] = append(byRecord[e.RecordID], e)
	}
	for _, rec := range []int64{all[1].RecordID, all[3].RecordID, 424242} {
		got, err := s.AuditByRecord(ctx, rec)
		if err != nil {
			t.Fatalf("AuditByRecord(%d): %v", rec, err)
		}
		if d := cmp.Diff(byRecord[rec], got, cmpOpts); d != "" {
			t.Errorf("AuditByRecord(%d) (-want +got):\n%s", rec, d)
		}
	}
}

func testAuditAppendOnly(t *testing.T, s nhisync.Store) {
	raw, ok := s.(RawExecer)
	if !ok {
		t.Skip("the store offers no raw SQL (storetest.RawExecer)")
	}
	ctx := ctxOf(t)
	entries := auditFixture(t, s)
	for _, q := range []string{
		`UPDATE audit SET hash = 'tampered' WHERE seq = 2`,
		`UPDATE audit SET seq = 100 WHERE seq = 6`,
		`DELETE FROM audit WHERE seq = 6`,
		`DELETE FROM audit`,
	} {
		if err := raw.ExecRaw(ctx, q); err == nil {
			t.Errorf("%s: the audit log accepted it", q)
		}
	}
	verifyChain(t, s, int64(len(entries)))
}

func testCheckpoints(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	if c, err := s.LatestCheckpoint(ctx); err != nil || c != nil {
		t.Fatalf("LatestCheckpoint of an empty store = %v, %v; want nil", c, err)
	}
	mk := func(size int64, note string) *nhisync.Checkpoint {
		return &nhisync.Checkpoint{Size: size, Root: bytes.Repeat([]byte{byte(size)}, 32),
			Note: []byte("nhisync\n" + fmt.Sprint(size) + "\n" + note + "\n\n— nhisync sig\n"), At: at(int(size))}
	}
	steps := []struct {
		put  *nhisync.Checkpoint
		code string
		want *nhisync.Checkpoint
	}{
		{put: mk(3, "a"), want: mk(3, "a")},
		{put: mk(7, "b"), want: mk(7, "b")},
		{put: mk(5, "c"), want: mk(7, "b")}, // an older head does not become the latest
		{put: mk(7, "re-signed"), want: mk(7, "re-signed")},
		{put: &nhisync.Checkpoint{Size: 7, Root: []byte("another root"), Note: []byte("x"), At: at(9)}, code: nhisync.ECONFLICT, want: mk(7, "re-signed")},
		{put: &nhisync.Checkpoint{Size: 0, Root: []byte("r")}, code: nhisync.EINVALID, want: mk(7, "re-signed")},
	}
	for i, st := range steps {
		err := s.PutCheckpoint(ctx, st.put)
		if st.code != "" {
			wantCode(t, fmt.Sprintf("step %d: PutCheckpoint", i), err, st.code)
		} else if err != nil {
			t.Fatalf("step %d: PutCheckpoint: %v", i, err)
		}
		got, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatalf("step %d: LatestCheckpoint: %v", i, err)
		}
		if d := cmp.Diff(st.want, got, cmpOpts); d != "" {
			t.Errorf("step %d: LatestCheckpoint (-want +got):\n%s", i, d)
		}
	}

	// Every checkpoint is listed, by size, whatever order they came in.
	var got []*nhisync.Checkpoint
	if err := s.ScanCheckpoints(ctx, func(c *nhisync.Checkpoint) error {
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatalf("ScanCheckpoints: %v", err)
	}
	want := []*nhisync.Checkpoint{mk(3, "a"), mk(5, "c"), mk(7, "re-signed")}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("ScanCheckpoints (-want +got):\n%s", d)
	}
	// An error from fn stops the scan and comes back as it was.
	stop := errors.New("stop here")
	n := 0
	err := s.ScanCheckpoints(ctx, func(*nhisync.Checkpoint) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanCheckpoints with a failing fn = %v after %d calls, want the fn's error after 1", err, n)
	}
}
