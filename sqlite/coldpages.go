package sqlite

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// The audit log's pages leave the page cache once on disk. A first pass
// into an empty store writes every page of the store new, and on a
// virtual machine whose host backs the guest's memory page by page the
// kernel's page cache costs far more where it takes memory the machine
// has not used lately than where it takes pages just freed: writing a
// file in 32 KiB writes took 0.13 s of kernel CPU per 512 MB for the
// first 3.3 GB (memory freed not long before), then 1.5-1.6 s per 512 MB;
// with those 6 GB dropped from the cache, the next 512 MB took 0.15 s,
// and 0.13 s ten seconds later. At 1M NHIs the window's page writes
// (bulkAsync's pwrites) took 10.8 CPU-s for about 3.5 GB, against 0.1 s
// for 0.37 GB at 100k: the page cache at 1M outgrows the memory the
// machine freed not long before. Nearly half of what the window writes
// is the audit log (1.7 GB of entries at 1M), and nothing in a pass reads
// it again: an entry is read by audit verify, export, proof and explain,
// which read it from disk as well as from the cache. So the window's writer
// goroutine, once a page it wrote is an audit table leaf (auditLeafPage)
// and was written coldAge ago (the window's writeback has had the kernel
// write it out meanwhile, writeback_linux.go), asks the kernel to drop it
// from the cache (POSIX_FADV_DONTNEED, which drops clean pages only; a
// page still dirty stays): its memory goes back to the kernel's free
// lists, from which the next pages the pass writes are taken. At 1M
// (first passes only, three pairs run alternately, 1.5 GB dropped in
// each) the first pass took 90.3, 87.5 and 74.5 s against 100.2, 99.6
// and 96.7 s without, its kernel CPU 30.3, 28.8 and 23.3 s against 39.8,
// 35.5 and 35.1.
//
// It is a hint and changes no byte of the file: a page dropped is read
// again from the disk should anything read it, a page classified wrongly
// costs that read and nothing else, and a failed drop is ignored.
// Dropping every page the window wrote (tried) made the window's commits
// faster still, but the window's close and the drain after it read their
// tables back from disk, page by page: the first pass took 81.5 s at 1M
// instead of 64.8.

// coldAge is how long after its write a cold page is dropped: the
// window's writeback asks the kernel to write dirty pages out every
// writebackEvery, and a page still dirty is not dropped.
var coldAge = time.Second

// bulkColdDropped counts the bytes of audit pages the bulk windows asked
// the kernel to drop from its cache (tests, measurements).
var bulkColdDropped atomic.Int64

// coldRun is a run of consecutive audit pages, [off, end), written at at.
type coldRun struct {
	off, end int64
	at       time.Time
}

// coldPages are the audit pages a bulk window's writer goroutine wrote
// and has not dropped yet; only that goroutine touches them.
type coldPages struct {
	pageSize int64     // 0: the page size is unknown, nothing is dropped
	runs     []coldRun // in the order written: oldest first
}

// note records the audit leaves among the pages of p, written at off.
func (c *coldPages) note(p []byte, off int64, now time.Time) {
	ps := c.pageSize
	if ps == 0 || off%ps != 0 {
		return
	}
	for i := int64(0); i+ps <= int64(len(p)); i += ps {
		o := off + i
		if o == 0 || !auditLeafPage(p[i:i+ps]) {
			continue
		}
		if n := len(c.runs); n > 0 && c.runs[n-1].end == o {
			c.runs[n-1].end = o + ps
			c.runs[n-1].at = now
			continue
		}
		c.runs = append(c.runs, coldRun{off: o, end: o + ps, at: now})
	}
}

// drop asks the kernel to drop the runs written coldAge before now or
// earlier from its cache of fd, each once. Those the window writes in its
// last coldAge stay: still dirty, most of them, until the sync that ends
// it.
func (c *coldPages) drop(fd int, now time.Time) {
	k := 0
	for _, r := range c.runs {
		if now.Sub(r.at) < coldAge {
			break
		}
		if dropCached(fd, r.off, r.end-r.off) {
			bulkColdDropped.Add(r.end - r.off)
		}
		k++
	}
	if k > 0 {
		c.runs = append(c.runs[:0], c.runs[k:]...)
	}
}

// auditLeafPage reports whether page (one database page, not the first)
// is a leaf of the audit table's B-tree: a table leaf whose first cell's
// record has the audit row's four columns, seq (the rowid, stored as
// NULL), record_id (an integer or NULL), leaf (a blob) and hash (text of
// 44 bytes, a SHA-256 in base64); prev is virtual and not stored
// (00001_init.sql, 00009_audit_chain_keys.sql). No other table of the
// store has that shape (TestAuditLeafPage reads every page of a store).
// See https://sqlite.org/fileformat2.html#b_tree_pages and #record_format.
func auditLeafPage(page []byte) bool {
	if len(page) < 512 || page[0] != 0x0d {
		return false
	}
	if binary.BigEndian.Uint16(page[3:5]) == 0 {
		return false
	}
	cell := int(binary.BigEndian.Uint16(page[8:10]))
	if cell < 8 || cell >= len(page) {
		return false
	}
	p := page[cell:]
	// The cell: its payload's size, the rowid, then the record (whose
	// header, for these four columns, is never on an overflow page).
	for range 2 {
		_, n := sqliteVarint(p)
		if n == 0 {
			return false
		}
		p = p[n:]
	}
	hdr, n := sqliteVarint(p)
	if n == 0 || hdr > uint64(len(p)) || hdr <= uint64(n) {
		return false
	}
	p, rest := p[n:hdr], 0
	var types [4]uint64
	for len(p) > 0 {
		t, n := sqliteVarint(p)
		if n == 0 || rest == len(types) {
			return false
		}
		types[rest], rest, p = t, rest+1, p[n:]
	}
	return rest == 4 && types[0] == 0 &&
		(types[1] <= 6 || types[1] == 8 || types[1] == 9) &&
		types[2] >= 12 && types[2]%2 == 0 &&
		types[3] == 13+2*44
}

// sqliteVarint decodes SQLite's big-endian varint at the start of p (1-9
// bytes), returning its value and length, 0 when p is too short.
func sqliteVarint(p []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(p) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(p[i]), 9
		}
		v = v<<7 | uint64(p[i]&0x7f)
		if p[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
