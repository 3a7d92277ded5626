package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestBulkGatherWindow: inside a bulk window without a WAL the writer's
// page writes go out gathered, fewer writes than pages; the store is
// whole and holds every commit once the window closes and the store is
// opened again; after the window nothing gathers.
func TestBulkGatherWindow(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	beginBulk(t, s)
	pages, writes, waits := bulkPageWrites.Load(), bulkDBWrites.Load(), bulkAsyncWaits.Load()
	for i := range 4 {
		if err := s.Commit(ctx, windowBatch(t, s, 300, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	pages, writes = bulkPageWrites.Load()-pages, bulkDBWrites.Load()-writes
	if pages == 0 || writes == 0 || writes*2 > pages {
		t.Errorf("the window's commits wrote %d pages in %d writes; want them gathered, at least two pages a write", pages, writes)
	}
	t.Logf("the window's commits wrote %d pages in %d writes", pages, writes)
	// The writer's commits queue their writes and wait for none of them
	// (bulkasync.go): a wait or two a commit would undo that.
	if waits = bulkAsyncWaits.Load() - waits; asyncPwriteOK && waits > 0 {
		t.Errorf("the window's 4 commits waited %d times for their queued writes, want never", waits)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	after := bulkPageWrites.Load()
	if err := s.Commit(ctx, windowBatch(t, s, 10, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := bulkPageWrites.Load() - after; n != 0 {
		t.Errorf("%d page writes gathered after the window closed, want none", n)
	}
	s = reopenTest(t, s)
	var check string
	if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check after the window = %q, %v", check, err)
	}
	var recs, links int
	if err := s.w.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM links)`).Scan(&recs, &links); err != nil || recs != 1210 || links != 1210 {
		t.Errorf("after the window: %d records, %d links (%v); want 1210 of each", recs, links, err)
	}
}

// TestBulkGatherFailsTheCommit: a gathered write that fails fails the
// commit it belongs to, however it is carried out (the last of a
// commit's writes goes out at SQLITE_FCNTL_SYNC), the commit rolls back
// and the file holds what it held before. With that file control leaving
// the buffer for a later call (bulkSkipSyncFlush) the failure is heard
// only after SQLite thinks the pages written: the file is left torn
// (the database malformed), which this test must see.
func TestBulkGatherFailsTheCommit(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	// The design where each commit writes its own pages out (off Linux;
	// on Linux a goroutine writes them, bulkasync.go, and a failure fails
	// the window instead: TestBulkAsyncWriteFailsTheWindow).
	bulkAsyncWrites = false
	defer func() { bulkAsyncWrites = true }()
	catchesUnsafe(t, bulkGatherFaultScenario, &bulkSkipSyncFlush, "gathered writes left past SQLITE_FCNTL_SYNC")
}

// bulkGatherFaultScenario commits a blob, then another whose new pages
// (one run, gathered whole, written at the commit's FCNTL_SYNC) fail to
// be written, and says what went wrong, "" if nothing.
func bulkGatherFaultScenario(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "gather.db")
	db, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=journal_mode(MEMORY)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := setBulkGather(ctx, conn, true); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`,
		`INSERT INTO t VALUES (1, randomblob(60000))`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	var pages, size int64
	if err := conn.QueryRowContext(ctx, `SELECT page_count, page_size FROM pragma_page_count, pragma_page_size`).Scan(&pages, &size); err != nil {
		t.Fatal(err)
	}
	end := pages * size
	var failed int
	bulkWriteFault = func(off, n int64) int32 {
		if off+n > end {
			failed++
			return sqlite3.SQLITE_IOERR_WRITE
		}
		return sqlite3.SQLITE_OK
	}
	defer func() { bulkWriteFault = nil }() // however the test ends
	before := bulkDBWrites.Load()
	_, err = conn.ExecContext(ctx, `INSERT INTO t VALUES (2, randomblob(60000))`)
	bulkWriteFault = nil
	if failed == 0 {
		t.Fatal("no gathered write past the file's end was made: the scenario tests nothing")
	}
	if n := bulkDBWrites.Load() - before; n > 3 {
		t.Fatalf("the failing commit went out in %d writes, want its new pages in one run (page 1, the leaf, the run)", n)
	}
	var bad []string
	if err == nil {
		bad = append(bad, "the commit whose page writes failed succeeded")
	}
	var rows int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil || rows != 1 {
		bad = append(bad, fmt.Sprintf("after the failed commit the table holds %d rows (%v), want 1", rows, err))
	}
	var check string
	if err := conn.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		bad = append(bad, fmt.Sprintf("integrity_check after the failed commit = %q, %v", check, err))
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprint(bad)
}
