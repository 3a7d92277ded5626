package sqlite

import (
	"testing"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestLoadRecordsForCommitReadsOnWriter: LoadRecords reads records marked
// for a commit (nhisync.ForCommit) on the writer's connection, so that
// their pages are in its cache when the commit rewrites them, and any
// other load on a reader, leaving the writer free; both load the same.
func TestLoadRecordsForCommitReadsOnWriter(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	fillRecords(t, s, 300)
	ids := make([]int64, 0, 300)
	for id := range int64(300) {
		ids = append(ids, id+1)
	}
	// writerReads returns how many pages the writer's connection looked
	// up in its cache (hits and misses) since the last call, its unused
	// cache pages released first when release is set.
	writerReads := func(release bool) int {
		t.Helper()
		conn, err := s.w.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		n := 0
		if err := conn.Raw(func(dc any) error {
			db, tls, ok := driverConn(dc)
			if !ok {
				t.Skip("not a modernc.org/sqlite connection")
			}
			p := tls.Alloc(8)
			defer tls.Free(8)
			for _, op := range []int32{sqlite3.SQLITE_DBSTATUS_CACHE_HIT, sqlite3.SQLITE_DBSTATUS_CACHE_MISS} {
				if rc := sqlite3.Xsqlite3_db_status(tls, db, op, p, p+4, 1); rc != sqlite3.SQLITE_OK {
					t.Fatalf("sqlite3_db_status: %d", rc)
				}
				n += int(*(*int32)(cptr(p)))
			}
			if release {
				sqlite3.Xsqlite3_db_release_memory(tls, db)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	writerReads(true)
	plain, err := s.LoadRecords(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := writerReads(true); n != 0 {
		t.Errorf("LoadRecords read %d pages on the writer's connection, want none", n)
	}
	marked, err := s.LoadRecords(nhisync.ForCommit(ctx), ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := writerReads(false); n == 0 {
		t.Error("LoadRecords for a commit read no page on the writer's connection")
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
