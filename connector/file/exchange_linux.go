package file

import (
	"errors"

	"golang.org/x/sys/unix"
)

// exchange atomically swaps the files at a and b (renameat2 with
// RENAME_EXCHANGE) and reports true. Where the file system cannot swap
// (ENOSYS, EINVAL: old kernels, some network and FUSE file systems) it
// renames a over b instead and reports false.
//
// What remains after the swap-and-verify of replace: a writer that keeps
// the old file open and writes into it in place after the swapped-out
// copy was hashed loses that write (the old inode is removed), and an
// editor that renames its own file over the path between the swap and
// the swap back has its file swapped out. Both windows are the time of
// one hash of the file; no rename-based writer can close them without a
// lock every writer honours.
func exchange(a, b string) (bool, error) {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return false, unix.Rename(a, b)
	}
	return false, err
}
