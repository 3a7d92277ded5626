package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

func openTest(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "data", "nhisync.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopenTest closes s and opens the store at its path again, as the next
// process would, closed when the test ends.
func reopenTest(t *testing.T, s *Store) *Store {
	t.Helper()
	path := s.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	return again
}

// beginBulk opens the bulk window of s, an empty store, and fails the
// test or benchmark unless it opens.
func beginBulk(tb testing.TB, s *Store) {
	tb.Helper()
	if open, err := s.BeginBulk(tb.Context()); err != nil || !open {
		tb.Fatalf("BeginBulk = %v, %v", open, err)
	}
}

// bulkCommit opens the bulk window on s and commits in it a first pass's
// batch of n new records, each linked (storetest.BulkBatch), returned.
func bulkCommit(t *testing.T, s *Store, n int) *nhisync.Batch {
	t.Helper()
	beginBulk(t, s)
	first, err := s.NewIDs(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.BulkBatch(first, n)
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) nhisync.Store { return openTest(t) })
}

// TestStoreSmallPages runs the suite again with pages of a few rows, so
// every paged scan crosses many page boundaries.
func TestStoreSmallPages(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite once is enough in -short mode")
	}
	h, l, r, a, c := headPage, linkPage, scanPage, auditPage, checkpointPage
	headPage, linkPage, scanPage, auditPage, checkpointPage = 7, 7, 5, 11, 2
	t.Cleanup(func() { headPage, linkPage, scanPage, auditPage, checkpointPage = h, l, r, a, c })
	storetest.Run(t, func(t *testing.T) nhisync.Store { return openTest(t) })
}

func BenchmarkCommitLinks(b *testing.B) {
	storetest.BenchmarkCommitLinks(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkLoadRecords(b *testing.B) {
	storetest.BenchmarkLoadRecords(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkAppendAudit(b *testing.B) {
	storetest.BenchmarkAppendAudit(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkLoadLinks(b *testing.B) {
	storetest.BenchmarkLoadLinks(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkClaimOutbox(b *testing.B) {
	storetest.BenchmarkClaimOutbox(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkClaimQueue(b *testing.B) {
	storetest.BenchmarkClaimQueue(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	fileAsDir := filepath.Join(dir, "file")
	if err := os.WriteFile(fileAsDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, mention string
	}{
		{"empty path", "", "empty"},
		{"not a SQLite file", notDB, notDB},
		{"a directory", dir, dir},
		{"parent is a file", filepath.Join(fileAsDir, "x.db"), filepath.Join(fileAsDir, "x.db")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			if nhisync.ErrorCode(err) != nhisync.EINVALID {
				t.Errorf("Open(%q): code %q (%v), want %q", tc.path, nhisync.ErrorCode(err), err, nhisync.EINVALID)
			}
			if msg := nhisync.ErrorMessage(err); !strings.Contains(msg, tc.mention) {
				t.Errorf("Open(%q): message %q does not mention %q", tc.path, msg, tc.mention)
			}
		})
	}
	b, err := os.ReadFile(notDB)
	if err != nil || !strings.HasPrefix(string(b), "this is not") {
		t.Errorf("Open changed the file it refused: %q, %v", b[:min(len(b), 20)], err)
	}
}

func TestOpenCreatesPrivateDirs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "odd ?#% name.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", perm)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at the path given: %v", err)
	}
}

func TestOpenURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.db")
	s, err := OpenURL(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("OpenURL: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("OpenURL did not create %s: %v", path, err)
	}
	_, err = OpenURL(t.Context(), "postgres://nhisync:s3cret@db/x")
	if nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Errorf("OpenURL of another scheme: %v, want EINVALID", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("OpenURL's error shows the password: %v", err)
	}
}

// TestReopen shows that data outlives the process's handle and that
// opening an up-to-date database applies no migration again.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nhisync.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.NewIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	entry := &nhisync.AuditEntry{Time: nhisync.SystemClock{}.Now(), Actor: "nhisync", Action: nhisync.ActConfigLoaded}
	if err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"k": "v"}, Audit: []*nhisync.AuditEntry{entry}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if v, err := s.Meta(ctx, "k"); err != nil || v != "v" {
			t.Errorf("Meta after reopen = %q, %v", v, err)
		}
		if size, hash, err := s.AuditHead(ctx); err != nil || size != 1 || hash != entry.Hash {
			t.Errorf("AuditHead after reopen = %d, %q, %v", size, hash, err)
		}
		var versions int
		want := migrationCount(t)
		if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&versions); err != nil || versions != want {
			t.Errorf("applied migrations = %d, %v; want each of the %d once", versions, err, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if next, err := s.NewIDs(ctx, 1); err != nil || next != first+10 {
		t.Errorf("NewIDs after reopen = %d, %v; want %d", next, err, first+10)
	}
}

func TestPragmas(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
	}
	for _, tc := range tests {
		for name, db := range map[string]querier{"writer": s.w, "reader": s.r} {
			var got string
			if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", name, tc.pragma, err)
			}
			if got != tc.want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, tc.pragma, got, tc.want)
			}
		}
	}
	// The lock waits (store.go): the writer's for another process, the
	// readers' for the transactions of a window without a WAL.
	for name, c := range map[string]struct {
		db   querier
		want int
	}{"writer": {s.w, 10000}, "reader": {s.r, 300000}} {
		var got int
		if err := c.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&got); err != nil || got != c.want {
			t.Errorf("%s: PRAGMA busy_timeout = %d, %v; want %d", name, got, err, c.want)
		}
	}
	// The page caches (store.go): the readers' small, since every commit
	// makes each drop its cache, page by page, at its next read.
	for name, c := range map[string]struct {
		db   querier
		want int
	}{"writer": {s.w, -65536}, "reader": {s.r, -8192}} {
		var got int
		if err := c.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&got); err != nil || got != c.want {
			t.Errorf("%s: PRAGMA cache_size = %d, %v; want %d", name, got, err, c.want)
		}
	}
	if err := func() error {
		_, err := s.r.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('x', 'y')`)
		return err
	}(); err == nil {
		t.Error("a reader connection accepted a write")
	}
}

// TestAuditTriggers tries, behind the store's back, the ways SQL could
// rewrite history that storetest cannot express portably: on the store's
// own connections (foreign keys and recursive triggers on) and on another
// with foreign keys on, as the sqlite3 shell has them with PRAGMA
// foreign_keys = ON.
func TestAuditTriggers(t *testing.T) {
	for _, conn := range []string{"store", "other"} {
		t.Run(conn, func(t *testing.T) { testAuditTriggers(t, conn == "other") })
	}
}

func testAuditTriggers(t *testing.T, other bool) {
	s := openTest(t)
	ctx := t.Context()
	entries := []*nhisync.AuditEntry{
		{Time: nhisync.SystemClock{}.Now(), Actor: "a", Action: nhisync.ActObserved},
		{Time: nhisync.SystemClock{}.Now(), Actor: "b", Action: nhisync.ActObserved},
	}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: entries}); err != nil {
		t.Fatal(err)
	}
	exec := func(q string) error { return s.ExecRaw(ctx, q) }
	if other {
		db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		exec = func(q string) error { _, err := db.ExecContext(ctx, q); return err }
	}
	tests := []struct {
		name, query string
		ok          bool
	}{
		{"replace an entry", `INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (1, x'00', 'h')`, false},
		{"replace the last entry", `INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (2, x'00', 'h')`, false},
		{"insert into the past", `INSERT INTO audit (seq, leaf, hash) VALUES (0, x'00', 'h')`, false},
		{"insert before the first", `INSERT INTO audit (seq, leaf, hash) VALUES (-1, x'00', 'h')`, false},
		{"leave a gap", `INSERT INTO audit (seq, leaf, hash) VALUES (4, x'00', 'h')`, false},
		{"leave a gap after an entry", `INSERT INTO audit (seq, leaf, hash) VALUES (3, x'7b7d', 'h'), (5, x'7b7d', 'h')`, false},
		{"change a leaf", `UPDATE audit SET leaf = x'00' WHERE seq = 1`, false},
		{"move an entry", `UPDATE audit SET seq = 3 WHERE seq = 2`, false},
		{"delete the tail", `DELETE FROM audit WHERE seq = 2`, false},
		{"append", `INSERT INTO audit (seq, leaf, hash) VALUES (3, x'7b7d', 'h')`, true},
		// Without a seq, SQLite gives the next one: an append too.
		{"append without a seq", `INSERT INTO audit (leaf, hash) VALUES (x'7b7d', 'h')`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := exec(tc.query)
			if tc.ok && err != nil {
				t.Errorf("%s: %v", tc.query, err)
			}
			if !tc.ok {
				if err == nil {
					t.Errorf("%s: accepted", tc.query)
				} else if !strings.Contains(err.Error(), "append-only") && !strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
					t.Errorf("%s: refused for another reason: %v", tc.query, err)
				}
			}
		})
	}
	// The store's own connections refuse to overwrite even an entry
	// appended by hand (the delete REPLACE makes fires the DELETE
	// trigger); after a commit the head guards the last entry on any
	// connection with foreign keys on.
	if !other {
		if err := exec(`INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (4, x'00', 'h')`); err == nil {
			t.Error("the store's connection overwrote the entry appended last")
		}
	}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{{Time: nhisync.SystemClock{}.Now(), Actor: "c", Action: nhisync.ActObserved}}}); err != nil {
		t.Fatal(err)
	}
	if err := exec(`INSERT OR REPLACE INTO audit (seq, leaf, hash) VALUES (5, x'00', 'h')`); err == nil {
		t.Error("the entry a commit appended last was overwritten")
	}
	var n, max int64
	var leaf []byte
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), max(seq), (SELECT leaf FROM audit WHERE seq = 5) FROM audit`).Scan(&n, &max, &leaf); err != nil || n != 5 || max != 5 || string(leaf) == "\x00" {
		t.Errorf("audit rows = %d, last seq %d, last leaf %q, %v; want 5, 5 and the committed leaf", n, max, leaf, err)
	}
}

// TestCommitFailureInTransaction fails a batch inside the transaction (a
// link to a record that does not exist: the foreign key) after its audit
// entries were sealed: nothing is kept and the caller's entries are as
// they were.
func TestCommitFailureInTransaction(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	e := &nhisync.AuditEntry{Time: nhisync.SystemClock{}.Now(), Actor: "a", Action: nhisync.ActObserved, Seq: 77, PrevHash: "p", Hash: "h"}
	err := s.Commit(ctx, &nhisync.Batch{
		Links: []*nhisync.Link{{System: "idp", ExternalID: "u-1", RecordID: 12345, Status: nhisync.LinkLive}},
		Audit: []*nhisync.AuditEntry{e},
		Meta:  map[string]string{"k": "v"},
	})
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), "idp/u-1") {
		t.Errorf("link to a missing record: %v, want EINVALID naming the link", err)
	}
	if e.Seq != 77 || e.PrevHash != "p" || e.Hash != "h" {
		t.Errorf("a failed commit left the caller's entry sealed: %+v", e)
	}
	if size, _, err := s.AuditHead(ctx); err != nil || size != 0 {
		t.Errorf("AuditHead after a failed commit = %d, %v", size, err)
	}
	if v, err := s.Meta(ctx, "k"); err != nil || v != "" {
		t.Errorf("Meta after a failed commit = %q, %v", v, err)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta(t.Context(), "k"); nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Errorf("Meta on a closed store: %v, want EINTERNAL", err)
	}
}

// migrationCount is how many migrations the store embeds.
func migrationCount(t *testing.T) int {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func BenchmarkCommitFirstPass(b *testing.B) {
	storetest.BenchmarkCommitFirstPass(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkScanLinkHeads(b *testing.B) {
	storetest.BenchmarkScanLinkHeads(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkScanLinkHeadPages(b *testing.B) {
	storetest.BenchmarkScanLinkHeadPages(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkScanRecordHeads(b *testing.B) {
	storetest.BenchmarkScanRecordHeads(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkBulkLoad(b *testing.B) {
	storetest.BenchmarkBulkLoad(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

func BenchmarkBulkCommit(b *testing.B) {
	storetest.BenchmarkBulkCommit(b, func(b *testing.B) nhisync.Store { return openTest(b) })
}

// nonBulk hides the store's bulk window, so BenchmarkNoBulkLoad measures
// the same load committed one batch at a time through the indexes.
type nonBulk struct{ nhisync.Store }

func BenchmarkNoBulkLoad(b *testing.B) {
	storetest.BenchmarkBulkLoad(b, func(b *testing.B) nhisync.Store { return nonBulk{openTest(b)} })
}
