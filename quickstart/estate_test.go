package quickstart

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// record is one system's record read back from its file, by canonical
// field: scalars as written (names untrimmed), sets sorted and joined by
// ",". extra holds the unmapped columns and keys.
type record struct {
	fields map[string]string
	extra  map[string]string
}

// estate is a generated workspace read back through each format's own
// parser: per system, records by correlation key (platform/name, trimmed
// and lower-cased).
type estate map[string]map[string]record

// readEstate parses the four system files of the workspace in dir.
func readEstate(t *testing.T, dir string) estate {
	t.Helper()
	es := estate{}
	add := func(system string, fields, extra map[string]string) {
		key := strings.ToLower(strings.TrimSpace(fields["platform"])) + "/" + strings.ToLower(strings.TrimSpace(fields["name"]))
		if es[system] == nil {
			es[system] = map[string]record{}
		}
		if _, dup := es[system][key]; dup {
			t.Errorf("%s holds %s twice", system, key)
		}
		es[system][key] = record{fields, extra}
	}

	// CMDB: CSV with a header row.
	f, err := os.Open(filepath.Join(dir, CMDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("cmdb.csv: %v", err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], cmdbHeader) {
		t.Fatalf("cmdb.csv header = %v, want %v", rows[0], cmdbHeader)
	}
	for _, row := range rows[1:] {
		col := map[string]string{}
		for i, h := range rows[0] {
			col[h] = row[i]
		}
		add(SystemCMDB, map[string]string{
			"name": col["name"], "platform": col["platform"], "owner": col["owned_by"], "application": col["app"],
			"lifecycle": col["status"], "classification": joinSet(strings.Split(col["tags"], ",")),
		}, map[string]string{"sys_id": col["sys_id"], "nhi_type": col["nhi_type"], "cost_center": col["cost_center"], "notes": col["notes"]})
	}

	// Catalog: a YAML list of mappings.
	b, err := os.ReadFile(filepath.Join(dir, CatalogFile))
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]any
	if err := yaml.Unmarshal(b, &entries); err != nil {
		t.Fatalf("catalog.yaml: %v", err)
	}
	for _, e := range entries {
		add(SystemCatalog, map[string]string{
			"name": str(e["name"]), "platform": str(e["platform"]), "owner": str(e["steward"]),
			"classification": joinSet(strs(e["tags"])), "policy_state": str(e["policy"]),
		}, map[string]string{"description": str(e["description"])})
	}

	// Policy engine: a JSON array of objects.
	if b, err = os.ReadFile(filepath.Join(dir, PolicyFile)); err != nil {
		t.Fatal(err)
	}
	var objects []map[string]any
	if err := json.Unmarshal(b, &objects); err != nil {
		t.Fatalf("policy.json: %v", err)
	}
	for _, o := range objects {
		add(SystemPolicy, map[string]string{
			"name": str(o["account"]), "platform": str(o["platform"]),
			"entitlements": joinSet(strs(o["grants"])), "policy_state": str(o["state"]),
		}, map[string]string{"id": str(o["id"]), "ticket": str(o["ticket"])})
	}

	// Identity provider: a SQLite table.
	db, err := sql.Open("sqlite", filepath.Join(dir, IDPFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Query(`SELECT id, name, platform, status, scopes, rotated_at, updated_at, created_by FROM service_accounts`)
	if err != nil {
		t.Fatalf("idp.db: %v", err)
	}
	defer q.Close()
	for q.Next() {
		var id, name, platform, status, scopes, rotated, updated, createdBy string
		if err := q.Scan(&id, &name, &platform, &status, &scopes, &rotated, &updated, &createdBy); err != nil {
			t.Fatal(err)
		}
		add(SystemIDP, map[string]string{
			"name": name, "platform": platform, "lifecycle": status,
			"entitlements": joinSet(strings.Split(scopes, ",")), "last_rotated": rotated,
		}, map[string]string{"id": id, "updated_at": updated, "created_by": createdBy})
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	return es
}

// has reports whether system holds key.
func (es estate) has(system, key string) bool {
	_, ok := es[system][key]
	return ok
}

// field returns a field of a record (fails the test if absent).
func (es estate) field(t *testing.T, system, key, field string) string {
	t.Helper()
	r, ok := es[system][key]
	if !ok {
		t.Fatalf("%s does not hold %s", system, key)
	}
	return r.fields[field]
}

// keys returns every key held by any system.
func (es estate) keys() map[string]bool {
	all := map[string]bool{}
	for _, recs := range es {
		for k := range recs {
			all[k] = true
		}
	}
	return all
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, str(e))
	}
	return out
}

// joinSet is a set's canonical text: elements trimmed, without empty
// ones, sorted, unique, joined by ",".
func joinSet(elems []string) string {
	var out []string
	for _, e := range elems {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// union is the canonical text of the union of set texts.
func union(sets ...string) string {
	var all []string
	for _, s := range sets {
		all = append(all, strings.Split(s, ",")...)
	}
	return joinSet(all)
}
