package sqlite

import (
	"context"
	"database/sql"
	"strconv"
)

// writerMapBytes is how much of the store file the writer's connection
// reads through a memory map (PRAGMA mmap_size; modernc.org/sqlite caps
// it at 2 GiB less 64 KiB) while a pass decides records the store holds.
// Those reads, its commits and the drain's (its loads marked
// nhisync.ForCommit read on a reader: forCommitReads), land on the pages
// of those records wherever in the file they are: with read calls, one
// system call and one page of the writer's cache each, which on a
// virtual machine's CPUs is most of what the reads cost (at 1M NHIs the
// bench's drift pass spent 1.3 s loading ~14k records, when it loaded
// them on the writer, and 1.4 s committing them). Through the map SQLite reads a page
// where the kernel caches it, and a page fault maps it with up to 15
// cached neighbours the first time: that pass's decide phase took a
// median 2.1 s instead of 3.0, its apply phase 2.3 s instead of 3.1
// (README, Performance). Advised MADV_RANDOM, the map faulted each page
// alone and the loads took longer than read calls: the neighbours are
// the gain.
//
// The map is the kernel's cache of the file, not memory of the process's
// own, but the pages it maps count in the process's RSS. So the writer
// maps the file only from a pass's first load for a commit (mapWriter)
// until it has been idle for idleCheckpoint (unmapWriter, wal.go): a
// first pass into an empty store loads none, and a served store between
// passes holds no map. The bulk window never maps it: its reads wait on
// its queued writes (bulkasync.go) and its sorts read whole tables. A
// disk failing to read a mapped page ends the process (SIGBUS), where a
// read call would fail the transaction: either way the pass fails, and
// the store is as its last commit left it.
const writerMapBytes = 1 << 31

// mapWriter maps the store file into the writer's connection
// (writerMapBytes), unless it is mapped already or the bulk window is
// open. A writer that cannot keeps its read calls.
//
// Lock order: the window opening or closing and a token written
// (durably) hold bulkMu while they wait for the writer's connection, and
// a commit holds the connection (it takes no lock to ask inBulk). So
// mapWriter, which a pass's loads call while its commits run, takes the
// connection first (after the commit in flight) and bulkMu only if it is
// free: waiting for bulkMu while holding the connection would deadlock
// with them. When bulkMu is taken (a window opening or closing, a token
// written, the idle unmap), this load maps nothing and the next one tries
// again.
func (s *Store) mapWriter(ctx context.Context) {
	if s.writerMapped.Load() {
		return
	}
	s.withWriter(ctx, func(conn *sql.Conn) {
		if s.bulk.Load() || s.writerMapped.Load() {
			return
		}
		if _, err := conn.ExecContext(ctx, `PRAGMA mmap_size = `+strconv.Itoa(writerMapBytes)); err == nil {
			// SQLite maps the file at a read transaction's first page:
			// this one's, so that the commits' reads, which fetch their
			// pages for writing, find the map there (a read call copies
			// from it).
			var one int64
			_ = conn.QueryRowContext(ctx, `SELECT id FROM records LIMIT 1`).Scan(&one)
			s.writerMapped.Store(true)
			// The idle clock starts now, not at the next commit: a pass
			// that fails before committing leaves no map behind.
			s.idleFromNow()
		}
	})
}

// withWriter runs fn on the writer's connection with bulkMu held, in
// mapWriter's lock order: the connection first (after the commit in
// flight, if any), holding no lock, then bulkMu only if it is free; else
// fn does not run.
func (s *Store) withWriter(ctx context.Context, fn func(conn *sql.Conn)) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	if !s.bulkMu.TryLock() {
		return
	}
	defer s.bulkMu.Unlock()
	fn(conn)
}

// execer is the writer's pool or one of its connections.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// unmapWriter unmaps the store file from the writer's connection (w), once
// it has been idle (wal.go) and before the bulk window opens; s.bulkMu
// held.
func (s *Store) unmapWriter(ctx context.Context, w execer) error {
	if !s.writerMapped.Load() {
		return nil
	}
	if _, err := w.ExecContext(ctx, `PRAGMA mmap_size = 0`); err != nil {
		return err
	}
	s.writerMapped.Store(false)
	return nil
}

// unmapIdleWriter is unmapWriter for the idle timer (wal.go), in
// mapWriter's lock order (withWriter). Failing, the map stays until
// the next idle spell.
func (s *Store) unmapIdleWriter() {
	if s.closing.Load() || !s.writerMapped.Load() {
		return
	}
	ctx := context.Background()
	s.withWriter(ctx, func(conn *sql.Conn) { _ = s.unmapWriter(ctx, conn) })
}
