package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// testBulkLoad holds a store that offers a bulk window
// (nhisync.BulkLoader) to its contract: it opens only on an empty store,
// commits inside it read back at once (links of loaded records, link
// scans, heads), and after EndBulk every lookup and upsert works as if
// the links had been committed one by one. Stores without one skip it.
func testBulkLoad(t *testing.T, s nhisync.Store) {
	bl, ok := s.(nhisync.BulkLoader)
	if !ok {
		t.Skip("the store has no bulk window")
	}
	ctx := ctxOf(t)
	open, err := bl.BeginBulk(ctx)
	if err != nil || !open {
		t.Fatalf("BeginBulk on an empty store = %v, %v; want true", open, err)
	}
	const n = 30
	ids := newIDs(t, s, n)
	var want []*nhisync.Link
	for start := 0; start < n; start += 10 {
		var b nhisync.Batch
		for i := start; i < start+10; i++ {
			r := record(ids[i], "service_account", fmt.Sprintf("bot-%02d", i))
			b.Records = append(b.Records, r)
			for _, sys := range []string{"idp", "cmdb"} {
				l := link(sys, fmt.Sprintf("%s-%02d", sys, (i*7)%n), r.ID, nhisync.LinkLive)
				b.Links = append(b.Links, l)
				want = append(want, l)
			}
		}
		stray := link("cmdb", fmt.Sprintf("stray-%d", start), 0, nhisync.LinkUnmatched)
		b.Links = append(b.Links, stray)
		want = append(want, stray)
		commit(t, s, &b)
	}
	byKey := func(ls []*nhisync.Link) {
		slices.SortFunc(ls, func(a, b *nhisync.Link) int {
			if c := strings.Compare(a.System, b.System); c != 0 {
				return c
			}
			return strings.Compare(a.ExternalID, b.ExternalID)
		})
	}
	byKey(want)
	check := func(when string) {
		t.Helper()
		var got []*nhisync.Link
		if err := s.ScanLinks(ctx, "", nil, func(l *nhisync.Link) error { got = append(got, l); return nil }); err != nil {
			t.Fatalf("%s: ScanLinks: %v", when, err)
		}
		byKey(got)
		if d := diff(want, got); d != "" {
			t.Errorf("%s: ScanLinks (-want +got):\n%s", when, d)
		}
		heads := 0
		for _, sys := range []string{"idp", "cmdb"} {
			if err := s.ScanLinkHeads(ctx, sys, func(nhisync.LinkHead) error { heads++; return nil }); err != nil {
				t.Fatalf("%s: ScanLinkHeads: %v", when, err)
			}
		}
		if heads != len(want) {
			t.Errorf("%s: ScanLinkHeads saw %d links, want %d", when, heads, len(want))
		}
		var strays []*nhisync.Link
		if err := s.ScanLinks(ctx, "cmdb", []nhisync.LinkStatus{nhisync.LinkUnmatched}, func(l *nhisync.Link) error { strays = append(strays, l); return nil }); err != nil {
			t.Fatalf("%s: ScanLinks(unmatched): %v", when, err)
		}
		if len(strays) != 3 {
			t.Errorf("%s: %d unmatched links, want 3", when, len(strays))
		}
		recs, err := s.LoadRecords(ctx, ids[:2])
		if err != nil || len(recs) != 2 || len(recs[0].Links) != 2 || len(recs[1].Links) != 2 {
			t.Errorf("%s: LoadRecords of two records = %d records, %v; want 2, with two links each", when, len(recs), err)
		}
	}
	check("inside the window")
	if err := bl.EndBulk(ctx); err != nil {
		t.Fatalf("EndBulk: %v", err)
	}
	check("after the window")

	got, err := s.LoadLinks(ctx, "idp", []string{"idp-00", "idp-07", "nope"})
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadLinks after the window = %d links, %v; want 2", len(got), err)
	}
	// An upsert after the window changes the link, it does not add one.
	changed := *want[0]
	changed.Status = nhisync.LinkGone
	commit(t, s, &nhisync.Batch{Links: []*nhisync.Link{&changed}})
	want[0] = &changed
	check("after an upsert")

	if open, err := bl.BeginBulk(ctx); err != nil || open {
		t.Errorf("BeginBulk on a store holding records = %v, %v; want false", open, err)
	}
}

// BulkBatch is n new records, each linked in idp, from id first.
func BulkBatch(first int64, n int) *nhisync.Batch {
	b := &nhisync.Batch{}
	for i := range n {
		id := first + int64(i)
		b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: bulkKey(id), MatchKey: BulkMatchKey(id)})
		b.Links = append(b.Links, &nhisync.Link{System: "idp", ExternalID: fmt.Sprintf("u-%d", id), RecordID: id, Status: nhisync.LinkLive})
	}
	return b
}

// BulkLateBatch follows two commits of BulkBatch(first, 10) and
// BulkBatch(first+10, 10) inside a bulk window: links in cmdb to records of
// both, out of record order (first+15, +2, +19, +0), a stray (unmatched)
// link, and records first+20..first+29 with no link at all. A store's own
// tests of its window use it too.
func BulkLateBatch(first int64) *nhisync.Batch {
	late := &nhisync.Batch{}
	for _, i := range []int64{15, 2, 19, 0} {
		late.Links = append(late.Links, &nhisync.Link{System: "cmdb", ExternalID: fmt.Sprintf("c-%d", i), RecordID: first + i, Status: nhisync.LinkLive})
	}
	late.Links = append(late.Links, &nhisync.Link{System: "cmdb", ExternalID: "stray", Status: nhisync.LinkUnmatched})
	for i := range int64(10) {
		late.Records = append(late.Records, BulkBatch(first+20+i, 1).Records[0])
	}
	return late
}

// bulkKey and BulkMatchKey are BulkBatch's keys of record id.
func bulkKey(id int64) string { return nhisync.DisplayKey([]string{"aws", fmt.Sprintf("bot-%d", id)}) }

func BulkMatchKey(id int64) string {
	return nhisync.NormalizeKey([]string{"aws", fmt.Sprintf("bot-%d", id)})
}

// beginBulk opens the bulk window of an empty store, or skips the test
// for a store without one.
func beginBulk(t *testing.T, s nhisync.Store) nhisync.BulkLoader {
	t.Helper()
	bl, ok := s.(nhisync.BulkLoader)
	if !ok {
		t.Skip("the store has no bulk window")
	}
	if open, err := bl.BeginBulk(ctxOf(t)); err != nil || !open {
		t.Fatalf("BeginBulk on an empty store = %v, %v; want true", open, err)
	}
	return bl
}

// testBulkKeysBack: after EndBulk the keys the window left out hold
// again: a record taking another's match key is refused (ECONFLICT), and
// so is a link to a record that does not exist (EINVALID).
func testBulkKeysBack(t *testing.T, s nhisync.Store) {
	bl := beginBulk(t, s)
	first := newIDs(t, s, 20)[0]
	commit(t, s, BulkBatch(first, 20))
	if err := bl.EndBulk(ctxOf(t)); err != nil {
		t.Fatalf("EndBulk: %v", err)
	}
	b := BulkBatch(first+100, 1)
	b.Records[0].MatchKey = BulkMatchKey(first)
	b.Links = nil
	wantCode(t, "a duplicate match key after the window", s.Commit(ctxOf(t), b), nhisync.ECONFLICT)
	err := s.Commit(ctxOf(t), &nhisync.Batch{Links: []*nhisync.Link{{System: "idp", ExternalID: "x", RecordID: first + 999999, Status: nhisync.LinkLive}}})
	wantCode(t, "a link to a missing record after the window", err, nhisync.EINVALID)
}

// testBulkRecordLinks: inside the window a record's links are found by
// record (LoadRecords), also when they span commits, come out of record
// order, or share a commit with strays; and after EndBulk.
func testBulkRecordLinks(t *testing.T, s nhisync.Store) {
	bl := beginBulk(t, s)
	first := newIDs(t, s, 30)[0]
	// Records first..first+19 with a link in idp each, in two commits.
	for _, start := range []int64{0, 10} {
		commit(t, s, BulkBatch(first+start, 10))
	}
	commit(t, s, BulkLateBatch(first))
	want := map[int64]int{}
	for i := range int64(20) {
		want[first+i] = 1
	}
	for _, i := range []int64{15, 2, 19, 0} {
		want[first+i]++
	}
	check := func(when string) {
		t.Helper()
		ids := make([]int64, 0, 30)
		for i := range int64(30) {
			ids = append(ids, first+i)
		}
		recs, err := s.LoadRecords(ctxOf(t), ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 30 {
			t.Fatalf("%s: LoadRecords = %d records, want 30", when, len(recs))
		}
		for _, r := range recs {
			if len(r.Links) != want[r.ID] {
				t.Errorf("%s: record %d has %d links, want %d", when, r.ID, len(r.Links), want[r.ID])
			}
			for _, l := range r.Links {
				if l.RecordID != r.ID {
					t.Errorf("%s: record %d holds link %s/%s of record %d", when, r.ID, l.System, l.ExternalID, l.RecordID)
				}
			}
		}
	}
	check("inside the window")
	if err := bl.EndBulk(ctxOf(t)); err != nil {
		t.Fatal(err)
	}
	check("after EndBulk")
}

// testBulkNamesADuplicate: a link committed twice inside the window (the
// contract broken) fails EndBulk with EINTERNAL naming the link; reads
// still see every link.
func testBulkNamesADuplicate(t *testing.T, s nhisync.Store) {
	bl := beginBulk(t, s)
	first := newIDs(t, s, 20)[0]
	b := BulkBatch(first, 10)
	commit(t, s, b)
	twice := BulkBatch(first+10, 10)
	twice.Links[3].ExternalID = b.Links[2].ExternalID
	commit(t, s, twice)
	err := bl.EndBulk(ctxOf(t))
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(nhisync.ErrorMessage(err), "idp/"+b.Links[2].ExternalID) {
		t.Fatalf("EndBulk with a link twice = %v; want EINTERNAL naming idp/%s", err, b.Links[2].ExternalID)
	}
	got, err := s.LoadLinks(ctxOf(t), "idp", []string{b.Links[0].ExternalID, twice.Links[9].ExternalID})
	if err != nil || len(got) != 2 {
		t.Errorf("LoadLinks after a failed EndBulk = %d links, %v; want 2", len(got), err)
	}
}

// testBulkNamesADuplicateRecord: two records of one kind with one match
// key committed inside the window (the contract broken) fail EndBulk
// with EINTERNAL naming them.
func testBulkNamesADuplicateRecord(t *testing.T, s nhisync.Store) {
	bl := beginBulk(t, s)
	first := newIDs(t, s, 20)[0]
	b := BulkBatch(first, 20)
	b.Records[7].MatchKey, b.Records[7].Key = b.Records[4].MatchKey, b.Records[4].Key
	commit(t, s, b)
	err := bl.EndBulk(ctxOf(t))
	if msg := nhisync.ErrorMessage(err); nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(msg, "service_account records") || !strings.Contains(msg, b.Records[4].Key) {
		t.Fatalf("EndBulk with a match key twice = %v; want EINTERNAL naming service_account records and %s", err, b.Records[4].Key)
	}
}

// testBulkNamesALinkWithoutItsRecord: a link inside the window to a
// record nobody wrote never lands: either its commit is refused
// (EINVALID, as outside the window) or EndBulk fails with EINTERNAL
// naming it.
func testBulkNamesALinkWithoutItsRecord(t *testing.T, s nhisync.Store) {
	bl := beginBulk(t, s)
	first := newIDs(t, s, 20)[0]
	b := BulkBatch(first, 5)
	b.Links[2].RecordID = first + 100
	if err := s.Commit(ctxOf(t), b); err != nil {
		wantCode(t, "a commit inside the window of a link to no record", err, nhisync.EINVALID)
		return
	}
	err := bl.EndBulk(ctxOf(t))
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(nhisync.ErrorMessage(err), "idp/"+b.Links[2].ExternalID) {
		t.Fatalf("EndBulk with a link to no record = %v; want EINTERNAL naming idp/%s", err, b.Links[2].ExternalID)
	}
}

// Opener opens one database: each call a new handle on it, the first on
// an empty database. The suite closes every store it opens.
type Opener func(t *testing.T) nhisync.Store

// RunReopen runs the suite's tests that open a database again, as a
// process started after another died would. newDB returns an Opener of a
// new, empty database.
func RunReopen(t *testing.T, newDB func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"BulkSurvivesDeath", testBulkSurvivesDeath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

// testBulkSurvivesDeath: a store closed inside the window without
// EndBulk (its process died) leaves a database the next Open finishes:
// every committed record and link is found, by key too, upserts work,
// and the window does not open again.
func testBulkSurvivesDeath(t *testing.T, open Opener) {
	s := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	beginBulk(t, s)
	first := newIDs(t, s, 20)[0]
	commit(t, s, BulkBatch(first, 20))
	closed = true
	if err := s.Close(); err != nil { // without EndBulk
		t.Fatalf("Close: %v", err)
	}

	again := open(t)
	t.Cleanup(func() { again.Close() })
	got, err := again.LoadLinks(ctxOf(t), "idp", []string{fmt.Sprintf("u-%d", first), fmt.Sprintf("u-%d", first+19), "nope"})
	if err != nil || len(got) != 2 {
		t.Errorf("LoadLinks after reopening = %d links, %v; want 2", len(got), err)
	}
	n := 0
	if err := again.ScanLinkHeads(ctxOf(t), "idp", func(nhisync.LinkHead) error { n++; return nil }); err != nil || n != 20 {
		t.Errorf("after reopening: %d idp links, %v; want 20", n, err)
	}
	if r, err := again.RecordByKey(ctxOf(t), "service_account", BulkMatchKey(first+3)); err != nil || r == nil || r.ID != first+3 {
		t.Errorf("RecordByKey after reopening = %v, %v; want record %d", r, err, first+3)
	}
	up := &nhisync.Batch{Links: []*nhisync.Link{{System: "cmdb", ExternalID: "c-1", Status: nhisync.LinkUnmatched}}}
	if err := again.Commit(ctxOf(t), up); err != nil {
		t.Errorf("a link upsert after reopening: %v", err)
	}
	if open, err := again.(nhisync.BulkLoader).BeginBulk(ctxOf(t)); err != nil || open {
		t.Errorf("BeginBulk on a store holding records = %v, %v; want false", open, err)
	}
}
