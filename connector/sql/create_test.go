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

// TestCreateIDOnMariaDB: a create's record is named by the id its row
// got. MariaDB tells back only an AUTO_INCREMENT id (LastInsertId): an id
// column with a DEFAULT (UUID()) gets the connector's own random id when
// unmapped, and a mapped one without a value fails before inserting, as
// does one whose column is nullable with no default (MariaDB's
// column_default says 'NULL' there). Both were taken as ids the table
// makes: the create was applied as "0", the row holding another id (or
// none).
func TestCreateIDOnMariaDB(t *testing.T) {
	for _, tc := range []struct {
		name, ddl, id string
		applied       bool
	}{
		{"unmapped id with a default", "CREATE TABLE accounts (id VARCHAR(36) PRIMARY KEY DEFAULT (uuid()), name VARCHAR(64), owner VARCHAR(200))", "id", true},
		{"mapped nullable id", "CREATE TABLE accounts (name VARCHAR(64) UNIQUE, owner VARCHAR(200))", "name", false},
		{"mapped id with a default", "CREATE TABLE accounts (name VARCHAR(64) PRIMARY KEY DEFAULT (uuid()), owner VARCHAR(200))", "name", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mysqlDatabase(t)
			s.exec(t, tc.ddl)
			sys := system("", nhisync.Settings{"dsn": s.dsn}, tc.id, "name=name", "owner=owner")
			sys.Provision = true
			c, err := nsql.Open(t.Context(), sys, conntest.Kind())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w := nhisync.Write{Create: true, Changes: []nhisync.Change{{Field: "owner", New: nhisync.Str("alice@example.com")}}}
			if tc.id == "id" {
				w.Changes = append(w.Changes, nhisync.Change{Field: "name", New: nhisync.Str("alice")})
			}
			res, err := c.Apply(t.Context(), []nhisync.Write{w})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			var n int
			if err := s.db.QueryRow("SELECT count(*) FROM accounts").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if !tc.applied {
				if res[0].Status != nhisync.WriteFailed {
					t.Errorf("%s %q, want failed", res[0].Status, res[0].ID)
				} else {
					wantCode(t, res[0].Err, nhisync.EINVALID, "no value for the id column name")
				}
				if n != 0 {
					t.Errorf("%d rows inserted by a failed create, want none", n)
				}
				return
			}
			if res[0].Status != nhisync.WriteApplied {
				t.Fatalf("%s (%v), want applied", res[0].Status, res[0].Err)
			}
			var owner string
			if err := s.db.QueryRow("SELECT owner FROM accounts WHERE "+tc.id+" = ?", res[0].ID).Scan(&owner); err != nil || owner != "alice@example.com" {
				t.Errorf("the create was applied as %q, which names no row of its (%q %v; %d rows)", res[0].ID, owner, err, n)
			}
		})
	}
}
