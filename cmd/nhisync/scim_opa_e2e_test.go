package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/connector/opa/opatest"
	"github.com/nhisync/nhisync/connector/scim/scimtest"
)

// scimOPADir is the documented example TestExampleSCIMOPA runs as it is.
const scimOPADir = "../../examples/scim-opa"

const enterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// scimOPA is examples/scim-opa set up on a real SCIM server and OPA.
type scimOPA struct {
	w    *workspace
	scim *scimtest.Server
	opa  *opatest.Server
}

func setUpSCIMOPA(t *testing.T) *scimOPA {
	t.Helper()
	scim, err := scimtest.Start()
	if err != nil {
		t.Fatalf("this test needs the SCIMMY test server (node, npm): %v", err)
	}
	t.Cleanup(func() { scim.Stop() })
	opa, err := opatest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("this test needs opa (scripts/deps installs it): %v", err)
	}
	t.Cleanup(func() { opa.Stop() })
	files := map[string]string{}
	for _, name := range []string{"nhisync.yaml", "cmdb/accounts.csv", "catalog/billing/catalog-info.yaml", "catalog/ci/catalog-info.yaml"} {
		b, err := os.ReadFile(filepath.Join(scimOPADir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	// The IdP's users and the policy's data and rule, as the README loads them.
	var users []map[string]any
	b, err := os.ReadFile(filepath.Join(scimOPADir, "idp-users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &users); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		scim.Must(t, http.MethodPost, "/Users", u)
	}
	b, err = os.ReadFile(filepath.Join(scimOPADir, "policy-data.json"))
	if err != nil {
		t.Fatal(err)
	}
	opa.Must(t, http.MethodPut, "/v1/data/nhi/accounts", json.RawMessage(b))
	rego, err := os.ReadFile(filepath.Join(scimOPADir, "policy.rego"))
	if err != nil {
		t.Fatal(err)
	}
	if err := opa.PutPolicy("nhi-authz", string(rego)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCIM_URL", scim.URL)
	t.Setenv("SCIM_TOKEN", scimtest.Token)
	t.Setenv("OPA_URL", opa.URL)
	t.Setenv("OPA_TOKEN", opatest.Token)
	w := newWorkspace(t, files)
	// The catalog in git, as the README makes it (git init; add; commit).
	gitInitFrom(t, filepath.Join(w.dir, "catalog"), filepath.Join(w.dir, "catalog-repo"))
	return &scimOPA{w: w, scim: scim, opa: opa}
}

// idpEntitlements returns the IdP's entitlement values of a user.
func (x *scimOPA) idpUser(t *testing.T, name string) (owner string, ents []string) {
	t.Helper()
	u := x.scim.Find(t, "userName", name)
	if ext, ok := u[enterpriseUser].(map[string]any); ok {
		owner, _ = ext["manager"].(map[string]any)["value"].(string)
	}
	for _, e := range asList(u["entitlements"]) {
		ents = append(ents, e.(map[string]any)["value"].(string))
	}
	slices.Sort(ents)
	return owner, ents
}

func asList(v any) []any { l, _ := v.([]any); return l }

func (x *scimOPA) policyRecord(t *testing.T, name string) map[string]any {
	t.Helper()
	var out struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(x.opa.Must(t, http.MethodGet, "/v1/data/nhi/accounts/"+name, nil), &out); err != nil {
		t.Fatal(err)
	}
	return out.Result
}

func (x *scimOPA) allowed(t *testing.T, account, entitlement string) bool {
	t.Helper()
	var out struct {
		Result bool `json:"result"`
	}
	b := x.opa.Must(t, http.MethodPost, "/v1/data/nhi/authz/allow", map[string]any{"input": map[string]any{"account": account, "entitlement": entitlement}})
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Result
}

func (x *scimOPA) patchPolicy(t *testing.T, ops ...map[string]any) {
	t.Helper()
	x.opa.Must(t, http.MethodPatch, "/v1/data/nhi/accounts", ops)
}

func (x *scimOPA) patchIdP(t *testing.T, name string, ops ...map[string]any) {
	t.Helper()
	id := x.scim.Find(t, "userName", name)["id"].(string)
	x.scim.Must(t, http.MethodPatch, "/Users/"+id, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops})
}

// TestExampleSCIMOPA runs examples/scim-opa through the CLI against a
// real SCIM 2.0 server and a real OPA: check --connect reports both
// (incremental reads, conditional writes) without a secret; an owner
// change in the CMDB reaches the IdP and the policy data; a grant in the
// policy the IdP misses once (an administrator's change makes nhisync's
// If-Match write stale) is then revoked in the policy while the IdP's
// administrator grants it: the revocation wins (wins: remove) everywhere
// and OPA's decision changes; a quiet pass writes nothing.
func TestExampleSCIMOPA(t *testing.T) {
	x := setUpSCIMOPA(t)
	w := x.w
	for _, out := range []string{"table", "json"} {
		r := w.run(t, "check", "--connect", "-o", out)
		all := r.stdout + r.stderr
		if r.code != exitOK {
			t.Fatalf("check --connect -o %s: exit %d\n%s", out, r.code, all)
		}
		if strings.Contains(all, scimtest.Token) || strings.Contains(all, opatest.Token) {
			t.Errorf("check --connect -o %s shows a token:\n%s", out, all)
		}
		if out == "table" && (!strings.Contains(all, "idp: incremental reads: yes") || !strings.Contains(all, "policy: incremental reads: no")) {
			t.Errorf("check --connect does not report the capabilities:\n%s", all)
		}
	}

	first := syncJSON(t, w)
	t.Logf("first pass: %v", first)
	if !x.allowed(t, "svc-billing", "s3:read") || x.allowed(t, "svc-billing", "s3:write") {
		t.Fatal("the policy decides wrongly before any change")
	}

	// 1. The owner changes in git (a commit on main): the IdP, the policy
	// and the CMDB follow.
	repo := filepath.Join(w.dir, "catalog-repo")
	billing := filepath.Join(repo, "billing", "catalog-info.yaml")
	writeFile(t, billing, strings.Replace(readFile(t, billing), "owner: alice@example.com", "owner: carol@example.com", 1))
	gitCommitAll(t, repo, "svc-billing moves to carol")
	syncJSON(t, w)
	csv := filepath.Join(w.dir, "cmdb", "accounts.csv")
	if !strings.Contains(readFile(t, csv), "SA-001,svc-billing,carol@example.com,cc-100") {
		t.Errorf("the CMDB did not follow the owner committed in git:\n%s", readFile(t, csv))
	}
	if owner, _ := x.idpUser(t, "svc-billing"); owner != "carol@example.com" {
		t.Errorf("the IdP's manager of svc-billing is %q, want carol from the CMDB", owner)
	}
	if got := x.policyRecord(t, "svc-billing"); got["owner"] != "carol@example.com" || got["tier"] != "batch" {
		t.Errorf("the policy record of svc-billing is %v, want owner carol and tier kept", got)
	}
	if u := x.scim.Find(t, "userName", "jane.doe"); u[enterpriseUser] != nil {
		t.Errorf("a user outside the filter was written: %v", u)
	}

	// 2. The policy grants s3:write; while nhisync writes it to the IdP, an
	// administrator changes the user there: the If-Match write is stale
	// and the administrator's change stays.
	x.patchPolicy(t, map[string]any{"op": "add", "path": "/svc-billing/entitlements/-", "value": "s3:write"})
	billingID := x.scim.Find(t, "userName", "svc-billing")["id"].(string)
	x.scim.ChangeBeforeWrite(t, billingID, map[string]any{"displayName": "Billing batch job (renamed by an admin)"})
	sum := syncJSON(t, w)
	if n := intOf(t, "pass 2", sum, "writes_stale"); n != 1 {
		t.Errorf("pass 2 had %d stale writes, want 1 (the IdP's If-Match refused): %v", n, sum)
	}
	if got := x.scim.Find(t, "userName", "svc-billing")["displayName"]; got != "Billing batch job (renamed by an admin)" {
		t.Errorf("the administrator's change was overwritten: displayName %v", got)
	}
	if _, ents := x.idpUser(t, "svc-billing"); slices.Contains(ents, "s3:write") {
		t.Fatalf("the IdP got s3:write although its write was stale: %v", ents)
	}
	if !x.allowed(t, "svc-billing", "s3:write") {
		t.Fatal("the policy's grant is not in effect")
	}

	// 3. Concurrently, the policy revokes s3:write and the IdP's
	// administrator grants it: the revocation wins in every system.
	x.patchPolicy(t, map[string]any{"op": "replace", "path": "/svc-billing/entitlements", "value": []string{"s3:read"}})
	x.patchIdP(t, "svc-billing", map[string]any{"op": "add", "path": "entitlements", "value": []map[string]any{{"value": "s3:write"}}})
	syncJSON(t, w)
	if _, ents := x.idpUser(t, "svc-billing"); !slices.Equal(ents, []string{"s3:read"}) {
		t.Errorf("the IdP's entitlements of svc-billing are %v, want [s3:read] (the revocation wins)", ents)
	}
	if x.allowed(t, "svc-billing", "s3:write") {
		t.Error("the policy allows the revoked entitlement")
	}
	if got := x.policyRecord(t, "svc-billing")["entitlements"]; len(asList(got)) != 1 {
		t.Errorf("the policy's entitlements of svc-billing are %v", got)
	}

	// 4. A quiet pass writes nothing (and commits nothing in git).
	head := gitHead(t, repo).Hash
	quiet := syncJSON(t, w)
	if n := intOf(t, "quiet pass", quiet, "writes_applied"); n != 0 {
		t.Errorf("a quiet pass applied %d writes: %v", n, quiet)
	}
	if gitHead(t, repo).Hash != head {
		t.Error("a quiet pass made a commit in the catalog")
	}
	// No token reached the audit log.
	audit := w.ok(t, "audit", "export")
	if strings.Contains(audit, scimtest.Token) || strings.Contains(audit, opatest.Token) {
		t.Error("the audit log holds a token")
	}
}

// TestSCIMOPARefusedTokensNoSecret: with tokens the servers refuse, sync
// fails naming both systems and the refused credentials, and neither its
// output nor serve's log holds a token (the refused ones or the right
// ones).
func TestSCIMOPARefusedTokensNoSecret(t *testing.T) {
	x := setUpSCIMOPA(t)
	const badSCIM, badOPA = "refused-scim-token-4471", "refused-opa-token-9a0c"
	t.Setenv("SCIM_TOKEN", badSCIM)
	t.Setenv("OPA_TOKEN", badOPA)
	secretsIn := func(s string) bool {
		for _, tok := range []string{badSCIM, badOPA, scimtest.Token, opatest.Token} {
			if strings.Contains(s, tok) {
				return true
			}
		}
		return false
	}
	for _, out := range []string{"table", "json"} {
		r := x.w.run(t, "sync", "-o", out)
		all := r.stdout + r.stderr
		if r.code != exitFailed || !strings.Contains(all, "idp") || !strings.Contains(all, "policy") || !strings.Contains(all, "credentials") {
			t.Errorf("sync -o %s: exit %d, want %d naming idp and policy and the refused credentials:\n%s", out, r.code, exitFailed, all)
		}
		if secretsIn(all) {
			t.Errorf("sync -o %s shows a token:\n%s", out, all)
		}
	}
	p := startServe(t, binary(t), x.w.config)
	eventually(t, "the refused credentials in serve's log", p, func() bool { return strings.Contains(p.log(), "credentials") })
	p.stop(t)
	if secretsIn(p.log()) {
		t.Errorf("serve's log shows a token:\n%s", p.log())
	}
}
