package sql_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// batchSystem is a system on one of the three databases, with SQL run on
// it directly.
type batchSystem struct {
	h     conntest.Harness
	table func(sys *nhisync.System) string
	exec  func(t *testing.T, sys *nhisync.System, q string)
}

func batchSystems(t *testing.T) map[string]func(t *testing.T) batchSystem {
	sqliteExec := func(t *testing.T, sys *nhisync.System, q string) {
		t.Helper()
		if _, err := openDB(t, filepath.Join(sys.BaseDir, "cmdb.db")).Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	server := func(s *server) batchSystem {
		h := &serverHarness{s: s}
		return batchSystem{h: h, table: h.table, exec: func(t *testing.T, sys *nhisync.System, q string) { s.exec(t, q) }}
	}
	return map[string]func(t *testing.T) batchSystem{
		"SQLite": func(t *testing.T) batchSystem {
			return batchSystem{h: &sqliteHarness{}, table: func(*nhisync.System) string { return "service_accounts" }, exec: sqliteExec}
		},
		"PostgreSQL": func(t *testing.T) batchSystem { return server(pgDatabase(t)) },
		"MariaDB":    func(t *testing.T) batchSystem { return server(mysqlDatabase(t)) },
	}
}

// batchTable puts n suite records (conntest.Record) in a table of h for a
// system "batch" (which edit, when not nil, changes first) and returns
// the system and the records. Open the system's connector with
// openBatch once the table is as the test wants it.
func batchTable(t *testing.T, h conntest.Harness, n int, edit func(sys *nhisync.System)) (*nhisync.System, []map[string]any) {
	t.Helper()
	recs := make([]map[string]any, n)
	for i := range recs {
		recs[i] = conntest.Record(i)
	}
	sys := conntest.System("batch", "sql")
	if edit != nil {
		edit(sys)
	}
	h.Setup(t, sys, recs)
	return sys, recs
}

// openBatch opens sys's connector, closed when t ends.
func openBatch(t *testing.T, sys *nhisync.System) nhisync.Connector {
	t.Helper()
	c, err := nsql.Open(t.Context(), sys, conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rotated is the new last_rotated of row i in the batch tests.
func rotated(i int) string {
	return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
}

func ownerChange(rec map[string]any, to string) nhisync.Change {
	return nhisync.Change{Field: "owner", Old: nhisync.Str(rec[conntest.OwnerName].(string)), New: nhisync.Str(to)}
}

// TestApplyBatchOutcomes: one Apply call whose writes end every way a
// write can (applied, applied unchanged, stale, missing, refused, a
// statement the database refuses for one row, the same row twice), in
// batches of several shapes, on every database: each write's outcome is
// its own. On PostgreSQL a write whose UPDATE fails (a unique owner here)
// aborted the transaction and failed the whole call.
func TestApplyBatchOutcomes(t *testing.T) {
	for name, open := range batchSystems(t) {
		t.Run(name, func(t *testing.T) {
			bs := open(t)
			const n = 40
			sys, recs := batchTable(t, bs.h, n, nil)
			bs.exec(t, sys, "CREATE UNIQUE INDEX batch_owner ON "+bs.table(sys)+" ("+conntest.OwnerName+")")
			conn := openBatch(t, sys)
			id := func(i int) string { return conntest.IDOf(sys, recs[i]) }
			bs.h.Edit(t, sys, id(1), map[string]any{conntest.OwnerName: "someone.else@example.com"})
			bs.h.Remove(t, sys, id(2))
			writes := []nhisync.Write{
				{ID: id(0), Changes: []nhisync.Change{ownerChange(recs[0], "new0@example.com")}},
				{ID: id(1), Changes: []nhisync.Change{ownerChange(recs[1], "new1@example.com")}},
				{ID: id(2), Changes: []nhisync.Change{ownerChange(recs[2], "new2@example.com")}},
				{ID: id(3), Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("long-gone@example.com"), New: nhisync.Str("owner3@example.com")}}},
				{ID: id(4), Changes: []nhisync.Change{{Field: "no_such_field", New: nhisync.Str("x")}}},
				{ID: id(5), Changes: []nhisync.Change{ownerChange(recs[5], "owner6@example.com")}}, // row 6's owner: refused
				{ID: id(0), Changes: []nhisync.Change{{Field: "lifecycle", Old: nhisync.Str("active"), New: nhisync.Str("suspended")}}},
				{ID: "no-such-record", Changes: []nhisync.Change{{Field: "owner", New: nhisync.Str("x@example.com")}}},
			}
			want := []nhisync.WriteStatus{nhisync.WriteApplied, nhisync.WriteStale, nhisync.WriteMissing, nhisync.WriteApplied,
				nhisync.WriteFailed, nhisync.WriteFailed, nhisync.WriteApplied, nhisync.WriteMissing}
			for i := 7; i < n; i++ {
				w := nhisync.Write{ID: id(i), Changes: []nhisync.Change{ownerChange(recs[i], fmt.Sprintf("new%d@example.com", i))}}
				if i%2 == 0 {
					w.Changes = append(w.Changes, nhisync.Change{Field: "classification",
						Old: nhisync.SetOf(recs[i][conntest.TagsName].([]string)...), New: nhisync.SetOf("batch", fmt.Sprint(i))})
				}
				if i%3 == 0 {
					w.Changes = append(w.Changes, nhisync.Change{Field: "last_rotated",
						Old: nhisync.Str(recs[i][conntest.RotatedName].(string)), New: nhisync.Str(rotated(i))})
				}
				writes = append(writes, w)
				want = append(want, nhisync.WriteApplied)
			}
			res, err := conn.Apply(t.Context(), writes)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for i, r := range res {
				if r.Status != want[i] {
					t.Errorf("write %d (%s): %s (%v), want %s", i, writes[i].ID, r.Status, r.Err, want[i])
				}
				if want[i] == nhisync.WriteFailed && r.Err == nil {
					t.Errorf("write %d failed without an error", i)
				}
			}
			check := func(i int, col, want string) {
				t.Helper()
				if got := conntest.Text(bs.h.Raw(t, sys, id(i))[col]); got != want {
					t.Errorf("row %d: %s = %q, want %q", i, col, got, want)
				}
			}
			check(0, conntest.OwnerName, "new0@example.com")
			check(0, conntest.StatusName, "suspended")
			check(1, conntest.OwnerName, "someone.else@example.com")
			check(3, conntest.OwnerName, "owner3@example.com")
			check(5, conntest.OwnerName, "owner5@example.com")
			for i := 7; i < n; i++ {
				check(i, conntest.OwnerName, fmt.Sprintf("new%d@example.com", i))
			}
			got := map[string]nhisync.Observation{}
			if err := conn.Snapshot(t.Context(), func(o nhisync.Observation) error {
				o.Values = append([]nhisync.Value(nil), o.Values...)
				got[o.ID] = o
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			tags := sys.Fields[3]
			if tags.Field != "classification" {
				t.Fatalf("field 3 is %s", tags.Field)
			}
			rot := sys.Fields[5]
			if rot.Field != "last_rotated" {
				t.Fatalf("field 5 is %s", rot.Field)
			}
			for i := 9; i < n; i += 3 {
				want := rot.Type.Canonical(nhisync.Str(rotated(i)))
				if v := rot.Type.Canonical(got[id(i)].Values[5]); !v.Equal(want) {
					t.Errorf("row %d: last_rotated %v, want %v", i, v, want)
				}
			}
			for i := 8; i < n; i += 2 {
				want := nhisync.SetOf("batch", fmt.Sprint(i))
				if v := got[id(i)].Values[3]; !v.Equal(want) {
					t.Errorf("row %d: classification %v, want %v", i, v, want)
				}
			}
		})
	}
}

// TestApplyBatchOneUpdatePerShape: a chunk of writes that change the same
// columns reaches PostgreSQL as one UPDATE statement (a statement-level
// trigger counts them), not one per write.
func TestApplyBatchOneUpdatePerShape(t *testing.T) {
	s := pgDatabase(t)
	h := &serverHarness{s: s}
	const n = 100
	sys, recs := batchTable(t, h, n, nil)
	table := h.table(sys)
	s.exec(t, "CREATE TABLE stmts (n int)")
	s.exec(t, "INSERT INTO stmts VALUES (0)")
	s.exec(t, "CREATE FUNCTION count_stmt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE stmts SET n = n + 1; RETURN NULL; END $$")
	s.exec(t, "CREATE TRIGGER count_updates AFTER UPDATE ON "+table+" FOR EACH STATEMENT EXECUTE FUNCTION count_stmt()")
	c := openBatch(t, sys)
	writes := make([]nhisync.Write, n)
	for i := range writes {
		writes[i] = nhisync.Write{ID: conntest.IDOf(sys, recs[i]), Changes: []nhisync.Change{
			ownerChange(recs[i], fmt.Sprintf("new%d@example.com", i)),
			{Field: "lifecycle", Old: nhisync.Str("active"), New: nhisync.Str("suspended")},
		}}
	}
	res, err := c.Apply(t.Context(), writes)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Fatalf("write %d: %s (%v)", i, r.Status, r.Err)
		}
	}
	var stmts int
	if err := s.db.QueryRow("SELECT n FROM stmts").Scan(&stmts); err != nil {
		t.Fatal(err)
	}
	if stmts != 1 {
		t.Errorf("%d UPDATE statements for %d writes of one shape, want 1", stmts, n)
	}
}

// TestApplyBatchLooseIDs: ids the database matches other than as equal
// text (an INTEGER PRIMARY KEY that takes '007' for 7) read back as
// spelled by the row, so the batch goes one write at a time, as before.
func TestApplyBatchLooseIDs(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "ids.db"))
	if _, err := db.Exec("CREATE TABLE accounts (" + conntest.IDName + " INTEGER PRIMARY KEY, " + conntest.OwnerName + " TEXT)"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := db.Exec("INSERT INTO accounts VALUES (?, ?)", i, fmt.Sprintf("owner%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	c := ownerConnector(t, "sqlite:ids.db", dir, "accounts")
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("001", "owner1@example.com", "a@example.com"),
		ownerWrite("2", "owner2@example.com", "b@example.com"),
		ownerWrite("4", "owner3@example.com", "c@example.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []nhisync.WriteStatus{nhisync.WriteApplied, nhisync.WriteApplied, nhisync.WriteMissing} {
		if res[i].Status != want {
			t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, want)
		}
	}
	var owner string
	if err := db.QueryRow("SELECT " + conntest.OwnerName + " FROM accounts WHERE " + conntest.IDName + " = 1").Scan(&owner); err != nil || owner != "a@example.com" {
		t.Errorf("row 1: owner %q (%v), want a@example.com", owner, err)
	}
}

// TestApplyCreateFailsAlone: a create the database refuses (a unique
// owner here) fails alone; the writes after it in the batch still apply.
// On PostgreSQL the refused INSERT aborted the transaction and failed the
// whole call.
func TestApplyCreateFailsAlone(t *testing.T) {
	for name, open := range batchSystems(t) {
		t.Run(name, func(t *testing.T) {
			bs := open(t)
			sys, recs := batchTable(t, bs.h, 3, func(sys *nhisync.System) { sys.Provision = true })
			bs.exec(t, sys, "CREATE UNIQUE INDEX batch_owner ON "+bs.table(sys)+" ("+conntest.OwnerName+")")
			c := openBatch(t, sys)
			res, err := c.Apply(t.Context(), []nhisync.Write{
				{Create: true, Changes: []nhisync.Change{
					{Field: "name", New: nhisync.Str("bot-new")},
					{Field: "platform", New: nhisync.Str("aws")},
					{Field: "owner", New: nhisync.Str("owner0@example.com")}, // row 0's: refused
				}},
				{ID: conntest.IDOf(sys, recs[1]), Changes: []nhisync.Change{ownerChange(recs[1], "new1@example.com")}},
				{ID: conntest.IDOf(sys, recs[2]), Changes: []nhisync.Change{ownerChange(recs[2], "new2@example.com")}},
			})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for i, want := range []nhisync.WriteStatus{nhisync.WriteFailed, nhisync.WriteApplied, nhisync.WriteApplied} {
				if res[i].Status != want {
					t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, want)
				}
			}
			if got := conntest.Text(bs.h.Raw(t, sys, conntest.IDOf(sys, recs[2]))[conntest.OwnerName]); got != "new2@example.com" {
				t.Errorf("row 2: owner %q, want new2@example.com", got)
			}
		})
	}
}

// TestApplyBatchChangesID: writes that change the id column itself (the
// name is the id here), batched, are applied with every value they set,
// as alone. The batch UPDATE knew rows by id: SQLite and PostgreSQL said
// them stale (RETURNING named the new id), MariaDB set their owner NULL
// (its CASE id terms saw the new id).
func TestApplyBatchChangesID(t *testing.T) {
	for name, open := range batchSystems(t) {
		t.Run(name, func(t *testing.T) {
			bs := open(t)
			sys, recs := batchTable(t, bs.h, 4, func(sys *nhisync.System) { sys.ID = conntest.NameName })
			c := openBatch(t, sys)
			var writes []nhisync.Write
			for i, r := range recs {
				w := nhisync.Write{ID: r[conntest.NameName].(string), Changes: []nhisync.Change{
					{Field: "name", Old: nhisync.Str(r[conntest.NameName].(string)), New: nhisync.Str(fmt.Sprintf("renamed-%d", i))},
					ownerChange(r, fmt.Sprintf("new%d@example.com", i)),
				}}
				if i == 3 { // a write beside them that keeps its id
					w.Changes = w.Changes[1:]
				}
				writes = append(writes, w)
			}
			res, err := c.Apply(t.Context(), writes)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != nhisync.WriteApplied {
					t.Errorf("write %d: %s (%v), want applied", i, r.Status, r.Err)
				}
				raw := bs.h.Raw(t, sys, recs[i][conntest.IDName].(string))
				wantName := fmt.Sprintf("renamed-%d", i)
				if i == 3 {
					wantName = recs[i][conntest.NameName].(string)
				}
				if got := conntest.Text(raw[conntest.NameName]); got != wantName {
					t.Errorf("row %d: name %q, want %q", i, got, wantName)
				}
				if got, want := conntest.Text(raw[conntest.OwnerName]), fmt.Sprintf("new%d@example.com", i); got != want {
					t.Errorf("row %d: owner %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestApplyBatchValueTooLong: a batched value too long for its
// PostgreSQL varchar(n) column, or for a domain over varchar(n) (or over
// such a domain), fails that write, as alone, and is not written cut to
// fit, with statements prepared or sent with their values spliced in
// (default_query_exec_mode=simple_protocol). The batch cast each value
// to varchar(20), or to the domain, and an explicit cast of a text or
// literal cuts where storing refuses: the domain owner_t was still cast
// to, and cut, when the values were spliced in (a parameter of the
// domain's type is refused instead).
func TestApplyBatchValueTooLong(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE DOMAIN owner_t AS varchar(20)")
	s.exec(t, "CREATE DOMAIN owner_mail AS owner_t CHECK (VALUE LIKE '%@%')")
	for _, typ := range []string{"varchar(20)", "owner_t", "owner_mail"} {
		for _, mode := range []string{"", "simple_protocol"} {
			t.Run(typ+"/"+mode, func(t *testing.T) { testValueTooLong(t, s, typ, mode) })
		}
	}
}

func testValueTooLong(t *testing.T, s *server, typ, mode string) {
	h := &serverHarness{s: s}
	sys, recs := batchTable(t, h, 3, nil)
	if mode != "" {
		sys.Settings["dsn"] = s.dsn + "&default_query_exec_mode=" + mode
	}
	s.exec(t, "ALTER TABLE "+h.table(sys)+" ALTER COLUMN "+conntest.OwnerName+" TYPE "+typ)
	c := openBatch(t, sys)
	owners := []string{"far-too-long-an-owner@example.com", "short@example.com", "also-far-too-long@example.com"}
	var writes []nhisync.Write
	for i, r := range recs {
		writes = append(writes, nhisync.Write{ID: conntest.IDOf(sys, r), Changes: []nhisync.Change{ownerChange(r, owners[i])}})
	}
	res, err := c.Apply(t.Context(), writes)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []nhisync.WriteStatus{nhisync.WriteFailed, nhisync.WriteApplied, nhisync.WriteFailed} {
		if res[i].Status != want {
			t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, want)
		}
		wantOwner := owners[i]
		if want == nhisync.WriteFailed {
			wantOwner = recs[i][conntest.OwnerName].(string)
		}
		if got := conntest.Text(h.Raw(t, sys, writes[i].ID)[conntest.OwnerName]); got != wantOwner {
			t.Errorf("row %d: owner %q, want %q", i, got, wantOwner)
		}
	}
}

// TestApplyCreateLookupFailsAlone: a create whose match value its
// PostgreSQL column's type refuses (an enum here) fails alone; the writes
// after it still apply. The look-up of a row already holding its match
// values failed outside a savepoint, which aborted the transaction: the
// whole call failed, and so did every retry.
func TestApplyCreateLookupFailsAlone(t *testing.T) {
	s := pgDatabase(t)
	h := &serverHarness{s: s}
	sys, recs := batchTable(t, h, 2, func(sys *nhisync.System) { sys.Provision = true })
	s.exec(t, "CREATE TYPE platform_t AS ENUM ('aws', 'gcp', 'azure', 'k8s', 'github')")
	s.exec(t, "ALTER TABLE "+h.table(sys)+" ALTER COLUMN "+conntest.PlatformName+" TYPE platform_t USING "+conntest.PlatformName+"::platform_t")
	c := openBatch(t, sys)
	res, err := c.Apply(t.Context(), []nhisync.Write{
		{Create: true, Changes: []nhisync.Change{
			{Field: "name", New: nhisync.Str("bot-new")},
			{Field: "platform", New: nhisync.Str("oracle")}, // not in the enum
		}},
		{ID: conntest.IDOf(sys, recs[1]), Changes: []nhisync.Change{ownerChange(recs[1], "new1@example.com")}},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, want := range []nhisync.WriteStatus{nhisync.WriteFailed, nhisync.WriteApplied} {
		if res[i].Status != want {
			t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, want)
		}
	}
	if got := conntest.Text(h.Raw(t, sys, conntest.IDOf(sys, recs[1]))[conntest.OwnerName]); got != "new1@example.com" {
		t.Errorf("row 1: owner %q, want new1@example.com", got)
	}
}

// TestApplyBatchLooseDuplicateIDs: an id column that is not unique and
// compares loosely, holding two ids its collation takes as one (SQLite
// NOCASE 'abc' and 'ABC'; MariaDB's accent-insensitive
// utf8mb4_general_ci 'cafe' and 'café'; a PostgreSQL nondeterministic
// ICU collation 'cafe' and 'café'): a write to each in one batch fails,
// as alone (each id is held by more than one row), and neither row
// changes. The batch wrote both rows with one write's value and said both
// applied (it knew case and trailing spaces only, not accents).
func TestApplyBatchLooseDuplicateIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (dsn, dir string, exec func(q string))
		col  string // the id column's type
		ids  [2]string
	}{
		{"SQLite", func(t *testing.T) (string, string, func(string)) {
			dir := t.TempDir()
			db := openDB(t, filepath.Join(dir, "ids.db"))
			return "sqlite:ids.db", dir, func(q string) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}, "TEXT COLLATE NOCASE", [2]string{"abc", "ABC"}},
		{"MariaDB", func(t *testing.T) (string, string, func(string)) {
			s := mysqlDatabase(t)
			return s.dsn, "", func(q string) { s.exec(t, q) }
		}, "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", [2]string{"cafe", "café"}},
		{"PostgreSQL", func(t *testing.T) (string, string, func(string)) {
			s := pgDatabase(t)
			s.exec(t, "CREATE COLLATION loose (provider = icu, locale = 'und-u-ks-level1', deterministic = false)")
			return s.dsn, "", func(q string) { s.exec(t, q) }
		}, "text COLLATE loose", [2]string{"cafe", "café"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, dir, exec := tc.open(t)
			exec("CREATE TABLE accounts (" + conntest.IDName + " " + tc.col + ", " + conntest.OwnerName + " VARCHAR(200))")
			exec("INSERT INTO accounts VALUES ('" + tc.ids[0] + "', 'old@example.com'), ('" + tc.ids[1] + "', 'old@example.com')")
			c := ownerConnector(t, dsn, dir, "accounts")
			res, err := c.Apply(t.Context(), []nhisync.Write{
				ownerWrite(tc.ids[0], "old@example.com", "a@example.com"),
				ownerWrite(tc.ids[1], "old@example.com", "b@example.com"),
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != nhisync.WriteFailed {
					t.Errorf("write %d: %s (%v), want failed (more than one row holds the id)", i, r.Status, r.Err)
				}
			}
			rows := 0
			if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
				rows++
				if v := o.Values[0]; !v.Equal(nhisync.Str("old@example.com")) {
					t.Errorf("row %s: owner %v, want it untouched", o.ID, v)
				}
				return nil
			}); err != nil || rows != 2 {
				t.Errorf("snapshot: %d rows (%v), want 2", rows, err)
			}
		})
	}
}
