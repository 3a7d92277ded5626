package sqlite

import (
	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// The page caches of every connection of the process take their pages
// from one pool, handed to SQLite once before its first connection opens
// (SQLITE_CONFIG_PAGECACHE), instead of one malloc each. modernc.org/sqlite
// is built with SQLITE_ENABLE_MEMORY_MANAGEMENT: the caches share one LRU
// list and allocate a page for every page read past it, and a reader drops
// its whole cache at its first read after a commit (WAL mode), each page
// freed. Through malloc, a 4 KiB page and its header took an 8 KiB slot of
// modernc.org/memory's, whose 64 KiB regions, freed whole, were handed back
// to the system (madvise) once more than 4 MiB of them waited, and faulted
// in again (about 15 µs a fault on the build machine, a virtual machine)
// when the next pages were taken: at 100k NHIs a fifth of the bench's
// drift pass's CPU time was allocating cache pages (the loads between its
// commits, on the writer) and freeing them (the readers after a commit).
// A pool slot is the page and its header, back to back; a freed slot goes
// back to the pool's list, its memory kept, and is the first taken again.
//
// The pool's memory is reserved, not touched: a slot costs memory once a
// cache first takes it. It holds pagePoolSlots pages of pagePoolPageSize
// bytes, more than the store's caches hold at once (the writer's 64 MiB,
// the readers' 8 MiB each, the head scans' 2 MiB); SQLite takes any other
// page (another page size, or past the pool) from malloc, as before, and a
// cache at its size reuses its least recently used page when the pool runs
// low.
const (
	pagePoolPageSize = 4096
	pagePoolSlots    = 40960 // 160 MiB of pages
)

// pagePool is the pool's size in bytes, 0 when SQLite was initialized
// before this package could hand it one (then it allocates as before).
var pagePool = setupPagePool()

// setupPagePool hands SQLite the page pool, unless a connection has opened
// already (sqlite3_config then refuses: the pool is not used, and freed).
func setupPagePool() int {
	tls := libc.NewTLS()
	defer tls.Close()
	hdr := tls.Alloc(8)
	defer tls.Free(8)
	*(*int32)(cptr(hdr)) = 0
	va := libc.NewVaList(hdr)
	rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE_HDRSZ, va)
	libc.Xfree(tls, va)
	if rc != sqlite3.SQLITE_OK {
		return 0
	}
	// 8-byte aligned slots of a page and its header.
	sz := (pagePoolPageSize + int(*(*int32)(cptr(hdr))) + 7) &^ 7
	size := sz * pagePoolSlots
	mem := libc.Xmalloc(tls, types.Size_t(size))
	if mem == 0 {
		return 0
	}
	va = libc.NewVaList(mem, int32(sz), int32(pagePoolSlots))
	rc = sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PAGECACHE, va)
	libc.Xfree(tls, va)
	if rc != sqlite3.SQLITE_OK {
		libc.Xfree(tls, mem)
		return 0
	}
	return size
}
