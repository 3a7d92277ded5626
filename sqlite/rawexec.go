package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// A commit's INSERTs (insert.run) run on the writer's SQLite connection
// below database/sql, in the transaction database/sql began on it, as
// head scans read (headscan.go): through database/sql each statement's
// arguments were converted to driver values one by one, each parameter
// looked up by name, each text and blob copied into memory of its own,
// allocated and freed per value, and each call took the connection's
// locks; a first pass's commit of 500 records binds ~7,000 values. Here a
// statement is prepared once per connection, its text and blobs are
// copied into one buffer (SQLITE_STATIC: every parameter is bound again
// before each step, and the buffer is not touched until the step and the
// reset are done), stepped and reset. Values of a type it does not bind
// itself (named types, time.Time, a driver.Valuer) send that statement
// through database/sql, as before.
//
// The connection is found in the driver's connection (modernc.org/sqlite's
// conn, whose first fields are the sqlite3* and its TLS); a driver whose
// connection is shaped otherwise leaves every statement to database/sql.
// The transaction's context cannot end it under a running statement
// (Store.commit begins it without cancellation and checks the context
// before each statement and before committing): database/sql would roll
// it back on its own goroutine while a statement here runs, and the rows
// after it would commit on their own.

// rawConn is the writer's SQLite connection with the INSERT statements
// prepared on it, by SQL text.
type rawConn struct {
	db    uintptr
	tls   *libc.TLS
	stmts map[string]uintptr
	buf   uintptr // C memory, bufCap bytes: a statement's text and blobs
	cap   int
}

// rawConns keeps the raw connection of a Store's writer: its prepared
// statements live as long as the connection.
type rawConns struct {
	mu sync.Mutex
	c  *rawConn
}

// connShape is the head of modernc.org/sqlite's conn.
type connShape struct {
	db  uintptr
	tls *libc.TLS
}

// driverConn returns the SQLite connection and TLS of a modernc.org/sqlite
// driver connection, or ok false when dc is not one shaped as expected.
func driverConn(dc any) (db uintptr, tls *libc.TLS, ok bool) {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, nil, false
	}
	t := v.Elem().Type()
	if t.PkgPath() != "modernc.org/sqlite" || t.Name() != "conn" || t.NumField() < 2 {
		return 0, nil, false
	}
	f0, f1 := t.Field(0), t.Field(1)
	if f0.Name != "db" || f0.Type.Kind() != reflect.Uintptr || f0.Offset != 0 ||
		f1.Name != "tls" || f1.Type != reflect.TypeFor[*libc.TLS]() || f1.Offset != unsafe.Offsetof(connShape{}.tls) {
		return 0, nil, false
	}
	c := (*connShape)(v.UnsafePointer())
	if c.db == 0 || c.tls == nil {
		return 0, nil, false
	}
	return c.db, c.tls, true
}

var (
	// rawDisabled turns the raw path off (tests of the database/sql path).
	rawDisabled = false
	// rawExecs and sqlExecs count insert.run's statements run below
	// database/sql and through it (tests).
	rawExecs, sqlExecs atomic.Int64
)

// of returns the raw connection of conn (the writer's, taken for a
// commit), or nil when the driver's connection cannot be read. A new
// connection (the pool discarded the last one) starts with no statement;
// the last one's are finalized.
func (r *rawConns) of(conn *sql.Conn) *rawConn {
	if rawDisabled {
		return nil
	}
	var db uintptr
	var tls *libc.TLS
	var ok bool
	if err := conn.Raw(func(dc any) error {
		db, tls, ok = driverConn(dc)
		return nil
	}); err != nil || !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c != nil && r.c.db == db {
		r.c.tls = tls
		return r.c
	}
	// Statements of a connection already closed keep it (a zombie of
	// sqlite3_close_v2) until they are finalized: its address is not
	// handed out again meanwhile.
	r.closeLocked()
	r.c = &rawConn{db: db, tls: tls, stmts: map[string]uintptr{}}
	return r.c
}

// close finalizes the statements; the Store calls it before closing the
// writer.
func (r *rawConns) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *rawConns) closeLocked() {
	c := r.c
	if c == nil {
		return
	}
	r.c = nil
	tls := libc.NewTLS()
	defer tls.Close()
	for _, st := range c.stmts {
		sqlite3.Xsqlite3_finalize(tls, st)
	}
	if c.buf != 0 {
		sqlite3.Xsqlite3_free(tls, c.buf)
	}
}

type rawKey struct{}

// withRaw returns ctx carrying c, for insert.run.
func withRaw(ctx context.Context, c *rawConn) context.Context {
	if c == nil {
		return ctx
	}
	return context.WithValue(ctx, rawKey{}, c)
}

func rawOf(ctx context.Context) *rawConn {
	c, _ := ctx.Value(rawKey{}).(*rawConn)
	return c
}

// err is the connection's failure rc as an error sqliteCode reads.
func (c *rawConn) err(rc int32) error {
	return (&headConn{tls: c.tls, db: c.db}).err(rc)
}

// bindable reports whether every argument is of a type exec binds.
//
// Besides values, exec binds pointers to int64, string and []byte (nil,
// or pointing to a nil []byte: NULL; database/sql binds what they point
// to): a row's columns are mostly fields of a batch's members and
// encoded states, and a pointer to one goes into an argument as it is,
// where a string, a []byte or an int64 past 255 is copied into memory
// of its own first, a first pass's commit allocating some 6,000 of them.
func bindable(args []any) bool {
	for _, a := range args {
		switch a.(type) {
		case nil, int64, int, string, []byte, bool, float64, *int64, *string, *[]byte:
		default:
			return false
		}
	}
	return true
}

// errNoTx is exec's failure on a connection outside a transaction.
var errNoTx = errors.New("the commit's transaction has ended (SQLite rolled it back after a failure): its statements do not run on their own")

// exec runs query with args (bindable) in the connection's transaction
// and returns the rowid of the last row it inserted. It runs nothing
// outside a transaction: a statement here would commit on its own.
func (c *rawConn) exec(query string, args []any) (int64, error) {
	if sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) != 0 {
		return 0, errNoTx
	}
	st, ok := c.stmts[query]
	if !ok {
		q, err := cString(c.tls, query)
		if err != nil {
			return 0, err
		}
		pst := c.tls.Alloc(8)
		rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, q, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pst, 0)
		st = *(*uintptr)(cptr(pst))
		c.tls.Free(8)
		sqlite3.Xsqlite3_free(c.tls, q)
		if rc != sqlite3.SQLITE_OK {
			return 0, c.err(rc)
		}
		if st == 0 {
			return 0, errors.New("empty statement")
		}
		c.stmts[query] = st
	}
	if n := int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, st)); n != len(args) {
		return 0, errors.New("statement and arguments differ in number")
	}
	size := 1 // a zero-length blob or text needs a pointer that is not NULL
	for _, a := range args {
		switch a := a.(type) {
		case string:
			size += len(a)
		case []byte:
			size += len(a)
		case *string:
			if a != nil {
				size += len(*a)
			}
		case *[]byte:
			if a != nil {
				size += len(*a)
			}
		}
	}
	if size > c.cap {
		if c.buf != 0 {
			sqlite3.Xsqlite3_free(c.tls, c.buf)
		}
		c.cap = max(size, 2*c.cap, 64<<10)
		c.buf = sqlite3.Xsqlite3_malloc64(c.tls, uint64(c.cap))
		if c.buf == 0 {
			c.cap = 0
			return 0, errors.New("SQLite is out of memory")
		}
	}
	// Lengths go to SQLite whole (the 64-bit binds): one over its limit
	// is refused (SQLITE_TOOBIG), not cut to its low 32 bits.
	mem := unsafe.Slice((*byte)(cptr(c.buf)), c.cap)
	off := 0
	text := func(p int32, a string) int32 {
		copy(mem[off:], a)
		rc := sqlite3.Xsqlite3_bind_text64(c.tls, st, p, c.buf+uintptr(off), uint64(len(a)), 0, sqlite3.SQLITE_UTF8)
		off += len(a)
		return rc
	}
	blob := func(p int32, a []byte) int32 {
		if a == nil {
			return sqlite3.Xsqlite3_bind_null(c.tls, st, p) // as the driver binds a nil []byte
		}
		copy(mem[off:], a)
		rc := sqlite3.Xsqlite3_bind_blob64(c.tls, st, p, c.buf+uintptr(off), uint64(len(a)), 0)
		off += len(a)
		return rc
	}
	for i, a := range args {
		p := int32(i + 1)
		var rc int32
		switch a := a.(type) {
		case nil:
			rc = sqlite3.Xsqlite3_bind_null(c.tls, st, p)
		case int64:
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, p, a)
		case int:
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, p, int64(a))
		case bool:
			v := int64(0)
			if a {
				v = 1
			}
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, p, v)
		case float64:
			rc = sqlite3.Xsqlite3_bind_double(c.tls, st, p, a)
		case string:
			rc = text(p, a)
		case []byte:
			rc = blob(p, a)
		case *int64:
			if a == nil {
				rc = sqlite3.Xsqlite3_bind_null(c.tls, st, p)
			} else {
				rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, p, *a)
			}
		case *string:
			if a == nil {
				rc = sqlite3.Xsqlite3_bind_null(c.tls, st, p)
			} else {
				rc = text(p, *a)
			}
		case *[]byte:
			if a == nil {
				rc = sqlite3.Xsqlite3_bind_null(c.tls, st, p)
			} else {
				rc = blob(p, *a)
			}
		}
		if rc != sqlite3.SQLITE_OK {
			return 0, c.err(rc)
		}
	}
	rc := sqlite3.Xsqlite3_step(c.tls, st)
	for rc == sqlite3.SQLITE_ROW { // an INSERT … RETURNING: its rows are not read
		rc = sqlite3.Xsqlite3_step(c.tls, st)
	}
	if rc != sqlite3.SQLITE_DONE {
		err := c.err(rc)
		sqlite3.Xsqlite3_reset(c.tls, st)
		return 0, err
	}
	id := sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db)
	sqlite3.Xsqlite3_reset(c.tls, st)
	return id, nil
}
