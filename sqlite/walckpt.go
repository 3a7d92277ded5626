package sqlite

import (
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A checkpoint's read-ahead. A checkpoint copies each page's last frame
// from the WAL into the database, in the order of the pages, one 4 KiB
// pread each: at 300k NHIs the first pass's checkpointer spent ~0.7 CPU-s
// in them, a system call costing here about ten times the copy of the
// bytes it brings. A first pass's pages are mostly new, appended commit
// after commit, so the last frames of consecutive pages mostly lie one
// after the other in the WAL. Here a WAL file opened through walBufVFS
// serves a checkpoint's frame reads from a walBufSize buffer that one
// pread fills from the frame asked for on, and the frames that follow
// are read from it.
//
// The buffer is valid only inside one checkpoint's copy loop: SQLite sends
// SQLITE_FCNTL_CKPT_START and SQLITE_FCNTL_CKPT_DONE to the database file
// around it (walCheckpoint), and the database file opened through
// walBufVFS hands them to its connection's WAL file (linkWAL). Inside the
// loop SQLite reads only frames it may copy (up to mxSafeFrame), which no
// one overwrites until the checkpoint is published: a writer rewrites
// only the frames of its own transaction, past the last commit, and
// starts the WAL over only once every frame is copied back. Bytes read
// ahead past those frames (a writer may be appending) are never served,
// as the loop skips their frames, and the buffer is dropped at
// CKPT_DONE, and at any other call on the WAL file (a write, a sync, a
// truncate, its size, a lock, a file control, its close) and at any lock
// of the database file. The read-ahead stops at the WAL's size when the
// loop first reads (every frame it may copy is in the file by then); a
// read-ahead that fails for any reason is dropped and the frame read
// alone, as SQLite would have.

var (
	// ckptDBMethods is the io-methods table of a main database file
	// opened through walBufVFS: its own methods but for its file
	// controls, lock calls and close.
	ckptDBMethods sqlite3.Tsqlite3_io_methods

	// ckptReads and ckptPreads count the frame reads of checkpoints and
	// the reads that went to the WAL file for them (tests, measurements).
	ckptReads, ckptPreads atomic.Int64
	// ckptReadAhead counts the bytes read ahead (tests, measurements).
	ckptReadAhead atomic.Int64
	// readAheadLeak, when set, keeps a read-ahead buffer past the end of
	// its checkpoint (tests: the failure TestReadAheadEndsWithItsCheckpoint
	// must catch).
	readAheadLeak bool
)

// walStructSize is the size of SQLite's Wal object, which holds its WAL
// file's object right after it (sqlite3WalOpen).
const walStructSize = unsafe.Sizeof(sqlite3.TWal{})

func registerCkptDBMethods() {
	m := &ckptDBMethods
	m.FiVersion = 3
	setFn(&m.FxClose, dbClose)
	setFn(&m.FxRead, dbRead)
	setFn(&m.FxWrite, dbWrite)
	setFn(&m.FxTruncate, dbTruncate)
	setFn(&m.FxSync, dbSync)
	setFn(&m.FxFileSize, dbFileSize)
	setFn(&m.FxLock, dbLock)
	setFn(&m.FxUnlock, dbUnlock)
	setFn(&m.FxCheckReservedLock, walCheckReservedLock)
	setFn(&m.FxFileControl, dbFileControl)
	setFn(&m.FxSectorSize, walSectorSize)
	setFn(&m.FxDeviceCharacteristics, walDeviceCharacteristics)
	setFn(&m.FxShmMap, walShmMap)
	setFn(&m.FxShmLock, dbShmLock)
	setFn(&m.FxShmBarrier, walShmBarrier)
	setFn(&m.FxShmUnmap, walShmUnmap)
	setFn(&m.FxFetch, dbFetch)
	setFn(&m.FxUnfetch, walUnfetch)
}

// linkWAL links the WAL file pFile, just opened as zName, to its
// connection's database file, when that was opened through walBufVFS.
// SQLite opens a WAL file only in sqlite3WalOpen, into the memory right
// after its Wal object, which names the WAL file, its name and the
// database file; a Wal that does not name pFile and zName is no Wal this
// code knows, and the file is left unlinked (no read-ahead).
func linkWAL(pFile, zName uintptr) {
	if pFile < walStructSize {
		return
	}
	w := (*sqlite3.TWal)(cptr(pFile - walStructSize))
	if w.FpWalFd != pFile || w.FzWalName != zName || w.FpDbFd == 0 {
		return
	}
	db := w.FpDbFd
	if (*sqlite3.Tsqlite3_file)(cptr(db)).FpMethods != uintptr(unsafe.Pointer(&ckptDBMethods)) {
		return
	}
	dt := tailOf(db)
	if !dt.isDB || dt.peer != 0 {
		return
	}
	dt.peer = pFile
	tailOf(pFile).peer = db
}

// unlinkWAL ends the WAL file's read-ahead, frees its buffer and unlinks
// it from its database file, as it closes.
func unlinkWAL(tls *libc.TLS, pFile uintptr) {
	t := tailOf(pFile)
	t.inCkpt, t.raN = false, 0
	if t.ra != 0 {
		sqlite3.Xsqlite3_free(tls, t.ra)
		t.ra = 0
	}
	sqlite3.Xsqlite3_free(tls, t.plan)
	t.plan, t.planCap, t.planN = 0, 0, 0
	if t.peer != 0 {
		tailOf(t.peer).peer = 0
		t.peer = 0
	}
}

// endReadAhead ends a checkpoint's read-ahead on the WAL file pFile.
func endReadAhead(pFile uintptr) {
	t := tailOf(pFile)
	t.inCkpt, t.planN = false, 0
	if !readAheadLeak {
		t.raN = 0
	}
}

// dropReadAhead drops what the read-ahead of the database file db's WAL
// holds, the checkpoint going on.
func dropReadAhead(db uintptr) {
	if p := tailOf(db).peer; p != 0 && !readAheadLeak {
		tailOf(p).raN = 0
	}
}

// ckptRead serves a checkpoint's read of the WAL file pFile from its
// read-ahead, filling it first when the read is not in it.
func ckptRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	t := tailOf(pFile)
	amt := int64(iAmt)
	ckptReads.Add(1)
	nextPlanned(pFile, iOfst, amt)
	if t.raN > 0 && iOfst >= t.raOff && iOfst+amt <= t.raOff+t.raN {
		copy(unsafe.Slice((*byte)(cptr(zBuf)), amt), unsafe.Slice((*byte)(cptr(t.ra+uintptr(iOfst-t.raOff))), amt))
		return sqlite3.SQLITE_OK
	}
	if !readAheadLeak {
		t.raN = 0
	}
	read := fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxRead)
	if t.raSize < 0 {
		p := tls.Alloc(8)
		rc := fn[func(*libc.TLS, uintptr, uintptr) int32](baseMethods(pFile).FxFileSize)(tls, pFile, p)
		if rc == sqlite3.SQLITE_OK {
			t.raSize = *(*int64)(cptr(p))
		}
		tls.Free(8)
	}
	if t.ra == 0 && amt < walBufSize {
		t.ra = sqlite3.Xsqlite3_malloc64(tls, walBufSize)
	}
	n := min(int64(walBufSize), t.raSize-iOfst, planned(pFile, iOfst, amt))
	ckptPreads.Add(1)
	if t.ra == 0 || n < amt {
		return read(tls, pFile, zBuf, iAmt, iOfst)
	}
	if rc := read(tls, pFile, t.ra, int32(n), iOfst); rc != sqlite3.SQLITE_OK {
		t.raN = 0
		return read(tls, pFile, zBuf, iAmt, iOfst)
	}
	t.raOff, t.raN = iOfst, n
	ckptReadAhead.Add(n)
	copy(unsafe.Slice((*byte)(cptr(zBuf)), amt), unsafe.Slice((*byte)(cptr(t.ra)), amt))
	return sqlite3.SQLITE_OK
}

// The database file's methods: its own, but that the checkpoint's file
// controls start and end its WAL's read-ahead, and a lock or its close
// drop it.

func dbFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if op == sqlite3.SQLITE_FCNTL_CKPT_DONE {
		endGather(tls, pFile)
	}
	if op != sqlite3.SQLITE_FCNTL_SYNC || !bulkSkipSyncFlush {
		if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if op == fcntlBulkGather {
		return bulkControl(tls, pFile, pArg)
	}
	if !asyncNeedsNoWait(pFile, op) {
		if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if p := tailOf(pFile).peer; p != 0 {
		switch op {
		case sqlite3.SQLITE_FCNTL_CKPT_START:
			wt := tailOf(p)
			wt.inCkpt, wt.raSize = true, -1
			if !readAheadLeak {
				wt.raN = 0
			}
			startGather(tls, pFile)
		case sqlite3.SQLITE_FCNTL_CKPT_DONE:
			endReadAhead(p)
		}
	}
	return fn[func(*libc.TLS, uintptr, int32, uintptr) int32](baseMethods(pFile).FxFileControl)(tls, pFile, op, pArg)
}

func dbClose(tls *libc.TLS, pFile uintptr) int32 {
	t := tailOf(pFile)
	rc := dbFlush(tls, pFile, false)
	if t.async {
		if rc2 := stopBulkAsync(tls, pFile, true); rc == sqlite3.SQLITE_OK {
			rc = rc2
		}
	}
	t.gather = false
	sqlite3.Xsqlite3_free(tls, t.buf)
	t.buf = 0
	if t.peer != 0 {
		endReadAhead(t.peer)
		tailOf(t.peer).peer = 0
		t.peer = 0
	}
	m := baseMethods(pFile)
	(*sqlite3.Tsqlite3_file)(cptr(pFile)).FpMethods = t.base
	if rc2 := fn[func(*libc.TLS, uintptr) int32](m.FxClose)(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

// Every method that reads the file, changes its size, syncs it or locks
// it writes what is gathered first (there is nothing outside a
// checkpoint's copy loop, and nothing past its last page write).

func dbRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if tailOf(pFile).async {
		// The writer's own read: from its queue when a queued write
		// holds the bytes, from the file when none is to write them.
		if a := bulkAsyncOf(pFile); a != nil {
			rc, copied, queued := a.read(zBuf, int64(iAmt), iOfst)
			if rc != sqlite3.SQLITE_OK || copied {
				return rc
			}
			if !queued {
				return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxRead)(tls, pFile, zBuf, iAmt, iOfst)
			}
		}
	}
	if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxRead)(tls, pFile, zBuf, iAmt, iOfst)
}

func dbTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	rc := fn[func(*libc.TLS, uintptr, int64) int32](baseMethods(pFile).FxTruncate)(tls, pFile, size)
	if tailOf(pFile).async {
		if a := bulkAsyncOf(pFile); a != nil {
			a.truncated()
		}
	}
	return rc
}

func dbSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxSync)(tls, pFile, flags)
}

func dbFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if tailOf(pFile).async {
		// The writer's own size, asked at each commit, waits for
		// nothing: the furthest queued write ends the file otherwise.
		if a := bulkAsyncOf(pFile); a != nil {
			rc := fn[func(*libc.TLS, uintptr, uintptr) int32](baseMethods(pFile).FxFileSize)(tls, pFile, pSize)
			if rc == sqlite3.SQLITE_OK {
				*(*int64)(cptr(pSize)) = a.size(*(*int64)(cptr(pSize)))
			}
			return rc
		}
	}
	if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, uintptr) int32](baseMethods(pFile).FxFileSize)(tls, pFile, pSize)
}

func dbLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	dropReadAhead(pFile)
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxLock)(tls, pFile, lock)
}

func dbUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	dropReadAhead(pFile)
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxUnlock)(tls, pFile, lock)
}

func dbShmLock(tls *libc.TLS, pFile uintptr, offset, n, flags int32) int32 {
	dropReadAhead(pFile)
	return fn[func(*libc.TLS, uintptr, int32, int32, int32) int32](baseMethods(pFile).FxShmLock)(tls, pFile, offset, n, flags)
}

func dbFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if rc := settleAsync(pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](baseMethods(pFile).FxFetch)(tls, pFile, iOfst, iAmt, pp)
}
