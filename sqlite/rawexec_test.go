package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"

	sqlite3 "modernc.org/sqlite/lib"
)

// eachPath runs f with insert.run's statements below database/sql
// (rawexec.go) and through it.
func eachPath(t *testing.T, f func(t *testing.T, viaSQL bool)) {
	for _, viaSQL := range []bool{false, true} {
		t.Run(map[bool]string{false: "raw", true: "database/sql"}[viaSQL], func(t *testing.T) { f(t, viaSQL) })
	}
}

// TestRawBindsAsDriver: a row exec binds is stored as the driver stores
// the same arguments, column for column: the type SQLite records and the
// bytes, for NULL, int64's bounds, int, bool, float64, text that is empty,
// holds a NUL or is not ASCII, and blobs empty, nil (NULL) and binary;
// and pointers to int64, string and []byte: nil (NULL), to a nil []byte
// (NULL), to an empty text and blob, and to values.
func TestRawBindsAsDriver(t *testing.T) {
	s := openTest(t)
	n, text, empty, blob, none, noBlob := int64(-7), "p\x00q", "", []byte{1, 'y'}, []byte(nil), []byte{}
	args := []any{nil, int64(math.MinInt64), int64(math.MaxInt64), int64(0), -1, true, false, 1.5,
		"", "a\x00b", "é✓", []byte{}, []byte(nil), []byte{0, 0xff, 'x'}, "x",
		&n, &text, &empty, &blob, &none, &noBlob, (*int64)(nil), (*string)(nil), (*[]byte)(nil)}
	want := []string{"null:", "integer:-9223372036854775808", "integer:9223372036854775807", "integer:0", "integer:-1", "integer:1", "integer:0", "real:1.5",
		"text:", "text:a\x00b", "text:é✓", "blob:", "null:", "blob:\x00\xffx", "text:x",
		"integer:-7", "text:p\x00q", "text:", "blob:\x01y", "null:", "blob:", "null:", "null:", "null:"}
	if !bindable(args) {
		t.Fatal("exec does not bind these arguments: the test shows nothing")
	}
	cols := make([]string, len(args))
	shown := make([]string, len(args))
	for i := range args {
		cols[i] = fmt.Sprint("c", i)
		shown[i] = fmt.Sprintf("typeof(c%d) || ':' || ifnull(CAST(c%[1]d AS BLOB), '')", i)
	}
	if err := s.ExecRaw(t.Context(), `CREATE TABLE vals (`+strings.Join(cols, ", ")+`)`); err != nil {
		t.Fatal(err)
	}
	ctx, tx := insertTx(t, s, false)
	defer tx.Rollback()
	q := `INSERT INTO vals VALUES (?` + strings.Repeat(", ?", len(args)-1) + `)`
	if id, err := rawOf(ctx).exec(q, args); err != nil || id != 1 {
		t.Fatalf("raw insert: rowid %d, %v; want 1", id, err)
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(shown, ", ")+` FROM vals ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][]string
	for rows.Next() {
		vals := make([]string, len(args))
		ptrs := make([]any, len(args))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		got = append(got, vals)
	}
	if err := rows.Err(); err != nil || len(got) != 2 {
		t.Fatalf("%d rows, %v; want 2", len(got), err)
	}
	for i := range args {
		if got[0][i] != want[i] || got[1][i] != want[i] {
			t.Errorf("argument %d (%T %#v): raw %q, driver %q; want %q", i, args[i], args[i], got[0][i], got[1][i], want[i])
		}
	}
}

// TestInsertNotRetriedOutsideTx: a statement that fails in a way that
// makes SQLite roll the whole transaction back (a full database: no
// statement journal for a table without constraints) is not retried row
// by row, which would commit each row on its own: nothing is stored.
func TestInsertNotRetriedOutsideTx(t *testing.T) {
	eachPath(t, func(t *testing.T, viaSQL bool) {
		s := openTest(t)
		if err := s.ExecRaw(t.Context(), `CREATE TABLE fill (v BLOB)`); err != nil {
			t.Fatal(err)
		}
		ctx, conn, tx := insertConnTx(t, s, viaSQL)
		defer tx.Rollback()
		var pages int64
		if err := tx.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		// Room for a row or two, not for the statement's eight.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+4)); err != nil {
			t.Fatal(err)
		}
		explained := -1
		err := insert{head: `INSERT INTO fill (v) VALUES `, cols: 1, rows: 8}.run(ctx, tx, 8, func(args []any, i int) []any {
			return append(args, make([]byte, 3000))
		}, func(i int, err error) error {
			explained = i
			return err
		})
		if sqliteCode(err)&0xff != sqlite3.SQLITE_FULL {
			t.Fatalf("insert into a full database: %v (explained at row %d), want SQLITE_FULL", err, explained)
		}
		tx.Rollback()
		var n int
		if err := conn.QueryRowContext(t.Context(), `SELECT count(*) FROM fill`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after the failed insert and its rollback: %d rows stored, %v; want 0 (explained at row %d)", n, err, explained)
		}
		if _, err := conn.ExecContext(t.Context(), `PRAGMA max_page_count = 4294967294`); err != nil {
			t.Fatal(err)
		}
	})
}

// TestInsertCanceled: a context that ends between two statements of an
// insert stops it before the next one, with the context's error, and the
// transaction goes on (rows of the statements before it, in it, undone by
// its rollback).
func TestInsertCanceled(t *testing.T) {
	eachPath(t, func(t *testing.T, viaSQL bool) {
		s := openTest(t)
		if err := s.ExecRaw(t.Context(), `CREATE TABLE cans (id INTEGER PRIMARY KEY, w INTEGER NOT NULL) STRICT`); err != nil {
			t.Fatal(err)
		}
		ctx, conn, tx := insertConnTx(t, s, viaSQL)
		defer tx.Rollback()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := insert{head: `INSERT INTO cans (id, w) VALUES `, cols: 2, rows: 4}.run(ctx, tx, 12, func(args []any, i int) []any {
			if i == 4 {
				cancel() // as the second statement's rows are gathered
			}
			return append(args, i+1, i)
		}, func(i int, err error) error { return fmt.Errorf("row %d: %w", i, err) })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("insert canceled after its first statement: %v, want context.Canceled", err)
		}
		var n int
		if err := tx.QueryRowContext(context.WithoutCancel(ctx), `SELECT count(*) FROM cans`).Scan(&n); err != nil || n != 4 {
			t.Errorf("in the transaction: %d rows, %v; want the first statement's 4", n, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatalf("rollback: %v (the transaction ended under the insert)", err)
		}
		if err := conn.QueryRowContext(t.Context(), `SELECT count(*) FROM cans`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after the rollback: %d rows, %v; want 0", n, err)
		}
	})
}

// TestRawConnReplaced: when the pool replaces the writer's connection
// (the bulk window discards it), the next transaction's statements are
// prepared on the new one and the old one's are finalized, which lets it
// close; rows go on being stored.
func TestRawConnReplaced(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	if err := s.ExecRaw(ctx, `CREATE TABLE reps (w INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	in := insert{head: `INSERT INTO reps (w) VALUES `, cols: 1}
	var last *rawConn
	for round := range 3 {
		conn, err := s.w.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw := s.raw.of(conn)
		if raw == nil || round > 0 && (raw == last || len(raw.stmts) != 0) {
			t.Fatalf("round %d: raw connection %p (last %p) with %v statements, want a new one with none", round, raw, last, raw)
		}
		last = raw
		rctx := withRaw(ctx, raw)
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.run(rctx, tx, 100, func(args []any, i int) []any { return append(args, i) }, nil); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(raw.stmts) == 0 {
			t.Fatalf("round %d: no statement prepared below database/sql", round)
		}
		// Discarded by the pool, as closeWindow does.
		if err := conn.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(err, driver.ErrBadConn) {
			t.Fatal(err)
		}
		conn.Close()
	}
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM reps`).Scan(&n); err != nil || n != 300 {
		t.Errorf("%d rows, %v; want 300", n, err)
	}
}

// TestCommitRefusedOnceClosing: a commit waiting for the writer's
// connection when Close takes it is refused once it gets it, and writes
// nothing: Close finalizes the raw statements and frees their buffer
// while it holds the connection, and a commit running them after would
// run on freed memory.
func TestCommitRefusedOnceClosing(t *testing.T) {
	s := openTest(t)
	if err := s.Commit(t.Context(), storetest.BulkBatch(1, 300)); err != nil {
		t.Fatal(err)
	}
	if rawOf(withRaw(t.Context(), s.raw.c)) == nil {
		t.Fatal("the first commit left no raw connection: the test shows nothing")
	}
	done := make(chan error, 1)
	testHookClosing = func(s *Store) {
		waits := s.w.Stats().WaitCount
		go func() { done <- s.Commit(context.Background(), storetest.BulkBatch(1000, 300)) }()
		// Until the commit waits for the connection Close holds, or ends
		// (it did not wait: Close holds none).
		for s.w.Stats().WaitCount == waits && len(done) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	defer func() { testHookClosing = nil }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; nhisync.ErrorCode(err) != nhisync.EINTERNAL || !strings.Contains(nhisync.ErrorMessage(err), "store is closed") {
		t.Errorf("a commit begun while the store closed: %v; want it refused, the store is closed", err)
	}
	s, err := Open(t.Context(), s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.LoadRecords(t.Context(), []int64{1, 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != 1 {
		t.Errorf("after the refused commit the store holds %d of records 1 and 1000; want record 1 alone", len(got))
	}
}
