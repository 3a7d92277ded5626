package opa_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/opa"
	"github.com/nhisync/nhisync/connector/opa/opatest"
)

func kind() *nhisync.Kind {
	k := &nhisync.Kind{Name: "service_account", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString, Required: true, Resolve: nhisync.ResolvePriority},
		{Name: "owner", Type: nhisync.TypeString, Resolve: nhisync.ResolvePriority},
		{Name: "entitlements", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
	} {
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

func system(path string, settings nhisync.Settings) *nhisync.System {
	sys := &nhisync.System{Name: "policy", Connector: "opa", Kind: "service_account", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"url": srv.URL, "path": path, "token": opatest.Token}, Pos: "test:1"}
	for k, v := range settings {
		sys.Settings[k] = v
	}
	for _, m := range [][2]string{{"name", "name"}, {"owner", `meta["nhi.example/owner"]`}, {"entitlements", "entitlements"}} {
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: m[0], Type: kind().Fields[m[0]].Type, Name: m[1], Direction: nhisync.DirBoth})
	}
	return sys
}

func open(t *testing.T, sys *nhisync.System) *opa.Connector {
	t.Helper()
	if err := opa.Validate(sys, kind()); err != nil {
		t.Fatal(err)
	}
	c, err := opa.New(sys, kind())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allowed asks OPA's policy whether id may use entitlement.
func allowed(t *testing.T, pkg, id, entitlement string) bool {
	t.Helper()
	b := srv.Must(t, http.MethodPost, "/v1/data/"+strings.ReplaceAll(pkg, ".", "/")+"/allow",
		map[string]any{"input": map[string]any{"account": id, "entitlement": entitlement}})
	var out struct {
		Result bool `json:"result"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Result
}

// TestOPADecisionChangesAfterWrite: a Rego policy reads the document the
// connector writes, so revoking an entitlement through the connector
// changes OPA's decision; a nested path is created, unmapped keys stay.
func TestOPADecisionChangesAfterWrite(t *testing.T) {
	path := docPath(t)
	pkg := "nhitest_" + strings.ReplaceAll(strings.TrimPrefix(path, "conntest/"), "/", "_")
	if err := srv.PutPolicy(pkg, "package "+pkg+"\n\ndefault allow := false\n\nallow if {\n\tsome e in data."+
		strings.ReplaceAll(path, "/", ".")+"[input.account].entitlements\n\te == input.entitlement\n}\n"); err != nil {
		t.Fatal(err)
	}
	srv.Must(t, http.MethodPut, "/v1/data/"+path, map[string]any{
		"svc-billing": map[string]any{"name": "svc-billing", "entitlements": []string{"s3:read", "s3:write"}, "cost": 7},
	})
	if !allowed(t, pkg, "svc-billing", "s3:write") {
		t.Fatal("the policy denies before the write")
	}
	c := open(t, system(path, nil))
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: "svc-billing", Changes: []nhisync.Change{
		{Field: "entitlements", Old: nhisync.SetOf("s3:read", "s3:write"), New: nhisync.SetOf("s3:read")},
		{Field: "owner", New: nhisync.Str("alice@example.com")},
	}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("Apply: %v %+v", err, res)
	}
	if allowed(t, pkg, "svc-billing", "s3:write") {
		t.Error("the policy still allows a revoked entitlement")
	}
	if !allowed(t, pkg, "svc-billing", "s3:read") {
		t.Error("the policy lost a kept entitlement")
	}
	var doc struct {
		Result map[string]any `json:"result"`
	}
	_ = json.Unmarshal(srv.Must(t, http.MethodGet, "/v1/data/"+path+"/svc-billing", nil), &doc)
	if doc.Result["meta"].(map[string]any)["nhi.example/owner"] != "alice@example.com" || doc.Result["cost"] != float64(7) {
		t.Errorf("record %v: want the nested owner set and cost kept", doc.Result)
	}
}

// TestOPAUndecodableRecord: a record that is not an object is emitted
// by its id with every value Malformed; the others read as usual.
func TestOPAUndecodableRecord(t *testing.T) {
	path := docPath(t)
	srv.Must(t, http.MethodPut, "/v1/data/"+path, map[string]any{
		"a": map[string]any{"name": "a"}, "bad": 42, "c": map[string]any{"name": map[string]any{"x": 1}},
	})
	var ids []string
	bad := map[string]bool{}
	err := open(t, system(path, nil)).Snapshot(t.Context(), func(o nhisync.Observation) error {
		ids = append(ids, o.ID)
		bad[o.ID] = o.Values[0].Problem() != ""
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"a", "bad", "c"}) || bad["a"] || !bad["bad"] || !bad["c"] {
		t.Errorf("ids %v malformed %v: want a clean, bad and c malformed", ids, bad)
	}
}

// TestOPAUndefinedDocument: a path holding nothing is an error (a wrong
// path must not read as every record gone), unless the system provisions.
func TestOPAUndefinedDocument(t *testing.T) {
	path := docPath(t)
	err := open(t, system(path, nil)).Check(t.Context())
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("Check: %v, want EINVALID saying the document is undefined", err)
	}
	sys := system(path, nil)
	sys.Provision = true
	c := open(t, sys)
	if err := c.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{{Create: true, Changes: []nhisync.Change{{Field: "name", New: nhisync.Str("svc-new")}}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("create: %v %+v", err, res)
	}
	n := 0
	if err := c.Snapshot(t.Context(), func(nhisync.Observation) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("after a create: %d records, %v", n, err)
	}
}

// TestOPARefusedTokenNoSecret: a wrong token fails with a clear message
// that does not hold it.
func TestOPARefusedTokenNoSecret(t *testing.T) {
	const bad = "not-the-token-77aa"
	err := open(t, system(docPath(t), nhisync.Settings{"token": bad})).Check(t.Context())
	var e *nhisync.Error
	if !errors.As(err, &e) || e.Code != nhisync.EINVALID || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Check: %v, want EINVALID saying the credentials were refused", err)
	}
	if err != nil && strings.Contains(err.Error(), bad) {
		t.Errorf("the error shows the token: %v", err)
	}
}
