package sqlite

import (
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A checkpoint's read-ahead, sized. A 127 KiB read-ahead from the frame
// asked for serves on average less than half of what it reads in a first
// pass (the next frame the checkpoint reads is often elsewhere in the
// WAL). At CKPT_START the frames the copy loop reads are known, in its
// order (each page's latest frame, by page, as copiedFrames reads them
// from the wal-index); a read-ahead then reads only the run of
// frames that the loop reads one after the other from the frame asked
// for. The plan only sizes the reads: what a read serves is still the
// WAL's bytes at the offset asked for, and a read that is not the plan's
// next drops the plan (the read-ahead then reads walBufSize as before).

// planReads records the frames the checkpoint reads from the WAL file
// wal, in order (each copied page's latest frame, by page: copiedFrames'
// latest and safe); no plan when it cannot tell (latest nil).
func planReads(tls *libc.TLS, wal uintptr, latest []uint32, safe uint32) {
	t := tailOf(wal)
	t.planN, t.planK = 0, 0
	n := int64(0)
	for _, f := range latest[min(1, len(latest)):] {
		if f != 0 && f <= safe {
			n++
		}
	}
	if n == 0 {
		return
	}
	if n > t.planCap {
		sqlite3.Xsqlite3_free(tls, t.plan)
		t.plan, t.planCap = sqlite3.Xsqlite3_malloc64(tls, uint64(n)*4), n
		if t.plan == 0 {
			t.planCap = 0
			return
		}
	}
	plan := unsafe.Slice((*uint32)(cptr(t.plan)), n)
	k := 0
	for _, f := range latest[1:] {
		if f != 0 && f <= safe {
			plan[k] = f
			k++
		}
	}
	t.planN = n
}

// frameOf is the frame whose page a checkpoint's read of amt bytes at
// off is, 0 if none.
func frameOf(off, amt int64) int64 {
	const first = walHeaderSize + walFrameHeaderSize
	if off < first || (off-first)%(amt+walFrameHeaderSize) != 0 {
		return 0
	}
	return (off-first)/(amt+walFrameHeaderSize) + 1
}

// nextPlanned moves the WAL file's plan past the read of amt bytes at
// off, and drops it if that read is not the plan's next.
func nextPlanned(pFile uintptr, off, amt int64) {
	t := tailOf(pFile)
	if t.planN == 0 {
		return
	}
	plan := unsafe.Slice((*uint32)(cptr(t.plan)), t.planN)
	if t.planK >= t.planN || int64(plan[t.planK]) != frameOf(off, amt) {
		t.planN = 0
		return
	}
	t.planK++
}

// planned is how many bytes a read-ahead from the read of amt bytes at
// off (the plan's read planK-1) needs: the pages of the run of frames
// the plan reads one after the other from there on.
func planned(pFile uintptr, off, amt int64) int64 {
	t := tailOf(pFile)
	if t.planN == 0 || t.planK == 0 {
		return walBufSize
	}
	plan := unsafe.Slice((*uint32)(cptr(t.plan)), t.planN)
	k := t.planK - 1
	run := int64(1)
	for k+run < t.planN && plan[k+run] == plan[k]+uint32(run) && (run+1)*(amt+walFrameHeaderSize) <= walBufSize {
		run++
	}
	return (run-1)*(amt+walFrameHeaderSize) + amt
}
