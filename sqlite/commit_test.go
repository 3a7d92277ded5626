package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// TestCommitSizes commits batches of every size around the statement
// sizes (64 rows, then 32, 16, … 1): each record and link is stored once,
// with its state, whether its statement was prepared in the transaction
// or cached from an earlier one, and a later row of the same record wins.
func TestCommitSizes(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 30, 6, 0, 0, 7, time.UTC)
	next := int64(1)
	for _, n := range []int{1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 65, 3} {
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
