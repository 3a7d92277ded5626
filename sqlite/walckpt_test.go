package sqlite

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointReadAhead: a store's checkpoint reads its frames mostly
// from the read-ahead, and what it copies is what was committed.
func TestCheckpointReadAhead(t *testing.T) {
	s := storeOfCommits(t)
	reads, preads, ahead := ckptReads.Load(), ckptPreads.Load(), ckptReadAhead.Load()
	checkpointOnce(t, s)
	reads, preads, ahead = ckptReads.Load()-reads, ckptPreads.Load()-preads, ckptReadAhead.Load()-ahead
	t.Logf("%d frames read in %d reads of the WAL, %d bytes read ahead", reads, preads, ahead)
	if ahead > reads*4096*11/10 {
		t.Errorf("the checkpoint read %d bytes ahead for %d frames: the read-ahead reads past what the checkpoint reads", ahead, reads)
	}
	if reads < 100 || preads*4 > reads {
		t.Errorf("the checkpoint read %d frames in %d reads of the WAL, want over 100 in at most a quarter as many", reads, preads)
	}
	// What the database file holds alone is the store.
	copiedWhole(t, s)
}

// storeOfCommits is a test store with four commits of 200 records each
// (800 in all) in its WAL, not yet checkpointed.
func storeOfCommits(t *testing.T) *Store {
	t.Helper()
	s := openTest(t)
	for range 4 {
		if err := s.Commit(t.Context(), fewPages(t, s, 200)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkpointOnce runs s's checkpointer once and fails the test if it
// failed.
func checkpointOnce(t *testing.T, s *Store) {
	t.Helper()
	s.ckpt.checkpoint()
	if s.ckpt.failures.Load() != 0 {
		t.Fatal(*s.ckpt.lastErr.Load())
	}
}

// copiedWhole checks that the checkpoint copied every frame of s's WAL
// and that the database file alone holds storeOfCommits' 800 records.
func copiedWhole(t *testing.T, s *Store) {
	t.Helper()
	frames, copied := walFrames(t, s)
	if frames != copied {
		t.Fatalf("%d of %d frames copied", copied, frames)
	}
	fileAloneHolds(t, s.file, 800)
}

// TestReadAheadEndsWithItsCheckpoint: the WAL starts over between two
// checkpoints, its first frames rewritten with other pages; the second
// checkpoint must read them again, not what the first read ahead. With
// the read-ahead kept past its checkpoint (readAheadLeak) the same
// scenario copies stale pages, which this test must see.
func TestReadAheadEndsWithItsCheckpoint(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	if bad := readAheadScenario(t, false); bad != "" {
		t.Fatal(bad)
	}
	readAheadLeak = true
	bad := readAheadScenario(t, true)
	readAheadLeak = false
	if bad == "" {
		t.Fatal("with the read-ahead kept past its checkpoint the second checkpoint copied the right pages: this test catches nothing")
	}
	t.Logf("a read-ahead kept past its checkpoint: %s", bad)
}

// readAheadScenario runs the scenario and says what is wrong with the
// database file the second checkpoint left, "" if nothing.
func readAheadScenario(t *testing.T, leak bool) string {
	dir := t.TempDir()
	path := filepath.Join(dir, "ra.db")
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
	checkpoint := func() {
		var busy, log, done int
		if err := c.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil || busy != 0 || log != done {
			t.Fatalf("checkpoint: busy %d, %d of %d frames (%v)", busy, done, log, err)
		}
	}
	// One transaction of a few frames, page 1's first: the first
	// checkpoint reads ahead from frame 1 to the end of the WAL.
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`,
		`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20) INSERT INTO t SELECT i, randomblob(1000) FROM c`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	reads, preads := ckptReads.Load(), ckptPreads.Load()
	checkpoint()
	if reads, preads = ckptReads.Load()-reads, ckptPreads.Load()-preads; reads < 5 || preads != 1 {
		t.Fatalf("the first checkpoint read %d frames in %d reads of the WAL, want them all in one", reads, preads)
	}
	// The WAL starts over: the update's frames (pages past 1, 2) go
	// where the first checkpoint's were.
	if _, err := w.Exec(`UPDATE t SET v = randomblob(1000)`); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]byte{}
	rows, err := w.Query(`SELECT id, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		want[id] = v
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	checkpoint()

	// The database file alone, as the second checkpoint left it.
	r := openFileAlone(t, path)
	var ok string
	if err := r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		if err != nil {
			return "integrity_check: " + err.Error()
		}
		return "integrity_check: " + ok
	}
	got := 0
	rows, err = r.Query(`SELECT id, v FROM t`)
	if err != nil {
		return "reading the copy: " + err.Error()
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return "reading the copy: " + err.Error()
		}
		if !bytes.Equal(v, want[id]) {
			return "a row holds what it held before the update"
		}
		got++
	}
	if err := rows.Err(); err != nil {
		return "reading the copy: " + err.Error()
	}
	if got != len(want) {
		return "rows missing"
	}
	return ""
}

// TestReadAheadUnderCommits: checkpoints run back to back with a writer
// committing random updates and appends beside them, and a reader holding
// an old snapshot now and then (partial checkpoints, frames read ahead
// past what may be copied, the WAL starting over between checkpoints);
// the database file alone, once all is copied, holds what the writer
// committed.
func TestReadAheadUnderCommits(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "busy.db")
	w, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(0)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	c, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetMaxOpenConns(1)

	stop := make(chan struct{})
	done := make(chan error, 1)
	reads, pageWrites, late := ckptReads.Load(), ckptPageWrites.Load(), ckptLateFlushes.Load()
	go func() {
		var err error
		for n := 0; err == nil; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			var busy, log, copied int
			err = c.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
			if n%7 == 3 {
				// A reader on the snapshot of now, for a while.
				tx, terr := r.Begin()
				if terr == nil {
					var k int
					terr = tx.QueryRow(`SELECT count(*) FROM t`).Scan(&k)
					time.Sleep(3 * time.Millisecond)
					tx.Rollback()
				}
				if err == nil {
					err = terr
				}
			}
		}
		done <- err
	}()
	for i := range 300 {
		q := `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20) INSERT INTO t (v, n) SELECT randomblob(700), i FROM c`
		if i%3 == 1 {
			q = `UPDATE t SET v = randomblob(500), n = n + 1 WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 30)`
		}
		if _, err := w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ckptReads.Load() == reads {
		t.Fatal("no checkpoint read through the read-ahead")
	}
	if ckptPageWrites.Load() == pageWrites {
		t.Fatal("no checkpoint gathered its page writes")
	}
	if n := ckptLateFlushes.Load() - late; n != 0 {
		t.Fatalf("%d checkpoints left gathered pages for CKPT_DONE", n)
	}
	var want string
	if err := w.QueryRow(`SELECT count(*) || ':' || sum(n) || ':' || sum(length(v)) FROM t`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	var all string
	if err := w.QueryRow(`SELECT group_concat(hex(v), '') FROM (SELECT v FROM t ORDER BY id)`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	var busy, log, copied int
	if err := c.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &log, &copied); err != nil || busy != 0 || log != copied {
		t.Fatalf("last checkpoint: busy %d, %d of %d frames (%v)", busy, copied, log, err)
	}
	o := openFileAlone(t, path)
	var ok, got, gotAll string
	if err := o.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	if err := o.QueryRow(`SELECT count(*) || ':' || sum(n) || ':' || sum(length(v)) FROM t`).Scan(&got); err != nil || got != want {
		t.Fatalf("the database file holds %q (%v), the writer committed %q", got, err, want)
	}
	if err := o.QueryRow(`SELECT group_concat(hex(v), '') FROM (SELECT v FROM t ORDER BY id)`).Scan(&gotAll); err != nil || gotAll != all {
		t.Fatalf("the database file's values differ from the writer's (%v)", err)
	}
}

// fileAloneHolds checks that the database file at path, copied alone
// (without its WAL), holds records records and passes integrity_check.
func fileAloneHolds(t *testing.T, path string, records int) {
	t.Helper()
	o := openFileAlone(t, path)
	var n int
	var ok string
	if err := o.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil || n != records {
		t.Errorf("the checkpointed database holds %d records (%v), want %d", n, err, records)
	}
	if err := o.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}

// openFileAlone opens a copy of the database file at path without its WAL
// or wal-index: what the checkpoints copied into the file, nothing else.
func openFileAlone(t *testing.T, path string) *sql.DB {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+cp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
