package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/storetest"
)

// withWAL makes the bulk windows of test t keep their WAL, for the tests
// of such a window.
func withWAL(t *testing.T) {
	journallessWindows = false
	t.Cleanup(func() { journallessWindows = true })
}

// pragma returns what db's connection answers to PRAGMA name.
func pragma[T any](t *testing.T, db querier, name string) T {
	t.Helper()
	var v T
	if err := db.QueryRowContext(t.Context(), `PRAGMA `+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// journalMode is the writer's journal mode.
func journalMode(t *testing.T, s *Store) string { return pragma[string](t, s.w, "journal_mode") }

// exists reports whether a file is at name.
func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// copyFile copies the file at from to to (a crash image of the store).
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBulkWindowWithoutWAL: a store this process has to itself runs its
// window's commits without a WAL and without a sync, the store as it was
// kept beside it; readers see every commit at once; EndBulk puts WAL mode
// and synchronous=FULL back, removes the copy, publishes the window's
// checkpoints and closes the window as before.
func TestBulkWindowWithoutWAL(t *testing.T) {
	publish := filepath.Join(t.TempDir(), "checkpoints.txt")
	s, keys := notarized(t, publish)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0)}}); err != nil {
		t.Fatal(err)
	}
	beginBulk(t, s)
	if got := journalMode(t, s); got != "memory" {
		t.Errorf("writer's journal mode inside the window = %q, want memory", got)
	}
	if !exists(s.file + preWindowSuffix) {
		t.Errorf("no copy of the store beside it inside the window")
	}
	var sync int
	if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 0 {
		t.Errorf("writer synchronous inside the window = %d, %v; want OFF (0)", sync, err)
	}
	for i := range 3 {
		if err := s.Commit(ctx, windowBatch(t, s, 5, t0.Add(time.Duration(i+1)*time.Minute))); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil || n != 5*(i+1) {
			t.Fatalf("a reader counts %d records after commit %d (%v), want %d", n, i, err, 5*(i+1))
		}
	}
	if exists(s.file + "-wal") {
		t.Errorf("a WAL beside the store inside the window")
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if got := journalMode(t, s); got != "wal" {
		t.Errorf("writer's journal mode after the window = %q, want wal", got)
	}
	if exists(s.file + preWindowSuffix) {
		t.Errorf("the copy of the store is left after EndBulk")
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Errorf("writer synchronous after the window = %d, %v; want FULL (2)", sync, err)
	}
	if !hasRecordsKey(t, s) || stagedCount(t, s) != 0 {
		t.Errorf("after EndBulk: records_key %v, %d links staged; want the index, none", hasRecordsKey(t, s), stagedCount(t, s))
	}
	if _, ws, err := claimAt(s, t0.Add(time.Hour)); err != nil || len(ws) != 15 {
		t.Errorf("ClaimOutbox after EndBulk = %d writes, %v; want the window's 15", len(ws), err)
	}
	if got := latestSize(t, s); got != 7 {
		t.Errorf("LatestCheckpoint after EndBulk: size %d, want 7", got)
	}
	if rep, err := audit.Verify(ctx, s, keys.Signer.VerifierKey()); err != nil || !rep.OK {
		t.Errorf("verify after the window: %+v %v", rep, err)
	}
	// The checkpointer is back: commits after the window go to the WAL.
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(2 * time.Hour))}}); err != nil {
		t.Fatal(err)
	}
	if st := s.WALStatus(); st.Frames == 0 {
		t.Errorf("WALStatus after a commit past the window = %+v, want frames", st)
	}
}

// TestBulkWindowWithoutWALDies: a process that dies inside a window
// without a WAL leaves the store beside it; the next Open puts it back,
// so the store is as it was before the window (its audit entries, no
// record), and the next first pass opens a window again.
func TestBulkWindowWithoutWALDies(t *testing.T) {
	s, keys := notarized(t, "")
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0)}}); err != nil {
		t.Fatal(err)
	}
	beginBulk(t, s)
	if err := s.Commit(ctx, windowBatch(t, s, 5, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	// What a process killed now leaves: the database, half written, and
	// the copy.
	dir := t.TempDir()
	image := filepath.Join(dir, "nhisync.db")
	copyFile(t, s.file, image)
	copyFile(t, s.file+preWindowSuffix, image+preWindowSuffix)
	if err := os.WriteFile(image+preWindowTemp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.SetNotary(keys.Notary)
	if exists(image+preWindowSuffix) || exists(image+preWindowTemp) {
		t.Errorf("the copies of the store are left after Open")
	}
	var n int
	if err := again.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM links_stage) + (SELECT count(*) FROM outbox)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("records, staged links and writes once reopened: %d, %v; want none", n, err)
	}
	if got := latestSize(t, again); got != 1 {
		t.Errorf("LatestCheckpoint once reopened: size %d, want 1 (before the window)", got)
	}
	if rep, err := audit.Verify(ctx, again, keys.Signer.VerifierKey()); err != nil || !rep.OK {
		t.Errorf("verify once reopened: %+v %v", rep, err)
	}
	beginBulk(t, again)
	if err := again.Commit(ctx, windowBatch(t, again, 5, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := again.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ws, err := claimAt(again, t0.Add(time.Hour)); err != nil || len(ws) != 5 {
		t.Errorf("ClaimOutbox after the second window = %d writes, %v; want 5", len(ws), err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBulkWindowWithoutWALNotAlone: with another process having the store
// open (here another Store on it) the window keeps its WAL, as before,
// and works; the other store reads it.
func TestBulkWindowWithoutWALNotAlone(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	other, err := Open(ctx, s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	beginBulk(t, s)
	if got := journalMode(t, s); got != "wal" {
		t.Errorf("writer's journal mode inside the window beside another store = %q, want wal", got)
	}
	if exists(s.file + preWindowSuffix) {
		t.Errorf("a copy of the store inside a window with a WAL")
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.Commit(ctx, windowBatch(t, s, 5, t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil || n != 5 {
		t.Errorf("the other store counts %d records, %v; want 5", n, err)
	}
}

// TestBulkWindowWithoutWALReaderHolds: a reader of this store holding the
// file when the window opens keeps it in WAL mode, as before.
func TestBulkWindowWithoutWALReaderHolds(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_schema`)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("sqlite_schema is empty")
	}
	beginBulk(t, s)
	rows.Close()
	if got := journalMode(t, s); got != "wal" {
		t.Errorf("writer's journal mode inside the window beside a reader = %q, want wal", got)
	}
	if exists(s.file + preWindowSuffix) {
		t.Errorf("a copy of the store left by a window that kept its WAL")
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBulkWindowWithoutWALSyncFails: when EndBulk cannot sync a window
// without a WAL, it fails EINTERNAL saying so, and the store refuses
// commits and claims; opening it alone again puts it back as it was
// before the window.
func TestBulkWindowWithoutWALSyncFails(t *testing.T) {
	for _, step := range []string{"wal", "sync"} {
		t.Run(step, func(t *testing.T) {
			s, _ := notarized(t, "")
			ctx := t.Context()
			t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			beginBulk(t, s)
			if err := s.Commit(ctx, windowBatch(t, s, 5, t0)); err != nil {
				t.Fatal(err)
			}
			fail := func() error { return errors.New("input/output error") }
			if step == "wal" {
				journallessFault = func(at string) error {
					if at == "wal" {
						return fail()
					}
					return nil
				}
			} else {
				syncWindowFault = fail
			}
			defer func() {
				journallessFault = func(string) error { return nil }
				syncWindowFault = func() error { return nil }
			}()
			err := s.EndBulk(ctx)
			if msg := nhisync.ErrorMessage(err); nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(msg, "input/output error") || !strings.Contains(msg, "restart nhisync") {
				t.Fatalf("EndBulk with a failing sync = %v; want EINTERNAL naming it, saying to restart", err)
			}
			journallessFault = func(string) error { return nil }
			syncWindowFault = func() error { return nil }
			if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Minute))}}); nhisync.ErrorCode(err) != nhisync.EINTERNAL {
				t.Errorf("Commit after the failed sync = %v, want EINTERNAL", err)
			}
			if _, ws, err := claimAt(s, t0.Add(time.Hour)); err == nil || len(ws) != 0 {
				t.Errorf("ClaimOutbox after the failed sync = %d writes, %v; want none, an error", len(ws), err)
			}
			again := reopenTest(t, s)
			var n int
			if err := again.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil || n != 0 {
				t.Errorf("records once reopened: %d, %v; want none (the window discarded)", n, err)
			}
			if open, err := again.BeginBulk(ctx); err != nil || !open {
				t.Errorf("BeginBulk once reopened = %v, %v; want true", open, err)
			}
		})
	}
}

// TestBulkWindowWithoutWALHoldsTokenWrites: a token created or revoked
// while a window runs without a WAL waits for EndBulk (the window's
// writes are lost if the process dies before it, and a revoked token
// must not come back), and is written, durably, once it returns; a write
// whose context ends first fails and writes nothing.
func TestBulkWindowWithoutWALHoldsTokenWrites(t *testing.T) {
	s, _ := notarized(t, "")
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hash := make([]byte, 32)
	if err := s.CreateToken(ctx, &nhisync.Token{Name: "old", Role: nhisync.RoleViewer, Hash: hash, Created: t0}); err != nil {
		t.Fatal(err)
	}
	beginBulk(t, s)
	if !s.journalless {
		t.Fatal("the window runs with a WAL; this test needs one without")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.RevokeToken(short, "old"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RevokeToken inside the window with a short deadline = %v, want it to wait and fail with the deadline", err)
	}
	done := make(chan error, 2)
	go func() {
		other := make([]byte, 32)
		other[0] = 1
		done <- s.CreateToken(ctx, &nhisync.Token{Name: "new", Role: nhisync.RoleViewer, Hash: other, Created: t0})
	}()
	go func() { done <- s.RevokeToken(ctx, "old") }()
	select {
	case err := <-done:
		t.Fatalf("a token write returned inside the window (%v); want it held until EndBulk", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.Commit(ctx, windowBatch(t, s, 5, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("token write after EndBulk: %v", err)
		}
	}
	toks, err := s.Tokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].Name != "new" {
		t.Errorf("tokens after the window = %v, %v; want new only", toks, err)
	}
}

// TestBulkWindowWithoutWALMovesOnce: in a window without a WAL, EndBulk
// moves the staged links and builds links' and records' indexes before
// the WAL comes back, so none of their pages goes through it (the WAL
// holds only the commit deleting the window's mark); a process dying in
// the middle of the move leaves the copy of the store, which the next
// Open puts back, empty again.
func TestBulkWindowWithoutWALMovesOnce(t *testing.T) {
	const records = 3000
	s := openTest(t)
	ctx := t.Context()
	beginBulk(t, s)
	stageLinks(t, s, records)
	var image string
	closeWindowFault = func(step string, _ *sql.Conn) error {
		if step == "moved" {
			// What a process killed now leaves.
			image = filepath.Join(t.TempDir(), "nhisync.db")
			copyFile(t, s.file, image)
			copyFile(t, s.file+preWindowSuffix, image+preWindowSuffix)
		}
		return nil
	}
	defer func() { closeWindowFault = func(string, *sql.Conn) error { return nil } }()
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	var moved, pages int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&moved); err != nil || moved != 3*records {
		t.Fatalf("links after EndBulk: %d, %v; want %d", moved, err, 3*records)
	}
	if err := s.r.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if st := s.WALStatus(); st.Frames > 8 {
		t.Errorf("the WAL holds %d frames after EndBulk (the store has %d pages), want the mark's commit only", st.Frames, pages)
	}
	if !hasRecordsKey(t, s) || stagedCount(t, s) != 0 {
		t.Errorf("after EndBulk: records_key %v, %d links staged; want the index, none", hasRecordsKey(t, s), stagedCount(t, s))
	}
	if image == "" {
		t.Fatal("EndBulk never reached the move's step")
	}
	again, err := Open(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var n int
	if err := again.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM links) + (SELECT count(*) FROM links_stage)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("records and links in the store a death in the move left, once reopened: %d, %v; want none", n, err)
	}
	var ok string
	if err := again.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check once reopened = %q, %v", ok, err)
	}
}

// TestBulkWindowWithoutWALWaitsForReaders: inside a window without a WAL
// the file has rollback-mode locks, and this process's readers and the
// window's transactions wait for each other as long as the other takes
// (windowWait), not busyTimeout: a commit waits for a reader still
// reading, a reader for the merge that closes the window, and the
// window's last steps (its records' index, its return to WAL mode) for
// a reader still reading. busyTimeout is cut to 50 ms here, each hold
// lasts ten times that; with busyTimeout as the wait (the code before),
// the commit and the reader fail "database is locked", and EndBulk fails
// leaving the store refusing commits until reopened.
func TestBulkWindowWithoutWALWaitsForReaders(t *testing.T) {
	const hold = 500 * time.Millisecond
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = 50 * time.Millisecond
	// A merge that spills its pages to the file holds it exclusively.
	defer func(kib int) { sortCacheKiB = kib }(sortCacheKiB)
	sortCacheKiB = 16
	s := openTest(t)
	ctx := t.Context()
	bulkCommit(t, s, 200)
	if got := journalMode(t, s); got != "memory" {
		t.Fatalf("journal mode inside the window = %q, want memory", got)
	}

	// reading holds the file as a served store's scan does, for hold.
	reading := func() <-chan error { return holdingRead(ctx, s, func() { time.Sleep(hold) }) }
	// A commit beside a reader.
	first, err := s.NewIDs(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	more := storetest.BulkBatch(first, 200)
	read := reading()
	began := time.Now()
	if err := s.Commit(ctx, more); err != nil {
		t.Fatalf("a window's commit beside a reader: %v; want it to wait for the reader", err)
	}
	if err := <-read; err != nil {
		t.Fatalf("the reader beside the commit: %v", err)
	}
	if waited := time.Since(began); waited < hold/2 {
		t.Errorf("the commit took %v beside a reader holding the file %v: it did not wait", waited, hold)
	}

	// A reader during the merge, and a reader still reading when the
	// window goes back to WAL mode. Enough links that the merge spills
	// its pages to the file (and holds it exclusively) before it commits.
	for range 10 {
		first, err := s.NewIDs(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, storetest.BulkBatch(first, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	var during chan error
	var after <-chan error
	closeWindowFault = func(step string, _ *sql.Conn) error {
		if step == "moved" {
			during = make(chan error, 1)
			go func(done chan<- error) {
				var n int
				began := time.Now()
				err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n)
				if waited := time.Since(began); err == nil && waited < hold/2 {
					err = fmt.Errorf("it read in %v while the merge held the file %v: the merge did not hold it", waited, hold)
				}
				done <- err
			}(during)
			time.Sleep(hold)
		}
		if step == "keying" {
			after = reading()
		}
		return nil
	}
	defer func() { closeWindowFault = func(string, *sql.Conn) error { return nil } }()
	if err := s.EndBulk(ctx); err != nil {
		t.Fatalf("EndBulk with readers beside it: %v", err)
	}
	if during == nil || after == nil {
		t.Fatal("EndBulk never reached the move's and the keying's steps")
	}
	if err := <-during; err != nil {
		t.Errorf("a reader during the merge: %v; want it to wait for the merge", err)
	}
	if err := <-after; err != nil {
		t.Errorf("a reader while the window closed: %v", err)
	}
	if got := journalMode(t, s); got != "wal" {
		t.Errorf("journal mode after EndBulk = %q, want wal", got)
	}
	var wait int
	if err := s.w.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&wait); err != nil || wait != int(busyTimeout.Milliseconds()) {
		t.Errorf("the writer's busy_timeout after the window = %d, %v; want %d", wait, err, busyTimeout.Milliseconds())
	}
}

// TestBulkWindowWithoutWALReadersOutwait: a read of this process that
// holds the file longer than windowWait as the window ends fails EndBulk
// saying so (not that a disk failed), and the store refuses commits, as
// when the window cannot sync; opening it again puts it back as it was
// before the window.
func TestBulkWindowWithoutWALReadersOutwait(t *testing.T) {
	defer func(d time.Duration) { windowWait = d }(windowWait)
	windowWait = 100 * time.Millisecond
	s := openTest(t)
	ctx := t.Context()
	bulkCommit(t, s, 50)
	if got := journalMode(t, s); got != "memory" {
		t.Fatalf("journal mode inside the window = %q, want memory", got)
	}
	release := make(chan struct{})
	var held <-chan error
	released := false
	letGo := func() {
		if !released && held != nil {
			released = true
			close(release)
			if err := <-held; err != nil {
				t.Errorf("the reader: %v", err)
			}
		}
	}
	defer letGo()
	closeWindowFault = func(step string, _ *sql.Conn) error {
		if step == "keying" {
			held = holdingRead(ctx, s, func() { <-release })
		}
		return nil
	}
	defer func() { closeWindowFault = func(string, *sql.Conn) error { return nil } }()
	err := s.EndBulk(ctx)
	if err == nil || !strings.Contains(err.Error(), "reads of this process") || strings.Contains(err.Error(), "fix the disk") {
		t.Fatalf("EndBulk while a read outwaits the window: %v; want it to say reads held the store, not that the disk failed", err)
	}
	if nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Errorf("EndBulk's error code = %q, want %q", nhisync.ErrorCode(err), nhisync.EINTERNAL)
	}
	first, err := s.NewIDs(ctx, 10)
	if err == nil {
		err = s.Commit(ctx, storetest.BulkBatch(first, 10))
	}
	if err == nil {
		t.Error("a commit after the window failed to end succeeded; want it refused")
	}
	letGo()
	again := reopenTest(t, s)
	var n int
	if err := again.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil || n != 0 {
		t.Errorf("records once reopened: %d, %v; want none (the window discarded)", n, err)
	}
	if got := journalMode(t, again); got != "wal" {
		t.Errorf("journal mode once reopened = %q, want wal", got)
	}
}

// holdingRead starts a read of s that holds the file, as a served store's
// scan does, until hold returns; it returns once the read holds the file,
// and the read's error comes on the channel it returns.
func holdingRead(ctx context.Context, s *Store, hold func()) <-chan error {
	started, done := make(chan struct{}), make(chan error, 1)
	go func() {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err == nil {
			var n int
			err = tx.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n)
			close(started)
			hold()
			err = errors.Join(err, tx.Rollback())
		} else {
			close(started)
		}
		done <- err
	}()
	<-started
	return done
}
