package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestWALWritesGathered: the writer's WAL writes (two a frame) reach the
// file in few, large writes.
func TestWALWritesGathered(t *testing.T) {
	s := openTest(t)
	writes, flushes := walWrites.Load(), walFlushes.Load()
	fillRecords(t, s, 3000)
	writes, flushes = walWrites.Load()-writes, walFlushes.Load()-flushes
	if writes < 200 || flushes*10 > writes {
		t.Errorf("SQLite asked for %d WAL writes and %d reached the file, want over 200 gathered at least ten to one", writes, flushes)
	}
}

// TestWALBufferReadBack: a transaction larger than the page cache spills
// frames to the WAL and reads them back, rewrites pages it wrote before
// (frames overwritten in place) and commits; the writer and a connection
// that does not buffer both read what was written.
func TestWALBufferReadBack(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spill.db")
	w, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_journal_mode=WAL&_pragma=synchronous(FULL)&_pragma=cache_size(10)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)`,
		`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) INSERT INTO t SELECT i, randomblob(900), i FROM c`,
		`UPDATE t SET n = n * 2, v = randomblob(700) WHERE id % 3 = 0`,
		`UPDATE t SET n = n + 1 WHERE id % 7 = 0`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for i := int64(1); i <= 3000; i++ {
		n := i
		if i%3 == 0 {
			n *= 2
		}
		if i%7 == 0 {
			n++
		}
		want += n
	}
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, db := range map[string]*sql.DB{"writer": w, "reader": r} {
		var sum, rows int64
		if err := db.QueryRow(`SELECT sum(n), count(*) FROM t`).Scan(&sum, &rows); err != nil || sum != want || rows != 3000 {
			t.Errorf("%s: sum %d over %d rows (%v), want %d over 3000", name, sum, rows, err, want)
		}
		var ok string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Errorf("%s: integrity_check = %q, %v", name, ok, err)
		}
	}
}

// TestWALFlushFailure: a buffered write that fails fails its commit as the
// write itself would, nothing of that commit is kept, and the store goes
// on working.
func TestWALFlushFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nhisync.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	fillRecords(t, s, 100)
	walFlushFault = func() int32 { return sqlite3.SQLITE_IOERR_WRITE }
	err = s.Commit(t.Context(), &nhisync.Batch{Meta: map[string]string{"lost": strings.Repeat("v", 300000)}})
	walFlushFault = nil
	var ne *nhisync.Error
	if !errors.As(err, &ne) || ne.Code != nhisync.EUNAVAIL || !strings.Contains(ne.Message, "failed to read or write") {
		t.Fatalf("commit whose WAL write failed = %v, want EUNAVAIL naming the I/O error", err)
	}
	if err := s.Commit(t.Context(), &nhisync.Batch{Meta: map[string]string{"kept": "yes"}}); err != nil {
		t.Fatalf("commit after the failure: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Meta(t.Context(), "lost"); err != nil || v != "" {
		t.Errorf("meta lost = %d bytes, %v: the failed commit was kept", len(v), err)
	}
	if v, err := s.Meta(t.Context(), "kept"); err != nil || v != "yes" {
		t.Errorf("meta kept = %q, %v", v, err)
	}
	var records int
	var ok string
	if err := s.r.QueryRow(`SELECT count(*) FROM records`).Scan(&records); err != nil || records != 100 {
		t.Errorf("%d records, %v; want 100", records, err)
	}
	if err := s.r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}

// TestWALCommitVisibleUnsynced: with synchronous=NORMAL SQLite does not
// sync the WAL at commit, so nothing but the commit-frame flush puts a
// commit's buffered frames in the file before the wal-index names them;
// a connection that does not buffer reads every commit at once.
func TestWALCommitVisibleUnsynced(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "normal.db")
	w, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetMaxOpenConns(1)
	flushes := walFlushes.Load()
	for i := 1; i <= 50; i++ {
		if _, err := w.Exec(`INSERT INTO t VALUES (?, randomblob(3000))`, i); err != nil {
			t.Fatal(err)
		}
		var n int
		var sum sql.NullInt64
		if err := r.QueryRow(`SELECT count(*), sum(length(v)) FROM t`).Scan(&n, &sum); err != nil || n != i || sum.Int64 != int64(3000*i) {
			t.Fatalf("after commit %d the reader counts %d rows of %d bytes (%v), want %d of %d", i, n, sum.Int64, err, i, 3000*i)
		}
	}
	if got := walFlushes.Load() - flushes; got < 50 {
		t.Errorf("%d flushes for 50 commits, want one a commit at least", got)
	}
}

// TestWALRecoversUnsyncedRewrite: a transaction that outgrew its cache
// and overwrote frames it had spilled has SQLite recompute their
// checksums after its commit frame, whose header it writes last. With
// synchronous=NORMAL no sync flushes that header, and a process dying
// before the next write would leave the old one in the file: recovery
// would end the log before the commit and lose it. Here the process dies
// as the writer stands (its files copied, it still open, nothing
// checkpointed) and the copy recovers every row.
func TestWALRecoversUnsyncedRewrite(t *testing.T) {
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "spill.db")
	w, err := sql.Open("sqlite", "file:"+path+"?vfs="+walBufVFS+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(10)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) INSERT INTO t SELECT i, randomblob(900), i FROM c`,
		`UPDATE t SET n = n * 2, v = randomblob(700) WHERE id % 3 = 0`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	for _, name := range []string{"spill.db", "spill.db-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sql.Open("sqlite", "file:"+filepath.Join(crashed, "spill.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows, sum int64
	if err := r.QueryRow(`SELECT count(*), coalesce(sum(n), 0) FROM t`).Scan(&rows, &sum); err != nil || rows != 3000 || sum != 3000*3001/2+3*1000*1001/2 {
		t.Fatalf("recovered %d rows summing %d (%v), want 3000 summing %d", rows, sum, err, 3000*3001/2+3*1000*1001/2)
	}
	var ok string
	if err := r.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}
