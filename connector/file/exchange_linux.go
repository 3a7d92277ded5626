package file

import (
	"errors"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// exchange atomically swaps the files at a and b (renameat2 with
// RENAME_EXCHANGE). Where the file system cannot swap (ENOSYS, EINVAL,
// EOPNOTSUPP: old kernels, some network and FUSE file systems) it returns
// errNoExchange and leaves both files as they are.
//
// What remains after the swap-and-verify of install: a writer that keeps
// the old file open and writes into it in place after the swapped-out
// copy was hashed loses that write (the old inode is removed), and an
// editor that renames its own file over the path between the swap and
// the swap back has its file swapped out. Both windows are the time of
// one hash of the file; no rename-based writer can close them without a
// lock every writer honours.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return errNoExchange
	}
	return err
}

// changeTime is info's inode change time (ctime), in nanoseconds.
func changeTime(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
