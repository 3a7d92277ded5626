package sqlite

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nhisync/nhisync"
	"github.com/pressly/goose/v3"
)

// migrateTo brings the database at path to a schema version (up or
// down), as an older or newer nhisync would have left it.
func migrateTo(t *testing.T, path string, version int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// One connection, as the store migrates: a migration's PRAGMA holds
	// for its statements.
	db.SetMaxOpenConns(1)
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := p.GetDBVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cur < version {
		_, err = p.UpTo(t.Context(), version)
	} else {
		_, err = p.DownTo(t.Context(), version)
	}
	if err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
}

// TestMigrateNarrowLinks opens a store whose links were written in the
// wide layout (before migration 00006) and checks every link reads back
// the same, a later commit updates them in place, and the migration's
// Down gives the wide rows back.
func TestMigrateNarrowLinks(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	migrateTo(t, path, 5)

	var want []*nhisync.Link
	var records []*nhisync.Record
	for i := range 40 {
		r := &nhisync.Record{ID: int64(i + 1), Kind: "service_account", Key: fmt.Sprintf("aws/bot-%02d", i), MatchKey: fmt.Sprintf("aws\x00bot-%02d", i),
			Fields: map[string]*nhisync.Golden{"owner": {Value: nhisync.Str("ana@example.com"), Source: "cmdb", Rule: "authority"}}}
		records = append(records, r)
		for _, sys := range []string{"idp", "cmdb", "catalog"} {
			if sys == "catalog" && i%3 == 0 {
				continue
			}
			h := sha256.Sum256([]byte(sys + r.Key))
			want = append(want, &nhisync.Link{System: sys, ExternalID: fmt.Sprintf("%s-%03d", sys, 97*i%40), RecordID: r.ID, Status: nhisync.LinkLive, Hash: h[:16],
				Fields: map[string]*nhisync.FieldState{"owner": {Shadow: nhisync.Str("ana@example.com"), Asserted: nhisync.Str("ana@example.com")}}})
		}
	}
	want = append(want,
		&nhisync.Link{System: "idp", ExternalID: "stray", Status: nhisync.LinkUnmatched},
		&nhisync.Link{System: "zeta", ExternalID: "gone-1", RecordID: 3, Status: nhisync.LinkGone})
	func() {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, r := range records {
			if _, err := db.ExecContext(ctx, `INSERT INTO records (id, kind, match_key, key, state) VALUES (?, ?, ?, ?, ?)`,
				r.ID, r.Kind, r.MatchKey, r.Key, encodeRecordState(nil, r)); err != nil {
				t.Fatal(err)
			}
		}
		// Rows in scattered order, so rowids (the new state ids) are
		// not in key order.
		for i := range want {
			l := want[(i*7)%len(want)]
			var hash any
			if l.Hash != nil {
				hash = l.Hash
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO links (system, ext_id, record_id, status, hash, state) VALUES (?, ?, ?, ?, ?, ?)`,
				l.System, l.ExternalID, nullID(l.RecordID), string(l.Status), hash, encodeLinkState(nil, l)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExecContext(ctx, `UPDATE ids SET next = 100 WHERE name = 'id'`); err != nil {
			t.Fatal(err)
		}
	}()
	if len(want)%7 == 0 {
		t.Fatal("the fixture's scatter does not visit every link")
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrates: %v", err)
	}
	defer s.Close()
	sortLinks := func(ls []*nhisync.Link) {
		slices.SortFunc(ls, func(a, b *nhisync.Link) int {
			if a.System != b.System {
				return strings.Compare(a.System, b.System)
			}
			return strings.Compare(a.ExternalID, b.ExternalID)
		})
	}
	sortLinks(want)
	opts := cmp.Options{cmp.Comparer(func(a, b nhisync.Value) bool { return a.Equal(b) }), cmpopts.EquateEmpty(), cmpopts.IgnoreFields(nhisync.Link{}, "Stored")}

	var got []*nhisync.Link
	if err := s.ScanLinks(ctx, "", nil, func(l *nhisync.Link) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("ScanLinks after migrating (-want +got):\n%s", d)
	}
	var heads []nhisync.LinkHead
	if err := s.ScanLinkHeads(ctx, "", func(h nhisync.LinkHead) error { heads = append(heads, h); return nil }); err != nil {
		t.Fatal(err)
	}
	var wantHeads []nhisync.LinkHead
	for _, l := range want {
		wantHeads = append(wantHeads, nhisync.LinkHead{System: l.System, ExternalID: l.ExternalID, RecordID: l.RecordID, Status: l.Status, Hash: l.Hash})
	}
	if d := cmp.Diff(wantHeads, heads, opts); d != "" {
		t.Errorf("ScanLinkHeads after migrating (-want +got):\n%s", d)
	}
	loaded, err := s.LoadRecords(ctx, []int64{3})
	if err != nil || len(loaded) != 1 {
		t.Fatalf("LoadRecords(3) = %v, %v", loaded, err)
	}
	var want3 []*nhisync.Link
	for _, l := range want {
		if l.RecordID == 3 {
			want3 = append(want3, l)
		}
	}
	sortLinks(loaded[0].Links)
	if d := cmp.Diff(want3, loaded[0].Links, opts); d != "" {
		t.Errorf("LoadRecords(3).Links after migrating (-want +got):\n%s", d)
	}

	// A commit after the migration updates migrated links in place (their
	// state ids stay) and adds new ones after the highest id.
	upd := *want[0]
	upd.Fields = map[string]*nhisync.FieldState{"owner": {Shadow: nhisync.Str("bo@example.com"), Asserted: nhisync.Str("bo@example.com")}}
	added := &nhisync.Link{System: "cmdb", ExternalID: "new-1", RecordID: 1, Status: nhisync.LinkLive}
	if err := s.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{&upd, added}}); err != nil {
		t.Fatal(err)
	}
	var links, states, orphans int
	if err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM links), (SELECT count(*) FROM link_state),
		(SELECT count(*) FROM link_state WHERE id NOT IN (SELECT state_id FROM links))`).Scan(&links, &states, &orphans); err != nil {
		t.Fatal(err)
	}
	if links != len(want)+1 || states != links || orphans != 0 {
		t.Errorf("after a commit: %d links, %d states, %d states of no link; want %d, %d, 0", links, states, orphans, len(want)+1, len(want)+1)
	}
	back, err := s.LoadLinks(ctx, upd.System, []string{upd.ExternalID})
	if err != nil || len(back) != 1 {
		t.Fatalf("LoadLinks = %v, %v", back, err)
	}
	if d := cmp.Diff(&upd, back[0], opts); d != "" {
		t.Errorf("updated link (-want +got):\n%s", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Down: the wide table again, every row as it reads now.
	migrateTo(t, path, 5)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT system, ext_id, record_id, status, hash, state FROM links ORDER BY system, ext_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var wide []*nhisync.Link
	for rows.Next() {
		l := &nhisync.Link{}
		var rec sql.NullInt64
		var status string
		var state []byte
		if err := rows.Scan(&l.System, &l.ExternalID, &rec, &status, &l.Hash, &state); err != nil {
			t.Fatal(err)
		}
		l.RecordID, l.Status = rec.Int64, nhisync.LinkStatus(status)
		var dec decoder
		if err := dec.DecodeLink(state, l); err != nil {
			t.Fatal(err)
		}
		wide = append(wide, l)
	}
	wantWide := append([]*nhisync.Link{added}, want...)
	wantWide[1+slices.IndexFunc(want, func(l *nhisync.Link) bool { return l.System == upd.System && l.ExternalID == upd.ExternalID })] = &upd
	sortLinks(wantWide)
	if d := cmp.Diff(wantWide, wide, opts); d != "" {
		t.Errorf("links after migrating down (-want +got):\n%s", d)
	}
}

// TestMigrateAuditChainKeys opens a store whose audit log was guarded by
// the per-row trigger (before migration 00009): its entries read as they
// were, a commit appends after them, the keys refuse a gap and an
// overwrite of any entry, and the migration's Down gives the trigger back
// over the same entries.
func TestMigrateAuditChainKeys(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	migrateTo(t, path, 8)
	s, err := Open(ctx, filepath.Join(t.TempDir(), "seed.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Entries sealed by today's store, copied into the old schema.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	seed := []*nhisync.AuditEntry{
		{Time: at(1), Actor: "a", Action: nhisync.ActObserved},
		{Time: at(2), Actor: "b", Action: nhisync.ActObserved, RecordID: 7},
		{Time: at(3), Actor: "c", Action: nhisync.ActObserved},
	}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: seed}); err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	if err := s.ScanAudit(ctx, 1, 0, func(_ *nhisync.AuditEntry, leaf []byte) error { leaves = append(leaves, leaf); return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	func() {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for i, e := range seed {
			if _, err := db.ExecContext(ctx, `INSERT INTO audit (seq, record_id, leaf, hash) VALUES (?, ?, ?, ?)`, e.Seq, nullID(e.RecordID), leaves[i], e.Hash); err != nil {
				t.Fatal(err)
			}
		}
	}()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrates: %v", err)
	}
	defer s.Close()
	next := &nhisync.AuditEntry{Time: at(4), Actor: "d", Action: nhisync.ActObserved}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{next}}); err != nil {
		t.Fatal(err)
	}
	if next.Seq != 4 || next.PrevHash != seed[2].Hash {
		t.Errorf("the entry after the migrated ones: seq %d, prev %q; want 4 after %q", next.Seq, next.PrevHash, seed[2].Hash)
	}
	var got []*nhisync.AuditEntry
	if err := s.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		if int(e.Seq) <= len(leaves) && !bytes.Equal(leaf, leaves[e.Seq-1]) {
			t.Errorf("entry %d: leaf %s after migrating, want %s", e.Seq, leaf, leaves[e.Seq-1])
		}
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[3].Hash != next.Hash {
		t.Fatalf("%d entries after migrating and a commit, want 4, the last one committed", len(got))
	}
	for _, q := range []string{
		`INSERT INTO audit (seq, leaf, hash) VALUES (6, x'00', 'h')`,
		`INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (2, x'00', 'h')`,
		`INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (4, x'00', 'h')`,
	} {
		if err := s.ExecRaw(ctx, q); err == nil {
			t.Errorf("%s: accepted after migrating", q)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	migrateTo(t, path, 8)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var last string
	if err := db.QueryRowContext(ctx, `SELECT count(*), (SELECT hash FROM audit WHERE seq = 4) FROM audit`).Scan(&n, &last); err != nil || n != 4 || last != next.Hash {
		t.Errorf("after migrating down: %d entries, last hash %q, %v; want 4, %q", n, last, err, next.Hash)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit (seq, leaf, hash) VALUES (6, x'00', 'h')`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("a gap after migrating down: %v, want the append-only trigger", err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit WHERE seq = 4`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("a delete after migrating down: %v, want the append-only trigger", err)
	}
}

// TestMigrateStageRuns: a store left inside a bulk window by a version
// before migration 00010 (links staged in the old stage, a stray among
// them) opens with every link in links, once: the migration carries the
// staged links into the new stage and Open moves them. Down gives the
// staged links back to the old stage.
func TestMigrateStageRuns(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "window.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b := bulkCommit(t, s, 6)
	if err := s.Close(); err != nil { // died inside the window
		t.Fatal(err)
	}
	migrateTo(t, path, 9)
	func() {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var staged int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM links_stage WHERE record_id IS NOT NULL`).Scan(&staged); err != nil || staged != 6 {
			t.Fatalf("old stage after Down = %d links, %v; want 6", staged, err)
		}
		// The old version staged strays too.
		stray := &nhisync.Link{System: "idp", ExternalID: "stray", Status: nhisync.LinkUnmatched}
		if _, err := db.ExecContext(ctx, `INSERT INTO link_state (id, state) VALUES (1000, ?)`, encodeLinkState(nil, stray)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO links_stage (system_id, ext_id, record_id, status, hash, state_id)
			SELECT id, 'stray', NULL, 'unmatched', NULL, 1000 FROM link_systems WHERE name = 'idp'`); err != nil {
			t.Fatal(err)
		}
	}()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrates and closes the window: %v", err)
	}
	defer s.Close()
	if n := stagedCount(t, s); n != 0 {
		t.Errorf("%d links still staged after Open", n)
	}
	if !hasRecordsKey(t, s) {
		t.Error("records_key missing after Open")
	}
	ids := []string{"stray"}
	for _, l := range b.Links {
		ids = append(ids, l.ExternalID)
	}
	got, err := s.LoadLinks(ctx, "idp", ids)
	if err != nil || len(got) != 7 {
		t.Fatalf("LoadLinks after Open = %d links, %v; want 7", len(got), err)
	}
	for _, l := range got {
		if (l.ExternalID == "stray") != (l.RecordID == 0) {
			t.Errorf("link %s has record %d", l.ExternalID, l.RecordID)
		}
	}
	var ok string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}

// nullID stores the ID 0 ("none") as NULL, as the store writes it
// (nullIDRef).
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// TestMigrateOutboxSystem: a store with writes of two systems queued
// (interleaved, one retried with a later next_at) migrates down to
// outbox_due and up to outbox_system with every write kept, and a claim
// then takes one system's due writes in next_at, id order.
func TestMigrateOutboxSystem(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	first, err := s.NewIDs(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &nhisync.Batch{}
	var want []int64
	for i := range int64(n) {
		sys, next := []string{"idp", "cmdb"}[i%2], base
		if i == 2 { // retried: due after the others
			next = base.Add(time.Minute)
		}
		b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: first + i, System: sys, ExternalID: fmt.Sprintf("u-%d", i), RecordID: 100 + i,
			Field: "owner", Status: nhisync.OutboxReady, NextAt: next, Created: base})
		if sys == "idp" && i != 2 {
			want = append(want, first+i)
		}
	}
	want = append(want, first+2)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	outboxIndexes := func() []string {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var count int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&count); err != nil || count != n {
			t.Fatalf("outbox holds %d writes, %v; want %d", count, err, n)
		}
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		return names
	}
	migrateTo(t, path, 11)
	if got, want := outboxIndexes(), []string{"outbox_claimed", "outbox_due", "outbox_record"}; !slices.Equal(got, want) {
		t.Errorf("outbox indexes after Down = %q, want %q", got, want)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrates: %v", err)
	}
	defer s.Close()
	if got, want := indexNames(t, s, "outbox"), []string{"outbox_claimed", "outbox_record", "outbox_system"}; !slices.Equal(got, want) {
		t.Errorf("outbox indexes after Up = %q, want %q", got, want)
	}
	c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "idp", Holder: "h", Now: base.Add(time.Hour), TTL: time.Hour})
	if err != nil {
		t.Fatalf("ClaimOutbox after Up: %v", err)
	}
	if !slices.Equal(c.IDs, want) || len(ws) != len(want) {
		t.Errorf("claimed %v (%d writes), want idp's in next_at, id order %v", c.IDs, len(ws), want)
	}
	var ok string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}
