//go:build !unix

package sqlite

// openLock cannot tell other processes apart on this platform: a WAL file
// found at open is always taken as a sign of an unclean shutdown, so the
// store is checked (costly but safe).
type openLock struct{}

func lockOpen(string) (*openLock, bool, error) { return &openLock{}, true, nil }
func (*openLock) shared() error                { return nil }
func (*openLock) release()                     {}

// exclusive never succeeds here: with no way to tell other processes
// apart, the bulk window always keeps its WAL (bulkjournal.go).
func (*openLock) exclusive() (bool, error) { return false, nil }
