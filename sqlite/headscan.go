package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/nhisync/nhisync"
	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Head scans read every link and record head of the store each pass, a
// few million rows, through SQLite's own API on connections of their own
// (headConn), not through the driver: the driver hands each column out as
// a fresh Go value (a copy and an interface box, five allocations a link
// head) and each column call takes the connection's mutex (its
// connections are opened serialized). A head connection is opened
// without a mutex (SQLITE_OPEN_NOMUTEX: one goroutine uses it at a time,
// it is taken from and put back into headPool) and read-only in effect
// (query_only); a row's text and blobs are copied straight from SQLite's
// memory into one buffer per page of heads, turned into the page's one
// string and one byte slice, which the page's heads share.

// headConn is one SQLite connection of a head scan, with its prepared
// statements by SQL text.
type headConn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]uintptr
}

// headPool keeps idle head connections of a store.
type headPool struct {
	file   string
	mu     sync.Mutex
	free   []*headConn
	closed bool
}

// headConnPragmas are a head connection's settings: reads only, the
// readers' lock wait (windowWait), a small page cache (a scan reads each
// page once).
func headConnPragmas() string {
	return fmt.Sprintf("PRAGMA query_only=1; PRAGMA busy_timeout=%d; PRAGMA cache_size=-2048", windowWait.Milliseconds())
}

// get returns an idle connection, or opens one.
func (p *headPool) get() (*headConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("the store is closed")
	}
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return openHeadConn(p.file)
}

// put gives c back, or closes it when the pool is closed or has enough.
func (p *headPool) put(c *headConn) {
	p.mu.Lock()
	if !p.closed && len(p.free) < max(4, runtime.GOMAXPROCS(0)) {
		p.free = append(p.free, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// close closes the idle connections; one in use is closed when put back.
func (p *headPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range free {
		c.close()
	}
}

func openHeadConn(file string) (_ *headConn, err error) {
	tls := libc.NewTLS()
	c := &headConn{tls: tls, stmts: map[string]uintptr{}}
	name, err := cString(tls, file)
	if err != nil {
		tls.Close()
		return nil, err
	}
	// Through walBufVFS, as every connection of the store: in a bulk
	// window without a WAL a read waits there for the writer's queued
	// page writes (bulkasync.go).
	vfs, err := cString(tls, walBufVFS)
	if err != nil {
		sqlite3.Xsqlite3_free(tls, name)
		tls.Close()
		return nil, err
	}
	pdb := tls.Alloc(8)
	rc := sqlite3.Xsqlite3_open_v2(tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_EXRESCODE, vfs)
	c.db = *(*uintptr)(cptr(pdb))
	tls.Free(8)
	sqlite3.Xsqlite3_free(tls, name)
	sqlite3.Xsqlite3_free(tls, vfs)
	if rc != sqlite3.SQLITE_OK {
		err = c.err(rc)
		c.close()
		return nil, err
	}
	sql, err := cString(tls, headConnPragmas())
	if err != nil {
		c.close()
		return nil, err
	}
	rc = sqlite3.Xsqlite3_exec(tls, c.db, sql, 0, 0, 0)
	sqlite3.Xsqlite3_free(tls, sql)
	if rc != sqlite3.SQLITE_OK {
		err = c.err(rc)
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *headConn) close() {
	for _, st := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, st)
	}
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	c.tls.Close()
}

// headError is a failure SQLite reported to a head connection, with its
// extended result code (sqliteCode reads it).
type headError struct {
	code int
	msg  string
}

func (e *headError) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.code) }

// err is the connection's failure rc as an error.
func (c *headConn) err(rc int32) error {
	code := int(rc)
	msg := ""
	if c.db != 0 {
		code = int(sqlite3.Xsqlite3_extended_errcode(c.tls, c.db))
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	if msg == "" {
		msg = libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	}
	return &headError{code: code, msg: msg}
}

// stmt returns query prepared on c (once per connection).
func (c *headConn) stmt(query string) (uintptr, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	sql, err := cString(c.tls, query)
	if err != nil {
		return 0, err
	}
	defer sqlite3.Xsqlite3_free(c.tls, sql)
	pst := c.tls.Alloc(8)
	defer c.tls.Free(8)
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, sql, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pst, 0); rc != sqlite3.SQLITE_OK {
		return 0, c.err(rc)
	}
	st := *(*uintptr)(cptr(pst))
	c.stmts[query] = st
	return st, nil
}

// headRows is one page of a head scan being read: the statement, bound,
// and the buffers the page's text and blobs are copied into.
type headRows struct {
	c  *headConn
	st uintptr
}

// query binds args (int64 or string) to query's statement on c and
// returns it ready to step; done resets it.
func (c *headConn) query(query string, args ...any) (headRows, error) {
	st, err := c.stmt(query)
	if err != nil {
		return headRows{}, err
	}
	for i, a := range args {
		var rc int32
		switch a := a.(type) {
		case int64:
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, int32(i+1), a)
		case string:
			// SQLITE_TRANSIENT: SQLite copies the text before bind returns.
			p := c.tls.Alloc(len(a) + 1)
			copy(unsafe.Slice((*byte)(cptr(p)), len(a)), a)
			rc = sqlite3.Xsqlite3_bind_text(c.tls, st, int32(i+1), p, int32(len(a)), sqlite3.SQLITE_TRANSIENT)
			c.tls.Free(len(a) + 1)
		default:
			return headRows{}, fmt.Errorf("head scan argument %d is %T", i+1, a)
		}
		if rc != sqlite3.SQLITE_OK {
			sqlite3.Xsqlite3_clear_bindings(c.tls, st)
			return headRows{}, c.err(rc)
		}
	}
	return headRows{c: c, st: st}, nil
}

// next steps to the next row; false at the end (err nil) or on a failure.
func (r headRows) next() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(r.c.tls, r.st); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, r.c.err(rc)
	}
}

// done resets the statement, ending its read.
func (r headRows) done() {
	sqlite3.Xsqlite3_reset(r.c.tls, r.st)
	sqlite3.Xsqlite3_clear_bindings(r.c.tls, r.st)
}

// text, int, blob and status read column i of the current row, of that
// type (NULL reads as the zero value); a value of another type is an
// error, not a silent zero. The bytes of text and blob are SQLite's, valid
// until the next step.
func (r headRows) text(i int32) ([]byte, error) {
	return r.bytes(i, sqlite3.Xsqlite3_column_text, "text")
}

func (r headRows) int(i int32) (int64, error) {
	switch t := sqlite3.Xsqlite3_column_type(r.c.tls, r.st, i); t {
	case sqlite3.SQLITE_INTEGER:
		return sqlite3.Xsqlite3_column_int64(r.c.tls, r.st, i), nil
	case sqlite3.SQLITE_NULL:
		return 0, nil
	default:
		return 0, fmt.Errorf("column %d holds SQLite type %d, want an integer", i, t)
	}
}

func (r headRows) blob(i int32) ([]byte, error) {
	return r.bytes(i, sqlite3.Xsqlite3_column_blob, "a blob")
}

// bytes reads column i, text or a blob, by column (sqlite3_column_text or
// _blob) and then its length; want names the type in the error.
func (r headRows) bytes(i int32, column func(*libc.TLS, uintptr, int32) uintptr, want string) ([]byte, error) {
	switch t := sqlite3.Xsqlite3_column_type(r.c.tls, r.st, i); t {
	case sqlite3.SQLITE_TEXT, sqlite3.SQLITE_BLOB:
		p := column(r.c.tls, r.st, i)
		return cBytes(p, sqlite3.Xsqlite3_column_bytes(r.c.tls, r.st, i)), nil
	case sqlite3.SQLITE_NULL:
		return nil, nil
	default:
		return nil, fmt.Errorf("column %d holds SQLite type %d, want %s", i, t, want)
	}
}

// status reads a status column, as a known status's shared string.
func (r headRows) status(i int32) (nhisync.LinkStatus, error) {
	b, err := r.text(i)
	if err != nil {
		return "", err
	}
	return linkStatus(b), nil
}

func cBytes(p uintptr, n int32) []byte {
	if p == 0 || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cptr(p)), n)
}

// cString copies s into memory SQLite allocated, NUL-terminated; the
// caller frees it with sqlite3_free.
func cString(tls *libc.TLS, s string) (uintptr, error) {
	p := sqlite3.Xsqlite3_malloc64(tls, uint64(len(s)+1))
	if p == 0 {
		return 0, errors.New("SQLite is out of memory")
	}
	b := unsafe.Slice((*byte)(cptr(p)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return p, nil
}

// headScan runs fn on a head connection of s.
func (s *Store) headScan(ctx context.Context, fn func(c *headConn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.heads.get()
	if err != nil {
		return err
	}
	defer s.heads.put(c)
	return fn(c)
}
