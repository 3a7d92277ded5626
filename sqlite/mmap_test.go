package sqlite

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// writerMapSize returns the writer's PRAGMA mmap_size.
func writerMapSize(t *testing.T, s *Store) int64 { return pragma[int64](t, s.w, "mmap_size") }

// fileMapped reports whether file is mapped into the process (Linux).
func fileMapped(t *testing.T, file string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(maps)) {
		if strings.HasSuffix(strings.TrimSpace(line), " "+file) {
			return true
		}
	}
	return false
}

// TestWriterMapsWhileDeciding: the writer reads the store through a
// memory map (writermap.go) from the first load for a commit until it has
// been idle for idleCheckpoint, never inside the bulk window; the load
// itself reads on a reader, and readers never map.
func TestWriterMapsWhileDeciding(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	linux := runtime.GOOS == "linux"
	if n := writerMapSize(t, s); n != 0 {
		t.Fatalf("writer's mmap_size = %d after Open, want 0", n)
	}
	b := bulkCommit(t, s, 200)
	ids := make([]int64, len(b.Records))
	for i, r := range b.Records {
		ids[i] = r.ID
	}
	// Inside the window a load for a commit maps nothing.
	if _, err := s.LoadRecords(nhisync.ForCommit(ctx), ids[:1]); err != nil {
		t.Fatal(err)
	}
	if n := writerMapSize(t, s); n != 0 {
		t.Fatalf("writer's mmap_size = %d after a load inside the bulk window, want 0", n)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	// The idle timer of the window's last commits runs out first, so that
	// only the load's own clock can unmap below.
	time.Sleep(idleCheckpoint + 500*time.Millisecond)
	plain, err := s.LoadRecords(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := writerMapSize(t, s); n != 0 {
		t.Fatalf("writer's mmap_size = %d after a load on a reader, want 0", n)
	}
	mapped, err := s.LoadRecords(nhisync.ForCommit(ctx), ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := writerMapSize(t, s); n <= 0 || n > writerMapBytes {
		t.Fatalf("writer's mmap_size = %d after a load for a commit, want (0, %d]", n, writerMapBytes)
	}
	if linux && !fileMapped(t, s.file) {
		t.Errorf("the store file %s is not mapped after a load for a commit", s.file)
	}
	if len(mapped) != len(plain) {
		t.Fatalf("loaded %d records for a commit, %d plainly", len(mapped), len(plain))
	}
	for i := range plain {
		if mapped[i].ID != plain[i].ID || len(mapped[i].Links) != 1 || mapped[i].Links[0].ExternalID != plain[i].Links[0].ExternalID {
			t.Fatalf("record %d loaded for a commit: %+v; plainly: %+v", i, mapped[i], plain[i])
		}
	}
	if n := pragma[int64](t, s.r, "mmap_size"); n != 0 {
		t.Fatalf("reader's mmap_size = %d, want 0", n)
	}
	// idleCheckpoint without a commit after the load that mapped (a pass
	// that failed before committing), and after a commit: the map goes.
	waitUnmapped := func(after string) {
		t.Helper()
		deadline := time.Now().Add(idleCheckpoint + 5*time.Second)
		for s.writerMapped.Load() || (linux && fileMapped(t, s.file)) {
			if time.Now().After(deadline) {
				t.Fatalf("the writer still maps the store %v after %s (mmap_size %d)", idleCheckpoint+5*time.Second, after, writerMapSize(t, s))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := writerMapSize(t, s); n != 0 {
			t.Fatalf("writer's mmap_size = %d once idle after %s, want 0", n, after)
		}
	}
	waitUnmapped("the load that mapped it")
	if _, err := s.LoadRecords(nhisync.ForCommit(ctx), ids[:1]); err != nil {
		t.Fatal(err)
	}
	if !s.writerMapped.Load() {
		t.Fatal("a load for a commit after the map went did not map again")
	}
	if err := s.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{entryAt(time.Now())}}); err != nil {
		t.Fatal(err)
	}
	waitUnmapped("its last commit")
}

// TestLockOrderBesideCommit: a commit holds the writer's connection while
// it asks whether the bulk window is open (inBulk). Whatever else waits
// for that connection must not hold what the commit needs for it: mapping
// the writer for a load (which a pass's next read does while its commit
// runs) and unmapping it once idle take the connection holding no lock,
// and a token written (durably), or the window opening, hold bulkMu while
// they wait, so inBulk takes no lock. Each waits beside a commit in flight
// that still learns whether the window is open, and ends once it has.
func TestLockOrderBesideCommit(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	fillRecords(t, s, 10)
	// commitInFlight holds the writer's connection in a write transaction
	// while fn runs beside it, waits until fn waits for the connection,
	// checks that the commit's inBulk returns, then ends the transaction
	// and waits for fn.
	commitInFlight := func(what string, fn func()) {
		t.Helper()
		conn, err := s.w.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Ended however the check ends, so that fn and a stuck inBulk
		// end too, and the test fails instead of hanging.
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(ctx, "ROLLBACK")
		waits := s.w.Stats().WaitCount
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn()
		}()
		for deadline := time.Now().Add(10 * time.Second); s.w.Stats().WaitCount == waits; {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not wait for the writer's connection", what)
			}
			time.Sleep(time.Millisecond)
		}
		inBulk := make(chan struct{})
		go func() {
			defer close(inBulk)
			s.inBulk()
		}()
		select {
		case <-inBulk:
		case <-time.After(10 * time.Second):
			t.Fatalf("a commit in flight could not learn whether the window is open while %s waited for the writer", what)
		}
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		<-done
	}
	commitInFlight("a load for a commit", func() {
		if _, err := s.LoadRecords(nhisync.ForCommit(ctx), []int64{1}); err != nil {
			t.Error(err)
		}
	})
	if !s.writerMapped.Load() {
		t.Fatal("the load did not map the writer once the commit ended")
	}
	commitInFlight("the idle unmap", s.unmapIdleWriter)
	if s.writerMapped.Load() {
		t.Fatal("the idle unmap did not unmap the writer once the commit ended")
	}
	commitInFlight("a token being created", func() {
		if err := s.CreateToken(ctx, &nhisync.Token{Name: "ci", Role: nhisync.RoleViewer, Hash: make([]byte, 32), Created: time.Now()}); err != nil {
			t.Error(err)
		}
	})
	commitInFlight("a token being revoked", func() {
		if err := s.RevokeToken(ctx, "ci"); err != nil {
			t.Error(err)
		}
	})
	commitInFlight("the bulk window opening", func() {
		if opened, err := s.BeginBulk(ctx); err != nil || opened {
			t.Errorf("BeginBulk into a store with records = %v, %v; want false, nil", opened, err)
		}
	})
}
