package sqlite

import (
	"math"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A checkpoint's page writes, gathered. A checkpoint writes each page it
// copies into the database file with one 4 KiB pwrite; a first pass's
// pages are mostly new, so they mostly follow one another in the file,
// and a pwrite costs here about six times the copy of its bytes. Inside a
// checkpoint's copy loop, a database file opened through walBufVFS
// gathers consecutive page writes in a walBufSize buffer and writes them
// in one pwrite when the next write does not follow them, when they fill
// the buffer, and before anything else touches the file.
//
// Why no page is reported copied that is not in the file. SQLite's copy
// loop (walCheckpoint) writes the pages in increasing page order, each
// once, and stops at the first write that fails; then it sends
// SQLITE_FCNTL_CKPT_DONE, whose result it ignores, and, if nothing
// failed, publishes the copy (nBackfill = mxSafeFrame), in which case the
// WAL may start over and its frames be overwritten. Only when it copied
// every frame of the WAL does it truncate and sync the database file in
// between; a partial checkpoint (the writer committed meanwhile, a reader
// holds old frames: the common case beside a first pass) publishes with
// no call on the file after CKPT_DONE, so a buffer written out at
// CKPT_DONE or at the sync could fail unheard. So the loop's last page
// write is never gathered: at SQLITE_FCNTL_CKPT_START (sent after SQLite
// fixed which frames it copies: nBackfill, mxSafeFrame, in the wal-index
// and the connection's Wal object) lastGatheredPage finds the page the
// loop writes last from the wal-index, as SQLite's iterator does, and
// that write first writes out what is gathered, then itself, each failure
// its result, which fails the checkpoint before it publishes anything.
// Every page the loop writes before is in a buffer that a later write of
// the loop writes out, at the latest that last one. Should the last page
// not be found (a wal-index page not mapped, a Wal object this code does
// not know), nothing is gathered in that checkpoint.

var (
	// ckptPageWrites and ckptDBWrites count the page writes of
	// checkpoints and the writes that went to the database file for them
	// (tests, measurements); ckptLateFlushes counts gathered pages still
	// in the buffer at CKPT_DONE, which the above says never happens in
	// a checkpoint that succeeds.
	ckptPageWrites, ckptDBWrites, ckptLateFlushes atomic.Int64
	// ckptWriteFault, when set, fails a write to the database file that
	// gathered writes go out in (or the last page's write) with the code
	// it returns; final says the write carries the loop's last pages
	// (tests).
	ckptWriteFault func(final bool) int32
	// gatherLast, when set, gathers the loop's last page write too, as
	// an unsafe design would (tests: the failure
	// TestCheckpointWriteFailsTheCheckpoint must catch).
	gatherLast bool
)

// Wal-index layout (https://sqlite.org/walformat.html): 32 KiB pages; the
// first holds the two copies of the header and the checkpoint info (136
// bytes), then the page numbers of frames 1-4062; each next page those of
// 4096 frames. Page numbers are followed by a hash table.
const (
	walIndexHdrBytes = 136
	walIndexFirst    = 4062 // frames whose page numbers page 0 holds
	walIndexFrames   = 4096 // frames whose page numbers any other page holds
)

// startGather starts gathering the page writes of the checkpoint that
// the database file db's connection starts, if its last page write is
// found.
func startGather(tls *libc.TLS, db uintptr) {
	t := tailOf(db)
	t.gather = false
	p := t.peer
	if p == 0 || p < walStructSize {
		return
	}
	w := (*sqlite3.TWal)(cptr(p - walStructSize))
	if w.FpWalFd != p || w.FpDbFd != db {
		return
	}
	pageSize := int64(w.Fhdr.FszPage&0xfe00) + int64(w.Fhdr.FszPage&1)<<16
	latest, safe := copiedFrames(w)
	planReads(tls, p, latest, safe)
	last := lastGatheredPage(latest, safe)
	if last == 0 || pageSize == 0 {
		return
	}
	if t.buf == 0 {
		t.buf = sqlite3.Xsqlite3_malloc64(tls, walBufSize)
		if t.buf == 0 {
			return
		}
	}
	t.gather, t.lastOff, t.pageSize = true, int64(last-1)*pageSize, pageSize
	if gatherLast {
		t.lastOff = math.MaxInt64
	}
}

// copiedFrames returns, for the checkpoint of the Wal w just started,
// each page's latest frame after nBackfill (latest[pg], 0 for none) and
// mxSafeFrame: walCheckpoint copies a page's latest frame up to the
// WAL's end (w.hdr.mxFrame) if that frame is at most mxSafeFrame and the
// page at most the database's size (w.hdr.nPage), as the iterator it
// runs (walIteratorInit, walIteratorNext) yields each page once, by page
// number, with its latest frame, and the loop skips the others.
// mxSafeFrame is in the wal-index's checkpoint info (nBackfillAttempted),
// stored there before CKPT_START; no writer starts the WAL over while
// the checkpoint holds read lock 0. nil when it cannot tell.
func copiedFrames(w *sqlite3.TWal) (latest []uint32, safe uint32) {
	if w.FnWiData < 1 || w.FapWiData == 0 {
		return nil, 0
	}
	wi := unsafe.Slice((*uintptr)(cptr(w.FapWiData)), w.FnWiData)
	if wi[0] == 0 {
		return nil, 0
	}
	info := (*sqlite3.TWalCkptInfo)(cptr(wi[0] + 2*unsafe.Sizeof(sqlite3.TWalIndexHdr{})))
	nBackfill := atomic.LoadUint32((*uint32)(&info.FnBackfill))
	safe = atomic.LoadUint32((*uint32)(&info.FnBackfillAttempted))
	mxFrame, mxPage := w.Fhdr.FmxFrame, w.Fhdr.FnPage
	if safe <= nBackfill || safe > mxFrame || mxPage == 0 {
		return nil, 0
	}
	latest = make([]uint32, mxPage+1)
	for f := nBackfill + 1; f <= mxFrame; f++ {
		i := (f + walIndexFrames - walIndexFirst - 1) / walIndexFrames
		if int64(i) >= int64(w.FnWiData) || wi[i] == 0 {
			return nil, 0
		}
		base, zero := wi[i], uint32(0)
		if i == 0 {
			base += walIndexHdrBytes
		} else {
			zero = walIndexFirst + (i-1)*walIndexFrames
		}
		if pg := *(*uint32)(cptr(base + uintptr(f-zero-1)*4)); pg <= mxPage {
			latest[pg] = f
		}
	}
	return latest, safe
}

// lastGatheredPage returns the last page the checkpoint copies, given
// copiedFrames' latest and safe: the highest page whose latest frame is at
// most safe (a page with a later frame is not copied); 0 if none.
func lastGatheredPage(latest []uint32, safe uint32) uint32 {
	for pg := len(latest) - 1; pg > 0; pg-- {
		if f := latest[pg]; f != 0 && f <= safe {
			return uint32(pg)
		}
	}
	return 0
}

// endGather ends the gathering at CKPT_DONE. What is still gathered
// there (never, in a checkpoint that succeeded) goes out all the same.
func endGather(tls *libc.TLS, db uintptr) {
	t := tailOf(db)
	if t.n > 0 {
		ckptLateFlushes.Add(1)
		dbFlush(tls, db, true)
	}
	t.gather = false
}

// dbFlush writes what the database file's buffer holds.
func dbFlush(tls *libc.TLS, pFile uintptr, final bool) int32 {
	t := tailOf(pFile)
	if t.async {
		if a := bulkAsyncOf(pFile); a != nil {
			return a.submit(t)
		}
	}
	if t.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n, off := t.n, t.off
	t.n = 0
	return dbWriteOut(tls, pFile, t.buf, n, off, final)
}

// dbWriteOut writes n bytes from p at off to the database file.
func dbWriteOut(tls *libc.TLS, pFile, p uintptr, n, off int64, final bool) int32 {
	rc := int32(sqlite3.SQLITE_OK)
	if tailOf(pFile).bulk {
		bulkDBWrites.Add(1)
		if bulkWriteFault != nil {
			rc = bulkWriteFault(off, n)
		}
	} else {
		ckptDBWrites.Add(1)
		if ckptWriteFault != nil {
			rc = ckptWriteFault(final)
		}
	}
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxWrite)(tls, pFile, p, int32(n), off)
}

func dbWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	t := tailOf(pFile)
	if !t.gather {
		if t.bulk && t.peer == 0 {
			return bulkWrite(tls, pFile, zBuf, int64(iAmt), iOfst)
		}
		if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
			return rc
		}
		return fn[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](baseMethods(pFile).FxWrite)(tls, pFile, zBuf, iAmt, iOfst)
	}
	amt := int64(iAmt)
	ckptPageWrites.Add(1)
	if iOfst >= t.lastOff || amt != t.pageSize {
		// The loop's last write: what is gathered goes out, then this
		// page, and a failure fails the checkpoint. Nothing is gathered
		// after it.
		t.gather = false
		if rc := dbFlush(tls, pFile, true); rc != sqlite3.SQLITE_OK {
			return rc
		}
		return dbWriteOut(tls, pFile, zBuf, amt, iOfst, true)
	}
	return gatherWrite(tls, pFile, zBuf, amt, iOfst)
}

// gatherWrite puts a write of amt bytes (at most walBufSize) at off into
// the database file's buffer: after what it holds when the write follows
// it and fits, else alone once what it holds is written out.
func gatherWrite(tls *libc.TLS, pFile, zBuf uintptr, amt, off int64) int32 {
	t := tailOf(pFile)
	if t.n > 0 && off == t.off+t.n && t.n+amt <= walBufSize {
		copy(unsafe.Slice((*byte)(cptr(t.buf+uintptr(t.n))), amt), unsafe.Slice((*byte)(cptr(zBuf)), amt))
		t.n += amt
		return sqlite3.SQLITE_OK
	}
	if rc := dbFlush(tls, pFile, false); rc != sqlite3.SQLITE_OK {
		return rc
	}
	copy(unsafe.Slice((*byte)(cptr(t.buf)), amt), unsafe.Slice((*byte)(cptr(zBuf)), amt))
	t.n, t.off = amt, off
	return sqlite3.SQLITE_OK
}
