package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/connector/scim/scimtest"
)

// TestExampleHTTPAPI runs examples/http-api as it is against the SCIM test
// server used as a plain REST API: check --connect reports it reachable
// with conditional writes, a sync brings the API's titles to the CMDB's
// owners through the PatchOp body template, and a quiet pass writes
// nothing.
func TestExampleHTTPAPI(t *testing.T) {
	srv, err := scimtest.Start()
	if err != nil {
		t.Fatalf("this test needs the SCIMMY test server (node, npm): %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	for _, u := range []map[string]any{
		{"userName": "svc-billing", "userType": "ServiceAccount", "title": "nobody@example.com"},
		{"userName": "svc-ci", "userType": "ServiceAccount", "title": "bob@example.com"},
		{"userName": "jane.doe", "userType": "Employee", "title": "Engineer"},
	} {
		u["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
		srv.Must(t, http.MethodPost, "/Users", u)
	}
	files := map[string]string{}
	for _, name := range []string{"nhisync.yaml", "cmdb.csv"} {
		b, err := os.ReadFile(filepath.Join("../../examples/http-api", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	w := newWorkspace(t, files)
	t.Setenv("API_URL", srv.URL)
	t.Setenv("API_TOKEN", scimtest.Token)
	t.Setenv("HOOK_SECRET", "example-hook-secret-0123456789")
	out := w.ok(t, "check", "--connect")
	if !strings.Contains(out, "directory: incremental reads: no") || !strings.Contains(out, "conditional writes: yes (If-Match") || strings.Contains(out, scimtest.Token) {
		t.Errorf("check --connect:\n%s", out)
	}
	syncJSON(t, w)
	if got := srv.Find(t, "userName", "svc-billing")["title"]; got != "alice@example.com" {
		t.Errorf("svc-billing's title %v, want the CMDB's owner", got)
	}
	if got := srv.Find(t, "userName", "jane.doe")["title"]; got != "Engineer" {
		t.Errorf("a user outside the filter was written: %v", got)
	}
	quiet := syncJSON(t, w)
	if n := intOf(t, "quiet", quiet, "writes_applied"); n != 0 {
		t.Errorf("a quiet pass applied %d writes", n)
	}
}
