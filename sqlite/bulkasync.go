package sqlite

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A bulk window's gathered page writes, carried out by a goroutine of
// their own. In a window without a WAL (bulkjournal.go) the writer's
// commits write their pages into the database file, gathered into
// pwrites of up to walBufSize bytes (bulkwrite.go). Writing a first
// pass's new pages into the page cache costs the kernel far more than
// the copy of their bytes where the memory it takes them from is new to
// the machine (on this kind of VM each fresh page is mapped by the host
// on first touch): at 1M NHIs those pwrites took 9.3 CPU-s of the
// goroutine that commits, the decide phase's critical path, against
// 0.45 s at 300k. Here they leave it: each gathered buffer, once full or
// once SQLite sends a call that ends a run of writes, is queued to a
// writer goroutine (bulkAsyncBufs buffers in all; the commit waits for a
// free one when the disk's writes fall that far behind) and the commit
// goes on.
//
// What changes, and why no one reads a page before it is written. The
// writer's own read (one at each transaction's start, of the header's
// change counter) is served from the latest queued write that holds its
// bytes, from the file when no queued write touches them, and waits for
// the queue to drain only when queued writes hold part of them; its size,
// asked at each commit, is the file's or the end of the furthest write
// queued, whichever is larger. Its calls that change the file (a
// truncate) or need it whole (a sync, a fetch, its close, a file control
// but those SQLite sends at each commit and that touch no page:
// asyncNeedsNoWait) first wait for the queue to drain. The other
// connections of this process to the same file (SQLite gives every file
// of one inode the same unixInodeInfo) wait for the queue the same way
// before they read, size, fetch, truncate or sync it; no other process
// has the file open while such a window runs (the open lock is held
// exclusively). Writes
// go out in the order SQLite made them, by one goroutine, so a page
// written twice ends with its last content.
//
// What changes on a failed write. A commit can now succeed whose pages
// are still queued, and a write of it fail afterwards: the file no
// longer holds a committed transaction, and the in-memory journal of the
// next one cannot put it back. So a failed write poisons the file: the
// call that hears of it and every later call on the file (any
// connection's) fail with its code, until the writer's file is closed.
// The window cannot end: turning gathering off fails, and with it
// EndBulk (leaveJournalless), which marks the store unsynced (it commits
// and claims nothing more); the copy of the store kept beside it is put
// back by the next Open, as when the process dies inside the window.
// That loses nothing a person was told of: the engine sends no write
// before EndBulk returns, and the window's signed checkpoints are held
// until then (bulkjournal.go). TestBulkAsyncWriteFailsTheWindow holds
// both halves, and sees the loss of a design that forgets the failure.

// bulkAsyncBufs is how many gathered buffers a window's queue holds,
// the one being filled included.
const bulkAsyncBufs = 16

type bulkAsync struct {
	pFile, inode uintptr
	fd           int
	jobs         chan bulkJob
	free         chan uintptr
	bufs         []uintptr // every buffer, to free at stop
	done         chan struct{}

	mu   sync.Mutex
	idle *sync.Cond // signalled when queued empties
	// queued are the writes queued and not yet done, oldest first; a
	// queued write's buffer goes back to free only once it is done.
	queued []bulkJob
	// rc is the first failed write's code: once set the file is
	// poisoned (every call fails with it).
	rc int32
	// end is the end of the furthest write queued since the file was
	// last truncated.
	end int64

	// cold are the audit pages written and not yet dropped from the
	// kernel's cache (coldpages.go); the writer goroutine's own.
	cold coldPages
}

type bulkJob struct {
	buf    uintptr
	n, off int64
	fault  func(off, n int64) int32
}

var (
	bulkAsyncMu sync.Mutex
	bulkAsyncs  []*bulkAsync
	// bulkAsyncOn is len(bulkAsyncs), read without the lock by every
	// database file's reads.
	bulkAsyncOn atomic.Int32
	// bulkAsyncWaits counts the calls that waited for a queue to drain
	// (tests, measurements).
	bulkAsyncWaits atomic.Int64
	// bulkAsyncForget, when set, has the writer goroutine forget a failed
	// write, as an unsafe design would (tests: the loss
	// TestBulkAsyncWriteFailsTheWindow must see).
	bulkAsyncForget bool
)

// startBulkAsync starts the writer goroutine of the database file pFile,
// whose tail's buffer (t.buf) becomes the first of its buffers. Where the
// platform has no pwrite this code can call, or memory is short, it
// starts none: the file writes its gathered pages itself.
func startBulkAsync(tls *libc.TLS, pFile uintptr) {
	t := tailOf(pFile)
	if !asyncPwriteOK || t.async || t.buf == 0 {
		return
	}
	uf := (*sqlite3.TunixFile)(cptr(pFile))
	a := &bulkAsync{pFile: pFile, inode: uf.FpInode, fd: int(uf.Fh),
		jobs: make(chan bulkJob, bulkAsyncBufs), free: make(chan uintptr, bulkAsyncBufs), done: make(chan struct{})}
	a.idle = sync.NewCond(&a.mu)
	a.cold.pageSize = filePageSize(a.fd)
	a.bufs = append(a.bufs, t.buf)
	for range bulkAsyncBufs - 1 {
		b := sqlite3.Xsqlite3_malloc64(tls, walBufSize)
		if b == 0 {
			for _, b := range a.bufs[1:] {
				sqlite3.Xsqlite3_free(tls, b)
			}
			return
		}
		a.bufs = append(a.bufs, b)
		a.free <- b
	}
	go a.run()
	bulkAsyncMu.Lock()
	bulkAsyncs = append(bulkAsyncs, a)
	bulkAsyncOn.Store(int32(len(bulkAsyncs)))
	bulkAsyncMu.Unlock()
	t.async = true
}

// run writes the queued buffers, in order, until the queue is closed.
func (a *bulkAsync) run() {
	defer close(a.done)
	for j := range a.jobs {
		a.mu.Lock()
		rc := a.rc
		a.mu.Unlock()
		if rc == sqlite3.SQLITE_OK && j.fault != nil {
			rc = j.fault(j.off, j.n)
		}
		if rc == sqlite3.SQLITE_OK {
			p := unsafe.Slice((*byte)(cptr(j.buf)), j.n)
			if rc = asyncPwrite(a.fd, p, j.off); rc == sqlite3.SQLITE_OK {
				now := time.Now()
				a.cold.note(p, j.off, now)
				a.cold.drop(a.fd, now)
			}
		}
		if bulkAsyncForget {
			rc = sqlite3.SQLITE_OK
		}
		a.mu.Lock()
		if a.rc == sqlite3.SQLITE_OK {
			a.rc = rc
		}
		a.queued = a.queued[1:]
		if len(a.queued) == 0 {
			a.idle.Broadcast()
		}
		a.mu.Unlock()
		a.free <- j.buf
	}
}

// failed returns the code of the first failed write, SQLITE_OK if none.
func (a *bulkAsync) failed() int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rc
}

// submit queues what t gathered (the writer's file) and gives t a free
// buffer, waiting for one if every other is queued.
func (a *bulkAsync) submit(t *walFileTail) int32 {
	if rc := a.failed(); rc != sqlite3.SQLITE_OK {
		t.n = 0
		return rc
	}
	if t.n == 0 {
		return sqlite3.SQLITE_OK
	}
	buf := <-a.free
	j := bulkJob{buf: t.buf, n: t.n, off: t.off, fault: bulkWriteFault}
	a.mu.Lock()
	a.queued = append(a.queued, j)
	a.end = max(a.end, j.off+j.n)
	a.mu.Unlock()
	bulkDBWrites.Add(1)
	a.jobs <- j
	t.buf, t.n = buf, 0
	return sqlite3.SQLITE_OK
}

// wait waits until every queued write is done and returns the code of
// the first that failed.
func (a *bulkAsync) wait() int32 {
	bulkAsyncWaits.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.queued) > 0 {
		a.idle.Wait()
	}
	return a.rc
}

// read serves the writer's own read of n bytes at off into p, which it
// makes at the start of every transaction (the header's change counter,
// whose page each commit writes): from the latest queued write that
// overlaps it when that write holds all of it (the writer's goroutine,
// the only one that reuses a buffer, is the one reading), else, when no
// queued write overlaps it, it says so (queued false: the file holds
// those bytes). A read that queued writes only partly cover must wait
// for them (queued true, copied false). A poisoned file fails it.
func (a *bulkAsync) read(p uintptr, n, off int64) (rc int32, copied, queued bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rc != sqlite3.SQLITE_OK {
		return a.rc, false, true
	}
	for i := len(a.queued) - 1; i >= 0; i-- {
		j := a.queued[i]
		if j.off >= off+n || off >= j.off+j.n {
			continue
		}
		if j.off <= off && off+n <= j.off+j.n {
			copy(unsafe.Slice((*byte)(cptr(p)), n), unsafe.Slice((*byte)(cptr(j.buf+uintptr(off-j.off))), n))
			return sqlite3.SQLITE_OK, true, true
		}
		return sqlite3.SQLITE_OK, false, true
	}
	return sqlite3.SQLITE_OK, false, false
}

// asyncNeedsNoWait reports whether file control op on pFile may go on
// while the writer's queued writes are still going out: those SQLite
// sends at each commit and that read and write no page (a size hint does
// nothing unless a chunk size is set: then it extends the file itself).
func asyncNeedsNoWait(pFile uintptr, op int32) bool {
	switch op {
	case sqlite3.SQLITE_FCNTL_SYNC, sqlite3.SQLITE_FCNTL_COMMIT_PHASETWO, sqlite3.SQLITE_FCNTL_PRAGMA,
		sqlite3.SQLITE_FCNTL_LOCKSTATE, sqlite3.SQLITE_FCNTL_LAST_ERRNO, sqlite3.SQLITE_FCNTL_VFSNAME,
		sqlite3.SQLITE_FCNTL_FILE_POINTER, sqlite3.SQLITE_FCNTL_HAS_MOVED:
		return true
	case sqlite3.SQLITE_FCNTL_SIZE_HINT:
		return !asyncPwriteOK || (*sqlite3.TunixFile)(cptr(pFile)).FszChunk <= 0
	}
	return false
}

// size is the file's size as SQLite would see it with every queued write
// done: base (the file's) or the end of the furthest queued write.
func (a *bulkAsync) size(base int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(base, a.end)
}

// truncated notes that the file was truncated, every queued write done.
func (a *bulkAsync) truncated() {
	a.mu.Lock()
	a.end = 0
	a.mu.Unlock()
}

// stop ends the writer goroutine of the writer's file pFile, every
// write done, unless a write failed: then the file stays poisoned until
// it closes (final). It returns the failed write's code, if any.
func stopBulkAsync(tls *libc.TLS, pFile uintptr, final bool) int32 {
	t := tailOf(pFile)
	a := bulkAsyncOf(pFile)
	if a == nil {
		t.async = false
		return sqlite3.SQLITE_OK
	}
	rc := a.wait()
	if rc != sqlite3.SQLITE_OK && !final {
		return rc
	}
	close(a.jobs)
	<-a.done
	for _, b := range a.bufs {
		if b != t.buf {
			sqlite3.Xsqlite3_free(tls, b)
		}
	}
	bulkAsyncMu.Lock()
	bulkAsyncs = slices.DeleteFunc(bulkAsyncs, func(x *bulkAsync) bool { return x == a })
	bulkAsyncOn.Store(int32(len(bulkAsyncs)))
	bulkAsyncMu.Unlock()
	t.async = false
	return rc
}

// bulkAsyncOf returns the writer goroutine of the writer's file pFile.
func bulkAsyncOf(pFile uintptr) *bulkAsync {
	bulkAsyncMu.Lock()
	defer bulkAsyncMu.Unlock()
	for _, a := range bulkAsyncs {
		if a.pFile == pFile {
			return a
		}
	}
	return nil
}

// settleAsync waits, before a call that reads, sizes, truncates or
// syncs the database file pFile, for the queued writes to that file:
// its own (the writer's) or another connection's of this process to the
// same file. It returns the code of a failed write, if any.
func settleAsync(pFile uintptr) int32 {
	if bulkAsyncOn.Load() == 0 {
		return sqlite3.SQLITE_OK
	}
	inode := (*sqlite3.TunixFile)(cptr(pFile)).FpInode
	var found []*bulkAsync
	bulkAsyncMu.Lock()
	for _, a := range bulkAsyncs {
		if a.pFile == pFile || (inode != 0 && a.inode == inode) {
			found = append(found, a)
		}
	}
	bulkAsyncMu.Unlock()
	for _, a := range found {
		if rc := a.wait(); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	return sqlite3.SQLITE_OK
}
