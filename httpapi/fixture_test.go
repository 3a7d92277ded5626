package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/httpapi"
	"github.com/nhisync/nhisync/sqlite"
)

// fixtureConfig has a field settled by people (owner: manual, its writes
// to policy held for approval) and a validation rule, so the first pass
// fills all three queues.
const fixtureConfig = `version: 1
store: sqlite:./data/nhisync.db
audit: { signing_key: ./data/audit.key }
kinds:
  service_account:
    match: [platform, name]
    create_from: [cmdb]
    fields:
      name: { type: string, required: true }
      platform: { type: string, required: true }
      owner: { type: string, resolve: manual, approve_to: [policy] }
      note: { type: string }
      secret_hint: { type: string, sensitive: true }
    rules:
      - name: note-is-short
        check: size(note) <= 12
      - name: hint-not-plain
        check: secret_hint != "plaintext"
  application:
    match: [name]
    fields:
      name: { type: string }
systems:
  cmdb:
    connector: file
    path: cmdb.csv
    kind: service_account
    fields: { name: name, platform: platform, owner: owner, note: note, secret_hint: hint }
  catalog:
    connector: file
    path: catalog.csv
    kind: service_account
    fields: { name: name, platform: platform, owner: steward }
  policy:
    connector: file
    path: policy.csv
    kind: service_account
    fields: { name: name, platform: platform, owner: owner }
`

// fixture is a workspace after one pass: a real SQLite store, real file
// systems, an engine and the API server over them.
type fixture struct {
	dir    string
	cfg    *nhisync.Config
	store  nhisync.Store
	engine *engine.Engine
	srv    *httpapi.Server
	ts     *httptest.Server
	// tokens by role name; "ana" and "bob" are both approvers.
	tokens map[string]string
}

// newFixture writes n cmdb rows (bot-000…), the catalog disagreeing on
// owner of the first three (conflicts), one long note (quarantine), runs a
// pass, and starts the API on it.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	dir := t.TempDir()
	var cmdb, catalog, policy strings.Builder
	cmdb.WriteString("name,platform,owner,note,hint\n")
	catalog.WriteString("name,platform,steward\n")
	policy.WriteString("name,platform,owner\n")
	for i := range n {
		name := "bot-" + pad3(i)
		note := "ok"
		if i == 3 {
			note = "this note is far too long"
		}
		hint := "hunter2"
		if i == 4 {
			hint = "plaintext"
		}
		cmdb.WriteString(name + ",aws,team-" + pad3(i) + "@example.com," + note + "," + hint + "\n")
		if i < 3 {
			catalog.WriteString(name + ",aws,other-" + pad3(i) + "@example.com\n")
		}
		policy.WriteString(name + ",aws,\n")
	}
	write(t, filepath.Join(dir, "nhisync.yaml"), fixtureConfig)
	write(t, filepath.Join(dir, "cmdb.csv"), cmdb.String())
	write(t, filepath.Join(dir, "catalog.csv"), catalog.String())
	write(t, filepath.Join(dir, "policy.csv"), policy.String())
	return openFixture(t, dir)
}

func openFixture(t testing.TB, dir string) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(filepath.Join(dir, "nhisync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.OpenURL(ctx, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nhisync.CloseConnectors(conns) })
	keys, err := audit.OpenKeys(cfg.SigningKey, cfg.AuditSecret, cfg.AuditPublish, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	store.SetNotary(keys.Notary)
	m := httpapi.NewMetrics(cfg, store)
	eng := engine.New(cfg, store, conns, engine.WithWriteObserver(m.ObserveWrite), engine.WithAuditSecret(keys.Secret))
	if _, err := eng.Sync(ctx, engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, cfg: cfg, store: store, engine: eng, tokens: map[string]string{}}
	for name, role := range map[string]nhisync.Role{"vera": nhisync.RoleViewer, "stan": nhisync.RoleSteward, "ana": nhisync.RoleApprover, "bob": nhisync.RoleApprover, "adam": nhisync.RoleAdmin} {
		secret, hash, err := nhisync.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateToken(ctx, &nhisync.Token{Name: name, Role: role, Hash: hash, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		f.tokens[name] = secret
	}
	f.srv, err = httpapi.New(httpapi.Options{Config: cfg, Store: store, Engine: eng, Metrics: m, Passes: &passRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	return f
}

// passRecorder counts pass requests: the service's real loop is tested in
// cmd/nhisync (serve); here the API only hands the request over.
type passRecorder struct{ n int }

func (p *passRecorder) StartPass(context.Context) (string, error) {
	p.n++
	return "pass-" + pad3(p.n), nil
}

func pad3(i int) string { return fmt.Sprintf("%03d", i) }

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// response is a decoded API answer.
type response struct {
	status int
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

// errorCode returns the code of an error-shaped body ("" if not one).
func (r response) errorCode() string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	return e.Error.Code
}

// do sends a request with the token of who ("" for none).
func (f *fixture) do(t testing.TB, who, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b}
}

// ok sends a request that must answer 200 and decodes it into v.
func (f *fixture) ok(t testing.TB, who, method, path, body string, v any) {
	t.Helper()
	r := f.do(t, who, method, path, body)
	if r.status != http.StatusOK {
		t.Fatalf("%s %s as %s: %d, want 200\n%s", method, path, who, r.status, r.body)
	}
	if v != nil {
		r.decode(t, v)
	}
}

// items lists a queue and returns its items as JSON objects.
func (f *fixture) items(t testing.TB, queue, status string) []map[string]any {
	t.Helper()
	var page struct {
		Items []map[string]any `json:"items"`
	}
	f.ok(t, "vera", "GET", "/api/v1/"+queue+"?status="+status, "", &page)
	return page.Items
}
