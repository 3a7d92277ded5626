package sqlite

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// walBufVFS is the name of a VFS that is SQLite's default one except for
// how the write-ahead log is written. SQLite writes each WAL frame with two
// writes (its 24-byte header, then the page), each one pwrite: a commit of
// a first pass's 500 records appends ~580 frames, ~1,160 system calls.
// Here consecutive writes to the WAL are gathered in a buffer and go out
// in one pwrite when they stop being consecutive, would overfill the
// buffer, or before anything else touches the file: a read, a sync, a
// truncate, its size, a file control, its close. A first pass's commits
// (BenchmarkBulkCommit) cost ~8% less CPU: writing the WAL fell from ~20%
// of a commit's CPU to ~15%, what is left being mostly the kernel's copy
// of the bytes.
//
// A commit's frames are in the file before SQLite publishes the commit in
// the wal-index, where other connections look for them: the buffer goes
// out once the header of a commit frame (one that holds the database's
// size, not zero) is in it, and again once its page is. With
// synchronous=FULL SQLite also syncs the WAL there, and the buffer goes
// out before that sync too, so durability is the same as without this
// VFS; with synchronous=NORMAL (the bulk window, bulk.go) there is no
// sync, and the commit-frame flushes alone keep other connections from
// reading a frame still in the buffer (TestWALCommitVisibleUnsynced) and
// recovery from missing a commit whose checksums SQLite rewrote, the
// commit frame's header last (TestWALRecoversUnsyncedRewrite). Frames
// written before a commit (a transaction spilling pages it outgrew its
// cache with) are read back only by this connection, through this file,
// which flushes first. A failed buffered write is reported by the call
// that flushes it (at the latest the commit's sync), which fails the
// commit as the write itself would have; frames past the last published
// commit are ignored by every reader and by recovery, as after a crash in
// the middle of a commit.
//
// Layout: SQLite allocates the VFS's szOsFile bytes for each open file;
// the base VFS opens its own file object at the start of them, so a file
// other than a WAL (the database, its wal-index, temporary files) keeps
// its own methods and costs nothing, and a walFileTail follows. Only the
// writer connection opens the store through this VFS.
const walBufVFS = "nhisync-walbuf"

// walBufSize is how many bytes of consecutive WAL writes one pwrite
// carries at most (31 frames of a 4 KiB page). SQLite's unix VFS writes
// at most 128 KiB - 1 in one call (seekAndWriteFd masks the length with
// 0x1ffff), so a larger buffer would be cut short.
const walBufSize = 127 << 10

var (
	walVFSOnce sync.Once
	walVFSErr  error
	// walVFSBase is SQLite's default VFS, whose methods do the work.
	walVFSBase uintptr
	// walBufMethods is the io-methods table of a WAL file opened through
	// walBufVFS; every method but those that buffer forwards to the
	// file's own table.
	walBufMethods sqlite3.Tsqlite3_io_methods
	// walVFSTLS registers the VFS; it lives as long as the process.
	walVFSTLS *libc.TLS

	// walWrites and walFlushes count the WAL writes SQLite asked for and
	// the writes that went to the file (tests).
	walWrites, walFlushes atomic.Int64
	// walFlushFault, when set, fails a flush with the code it returns,
	// as a failing write would (tests).
	walFlushFault func() int32
)

// walFileTail follows SQLite's own file object, inside the memory SQLite
// allocates for a file opened through walBufVFS (szOsFile is the base
// VFS's plus this).
type walFileTail struct {
	base uintptr // the file's own io-methods table
	buf  uintptr // walBufSize bytes, 0 when the file is no WAL
	n    int64   // bytes buffered
	off  int64   // the file offset of buf's first byte
	// commitPage is the offset of the page that follows a commit frame's
	// header once that header is written, else 0: the buffer goes out
	// once the page is in it.
	commitPage int64
	// peer links a connection's database file and its WAL file (both
	// opened through walBufVFS), 0 when not linked: the database file's
	// is its WAL file, the WAL file's its database file (walckpt.go).
	peer uintptr
	// The checkpoint read-ahead of a WAL file (walckpt.go).
	ra     uintptr // walBufSize bytes once a checkpoint first reads
	raOff  int64   // the file offset of ra's first byte
	raN    int64   // bytes of ra that are valid, 0 outside a checkpoint
	raSize int64   // the WAL file's size when the copy began, -1 unknown
	inCkpt bool    // between SQLITE_FCNTL_CKPT_START and _DONE
	isDB   bool    // the file is a main database with ckptDBMethods
	// The checkpoint's gathered page writes of a database file
	// (ckptwrite.go), in buf, n and off: gather is set inside a
	// checkpoint's copy loop whose last page write was found, lastOff is
	// that write's offset, pageSize the database's page size.
	gather   bool
	lastOff  int64
	pageSize int64
	// bulk is set while a bulk window without a WAL gathers the
	// writer's page writes in buf, n and off (bulkwrite.go).
	bulk bool
	// async is set while a goroutine of its own writes what the writer
	// gathers in a bulk window without a WAL (bulkasync.go).
	async bool
	// The frames a WAL file's checkpoint reads, in the order it reads
	// them (plan, planN uint32s; planK the next), to size each
	// read-ahead to the run of frames read one after the other
	// (ckptread.go); planN is 0 when there is no plan.
	plan                  uintptr
	planCap, planN, planK int64
}

// walHeaderSize and walFrameHeaderSize are the sizes of the WAL file's
// header and of each frame's (https://sqlite.org/fileformat2.html#walformat);
// bytes 4-7 of a frame's header are the database's size in pages after a
// commit for a commit frame, zero for any other.
const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// isCommitFrameHeader reports whether a write of n bytes at off from p is
// the header of a commit frame.
func isCommitFrameHeader(p uintptr, n int64, off int64) bool {
	if n != walFrameHeaderSize || off < walHeaderSize {
		return false
	}
	h := unsafe.Slice((*byte)(cptr(p)), n)
	return h[4]|h[5]|h[6]|h[7] != 0
}

// registerWALVFS registers walBufVFS once.
func registerWALVFS() error {
	walVFSOnce.Do(func() {
		walVFSTLS = libc.NewTLS()
		tls := walVFSTLS
		walVFSBase = sqlite3.Xsqlite3_vfs_find(tls, 0)
		if walVFSBase == 0 {
			walVFSErr = errNoVFS
			return
		}
		vfs := sqlite3.Xsqlite3_malloc64(tls, uint64(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
		if vfs == 0 {
			walVFSErr = errNoVFS
			return
		}
		v := (*sqlite3.Tsqlite3_vfs)(cptr(vfs))
		*v = *(*sqlite3.Tsqlite3_vfs)(cptr(walVFSBase))
		name, err := libc.CString(walBufVFS)
		if err != nil {
			walVFSErr = err
			return
		}
		v.FzName = name
		v.FpNext = 0
		v.FszOsFile = tailOffset(v.FszOsFile) + int32(unsafe.Sizeof(walFileTail{}))
		setFn(&v.FxOpen, walOpen)

		m := &walBufMethods
		m.FiVersion = 3
		setFn(&m.FxClose, walClose)
		setFn(&m.FxRead, walRead)
		setFn(&m.FxWrite, walWrite)
		setFn(&m.FxTruncate, walTruncate)
		setFn(&m.FxSync, walSync)
		setFn(&m.FxFileSize, walFileSize)
		setFn(&m.FxLock, walLock)
		setFn(&m.FxUnlock, walUnlock)
		setFn(&m.FxCheckReservedLock, walCheckReservedLock)
		setFn(&m.FxFileControl, walFileControl)
		setFn(&m.FxSectorSize, walSectorSize)
		setFn(&m.FxDeviceCharacteristics, walDeviceCharacteristics)
		setFn(&m.FxShmMap, walShmMap)
		setFn(&m.FxShmLock, walShmLock)
		setFn(&m.FxShmBarrier, walShmBarrier)
		setFn(&m.FxShmUnmap, walShmUnmap)
		setFn(&m.FxFetch, walFetch)
		setFn(&m.FxUnfetch, walUnfetch)
		registerCkptDBMethods()
		if rc := sqlite3.Xsqlite3_vfs_register(tls, vfs, 0); rc != sqlite3.SQLITE_OK {
			walVFSErr = errNoVFS
		}
	})
	return walVFSErr
}

type vfsError string

func (e vfsError) Error() string { return string(e) }

const errNoVFS = vfsError("cannot register the WAL-buffering SQLite VFS")

// setFn stores the Go function f in a C function-pointer slot, as the
// transpiled SQLite calls it.
func setFn[F any](slot *uintptr, f F) {
	*(*F)(unsafe.Pointer(slot)) = f
}

// fn reads a C function-pointer slot as the Go function type F.
func fn[F any](p uintptr) F {
	return *(*F)(unsafe.Pointer(&struct{ uintptr }{p}))
}

// cptr is the address p of memory SQLite allocated (not Go's heap, which
// the garbage collector could move or free) as an unsafe.Pointer.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// tailOffset is where a walFileTail starts after a base file of size n.
func tailOffset(n int32) int32 { return (n + 7) &^ 7 }

func tailOf(pFile uintptr) *walFileTail {
	base := (*sqlite3.Tsqlite3_vfs)(cptr(walVFSBase))
	return (*walFileTail)(cptr(pFile + uintptr(tailOffset(base.FszOsFile))))
}

func baseMethods(pFile uintptr) *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cptr(tailOf(pFile).base))
}

// walOpen opens the file with the base VFS, in place; a WAL file gets
// walBufMethods and a buffer, any other file keeps its own methods.
func walOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	base := (*sqlite3.Tsqlite3_vfs)(cptr(walVFSBase))
	t := tailOf(pFile)
	*t = walFileTail{}
	rc := fn[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](base.FxOpen)(tls, walVFSBase, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&(sqlite3.SQLITE_OPEN_WAL|sqlite3.SQLITE_OPEN_MAIN_DB) == 0 {
		return rc
	}
	f := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if f.FpMethods == 0 || (*sqlite3.Tsqlite3_io_methods)(cptr(f.FpMethods)).FiVersion < 3 {
		return rc // unbuffered: walBufMethods forwards every method of version 3
	}
	if flags&sqlite3.SQLITE_OPEN_MAIN_DB != 0 {
		// Its own methods but for the checkpoint's file controls
		// (walckpt.go).
		t.base, t.isDB = f.FpMethods, true
		f.FpMethods = uintptr(unsafe.Pointer(&ckptDBMethods))
		return rc
	}
	buf := sqlite3.Xsqlite3_malloc64(tls, walBufSize)
	if buf == 0 {
		return rc // unbuffered: the file keeps its own methods
	}
	t.base, t.buf, t.raSize = f.FpMethods, buf, -1
	f.FpMethods = uintptr(unsafe.Pointer(&walBufMethods))
	linkWAL(pFile, zName)
	return rc
}

// flush writes what the buffer holds.
func flush(tls *libc.TLS, pFile uintptr) int32 {
	t := tailOf(pFile)
	if t.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n, off := t.n, t.off
	t.n = 0
	walFlushes.Add(1)
	if walFlushFault != nil {
		if rc := walFlushFault(); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxWrite)(tls, pFile, t.buf, int32(n), off)
}

func walWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	endReadAhead(pFile)
	rc := bufferWrite(tls, pFile, zBuf, iAmt, iOfst)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	t := tailOf(pFile)
	if isCommitFrameHeader(zBuf, int64(iAmt), iOfst) {
		// Its page follows, unless this header is rewritten after it: a
		// transaction that overwrote frames it had spilled has SQLite
		// recompute their checksums once its frames are written, and the
		// commit frame's header is then the commit's last write, which
		// recovery needs in the file. So it goes out now, and the page
		// once it is in the buffer.
		t.commitPage = iOfst + walFrameHeaderSize
		return flush(tls, pFile)
	}
	// SQLite writes a frame's page right after its header.
	page := t.commitPage
	t.commitPage = 0
	if page != 0 && iOfst == page {
		// The commit frame's page: the commit is whole, out it goes
		// before SQLite names it in the wal-index.
		return flush(tls, pFile)
	}
	return rc
}

// bufferWrite appends a write to the buffer, or writes out the buffer
// first when the write does not follow it or would overfill it.
func bufferWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	t := tailOf(pFile)
	amt := int64(iAmt)
	walWrites.Add(1)
	if t.n > 0 && iOfst == t.off+t.n && t.n+amt <= walBufSize {
		copy(unsafe.Slice((*byte)(cptr(t.buf+uintptr(t.n))), amt), unsafe.Slice((*byte)(cptr(zBuf)), amt))
		t.n += amt
		return sqlite3.SQLITE_OK
	}
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if amt >= walBufSize {
		walFlushes.Add(1)
		return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxWrite)(tls, pFile, zBuf, iAmt, iOfst)
	}
	copy(unsafe.Slice((*byte)(cptr(t.buf)), amt), unsafe.Slice((*byte)(cptr(zBuf)), amt))
	t.n, t.off = amt, iOfst
	return sqlite3.SQLITE_OK
}

func walClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := flush(tls, pFile)
	t := tailOf(pFile)
	m := baseMethods(pFile)
	unlinkWAL(tls, pFile)
	sqlite3.Xsqlite3_free(tls, t.buf)
	t.buf = 0
	(*sqlite3.Tsqlite3_file)(cptr(pFile)).FpMethods = t.base
	if rc2 := fn[func(*libc.TLS, uintptr) int32](m.FxClose)(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

func walRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if t := tailOf(pFile); t.inCkpt {
		return ckptRead(tls, pFile, zBuf, iAmt, iOfst)
	}
	return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxRead)(tls, pFile, zBuf, iAmt, iOfst)
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	endReadAhead(pFile)
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int64) int32](baseMethods(pFile).FxTruncate)(tls, pFile, size)
}

func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	endReadAhead(pFile)
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxSync)(tls, pFile, flags)
}

func walFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	endReadAhead(pFile)
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, uintptr) int32](baseMethods(pFile).FxFileSize)(tls, pFile, pSize)
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	endReadAhead(pFile)
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int32, uintptr) int32](baseMethods(pFile).FxFileControl)(tls, pFile, op, pArg)
}

func walFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	endReadAhead(pFile)
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](baseMethods(pFile).FxFetch)(tls, pFile, iOfst, iAmt, pp)
}

// The rest forward as they are: they neither read nor write the file's
// content (locking ends a checkpoint's read-ahead all the same).

func walLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	endReadAhead(pFile)
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxLock)(tls, pFile, lock)
}

func walUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	endReadAhead(pFile)
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxUnlock)(tls, pFile, lock)
}

func walCheckReservedLock(tls *libc.TLS, pFile, pResOut uintptr) int32 {
	return fn[func(*libc.TLS, uintptr, uintptr) int32](baseMethods(pFile).FxCheckReservedLock)(tls, pFile, pResOut)
}

func walSectorSize(tls *libc.TLS, pFile uintptr) int32 {
	return fn[func(*libc.TLS, uintptr) int32](baseMethods(pFile).FxSectorSize)(tls, pFile)
}

func walDeviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	return fn[func(*libc.TLS, uintptr) int32](baseMethods(pFile).FxDeviceCharacteristics)(tls, pFile)
}

func walShmMap(tls *libc.TLS, pFile uintptr, iPg, pgsz, bExtend int32, pp uintptr) int32 {
	return fn[func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32](baseMethods(pFile).FxShmMap)(tls, pFile, iPg, pgsz, bExtend, pp)
}

func walShmLock(tls *libc.TLS, pFile uintptr, offset, n, flags int32) int32 {
	return fn[func(*libc.TLS, uintptr, int32, int32, int32) int32](baseMethods(pFile).FxShmLock)(tls, pFile, offset, n, flags)
}

func walShmBarrier(tls *libc.TLS, pFile uintptr) {
	fn[func(*libc.TLS, uintptr)](baseMethods(pFile).FxShmBarrier)(tls, pFile)
}

func walShmUnmap(tls *libc.TLS, pFile uintptr, deleteFlag int32) int32 {
	return fn[func(*libc.TLS, uintptr, int32) int32](baseMethods(pFile).FxShmUnmap)(tls, pFile, deleteFlag)
}

func walUnfetch(tls *libc.TLS, pFile uintptr, iOfst int64, p uintptr) int32 {
	return fn[func(*libc.TLS, uintptr, int64, uintptr) int32](baseMethods(pFile).FxUnfetch)(tls, pFile, iOfst, p)
}
