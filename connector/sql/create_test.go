package sql_test

import (
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// TestCreateWithoutIDInsertsNothing: a create to a system whose id column
// is mapped, giving that column no value, inserts nothing, however often
// it is retried: on a table that makes no id (SQLite lets a TEXT PRIMARY
// KEY hold NULL) the write fails saying so before any insert; on one
// whose id default gives an empty id, the Apply fails, its transaction
// rolled back. The row went in with no id and the write failed ("the new
// row has no id") in a transaction that still committed the row: each
// retry inserted another.
func TestCreateWithoutIDInsertsNothing(t *testing.T) {
	for _, tc := range []struct {
		name, ddl string
		applyErr  bool // the Apply fails, not the write alone
	}{
		{"no default", "CREATE TABLE accounts (name TEXT PRIMARY KEY, owner TEXT)", false},
		{"empty default", "CREATE TABLE accounts (name TEXT PRIMARY KEY DEFAULT '', owner TEXT)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := table(t, tc.ddl)
			sys := system(dir, nil, "name", "name=name", "owner=owner")
			sys.Provision = true
			c, err := nsql.Open(t.Context(), sys, conntest.Kind())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for try := range 2 {
				res, err := c.Apply(t.Context(), []nhisync.Write{{Create: true, Changes: []nhisync.Change{
					{Field: "owner", New: nhisync.Str("alice@example.com")},
				}}})
				switch {
				case tc.applyErr:
					wantCode(t, err, nhisync.EUNAVAIL, "no id")
				case err != nil:
					t.Fatalf("Apply: %v", err)
				case res[0].Status != nhisync.WriteFailed:
					t.Errorf("try %d: %s %q, want failed", try, res[0].Status, res[0].ID)
				default:
					wantCode(t, res[0].Err, nhisync.EINVALID, "no value for the id column name")
				}
			}
			var n int
			if err := openDB(t, filepath.Join(dir, "inv.db")).QueryRow("SELECT count(*) FROM accounts").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d rows inserted by failed creates, want none", n)
			}
		})
	}
}
