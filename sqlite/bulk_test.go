package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// stagedCount is how many links wait in links_stage.
func stagedCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM links_stage`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// hasRecordsKey reports whether records' match-key index exists.
func hasRecordsKey(t *testing.T, s *Store) bool {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'records_key'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// stageLinks fills an open bulk window as a first pass of records NHIs in
// three systems leaves it, by SQL: records in id order with scattered
// match keys, three links a record staged in record order with scattered
// external ids (one run), their states appended.
func stageLinks(tb testing.TB, s *Store, records int) {
	tb.Helper()
	ctx := tb.Context()
	for _, q := range []string{
		`INSERT INTO link_systems (id, name) VALUES (1, 'idp'), (2, 'cmdb'), (3, 'catalog')`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO records (id, kind, match_key, key, state)
		SELECT i, 'service_account', printf('aws%08x%d', (i * 2654435761) % 4294967291, i), printf('aws/svc-%d', i), zeroblob(120) FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * ? - 1)
		INSERT INTO link_state (id, state) SELECT i + 1, zeroblob(150) FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * ? - 1)
		INSERT INTO links_stage (state_id, system_id, ext_id, record_id, status, hash)
		SELECT i + 1, i % 3 + 1, printf('%08x-%04x-%012x', (i * 2654435761) % 4294967291, i / 3 % 65536, (i * 40503) % 281474976710597), i / 3 + 1, 'live', zeroblob(32) FROM n`,
		`INSERT INTO links_stage_runs (first_state, last_state, min_record, max_record)
		SELECT min(state_id), max(state_id), min(record_id), max(record_id) FROM links_stage`,
	} {
		args := []any{records}
		if q[0] == 'I' {
			args = nil
		}
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			tb.Fatal(err)
		}
	}
	// The fill itself is checkpointed before EndBulk is measured.
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
}

// TestBulkWindowStagesAndMoves: inside the window links are staged, not
// put into links, and records have no match-key index; EndBulk moves every
// link, sorted, empties the stage and builds the index. (What the window
// must do for any store is storetest's: Bulk*.)
func TestBulkWindowStagesAndMoves(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	bulkCommit(t, s, 20)
	if n := stagedCount(t, s); n != 20 {
		t.Errorf("%d links staged inside the window, want 20", n)
	}
	if hasRecordsKey(t, s) {
		t.Error("records_key exists inside the window")
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasRecordsKey(t, s) {
		t.Error("records_key missing after EndBulk")
	}
	if n := stagedCount(t, s); n != 0 {
		t.Errorf("%d links still staged after EndBulk", n)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&n); err != nil || n != 20 {
		t.Errorf("links after EndBulk = %d, %v; want 20", n, err)
	}
}

// TestBulkWindowStageRuns: inside the window every commit that staged
// links leaves a run (by which LoadRecords finds a record's staged links:
// storetest's BulkRecordLinks); EndBulk drops the runs.
func TestBulkWindowStageRuns(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	beginBulk(t, s)
	first, err := s.NewIDs(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []int64{0, 10} {
		if err := s.Commit(ctx, storetest.BulkBatch(first+start, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// Links to records of both earlier commits, out of order, a stray,
	// and records with no link at all.
	if err := s.Commit(ctx, storetest.BulkLateBatch(first)); err != nil {
		t.Fatal(err)
	}
	var runs int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links_stage_runs`).Scan(&runs); err != nil || runs != 3 {
		t.Errorf("runs inside the window = %d, %v; want 3 (one a commit)", runs, err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links_stage_runs`).Scan(&runs); err != nil || runs != 0 {
		t.Errorf("runs after EndBulk = %d, %v; want none", runs, err)
	}
}

// TestBulkWindowSurvivesDeath: a process that dies inside the window
// (here: closes without EndBulk) leaves its links staged, and the next
// Open moves them and builds records_key before anything reads the store
// (what it then reads: storetest's BulkSurvivesDeath).
func TestBulkWindowSurvivesDeath(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "bulk.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	bulkCommit(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if n := stagedCount(t, s); n != 0 {
		t.Errorf("%d links still staged after reopening", n)
	}
	if !hasRecordsKey(t, s) {
		t.Error("records_key missing after reopening")
	}
}

// TestBulkWindowNamesADuplicate: a link committed twice inside the window
// (the contract broken) fails EndBulk (naming it, and reads still see
// it: storetest's BulkNamesADuplicate); every link stays staged.
func TestBulkWindowNamesADuplicate(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	b := bulkCommit(t, s, 3)
	again := *b.Links[1]
	if err := s.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{&again}}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndBulk(ctx); err == nil {
		t.Fatal("EndBulk with a link staged twice succeeded")
	}
	if n := stagedCount(t, s); n != 4 {
		t.Errorf("%d links staged after a failed EndBulk, want all 4", n)
	}
}

// indexNames lists the indexes CREATE INDEX made on table.
func indexNames(t *testing.T, s *Store, table string) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

// writerTempStore is the writer's temp_store (2: memory).
func writerTempStore(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA temp_store`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBulkWindowCloseDies: EndBulk failing at any step of the move (as a
// process dying there would; "sorted" and "swapped" are moveSorted's, its
// index built and then made links') leaves every link staged and readable,
// links empty and its indexes whole, the file consistent, the writer's
// settings as they were; the next Open moves the links, and links_record
// is there and used.
func TestBulkWindowCloseDies(t *testing.T) {
	for _, step := range []string{"dropped", "sorted", "swapped", "moved", "emptied", "built"} {
		t.Run(step, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "bulk.db")
			s, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			beginBulk(t, s)
			first, err := s.NewIDs(ctx, 50)
			if err != nil {
				t.Fatal(err)
			}
			b := storetest.BulkBatch(first, 50)
			b.Links[7].RecordID = 0 // a stray, searched in links_record
			if err := s.Commit(ctx, b); err != nil {
				t.Fatal(err)
			}
			want := indexNames(t, s, "links")
			if len(want) == 0 {
				t.Fatal("links has no secondary index to drop")
			}
			died := errors.New("died at " + step)
			closeWindowFault = func(at string, _ *sql.Conn) error {
				if at == step {
					return died
				}
				return nil
			}
			err = s.EndBulk(ctx)
			closeWindowFault = func(string, *sql.Conn) error { return nil }
			if !errors.Is(err, died) {
				t.Fatalf("EndBulk = %v, want the fault", err)
			}
			if n := stagedCount(t, s); n != 50 {
				t.Errorf("%d links staged after EndBulk died, want 50", n)
			}
			if got := indexNames(t, s, "links"); !slices.Equal(got, want) {
				t.Errorf("links' indexes after EndBulk died: %v, want %v", got, want)
			}
			if ts := writerTempStore(t, s); ts != 2 {
				t.Errorf("writer's temp_store after EndBulk died = %d, want 2 (memory)", ts)
			}
			var writable, moved int
			if err := s.w.QueryRowContext(ctx, `PRAGMA writable_schema`).Scan(&writable); err != nil || writable != 0 {
				t.Errorf("writer's writable_schema after EndBulk died = %d, %v; want 0", writable, err)
			}
			if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&moved); err != nil || moved != 0 {
				t.Errorf("links after EndBulk died: %d rows, %v; want none", moved, err)
			}
			var whole string
			if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&whole); err != nil || whole != "ok" {
				t.Errorf("integrity_check after EndBulk died = %q, %v", whole, err)
			}
			var cache int
			if err := s.w.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil || cache != -65536 {
				t.Errorf("writer's cache_size after EndBulk died = %d, %v; want -65536", cache, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(ctx, path)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer s.Close()
			if n := stagedCount(t, s); n != 0 {
				t.Errorf("%d links still staged after reopening", n)
			}
			if got := indexNames(t, s, "links"); !slices.Equal(got, want) {
				t.Errorf("links' indexes after reopening: %v, want %v", got, want)
			}
			if !hasRecordsKey(t, s) {
				t.Error("records_key missing after reopening")
			}
			got, err := s.LoadLinks(ctx, "idp", []string{b.Links[0].ExternalID, b.Links[49].ExternalID})
			if err != nil || len(got) != 2 {
				t.Errorf("LoadLinks after reopening = %d links, %v; want 2", len(got), err)
			}
			var strays int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links INDEXED BY links_record WHERE record_id IS NULL`).Scan(&strays); err != nil || strays != 1 {
				t.Errorf("strays by links_record after reopening = %d, %v; want 1", strays, err)
			}
			var ok string
			if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Errorf("integrity_check after reopening = %q, %v", ok, err)
			}
		})
	}
}

// TestBulkWindowSortSettings: every step of closing the window, records'
// match-key index included, runs on a writer set for sorting (temp files,
// the cut page cache, the sorter's threads), and the writer has its own
// settings back after.
func TestBulkWindowSortSettings(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	bulkCommit(t, s, 10)
	settings := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) [3]int {
		var got [3]int
		for i, p := range []string{"temp_store", "cache_size", "threads"} {
			if err := q.QueryRowContext(ctx, `PRAGMA `+p).Scan(&got[i]); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	want := [3]int{1, -sortCacheKiB, sortThreads()}
	var seen []string
	closeWindowFault = func(step string, conn *sql.Conn) error {
		seen = append(seen, step)
		if got := settings(conn); got != want {
			t.Errorf("at %s: temp_store, cache_size, threads = %v, want %v", step, got, want)
		}
		return nil
	}
	defer func() { closeWindowFault = func(string, *sql.Conn) error { return nil } }()
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"dropped", "sorted", "swapped", "moved", "emptied", "built", "keying"}) {
		t.Errorf("steps seen: %v", seen)
	}
	if got := settings(s.w); got != [3]int{2, -writerCacheKiB, 0} {
		t.Errorf("writer's temp_store, cache_size, threads after EndBulk = %v, want [2 -65536 0]", got)
	}
}

// TestBulkWindowWriterCache: inside a window with a WAL the writer commits with
// the small page cache (bulkCacheKiB), its synchronous setting NORMAL;
// both are back as Open set them when the window closes, and when
// BeginBulk finds the store not empty.
func TestBulkWindowWriterCache(t *testing.T) {
	withWAL(t)
	s := openTest(t)
	ctx := t.Context()
	writer := func() (sync, cache int) {
		t.Helper()
		if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := s.w.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
			t.Fatal(err)
		}
		return sync, cache
	}
	const normal, full = 1, 2
	if sync, cache := writer(); sync != full || cache != -writerCacheKiB {
		t.Fatalf("writer after Open: synchronous %d, cache_size %d; want %d, %d", sync, cache, full, -writerCacheKiB)
	}
	bulkCommit(t, s, 10)
	if sync, cache := writer(); sync != normal || cache != -bulkCacheKiB {
		t.Errorf("writer inside the window: synchronous %d, cache_size %d; want %d, %d", sync, cache, normal, -bulkCacheKiB)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if sync, cache := writer(); sync != full || cache != -writerCacheKiB {
		t.Errorf("writer after EndBulk: synchronous %d, cache_size %d; want %d, %d", sync, cache, full, -writerCacheKiB)
	}
	// The store holds records now: no window, the writer as it was.
	if open, err := s.BeginBulk(ctx); err != nil || open {
		t.Fatalf("BeginBulk on a loaded store = %v, %v", open, err)
	}
	if sync, cache := writer(); sync != full || cache != -writerCacheKiB {
		t.Errorf("writer after a window refused: synchronous %d, cache_size %d; want %d, %d", sync, cache, full, -writerCacheKiB)
	}
}

// TestBulkWindowSortsInRuns: a window too large for one sort buffer (a
// small one here) is sorted in runs on the sorter's threads and merged:
// every staged link is in links, as it was staged, and the file passes
// integrity_check (each index holds exactly its table's rows, in order).
func TestBulkWindowSortsInRuns(t *testing.T) {
	defer func(kib int) { sortCacheKiB = kib }(sortCacheKiB)
	sortCacheKiB = 1024
	s := openTest(t)
	ctx := t.Context()
	beginBulk(t, s)
	stageLinks(t, s, 8000)
	const all = `SELECT count(*), group_concat(system_id || '/' || ext_id || '/' || coalesce(record_id, '-') || '/' || status || '/' || hex(hash) || '/' || state_id, ',') FROM (SELECT * FROM %s ORDER BY system_id, ext_id)`
	var n int
	var before, after string
	if err := s.r.QueryRowContext(ctx, fmt.Sprintf(all, "links_stage")).Scan(&n, &before); err != nil || n != 24000 {
		t.Fatalf("staged: %d, %v", n, err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, fmt.Sprintf(all, "links")).Scan(&n, &after); err != nil || n != 24000 || after != before {
		t.Errorf("links after EndBulk: %d (%v), same as staged: %v", n, err, after == before)
	}
	if n := stagedCount(t, s); n != 0 {
		t.Errorf("%d links still staged", n)
	}
	if !hasRecordsKey(t, s) {
		t.Error("records_key missing")
	}
	var ok string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}

// TestStoreReopen runs storetest's tests that open a database again.
func TestStoreReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "data", "nhisync.db")
		return func(t *testing.T) nhisync.Store {
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}

// TestStageOrderIsKeyOrder: stageOrder orders any two links as links'
// primary key (system_id, ext_id) does, for system ids of every UTF-8
// length and external ids that are prefixes of each other, hold a NUL or
// are not UTF-8.
func TestStageOrderIsKeyOrder(t *testing.T) {
	s := openTest(t)
	systems := []int64{1, 2, 9, 127, 128, 255, 2047, 2048, 65535, 65536, 1114111}
	exts := []string{"", "a", "a\x00", "a\x00b", "ab", "b", "\x7f", "\x80", "\xff", "\u00e9", "zz"}
	key := strings.ReplaceAll(stageOrder, "system_id", "?1")
	key = strings.ReplaceAll(key, "ext_id", "?2")
	other := strings.ReplaceAll(strings.ReplaceAll(key, "?1", "?3"), "?2", "?4")
	q := `SELECT (` + key + `) < (` + other + `), (` + key + `) = (` + other + `)`
	for _, a := range systems {
		for _, b := range systems {
			for _, x := range exts {
				for _, y := range exts {
					var less, equal bool
					if err := s.r.QueryRowContext(t.Context(), q, a, x, b, y).Scan(&less, &equal); err != nil {
						t.Fatal(err)
					}
					want := cmp.Or(cmp.Compare(a, b), strings.Compare(x, y))
					if less != (want < 0) || equal != (want == 0) {
						t.Errorf("(%d, %q) vs (%d, %q): stageOrder says less %v, equal %v; key order %d", a, x, b, y, less, equal, want)
					}
				}
			}
		}
	}
}

// linksFill is the share of links' pages that holds its rows (dbstat).
func linksFill(t *testing.T, s *Store) float64 {
	t.Helper()
	var fill float64
	if err := s.r.QueryRowContext(t.Context(), `SELECT 1.0 - 1.0 * sum(unused) / sum(pgsize) FROM dbstat WHERE name = 'links'`).Scan(&fill); err != nil {
		t.Fatal(err)
	}
	return fill
}

// TestBulkWindowFillsLinks: closing a first pass's window makes the
// staged links links' B-tree as SQLite bulk-loads an index, every page
// filled (moveSorted; inserted in key order its leaves were 88% full),
// the file consistent, and nothing of the move left behind: no index of
// the stage, the writer's schema not writable.
func TestBulkWindowFillsLinks(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	beginBulk(t, s)
	stageLinks(t, s, 5000)
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	if fill := linksFill(t, s); fill < 0.95 {
		t.Errorf("links' pages %.3f full after EndBulk, want at least 0.95", fill)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&n); err != nil || n != 15000 {
		t.Errorf("links after EndBulk = %d, %v; want 15000", n, err)
	}
	if got := indexNames(t, s, "links_stage"); len(got) != 0 {
		t.Errorf("links_stage's indexes after EndBulk: %v, want none", got)
	}
	var writable int
	if err := s.w.QueryRowContext(ctx, `PRAGMA writable_schema`).Scan(&writable); err != nil || writable != 0 {
		t.Errorf("writer's writable_schema after EndBulk = %d, %v; want 0", writable, err)
	}
	var ok string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}

// TestBulkWindowMovesBesideLinks: a window closed while links already
// holds rows (a close that failed, then a commit that wrote to links)
// inserts the staged links beside them, and names a link both staged
// and in links.
func TestBulkWindowMovesBesideLinks(t *testing.T) {
	for _, clash := range []bool{false, true} {
		t.Run(fmt.Sprint("clash=", clash), func(t *testing.T) {
			s := openTest(t)
			ctx := t.Context()
			b := bulkCommit(t, s, 20)
			ext := "beside"
			if clash {
				ext = b.Links[5].ExternalID
			}
			if _, err := s.w.ExecContext(ctx, `INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id)
				SELECT system_id, ?, record_id, status, hash, state_id FROM links_stage WHERE ext_id = ?`, ext, b.Links[5].ExternalID); err != nil {
				t.Fatal(err)
			}
			err := s.EndBulk(ctx)
			if clash {
				if nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(nhisync.ErrorMessage(err), "idp/"+ext) {
					t.Fatalf("EndBulk with a link staged and in links = %v; want EINTERNAL naming idp/%s", err, ext)
				}
				if n := stagedCount(t, s); n != 20 {
					t.Errorf("%d links staged after a failed EndBulk, want all 20", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM links`).Scan(&n); err != nil || n != 21 {
				t.Errorf("links after EndBulk = %d, %v; want 21", n, err)
			}
			var ok string
			if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Errorf("integrity_check = %q, %v", ok, err)
			}
		})
	}
}
