package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	nhttp "github.com/nhisync/nhisync/connector/http"
)

const (
	webhookAPIToken = "api-token-5ecret-0123456789"
	webhookSecret   = "hook-5ecret-0123456789abcdef"
)

const webhookConfig = `version: 1
store: sqlite:./data/nhisync.db
audit: { signing_key: ./data/audit.key }
reconcile: 1h
kinds:
  service_account:
    match: [name]
    create_from: [catalog]
    fields:
      name:  { type: string, required: true }
      owner: { type: string, authority: [catalog] }
systems:
  catalog:
    connector: http
    kind: service_account
    url: ${API_URL}
    auth: { token: '${API_TOKEN}' }
    list: { path: /accounts, items: data }
    webhook: { path: /hooks/catalog, secret: '${HOOK_SECRET}' }
    direction: read
    poll: 1h
    fields: { name: name, owner: owner }
  cmdb:
    connector: file
    kind: service_account
    path: cmdb.csv
    id: sys_id
    fields: { name: name, owner: owner }
`

// catalogAPI is a tiny JSON API holding owners by name.
type catalogAPI struct {
	mu     sync.Mutex
	owners map[string]string
}

func (c *catalogAPI) set(name, owner string) {
	c.mu.Lock()
	c.owners[name] = owner
	c.mu.Unlock()
}

func (c *catalogAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+webhookAPIToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var items []map[string]string
	for n, o := range c.owners {
		items = append(items, map[string]string{"id": n, "name": n, "owner": o})
	}
	w.Header().Set("Content-Type", "application/json")
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/accounts/"); ok {
		json.NewEncoder(w).Encode(map[string]string{"id": id, "name": id, "owner": c.owners[id]})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"data": items})
}

// TestServeWebhook: `nhisync serve` mounts the http connector's webhook
// on its address; a call with a bad signature is refused (401) and
// changes nothing, a signed one makes the service read the catalog, so
// the owner changed there reaches the CMDB without any command or poll.
// Neither check --connect, the serve log nor the audit log shows the
// token or the webhook secret.
func TestServeWebhook(t *testing.T) {
	bin := binary(t)
	api := &catalogAPI{owners: map[string]string{"svc-a": "alice", "svc-b": "bob"}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("API_URL", srv.URL+"/v1")
	t.Setenv("API_TOKEN", webhookAPIToken)
	t.Setenv("HOOK_SECRET", webhookSecret)
	w := newWorkspace(t, map[string]string{
		"nhisync.yaml": webhookConfig,
		"cmdb.csv":     "sys_id,name,owner\nC1,svc-a,alice\nC2,svc-b,bob\n",
	})
	for _, out := range []string{"table", "json"} {
		r := w.run(t, "check", "--connect", "-o", out)
		if r.code != exitOK {
			t.Fatalf("check --connect: %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if all := r.stdout + r.stderr; strings.Contains(all, webhookAPIToken) || strings.Contains(all, webhookSecret) {
			t.Errorf("check -o %s shows a secret:\n%s", out, all)
		}
	}
	w.ok(t, "sync")
	p := startServe(t, bin, w.config)
	eventually(t, "the first pass", p, func() bool { return strings.Contains(p.log(), `"msg":"pass done"`) })

	api.set("svc-b", "carol")
	post := func(body, sig string) int {
		t.Helper()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		if sig == "" {
			sig = nhttp.Sign([]byte(webhookSecret), ts, []byte(body))
		}
		req, _ := http.NewRequest(http.MethodPost, p.url+"/hooks/catalog", strings.NewReader(body))
		req.Header.Set(nhttp.HeaderTimestamp, ts)
		req.Header.Set(nhttp.HeaderSignature, sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(`{"ids":["svc-b"]}`, "sha256=00"); code != http.StatusUnauthorized {
		t.Errorf("bad signature: HTTP %d, want 401", code)
	}
	if code := post(`{"ids":["svc-b"]}`, ""); code != http.StatusAccepted {
		t.Fatalf("signed webhook: HTTP %d, want 202", code)
	}
	eventually(t, "the catalog's owner in the CMDB", p, func() bool {
		b, _ := os.ReadFile(filepath.Join(w.dir, "cmdb.csv"))
		return strings.Contains(string(b), "C2,svc-b,carol")
	})
	if code := p.stop(t); code != 0 {
		t.Errorf("serve exited %d\n%s", code, p.log())
	}
	if l := p.log(); strings.Contains(l, webhookAPIToken) || strings.Contains(l, webhookSecret) {
		t.Errorf("the serve log shows a secret:\n%s", l)
	}
	if a := w.ok(t, "audit", "export"); strings.Contains(a, webhookAPIToken) || strings.Contains(a, webhookSecret) {
		t.Error("the audit log holds a secret")
	}
}
