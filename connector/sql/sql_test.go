package sql_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// table makes a SQLite database file holding ddl and the given statements.
func table(t *testing.T, ddl ...string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	db := openDB(t, filepath.Join(dir, "inv.db"))
	for _, s := range ddl {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return dir
}

func system(dir string, settings nhisync.Settings, id string, fields ...string) *nhisync.System {
	kind := conntest.Kind()
	sys := &nhisync.System{Name: "inv", Connector: "sql", Kind: kind.Name, ID: id, Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"dsn": "sqlite:inv.db", "table": "accounts"}, BaseDir: dir}
	for k, v := range settings {
		sys.Settings[k] = v
	}
	for _, f := range fields {
		canon, nat, _ := strings.Cut(f, "=")
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: canon, Name: nat, Type: kind.Fields[canon].Type, Direction: nhisync.DirBoth})
	}
	return sys
}

func wantCode(t *testing.T, err error, code string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := nhisync.ErrorCode(err); got != code {
		t.Errorf("error code %s (%v), want %s", got, err, code)
	}
	for _, f := range fragments {
		if !strings.Contains(nhisync.ErrorMessage(err), f) {
			t.Errorf("error %q lacks %q", nhisync.ErrorMessage(err), f)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings nhisync.Settings
		id       string
		fragment string
	}{
		{"valid", nil, "id", ""},
		{"valid absolute", nhisync.Settings{"dsn": "sqlite:" + filepath.Join(os.TempDir(), "x.db")}, "id", ""},
		{"no dsn", nhisync.Settings{"dsn": ""}, "id", "set dsn"},
		{"empty sqlite path", nhisync.Settings{"dsn": "sqlite:"}, "id", "sqlite:PATH"},
		{"unknown scheme", nhisync.Settings{"dsn": "oracle://u:hunter2@h/db"}, "id", `unknown scheme "oracle"`},
		{"postgres", nhisync.Settings{"dsn": "postgres://u:hunter2@h:5432/db"}, "id", ""},
		{"mysql", nhisync.Settings{"dsn": "mysql://root:hunter2@h:3306/db"}, "id", ""},
		{"mysql without a database", nhisync.Settings{"dsn": "mysql://root:hunter2@h:3306"}, "id", "name the database"},
		{"bad postgres dsn", nhisync.Settings{"dsn": "postgres://u:hunter2@h:5432/db?sslmode=sideways"}, "id", "dsn"},
		{"bad pool_size", nhisync.Settings{"pool_size": "0"}, "id", "pool_size"},
		{"bad timeout", nhisync.Settings{"timeout": "soon"}, "id", "timeout"},
		{"control character in a name", nhisync.Settings{"table": "acc\x00ounts"}, "id", "control character"},
		{"notify on postgres", nhisync.Settings{"dsn": "postgres://u:hunter2@h:5432/db", "notify": "nhi"}, "id", ""},
		{"no table", nhisync.Settings{"table": ""}, "id", "set table"},
		{"no id", nil, "", "set id"},
		{"notify without PostgreSQL", nhisync.Settings{"notify": "nhi"}, "id", "only with PostgreSQL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := nsql.Validate(system(t.TempDir(), tc.settings, tc.id, "name=name"), conntest.Kind())
			if tc.fragment == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, nhisync.EINVALID, tc.fragment, "system inv: ")
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the DSN's password: %v", err)
			}
		})
	}
}

func TestOpenChecksTheSchema(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT PRIMARY KEY, Name TEXT, platform TEXT, owner TEXT)")
	for _, tc := range []struct {
		name      string
		settings  nhisync.Settings
		fields    []string
		code      string
		fragments []string
	}{
		{"valid, columns matched regardless of case", nil, []string{"name=NAME", "platform=platform"}, "", nil},
		{"missing table", nhisync.Settings{"table": "nope"}, []string{"name=name"}, nhisync.EINVALID, []string{"cannot read table nope"}},
		{"missing column", nil, []string{"name=name", "owner=owned_by"}, nhisync.EINVALID,
			[]string{`no column "owned_by" (mapped from owner)`, "id, Name, platform, owner"}},
		{"missing updated column", nhisync.Settings{"updated_column": "changed"}, []string{"name=name"}, nhisync.EINVALID, []string{`no column "changed" (the updated_column setting)`}},
		{"missing file", nhisync.Settings{"dsn": "sqlite:gone.db?_pragma=key('hunter2')"}, []string{"name=name"}, nhisync.EUNAVAIL, []string{"does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := nsql.Open(t.Context(), system(dir, tc.settings, "id", tc.fields...), conntest.Kind())
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := c.(nhisync.Checker).Check(t.Context()); err != nil {
					t.Errorf("Check: %v", err)
				}
				c.Close()
				return
			}
			wantCode(t, err, tc.code, tc.fragments...)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the DSN: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "gone.db")); !os.IsNotExist(err) {
		t.Errorf("opening a missing database created it (%v)", err)
	}
}

func TestCheckFindsDroppedTable(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT)")
	c, err := nsql.New(t.Context(), system(dir, nil, "id", "name=name"), conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := openDB(t, filepath.Join(dir, "inv.db")).Exec("DROP TABLE accounts"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Check(t.Context()), nhisync.EINVALID, "table accounts")
}

// Typed columns: an INTEGER PRIMARY KEY the database assigns, DATETIME
// text, an integer epoch as updated_column.
const typedDDL = `CREATE TABLE accounts (
	id INTEGER PRIMARY KEY, name TEXT NOT NULL, platform TEXT, rotated DATETIME, status TEXT,
	changed INTEGER, comment TEXT, UNIQUE (platform, name))`

func TestTypedColumns(t *testing.T) {
	dir := table(t, typedDDL,
		`INSERT INTO accounts VALUES (1, 'a', 'aws', '2026-01-02 03:04:05', 'active', 999999999, 'keep')`,
		`INSERT INTO accounts VALUES (2, 'b', 'aws', NULL, '', 1000000000, NULL)`,
		`INSERT INTO accounts VALUES (3, 'c', 'gcp', '2026-03-04T05:06:07Z', NULL, NULL, 'x')`,
	)
	sys := system(dir, nhisync.Settings{"updated_column": "changed"}, "id", "name=name", "platform=platform", "last_rotated=rotated", "lifecycle=status")
	sys.Provision = true
	conn, err := nsql.Open(t.Context(), sys, conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.(*nsql.CursorConnector)
	got := map[string]nhisync.Observation{}
	cursor, err := c.Changes(t.Context(), "", func(o nhisync.Observation) error {
		o.Values = slices.Clone(o.Values)
		got[o.ID] = o
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cursor != "1000000000" {
		t.Errorf("cursor %q, want the numerically highest value 1000000000", cursor)
	}
	if len(got) != 3 {
		t.Fatalf("rows %v", got)
	}
	if v := nhisync.TypeTime.Canonical(got["1"].Values[2]); v.Text() != "2026-01-02T03:04:05Z" {
		t.Errorf("DATETIME text read as %q", v)
	}
	if !got["2"].Values[3].IsZero() || !got["3"].Values[3].IsZero() {
		t.Errorf("empty text and NULL read as %q and %q", got["2"].Values[3], got["3"].Values[3])
	}
	if m := got["2"].Modified; m.Unix() != 1000000000 {
		t.Errorf("Modified from an epoch: %v", m)
	}
	if !got["3"].Modified.IsZero() {
		t.Errorf("Modified from NULL: %v", got["3"].Modified)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		{ID: "1", Changes: []nhisync.Change{{Field: "last_rotated", Old: nhisync.Str("2026-01-02T03:04:05Z"), New: nhisync.Str("2026-06-07T08:09:10Z")}}},
		{ID: "2", Changes: []nhisync.Change{{Field: "name", Old: nhisync.Str("b"), New: nhisync.Str("a")}}}, // (aws, a) exists
		{ID: "3", Changes: []nhisync.Change{{Field: "lifecycle", New: nhisync.Str("suspended")}}},
		{Create: true, Changes: []nhisync.Change{{Field: "name", New: nhisync.Str("d")}, {Field: "platform", New: nhisync.Str("k8s")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []nhisync.WriteStatus{nhisync.WriteApplied, nhisync.WriteFailed, nhisync.WriteApplied, nhisync.WriteApplied}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("write %d: %s (%v), want %s", i, r.Status, r.Err, want[i])
		}
	}
	if res[3].ID != "4" {
		t.Errorf("created row id %q, want the rowid 4", res[3].ID)
	}
	db := openDB(t, filepath.Join(dir, "inv.db"))
	var mode string
	// The connector leaves the file's journal mode as its owner set it.
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Errorf("journal mode %q (%v), want delete (as the file was made)", mode, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "inv.db-wal")); err == nil {
		t.Errorf("the connector made a -wal file beside the database")
	}
	var rotated, comment string
	var changed int64
	if err := db.QueryRow("SELECT +rotated, comment, changed FROM accounts WHERE id = 1").Scan(&rotated, &comment, &changed); err != nil {
		t.Fatal(err)
	}
	if rotated != "2026-06-07T08:09:10Z" || comment != "keep" || changed != 999999999 {
		t.Errorf("row 1 after the write: rotated %q, comment %q, changed %d", rotated, comment, changed)
	}
	var name string
	if err := db.QueryRow("SELECT name FROM accounts WHERE id = 2").Scan(&name); err != nil || name != "b" {
		t.Errorf("a failed write changed row 2: %q %v", name, err)
	}
	// Only rows stamped at or after the cursor come back.
	if _, err := db.Exec("UPDATE accounts SET status = 'rotation_due', changed = 1000000005 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	next, err := c.Changes(t.Context(), cursor, func(o nhisync.Observation) error { ids = append(ids, o.ID); return nil })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "1,2" || next != "1000000005" {
		t.Errorf("Changes(%s) = %v, next %s; want rows 1 (edited) and 2 (at the cursor), next 1000000005", cursor, ids, next)
	}
}

// fold is a stand-in for a compiled CEL transform that fails on "bad".
type fold struct{}

func (fold) Apply(v nhisync.Value) (nhisync.Value, error) {
	if v.Text() == "bad" {
		return nhisync.Value{}, os.ErrInvalid
	}
	return nhisync.Str(strings.ToLower(v.Text())), nil
}

func TestReadTransformFailureNamesTheRow(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT, name TEXT)", "INSERT INTO accounts VALUES ('r1', 'OK'), ('r2', 'bad')")
	sys := system(dir, nil, "id", "name=name")
	sys.Fields[0].Read = fold{}
	c, err := nsql.Open(t.Context(), sys, conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var names []string
	err = c.Snapshot(t.Context(), func(o nhisync.Observation) error { names = append(names, o.Values[0].Text()); return nil })
	wantCode(t, err, nhisync.EINVALID, "row r2", "read transform failed")
	if len(names) != 1 || names[0] != "ok" {
		t.Errorf("values before the failure: %v", names)
	}
}

func TestDuplicateIDFailsTheWrite(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT, name TEXT)", "INSERT INTO accounts VALUES ('d', 'x'), ('d', 'y'), (NULL, 'z')")
	c, err := nsql.Open(t.Context(), system(dir, nil, "id", "name=name"), conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	if err := c.Snapshot(t.Context(), func(nhisync.Observation) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("Snapshot emitted %d rows (%v), want the two with an id", n, err)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: "d", Changes: []nhisync.Change{{Field: "name", Old: nhisync.Str("x"), New: nhisync.Str("w")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[0].Err), "more than one row") {
		t.Errorf("write to a duplicate id: %s %v", res[0].Status, res[0].Err)
	}
}

// TestLockedTableSaysSo: a write batch that cannot take a SQLite file's
// write lock (another connection holds it past the system's timeout) fails
// whole, and its message — what a failed write records — says the table
// is locked, for how long it waited and which setting sets that.
func TestLockedTableSaysSo(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT)", "INSERT INTO accounts VALUES ('a', 'x')")
	c, err := nsql.Open(t.Context(), system(dir, nhisync.Settings{"timeout": "100ms"}, "id", "name=name"), conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	holder := openDB(t, filepath.Join(dir, "inv.db"))
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE accounts SET name = 'y'"); err != nil {
		t.Fatal(err)
	}
	w := []nhisync.Write{{ID: "a", Changes: []nhisync.Change{{Field: "name", Old: nhisync.Str("x"), New: nhisync.Str("w")}}}}
	_, err = c.Apply(t.Context(), w)
	wantCode(t, err, nhisync.EUNAVAIL, "cannot begin a transaction on table accounts", "holds the table's lock", "within 100ms (setting timeout)")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(t.Context(), w)
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("the same write once the lock is gone: %v %v", res, err)
	}
}

// TestCommitWaitsForReaderSaysSo: a SQLite COMMIT that waits for a reader
// (rollback-journal mode: the commit needs every reader gone) past the
// timeout setting fails saying the table is locked, nothing applied, and
// not that whether the writes were applied is unknown: SQLite's own
// busy timeout bounds that wait, and the transaction is rolled back.
func TestCommitWaitsForReaderSaysSo(t *testing.T) {
	dir := table(t, "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT)", "INSERT INTO accounts VALUES ('a', 'x'), ('b', 'x')")
	c, err := nsql.Open(t.Context(), system(dir, nhisync.Settings{"timeout": "300ms"}, "id", "name=name"), conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reader := openDB(t, filepath.Join(dir, "inv.db"))
	rows, err := reader.Query("SELECT id FROM accounts")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no row read")
	}
	w := []nhisync.Write{{ID: "a", Changes: []nhisync.Change{{Field: "name", Old: nhisync.Str("x"), New: nhisync.Str("w")}}}}
	for i := range 5 {
		_, err = c.Apply(t.Context(), w)
		wantCode(t, err, nhisync.EUNAVAIL, "cannot commit the writes to table accounts", "holds the table's lock")
		if t.Failed() {
			t.Fatalf("try %d", i)
		}
	}
	rows.Close()
	res, err := c.Apply(t.Context(), w)
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("the same write once the reader is gone: %v %v", res, err)
	}
}
