package quickstart

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// ownerRule is the config's owner-is-email rule in Go.
var ownerRule = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)

// TestCases generates workspaces of several seeds and sizes, reads the
// files back and checks that every case the Scenario names is planted in
// them, and that every other account agrees everywhere.
func TestCases(t *testing.T) {
	tests := []struct {
		seed     int64
		accounts int
	}{
		{1, 0}, {2, 0}, {42, MinAccounts}, {7, 100}, {-3, 1000}, {99, 5000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("seed=%d/accounts=%d", tt.seed, tt.accounts), func(t *testing.T) {
			sc, err := Generate(t.TempDir(), Options{Seed: tt.seed, Accounts: tt.accounts})
			if err != nil {
				t.Fatal(err)
			}
			es := readEstate(t, sc.Dir)

			for _, sys := range Systems {
				if got := len(es[sys]); got != sc.Records[sys] {
					t.Errorf("%s holds %d records, Scenario.Records says %d", sys, got, sc.Records[sys])
				}
			}
			want := tt.accounts
			if want == 0 {
				want = DefaultAccounts
			}
			if all := len(es.keys()); all != want || sc.Accounts != want {
				t.Errorf("%d distinct accounts in the files, Scenario.Accounts %d, want %d", all, sc.Accounts, want)
			}
			if n, total := len(es[SystemPolicy]), len(es[SystemIDP]); n*10 < total*4 || n*10 > total*8 {
				t.Errorf("policy holds %d records for %d in idp, want about 60%%", n, total)
			}

			drifted := map[string]string{}
			for _, c := range sc.Cases() {
				lo, hi := 2, 5
				if c.Name == "unknown-in-catalog" {
					lo, hi = 1, 1
				}
				if len(c.Keys) < lo || len(c.Keys) > hi {
					t.Errorf("case %s has %d accounts, want %d..%d", c.Name, len(c.Keys), lo, hi)
				}
				for _, k := range c.Keys {
					if prev, ok := drifted[k]; ok {
						t.Errorf("%s carries both %s and %s", k, prev, c.Name)
					}
					drifted[k] = c.Name
					if sc.Notes[k] == "" {
						t.Errorf("%s (%s) has no note", k, c.Name)
					}
					checkCase(t, es, c.Name, k)
				}
			}
			for k := range es.keys() {
				if _, ok := drifted[k]; !ok {
					checkAgreement(t, es, k)
				}
			}
			checkOverwrites(t, es, sc)
			checkFormats(t, es)
		})
	}
}

// TestExemplars: the accounts the walkthrough names carry the same case
// whatever the seed.
func TestExemplars(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		sc, err := Generate(t.TempDir(), Options{Seed: seed, Accounts: MinAccounts})
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string][]string{}
		for _, c := range sc.Cases() {
			cases[c.Name] = c.Keys
		}
		for _, want := range []struct{ key, caseName string }{
			{"aws/payments-bot", "name-variant"},
			{"github/ci-deployer", "entitlement-drift"},
			{"gcp/etl-nightly", "owner-conflict"},
			{"azure/backup-agent", "decommissioned"},
			{"gcp/ml-feature-store", "label-merge"},
			{"aws/ai-support-agent", "orphan"},
		} {
			if !slices.Contains(cases[want.caseName], want.key) {
				t.Errorf("seed %d: %s not in case %s: %v", seed, want.key, want.caseName, cases[want.caseName])
			}
		}
	}
}

// checkCase checks that the files hold the drift case names for key.
func checkCase(t *testing.T, es estate, caseName, key string) {
	t.Helper()
	f := func(system, field string) string { return es.field(t, system, key, field) }
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s %s: "+format, append([]any{caseName, key}, args...)...)
	}
	switch caseName {
	case "owner-conflict":
		a, b := f(SystemCMDB, "owner"), f(SystemCatalog, "owner")
		if a == b || !ownerRule.MatchString(a) || !ownerRule.MatchString(b) {
			fail("cmdb owner %q, catalog steward %q: want two different valid emails", a, b)
		}
	case "orphan":
		if a, b := f(SystemCMDB, "owner"), f(SystemCatalog, "owner"); a != "" || b != "" {
			fail("cmdb owner %q, catalog steward %q: want both empty", a, b)
		}
	case "unknown-in-policy", "unknown-in-catalog":
		only := map[string]string{"unknown-in-policy": SystemPolicy, "unknown-in-catalog": SystemCatalog}[caseName]
		for _, sys := range Systems {
			if es.has(sys, key) != (sys == only) {
				fail("held by %s: %v, want only by %s", sys, es.has(sys, key), only)
			}
		}
	case "label-merge":
		a, b := f(SystemCMDB, "classification"), f(SystemCatalog, "classification")
		if u := union(a, b); u == a || u == b {
			fail("cmdb tags %q, catalog tags %q: want each to hold a tag the other lacks", a, b)
		}
	case "invalid-owner":
		if a, b := f(SystemCMDB, "owner"), f(SystemCatalog, "owner"); ownerRule.MatchString(a) || !ownerRule.MatchString(b) {
			fail("cmdb owner %q, catalog steward %q: want an invalid cmdb owner and a valid steward", a, b)
		}
	case "decommissioned":
		if a, b := f(SystemIDP, "lifecycle"), f(SystemCMDB, "lifecycle"); a != "decommissioned" || b != "active" {
			fail("idp status %q, cmdb status %q", a, b)
		}
	case "policy-approval":
		a, b := f(SystemCatalog, "policy_state"), f(SystemPolicy, "policy_state")
		if a == b || a == "" || b == "" {
			fail("catalog policy %q, policy.json state %q: want two different values", a, b)
		}
	case "name-variant":
		canonical := f(SystemIDP, "name")
		differs := 0
		for _, sys := range Systems {
			if es.has(sys, key) && f(sys, "name") != canonical {
				differs++
			}
		}
		if canonical != strings.ToLower(strings.TrimSpace(canonical)) || differs != 1 {
			fail("idp name %q, %d systems spell it otherwise: want a canonical idp name and one variant", canonical, differs)
		}
	case "entitlement-drift":
		if a, b := f(SystemIDP, "entitlements"), f(SystemPolicy, "entitlements"); a == b {
			fail("idp scopes and policy grants agree: %q", a)
		}
	case "cmdb-only":
		if !es.has(SystemCMDB, key) || es.has(SystemIDP, key) {
			fail("in cmdb %v, in idp %v", es.has(SystemCMDB, key), es.has(SystemIDP, key))
		}
	case "idp-only":
		if !es.has(SystemIDP, key) || es.has(SystemCMDB, key) {
			fail("in idp %v, in cmdb %v", es.has(SystemIDP, key), es.has(SystemCMDB, key))
		}
	default:
		fail("unknown case")
	}
}

// checkAgreement checks that an account without drift is in idp, cmdb and
// catalog and that every system holding it agrees on every field.
func checkAgreement(t *testing.T, es estate, key string) {
	t.Helper()
	for _, sys := range []string{SystemIDP, SystemCMDB, SystemCatalog} {
		if !es.has(sys, key) {
			t.Errorf("%s: no drift planted, but missing from %s", key, sys)
			return
		}
	}
	seen := map[string]string{}
	for _, sys := range Systems {
		r, ok := es[sys][key]
		if !ok {
			continue
		}
		for field, v := range r.fields {
			if prev, ok := seen[field]; ok && prev != v {
				t.Errorf("%s: no drift planted, but %s is %q in %s and %q elsewhere", key, field, v, sys, prev)
			}
			seen[field] = v
		}
	}
	if o := seen["owner"]; o != "" && !ownerRule.MatchString(o) {
		t.Errorf("%s: no drift planted, but owner %q is not an email", key, o)
	}
}

// checkOverwrites models the first sync's decisions (cmdb outranks the
// catalog for owner unless its value breaks the rule, sets merge,
// lifecycle goes to the strictest, the catalog decides policy_state, a
// name spelled two ways may go either way) and counts, per system, the
// records whose non-empty values it would overwrite. The count must stay
// within Scenario.OverwriteBound, itself under the blast-radius guard.
func checkOverwrites(t *testing.T, es estate, sc *Scenario) {
	t.Helper()
	count := map[string]int{}
	for key := range es.keys() {
		if !es.has(SystemIDP, key) && !es.has(SystemCMDB, key) {
			continue // unmatched: never a golden record, never written
		}
		golden := map[string]string{}
		get := func(sys, field string) string {
			if r, ok := es[sys][key]; ok {
				return r.fields[field]
			}
			return ""
		}
		if o := get(SystemCMDB, "owner"); ownerRule.MatchString(o) {
			golden["owner"] = o
		} else {
			golden["owner"] = get(SystemCatalog, "owner")
		}
		golden["classification"] = union(get(SystemCMDB, "classification"), get(SystemCatalog, "classification"))
		golden["entitlements"] = union(get(SystemIDP, "entitlements"), get(SystemPolicy, "entitlements"))
		golden["lifecycle"] = get(SystemIDP, "lifecycle")
		if l := get(SystemCMDB, "lifecycle"); slices.Index(lifecycleOrder, l) > slices.Index(lifecycleOrder, golden["lifecycle"]) {
			golden["lifecycle"] = l
		}
		golden["policy_state"] = get(SystemCatalog, "policy_state")
		golden["application"] = get(SystemCMDB, "application")
		golden["last_rotated"] = get(SystemIDP, "last_rotated")
		names := map[string]bool{}
		for _, sys := range Systems {
			if es.has(sys, key) {
				names[strings.TrimSpace(get(sys, "name"))] = true
			}
		}
		for _, sys := range Systems {
			r, ok := es[sys][key]
			if !ok {
				continue
			}
			over := len(names) > 1
			for field, v := range r.fields {
				g, modelled := golden[field]
				if sys == SystemCMDB && field == "owner" && !ownerRule.MatchString(v) {
					continue // quarantined, not repaired
				}
				if modelled && v != "" && g != "" && v != g {
					over = true
				}
			}
			if over {
				count[sys]++
			}
		}
	}
	for _, sys := range Systems {
		if count[sys] > sc.OverwriteBound[sys] || sc.OverwriteBound[sys] > 20 {
			t.Errorf("%s: first sync would overwrite %d records, OverwriteBound %d, limit 20", sys, count[sys], sc.OverwriteBound[sys])
		}
	}
}

// checkFormats checks the native forms: unmapped columns filled, ids
// unique, lifecycle states the config knows, times RFC 3339 UTC no later
// than the reference time.
func checkFormats(t *testing.T, es estate) {
	t.Helper()
	ids := map[string]bool{}
	for sys, recs := range es {
		for key, r := range recs {
			for _, col := range map[string][]string{
				SystemIDP: {"id", "updated_at", "created_by"}, SystemCMDB: {"sys_id", "nhi_type", "cost_center"},
				SystemCatalog: {"description"}, SystemPolicy: {"id"},
			}[sys] {
				if r.extra[col] == "" {
					t.Errorf("%s %s: %s is empty", sys, key, col)
				}
			}
			for _, col := range []string{"id", "sys_id"} {
				if id := r.extra[col]; id != "" {
					if ids[sys+" "+id] {
						t.Errorf("%s: id %s used twice", sys, id)
					}
					ids[sys+" "+id] = true
				}
			}
			if l, ok := r.fields["lifecycle"]; ok && !slices.Contains(lifecycleOrder, l) {
				t.Errorf("%s %s: lifecycle %q is not one of %v", sys, key, l, lifecycleOrder)
			}
			for _, v := range []string{r.fields["last_rotated"], r.extra["updated_at"]} {
				if v == "" {
					continue
				}
				tm, err := time.Parse(time.RFC3339, v)
				if err != nil || tm.Location() != time.UTC || tm.After(DefaultNow) || !strings.HasSuffix(v, "Z") {
					t.Errorf("%s %s: time %q is not RFC 3339 UTC before %s", sys, key, v, DefaultNow)
				}
			}
		}
	}
}
