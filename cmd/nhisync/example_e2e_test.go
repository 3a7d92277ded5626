package main

import (
	"crypto/rand"
	stdsql "database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/nhisync/nhisync/connector/ldap/ldaptest"
)

// exampleDir is the documented example this test runs as it is.
const exampleDir = "../../examples/cmdb-directory-catalog"

func pgTestDSN() string {
	if v := os.Getenv("NHISYNC_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// pgScratch creates a PostgreSQL database for one test, dropped at its end,
// and returns its dsn and a handle.
func pgScratch(t *testing.T) (string, *stdsql.DB) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "nhisync_e2e_" + hex.EncodeToString(b)
	admin, err := stdsql.Open("pgx", pgTestDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("this test needs PostgreSQL at %s (NHISYNC_TEST_POSTGRES): %v", pgTestDSN(), err)
	}
	u, _ := url.Parse(pgTestDSN())
	u.Path = "/" + name
	db, err := stdsql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		admin, err := stdsql.Open("pgx", pgTestDSN())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return u.String(), db
}

// loadLDIF adds the entries of an LDIF file (plain "attr: value" lines,
// blank-line separated), with dc=example,dc=com replaced by base and the
// entry of base itself left out.
func loadLDIF(t *testing.T, c *ldap.Conn, path, base string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "dc=example,dc=com", base)
	for _, block := range strings.Split(text, "\n\n") {
		var req *ldap.AddRequest
		attrs := map[string][]string{}
		var order []string
		for _, line := range strings.Split(block, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, ": ")
			if k == "dn" {
				req = ldap.NewAddRequest(v, nil)
				continue
			}
			if _, ok := attrs[k]; !ok {
				order = append(order, k)
			}
			attrs[k] = append(attrs[k], v)
		}
		if req == nil || req.DN == base {
			continue
		}
		for _, k := range order {
			req.Attribute(k, attrs[k])
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("add %s: %v", req.DN, err)
		}
	}
}

func ldapValues(t *testing.T, c *ldap.Conn, dn, attr string) []string {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		t.Fatal(err)
	}
	v := res.Entries[0].GetAttributeValues(attr)
	slices.Sort(v)
	return v
}

func ldapReplace(t *testing.T, c *ldap.Conn, dn, attr string, vals ...string) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace(attr, vals)
	if err := c.Modify(req); err != nil {
		t.Fatal(err)
	}
}

func cmdbValue(t *testing.T, db *stdsql.DB, name, col string) string {
	t.Helper()
	var v stdsql.NullString
	if err := db.QueryRow("SELECT "+col+" FROM service_accounts WHERE name = $1", name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v.String
}

// example is the example workspace set up on real systems.
type example struct {
	w     *workspace
	files map[string]string
	db    *stdsql.DB // the CMDB
	c     *ldap.Conn // the directory, as its admin
	base  string     // the directory's subtree
	srv   *ldaptest.Server
}

// setUpExample copies examples/cmdb-directory-catalog into a workspace,
// loads its CMDB into a fresh PostgreSQL database and its LDIF into a fresh
// slapd, sets the environment its config reads, and installs the notify
// trigger printed by `nhisync sql trigger cmdb`.
func setUpExample(t *testing.T) *example {
	t.Helper()
	srv, err := ldaptest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("this test needs OpenLDAP slapd (scripts/deps installs it): %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	files := map[string]string{}
	for _, name := range []string{"nhisync.yaml", "catalog/accounts.yaml"} {
		b, err := os.ReadFile(filepath.Join(exampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	w := newWorkspace(t, files)
	dsn, db := pgScratch(t)
	ddl, err := os.ReadFile(filepath.Join(exampleDir, "cmdb.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(ddl)); err != nil {
		t.Fatal(err)
	}
	c, err := srv.Admin(ldaptest.Suffix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	base := "ou=e2e," + ldaptest.Suffix
	ou := ldap.NewAddRequest(base, nil)
	ou.Attribute("objectClass", []string{"organizationalUnit"})
	ou.Attribute("ou", []string{"e2e"})
	if err := c.Add(ou); err != nil {
		t.Fatal(err)
	}
	loadLDIF(t, c, filepath.Join(exampleDir, "directory.ldif"), base)
	t.Setenv("CMDB_DSN", dsn)
	t.Setenv("LDAP_URL", srv.URL)
	t.Setenv("LDAP_BIND_DN", ldaptest.AdminDN)
	t.Setenv("LDAP_BASE", base)
	t.Setenv("LDAP_BIND_PASSWORD", ldaptest.AdminPassword)

	// The operator installs the notify trigger the CLI prints.
	trigger := w.ok(t, "sql", "trigger", "cmdb")
	if !strings.Contains(trigger, "pg_notify('nhi_cmdb_changes'") {
		t.Fatalf("sql trigger printed:\n%s", trigger)
	}
	if _, err := db.Exec(trigger); err != nil {
		t.Fatalf("the printed trigger does not run: %v", err)
	}
	return &example{w: w, files: files, db: db, c: c, base: base, srv: srv}
}

// TestExampleCMDBDirectoryCatalog runs examples/cmdb-directory-catalog
// through the CLI against real PostgreSQL and OpenLDAP: an owner change
// in the directory reaches the CMDB, a classification change in the
// catalog reaches the directory, concurrent edits are settled by the
// configured rules (authority for owner, strictest for lifecycle), and a
// quiet pass writes nothing.
func TestExampleCMDBDirectoryCatalog(t *testing.T) {
	ex := setUpExample(t)
	w, files, db, c, base := ex.w, ex.files, ex.db, ex.c, ex.base
	dir := w.dir
	w.ok(t, "check", "--connect")

	billing := "uid=svc-billing,ou=serviceaccounts," + base
	ci := "uid=svc-ci,ou=serviceaccounts," + base
	first := syncJSON(t, w)
	t.Logf("first pass: %v", first)
	// First pass: the catalog's labels meet the directory's.
	if got := ldapValues(t, c, billing, "nhiClassification"); !slices.Equal(got, []string{"internal"}) {
		t.Errorf("after the first pass svc-billing is labelled %v", got)
	}

	// 1. The owner changes in the directory; a label is added in the catalog.
	ldapReplace(t, c, billing, "nhiOwner", "uid=bob,ou=people,"+base)
	cat := strings.Replace(files["catalog/accounts.yaml"], "tags: [internal]", "tags: [internal, pci]", 1)
	writeFile(t, filepath.Join(dir, "catalog/accounts.yaml"), cat)
	syncJSON(t, w)
	if got := cmdbValue(t, db, "svc-billing", "owned_by"); got != "bob" {
		t.Errorf("the CMDB owner of svc-billing is %q, want bob from the directory", got)
	}
	if got := ldapValues(t, c, billing, "nhiClassification"); !slices.Equal(got, []string{"internal", "pci"}) {
		t.Errorf("the directory labels svc-billing %v, want the catalog's pci added", got)
	}
	if got := cmdbValue(t, db, "svc-billing", "cost_center"); got != "cc-100" {
		t.Errorf("an unmapped CMDB column changed: %q", got)
	}

	// 2. Concurrent edits: owner in both (the directory outranks the CMDB),
	// lifecycle in both (strictest wins).
	if _, err := db.Exec("UPDATE service_accounts SET owned_by = 'carol', status = 'suspended' WHERE name = 'svc-ci'"); err != nil {
		t.Fatal(err)
	}
	ldapReplace(t, c, ci, "nhiOwner", "uid=alice,ou=people,"+base)
	ldapReplace(t, c, ci, "nhiLifecycle", "rotation_due")
	syncJSON(t, w)
	if got := cmdbValue(t, db, "svc-ci", "owned_by"); got != "alice" {
		t.Errorf("the CMDB owner of svc-ci is %q, want alice (the directory outranks the CMDB)", got)
	}
	if got := ldapValues(t, c, ci, "nhiOwner"); len(got) != 1 || !strings.EqualFold(got[0], "uid=alice,ou=people,"+base) {
		t.Errorf("the directory owner of svc-ci is %v", got)
	}
	if got := ldapValues(t, c, ci, "nhiLifecycle"); !slices.Equal(got, []string{"suspended"}) {
		t.Errorf("the directory lifecycle of svc-ci is %v, want suspended (strictest)", got)
	}
	if got := cmdbValue(t, db, "svc-ci", "status"); got != "suspended" {
		t.Errorf("the CMDB lifecycle of svc-ci is %q, want suspended", got)
	}

	// 3. A quiet pass writes nothing.
	quiet := syncJSON(t, w)
	if n := intOf(t, "quiet pass", quiet, "writes_applied"); n != 0 {
		t.Errorf("a quiet pass applied %d writes: %v", n, quiet)
	}
}

// TestCheckRedactsDSNPassword: `check --connect` names a database it
// cannot reach by its DSN with the password replaced.
func TestCheckRedactsDSNPassword(t *testing.T) {
	const secret = "Sup3r-s3cret-pw"
	w := newWorkspace(t, map[string]string{"nhisync.yaml": `version: 1
kinds:
  service_account:
    match: [name]
    create_from: [cmdb]
    fields:
      name: { type: string, required: true }
systems:
  cmdb:
    connector: sql
    dsn: ${CMDB_DSN}
    table: service_accounts
    id: sys_id
    kind: service_account
    timeout: 5s
    fields: { name: name }
`})
	t.Setenv("CMDB_DSN", "postgres://nhi:"+secret+"@127.0.0.1:1/cmdb?sslmode=disable")
	for _, out := range []string{"table", "json"} {
		r := w.run(t, "check", "--connect", "-o", out)
		if r.code != exitFailed {
			t.Errorf("-o %s: exit %d, want %d", out, r.code, exitFailed)
		}
		all := r.stdout + r.stderr
		if strings.Contains(all, secret) {
			t.Errorf("-o %s: the output shows the DSN password:\n%s", out, all)
		}
		if !strings.Contains(all, "postgres://nhi:xxxxx@127.0.0.1:1/cmdb") {
			t.Errorf("-o %s: the output does not name the database by its redacted DSN:\n%s", out, all)
		}
	}
}

// TestExampleServeFeeds: with `nhisync serve` running on the example, a
// change in the CMDB reaches the directory through PostgreSQL NOTIFY, and
// one in the directory reaches the CMDB through the LDAP content sync,
// with nobody running a command (both systems poll every 10m, far longer
// than the wait: only the feeds can bring the changes).
func TestExampleServeFeeds(t *testing.T) {
	bin := binary(t)
	ex := setUpExample(t)
	ex.w.ok(t, "sync")
	p := startServe(t, bin, ex.w.config)
	eventually(t, "the first pass", p, func() bool { return strings.Contains(p.log(), `"msg":"pass done"`) })
	billing := "uid=svc-billing,ou=serviceaccounts," + ex.base
	ci := "uid=svc-ci,ou=serviceaccounts," + ex.base

	if _, err := ex.db.Exec("UPDATE service_accounts SET status = 'decommissioned' WHERE name = 'svc-billing'"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the CMDB's decommission in the directory", p, func() bool {
		return slices.Equal(ldapValues(t, ex.c, billing, "nhiLifecycle"), []string{"decommissioned"})
	})
	ldapReplace(t, ex.c, ci, "nhiOwner", "uid=carol,ou=people,"+ex.base)
	eventually(t, "the directory's owner in the CMDB", p, func() bool {
		return cmdbValue(t, ex.db, "svc-ci", "owned_by") == "carol"
	})
	if code := p.stop(t); code != 0 {
		t.Errorf("serve exited %d, want 0\n%s", code, p.log())
	}
	if strings.Contains(p.log(), ldaptest.AdminPassword) {
		t.Error("the serve log holds the LDAP password")
	}
}
