package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestHeadScanRows reads heads written as SQL can hold them, across pages
// of two rows: ids with a NUL byte and non-ASCII text, hashes absent,
// empty and present, a status no constant names, and it checks that a
// head's hash, sharing its page's bytes, cannot be appended over the
// next head's.
func TestHeadScanRows(t *testing.T) {
	h := headPage
	headPage = 2
	t.Cleanup(func() { headPage = h })
	s := openTest(t)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if err := s.ExecRaw(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO records (id, kind, match_key, key, state) VALUES (7, 'app', ?, 'x', x''), (9, 'svc', '', 'y', x''), (12, 'app', ?, 'z', x'')`, "k\u00e9y", "a\x00b")
	exec(`INSERT INTO link_systems (id, name) VALUES (1, 'idp'), (2, 'cmdb')`)
	exec(`INSERT INTO link_state (id, state) VALUES (1, x'')`)
	type row struct {
		sys    int
		id     string
		rec    any
		status string
		hash   any
	}
	rows := []row{
		{1, "a\x00b", 7, "live", []byte{1, 2}},
		{1, "b", nil, "unmatched", nil},
		{1, "c", 9, "gone", []byte{}},
		{1, "d\u00fc", 12, "someday", []byte{3, 4, 5}},
		{1, "e", 7, "live", []byte{6}},
		{2, "a", 9, "disputed", []byte{7, 8}},
	}
	for _, r := range rows {
		exec(`INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id) VALUES (?, ?, ?, ?, ?, 1)`, r.sys, r.id, r.rec, r.status, r.hash)
	}
	want := []nhisync.LinkHead{
		{System: "idp", ExternalID: "a\x00b", RecordID: 7, Status: nhisync.LinkLive, Hash: []byte{1, 2}},
		{System: "idp", ExternalID: "b", Status: nhisync.LinkUnmatched},
		{System: "idp", ExternalID: "c", RecordID: 9, Status: nhisync.LinkGone},
		{System: "idp", ExternalID: "d\u00fc", RecordID: 12, Status: "someday", Hash: []byte{3, 4, 5}},
		{System: "idp", ExternalID: "e", RecordID: 7, Status: nhisync.LinkLive, Hash: []byte{6}},
	}
	var got []nhisync.LinkHead
	if err := s.ScanLinkHeads(ctx, "idp", func(h nhisync.LinkHead) error { got = append(got, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("ScanLinkHeads (-want +got):\n%s", d)
	}
	got[0].Hash = append(got[0].Hash, 0xff)
	got[3].Hash = append(got[3].Hash, 0xff)
	if !slices.Equal(got[1].Hash, nil) || !slices.Equal(got[4].Hash, []byte{6}) {
		t.Errorf("appending to one head's hash changed the next: %v, %v", got[1].Hash, got[4].Hash)
	}

	var all []nhisync.LinkHead
	if err := s.ScanLinkHeads(ctx, "", func(h nhisync.LinkHead) error { all = append(all, h); return nil }); err != nil {
		t.Fatal(err)
	}
	wantAll := append([]nhisync.LinkHead{{System: "cmdb", ExternalID: "a", RecordID: 9, Status: nhisync.LinkDisputed, Hash: []byte{7, 8}}}, want...)
	if d := cmp.Diff(wantAll, all); d != "" {
		t.Errorf("ScanLinkHeads of every system (-want +got):\n%s", d)
	}

	// The pages give the same heads, each page's ids and hashes valid
	// until the next: copied out within the call, they stay whole.
	var paged []nhisync.LinkHead
	pages := 0
	if err := s.ScanLinkHeadPages(ctx, "", func(page []nhisync.LinkHead) error {
		pages++
		for _, h := range page {
			h.ExternalID, h.Hash = strings.Clone(h.ExternalID), slices.Clone(h.Hash)
			paged = append(paged, h)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantAll, paged); d != "" {
		t.Errorf("ScanLinkHeadPages of every system (-want +got):\n%s", d)
	}
	if pages != 4 {
		t.Errorf("ScanLinkHeadPages gave %d pages of at most 2 heads, want 4 (1 of cmdb, 3 of idp)", pages)
	}
	stop := errors.New("stop")
	if err := s.ScanLinkHeadPages(ctx, "idp", func([]nhisync.LinkHead) error { return stop }); err != stop {
		t.Errorf("ScanLinkHeadPages whose fn fails = %v, want fn's error as is", err)
	}
	// fn may write over the page it is given (the scan goes on from its
	// own copy of the last id), and is given no empty page, even when
	// the heads fill their last page (idp's 5, pages of 5).
	for _, size := range []int{2, 5} {
		headPage = size
		var ids []string
		calls := 0
		if err := s.ScanLinkHeadPages(ctx, "idp", func(page []nhisync.LinkHead) error {
			if calls++; calls > len(want) {
				return stop
			}
			for i := range page {
				ids = append(ids, strings.Clone(page[i].ExternalID))
				page[i] = nhisync.LinkHead{}
			}
			return nil
		}); err != nil {
			t.Fatalf("pages of %d: ScanLinkHeadPages whose fn clears its pages: %v after ids %q", size, err, ids)
		}
		wantIDs := []string{"a\x00b", "b", "c", "d\u00fc", "e"}
		if wantPages := (len(want) + size - 1) / size; !slices.Equal(ids, wantIDs) || calls != wantPages {
			t.Errorf("pages of %d: ScanLinkHeadPages whose fn clears its pages gave ids %q in %d pages, want %q in %d", size, ids, calls, wantIDs, wantPages)
		}
	}
	headPage = 2

	var recs []nhisync.RecordHead
	if err := s.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error { recs = append(recs, h); return nil }); err != nil {
		t.Fatal(err)
	}
	wantRecs := []nhisync.RecordHead{{ID: 7, Kind: "app", MatchKey: "k\u00e9y"}, {ID: 9, Kind: "svc"}, {ID: 12, Kind: "app", MatchKey: "a\x00b"}}
	if d := cmp.Diff(wantRecs, recs); d != "" {
		t.Errorf("ScanRecordHeads (-want +got):\n%s", d)
	}
}

// TestHeadScanWrongType: a head column holding another type than its own
// (a schema this code does not know) fails the scan; it is not read as a
// zero.
func TestHeadScanWrongType(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.ExecRaw(ctx, `INSERT INTO link_systems (id, name) VALUES (1, 'idp')`); err != nil {
		t.Fatal(err)
	}
	// The STRICT table holds no wrong type: the scan's SQL is swapped for
	// one that yields them.
	if err := s.ExecRaw(ctx, `INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id) VALUES (1, 'a', NULL, 'live', x'01', 1)`); err != nil {
		t.Fatal(err)
	}
	old := scanHeadsSQL
	t.Cleanup(func() { scanHeadsSQL = old })
	scanHeadsSQL = `SELECT ext_id, 'text', status, hash FROM links WHERE system_id = ?1 AND ext_id > ?2 ORDER BY system_id, ext_id LIMIT ?3`
	err := s.ScanLinkHeads(ctx, "idp", func(nhisync.LinkHead) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Errorf("a record id of text: ScanLinkHeads = %v, want EINTERNAL", err)
	}
	scanHeadsSQL = `SELECT ext_id, record_id, 99, hash FROM links WHERE system_id = ?1 AND ext_id > ?2 ORDER BY system_id, ext_id LIMIT ?3`
	err = s.ScanLinkHeads(ctx, "idp", func(nhisync.LinkHead) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Errorf("a status of an integer: ScanLinkHeads = %v, want EINTERNAL", err)
	}
	scanHeadsSQL = `SELECT ext_id, record_id, status, 7 FROM links WHERE system_id = ?1 AND ext_id > ?2 ORDER BY system_id, ext_id LIMIT ?3`
	err = s.ScanLinkHeads(ctx, "idp", func(nhisync.LinkHead) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Errorf("a hash of an integer: ScanLinkHeads = %v, want EINTERNAL", err)
	}
}

// TestHeadScanCanceled: a scan with a done context reads nothing and says
// it was canceled.
func TestHeadScanCanceled(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("ScanRecordHeads with a canceled context = %v (fn called: %v), want context.Canceled", err, called)
	}
}

// TestHeadScanFaultNamed: a failure SQLite reports on a head connection
// is named as the driver's are (a corrupt store says so).
func TestHeadScanFaultNamed(t *testing.T) {
	err := internal("sqlite.ScanLinkHeads", &headError{code: sqlite3.SQLITE_CORRUPT, msg: "database disk image is malformed"})
	var ne *nhisync.Error
	if !errors.As(err, &ne) || ne.Message == "" || !strings.Contains(ne.Message, "corrupt") {
		t.Errorf("internal(headError CORRUPT) = %v, want the corrupt store's message", err)
	}
}

// TestHeadScanClosedWithStore: the head scans' connections close with
// the store, so the last connection to close (the writer) checkpoints the
// WAL and removes it, as before they existed; a scan after Close fails.
func TestHeadScanClosedWithStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nhisync.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ExecRaw(ctx, `INSERT INTO link_systems (id, name) VALUES (1, 'idp')`); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanLinkHeads(ctx, "", func(nhisync.LinkHead) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close the WAL is still there (stat: %v): a head connection outlived the store", err)
	}
	if err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error { return nil }); err == nil {
		t.Error("ScanRecordHeads after Close succeeded")
	}
}
