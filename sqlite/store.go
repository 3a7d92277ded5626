// Package sqlite is the embedded store: nhisync.Store on one SQLite file
// (modernc.org/sqlite, pure Go), holding golden records, links and shadows,
// open work, the outbox, leases and the append-only audit log. Its schema
// comes from versioned migrations embedded in the binary and applied when
// the store opens.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so every
// committed transaction is in the WAL on disk before Commit returns. A
// process crash loses nothing with NORMAL either, but a power loss could
// then drop the last transactions, and those hold the outbox and audit
// entries SPEC §3.9 promises to keep. Commits are batched (one per pass
// step), so the extra fsync per commit costs little. The exception is the
// bulk window of a first pass into an empty store (bulk.go): nothing its
// commits hold leaves the store (no write is sent, no checkpoint
// published) before its end syncs them once; when this process has the
// store to itself, they do not even go through the WAL (bulkjournal.go).
//
// Concurrency: one writer connection (every write is serialized through
// it, transactions begin IMMEDIATE) and a small pool of query-only reader
// connections, which in WAL mode read a consistent snapshot while the
// writer works. A Store is safe for concurrent use by goroutines.
//
// LoadLinks and RecordKeys read on the writer connection instead: they
// load what a commit is about to rewrite (a drain's outcome: the links its
// writes went to and their records' keys; a pass's stray links), a few
// hundred keyed rows at random places of large B-trees. In WAL mode a
// connection drops its whole page cache when it begins a read after
// another connection committed, so a reader read every one of those pages
// from the file again after each commit (a drain commits an outcome every
// 500 records); the writer's cache is the only one its own commits keep,
// and the commit that follows finds there the pages the read brought in.
// Such a read waits while the writer commits; a drain loads an outcome on
// the goroutine that commits it, after the one before (engine
// recordOutcome), so it waits for nothing. BenchmarkDrainOutcomes100k
// (engine), 5,000 writes to random links of 100k: 96 µs of CPU per
// drained write with them on a reader, 80 µs on the writer. But a pass's
// drain builds a chunk's outcome while the one before commits (engine
// commitJob): LoadLinks marked nhisync.Ahead reads on a reader, on the
// other core, rather than wait (at 300k NHIs a whole-file system's chunk
// of 500 writes every 27 ms instead of every 40).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ nhisync.Store = (*Store)(nil)

// storeTokens hands each opened store its token (Store.token).
var storeTokens atomic.Uint64

// Store is the SQLite implementation of nhisync.Store.
type Store struct {
	path string
	// file is the database file's absolute path.
	file string
	// w is the single writer connection; r the reader pool.
	w *sql.DB
	r *sql.DB
	// heads are the head scans' connections (headscan.go).
	heads headPool

	// lock is this process's share of the open lock (openlock_*.go).
	lock *openLock
	// notary signs a checkpoint in every commit that appends entries.
	notaryMu sync.Mutex
	notary   nhisync.Notary
	// bulk is set while the bulk window is open (bulk.go), changed under
	// bulkMu and read without it (inBulk); unpublished holds the
	// checkpoints its commits signed, published once EndBulk has synced
	// them.
	bulkMu      sync.Mutex
	bulk        atomic.Bool
	unpublished []*nhisync.Checkpoint
	// writerMapped is set while the writer reads the store file through a
	// memory map (writermap.go); changed under bulkMu.
	writerMapped atomic.Bool
	// journalless is set while the window's commits run without a WAL
	// (bulkjournal.go).
	journalless bool
	// writeback writes a window's pages out while it runs without a WAL
	// (writeback_linux.go); journallessEnded is closed when it is durable
	// (durably).
	writeback        *writeback
	journallessEnded chan struct{}
	// unsynced is why EndBulk could not sync the window: set, the store
	// refuses commits and claims until it is reopened (bulk.go).
	unsyncedMu sync.Mutex
	unsynced   error
	// sysIDs caches link_systems as committed (linkwrite.go).
	sysMu  sync.Mutex
	sysIDs map[string]int64
	// stmts are the commits' prepared INSERTs (commit.go), raw those
	// prepared below database/sql (rawexec.go).
	stmts stmtCache
	raw   rawConns
	// token tells this open store's loaded links (nhisync.StoredLink.By)
	// from another's; headsRead counts the links whose heads commits read
	// because they came without one (linkwrite.go).
	token     uint64
	headsRead atomic.Int64
	// links logs the links commits wrote, by which a commit tells the
	// kept heads still stored (linkgen.go).
	links linkLog

	// ckpt copies the WAL back into the database; idle looks again
	// idleCheckpoint after the last commit (wal.go).
	ckpt   *walCheckpointer
	idleMu sync.Mutex
	idle   *time.Timer
	closed bool

	// closing is set when Close begins: a commit that takes the writer's
	// connection after it refuses (Close finalizes the raw statements,
	// rawexec.go, once it holds that connection itself).
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// commonPragmas are the connection settings shared by every pool, with
// the connection's lock wait (busy_timeout: busyTimeout or windowWait).
// The audit log's guard needs foreign keys, and recursive triggers make
// the delete an INSERT OR REPLACE does fire its DELETE trigger
// (00009_audit_chain_keys.sql).
func commonPragmas(wait time.Duration) string {
	return fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=recursive_triggers(1)&_pragma=temp_store(memory)", wait.Milliseconds())
}

// busyTimeout is how long the writer waits for a lock another connection
// holds before it fails SQLITE_BUSY ("database is locked"): another
// process (a CLI command next to `serve`) holding the write lock. A
// variable for tests.
var busyTimeout = 10 * time.Second

// windowWait is how long this process's connections wait for each other
// inside a bulk window without a WAL (bulkjournal.go), instead of
// busyTimeout. There the file has rollback-mode locks and no other
// process has it open: a reader waits while one of the window's
// transactions writes the file, the transaction's commit waits for the
// readers reading it, and neither is a reason to fail. The longest of the
// window's transactions is the merge closing it, 5 to 15 s at 1M NHIs;
// a served store's reads (a report, a scan of every record) may take as
// long. With busyTimeout, a console request during the merge failed
// "database is locked", and a scan still running when EndBulk returned
// to WAL mode left the store refusing every commit until restarted.
// Readers keep it outside a window too: in WAL mode a reader waits only
// for a moment (a WAL being recovered), and holds no lock a writer waits
// for. A variable for tests.
var windowWait = 5 * time.Minute

// Page caches, per connection. The writer's holds the B-tree pages a
// commit's random-key inserts land on (links by external id, records by
// match key): a page found there is not read again from the file. The
// readers' scans and record loads read each page about once a call, and
// a reader drops its whole cache at its first read after any commit (WAL
// mode): each page it held is freed and the next read allocates it again.
// 1 MiB each made BenchmarkQuietPassEstate100k's quiet pass cheaper (2.3
// CPU-s against 3.0), but the bench command's passes, run one after the
// other on the same store, costlier: at 300k NHIs quiet 6.8 and 8.5 CPU-s
// and drift 10.7 and 11.2 with 1 MiB, 6.3 and 8.9 with 8 MiB; at 1M quiet
// 24.6 CPU-s with 1 MiB against 22.6 before. 8 MiB it is. The process
// stays small (one writer and max(4, GOMAXPROCS) readers).
const (
	writerCacheKiB = 65536
	readerCache    = "&_pragma=cache_size(-8192)"
)

// writerCache is the writer's DSN pragma for writerCacheKiB, the size the
// bulk window puts back when it closes.
var writerCache = "&_pragma=cache_size(-" + strconv.Itoa(writerCacheKiB) + ")"

// walCheckpointPages is how many WAL frames (256 MiB of 4 KiB pages) wait
// before the checkpointer (wal.go) copies them back into the database. A
// page a pass rewrites in many commits (a leaf of a random-key B-tree:
// links by external id, records by match key) is copied once per
// checkpoint, so fewer, larger checkpoints copy less: at 100k NHIs the
// first pass's checkpoints took 1.1 s of CPU every 8192 pages, 0.7 s every
// 32768 and 0.4 s every 131072. walHardLimitPages is the writer's own
// wal_autocheckpoint, the bound should the checkpointer fall behind.
// Between passes the WAL is checkpointed anyway once the writer is idle
// (idleCheckpoint), and journal_size_limit truncates the file to 64 MiB
// when it starts over, so a small store's WAL stays small. Variables for
// tests only.
var (
	walCheckpointPages = 65536
	walHardLimitPages  = 2 * walCheckpointPages
)

// walDrainPages is how many frames wait, after a checkpoint that ran
// beside commits, before the checkpointer copies again (wal.go): an
// eighth of walCheckpointPages, 32 MiB. Copying after every commit
// instead, as it once did, wrote each page a pass's outcome commits share
// (the audit log's last pages and its record index, the outbox's pages
// and indexes, a B-tree's inner pages) back once per commit, and synced
// the database each time: at 1M NHIs the first pass's writes after its
// bulk window took 15.7 and 17.8 s that way, 12.8 and 15.1 s this way
// (two pairs of runs, alternated), its CPU 2.5 to 4.7 s less.
func walDrainPages() int { return walCheckpointPages / 8 }

// idleCheckpoint is how long after its last commit the checkpointer copies
// whatever is left of the WAL back: a pass's commits come every few
// hundred milliseconds, a served store between passes does not keep a
// large WAL.
const idleCheckpoint = 2 * time.Second

// Open opens (creating it and its parent directories, 0700, if missing)
// the store in the SQLite file at path and brings its schema up to date.
// It returns EINVALID when path is empty, cannot be opened or is not a
// SQLite database, and EINTERNAL for other failures.
func Open(ctx context.Context, path string) (*Store, error) {
	const op = "sqlite.Open"
	if path == "" {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: "store path is empty: give the database file, as in sqlite:./nhisync-data/nhisync.db"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("store path %s is not usable", path), Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("cannot create the directory of store %s", path), Err: err}
	}
	// A file: URI, so that '?' or '#' in the path stay part of the name.
	uri := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	if !strings.HasPrefix(uri, "file:///") {
		// Windows volume paths need the extra slash (file:///C:/…).
		uri = "file:///" + strings.TrimPrefix(uri, "file:")
	}
	s := &Store{path: path, file: abs, heads: headPool{file: abs}, token: storeTokens.Add(1), links: linkLog{seed: maphash.MakeSeed()}}
	lock, alone, err := lockOpen(abs)
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("cannot lock store %s (is its directory writable?)", path), Err: err}
	}
	s.lock = lock
	// A bulk window without a WAL whose process died before syncing it
	// left the store as it was before the window beside it: put it back.
	if alone {
		if err := restorePreWindow(abs); err != nil {
			lock.release()
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot put back store %s as it was before a bulk load its process did not finish", path), Err: err}
		}
	}
	// A WAL left while nobody has the store open was left by a process that
	// never closed it: check the store before anything reads or writes it.
	unclean := false
	if alone {
		if st, err := os.Stat(abs + "-wal"); err == nil && st.Mode().IsRegular() {
			unclean = true
		}
	}
	// The writer writes the WAL through walBufVFS (walvfs.go).
	if err := registerWALVFS(); err != nil {
		lock.release()
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "cannot set up SQLite", Err: err}
	}
	s.w, err = sql.Open("sqlite", uri+"?vfs="+walBufVFS+"&"+commonPragmas(busyTimeout)+writerCache+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"+
		fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", 2*walHardLimitPages)+"&_pragma=journal_size_limit(67108864)"+
		"&_txlock=immediate")
	if err != nil {
		lock.release()
		return nil, s.openError(op, err)
	}
	if unclean {
		if err := s.quickCheck(ctx); err != nil {
			s.w.Close()
			lock.release()
			return nil, err
		}
	}
	if alone {
		if err := lock.shared(); err != nil {
			s.w.Close()
			lock.release()
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot lock store %s", path), Err: err}
		}
	}
	// One writer: SQLite allows one anyway, and waiting on the pool is
	// cheaper and fairer than spinning on SQLITE_BUSY.
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.migrate(ctx); err != nil {
		// Another process may have migrated the same new file at the same
		// moment; then the second attempt finds nothing left to do.
		if err2 := s.migrate(ctx); err2 != nil {
			s.w.Close()
			lock.release()
			return nil, s.openError(op, err)
		}
	}
	// A bulk window a process left open (it died inside it) closes now:
	// staged links move, records' match-key index is built. Unless another
	// process has the store open: that one may be inside its window.
	if alone {
		err := s.closeWindow(ctx)
		if err == nil {
			err = s.settleWindow(ctx)
		}
		if err != nil {
			s.w.Close()
			lock.release()
			return nil, internal(op, err)
		}
	}
	s.ckpt, err = startCheckpointer(uri, abs)
	if err != nil {
		s.w.Close()
		lock.release()
		return nil, s.openError(op, err)
	}
	// Readers open the file through walBufVFS too: in a bulk window
	// without a WAL they wait there for the writer's queued page writes
	// (bulkasync.go).
	s.r, err = sql.Open("sqlite", uri+"?vfs="+walBufVFS+"&"+commonPragmas(windowWait)+readerCache+"&_pragma=synchronous(FULL)&_query_only=1")
	if err != nil {
		s.ckpt.close()
		s.w.Close()
		lock.release()
		return nil, s.openError(op, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, s.openError(op, err)
	}
	return s, nil
}

// OpenURL opens the store named by a "sqlite:PATH" URL. It returns EINVALID for another scheme, and what
// Open returns otherwise.
func OpenURL(ctx context.Context, storeURL string) (nhisync.Store, error) {
	path, ok := strings.CutPrefix(storeURL, "sqlite:")
	if !ok {
		// The URL is not echoed: another store's URL may hold a password.
		return nil, nhisync.Errorf(nhisync.EINVALID, "the SQLite store's URL is sqlite:PATH")
	}
	return Open(ctx, path)
}

// migrate applies the embedded migrations that the database lacks.
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// quickCheck runs PRAGMA quick_check (every page and index structure,
// without comparing index contents to their tables: seconds for a large
// store, where integrity_check takes minutes) and refuses a corrupt store.
func (s *Store) quickCheck(ctx context.Context) error {
	const op = "sqlite.Open"
	var problems []string
	err := func() error {
		rows, err := s.w.QueryContext(ctx, `PRAGMA quick_check(5)`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			if line != "ok" {
				problems = append(problems, strings.Join(strings.Fields(strings.TrimPrefix(line, "*** in database main ***")), " "))
			}
		}
		return rows.Err()
	}()
	if c := sqliteCode(err) & 0xff; c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB {
		problems = append(problems, err.Error())
	} else if err != nil {
		return s.openError(op, err)
	}
	if len(problems) > 0 {
		return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf(
			"store %s is corrupt (checked after an unclean shutdown; quick_check: %s): nhisync will not run on it; restore it from a backup (sync then re-reads every system), and check the disk",
			s.path, strings.Join(problems, "; "))}
	}
	return nil
}

// openError explains a failure to open the database, naming the path the
// caller gave (never a DSN).
func (s *Store) openError(op string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("store %s is not a SQLite database", s.path), Err: err}
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY:
			return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("cannot open store %s for reading and writing (read-only file, directory or volume?): make the store file and its directory writable by this user", s.path), Err: err}
		case sqlite3.SQLITE_CORRUPT:
			return &nhisync.Error{Code: nhisync.EINVALID, Op: op, Message: fmt.Sprintf("store %s is corrupt: nhisync will not run on it; restore it from a backup (sync then re-reads every system), and check the disk", s.path), Err: err}
		case sqlite3.SQLITE_FULL:
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: fmt.Sprintf("the disk holding store %s is full: free space on that volume, then run again", s.path), Err: err}
		case sqlite3.SQLITE_IOERR:
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op, Message: fmt.Sprintf("the disk holding store %s failed to read or write (I/O error): check the volume, then run again", s.path), Err: err}
		}
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: fmt.Sprintf("cannot open store %s", s.path), Err: err}
}

// Close releases both connection pools, after running PRAGMA optimize as
// SQLite recommends for long-lived connections. A commit running when
// Close begins ends first; one beginning after is refused (EINTERNAL,
// "the store is closed"). Closing again does nothing. Failures are
// EINTERNAL.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// A bulk window without a WAL is synced, and stays open for the
		// next Open to close, as one with a WAL closed without EndBulk.
		var errs []error
		s.bulkMu.Lock()
		if s.journalless {
			errs = append(errs, s.leaveJournalless(context.Background()))
		}
		s.bulkMu.Unlock()
		s.closing.Store(true)
		// The checkpointer's connection closes first: the last one to
		// close checkpoints the WAL and removes it.
		errs = append(errs, s.stopCheckpoints())
		s.heads.close()
		// The statements are finalized while Close holds the writer's
		// connection: a commit running on it ends first, and one that
		// takes it after sees closing and refuses, so none runs a
		// statement whose memory is freed under it.
		ctx := context.Background()
		conn, err := s.w.Conn(ctx)
		if err == nil {
			_, err = conn.ExecContext(ctx, "PRAGMA optimize")
		}
		errs = append(errs, err)
		if testHookClosing != nil {
			testHookClosing(s)
		}
		s.stmts.close()
		s.raw.close()
		if conn != nil {
			errs = append(errs, conn.Close())
		}
		errs = append(errs, s.w.Close())
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		s.lock.release()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = &nhisync.Error{Code: nhisync.EINTERNAL, Op: "sqlite.Close", Message: "closing the store failed", Err: err}
		}
	})
	return s.closeErr
}

// testHookClosing, set by tests, runs in Close while it holds the
// writer's connection, before it finalizes the commits' statements.
var testHookClosing func(*Store)

// closedErr is what a commit beginning once Close began returns.
func (s *Store) closedErr() error {
	if !s.closing.Load() {
		return nil
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: "the store is closed: nothing of this step was written"}
}

// ExecRaw runs one SQL statement on the writer connection, outside the
// store's own logic. It is for tests that must show the schema refuses
// tampering (storetest uses it on the audit log) and for repair tools; the
// engine never calls it. Errors are EINTERNAL.
func (s *Store) ExecRaw(ctx context.Context, query string, args ...any) error {
	if _, err := s.w.ExecContext(ctx, query, args...); err != nil {
		return internal("sqlite.ExecRaw", err)
	}
	return nil
}

// internal wraps a driver failure as EINTERNAL.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var ne *nhisync.Error
	if errors.As(err, &ne) {
		if ne.Op == "" {
			ne.Op = op
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store operation was canceled", Err: err}
	}
	if e := storeFault(op, err); e != nil {
		return e
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store failed unexpectedly (see the cause below); nothing of this step was written", Err: err}
}

// storeFault names the cause of a storage failure a person can fix (a full
// disk, a read-only or corrupt store, an I/O error) and what to do about
// it; nil for other failures. SQLite undoes the failed statement's
// transaction whole, so each message can say nothing was written.
func storeFault(op string, err error) *nhisync.Error {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_FULL:
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op,
			Message: "the disk holding the store is full: nothing of this step was written; free space on that volume (or move the store with `store:`), then run again", Err: err}
	case sqlite3.SQLITE_READONLY:
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op,
			Message: "the store is read-only (its file, its directory or its volume cannot be written): nothing of this step was written; make the store file and its directory writable by this user, then run again", Err: err}
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return &nhisync.Error{Code: nhisync.EINTERNAL, Op: op,
			Message: "the store is corrupt: nhisync stopped before writing anything more; restore the store from a backup (then run sync, which re-reads every system), and check the disk", Err: err}
	case sqlite3.SQLITE_IOERR:
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Op: op,
			Message: "the disk holding the store failed to read or write (I/O error): nothing of this step was written; check the volume (dmesg, free space, the network mount), then run again", Err: err}
	}
	return nil
}

// notFound returns ENOTFOUND for a missing item.
func notFound(op, what string, id any) error {
	return &nhisync.Error{Code: nhisync.ENOTFOUND, Op: op, Message: fmt.Sprintf("no %s %v", what, id)}
}

// sqliteCode returns the extended result code of a SQLite error (0 for
// other errors).
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	var he *headError
	if errors.As(err, &he) {
		return he.code
	}
	return 0
}
