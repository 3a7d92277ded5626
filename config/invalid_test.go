package config

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// baseLines is a small valid config; the invalid cases edit its lines.
var baseLines = []string{
	"version: 1",                    // 1
	"kinds:",                        // 2
	"  service_account:",            // 3
	"    match: [name]",             // 4
	"    fields:",                   // 5
	"      name: { type: string }",  // 6
	"      owner: { type: string }", // 7
	"systems:",                      // 8
	"  cmdb:",                       // 9
	"    connector: sql",            // 10
	"    kind: service_account",     // 11
	"    dsn: sqlite:cmdb.db",       // 12
	"    table: accounts",           // 13
	"    fields: { name: name, owner: owned_by }", // 14
}

// edited returns baseLines with lines replaced (1-based; a replacement may
// hold several lines or none) and extra lines appended.
func edited(repl map[int]string, extra ...string) string {
	var out []string
	for i, l := range baseLines {
		if r, ok := repl[i+1]; ok {
			if r != "" {
				out = append(out, r)
			}
			continue
		}
		out = append(out, l)
	}
	return strings.Join(append(out, extra...), "\n") + "\n"
}

func TestBaseIsValid(t *testing.T) {
	if _, err := Parse([]byte(edited(nil)), "nhisync.yaml", nil); err != nil {
		t.Fatal(err)
	}
}

func TestInvalid(t *testing.T) {
	lifecycle := "      lifecycle: { type: enum, values: [active, decommissioned] }"
	tests := []struct {
		name  string
		src   string
		env   map[string]string
		line  int
		msg   string
		count int // problems expected (0 means 1)
	}{
		// Syntax and top level.
		{"yaml syntax", edited(map[int]string{7: "      owner: { type: string"}), nil, 7, "fix the YAML syntax", 0},
		{"empty file", "# nothing\n", nil, 1, "the file is empty; start from `nhisync init`", 0},
		{"root not a mapping", "- a\n- b\n", nil, 1, "expected a mapping of key: value, got a list", 0},
		{"unknown top key", edited(nil, "stor: x"), nil, 15, `unknown key "stor"; did you mean "store"?`, 0},
		{"missing version", edited(map[int]string{1: ""}), nil, 1, "missing version; add `version: 1`", 0},
		{"version 2", edited(map[int]string{1: "version: 2"}), nil, 1, "version: version 2 is not supported", 0},
		{"version not a number", edited(map[int]string{1: "version: one"}), nil, 1, `version: "one" is not an integer`, 0},
		{"bad store", edited(nil, "store: mysql://db/x"), nil, 15, `store: "mysql://db/x" is not a store URL; use sqlite:PATH`, 0},
		{"empty sqlite path", edited(nil, "store: 'sqlite:'"), nil, 15, "store: sqlite: needs a file path", 0},
		{"audit unknown key", edited(nil, "audit: { signin_key: k.key }"), nil, 15, `audit: unknown key "signin_key"; did you mean "signing_key"?`, 0},
		{"audit not a mapping", edited(nil, "audit: k.key"), nil, 15, "audit: expected a mapping", 0},
		{"no kinds", "version: 1\n", nil, 1, "no kinds; declare at least one", 0},
		{"duplicate key", edited(map[int]string{7: "      owner: { type: string }\n      owner: { type: int }"}), nil, 8, "kinds.service_account.fields.owner: duplicate key (first at line 7); keep one", 0},

		// Kinds.
		{"bad kind name", edited(map[int]string{3: "  ServiceAccount:", 11: "    kind: ServiceAccount"}), nil, 3, `kind name "ServiceAccount" is not valid; use lower-case letters`, 2},
		{"unknown kind key", edited(map[int]string{4: "    match: [name]\n    retire: [cmdb]"}), nil, 5, `kinds.service_account: unknown key "retire"; did you mean "retire_from"?`, 0},
		{"missing match", edited(map[int]string{4: ""}), nil, 3, "kinds.service_account: missing match; list the fields", 0},
		{"empty match", edited(map[int]string{4: "    match: []"}), nil, 4, "match is empty", 0},
		{"match not a list", edited(map[int]string{4: "    match: name"}), nil, 4, "kinds.service_account.match: expected a list; write [name]", 0},
		{"match unknown field", edited(map[int]string{4: "    match: [nam]"}), nil, 4, `no field "nam" in this kind; did you mean "name"?`, 0},
		{"match twice", edited(map[int]string{4: "    match: [name, name]"}), nil, 4, `"name" is listed twice`, 0},
		{"match on a set", edited(map[int]string{4: "    match: [name, owner]", 7: "      owner: { type: set }"}), nil, 4, `field "owner" is a set; match on single-valued fields`, 0},
		{"missing fields", edited(map[int]string{5: "", 6: "", 7: ""}), nil, 3, "missing fields", 0},
		{"bad field name", edited(map[int]string{7: "      Owner: { type: string }"}), nil, 7, `field name "Owner" is not valid`, 2},
		{"field not a mapping", edited(map[int]string{7: "      owner: string"}), nil, 7, "kinds.service_account.fields.owner: expected a mapping of key: value, got a single value", 0},
		{"unknown field key", edited(map[int]string{7: "      owner: { type: string, authorty: [cmdb] }"}), nil, 7, `kinds.service_account.fields.owner: unknown key "authorty"; did you mean "authority"?`, 0},
		{"missing type", edited(map[int]string{7: "      owner: { required: true }"}), nil, 7, "owner: missing type; add type: with one of string, int, bool, time, enum, set, ref, refs", 0},
		{"unknown type", edited(map[int]string{7: "      owner: { type: strin }"}), nil, 7, `owner.type: unknown type "strin"; did you mean "string"?`, 0},
		{"required not bool", edited(map[int]string{7: "      owner: { type: string, required: yes please }"}), nil, 7, `owner.required: "yes please" is not true or false`, 0},
		{"enum without values", edited(map[int]string{7: "      owner: { type: enum }"}), nil, 7, "owner: an enum needs values", 0},
		{"enum empty values", edited(map[int]string{7: "      owner: { type: enum, values: [] }"}), nil, 7, "owner: an enum needs values", 0},
		{"enum duplicate value", edited(map[int]string{7: "      owner: { type: enum, values: [a, a] }"}), nil, 7, `owner.values: "a" is listed twice`, 0},
		{"values on a string", edited(map[int]string{7: "      owner: { type: string, values: [a] }"}), nil, 7, "values only applies to enum fields", 0},
		{"ref without to", edited(map[int]string{7: "      owner: { type: ref }"}), nil, 7, "owner: a ref field needs to: KIND", 0},
		{"ref to unknown kind", edited(map[int]string{7: "      owner: { type: refs, to: service_acount }"}), nil, 7, `owner.to: no kind "service_acount"; did you mean "service_account"?`, 0},
		{"to on a string", edited(map[int]string{7: "      owner: { type: string, to: service_account }"}), nil, 7, "to only applies to ref and refs fields", 0},
		{"unknown strategy", edited(map[int]string{7: "      owner: { type: string, resolve: lates }"}), nil, 7, `owner.resolve: unknown strategy "lates"; did you mean "latest"?`, 0},
		{"merge on a string", edited(map[int]string{7: "      owner: { type: string, resolve: merge }"}), nil, 7, "merge only applies to set and refs fields, not string", 0},
		{"strictest on a set", edited(map[int]string{7: "      owner: { type: set, resolve: strictest }"}), nil, 7, "strictest only applies to enum fields, not set", 0},
		{"wins without merge", edited(map[int]string{7: "      owner: { type: set, wins: remove }"}), nil, 7, "wins only applies with resolve: merge", 0},
		{"wins bad value", edited(map[int]string{7: "      owner: { type: set, resolve: merge, wins: both }"}), nil, 7, `owner.wins: "both" is not add or remove`, 0},
		{"stale_after bad", edited(map[int]string{7: "      owner: { type: string, stale_after: soon }"}), nil, 7, `owner.stale_after: "soon" is not a positive duration; write it like 30s, 15m, 2160h or 90d`, 0},
		{"stale_after negative", edited(map[int]string{7: "      owner: { type: string, stale_after: -1h }"}), nil, 7, "is not a positive duration", 0},
		{"authority unknown system", edited(map[int]string{7: "      owner: { type: string, authority: [cmbd] }"}), nil, 7, `owner.authority: no system "cmbd"; did you mean "cmdb"?`, 0},
		{"authority not mapping the field", edited(map[int]string{7: "      owner: { type: string, authority: [cmdb] }", 14: "    fields: { name: name }"}), nil, 7, "system cmdb does not map field owner; add owner to systems.cmdb.fields", 0},
		{"authority write-only", edited(map[int]string{7: "      owner: { type: string, authority: [cmdb] }", 14: "    fields: { name: name, owner: { name: o, direction: write } }"}), nil, 7, "system cmdb does not read field owner", 0},
		{"authority listed twice", edited(map[int]string{7: "      owner: { type: string, authority: [cmdb, cmdb] }"}), nil, 7, `"cmdb" is listed twice`, 0},
		{"approve_to read-only", edited(map[int]string{7: "      owner: { type: string, approve_to: [cmdb] }", 14: "    fields: { name: name, owner: { name: o, direction: read } }"}), nil, 7, "nhisync never writes field owner to system cmdb", 0},
		{"approve_to read-only system", edited(map[int]string{7: "      owner: { type: string, approve_to: [cmdb] }", 13: "    table: accounts\n    direction: read"}), nil, 7, "nhisync never writes field owner to system cmdb", 0},
		{"create_from unknown system", edited(map[int]string{4: "    match: [name]\n    create_from: [crm]"}), nil, 5, `create_from: no system "crm"`, 0},
		{"create_from without every match field", edited(map[int]string{4: "    match: [name, owner]\n    create_from: [cmdb]", 14: "    fields: { name: name }"}), nil, 5, "system cmdb creates records but does not map match field(s) owner", 0},
		{"create_from other kind", edited(map[int]string{
			4: "    match: [name]\n    create_from: [other]",
			7: "      owner: { type: string }\n  person:\n    match: [n]\n    fields: { n: { type: string } }",
		}, "  other:", "    connector: file", "    kind: person", "    path: p.csv", "    fields: { n: n }"), nil, 5, "create_from: system other holds kind person, not service_account; remove it here", 0},
		{"retire_from without lifecycle", edited(map[int]string{4: "    match: [name]\n    retire_from: [cmdb]"}), nil, 5, "retiring sets lifecycle: decommissioned, so the kind needs a field lifecycle", 0},
		{"retire_from lifecycle without decommissioned", edited(map[int]string{4: "    match: [name]\n    retire_from: [cmdb]", 7: "      owner: { type: string }\n      lifecycle: { type: enum, values: [active, retired] }"}), nil, 5, "needs a field lifecycle", 0},
		{"retire_from is fine with lifecycle", edited(map[int]string{4: "    match: [name]\n    retire_from: [cmdb]", 7: "      owner: { type: string }\n" + lifecycle}), nil, 0, "", -1},

		// Rules.
		{"rule bad CEL", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - name: r\n        check: ownr == ''"}), nil, 10, `kinds.service_account.rules[0].check: rule "r": invalid CEL: column 1: undeclared reference to 'ownr' (did you mean 'owner'?)`, 0},
		{"rule not bool", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - { name: r, check: owner }"}), nil, 9, `rule "r": the check must be true or false, but it gives a string`, 0},
		{"rule missing name", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - check: owner != ''"}), nil, 9, "rules[0]: missing name", 0},
		{"rule missing check", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - name: r"}), nil, 9, "rules[0]: missing check", 0},
		{"rule duplicate name", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - { name: r, check: 'true' }\n      - { name: r, check: 'false' }"}), nil, 10, `rules[1].name: rule "r" is already defined at line 9`, 0},
		{"rule unknown key", edited(map[int]string{7: "      owner: { type: string }\n    rules:\n      - { name: r, check: 'true', when: x }"}), nil, 9, `rules[0]: unknown key "when"`, 0},
		{"rules not a list", edited(map[int]string{7: "      owner: { type: string }\n    rules: { name: r }"}), nil, 8, "rules: expected a list of { name: NAME, check: CEL }", 0},

		// Systems.
		{"bad system name", edited(map[int]string{9: "  CMDB:"}), nil, 9, `system name "CMDB" is not valid`, 0},
		{"system not a mapping", edited(map[int]string{10: "", 11: "", 12: "", 13: "", 14: ""}, "  cmdb2: sql"), nil, 9, "systems.cmdb: empty system; give at least connector, kind and fields", 2},
		{"missing connector", edited(map[int]string{10: ""}), nil, 9, "systems.cmdb: missing connector; add connector: with one of", 0},
		{"unknown connector", edited(map[int]string{10: "    connector: sq"}), nil, 10, `systems.cmdb.connector: unknown connector "sq"; did you mean "sql"?`, 0},
		{"unknown connector far", edited(map[int]string{10: "    connector: zzzzzzzz"}), nil, 10, "use one of file, sql", 0},
		{"missing kind", edited(map[int]string{11: ""}), nil, 9, "systems.cmdb: missing kind; add kind: with one of service_account", 0},
		{"unknown kind", edited(map[int]string{11: "    kind: service_acount"}), nil, 11, `systems.cmdb.kind: no kind "service_acount"; did you mean "service_account"?`, 0},
		{"unknown setting", edited(map[int]string{13: "    tabel: accounts"}), nil, 13, `systems.cmdb: unknown key "tabel" for connector sql; did you mean "table"?`, 0},
		{"setting of another connector", edited(map[int]string{13: "    table: accounts\n    path: x.csv"}), nil, 14, `unknown key "path" for connector sql`, 0},
		{"missing fields", edited(map[int]string{14: ""}), nil, 9, "systems.cmdb: missing fields", 0},
		{"empty fields", edited(map[int]string{14: "    fields: {}"}), nil, 14, "no fields mapped", 0},
		{"unknown canonical field", edited(map[int]string{14: "    fields: { name: name, ownr: owned_by }"}), nil, 14, `systems.cmdb.fields: no field "ownr" in kind service_account; did you mean "owner"?`, 0},
		{"no match field mapped", edited(map[int]string{14: "    fields: { owner: owned_by }"}), nil, 14, "maps none of the match fields (name) of kind service_account", 0},
		{"empty native name", edited(map[int]string{14: "    fields: { name: name, owner: '' }"}), nil, 14, "owner: empty native name", 0},
		{"unknown mapping key", edited(map[int]string{14: "    fields: { name: name, owner: { nam: o } }"}), nil, 14, `fields.owner: unknown key "nam"; did you mean "name"?`, 0},
		{"bad mapping direction", edited(map[int]string{14: "    fields: { name: name, owner: { name: o, direction: in } }"}), nil, 14, `owner.direction: "in" is not read, write or both`, 0},
		{"join on a string", edited(map[int]string{14: "    fields: { name: name, owner: { name: o, join: ';' } }"}), nil, 14, "join only applies to set and refs fields", 0},
		{"ref unknown kind", edited(map[int]string{14: "    fields: { name: name, owner: { name: o, ref: persn } }"}), nil, 14, `owner.ref: no kind "persn"`, 0},
		{"bad read transform", edited(map[int]string{14: "    fields: { name: name, owner: { name: o, read: 'value.lowerAscii(' } }"}), nil, 14, "owner.read: transform: invalid CEL", 0},
		{"bad write transform", edited(map[int]string{14: "    fields: { name: name, owner: { name: o, write: 'valu' } }"}), nil, 14, `did you mean 'value'?`, 0},
		{"bad direction", edited(nil, "    direction: sideways"), nil, 15, `systems.cmdb.direction: "sideways" is not read, write or both`, 0},
		{"bad poll", edited(nil, "    poll: often"), nil, 15, `systems.cmdb.poll: "often" is not a positive duration`, 0},
		{"zero poll", edited(nil, "    poll: 0s"), nil, 15, "is not a positive duration", 0},
		{"bad provision", edited(nil, "    provision: sometimes"), nil, 15, "provision: \"sometimes\" is not true or false", 0},
		{"bad on_refused", edited(nil, "    on_refused: ignore"), nil, 15, `on_refused: "ignore" is not repair or report`, 0},
		{"bad guard", edited(nil, "    guard: lots"), nil, 15, `guard: "lots" is not a guard; write a count like 50, a percentage like "10%", or off`, 0},
		{"zero guard", edited(nil, "    guard: 0"), nil, 15, "the count must be at least 1; to disable the guard write guard: off", 0},
		{"guard over 100%", edited(nil, "    guard: 150%"), nil, 15, "is not a percentage between 0 and 100", 0},
		{"guard mapping unknown key", edited(nil, "    guard: { max: 5 }"), nil, 15, `guard: unknown key "max"; did you mean "max_changes"?`, 0},
		{"guard max_changes off", edited(nil, "    guard: { max_changes: off }"), nil, 15, `guard.max_changes: "off" is not a guard; write a count like 50, a percentage like "10%"`, 0},
		{"guard list", edited(nil, "    guard: [1]"), nil, 15, "guard: expected a count or a percentage, got a list", 0},
		{"connector validate", edited(map[int]string{13: ""}), nil, 9, "systems.cmdb: missing table; name the table holding the records", 0},

		// Environment.
		{"missing env var", edited(map[int]string{12: "    dsn: ${CMDB_DSN}"}), nil, 12, "systems.cmdb.dsn: environment variable CMDB_DSN is not set; set it in the environment or give a default with ${CMDB_DSN:-value}", 0},
		{"bad env reference", edited(map[int]string{12: "    dsn: ${1DSN}"}), nil, 12, "${1DSN} is not a valid variable reference", 0},
		{"unclosed env reference", edited(map[int]string{12: "    dsn: ${DSN"}), nil, 12, "unclosed ${ (write $$ for a literal dollar sign)", 0},
		{"two missing variables", edited(map[int]string{12: "    dsn: ${A}${B}"}), nil, 12, "environment variable A is not set", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ps := ParseProblems([]byte(tt.src), "nhisync.yaml", env(tt.env))
			if tt.count == -1 {
				if len(ps) != 0 {
					t.Fatalf("want no problem, got:\n%v", ps)
				}
				return
			}
			want := max(tt.count, 1)
			if cfg != nil || len(ps) != want {
				t.Fatalf("got %d problem(s), want %d:\n%v\nsource:\n%s", len(ps), want, ps, tt.src)
			}
			var found bool
			for _, p := range ps {
				if p.Line == tt.line && strings.Contains(p.Msg, tt.msg) {
					found = true
				}
				if p.Pos != "nhisync.yaml:"+strconv.Itoa(p.Line) || strings.Contains(p.Msg, "\n") {
					t.Errorf("malformed problem %+v", p)
				}
			}
			if !found {
				t.Errorf("no problem at line %d containing %q; got:\n%v", tt.line, tt.msg, ps)
			}
			_, err := Parse([]byte(tt.src), "nhisync.yaml", env(tt.env))
			if nhisync.ErrorCode(err) != nhisync.EINVALID || nhisync.ErrorMessage(err) != ps.Error() {
				t.Errorf("Parse error = %v, want EINVALID with the problems", err)
			}
		})
	}
}

// Values from the environment never appear in messages: they may be
// secrets. Messages quote what the file says.
func TestNoSecretInProblems(t *testing.T) {
	secret := "pg-Sup3rSecret"
	tests := []struct {
		name, src string
		env       map[string]string
		msg       string
	}{
		{"store", edited(nil, "store: ${STORE_URL}"), map[string]string{"STORE_URL": "mysql://admin:" + secret + "@db/x"}, `"${STORE_URL}" is not a store URL`},
		{"poll", edited(nil, "    poll: ${POLL}"), map[string]string{"POLL": secret}, `"${POLL}" is not a positive duration`},
		{"connector", edited(map[int]string{10: "    connector: ${CONN}"}), map[string]string{"CONN": secret}, `unknown connector "${CONN}"`},
		{"with default", edited(nil, "    guard: ${G:-"+secret+"}"), nil, `"${G:-` + secret[:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "nhisync.yaml", env(tt.env))
			msg := nhisync.ErrorMessage(err)
			if err == nil || !strings.Contains(msg, tt.msg) {
				t.Fatalf("error %q lacks %q", msg, tt.msg)
			}
			if tt.env != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the environment's value: %s", err)
			}
		})
	}
}

// Every problem of a file is reported, in line order, not only the first.
func TestAllProblems(t *testing.T) {
	src := edited(map[int]string{
		4:  "    match: [nam]",
		7:  "      owner: { type: strin }",
		10: "    connector: sq",
		14: "    fields: { name: name, owner: owned_by, team: t }",
	}, "stor: x")
	_, ps := ParseProblems([]byte(src), "nhisync.yaml", nil)
	var lines []int
	for _, p := range ps {
		lines = append(lines, p.Line)
	}
	want := []int{4, 7, 10, 14, 15}
	if len(lines) != len(want) {
		t.Fatalf("problems at lines %v, want %v:\n%v", lines, want, ps)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("problems at lines %v, want %v:\n%v", lines, want, ps)
		}
	}
}
