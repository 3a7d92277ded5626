package sql_test

import (
	stdsql "database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// typedKind has one field of every scalar type the servers convert.
func typedKind() *nhisync.Kind {
	k := &nhisync.Kind{Name: "service_account", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString},
		{Name: "enabled", Type: nhisync.TypeBool},
		{Name: "rotated", Type: nhisync.TypeTime},
		{Name: "seen", Type: nhisync.TypeTime},
		{Name: "tags", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
		{Name: "labels", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
	} {
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

func typedSystem(dsn string) *nhisync.System {
	sys := &nhisync.System{Name: "cmdb", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"dsn": dsn, "table": "typed"}}
	k := typedKind()
	for _, f := range k.FieldNames {
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: f, Name: f, Type: k.Fields[f].Type, Direction: nhisync.DirBoth})
	}
	return sys
}

func observe(t *testing.T, c nhisync.Connector) map[string][]nhisync.Value {
	t.Helper()
	out := map[string][]nhisync.Value{}
	if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		out[o.ID] = slices.Clone(o.Values)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func texts(vals []nhisync.Value) string {
	k := typedKind()
	var out []string
	for i, f := range k.FieldNames {
		out = append(out, k.Fields[f].Type.Canonical(vals[i]).String())
	}
	return strings.Join(out, " | ")
}

// testTypes checks booleans, times in and out of UTC, native arrays and
// JSON columns on a server: s holds a table typed made by the caller with
// rows 1 (every value) and 2 (every value empty).
func testTypes(t *testing.T, s *server, raw func(id int) string) {
	sys := typedSystem(s.dsn)
	c, err := nsql.Open(t.Context(), sys, typedKind())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := observe(t, c)
	want1 := "a | true | 2026-01-02T01:04:05.25Z | 2026-05-06T07:08:09Z | pci, pii | x, y"
	if g := texts(got["1"]); g != want1 {
		t.Errorf("row 1 reads\n  %s\nwant\n  %s", g, want1)
	}
	if g := texts(got["2"]); g != "b | false |  |  |  | " {
		t.Errorf("row 2 reads %s", g)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		{ID: "1", Changes: []nhisync.Change{
			{Field: "enabled", Old: nhisync.Str("true"), New: nhisync.Str("false")},
			{Field: "rotated", Old: nhisync.Str("2026-01-02T01:04:05.25Z"), New: nhisync.Str("2026-07-01T10:00:00+02:00")},
			{Field: "tags", Old: nhisync.SetOf("pci", "pii"), New: nhisync.SetOf("pci", "has space", `q"uo\te`)},
			{Field: "labels", Old: nhisync.SetOf("x", "y"), New: nhisync.SetOf("z")},
		}},
		{ID: "2", Changes: []nhisync.Change{
			{Field: "enabled", Old: nhisync.Str("false"), New: nhisync.Str("true")},
			{Field: "seen", New: nhisync.Str("2026-02-03T04:05:06Z")},
			{Field: "tags", New: nhisync.SetOf("new")},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != nhisync.WriteApplied {
			t.Errorf("write %d: %s %v", i, r.Status, r.Err)
		}
	}
	got = observe(t, c)
	if g, w := texts(got["1"]), `a | false | 2026-07-01T08:00:00Z | 2026-05-06T07:08:09Z | has space, pci, q"uo\te | z`; g != w {
		t.Errorf("row 1 after writes reads\n  %s\nwant\n  %s", g, w)
	}
	if g, w := texts(got["2"]), "b | true |  | 2026-02-03T04:05:06Z | new | "; g != w {
		t.Errorf("row 2 after writes reads %s, want %s", g, w)
	}
	t.Logf("row 1 as stored: %s", raw(1))
	// A conditional write of a JSON column sees a concurrent change.
	s.exec(t, "UPDATE typed SET labels = "+s.p(1)+" WHERE id = 1", `["w"]`)
	res, err = c.Apply(t.Context(), []nhisync.Write{{ID: "1", Changes: []nhisync.Change{
		{Field: "labels", Old: nhisync.SetOf("z"), New: nhisync.SetOf("v")},
	}}})
	if err != nil || res[0].Status != nhisync.WriteStale {
		t.Errorf("write over a concurrent JSON change: %v %v, want stale", res, err)
	}
	// Clearing stores NULL.
	res, err = c.Apply(t.Context(), []nhisync.Write{{ID: "1", Changes: []nhisync.Change{
		{Field: "tags", Old: nhisync.SetOf("pci", "has space", `q"uo\te`), New: nhisync.Value{}},
		{Field: "labels", Old: nhisync.SetOf("w"), New: nhisync.Value{}},
		{Field: "rotated", Old: nhisync.Str("2026-07-01T08:00:00Z"), New: nhisync.Value{}},
	}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("clearing: %v %v", res, err)
	}
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM typed WHERE id = 1 AND tags IS NULL AND labels IS NULL AND rotated IS NULL").Scan(&n); err != nil || n != 1 {
		t.Errorf("cleared values are not NULL (%d, %v): %s", n, err, raw(1))
	}
}

func TestPostgresTypes(t *testing.T) {
	s := pgDatabase(t)
	// rotated is a timestamp without zone (taken as UTC), seen a
	// timestamptz written at +02:00; the server's own zone is not UTC.
	s.exec(t, `ALTER DATABASE `+s.name+` SET timezone TO 'America/New_York'`)
	s.db.Close()
	var err error
	if s.db, err = stdsql.Open("pgx", s.dsn); err != nil {
		t.Fatal(err)
	}
	s.exec(t, `CREATE TABLE typed (id int PRIMARY KEY, name text, enabled boolean, rotated timestamp,
		seen timestamptz, tags text[], labels jsonb, note text)`)
	s.exec(t, `INSERT INTO typed VALUES (1, 'a', true, '2026-01-02 01:04:05.25', '2026-05-06 09:08:09+02', '{pci,pii}', '["y","x"]', 'keep'),
		(2, 'b', false, NULL, NULL, '{}', '[]', NULL)`)
	testTypes(t, s, func(id int) string {
		var out string
		if err := s.db.QueryRow("SELECT row_to_json(typed)::text FROM typed WHERE id = $1", id).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	})
	var note string
	if err := s.db.QueryRow("SELECT note FROM typed WHERE id = 1").Scan(&note); err != nil || note != "keep" {
		t.Errorf("the unmapped column holds %q (%v)", note, err)
	}
}

func TestMariaDBTypes(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, `CREATE TABLE typed (id INT PRIMARY KEY, name VARCHAR(20), enabled TINYINT(1), rotated DATETIME(6),
		seen TIMESTAMP NULL, tags TEXT, labels JSON, note TEXT)`)
	// The session zone of the writer is +02:00: TIMESTAMP values are
	// stored in UTC and must read back as the same instant.
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SET time_zone = '+02:00'`,
		`INSERT INTO typed VALUES (1, 'a', 1, '2026-01-02 01:04:05.25', '2026-05-06 09:08:09', 'pci,pii', '["y","x"]', 'keep'),
			(2, 'b', 0, NULL, NULL, '', '[]', NULL)`,
	} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	testTypes(t, s, func(id int) string {
		var out string
		if err := s.db.QueryRow("SELECT CONCAT_WS(' | ', enabled, rotated, seen, tags, labels) FROM typed WHERE id = ?", id).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	})
}

// TestCursorEqualTimestamps: rows stamped with the same time as the
// cursor, including one committed after the read that set the cursor, are
// returned by the next Changes.
func TestCursorEqualTimestamps(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, `CREATE TABLE typed (id int PRIMARY KEY, name text, enabled boolean, rotated timestamp,
		seen timestamptz, tags text[], labels jsonb, updated timestamptz)`)
	tick := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for i := 1; i <= 3; i++ {
		s.exec(t, "INSERT INTO typed (id, name, updated) VALUES ($1, $2, $3)", i, fmt.Sprint("n", i), tick)
	}
	sys := typedSystem(s.dsn)
	sys.Settings["updated_column"] = "updated"
	conn, err := nsql.Open(t.Context(), sys, typedKind())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.(*nsql.CursorConnector)
	changes := func(cursor string) ([]string, string) {
		var ids []string
		next, err := c.Changes(t.Context(), cursor, func(o nhisync.Observation) error {
			ids = append(ids, o.ID)
			if !o.Modified.Equal(tick) && o.ID != "4" && o.ID != "2" {
				t.Errorf("row %s: Modified %v, want %v", o.ID, o.Modified, tick)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids, next
	}
	ids, cur := changes("")
	if len(ids) != 3 || !modifiedEqual(cur, tick) {
		t.Fatalf("first read %v, cursor %q", ids, cur)
	}
	// A row stamped in the same microsecond commits after the read.
	s.exec(t, "INSERT INTO typed (id, name, updated) VALUES (4, 'n4', $1)", tick)
	ids, cur2 := changes(cur)
	if !slices.Contains(ids, "4") {
		t.Errorf("a row sharing the cursor's timestamp was skipped: %v", ids)
	}
	if cur2 != cur {
		t.Errorf("cursor moved from %q to %q with no newer row", cur, cur2)
	}
	s.exec(t, "UPDATE typed SET name = 'x', updated = $1 WHERE id = 2", tick.Add(time.Microsecond))
	ids, cur3 := changes(cur2)
	if !slices.Contains(ids, "2") || !modifiedEqual(cur3, tick.Add(time.Microsecond)) {
		t.Errorf("after an edit one microsecond later: %v, cursor %q", ids, cur3)
	}
	if ids, _ := changes(cur3); !slices.Equal(ids, []string{"2"}) {
		t.Errorf("at the newest cursor: %v, want the boundary row 2 alone", ids)
	}
}

func modifiedEqual(cursor string, want time.Time) bool {
	tm, ok := nhisync.ParseTime(strings.Replace(cursor, " ", "T", 1) + ":00")
	if !ok {
		tm, ok = nhisync.ParseTime(cursor)
	}
	return ok && tm.Equal(want)
}

// TestDSNPasswordNeverShown: a failing connection names the database by
// its DSN with the password replaced, on PostgreSQL (nothing listening)
// and MariaDB (a wrong password), the password given in the URL's user
// or as a query parameter (password, sslpassword, pass on MySQL: see
// TestPostgresDSNSecretParamsRefused for PostgreSQL's). The query forms
// were shown as given: only the user's password was redacted and
// scrubbed.
func TestDSNPasswordNeverShown(t *testing.T) {
	const secret = "s3cr3t-Pa55w0rd"
	for _, dsn := range []string{
		"postgres://nhi:" + secret + "@127.0.0.1:1/cmdb?sslmode=disable",
		"mysql://root:" + secret + "@127.0.0.1:3306/test",
		"mysql://root:" + secret + "@127.0.0.1:1/test",
		"postgres://nhi@127.0.0.1:1/cmdb?sslmode=disable&password=" + secret,
		"postgres://nhi@127.0.0.1:1/cmdb?sslmode=disable&sslpassword=" + secret,
		"mysql://root@127.0.0.1:3306/test?password=" + secret,
		"mysql://root@127.0.0.1:1/test?pass=" + secret,
	} {
		sys := typedSystem(dsn)
		sys.Settings["timeout"] = "5s"
		_, err := nsql.Open(t.Context(), sys, typedKind())
		if err == nil {
			t.Fatalf("%s: Open succeeded", strings.ReplaceAll(dsn, secret, "xxxxx"))
		}
		if code := nhisync.ErrorCode(err); code != nhisync.EUNAVAIL {
			t.Errorf("code %s, want %s", code, nhisync.EUNAVAIL)
		}
		msg := nhisync.ErrorMessage(err)
		if strings.Contains(err.Error(), secret) || strings.Contains(msg, secret) {
			t.Errorf("the error shows the password: %v", err)
		}
		if !strings.Contains(msg, "xxxxx") || !strings.Contains(msg, "@127.0.0.1") {
			t.Errorf("the message %q does not name the database by its redacted DSN", msg)
		}
		t.Log(msg)
	}
}

// TestDSNQueryPasswordConnects: on MariaDB a password given as a query
// parameter signs in, escaped or holding a ";" as is, as the URL user's
// does; the URL user's wins over the parameter.
func TestDSNQueryPasswordConnects(t *testing.T) {
	s := mysqlDatabase(t)
	const pw = "Pa;55&w+rd#%x y"
	user := randName("nhi_")
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pw + "'",
		"GRANT ALL ON " + s.name + ".* TO '" + user + "'@'%'",
	} {
		s.exec(t, q)
	}
	t.Cleanup(func() { s.db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	base := u.String()
	u.User = url.UserPassword(user, pw)
	for _, dsn := range []string{
		base + "?password=" + url.QueryEscape(pw),
		base + "?pwd=" + strings.ReplaceAll(url.QueryEscape(pw), "%3B", ";"),
		u.String(),
		u.String() + "?password=wrong",
	} {
		c := ownerConnector(t, dsn, "", "accounts")
		if err := c.(nhisync.Checker).Check(t.Context()); err != nil {
			t.Errorf("Check: %v", err)
		}
	}
}

// TestIdentifiersQuoted: table and column names holding quotes, spaces
// and SQL are quoted, never spliced.
func TestIdentifiersQuoted(t *testing.T) {
	for _, s := range []*server{pgDatabase(t), mysqlDatabase(t)} {
		q := func(id string) string {
			if s.kind == "postgres" {
				return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
			}
			return "`" + strings.ReplaceAll(id, "`", "``") + "`"
		}
		table, col := `odd"tab`+"`le; DROP TABLE x", `own"er`+"`; --"
		s.exec(t, "CREATE TABLE x (a int)")
		s.exec(t, "CREATE TABLE "+q(table)+" (id VARCHAR(10) PRIMARY KEY, name VARCHAR(10), "+q(col)+" VARCHAR(30))")
		s.exec(t, "INSERT INTO "+q(table)+" VALUES ('1', 'a', 'alice')")
		sys := &nhisync.System{Name: "cmdb", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
			Settings: nhisync.Settings{"dsn": s.dsn, "table": table}}
		sys.Fields = []*nhisync.Mapping{
			{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
			{Field: "tags", Name: col, Type: nhisync.TypeString, Direction: nhisync.DirBoth},
		}
		c, err := nsql.Open(t.Context(), sys, typedKind())
		if err != nil {
			t.Fatalf("%s: %v", s.kind, err)
		}
		res, err := c.Apply(t.Context(), []nhisync.Write{{ID: "1", Changes: []nhisync.Change{{Field: "tags", Old: nhisync.Str("alice"), New: nhisync.Str("bob'; DELETE FROM x; --")}}}})
		if err != nil || res[0].Status != nhisync.WriteApplied {
			t.Errorf("%s: %v %v", s.kind, res, err)
		}
		if got := observe(t, c)["1"]; got[0].Text() != "a" || got[1].Text() != "bob'; DELETE FROM x; --" {
			t.Errorf("%s: read %v", s.kind, got)
		}
		c.Close()
		var n int
		if err := s.db.QueryRow("SELECT count(*) FROM x").Scan(&n); err != nil {
			t.Errorf("%s: table x is gone: %v", s.kind, err)
		}
		// A table that does not exist is refused by name.
		sys.Settings["table"] = "no_such_table"
		if _, err := nsql.Open(t.Context(), sys, typedKind()); nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), "no_such_table") {
			t.Errorf("%s: a missing table: %v", s.kind, err)
		}
	}
}

// TestKeysetPages: a snapshot larger than a page reads every row once,
// with ids that sort differently as bytes and under the column's
// collation, and NULL and empty ids skipped.
func TestKeysetPages(t *testing.T) {
	const n = 4500
	for _, s := range []*server{pgDatabase(t), mysqlDatabase(t)} {
		s.exec(t, "CREATE TABLE typed (id VARCHAR(20), name VARCHAR(20))")
		// Ids id-00000, ID-00001, id-00002…: upper and lower case alternate,
		// so bytes and the column's collation order them differently.
		if s.kind == "postgres" {
			s.exec(t, fmt.Sprintf(`INSERT INTO typed SELECT CASE WHEN i %% 2 = 1 THEN 'ID-' ELSE 'id-' END || lpad(i::text, 5, '0'), 'n' || i
				FROM generate_series(0, %d) AS i`, n-1))
		} else {
			s.exec(t, fmt.Sprintf(`INSERT INTO typed SELECT CONCAT(IF(seq %% 2 = 1, 'ID-', 'id-'), LPAD(seq, 5, '0')), CONCAT('n', seq)
				FROM seq_0_to_%d`, n-1))
		}
		s.exec(t, "INSERT INTO typed VALUES (NULL, 'null'), ('', 'empty')")
		sys := &nhisync.System{Name: "cmdb", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
			Settings: nhisync.Settings{"dsn": s.dsn, "table": "typed"},
			Fields:   []*nhisync.Mapping{{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth}}}
		c, err := nsql.Open(t.Context(), sys, typedKind())
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
			if seen[o.ID] {
				t.Errorf("%s: row %s twice", s.kind, o.ID)
			}
			seen[o.ID] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Errorf("%s: %d rows read, want %d", s.kind, len(seen), n)
		}
		c.Close()
	}
}

// TestCreateWithGeneratedIDs: with provision, a row's id made by the
// database (PostgreSQL identity, MariaDB AUTO_INCREMENT) is the new
// record's id, and a retried create finds the row instead of adding one.
func TestCreateWithGeneratedIDs(t *testing.T) {
	for _, s := range []*server{pgDatabase(t), mysqlDatabase(t)} {
		if s.kind == "postgres" {
			s.exec(t, "CREATE TABLE typed (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, enabled boolean)")
		} else {
			s.exec(t, "CREATE TABLE typed (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), enabled TINYINT(1))")
		}
		s.exec(t, "INSERT INTO typed (name, enabled) VALUES ('first', "+map[string]string{"postgres": "true", "mysql": "1"}[s.kind]+")")
		sys := &nhisync.System{Name: "cmdb", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth, Provision: true,
			Settings: nhisync.Settings{"dsn": s.dsn, "table": "typed"},
			Fields: []*nhisync.Mapping{
				{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
				{Field: "enabled", Name: "enabled", Type: nhisync.TypeBool, Direction: nhisync.DirBoth},
			}}
		c, err := nsql.Open(t.Context(), sys, typedKind())
		if err != nil {
			t.Fatal(err)
		}
		w := nhisync.Write{Create: true, Changes: []nhisync.Change{{Field: "name", New: nhisync.Str("second")}, {Field: "enabled", New: nhisync.Str("true")}}}
		for try := range 2 {
			res, err := c.Apply(t.Context(), []nhisync.Write{w})
			if err != nil || res[0].Status != nhisync.WriteApplied || res[0].ID != "2" {
				t.Errorf("%s try %d: %+v %v, want applied with id 2", s.kind, try, res, err)
			}
		}
		got := observe(t, c)
		if len(got) != 2 || got["2"][0].Text() != "second" || got["2"][1].Text() != "true" {
			t.Errorf("%s: rows %v", s.kind, got)
		}
		c.Close()
	}
}

// TestOpenColumnTypesUnreadable: on PostgreSQL a role that may read and
// write the table but not the catalog view of its columns' types
// (pg_attribute, its SELECT revoked from PUBLIC in the test's database)
// cannot be opened: Open fails EUNAVAIL, saying it cannot read the column
// types, with the server's words. The failure was dropped: Open
// succeeded, and every batch of writes went one by one, slower, for the
// connector's life, with nothing said.
func TestOpenColumnTypesUnreadable(t *testing.T) {
	s := pgDatabase(t)
	role := randName("nhisync_role_")
	admin, err := stdsql.Open("pgx", pgAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE ROLE " + role + " LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its privileges in the test's database go first: a role
		// holding any cannot be dropped.
		if _, err := s.db.Exec("DROP OWNED BY " + role); err != nil {
			t.Error(err)
		}
		admin, err := stdsql.Open("pgx", pgAdminDSN())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP ROLE " + role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	s.exec(t, "GRANT SELECT, UPDATE ON accounts TO "+role)
	s.exec(t, "REVOKE SELECT ON pg_catalog.pg_attribute FROM PUBLIC")
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	sys := conntest.System("ids", "sql")
	sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
	sys.Settings = nhisync.Settings{"dsn": u.String(), "table": "accounts"}
	c, err := nsql.Open(t.Context(), sys, conntest.Kind())
	if err == nil {
		c.Close()
		t.Fatal("Open succeeded, though the role cannot read the column types a batch update casts its values to")
	}
	if msg := err.Error(); nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "column types of table accounts") || !strings.Contains(msg, "permission denied") {
		t.Errorf("Open: %s %q, want %s saying it cannot read the column types, and why", nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
}

// TestPGColumnTypesByName: on PostgreSQL the types a batch update casts
// to are each mapped column's own, aligned with the mappings, whatever
// the table's column order: columns not mapped, one dropped, and the
// mappings in another order than the table's shift none of them. A batch
// update through them applies.
func TestPGColumnTypesByName(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts (pad integer, gone integer, "+conntest.TagsName+" text[], "+conntest.IDName+" varchar(64) PRIMARY KEY, spare numeric(10, 2), "+conntest.OwnerName+" varchar(200), "+conntest.RotatedName+" timestamptz)")
	s.exec(t, "ALTER TABLE accounts DROP COLUMN gone")
	s.exec(t, "INSERT INTO accounts ("+conntest.IDName+", "+conntest.OwnerName+") VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	sys := conntest.System("ids", "sql")
	sys.Fields = []*nhisync.Mapping{sys.Mapping("last_rotated"), sys.Mapping("owner"), sys.Mapping("classification")}
	sys.Settings = nhisync.Settings{"dsn": s.dsn, "table": "accounts"}
	c := openBatch(t, sys)
	id, types := nsql.PGTypes(c.(*nsql.Connector))
	if want := []string{"timestamp with time zone", "character varying", "text[]"}; id != "character varying" || !slices.Equal(types, want) {
		t.Errorf("PGTypes = %q, %q; want %q, %q", id, types, "character varying", want)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if err != nil || res[0].Status != nhisync.WriteApplied || res[1].Status != nhisync.WriteApplied {
		t.Fatalf("Apply: %v %v", res, err)
	}
	if got := s.owner(t, "accounts", "b"); got != "b1@example.com" {
		t.Errorf("row b: owner %q, want b1@example.com", got)
	}
}
