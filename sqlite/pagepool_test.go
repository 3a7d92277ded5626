package sqlite

import (
	"context"
	"fmt"
	"testing"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestPagePoolServesCaches checks that the page caches take their pages
// from the pool (pagepool.go): a store's reads put pages in its caches,
// and SQLite counts the pool's slots in use; without the pool it counts
// none.
func TestPagePoolServesCaches(t *testing.T) {
	if pagePool == 0 {
		t.Fatal("SQLite took no page pool: a connection opened before this package's init")
	}
	s := openTest(t)
	ctx := context.Background()
	for i := range 200 {
		if err := s.ExecRaw(ctx, `INSERT INTO records (id, kind, match_key, key, state) VALUES (?, 'app', ?, ?, zeroblob(600))`, i+1, fmt.Sprint("k", i), fmt.Sprint("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE length(state) = 600`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Fatalf("read %d records, want 200", n)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	p := tls.Alloc(16)
	defer tls.Free(16)
	if rc := sqlite3.Xsqlite3_status64(tls, sqlite3.SQLITE_STATUS_PAGECACHE_USED, p, p+8, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("sqlite3_status64: %d", rc)
	}
	if used, high := *(*int64)(cptr(p)), *(*int64)(cptr(p + 8)); used <= 0 || high <= 0 {
		t.Fatalf("page pool slots in use %d, at most %d: the caches took none of it", used, high)
	}
}
