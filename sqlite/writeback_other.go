//go:build !linux

package sqlite

// writeback is a no-op off Linux: the sync that ends a bulk window
// without a WAL writes its pages out (writeback_linux.go).
type writeback struct{}

func startWriteback(string) *writeback { return nil }

func (*writeback) end() {}

// asyncPwriteOK is false off Linux: the bulk window's gathered page
// writes go out on the committing goroutine (bulkasync.go).
const asyncPwriteOK = false

func asyncPwrite(int, []byte, int64) int32 { return 1 }

// dropCached and filePageSize are never called off Linux, where the
// window's writes are not queued (coldpages.go).
func dropCached(int, int64, int64) bool { return false }

func filePageSize(int) int64 { return 0 }
