package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// specConfig is the example of SPEC §2, completed with the application
// kind it refers to and the idp and policy systems it names.
const specConfig = `version: 1
store: sqlite:./nhisync-data/nhisync.db     # default; or postgres://user@host:5432/db
audit:
  signing_key: ./nhisync-data/audit.key     # ed25519; created on first run if absent

kinds:
  service_account:
    match: [platform, name]          # correlation key across systems
    create_from: [idp, cmdb]         # systems whose unknown records become new golden records
    retire_from: [idp]               # vanishing from these sets lifecycle=decommissioned
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog], stale_after: 2160h }
      application:    { type: ref, to: application, authority: [cmdb] }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
      entitlements:   { type: set, resolve: merge, wins: remove, authority: [idp, policy] }
      last_rotated:   { type: time, authority: [idp] }
      policy_state:   { type: string, authority: [catalog], approve_to: [policy] }
      reads:          { type: set, resolve: merge }     # lineage: datasets used
    rules:                            # CEL; a failing rule quarantines the proposal
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
  application:
    match: [name]
    fields:
      name: { type: string }

systems:
  cmdb:
    connector: sql
    dsn: ${CMDB_DSN}                  # ${VAR} expands from the environment; secrets never live in the file
    table: service_accounts
    id: sys_id
    kind: service_account
    fields: { name: name, platform: platform, owner: owned_by, application: app, lifecycle: status }
    direction: both                   # read | write | both (default both); also per field
    poll: 30s
  catalog:
    connector: file
    path: ./catalog/accounts.yaml
    kind: service_account
    fields: { name: name, platform: platform, owner: steward, classification: tags, policy_state: policy }
  idp:
    connector: file
    path: ./idp.json
    kind: service_account
    poll: 90d
    on_refused: report
    guard: "5%"
    fields:
      name: name
      platform: { name: cloud, read: value.lowerAscii() }
      entitlements: { name: grants, join: ";" }
      last_rotated: rotated_at
      lifecycle: { name: state, direction: read }
  policy:
    connector: file
    path: ./policy.csv
    kind: service_account
    provision: true
    guard: { max_changes: 40 }
    fields:
      name: name
      platform: platform
      entitlements: { name: allow, write: value.join("|") }
      policy_state: state
`

// env is a lookupEnv over a map.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func parseSpec(t *testing.T, dir string) *nhisync.Config {
	t.Helper()
	cfg, err := Parse([]byte(specConfig), filepath.Join(dir, "nhisync.yaml"), env(map[string]string{"CMDB_DSN": "postgres://cmdb:s3cret@db:5432/cmdb"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestParseSpecExample(t *testing.T) {
	dir := t.TempDir()
	cfg := parseSpec(t, dir)

	if cfg.Version != 1 || cfg.BaseDir != dir || cfg.Path != filepath.Join(dir, "nhisync.yaml") {
		t.Errorf("Version, BaseDir, Path = %d, %q, %q", cfg.Version, cfg.BaseDir, cfg.Path)
	}
	if want := "sqlite:" + filepath.Join(dir, "nhisync-data", "nhisync.db"); cfg.Store != want {
		t.Errorf("Store = %q, want %q", cfg.Store, want)
	}
	if want := filepath.Join(dir, "nhisync-data", "audit.key"); cfg.SigningKey != want {
		t.Errorf("SigningKey = %q, want %q", cfg.SigningKey, want)
	}
	if !slices.Equal(cfg.KindNames, []string{"service_account", "application"}) {
		t.Errorf("KindNames = %q", cfg.KindNames)
	}
	if !slices.Equal(cfg.SystemNames, []string{"cmdb", "catalog", "idp", "policy"}) {
		t.Errorf("SystemNames = %q", cfg.SystemNames)
	}

	sa := cfg.Kinds["service_account"]
	wantFields := []string{"name", "platform", "owner", "application", "classification", "lifecycle", "entitlements", "last_rotated", "policy_state", "reads"}
	if !slices.Equal(sa.FieldNames, wantFields) || len(sa.Fields) != len(wantFields) {
		t.Errorf("FieldNames = %q", sa.FieldNames)
	}
	if !slices.Equal(sa.Match, []string{"platform", "name"}) || !slices.Equal(sa.CreateFrom, []string{"idp", "cmdb"}) || !slices.Equal(sa.RetireFrom, []string{"idp"}) {
		t.Errorf("Match, CreateFrom, RetireFrom = %q, %q, %q", sa.Match, sa.CreateFrom, sa.RetireFrom)
	}
	fieldTests := []struct {
		name string
		want nhisync.Field
	}{
		{"name", nhisync.Field{Name: "name", Type: nhisync.TypeString, Required: true, Resolve: nhisync.ResolvePriority}},
		{"owner", nhisync.Field{Name: "owner", Type: nhisync.TypeString, Authority: []string{"cmdb", "catalog"}, Resolve: nhisync.ResolvePriority, StaleAfter: 2160 * time.Hour}},
		{"application", nhisync.Field{Name: "application", Type: nhisync.TypeRef, To: "application", Authority: []string{"cmdb"}, Resolve: nhisync.ResolvePriority}},
		{"classification", nhisync.Field{Name: "classification", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge}},
		{"lifecycle", nhisync.Field{Name: "lifecycle", Type: nhisync.TypeEnum, Values: []string{"active", "rotation_due", "suspended", "decommissioned"}, Resolve: nhisync.ResolveStrictest}},
		{"entitlements", nhisync.Field{Name: "entitlements", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge, WinsRemove: true, Authority: []string{"idp", "policy"}}},
		{"policy_state", nhisync.Field{Name: "policy_state", Type: nhisync.TypeString, Resolve: nhisync.ResolvePriority, Authority: []string{"catalog"}, ApproveTo: []string{"policy"}}},
	}
	for _, ft := range fieldTests {
		got := sa.Fields[ft.name]
		if got == nil {
			t.Errorf("no field %s", ft.name)
			continue
		}
		if got.Name != ft.want.Name || got.Type != ft.want.Type || got.To != ft.want.To || got.Required != ft.want.Required ||
			got.Resolve != ft.want.Resolve || got.WinsRemove != ft.want.WinsRemove || got.StaleAfter != ft.want.StaleAfter ||
			!slices.Equal(got.Values, ft.want.Values) || !slices.Equal(got.Authority, ft.want.Authority) || !slices.Equal(got.ApproveTo, ft.want.ApproveTo) {
			t.Errorf("field %s = %+v, want %+v", ft.name, *got, ft.want)
		}
	}

	if len(sa.Rules) != 1 || sa.Rules[0].Name() != "owner-is-email" || !slices.Equal(sa.Rules[0].Fields(), []string{"owner"}) {
		t.Fatalf("Rules = %v", sa.Rules)
	}
	for owner, want := range map[string]bool{"": true, "alice@example.com": true, "alice": false} {
		ok, err := sa.Rules[0].Check(map[string]nhisync.Value{"owner": nhisync.Str(owner)}, "")
		if err != nil || ok != want {
			t.Errorf("owner-is-email(%q) = %v, %v; want %v", owner, ok, err, want)
		}
	}

	cmdb := cfg.Systems["cmdb"]
	if cmdb.Connector != "sql" || cmdb.Kind != "service_account" || cmdb.ID != "sys_id" || cmdb.Direction != nhisync.DirBoth ||
		cmdb.Poll != 30*time.Second || cmdb.OnRefused != nhisync.Repair || cmdb.Provision || cmdb.Guard != (nhisync.Guard{}) {
		t.Errorf("cmdb = %+v", *cmdb)
	}
	if cmdb.Settings.String("dsn") != "postgres://cmdb:s3cret@db:5432/cmdb" || cmdb.Settings.String("table") != "service_accounts" || len(cmdb.Settings) != 2 {
		t.Errorf("cmdb settings = %v", cmdb.Settings)
	}
	if cmdb.BaseDir != dir || cmdb.Pos != filepath.Join(dir, "nhisync.yaml")+":31" {
		t.Errorf("cmdb BaseDir, Pos = %q, %q", cmdb.BaseDir, cmdb.Pos)
	}
	var got []string
	for _, m := range cmdb.Fields {
		got = append(got, m.Field+"="+m.Name+":"+string(m.Type)+":"+string(m.Direction))
	}
	want := []string{"name=name:string:both", "platform=platform:string:both", "owner=owned_by:string:both", "application=app:ref:both", "lifecycle=status:enum:both"}
	if !slices.Equal(got, want) {
		t.Errorf("cmdb fields = %q, want %q", got, want)
	}

	idp := cfg.Systems["idp"]
	if idp.Poll != 90*24*time.Hour || idp.OnRefused != nhisync.Report || idp.Guard != (nhisync.Guard{Percent: 5}) {
		t.Errorf("idp poll, on_refused, guard = %v, %v, %+v", idp.Poll, idp.OnRefused, idp.Guard)
	}
	if m := idp.Mapping("entitlements"); m == nil || m.Separator() != ";" || m.Type != nhisync.TypeSet {
		t.Errorf("idp entitlements mapping = %+v", m)
	}
	if m := idp.Mapping("lifecycle"); m == nil || m.Direction != nhisync.DirRead || idp.Writes("lifecycle") || !idp.Reads("lifecycle") {
		t.Errorf("idp lifecycle mapping = %+v", m)
	}
	pm := idp.Mapping("platform")
	if pm == nil || pm.Read == nil || pm.Write != nil {
		t.Fatalf("idp platform mapping = %+v", pm)
	}
	if pm.ReadExpr != "value.lowerAscii()" || pm.WriteExpr != "" {
		t.Errorf("idp platform ReadExpr, WriteExpr = %q, %q", pm.ReadExpr, pm.WriteExpr)
	}
	if v, err := pm.Read.Apply(nhisync.Str("AWS")); err != nil || v.Text() != "aws" {
		t.Errorf("idp platform read(AWS) = %v, %v", v, err)
	}
	policy := cfg.Systems["policy"]
	if !policy.Provision || policy.Guard != (nhisync.Guard{Max: 40}) {
		t.Errorf("policy provision, guard = %v, %+v", policy.Provision, policy.Guard)
	}
	if v, err := policy.Mapping("entitlements").Write.Apply(nhisync.SetOf("b", "a")); err != nil || v.Text() != "a|b" {
		t.Errorf("policy entitlements write = %v, %v", v, err)
	}
	if len(cfg.Fingerprint) != 64 {
		t.Errorf("Fingerprint = %q", cfg.Fingerprint)
	}
}

func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	base := parseSpec(t, dir).Fingerprint
	if again := parseSpec(t, dir).Fingerprint; again != base {
		t.Errorf("fingerprint differs between two parses: %s, %s", base, again)
	}
	// Comments and layout do not count; decisions do.
	tests := []struct {
		name, old, new string
		same           bool
	}{
		{"comment", "# correlation key across systems", "# another comment", true},
		{"flow vs block", "      name: { type: string }\n", "      name:\n        type: string\n", true},
		{"poll", "    poll: 30s", "    poll: 31s", false},
		{"rule", `owner == "" ||`, `owner == "x" ||`, false},
		{"authority order", "authority: [cmdb, catalog]", "authority: [catalog, cmdb]", false},
		{"transform", "value.lowerAscii()", "value.upperAscii()", false},
		{"setting", "table: service_accounts", "table: accounts", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(specConfig, tt.old) {
				t.Fatalf("the example lacks %q", tt.old)
			}
			src := strings.Replace(specConfig, tt.old, tt.new, 1)
			cfg, err := Parse([]byte(src), filepath.Join(dir, "nhisync.yaml"), env(map[string]string{"CMDB_DSN": "postgres://cmdb:s3cret@db:5432/cmdb"}))
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.Fingerprint == base) != tt.same {
				t.Errorf("fingerprint same = %v, want %v", cfg.Fingerprint == base, tt.same)
			}
		})
	}
	// The environment's values count too, though they appear nowhere else.
	cfg, err := Parse([]byte(specConfig), filepath.Join(dir, "nhisync.yaml"), env(map[string]string{"CMDB_DSN": "postgres://cmdb:other@db:5432/cmdb"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fingerprint == base {
		t.Error("fingerprint ignores an expanded value")
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	src := `version: 1
kinds:
  thing:
    match: [name]
    fields:
      name: { type: string }
      tags: { type: set }
systems:
  files:
    connector: file
    kind: thing
    path: things.csv
    fields: { name: name, tags: labels }
`
	cfg, err := Parse([]byte(src), filepath.Join(dir, "sub", "nhisync.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if want := "sqlite:" + filepath.Join(sub, "nhisync-data", "nhisync.db"); cfg.Store != want {
		t.Errorf("Store = %q, want %q", cfg.Store, want)
	}
	if want := filepath.Join(sub, "nhisync-data", "audit.key"); cfg.SigningKey != want {
		t.Errorf("SigningKey = %q, want %q", cfg.SigningKey, want)
	}
	k := cfg.Kinds["thing"]
	if f := k.Fields["name"]; !f.Required || f.Resolve != nhisync.ResolvePriority || f.StaleAfter != 0 || f.Sensitive {
		t.Errorf("name field = %+v (a match field is required; resolve defaults to priority)", *f)
	}
	if f := k.Fields["tags"]; f.Required || f.Resolve != nhisync.ResolvePriority || f.WinsRemove {
		t.Errorf("tags field = %+v", *f)
	}
	s := cfg.Systems["files"]
	if s.Direction != nhisync.DirBoth || s.Poll != DefaultPoll || s.OnRefused != nhisync.Repair || s.Provision || s.ID != "" || s.Guard != (nhisync.Guard{}) || s.BaseDir != sub {
		t.Errorf("system = %+v", *s)
	}
	if m := s.Mapping("tags"); m.Separator() != "," || m.Direction != nhisync.DirBoth || m.Read != nil || m.Write != nil || m.Ref != "" {
		t.Errorf("tags mapping = %+v", *m)
	}
	if len(k.Rules) != 0 || len(k.CreateFrom) != 0 || len(k.RetireFrom) != 0 {
		t.Errorf("kind = %+v", *k)
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		store string
		want  string
	}{
		{"sqlite:./data/n.db", "sqlite:" + filepath.Join(dir, "data", "n.db")},
		{"sqlite:n.db", "sqlite:" + filepath.Join(dir, "n.db")},
		{"sqlite:" + filepath.Join(dir, "abs.db"), "sqlite:" + filepath.Join(dir, "abs.db")},
		{"'sqlite::memory:'", "sqlite::memory:"},
		{"postgres://nhisync@db:5432/nhisync", "postgres://nhisync@db:5432/nhisync"},
		{"postgresql://nhisync@db/nhisync?sslmode=disable", "postgresql://nhisync@db/nhisync?sslmode=disable"},
	}
	for _, tt := range tests {
		t.Run(tt.store, func(t *testing.T) {
			src := "version: 1\nstore: " + tt.store + "\naudit: { signing_key: keys/a.key }\n" + minimalKinds
			cfg, err := Parse([]byte(src), filepath.Join(dir, "nhisync.yaml"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store != tt.want {
				t.Errorf("Store = %q, want %q", cfg.Store, tt.want)
			}
			if want := filepath.Join(dir, "keys", "a.key"); cfg.SigningKey != want {
				t.Errorf("SigningKey = %q, want %q", cfg.SigningKey, want)
			}
		})
	}
}

const minimalKinds = `kinds:
  thing:
    match: [name]
    fields:
      name: { type: string }
`

func TestEnvExpansion(t *testing.T) {
	vars := map[string]string{"DIR": "exports", "EMPTY": "", "TABLE": "accounts", "POLL": "5m", "PROV": "true", "N": "12"}
	tests := []struct {
		value string
		want  any
	}{
		{"${DIR}/a.csv", "exports/a.csv"},
		{"${MISSING:-fallback}", "fallback"},
		{"${EMPTY:-fallback}", "fallback"},
		{"x${EMPTY}y", "xy"},
		{"'cost: $$5'", "cost: $5"},
		{"a$b", "a$b"},
		{"'$'", "$"},
		{"'${DIR}${TABLE}'", "exportsaccounts"},
		{"${N}", "12"},
		{"['${DIR}', b]", []any{"exports", "b"}},
		{"{ sub: '${TABLE}', n: 3 }", map[string]any{"sub": "accounts", "n": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			src := "version: 1\n" + minimalKinds + `systems:
  db:
    connector: sql
    kind: thing
    dsn: sqlite:x.db
    table: ${TABLE}
    poll: ${POLL}
    provision: ${PROV}
    notify: ` + tt.value + `
    fields: { name: name }
`
			cfg, err := Parse([]byte(src), "nhisync.yaml", env(vars))
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Systems["db"]
			if got := s.Settings["notify"]; !equalAny(got, tt.want) {
				t.Errorf("notify = %#v, want %#v", got, tt.want)
			}
			if s.Settings.String("table") != "accounts" || s.Poll != 5*time.Minute || !s.Provision {
				t.Errorf("table, poll, provision = %q, %v, %v", s.Settings.String("table"), s.Poll, s.Provision)
			}
		})
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equalAny)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !equalAny(v, y[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nhisync.yaml")
	src := "version: 1\nstore: sqlite:state/n.db\n" + minimalKinds
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite:" + filepath.Join(dir, "state", "n.db"); cfg.Store != want {
		t.Errorf("Store = %q, want %q", cfg.Store, want)
	}

	t.Setenv("NHISYNC_TEST_KEY", "k/from-env.key")
	if err := os.WriteFile(path, []byte(src+"audit: { signing_key: '${NHISYNC_TEST_KEY}' }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "k", "from-env.key"); cfg.SigningKey != want {
		t.Errorf("SigningKey = %q, want %q (expanded from the process environment)", cfg.SigningKey, want)
	}

	_, err = Load(filepath.Join(dir, "absent.yaml"))
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), "nhisync init") {
		t.Errorf("Load(absent) = %v, want EINVALID suggesting nhisync init", err)
	}
}

func TestStarter(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse(Starter(), filepath.Join(dir, "nhisync.yaml"), env(map[string]string{"CMDB_DSN": "sqlite:cmdb.db"}))
	if err != nil {
		t.Fatalf("the starter config does not parse:\n%v", err)
	}
	if !slices.Equal(cfg.SystemNames, []string{"cmdb", "catalog"}) || cfg.Systems["cmdb"].Connector != "sql" || cfg.Systems["catalog"].Connector != "file" {
		t.Errorf("systems = %q", cfg.SystemNames)
	}
	if cfg.Systems["cmdb"].Settings.String("dsn") != "sqlite:cmdb.db" {
		t.Errorf("cmdb dsn = %q", cfg.Systems["cmdb"].Settings.String("dsn"))
	}
	sa := cfg.Kinds["service_account"]
	for _, f := range []string{"name", "platform", "owner", "application", "classification", "lifecycle", "entitlements", "last_rotated", "policy_state", "reads"} {
		if sa.Fields[f] == nil {
			t.Errorf("starter lacks the SPEC field %s", f)
		}
	}
	// Every key of the schema appears, set or in a comment.
	text := string(Starter())
	keys := append(append(append([]string{}, topKeys...), kindKeys...), fieldKeys...)
	keys = append(keys, nhisync.CommonSettings...)
	keys = append(keys, mappingKeys...)
	keys = append(keys, "signing_key", "max_changes", "dsn", "table", "updated_column", "notify", "path", "format")
	for _, k := range keys {
		if !strings.Contains(text, k+":") {
			t.Errorf("starter does not mention %s:", k)
		}
	}
	// Without CMDB_DSN it refuses, naming the variable.
	_, err = Parse(Starter(), "nhisync.yaml", nil)
	if err == nil || !strings.Contains(nhisync.ErrorMessage(err), "CMDB_DSN is not set") {
		t.Errorf("starter without CMDB_DSN: %v", err)
	}
	// Starter returns a copy.
	b := Starter()
	b[0] = 'X'
	if Starter()[0] == 'X' {
		t.Error("Starter returns shared bytes")
	}
}

func TestProblemsType(t *testing.T) {
	src := "version: 2\nstor: x\n" + minimalKinds
	cfg, ps := ParseProblems([]byte(src), "cfg/nhisync.yaml", nil)
	if cfg != nil || len(ps) != 2 || ps[0].Line != 1 || ps[1].Line != 2 || ps[0].Pos != "cfg/nhisync.yaml:1" {
		t.Errorf("ParseProblems = %v, %+v", cfg, ps)
	}
	_, err := Parse([]byte(src), "cfg/nhisync.yaml", nil)
	want := "cfg/nhisync.yaml:1: version: version 2 is not supported; this nhisync reads version 1\n" +
		"cfg/nhisync.yaml:2: unknown key \"stor\"; did you mean \"store\"?"
	var ne *nhisync.Error
	if !errors.As(err, &ne) || ne.Code != nhisync.EINVALID || ne.Message != want || err.Error() != want {
		t.Errorf("error = %#v, want an EINVALID *nhisync.Error with message\n%s", err, want)
	}
}

func TestGuard(t *testing.T) {
	tests := []struct {
		guard string
		want  nhisync.Guard
	}{
		{"off", nhisync.Guard{Off: true}},
		{"OFF", nhisync.Guard{Off: true}},
		{"false", nhisync.Guard{Off: true}},
		{"true", nhisync.Guard{}},
		{"25", nhisync.Guard{Max: 25}},
		{`"10%"`, nhisync.Guard{Percent: 10}},
		{"2.5%", nhisync.Guard{Percent: 2.5}},
		{"{ max_changes: 7 }", nhisync.Guard{Max: 7}},
		{`{ max_changes: "5%" }`, nhisync.Guard{Percent: 5}},
		{"{}", nhisync.Guard{}},
	}
	for _, tt := range tests {
		t.Run(tt.guard, func(t *testing.T) {
			cfg, err := Parse([]byte(edited(nil, "    guard: "+tt.guard)), "nhisync.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Systems["cmdb"].Guard; got != tt.want {
				t.Errorf("Guard = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"2160h", 2160 * time.Hour, true},
		{"90d", 90 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"d", 0, false},
		{"1dx", 0, false},
		{"soon", 0, false},
		{"99999999999999999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// YAML anchors, aliases and merge keys work like written-out keys, and
// keys written out override merged ones.
func TestAnchorsAndMerge(t *testing.T) {
	src := "version: 1\n" + minimalKinds + `systems:
  east: &db
    connector: sql
    kind: thing
    dsn: sqlite:east.db
    table: things
    poll: 1m
    fields: &fields { name: name }
  west:
    <<: *db
    dsn: sqlite:west.db
    fields: *fields
`
	cfg, err := Parse([]byte(src), "nhisync.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Systems["west"]
	if w.Connector != "sql" || w.Kind != "thing" || w.Poll != time.Minute || w.Settings.String("dsn") != "sqlite:west.db" || w.Settings.String("table") != "things" || w.Mapping("name") == nil {
		t.Errorf("west = %+v", *w)
	}
	if cfg.Systems["east"].Settings.String("dsn") != "sqlite:east.db" {
		t.Errorf("east dsn = %q", cfg.Systems["east"].Settings.String("dsn"))
	}
}

func TestMappingForms(t *testing.T) {
	src := "version: 1\n" + `kinds:
  person:
    match: [email]
    fields:
      email: { type: string }
  group:
    match: [name]
    fields:
      name:    { type: string }
      members: { type: refs, to: person }
      manager: { type: ref, to: person }
      size:    { type: int }
systems:
  dir:
    connector: file
    kind: group
    path: groups.csv
    fields:
      name: cn
      members: { name: member, join: "|", ref: person, direction: read }
      manager: { ref: person }
      size: { name: n, read: 'value == "" ? 0 : int(value)', write: string(value) }
`
	cfg, err := Parse([]byte(src), "nhisync.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Systems["dir"]
	var got []string
	for _, m := range d.Fields {
		got = append(got, m.Field+"="+m.Name+"/"+string(m.Type)+"/"+m.Join+"/"+m.Ref+"/"+string(m.Direction))
	}
	want := []string{"name=cn/string///both", "members=member/refs/|/person/read", "manager=manager/ref//person/both", "size=n/int///both"}
	if !slices.Equal(got, want) {
		t.Errorf("mappings = %q, want %q", got, want)
	}
	size := d.Mapping("size")
	for in, out := range map[string]string{"": "0", "12": "12"} {
		if v, err := size.Read.Apply(nhisync.Str(in)); err != nil || v.Text() != out {
			t.Errorf("size read(%q) = %v, %v; want %q", in, v, err, out)
		}
	}
	if v, err := size.Write.Apply(nhisync.Str("7")); err != nil || v.Text() != "7" {
		t.Errorf("size write(7) = %v, %v", v, err)
	}
}
