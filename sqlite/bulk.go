package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/nhisync/nhisync"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ nhisync.BulkLoader = (*Store)(nil)

// The bulk window (nhisync.BulkLoader). A first pass into an empty store
// adds every link and record once; put into links one commit at a time,
// each link lands on a random leaf of its (system_id, ext_id) B-tree, and
// each record on one of records' match-key index, which the commit writes
// to the WAL and a checkpoint copies again (about two pages per insert at
// scale). Inside the window new links are appended to links_stage
// instead, keyed by their state ids (their states appended to link_state,
// and one row a commit in links_stage_runs, by which a record's staged
// links are found), and records' match-key index (records_key) is
// dropped; EndBulk moves the links into links in one transaction, sorted
// by key (as an index of the stage whose B-tree becomes links':
// moveSorted), and builds the index, sorted, so each leaf is written once.
//
// Reads stay exact inside the window: every link query reads links_stage
// too (stageSQL), and a paged scan that finds staged links reads every
// page from one snapshot, so links moving from the stage into links
// between two pages are neither lost nor seen twice. A process that dies
// inside the window leaves its links staged and records_key missing; Open
// moves and builds them before anything else reads the store.

// Durability inside the window, when other processes have the store open
// too (otherwise the commits run without a WAL, and a process that dies
// inside the window leaves nothing of it: bulkjournal.go). Its commits
// run with synchronous=NORMAL:
// SQLite writes each one to the WAL (walvfs.go puts a commit's frames in
// the file before the wal-index names them, so other connections read it
// at once) but does not sync it; EndBulk syncs the WAL and the database
// once, with synchronous=FULL back. A first pass's ~2,000 commits at 1M
// NHIs each waited for one sync on the committing goroutine (a few ms
// each, BenchmarkBulkCommit's wall). A crash keeps every commit
// (the operating system holds them); a power loss may lose the window's
// last commits, never a commit's half (WAL with NORMAL is consistent):
// those records are then simply not in the store, and the next pass adds
// them. What must not get ahead of the sync is what leaves the store:
// the engine sends no write before EndBulk returns (a first pass's
// writes go out after it), and the checkpoints the window's commits sign
// are held (holdCheckpoint) and copied to audit.publish only once EndBulk
// has synced them, so no published checkpoint can name entries a power
// loss took back.
//
// Nor may anything else hand one out before the sync, or act on what the
// window committed. Opening the window stores windowMark in meta, in the
// transaction that drops records_key: the size of the last checkpoint
// signed before it, the last one synced. While the mark is there
// LatestCheckpoint (the API, audit proof, the evidence pack, in any
// process) serves that one, and ClaimOutbox claims nothing (a drain
// elsewhere would send the window's queued writes). EndBulk deletes the
// mark once it has synced the window; when the sync fails the mark stays,
// and this Store refuses every later commit and claim (unsynced) until the
// store is reopened: an Open that has the store to itself syncs what the
// window wrote and deletes the mark (settleWindow). A power loss that took
// the mark back took every commit of the window with it.

// BeginBulk opens the bulk window when the store holds no records and no
// links, and reports whether it did. Storage failures are EINTERNAL.
func (s *Store) BeginBulk(ctx context.Context) (bool, error) {
	const op = "sqlite.BeginBulk"
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	if s.bulk.Load() {
		return false, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "the bulk window is already open"}
	}
	if err := s.unsyncedErr(op); err != nil {
		return false, err
	}
	// The commits run without a WAL (bulkjournal.go) only into a store
	// that is empty: looked at first, so that a store holding records
	// keeps its readers.
	var empty bool
	if err := s.w.QueryRowContext(ctx, emptySQL).Scan(&empty); err != nil {
		return false, internal(op, err)
	}
	if !empty {
		return false, nil
	}
	// The window reads with read calls (writermap.go).
	if err := s.unmapWriter(ctx, s.w); err != nil {
		return false, internal(op, err)
	}
	journalless, err := s.enterJournalless(ctx)
	if err != nil {
		return false, internal(op, err)
	}
	sync := "NORMAL"
	if journalless {
		sync = "OFF"
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA synchronous = `+sync+`; PRAGMA cache_size = `+strconv.Itoa(-bulkCacheKiB)); err != nil {
		err = errors.Join(internal(op, err), s.dropWriter())
		if journalless {
			err = errors.Join(err, s.abandonJournalless(context.WithoutCancel(ctx)))
		}
		return false, err
	}
	empty, err = s.openWindow(ctx)
	if err != nil || !empty {
		if journalless {
			err = errors.Join(err, s.abandonJournalless(context.WithoutCancel(ctx)))
		}
		if ferr := s.writerSettingsBack(context.WithoutCancel(ctx)); ferr != nil {
			err = errors.Join(err, ferr)
		}
		if err != nil {
			return false, internal(op, err)
		}
		return false, nil
	}
	s.journalless = journalless
	if journalless {
		s.journallessEnded = make(chan struct{})
		s.writeback = startWriteback(s.file)
	}
	return true, nil
}

// emptySQL tells whether the store holds no records, no links and no
// queued writes.
const emptySQL = `SELECT NOT EXISTS (SELECT 1 FROM records) AND NOT EXISTS (SELECT 1 FROM links) AND NOT EXISTS (SELECT 1 FROM links_stage) AND NOT EXISTS (SELECT 1 FROM outbox)`

// bulkCacheKiB is the writer's page cache inside the window, instead of
// writerCacheKiB. The window's commits only append (records, link states,
// staged links and audit entries by increasing key; records' match-key
// index is dropped), so the pages they read again are the few at each
// B-tree's right edge; the cache writerCacheKiB sizes for random-key
// inserts would only fill with pages already written, at the first pass's
// peak of memory. SQLite's page allocations are rounded up to a power of
// two by modernc.org/memory (a 4 KiB page and its header take 8 KiB), so
// the full cache holds about twice its size: ~120 MiB of the process.
const bulkCacheKiB = 8192

// writerSettingsBack puts the writer's settings of Open back after the
// window (synchronous=FULL, the full page cache); a writer that keeps
// either is discarded.
func (s *Store) writerSettingsBack(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA synchronous = FULL; PRAGMA cache_size = `+strconv.Itoa(-writerCacheKiB)); err != nil {
		return errors.Join(err, s.dropWriter())
	}
	return nil
}

// dropWriter makes the writer pool discard its connection (the next one
// opens with the settings of Open), for a connection whose settings could
// not be put back.
func (s *Store) dropWriter() error {
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(any) error { return driver.ErrBadConn })
}

// holdCheckpoint keeps a checkpoint committed inside the window for
// EndBulk to publish, and reports whether it did.
func (s *Store) holdCheckpoint(cp *nhisync.Checkpoint) bool {
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	if !s.bulk.Load() {
		return false
	}
	s.unpublished = append(s.unpublished, cp)
	return true
}

// syncWindow puts the writer's settings back (synchronous=FULL, its full
// page cache) and syncs what the window's commits wrote (the WAL, and the
// database the checkpoints copied into, which syncs it already).
func (s *Store) syncWindow(ctx context.Context) error {
	if err := s.writerSettingsBack(ctx); err != nil {
		return err
	}
	return s.syncFiles()
}

// syncWindowFault stands in for syncing the files in tests (a disk that
// fails the sync).
var syncWindowFault = func() error { return nil }

// syncFiles syncs the WAL and the database file.
func (s *Store) syncFiles() error {
	if err := syncWindowFault(); err != nil {
		return err
	}
	for _, name := range []string{s.file + "-wal", s.file} {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no WAL: everything is in the database already
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Base(name), err)
		}
	}
	return nil
}

// openWindow drops records' match-key index when the store holds no
// records and no links, in one transaction, and reports whether it did.
func (s *Store) openWindow(ctx context.Context) (bool, error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var empty bool
	err = tx.QueryRowContext(ctx, emptySQL).Scan(&empty)
	if err != nil || !empty {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `DROP INDEX IF EXISTS records_key`); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value)
		SELECT ?, CAST(coalesce(max(size), 0) AS TEXT) FROM checkpoints`, windowMark); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	// Set holding the writer's connection, on which a commit reads it
	// (inBulk): no commit finds the window open but unmarked, or marked
	// but not open.
	s.bulk.Store(true)
	return true, nil
}

// windowMark is the meta key of an unsynced bulk window: its value is
// the size of the last checkpoint synced before the window opened ("0"
// for none). Not a setting: MetaAll leaves it out (store copy).
const windowMark = "sqlite.bulk_window_unsynced"

// syncedOnly is the SQL condition on checkpoints' size that keeps those
// synced: all of them without windowMark.
const syncedOnly = `size <= coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '` + windowMark + `'), size)`

// unsyncedErr is what a Store whose bulk window failed to sync refuses
// commits and claims with, until the store is reopened; nil otherwise.
func (s *Store) unsyncedErr(op string) error {
	s.unsyncedMu.Lock()
	cause := s.unsynced
	s.unsyncedMu.Unlock()
	if cause == nil {
		return nil
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf(
		"the first pass's bulk load could not be synced to disk (%s), so this store commits nothing more and sends none of its queued writes: a power loss could take back what they depend on; fix the disk, then restart nhisync (opening the store syncs it)",
		nhisync.ErrorMessage(cause)), Err: cause}
}

// markedErr is what a claim finds while windowMark is stored: a window
// open or left unsynced, by this process or another.
func markedErr() error {
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: "the first pass's bulk load into this store is not synced to disk yet (it is under way, or its process failed to sync it or died), so none of its queued writes is claimed: if no pass is running, restart nhisync once no other nhisync process has the store open (opening the store alone syncs it)"}
}

// windowMarked reports whether windowMark is stored.
func windowMarked(ctx context.Context, q querier) (bool, error) {
	var marked bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?)`, windowMark).Scan(&marked)
	return marked, err
}

// settleWindow syncs what a window left unsynced (its mark is stored) and
// deletes the mark; Open calls it when it has the store to itself.
func (s *Store) settleWindow(ctx context.Context) error {
	marked, err := windowMarked(ctx, s.w)
	if err != nil || !marked {
		return err
	}
	if err := s.syncFiles(); err != nil {
		return err
	}
	return s.unmark(ctx)
}

// unmark deletes windowMark (the writer syncs the commit: FULL).
func (s *Store) unmark(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, windowMark)
	return err
}

// EndBulk closes the bulk window: the window's commits are synced, the
// checkpoints they signed published, and the staged links move into
// links. It returns EUNAVAIL when a checkpoint cannot be published, and
// EINTERNAL when the commits cannot be synced, naming the link when a
// link was staged twice or is also in links (the window's contract was
// broken; the links stay staged, every read still sees them, and the next
// Open tries again), and for storage failures. The links move even when
// syncing or publishing failed: the process may go on using the store
// (serve), and a later commit would put a link it updates while still
// staged into links beside its staged row.
func (s *Store) EndBulk(ctx context.Context) error {
	const op = "sqlite.EndBulk"
	s.bulkMu.Lock()
	defer s.bulkMu.Unlock()
	s.bulk.Store(false)
	held := s.unpublished
	s.unpublished = nil
	var cerr error
	journalless := s.journalless // leaveJournalless clears it
	if journalless {
		// The staged links move and the indexes are built while the
		// window still runs without a WAL: each page of them is written
		// once, into the database, instead of into the WAL and again by
		// the checkpointer (at 300k NHIs 26,109 WAL frames, 107 MB, a
		// fifth of what the first pass's WAL took after the window). A
		// process dying meanwhile leaves the copy of the store, which
		// the next Open puts back, as for any commit of the window; a
		// move that fails rolls back (the journal in memory), the links
		// staged as they were, for the next Open to move. Then the
		// window's commits and the move are synced together, and from
		// then on it is a window with a WAL (bulkjournal.go). Failing to
		// sync, nothing of it may be published: the next Open puts the
		// store back as it was before it. The sync is not cancelled with
		// ctx: a window left unsynced would keep the store refusing
		// commits until reopened.
		cerr = s.closeWindow(ctx)
		if err := s.leaveJournalless(context.WithoutCancel(ctx)); err != nil {
			if cerr != nil {
				return errors.Join(internal(op, err), internal(op, cerr))
			}
			return internal(op, err)
		}
	}
	err := s.publishWindow(ctx, op, held)
	if !journalless {
		cerr = s.closeWindow(ctx)
	}
	if cerr != nil {
		if err == nil {
			return internal(op, cerr)
		}
		return errors.Join(err, internal(op, cerr))
	}
	return err
}

// publishWindow syncs what the window's commits wrote, then publishes the
// checkpoints they signed, held, in order, in one append.
func (s *Store) publishWindow(ctx context.Context, op string, held []*nhisync.Checkpoint) error {
	err := s.syncWindow(ctx)
	if err == nil {
		err = s.unmark(ctx)
	}
	if err != nil {
		err = &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf(
			"cannot sync the first pass's commits to disk, so its %d audit checkpoints are not published and no write waiting in this store is sent: %s; fix the disk, then restart nhisync (opening the store syncs it)", len(held), err), Err: err}
		s.unsyncedMu.Lock()
		s.unsynced = err
		s.unsyncedMu.Unlock()
		return err
	}
	if len(held) == 0 {
		return nil
	}
	return publish(op, s.getNotary(), held...)
}

// closeWindow moves the staged links into links and builds records'
// match-key index, each once, on one writer connection set for sorting
// while it does (sortCacheKiB). Nothing to do (every open of a store
// whose window is closed) costs one query.
func (s *Store) closeWindow(ctx context.Context) (err error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var staged, keyed bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM links_stage),
		EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = 'records_key')`).Scan(&staged, &keyed); err != nil || (!staged && keyed) {
		return err
	}
	// The writer's settings come back whatever happens; a writer that
	// keeps any of them must not be reused.
	restore := func(q string) {
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), q); ferr != nil {
			err = errors.Join(err, ferr, conn.Raw(func(any) error { return driver.ErrBadConn }))
		}
	}
	var cache int
	if err := conn.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
		return err
	}
	for _, set := range []struct{ q, back string }{
		{`PRAGMA temp_store = FILE`, `PRAGMA temp_store = MEMORY`},
		{fmt.Sprintf(`PRAGMA cache_size = %d`, -sortCacheKiB), fmt.Sprintf(`PRAGMA cache_size = %d`, cache)},
		{fmt.Sprintf(`PRAGMA threads = %d`, sortThreads()), `PRAGMA threads = 0`},
	} {
		if _, err := conn.ExecContext(ctx, set.q); err != nil {
			return err
		}
		defer restore(set.back)
	}
	if staged {
		if err := s.mergeStage(ctx, conn); err != nil {
			return err
		}
	}
	if err := closeWindowFault("keying", conn); err != nil {
		return err
	}
	return s.buildRecordsKey(ctx, conn)
}

// Every sort that closes the window (moving the links in key order,
// building links' and records' indexes) runs with temp_store = FILE, the
// writer's page cache cut to sortCacheKiB, and SQLite's sorter threads.
//
// With temp files in memory SQLite's sorter allocates and frees every row
// on its own and holds them all, however many; with files it fills one
// buffer the size of the page cache and spills sorted runs to a temporary
// file (in the directory SQLite picks: SQLITE_TMPDIR, TMPDIR, /var/tmp or
// /tmp), so its memory is bounded too. The cut cache bounds that buffer: a
// 300k-NHI merge grew the process by 69 MB instead of 220 with the
// writer's 64 MiB, for the same CPU. Records' match-key index was built
// with temp files in memory, after the move: closing a 300k-NHI window
// took 5.3 CPU-s and grew the process by 69 MB, 4.9 and 46 with files
// (BenchmarkEndBulk, medians of 3).
//
// Closing the window is all a first pass does then, one core otherwise
// idle: with PRAGMA threads the sorter hands each full buffer to a worker
// thread (a goroutine: modernc.org/sqlite's pthreads) to sort and spill
// while the statement goes on filling the next, and merges the runs on
// workers too (temp files in memory would turn the threads off). At 300k
// NHIs the thread running the statements spent 3.5 CPU-s instead of 4.6,
// for 6.3 in all instead of 4.9 (BenchmarkEndBulk's main-cpu-ns/op and
// cpu-ns/op, medians of 3): the wait a quarter shorter, for CPU the idle
// core gives. Each worker holds a buffer of its own: peak growth 79 MB
// instead of 46, bounded as the buffer is.
//
// 4 MiB rather than 16: smaller runs sort within the processor's caches,
// and more of them go to the workers while the statement fills the next.
// Closing a 1M-NHI window (3M links) took 7.6 CPU-s on the statements'
// thread instead of 8.1 and 13.9 in all instead of 16.6, the process
// peaking at 143 MiB instead of 195 (BenchmarkEndBulk's window with
// ENDBULK_RECORDS=1000000, one run each; 8 MiB: 7.4 and 14.3); at 300k
// NHIs 2.2 and 3.7 CPU-s against 2.4 and 4.5, 142 MiB against 201
// (medians of 3 and 4, interleaved). 64 MiB was dearer still: in a
// window that fits in a few buffers the last one, sorted on the
// statements' thread, is a large part.
var sortCacheKiB = 4096 // a variable for tests

// sortThreads is how many worker threads the sorter may use: none on one
// core; two on two cores or more (at 300k NHIs on two cores, one worker
// left the statements' thread 3.3 and 4.0 CPU-s in two runs).
func sortThreads() int {
	if runtime.GOMAXPROCS(0) < 2 {
		return 0
	}
	return 2
}

// buildRecordsKey builds records' match-key index (sorted, in one
// statement) if the bulk window dropped it. Two records with one match key
// fail it, named.
func (s *Store) buildRecordsKey(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (kind, match_key)`)
	if sqliteCode(err) != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return err
	}
	var kind, key string
	if qerr := conn.QueryRowContext(ctx, `SELECT kind, key FROM records WHERE (kind, match_key) IN
		(SELECT kind, match_key FROM records GROUP BY kind, match_key HAVING count(*) > 1) LIMIT 1`).Scan(&kind, &key); qerr != nil {
		return errors.Join(err, qerr)
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf(
		"the first pass's bulk load created two %s records with the match key of %s (a bug in the pass); report it: nhisync will not use the store until one of them is removed", kind, key), Err: err}
}

// inBulk reports whether commits stage their links. A commit asks
// holding the writer's connection, so it takes no lock: BeginBulk, EndBulk
// and durably hold bulkMu while they wait for that connection, and a
// commit waiting for bulkMu there would wait for them, and they for it.
func (s *Store) inBulk() bool {
	return s.bulk.Load()
}

// mergeStage moves the staged links into links in key order, in one
// transaction, on conn (closeWindow's). Foreign keys are not checked
// again (each staged row was checked when it was staged): looking every
// link's record up in key order would read the records table at random.
//
// Links' secondary indexes (links_record) are dropped for the move and
// built again after it, each by one sort: filled in key order, links'
// record ids come at random, and each would land on a random leaf. Into
// an empty links (a first pass's window) the links move by moveSorted;
// otherwise (links already hold some: a window whose close failed, then
// a commit wrote to links) by one INSERT in key order, which names a
// link both staged and in links. A process that dies at any step leaves
// the transaction undone: the links staged, links' indexes whole, and the
// next Open moves them again (closeWindowFault tests every step).
func (s *Store) mergeStage(ctx context.Context, conn *sql.Conn) (err error) {
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil {
			err = errors.Join(err, ferr, conn.Raw(func(any) error { return driver.ErrBadConn }))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rebuild, err := dropIndexes(ctx, tx, `links`)
	if err != nil {
		return err
	}
	if err := closeWindowFault("dropped", conn); err != nil {
		return err
	}
	var empty bool
	if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM links)`).Scan(&empty); err != nil {
		return err
	}
	if empty {
		err = moveSorted(ctx, conn, tx)
	} else {
		err = moveInserted(ctx, tx)
	}
	if err != nil {
		return err
	}
	if err := closeWindowFault("moved", conn); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM links_stage`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM links_stage_runs`); err != nil {
		return err
	}
	if err := closeWindowFault("emptied", conn); err != nil {
		return err
	}
	for _, q := range rebuild {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if err := closeWindowFault("built", conn); err != nil {
		return err
	}
	return tx.Commit()
}

// moveInserted inserts the staged links into links in key order (the
// sort settings closeWindow sets make it half what a plain INSERT …
// SELECT costs). A link staged twice, or staged and in links, fails it,
// named.
func moveInserted(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO links (system_id, ext_id, record_id, status, hash, state_id)
		SELECT system_id, ext_id, record_id, status, hash, state_id FROM links_stage ORDER BY `+stageOrder)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return stagedTwice(ctx, tx, err)
	}
	return err
}

// moveSorted makes the staged links the B-tree of an empty links, inside
// tx, without inserting them one by one.
//
// links is a WITHOUT ROWID table: its B-tree is an index B-tree whose
// entries are its rows, primary key first: (system_id, ext_id,
// record_id, status, hash, state_id). An index of links_stage on
// (system_id, ext_id, record_id, status, hash) holds, in the same record
// format, exactly those rows (its last field is the row's rowid, which is
// links_stage's state_id), ordered by links' key as the key is unique.
// CREATE INDEX builds it as SQLite builds every index: one sort (on the
// sorter's threads, closeWindow's settings) and a bulk load that appends
// each entry to the right-most leaf and fills every page. An INSERT …
// ORDER BY into links gets no bulk load: it seeks for every row,
// rebalances three leaves at each split and leaves them 88% full; at
// 300k NHIs the move took 1.2-1.3 CPU-s on the statements' thread, this
// 0.9 (its statements timed alone in BenchmarkEndBulk's window; the whole
// close 1.80 against 2.17, medians of 3 interleaved), and links take 11%
// fewer pages, which every later scan of them reads.
//
// The index's B-tree then becomes links': the two schema rows swap root
// pages (writable_schema, within tx), so links' empty root page becomes
// the index's, which is dropped. Dropping it changes the schema cookie,
// so every connection reads the schema again once tx commits; a
// rollback (a process dying, a fault) leaves both as they were. SQLite's
// defensive mode, off unless a connection turns it on, refuses the swap:
// then the index is dropped and the links move by moveInserted, in the
// same transaction. The index does not check links' key: a link staged twice is found by
// counting the index's distinct keys (a scan in key order), and fails
// the move, named.
func moveSorted(ctx context.Context, conn *sql.Conn, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `CREATE INDEX `+movedIndex+` ON links_stage (system_id, ext_id, record_id, status, hash)`); err != nil {
		return err
	}
	var staged, keys int64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM links_stage INDEXED BY `+movedIndex+`),
		(SELECT count(*) FROM (SELECT DISTINCT system_id, ext_id FROM links_stage INDEXED BY `+movedIndex+`))`).Scan(&staged, &keys); err != nil {
		return err
	}
	if staged != keys {
		return stagedTwice(ctx, tx, fmt.Errorf("%d links staged under %d keys", staged, keys))
	}
	if err := closeWindowFault("sorted", conn); err != nil {
		return err
	}
	swapErr := swapRoots(ctx, tx, `links`, movedIndex)
	if swapErr != nil && !errors.Is(swapErr, errSchemaRefused) {
		return swapErr
	}
	if err := closeWindowFault("swapped", conn); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DROP INDEX `+movedIndex); err != nil {
		return errors.Join(swapErr, err)
	}
	if swapErr != nil {
		// Defensive mode: the links move row by row instead.
		return moveInserted(ctx, tx)
	}
	return nil
}

// errSchemaRefused is what swapRoots returns when the connection refuses
// to write sqlite_schema (SQLite's defensive mode, which a connection may
// turn on: SQLITE_DBCONFIG_DEFENSIVE, the driver's _defensive): the
// statement failed as it was prepared, before it changed anything, so the
// transaction goes on as it was, and moveSorted moves the links by
// moveInserted.
var errSchemaRefused = errors.New("the connection refuses to write the schema (defensive mode)")

// movedIndex is the index of links_stage whose B-tree moveSorted makes
// links'.
const movedIndex = `links_stage_sorted`

// swapRoots swaps the root pages of two schema objects (a table and an
// index) in sqlite_schema and has the connection read its schema again.
func swapRoots(ctx context.Context, tx *sql.Tx, a, b string) (err error) {
	roots := func() (rootA, rootB int64, err error) {
		err = tx.QueryRowContext(ctx, `SELECT (SELECT rootpage FROM sqlite_schema WHERE name = ?1), (SELECT rootpage FROM sqlite_schema WHERE name = ?2)`, a, b).Scan(&rootA, &rootB)
		return rootA, rootB, err
	}
	rootA, rootB, err := roots()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `PRAGMA writable_schema = ON`); err != nil {
		return err
	}
	defer func() {
		// RESET turns writable_schema off and drops the connection's
		// schema, read again from sqlite_schema by its next statement.
		if _, rerr := tx.ExecContext(context.WithoutCancel(ctx), `PRAGMA writable_schema = RESET`); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	res, err := tx.ExecContext(ctx, `UPDATE sqlite_schema SET rootpage = CASE name WHEN ?1 THEN ?4 ELSE ?3 END WHERE name IN (?1, ?2) AND rootpage IN (?3, ?4)`, a, b, rootA, rootB)
	if sqliteCode(err) == sqlite3.SQLITE_ERROR {
		// Refused as it was prepared ("table sqlite_master may not be
		// modified"), so nothing ran; read back rather than assumed, as
		// an error of the same code while it ran may leave a row changed.
		// Any other failure may have run part of it.
		if nowA, nowB, rerr := roots(); rerr != nil || nowA != rootA || nowB != rootB {
			return errors.Join(err, rerr, fmt.Errorf("the failed swap left the root pages of %s and %s at %d and %d, not %d and %d", a, b, nowA, nowB, rootA, rootB))
		}
		return fmt.Errorf("%w: %w", errSchemaRefused, err)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 2 {
		return errors.Join(fmt.Errorf("swapping the root pages of %s and %s changed %d schema rows, not 2", a, b, n), err)
	}
	return nil
}

// stageOrder sorts staged links in links' key order (system_id, ext_id)
// by one text key: SQLite's sorter compares rows whose first key is text
// by that text alone, while a first key most rows share (system_id, of a
// few systems) sends nearly every comparison on to decode both rows (200k
// records: the move 8% less CPU). char() encodes an id in UTF-8, which
// keeps the ids' order and is prefix-free, so the key orders by system id,
// then by external id byte for byte, as links' BINARY key does.
const stageOrder = `char(system_id) || ext_id`

// closeWindowFault is called after each step of closeWindow with its
// connection; a test sets it to fail a step, as a process dying there
// would, or to look at the connection's settings.
var closeWindowFault = func(step string, conn *sql.Conn) error { return nil }

// dropIndexes drops the indexes of table that CREATE INDEX made (not its
// primary key) and returns the statements that create them again.
func dropIndexes(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name`, table)
	if err != nil {
		return nil, err
	}
	var names, ddl []string
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			rows.Close()
			return nil, err
		}
		names, ddl = append(names, name), append(ddl, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, err := tx.ExecContext(ctx, `DROP INDEX "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
			return nil, err
		}
	}
	return ddl, nil
}

// stagedTwice names a link the stage holds twice or that links holds too.
func stagedTwice(ctx context.Context, tx *sql.Tx, cause error) error {
	var system, ext string
	err := tx.QueryRowContext(ctx, `SELECT ls.name, d.ext_id FROM (
			SELECT system_id, ext_id FROM links_stage GROUP BY system_id, ext_id HAVING count(*) > 1
			UNION ALL
			SELECT s.system_id, s.ext_id FROM links_stage s JOIN links l ON l.system_id = s.system_id AND l.ext_id = s.ext_id
		) d JOIN link_systems ls ON ls.id = d.system_id LIMIT 1`).Scan(&system, &ext)
	if err != nil {
		return errors.Join(cause, err)
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf(
		"the first pass's bulk load wrote link %s/%s twice (a bug in the pass); its links stay staged and every read still sees them: report it, and run again", system, ext), Err: cause}
}
