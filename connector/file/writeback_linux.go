package file

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing out n bytes of f from
// off (sync_file_range with SYNC_FILE_RANGE_WRITE), without waiting for
// them. It is advice: an error here is left to the fsync that follows,
// which reports every failed write.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
