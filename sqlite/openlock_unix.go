//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// openLock is held (shared) by every process that has the store open, in
// a file beside it. Taking it exclusively tells a process it is the only
// one: a WAL file left then was left by a process that did not close the
// store (a crash, SIGKILL, a power loss), and the store is checked before
// use. It is a separate file because SQLite's own POSIX locks on the
// database would be dropped if this process closed another descriptor of
// that file.
type openLock struct{ f *os.File }

// lockOpen takes the open lock of the store at dbPath and reports whether
// this process is the only one holding it (checkWAL: whether a WAL found
// now was left by an unclean shutdown).
func lockOpen(dbPath string) (*openLock, bool, error) {
	f, err := os.OpenFile(dbPath+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return &openLock{f}, true, nil
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, false, err
	}
	// Another process has the store open (or is checking it): wait for its
	// check to end, then share.
	if err := flockRetry(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, false, err
	}
	return &openLock{f}, false, nil
}

// shared turns an exclusive open lock into a shared one, once the store
// is known good.
func (l *openLock) shared() error { return flockRetry(l.f, syscall.LOCK_SH) }

// exclusive tries to turn this process's shared open lock into an
// exclusive one without waiting, and reports whether it did: it does when
// no other process has the store open. flock converts a lock by dropping
// it and taking the new one, so a conversion that fails has dropped the
// shared lock too: it is taken back (waiting, should another process hold
// the lock exclusively for a moment: its Open's check).
func (l *openLock) exclusive() (bool, error) {
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if serr := l.shared(); serr != nil {
		return false, serr
	}
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return false, nil
	}
	return false, err
}

// release drops the lock; the file stays for the next process.
func (l *openLock) release() {
	if l != nil {
		l.f.Close()
	}
}

func flockRetry(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
