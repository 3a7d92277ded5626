package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// TestCommitSizes commits batches of every size around the statement
// sizes (256 rows, 64 for records, then half as many, … 1): each record
// and link is stored once, with its state, whether its statement was
// prepared in the transaction or cached from an earlier one, and a later
// row of the same record wins; below database/sql (rawexec.go) and
// through it.
func TestCommitSizes(t *testing.T) {
	eachPath(t, func(t *testing.T, viaSQL bool) {
		rawDisabled = viaSQL
		defer func() { rawDisabled = false }()
		raw, viaDB := rawExecs.Load(), sqlExecs.Load()
		commitSizes(t)
		if ran := rawExecs.Load() - raw; (ran == 0) == !viaSQL {
			t.Errorf("%d statements ran below database/sql", ran)
		}
		if ran := sqlExecs.Load() - viaDB; (ran == 0) == viaSQL {
			t.Errorf("%d statements ran through database/sql", ran)
		}
	})
}

func commitSizes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 30, 6, 0, 0, 7, time.UTC)
	next := int64(1)
	for _, n := range []int{1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 511, 513, 65, 3} {
		b := storetest.BulkBatch(next, n)
		for i, r := range b.Records {
			r.Created, r.Updated = at, at
			r.Fields = map[string]*nhisync.Golden{"name": {Value: nhisync.Str(fmt.Sprintf("bot-%d", r.ID)), Source: "idp", Rule: nhisync.ReasonFirstValue, At: at}}
			b.Links[i].FirstSeen = at
			b.Links[i].Fields = map[string]*nhisync.FieldState{"name": {Asserted: nhisync.Str(fmt.Sprintf("bot-%d", r.ID)), Since: at}}
		}
		// The first record again, later in the batch: this row wins.
		again := *b.Records[0]
		again.Fields = map[string]*nhisync.Golden{"name": {Value: nhisync.Str("again"), Source: "cmdb", Rule: "latest", At: at}}
		b.Records = append(b.Records, &again)
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("commit of %d: %v", n, err)
		}
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = next + int64(i)
		}
		got, err := s.LoadRecords(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("commit of %d: loaded %d records", n, len(got))
		}
		for i, r := range got {
			want := fmt.Sprintf("bot-%d", r.ID)
			if i == 0 {
				want = "again"
			}
			if v := r.Value("name").Text(); v != want {
				t.Errorf("record %d: name %q, want %q", r.ID, v, want)
			}
			if len(r.Links) != 1 || r.Links[0].Fields["name"].Asserted.Text() != fmt.Sprintf("bot-%d", r.ID) || !r.Links[0].FirstSeen.Equal(at) {
				t.Errorf("record %d: links %+v", r.ID, r.Links)
			}
		}
		next += int64(n)
	}
	s.stmts.mu.Lock()
	cached := len(s.stmts.stmts)
	s.stmts.mu.Unlock()
	s.raw.mu.Lock()
	if s.raw.c != nil {
		cached += len(s.raw.c.stmts)
	}
	s.raw.mu.Unlock()
	if cached == 0 {
		t.Errorf("no statement was cached")
	}
}

// TestInsertSeq inserts rows whose first column runs up by one (insert.seq)
// in statements of every size, then a set whose row 70 fails: each stored
// row has its own seq, and the failure is retried row by row and named at
// the row that holds it, with that row's seq bound.
func TestInsertSeq(t *testing.T) {
	eachPath(t, insertSeq)
}

func insertSeq(t *testing.T, viaSQL bool) {
	s := openTest(t)
	if err := s.ExecRaw(t.Context(), `CREATE TABLE seqs (id INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'bad'), w INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	ctx, tx := insertTx(t, s, viaSQL)
	defer tx.Rollback()
	const n, base = 127, 1000
	in := insert{head: `INSERT INTO seqs (id, v, w) VALUES `, cols: 3, seq: func(i int) int64 { return base + int64(i) }}
	if err := in.run(ctx, tx, n, func(args []any, i int) []any { return append(args, fmt.Sprint("v", i), i) }, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, v, w FROM seqs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rows.Next() {
		var id, w int64
		var v string
		if err := rows.Scan(&id, &v, &w); err != nil {
			t.Fatal(err)
		}
		if id != base+w || v != fmt.Sprint("v", w) {
			t.Errorf("row %d: id %d, v %s; want id %d", w, id, v, base+w)
		}
		got++
	}
	rows.Close()
	if got != n {
		t.Fatalf("%d rows stored, want %d", got, n)
	}
	in.seq = func(i int) int64 { return 5000 + int64(i) }
	var named int = -1
	err = in.run(ctx, tx, 100, func(args []any, i int) []any {
		v := fmt.Sprint("v", i)
		if i == 70 {
			v = "bad"
		}
		return append(args, v, i)
	}, func(i int, err error) error {
		named = i
		return err
	})
	if err == nil || named != 70 {
		t.Errorf("a set with a bad row 70: %v, named row %d", err, named)
	}
	var ok int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM seqs WHERE id >= 5000 AND id - 5000 = w`).Scan(&ok); err != nil || ok != 70 {
		t.Errorf("rows before the bad one stored with their seq: %d, %v; want 70 (the one-by-one retry)", ok, err)
	}
}

// TestInsertNext inserts rows that leave their rowid to SQLite
// (insert.next): row i gets next+i, in statements of every size; a table
// whose largest rowid is not next-1 fails the insert rather than store
// rows under ids other than those reserved.
func TestInsertNext(t *testing.T) {
	eachPath(t, insertNext)
}

func insertNext(t *testing.T, viaSQL bool) {
	s := openTest(t)
	if err := s.ExecRaw(t.Context(), `CREATE TABLE nexts (id INTEGER PRIMARY KEY, w INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	ctx, tx := insertTx(t, s, viaSQL)
	defer tx.Rollback()
	next := int64(1)
	for _, n := range []int{1, 300, 77} {
		in := insert{head: `INSERT INTO nexts (w) VALUES `, cols: 1, next: next}
		if err := in.run(ctx, tx, n, func(args []any, i int) []any { return append(args, next+int64(i)) }, nil); err != nil {
			t.Fatal(err)
		}
		next += int64(n)
	}
	var rows, wrong int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE id <> w) FROM nexts`).Scan(&rows, &wrong); err != nil || rows != next-1 || wrong != 0 {
		t.Fatalf("%d rows, %d not under their id, %v; want %d, 0", rows, wrong, err, next-1)
	}
	in := insert{head: `INSERT INTO nexts (w) VALUES `, cols: 1, next: next + 5}
	if err := in.run(ctx, tx, 3, func(args []any, i int) []any { return append(args, int64(i)) }, nil); err == nil || !strings.Contains(err.Error(), "not") {
		t.Errorf("rows given ids the table does not hand out: %v, want an error", err)
	}
}

// TestRewriteAsStoredWritesNoPage: records and links a commit writes back
// as they are stored (a pass rewrites every link of a record it decides
// again, most of them unchanged) leave every page as it was: no entry of
// records_key, records_heads or links_record is deleted and inserted
// again, so the commit adds no page to the WAL. A link whose hash alone
// changed dirties its own page, not links_record's.
func TestRewriteAsStoredWritesNoPage(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const n = 3000
	b := &nhisync.Batch{}
	for i := range n {
		id := int64(i + 1)
		// Keys and external ids in no order, so that the indexes' entries
		// of the records rewritten below lie on many pages.
		h := fmt.Sprintf("%08x", uint32(id)*2654435761)
		b.Records = append(b.Records, &nhisync.Record{ID: id, Kind: "service_account", Key: "aws/bot-" + h, MatchKey: "aws\x00bot-" + h,
			Fields: map[string]*nhisync.Golden{"name": {Value: nhisync.Str("bot-" + h), Source: "idp"}}})
		for _, sys := range []string{"idp", "cmdb", "catalog"} {
			b.Links = append(b.Links, &nhisync.Link{System: sys, ExternalID: sys + "-" + h, RecordID: id, Status: nhisync.LinkLive, Hash: []byte(h),
				Fields: map[string]*nhisync.FieldState{"name": {Asserted: nhisync.Str("bot-" + h), Shadow: nhisync.Str("bot-" + h)}}})
		}
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for id := int64(1); id <= n; id += 7 {
		ids = append(ids, id)
	}
	recs, err := s.LoadRecords(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	frames := func(b *nhisync.Batch) uint32 {
		t.Helper()
		before, _ := walFrames(t, s)
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		after, _ := walFrames(t, s)
		if after < before { // the WAL started over with this commit
			return after
		}
		return after - before
	}
	again := &nhisync.Batch{Records: recs}
	for _, r := range recs {
		again.Links = append(again.Links, r.Links...)
	}
	if got := frames(again); got != 0 {
		t.Errorf("rewriting %d records and %d links as stored wrote %d pages to the WAL, want none", len(recs), len(again.Links), got)
	}
	// One link of each record changes its hash: its page of links is
	// written, not links_record's too (here 37 pages, 93 with them).
	hashed := &nhisync.Batch{}
	for _, r := range recs {
		l := r.Links[0]
		l.Hash = append([]byte("new-"), l.Hash...)
		hashed.Links = append(hashed.Links, l)
	}
	if got := frames(hashed); got > 50 {
		t.Errorf("a new hash in %d links wrote %d pages to the WAL, want at most 50 (links' own pages)", len(hashed.Links), got)
	}
	loaded, err := s.LoadRecords(ctx, ids[:1])
	if err != nil || len(loaded) != 1 {
		t.Fatalf("LoadRecords: %v, %v", loaded, err)
	}
	if l := loaded[0].Links[0]; string(l.Hash) != string(hashed.Links[0].Hash) {
		t.Errorf("link %s/%s after its hash changed: hash %q, want %q", l.System, l.ExternalID, l.Hash, hashed.Links[0].Hash)
	}
}

// TestBulkLinkToMissingRecord: inside the bulk window a staged link to a
// record that is neither in its batch nor stored is refused (EINVALID,
// naming the link) and nothing of its batch is kept, as the links
// table's foreign key refuses it outside the window; links to records of
// the batch and of an earlier commit of the window are taken.
func TestBulkLinkToMissingRecord(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	beginBulk(t, s)
	first, err := s.NewIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, storetest.BulkBatch(first, 2)); err != nil {
		t.Fatal(err)
	}
	b := storetest.BulkBatch(first+2, 2)
	b.Links = append(b.Links,
		&nhisync.Link{System: "cmdb", ExternalID: "c-0", RecordID: first, Status: nhisync.LinkLive},
		&nhisync.Link{System: "cmdb", ExternalID: "c-gone", RecordID: first + 999, Status: nhisync.LinkLive})
	err = s.Commit(ctx, b)
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), "cmdb/c-gone") {
		t.Fatalf("a staged link to a missing record: %v, want EINVALID naming the link", err)
	}
	if got, err := s.LoadRecords(ctx, []int64{first + 2}); err != nil || len(got) != 0 {
		t.Errorf("the refused batch's record: %d loaded, %v; want none", len(got), err)
	}
	b.Links = b.Links[:len(b.Links)-1]
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("links to the batch's and an earlier commit's records: %v", err)
	}
	if err := s.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadRecords(ctx, []int64{first, first + 2})
	if err != nil || len(got) != 2 || len(got[0].Links) != 2 || len(got[1].Links) != 1 {
		t.Fatalf("after EndBulk: %d records, %v", len(got), err)
	}
}

// insertTx begins a transaction on s's writer for insert.run, whose
// statements run below database/sql (rawexec.go) unless viaSQL.
func insertTx(t *testing.T, s *Store, viaSQL bool) (context.Context, *sql.Tx) {
	ctx, _, tx := insertConnTx(t, s, viaSQL)
	return ctx, tx
}

// insertConnTx is insertTx with the writer's connection, held until the
// test ends.
func insertConnTx(t *testing.T, s *Store, viaSQL bool) (context.Context, *sql.Conn, *sql.Tx) {
	ctx := withStmts(t.Context(), &s.stmts)
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if !viaSQL {
		raw := s.raw.of(conn)
		if raw == nil {
			t.Fatal("the writer's SQLite connection cannot be read below database/sql")
		}
		ctx = withRaw(ctx, raw)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, conn, tx
}
