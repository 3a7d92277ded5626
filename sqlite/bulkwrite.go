package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A bulk window's page writes without a WAL, gathered. In a window
// without a WAL (bulkjournal.go) each commit writes every page it
// dirtied into the database file, one 4 KiB pwrite each, in increasing
// page order; a first pass's pages are mostly new, so they mostly follow
// one another in the file, and here a pwrite costs several times the
// copy of its bytes: at 300k NHIs those writes were a third of the CPU
// of the goroutine that commits, the pass's critical path. While the
// window runs the writer's database file (opened through walBufVFS)
// gathers consecutive writes in a walBufSize buffer, as a checkpoint's
// copy loop does (ckptwrite.go), and writes them in one pwrite when the
// next write does not follow them, when they fill the buffer, and before
// anything else touches the file: a read, a sync, a truncate, its size, a
// lock, an unlock, any file control, its close.
//
// Why no commit succeeds whose pages are not in the file. SQLite's pager
// commits a transaction in rollback mode by writing its dirty pages
// (pager_write_pagelist), growing the file if it must (its size asked
// first: a flush) and then, even with synchronous=OFF, sending
// SQLITE_FCNTL_SYNC before it would sync (sqlite3PagerSync); only after
// that call succeeds is the commit done. That file control writes out
// what is gathered and returns the failure of that write, which fails the
// commit as the failed page write itself would have; so does a write that
// no longer follows the buffer. Pages a transaction spills before it
// commits (its cache full) are read back only through this file, which
// writes them out first, and its commit's FCNTL_SYNC comes after them
// too. The window's commits are made durable by EndBulk's sync, as
// before: this changes which system calls carry the bytes, not when they
// must be on disk.
//
// The writer turns gathering on once it is in the window's journal mode
// and off before it goes back to WAL mode (setBulkGather, a file control
// of this VFS's own); a file with a WAL beside it never gathers this way,
// whatever the flag says: there the database is written only by
// checkpoints, whose last page write must not be gathered.

// fcntlBulkGather is the file control (an opcode of this VFS's own, far
// above SQLite's) that turns gathering on (*pArg != 0) or off; the
// database file's dbFileControl answers it and never passes it on.
const fcntlBulkGather = 0x6e68_7301

var (
	// bulkPageWrites and bulkDBWrites count the page writes SQLite made
	// while gathering and the writes that carried them to the file
	// (tests, measurements).
	bulkPageWrites, bulkDBWrites atomic.Int64
	// bulkWriteFault, when set, fails a write of n gathered bytes at
	// off to the database file with the code it returns, as a failing
	// disk would (tests).
	bulkWriteFault func(off, n int64) int32
	// bulkSkipSyncFlush, when set, leaves gathered pages in the buffer
	// at SQLITE_FCNTL_SYNC, for a later call to write out, as an unsafe
	// design would (tests: the failure TestBulkGatherFailsTheCommit must
	// catch).
	bulkSkipSyncFlush bool
	// bulkAsyncWrites has a goroutine of its own write what the writer
	// gathers (bulkasync.go); tests of the design before turn it off.
	bulkAsyncWrites = true
)

// bulkControl answers fcntlBulkGather for the database file pFile, whose
// buffer was written out just before.
func bulkControl(tls *libc.TLS, pFile, pArg uintptr) int32 {
	t := tailOf(pFile)
	if pArg == 0 || *(*int32)(cptr(pArg)) == 0 {
		t.bulk = false
		return stopBulkAsync(tls, pFile, false)
	}
	if t.buf == 0 {
		t.buf = sqlite3.Xsqlite3_malloc64(tls, walBufSize)
		if t.buf == 0 {
			return sqlite3.SQLITE_NOMEM
		}
	}
	t.bulk = true
	if t.peer == 0 && bulkAsyncWrites {
		startBulkAsync(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

// bulkWrite gathers a write of amt bytes at off to the database file; a
// write larger than half the buffer goes out on its own.
func bulkWrite(tls *libc.TLS, pFile, zBuf uintptr, amt, off int64) int32 {
	bulkPageWrites.Add(1)
	if amt > walBufSize/2 {
		if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
			return rc
		}
		if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
		return dbWriteOut(tls, pFile, zBuf, amt, off, false)
	}
	return gatherWrite(tls, pFile, zBuf, amt, off)
}

// setBulkGather turns the gathering of the writer's page writes on or
// off on conn, the writer's connection; turning it off writes out what is
// gathered, and fails if that write fails.
func setBulkGather(ctx context.Context, conn *sql.Conn, on bool) error {
	return conn.Raw(func(dc any) error {
		db, tls, ok := driverConn(dc)
		if !ok {
			// Not reachable below database/sql: gathering was never
			// turned on, and each page is its own write, as SQLite does.
			return nil
		}
		arg := tls.Alloc(4)
		defer tls.Free(4)
		*(*int32)(cptr(arg)) = 0
		if on {
			*(*int32)(cptr(arg)) = 1
		}
		rc := sqlite3.Xsqlite3_file_control(tls, db, 0, fcntlBulkGather, arg)
		if rc == sqlite3.SQLITE_OK || rc == sqlite3.SQLITE_NOTFOUND {
			return nil // NOTFOUND: a file not opened through walBufVFS, which never gathers
		}
		return errors.New(libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	})
}
