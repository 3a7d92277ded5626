package http_test

import (
	"net/http"
	"testing"

	"github.com/nhisync/nhisync"
	nhttp "github.com/nhisync/nhisync/connector/http"
	"github.com/nhisync/nhisync/connector/scim/scimtest"
)

// patchOp is a SCIM PatchOp written as an update body template: the http
// connector writes to a SCIM server as to any REST API.
const patchOp = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
{{- $first := true}}{{range $k, $v := .Fields}}{{if not $first}},{{end}}{{$first = false -}}
{"op": "replace", "path": "{{if eq $k "owner"}}title{{else}}userName{{end}}", "value": {{json $v}}}
{{- end}}]}`

// TestAgainstSCIMServer uses the real SCIM server (SCIMMY) as a plain
// REST API: list with an items path, GET with ETags, a PatchOp body
// template, and If-Match making a concurrent change stale.
func TestAgainstSCIMServer(t *testing.T) {
	srv, err := scimtest.Start()
	if err != nil {
		t.Fatalf("this test needs the SCIMMY test server (Node.js, npm ci): %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	srv.Must(t, http.MethodPost, "/_reset", nil)
	for _, u := range []map[string]any{
		{"userName": "svc-a", "title": "alice"},
		{"userName": "svc-b", "title": "bob"},
	} {
		u["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
		srv.Must(t, http.MethodPost, "/Users", u)
	}
	k := &nhisync.Kind{Name: "service_account", Match: []string{"name"}, Fields: map[string]*nhisync.Field{
		"name": {Name: "name", Type: nhisync.TypeString}, "owner": {Name: "owner", Type: nhisync.TypeString}}, FieldNames: []string{"name", "owner"}}
	sys := &nhisync.System{Name: "idp", Connector: "http", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
		Fields: []*nhisync.Mapping{
			{Field: "name", Name: "userName", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
			{Field: "owner", Name: "title", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
		},
		Settings: nhisync.Settings{
			"url":    srv.URL,
			"auth":   map[string]any{"token": scimtest.Token},
			"list":   map[string]any{"path": "/Users", "items": "Resources", "query": map[string]any{"count": "1000"}},
			"update": map[string]any{"method": "PATCH", "body": patchOp, "content_type": "application/scim+json"},
		}}
	c, err := nhttp.New(sys, k)
	if err != nil {
		t.Fatal(err)
	}
	c2 := nhisync.Connector(c)
	byName := map[string]string{}
	owners := map[string]string{}
	if err := c2.Snapshot(t.Context(), func(o nhisync.Observation) error {
		byName[o.Values[0].Text()] = o.ID
		owners[o.ID] = o.Values[1].Text()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a, b := byName["svc-a"], byName["svc-b"]
	if a == "" || owners[a] != "alice" || owners[b] != "bob" {
		t.Fatalf("read %v %v", byName, owners)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: a, Changes: []nhisync.Change{
		{Field: "owner", Old: nhisync.Str("alice"), New: nhisync.Str("carol")},
		{Field: "name", Old: nhisync.Str("svc-a"), New: nhisync.Str("svc-a2")},
	}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write: %v %+v", err, res)
	}
	if got := srv.Find(t, "userName", "svc-a2")["title"]; got != "carol" {
		t.Errorf("SCIM holds title %v after the write", got)
	}
	if caps := c.Capabilities(t.Context()); !caps.ConditionalWrites {
		t.Errorf("SCIMMY gives ETags, but capabilities say %+v", caps)
	}
	srv.ChangeBeforeWrite(t, b, map[string]any{"title": "mallory"})
	res, err = c.Apply(t.Context(), []nhisync.Write{{ID: b, Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("bob"), New: nhisync.Str("dave")}}}})
	if err != nil || res[0].Status != nhisync.WriteStale {
		t.Fatalf("write under a concurrent change: %v %+v, want stale", err, res)
	}
	if got := srv.Find(t, "userName", "svc-b")["title"]; got != "mallory" {
		t.Errorf("the concurrent change was overwritten: title %v", got)
	}
}
