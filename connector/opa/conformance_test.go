package opa_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/opa"
	"github.com/nhisync/nhisync/connector/opa/opatest"
)

// srv is the OPA every test of this package uses: started once for the
// test binary, stopped at its end.
var srv *opatest.Server

// tokenEnv holds the token the tests' systems read (token: env:VAR).
const tokenEnv = "NHISYNC_TEST_OPA_TOKEN"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nhisync-opa-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = opatest.Start(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "the opa connector's tests need Open Policy Agent: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv(tokenEnv, opatest.Token)
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// docPath returns a fresh document path for one test, removed at its end.
func docPath(t testing.TB) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	p := "conntest/t" + hex.EncodeToString(b)
	t.Cleanup(func() { _, _, _ = srv.Do(http.MethodDelete, "/v1/data/"+p, nil) })
	return p
}

// opaHarness keeps the suite's records in a fresh document per system,
// keyed by their sysid, each an object holding every native name
// (sysid too), sets as arrays.
type opaHarness struct{}

func (opaHarness) Features() conntest.Features { return conntest.Features{} }

func object(rec map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range rec {
		if v != nil {
			out[k] = v
		}
	}
	return out
}

func (opaHarness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	p := docPath(t)
	sys.Settings = nhisync.Settings{"url": srv.URL, "path": p, "token": "env:" + tokenEnv}
	doc := map[string]any{}
	for _, r := range recs {
		doc[conntest.IDOf(sys, r)] = object(r)
	}
	srv.Must(t, http.MethodPut, "/v1/data/"+p, doc)
}

func ptr(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

func (opaHarness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	var ops []map[string]any
	for k, v := range native {
		if v == nil {
			ops = append(ops, map[string]any{"op": "remove", "path": "/" + ptr(id) + "/" + ptr(k)})
		} else {
			ops = append(ops, map[string]any{"op": "add", "path": "/" + ptr(id) + "/" + ptr(k), "value": v})
		}
	}
	srv.Must(t, http.MethodPatch, "/v1/data/"+sys.Settings.String("path"), ops)
}

func (opaHarness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	srv.Must(t, http.MethodPatch, "/v1/data/"+sys.Settings.String("path"), []map[string]any{{"op": "remove", "path": "/" + ptr(id)}})
}

func (opaHarness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	var body struct {
		Result map[string]map[string]any `json:"result"`
	}
	if err := json.Unmarshal(srv.Must(t, http.MethodGet, "/v1/data/"+sys.Settings.String("path"), nil), &body); err != nil {
		t.Fatal(err)
	}
	rec, ok := body.Result[id]
	if !ok {
		return nil
	}
	for k, v := range rec {
		if a, ok := v.([]any); ok {
			s := make([]string, len(a))
			for i, e := range a {
				s[i] = fmt.Sprint(e)
			}
			rec[k] = s
		}
	}
	return rec
}

// TestConformanceOPA runs the suite against a real OPA server.
func TestConformanceOPA(t *testing.T) {
	conntest.Run(t, "opa", opaHarness{})
}
