package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// TestCommitSizes commits batches of every size around the statement
// sizes (256 rows, 64 for records, then half as many, … 1): each record
// and link is stored once, with its state, whether its statement was
// prepared in the transaction or cached from an earlier one, and a later
// row of the same record wins.
func TestCommitSizes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 30, 6, 0, 0, 7, time.UTC)
	next := int64(1)
	for _, n := range []int{1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 511, 513, 65, 3} {
		b := bulkBatch(next, n)
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
	if cached == 0 {
		t.Errorf("no statement was cached")
	}
}

// TestInsertSeq inserts rows whose first column runs up by one (insert.seq)
// in statements of every size, then a set whose row 70 fails: each stored
// row has its own seq, and the failure is retried row by row and named at
// the row that holds it, with that row's seq bound.
func TestInsertSeq(t *testing.T) {
	s := openTest(t)
	ctx := withStmts(t.Context(), &s.stmts)
	if err := s.ExecRaw(ctx, `CREATE TABLE seqs (id INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'bad'), w INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
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
