package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestCheckpointWritesGathered: a store's checkpoint of new pages writes
// them into the database file in far fewer writes than pages, none left
// for CKPT_DONE, and the file alone holds what was committed (the rest of
// TestCheckpointReadAhead checks that on the same kind of commits).
func TestCheckpointWritesGathered(t *testing.T) {
	s := storeOfCommits(t)
	pages, writes, late := ckptPageWrites.Load(), ckptDBWrites.Load(), ckptLateFlushes.Load()
	checkpointOnce(t, s)
	pages, writes = ckptPageWrites.Load()-pages, ckptDBWrites.Load()-writes
	t.Logf("%d pages written in %d writes of the database file", pages, writes)
	if pages < 100 || writes*4 > pages {
		t.Errorf("the checkpoint wrote %d pages in %d writes, want over 100 in at most a quarter as many", pages, writes)
	}
	if n := ckptLateFlushes.Load() - late; n != 0 {
		t.Errorf("%d checkpoints left gathered pages for CKPT_DONE", n)
	}
	copiedWhole(t, s)
}

// TestCheckpointWriteFailsTheCheckpoint: a write of gathered pages that
// fails (the loop's last pages, or any) fails the checkpoint: SQLite
// reports the error, publishes no copy (the wal-index's nBackfill stays),
// and the store, reopened, holds everything, its file whole once a
// checkpoint succeeds. With the last page write gathered too (gatherLast:
// the buffer goes out at CKPT_DONE, whose result SQLite ignores) the same
// failure is published as a copy, which this test must see.
func TestCheckpointWriteFailsTheCheckpoint(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	for _, final := range []bool{true, false} {
		if bad := ckptWriteFaultScenario(t, final); bad != "" {
			t.Fatalf("a failing write (final %v): %s", final, bad)
		}
	}
	gatherLast = true
	bad := ckptWriteFaultScenario(t, true)
	gatherLast = false
	if bad == "" {
		t.Fatal("with the last page write gathered a failing write still failed the checkpoint: this test catches nothing")
	}
	t.Logf("the last page write gathered: %s", bad)
}

// ckptWriteFaultScenario commits new pages, runs a checkpoint whose
// gathered writes fail (those of the last pages if final, else all),
// then one that succeeds, and says what went wrong, "" if nothing.
func ckptWriteFaultScenario(t *testing.T, final bool) string {
	path := filepath.Join(t.TempDir(), "fault.db")
	w, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	c, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`,
		`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300) INSERT INTO t SELECT i, randomblob(1000) FROM c`,
	} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	var want string
	if err := w.QueryRow(`SELECT count(*) || ':' || group_concat(hex(v), '') FROM t`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	idx := &walCheckpointer{shm: path + "-shm"}
	defer func() {
		if idx.f != nil {
			idx.f.Close()
		}
	}()
	frames, _, ok := idx.walIndex()
	if !ok || frames < 60 {
		t.Fatalf("the WAL holds %d frames (%v), want over 60", frames, ok)
	}

	failed := 0
	ckptWriteFault = func(f bool) int32 {
		if f || !final {
			failed++
			return sqlite3.SQLITE_IOERR_WRITE
		}
		return sqlite3.SQLITE_OK
	}
	var busy, log, done int
	err = c.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
	ckptWriteFault = nil
	if failed == 0 {
		t.Fatal("no gathered write of the checkpoint went through the fault")
	}
	_, copied, _ := idx.walIndex()
	if err == nil {
		return fmt.Sprintf("the checkpoint whose write failed reported success (%d of %d frames copied, nBackfill %d)", done, log, copied)
	}
	if copied != 0 {
		return fmt.Sprintf("the checkpoint whose write failed (%v) published %d frames copied", err, copied)
	}

	// The store, reopened, holds everything; a checkpoint then copies it
	// all and the file alone is whole.
	w.Close()
	c.Close()
	r, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetMaxOpenConns(1)
	var got, okc string
	if err := r.QueryRow(`SELECT count(*) || ':' || group_concat(hex(v), '') FROM t`).Scan(&got); err != nil || got != want {
		return fmt.Sprintf("the reopened store lost rows (%v)", err)
	}
	if err := r.QueryRow(`PRAGMA integrity_check`).Scan(&okc); err != nil || okc != "ok" {
		return fmt.Sprintf("the reopened store: integrity_check = %q, %v", okc, err)
	}
	late := ckptLateFlushes.Load()
	if err := r.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil || busy != 0 || log != done {
		return fmt.Sprintf("the checkpoint after the failure: busy %d, %d of %d frames (%v)", busy, done, log, err)
	}
	if n := ckptLateFlushes.Load() - late; n != 0 {
		return fmt.Sprintf("%d checkpoints left gathered pages for CKPT_DONE", n)
	}
	o := openFileAlone(t, path)
	if err := o.QueryRow(`PRAGMA integrity_check`).Scan(&okc); err != nil || okc != "ok" {
		return fmt.Sprintf("the database file alone: integrity_check = %q, %v", okc, err)
	}
	if err := o.QueryRow(`SELECT count(*) || ':' || group_concat(hex(v), '') FROM t`).Scan(&got); err != nil || got != want {
		return fmt.Sprintf("the database file alone lost rows (%v)", err)
	}
	return ""
}
