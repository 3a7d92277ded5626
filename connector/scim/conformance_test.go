package scim_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/scim"
	"github.com/nhisync/nhisync/connector/scim/scimtest"
)

// srv is the SCIM server every test of this package uses: started once
// for the test binary, stopped at its end. Tests run one at a time and
// each starts from an empty store (reset).
var srv *scimtest.Server

// tokenEnv holds the token the tests' systems read.
const tokenEnv = "NHISYNC_TEST_SCIM_TOKEN"

func TestMain(m *testing.M) {
	var err error
	srv, err = scimtest.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "the scim connector's tests need the SCIMMY test server: %v\n", err)
		os.Exit(1)
	}
	os.Setenv(tokenEnv, scimtest.Token)
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// reset empties the server's store and drops pending faults.
func reset(t testing.TB) {
	t.Helper()
	srv.Must(t, http.MethodPost, "/_reset", nil)
}

// scimHarness keeps the suite's records as Users whose top-level
// attributes are the suite's native names (the test server adds them to
// the core User schema).
type scimHarness struct{}

func (scimHarness) Features() conntest.Features { return conntest.Features{} }

func body(rec map[string]any) map[string]any {
	out := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}}
	for k, v := range rec {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		if v != nil {
			out[k] = v
		}
	}
	return out
}

func (scimHarness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	reset(t)
	sys.Settings = nhisync.Settings{"url": srv.URL, "token": "env:" + tokenEnv, "page_size": 50}
	all := make([]map[string]any, len(recs))
	for i, r := range recs {
		all[i] = body(r)
	}
	srv.Must(t, http.MethodPost, "/_load", all)
}

func (scimHarness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	res := srv.Find(t, conntest.IDName, id)
	if res == nil {
		t.Fatalf("Edit: no resource %s", id)
	}
	var ops []map[string]any
	for k, v := range native {
		if v == nil {
			ops = append(ops, map[string]any{"op": "remove", "path": k})
		} else {
			ops = append(ops, map[string]any{"op": "replace", "path": k, "value": v})
		}
	}
	srv.Must(t, http.MethodPatch, "/Users/"+res["id"].(string), map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops})
}

func (scimHarness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	if res := srv.Find(t, conntest.IDName, id); res != nil {
		srv.Must(t, http.MethodDelete, "/Users/"+res["id"].(string), nil)
	}
}

func (scimHarness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	res := srv.Find(t, conntest.IDName, id)
	if res == nil {
		return nil
	}
	for k, v := range res {
		if a, ok := v.([]any); ok {
			s := make([]string, len(a))
			for i, e := range a {
				s[i] = fmt.Sprint(e)
			}
			res[k] = s
		}
	}
	return res
}

// TestConformanceSCIM runs the suite against the SCIMMY server, the id
// being the sysid attribute (found by filter) and Changes filtering on
// meta.lastModified.
func TestConformanceSCIM(t *testing.T) {
	conntest.Run(t, "scim", scimHarness{})
}
