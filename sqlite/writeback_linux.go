//go:build linux

package sqlite

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
	sqlite3 "modernc.org/sqlite/lib"
)

// writebackEvery is how often a bulk window without a WAL asks the kernel
// to start writing the database's dirty pages out (startWriteback).
var writebackEvery = 250 * time.Millisecond

// writeback has the disk write a bulk window's pages while the window
// runs. Without a WAL the window's commits write the database and sync
// nothing (bulkjournal.go); left to itself the kernel writes dirty pages
// out only past its background threshold (a tenth of memory), so the
// sync that ends the window waited for nearly all of them: at 1M NHIs its
// apply phase took 44 s instead of 28. A goroutine asks the kernel, a few
// times a second, to start writing out every dirty page of the database
// (sync_file_range with SYNC_FILE_RANGE_WRITE: it starts the writes and
// waits for none), so that the disk writes beside the pass and the sync
// finds little left. It is a hint only: what makes the window durable is
// that sync, which reports any failure of the disk, and a failed hint is
// not retried.
type writeback struct {
	stop, done chan struct{}
}

// startWriteback starts writing out the pages of the database at file
// every writebackEvery, until end.
func startWriteback(file string) *writeback {
	w := &writeback{stop: make(chan struct{}), done: make(chan struct{})}
	f, err := os.Open(file)
	if err != nil {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		defer f.Close()
		t := time.NewTicker(writebackEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				if unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE) != nil {
					return
				}
			}
		}
	}()
	return w
}

// end stops the writing out and waits for the goroutine to be done.
func (w *writeback) end() {
	if w == nil {
		return
	}
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// asyncPwriteOK says the bulk window's writer goroutine (bulkasync.go)
// can write the database file itself, by its descriptor.
const asyncPwriteOK = true

// asyncPwrite writes p at off to the file descriptor fd, all of it,
// returning SQLite's code for a failure (SQLITE_FULL for a full disk).
func asyncPwrite(fd int, p []byte, off int64) int32 {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOSPC || err == unix.EDQUOT:
			return sqlite3.SQLITE_FULL
		case err != nil || n <= 0:
			return sqlite3.SQLITE_IOERR_WRITE
		}
		p, off = p[n:], off+int64(n)
	}
	return sqlite3.SQLITE_OK
}

// dropCached asks the kernel to drop the cached pages of fd in [off,
// off+n) that are clean (POSIX_FADV_DONTNEED), reporting whether it took
// the hint.
func dropCached(fd int, off, n int64) bool {
	return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) == nil
}

// filePageSize reads the page size of the database file fd from its
// header (bytes 16-17; 1 means 65536), 0 when it cannot.
func filePageSize(fd int) int64 {
	var b [2]byte
	if n, err := unix.Pread(fd, b[:], 16); err != nil || n != 2 {
		return 0
	}
	switch v := int64(b[0])<<8 | int64(b[1]); {
	case v == 1:
		return 65536
	case v >= 512 && v&(v-1) == 0:
		return v
	}
	return 0
}
