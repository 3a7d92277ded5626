package sqlite

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestBulkAsyncReadersWait: the writer's gathered page writes of a bulk
// window without a WAL go out on a goroutine of their own, and a reader
// of the same file (another connection) that reads while they are
// queued waits for them: it sees every row the commits before wrote.
func TestBulkAsyncReadersWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the window's writes are queued on Linux only")
	}
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	beginBulk(t, s)
	// Slow writes keep the queue from draining before the reader reads.
	bulkWriteFault = func(off, n int64) int32 { time.Sleep(2 * time.Millisecond); return sqlite3.SQLITE_OK }
	defer func() { bulkWriteFault = nil }()
	writes, waits := bulkDBWrites.Load(), bulkAsyncWaits.Load()
	for i := range 3 {
		if err := s.Commit(ctx, windowBatch(t, s, 400, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		var recs int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&recs); err != nil || recs != 400*(i+1) {
			t.Fatalf("a reader after commit %d counts %d records (%v), want %d", i, recs, err, 400*(i+1))
		}
	}
	if bulkDBWrites.Load() == writes {
		t.Fatal("the window's commits queued no write: this test tests nothing")
	}
	if bulkAsyncWaits.Load() == waits {
		t.Error("no reader waited for the queued writes")
	}
	bulkWriteFault = nil
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if n := bulkAsyncOn.Load(); n != 0 {
		t.Errorf("%d writer goroutines left after the window, want none", n)
	}
	s = reopenTest(t, s)
	var check string
	if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check after the window = %q, %v", check, err)
	}
}

// TestBulkAsyncWriteFailsTheWindow: once a queued page write of the
// window fails, the window cannot end: a later commit or EndBulk fails,
// EndBulk saying so and to restart, the store commits nothing more, and
// the store opened again is as it was before the window (its copy put
// back), not a file missing the failed pages. A writer goroutine that
// forgot the failure (bulkAsyncForget) would let the window end without
// them: the test must see that loss.
func TestBulkAsyncWriteFailsTheWindow(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the window's writes are queued on Linux only")
	}
	catchesUnsafe(t, bulkAsyncFaultScenario, &bulkAsyncForget, "the failed write forgotten")
}

// catchesUnsafe runs scenario, which says what went wrong ("" if
// nothing), and fails t unless it passes as the code is and fails with
// *unsafe (a test hook that turns an unsafe design on) set: a test that
// passes either way catches nothing.
func catchesUnsafe(t *testing.T, scenario func(*testing.T) string, unsafe *bool, what string) {
	t.Helper()
	if bad := scenario(t); bad != "" {
		t.Fatal(bad)
	}
	*unsafe = true
	defer func() { *unsafe = false }() // however the scenario ends
	bad := scenario(t)
	if bad == "" {
		t.Fatalf("with %s the scenario still went right: this test catches nothing", what)
	}
	t.Logf("with %s: %s", what, bad)
}

// bulkAsyncFaultScenario commits in a window whose writes fail from the
// second commit on, ends the window, opens the store again and says what
// went wrong, "" if nothing.
func bulkAsyncFaultScenario(t *testing.T) string {
	ctx := t.Context()
	// Not openTest: closing a store whose window failed fails too (its
	// file is poisoned until then), once, here.
	s, err := Open(ctx, filepath.Join(t.TempDir(), "data", "nhisync.db"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	beginBulk(t, s)
	if err := s.Commit(ctx, windowBatch(t, s, 300, t0)); err != nil {
		t.Fatal(err)
	}
	var failed bool
	bulkWriteFault = func(off, n int64) int32 { failed = true; return sqlite3.SQLITE_IOERR_WRITE }
	// Unset however the scenario ends: left set, it would fail every
	// later test's window.
	defer func() { bulkWriteFault = nil }()
	var bad []string
	var commitErr error
	for i := 1; i < 4 && commitErr == nil; i++ {
		// The failed write is on the writer goroutine: the next call on
		// the store, asking for IDs or committing, fails once it is in.
		var b *nhisync.Batch
		if b, commitErr = windowBatchOr(ctx, s, 300, t0.Add(time.Duration(i)*time.Minute)); commitErr == nil {
			commitErr = s.Commit(ctx, b)
		}
	}
	err = s.EndBulk(ctx)
	bulkWriteFault = nil
	if !failed {
		t.Fatal("no queued write failed: the scenario tests nothing")
	}
	if msg := nhisync.ErrorMessage(err); nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(msg, "restart nhisync") {
		bad = append(bad, "EndBulk after a failed write = "+msg+"; want EINTERNAL saying to restart")
	}
	if err == nil {
		if cerr := s.Commit(ctx, windowBatch(t, s, 1, t0.Add(time.Hour))); cerr != nil {
			bad = append(bad, "commit after the window: "+cerr.Error())
		}
	} else if cerr := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(t0.Add(time.Hour))}}); nhisync.ErrorCode(cerr) != nhisync.EINTERNAL {
		bad = append(bad, "commit after the failed window succeeded or failed otherwise")
	}
	path := s.path
	if cerr := s.Close(); err != nil && cerr == nil {
		bad = append(bad, "Close after the failed window succeeded")
	}
	again, oerr := Open(ctx, path)
	if oerr != nil {
		return strings.Join(append(bad, "open again: "+oerr.Error()), "; ")
	}
	defer again.Close()
	var check string
	if err := again.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		bad = append(bad, "integrity_check once opened again = "+check)
	}
	want := 0 // the window discarded
	if err == nil {
		want = 1201 // every commit of the window, and the one after
	}
	var recs int
	if err := again.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&recs); err != nil || recs != want {
		bad = append(bad, fmt.Sprintf("once opened again the store holds %d records (%v), want %d", recs, err, want))
	}
	if len(bad) == 0 {
		return ""
	}
	return strings.Join(bad, "; ")
}
