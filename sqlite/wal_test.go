package sqlite

import (
	"os"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// The writer checkpoints the WAL every 65536 pages, not SQLite's default
// 1000, so a pass's commits copy a rewritten page back once per
// checkpoint rather than once every few commits (walCheckpointPages).
func TestWriterCheckpointsWALEvery65536Pages(t *testing.T) {
	s := openTest(t)
	var pages int
	if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != 65536 {
		t.Fatalf("wal_autocheckpoint = %d, want 65536", pages)
	}
}

// TestIdleCheckpoint: once commits stop, the WAL is copied back into the
// database (whose file then grows: the schema and the commit were only in
// the WAL).
func TestIdleCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the idle checkpoint")
	}
	s := openTest(t)
	ctx := t.Context()
	if err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	// The database file grows when the checkpoint copies the commit in.
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	before := fi.Size()
	deadline := time.Now().Add(idleCheckpoint + 10*time.Second)
	for {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint %v after the last commit: database still %d bytes", idleCheckpoint+10*time.Second, fi.Size())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
