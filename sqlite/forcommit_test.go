package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// TestLoadRecordsForCommitBesideCommit: LoadRecords of records marked for
// a commit (nhisync.ForCommit) reads on a reader, not on the writer's
// connection (forCommitReads): once the first such load has mapped the
// store into the writer, a load while a commit holds the writer returns
// without waiting for it, and loads what an unmarked load does.
func TestLoadRecordsForCommitBesideCommit(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	fillRecords(t, s, 300)
	ids := make([]int64, 0, 300)
	for id := range int64(300) {
		ids = append(ids, id+1)
	}
	plain, err := s.LoadRecords(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadRecords(nhisync.ForCommit(ctx), ids[:1]); err != nil {
		t.Fatal(err)
	}
	if !s.writerMapped.Load() {
		t.Fatal("a load for a commit did not map the store into the writer")
	}
	// The writer's one connection, inside a write transaction: a commit
	// in flight.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	// Were the load to read on the writer, it would wait for the
	// transaction above until this deadline.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	marked, err := s.LoadRecords(nhisync.ForCommit(wait), ids)
	if err != nil {
		t.Fatalf("a load for a commit while the writer commits: %v", err)
	}
	if len(plain) != 300 || len(marked) != len(plain) {
		t.Fatalf("loaded %d and %d records, want 300", len(plain), len(marked))
	}
	for i := range plain {
		if plain[i].ID != marked[i].ID || plain[i].Key != marked[i].Key || !plain[i].Value("name").Equal(marked[i].Value("name")) {
			t.Fatalf("record %d loaded for a commit differs: %+v, want %+v", i, marked[i], plain[i])
		}
	}
}
