package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nhisync/nhisync"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The bulk window without a WAL. In WAL mode every page a window's commit
// writes goes to the WAL, and the checkpointer (wal.go) copies it again
// into the database: a first pass into an empty store wrote every page of
// it twice (at 300k NHIs the checkpointer took 12% of the pass's CPU, and
// the commits 2.4 CPU-s more writing WAL frames). When this process has
// the store to itself, the window's commits run in rollback-journal mode
// instead, with the journal in memory (a failed commit still rolls back)
// and no sync, writing each page into the database once; the store as it
// was when the window opened is kept beside it (preWindowSuffix), synced,
// until the window's commits are.
//
// Opening such a window (enterJournalless) takes the open lock
// exclusively (openlock_*.go; a process opening the store meanwhile
// waits for the window's commits to be synced), closes this store's
// other connections to the file (the checkpointer's, the idle readers'
// and head scans'), leaves WAL mode on the writer (SQLite copies the WAL
// back and removes it, and refuses while any other connection has the
// file open: then, or when another process has the store open, the
// window keeps the WAL as before), and copies the store to the file
// beside it. Readers open again as they are needed, in rollback mode:
// while a commit writes the file they wait for it, and it for them, as
// long as the other takes (windowWait, store.go).
//
// EndBulk first moves the staged links and builds the indexes the window
// dropped (closeWindow) while it still runs without a WAL, so that they too
// are written once, then makes the window durable (leaveJournalless): WAL
// mode back, the database synced, the copy removed, the checkpointer back,
// the open lock shared again; then it goes on as for a window with a WAL
// (bulk.go), whose story from then on is unchanged. A process that
// dies before the copy is removed leaves a database half written: the
// next Open that has the store to itself puts the copy back
// (restorePreWindow), and nothing of the window is left. Nothing of it
// had left the store either: the engine sends no write before EndBulk
// returns, and the checkpoints the window signed are held until then; the
// next pass into the store, empty again, is a first pass again.
//
// Close inside such a window makes it durable as EndBulk would, and
// leaves it open as a window with a WAL closed without EndBulk: the next
// Open closes it.
//
// Every write of this process is then part of the window, and lost with
// it if the process dies first. The pass's commits are the window; lease
// rows die with their process anyway, claims are refused and checkpoints
// held until EndBulk, and a person's actions wait for the pass's lease.
// A write that must outlive a kill and is none of those (a token created
// or revoked) goes through durably, which holds it until the window ends:
// so must any such write added to the store.

// preWindowSuffix names the copy of the store kept while a window runs
// without a WAL; preWindowTemp the copy while it is being written.
const (
	preWindowSuffix = ".prewindow"
	preWindowTemp   = ".prewindow-tmp"
)

// journallessWindows turns windows without a WAL on; tests of the window
// with a WAL turn it off.
var journallessWindows = true

// journallessFault, set by tests, fails a step of entering or leaving a
// window without a WAL, as a failing disk would.
var journallessFault = func(step string) error { return nil }

// enterJournalless turns the writer to rollback mode without a sync for a
// bulk window, when this process has the store to itself, and reports
// whether it did; the caller holds bulkMu. When it did not, everything is
// as it was (a failure is returned, the store in WAL mode).
func (s *Store) enterJournalless(ctx context.Context) (_ bool, err error) {
	if !journallessWindows || s.ckpt == nil {
		return false, nil
	}
	alone, err := s.lock.exclusive()
	if err != nil || !alone {
		return false, err
	}
	s.ckpt.pause()
	s.dropIdle()
	left := false
	defer func() {
		if !left {
			err = errors.Join(err, s.abandonJournalless(context.WithoutCancel(ctx)))
		}
	}()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	var mode string
	err = conn.QueryRowContext(ctx, `PRAGMA journal_mode = MEMORY`).Scan(&mode)
	if c := sqliteCode(err) & 0xff; c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED || (err == nil && mode != "memory") {
		return false, nil // another connection has the file open
	}
	if err != nil {
		return false, err
	}
	// Without a WAL this process's readers hold the file while they read:
	// the window's commits wait for them, however long (windowWait).
	if err := setLockWait(ctx, conn, windowWait); err != nil {
		return false, err
	}
	if err := s.copyPreWindow(ctx, conn); err != nil {
		return false, err
	}
	if err := journallessFault("copied"); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = OFF`); err != nil {
		return false, err
	}
	if err := setBulkGather(ctx, conn, true); err != nil {
		return false, err
	}
	left = true
	return true, nil
}

// dropIdle closes the idle connections of the reader pool and of the head
// scans: in WAL mode each holds a lock on the file that keeps the writer
// from leaving it. The pools open new ones as they need them.
func (s *Store) dropIdle() {
	n := s.r.Stats().MaxOpenConnections
	s.r.SetMaxIdleConns(0)
	s.r.SetMaxIdleConns(n)
	p := &s.heads
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, c := range free {
		c.close()
	}
}

// copyPreWindow copies the store, through conn (in rollback mode, its WAL
// copied back), to the file beside it, synced, under a temporary name
// until it is whole.
func (s *Store) copyPreWindow(ctx context.Context, conn *sql.Conn) error {
	tmp := s.file + preWindowTemp
	if err := removeIfAny(tmp); err != nil {
		return err
	}
	err := conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return fmt.Errorf("the SQLite driver's connection (%T) cannot copy a database", dc)
		}
		bk, err := b.NewBackup(tmp)
		if err != nil {
			return err
		}
		_, err = bk.Step(-1)
		return errors.Join(err, bk.Finish())
	})
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, s.file+preWindowSuffix)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.file))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copying the store before its bulk load: %w", err)
	}
	return nil
}

// backToWAL turns the writer back to WAL mode with synchronous=FULL and
// its lock wait to busyTimeout. It needs the file to itself a moment: a
// reader holding it is waited for, up to windowWait.
func (s *Store) backToWAL(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Gathered page writes end first (bulkwrite.go): none is left, as
	// each commit wrote its own out, but WAL mode must find none.
	if err := setBulkGather(ctx, conn, false); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	deadline := time.Now().Add(windowWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var mode string
		err := conn.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && mode == "wal" {
			return setLockWait(ctx, conn, busyTimeout)
		}
		c := sqliteCode(err) & 0xff
		if err != nil && c != sqlite3.SQLITE_BUSY && c != sqlite3.SQLITE_LOCKED {
			return err
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%w: the store stayed in journal mode %q", errReadersHeld, mode), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// setLockWait sets how long conn waits for a lock another connection
// holds (busy_timeout): windowWait inside a window without a WAL,
// busyTimeout outside it.
func setLockWait(ctx context.Context, conn *sql.Conn, wait time.Duration) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, wait.Milliseconds()))
	return err
}

// errReadersHeld is backToWAL's failure when this process's readers held
// the file for windowWait: no disk failed.
var errReadersHeld = errors.New("other connections of this process held the store")

// abandonJournalless puts the store back as it was before
// enterJournalless, for a window that did not open: WAL mode, no copy,
// the checkpointer back, the open lock shared. Nothing was committed
// without the WAL.
func (s *Store) abandonJournalless(ctx context.Context) error {
	err := s.backToWAL(ctx)
	if err == nil {
		// The copy goes only once the WAL is back: a process dying
		// before puts the copy back, the same store.
		err = errors.Join(removeIfAny(s.file+preWindowTemp), removeIfAny(s.file+preWindowSuffix))
	}
	s.ckpt.resume()
	return errors.Join(err, s.lock.shared())
}

// durably runs write, a write of this process outside the pass's
// commits (a token created or revoked), when it is durable once it
// returns: not inside a bulk window without a WAL, whose writes a process
// dying before EndBulk loses (the next Open puts the store back as it was
// before the window), but after it. The pass's own commits are the
// window; a person's actions wait for its lease anyway. write runs under
// bulkMu, so no window opens while it runs; it waits for one that runs
// (at most the first pass's deciding), or fails when ctx ends first or
// the window failed to sync.
func (s *Store) durably(ctx context.Context, op string, write func() error) error {
	s.bulkMu.Lock()
	for s.journalless {
		ended := s.journallessEnded
		s.bulkMu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.bulkMu.Lock()
	}
	defer s.bulkMu.Unlock()
	// A window whose sync failed is put back by the next Open: nothing
	// written after it would stay.
	if err := s.unsyncedErr(op); err != nil {
		return err
	}
	return write()
}

// removeIfAny removes the file at name if there is one.
func removeIfAny(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// leaveJournalless makes a window's commits without a WAL durable: WAL
// mode back, the database synced, the copy of the store removed, the
// checkpointer back, the open lock shared again. The caller holds bulkMu.
// On failure the copy stays, and the store refuses commits and claims
// (unsynced); other processes may open it again, and find it as a window
// with a WAL left unsynced (its mark stored: they claim nothing, and
// serve the last checkpoint before it), until an Open that has it to
// itself puts the copy back.
func (s *Store) leaveJournalless(ctx context.Context) (err error) {
	s.journalless = false
	close(s.journallessEnded)
	s.writeback.end()
	s.writeback = nil
	defer func() {
		s.ckpt.resume()
		err = errors.Join(err, s.lock.shared())
	}()
	err = s.backToWAL(ctx)
	if err == nil {
		err = journallessFault("wal")
	}
	if err == nil {
		err = s.syncFiles()
	}
	if err == nil {
		err = os.Remove(s.file + preWindowSuffix)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.file))
	}
	if err != nil {
		const after = "so this store commits nothing more and sends none of its queued writes"
		const restart = "restart nhisync: opening the store puts it back as it was before the load, and the next pass loads it again"
		msg := fmt.Sprintf("cannot sync the first pass's bulk load to disk (%s), %s; fix the disk, then %s", err, after, restart)
		if errors.Is(err, errReadersHeld) {
			msg = fmt.Sprintf("cannot end the first pass's bulk load: reads of this process (API or console requests, a report) held the store for %s as it ended (%s), %s; %s", windowWait, err, after, restart)
		}
		err = &nhisync.Error{Code: nhisync.EINTERNAL, Message: msg, Err: err}
		s.unsyncedMu.Lock()
		s.unsynced = err
		s.unsyncedMu.Unlock()
		return err
	}
	return nil
}

// restorePreWindow puts back the copy of the store a bulk window without
// a WAL left (its process died before the window's commits were synced):
// the database is then as it was when the window opened. Open calls it
// when it has the store to itself, before anything opens the database.
func restorePreWindow(file string) error {
	if err := removeIfAny(file + preWindowTemp); err != nil {
		return err
	}
	pre := file + preWindowSuffix
	if _, err := os.Stat(pre); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if err := removeIfAny(file + suffix); err != nil {
			return err
		}
	}
	if err := os.Rename(pre, file); err != nil {
		return err
	}
	return syncDir(filepath.Dir(file))
}

// syncFile syncs the file at name.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir syncs a directory, so that a file created, renamed or removed
// in it stays so after a power loss.
func syncDir(dir string) error { return syncFile(dir) }
