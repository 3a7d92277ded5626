package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	nsql "github.com/nhisync/nhisync/connector/sql"
)

const serveConfig = `version: 1
store: sqlite:./data/nhisync.db
audit: { signing_key: ./data/audit.key }
reconcile: 1h
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    fields:
      name: { type: string, required: true }
      platform: { type: string, required: true }
      owner: { type: string }
      lifecycle: { type: enum, values: [active, suspended, decommissioned], resolve: strictest }
      policy_state: { type: string, authority: [catalog], approve_to: [policy] }
systems:
  idp:
    connector: sql
    kind: service_account
    dsn: sqlite:./idp.db
    table: accounts
    id: id
    updated_column: updated_at
    poll: 300ms
    fields: { name: name, platform: platform, lifecycle: status }
  cmdb:
    connector: file
    kind: service_account
    path: cmdb.csv
    id: sys_id
    fields: { name: name, platform: platform, owner: owner, lifecycle: status }
  catalog:
    connector: file
    kind: service_account
    path: catalog.json
    fields: { name: name, platform: platform, owner: steward, policy_state: policy }
  policy:
    connector: file
    kind: service_account
    path: policy.json
    fields: { name: name, platform: platform, policy_state: state }
`

// servedProcess is `nhisync serve` running as a subprocess.
type servedProcess struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (p *servedProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startServe starts the binary with serve on a free loopback port and
// waits (bounded) for its "serving" log line.
func startServe(t *testing.T, bin, config string, extra ...string) *servedProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-c", config, "serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &servedProcess{cmd: cmd, done: make(chan error, 1)}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "serving" {
				urls <- m["url"].(string)
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.url = <-urls:
	case err := <-p.done:
		t.Fatalf("serve exited before serving: %v\n%s", err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\n%s", p.log())
	}
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *servedProcess) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM\n%s", p.log())
		return -1
	}
}

// eventually polls cond until it holds, failing after a bounded wait.
func eventually(t *testing.T, what string, p *servedProcess, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s\nserve log:\n%s", what, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fileHas(path, s string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), s)
	}
}

// newServeWorkspace writes the config and four systems: an IdP table in
// SQLite, a CMDB CSV, a catalog and a policy engine as JSON.
func newServeWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := newWorkspace(t, map[string]string{
		"nhisync.yaml": serveConfig,
		"cmdb.csv":     "sys_id,name,platform,owner,status\nc1,bot-a,aws,ana@example.com,active\nc2,bot-b,aws,bo@example.com,active\n",
		"catalog.json": `[{"name":"bot-a","platform":"aws","steward":"ana@example.com","policy":"monitor"},{"name":"bot-b","platform":"aws","steward":"bo@example.com","policy":"monitor"}]`,
		"policy.json":  `[{"name":"bot-a","platform":"aws","state":"monitor"},{"name":"bot-b","platform":"aws","state":"monitor"}]`,
	})
	db := idpDB(t, w)
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, platform TEXT, status TEXT, updated_at TEXT)`,
		`INSERT INTO accounts VALUES ('i1', 'bot-a', 'aws', 'active', '2026-01-01T00:00:00Z'), ('i2', 'bot-b', 'aws', 'active', '2026-01-01T00:00:00Z')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func idpDB(t *testing.T, w *workspace) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", w.path("idp.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestServeEndToEnd runs the built binary with serve: a change in the CMDB
// CSV and one in the IdP's SQLite table reach the other systems with
// nobody running a command; a held write is approved through the API and
// lands; SIGTERM exits 0 and no token appears in the log.
// servedWorkspace starts serve on a new serve workspace (newServeWorkspace)
// holding a token of name and role, and waits for its first pass.
func servedWorkspace(t *testing.T, name, role string) (*workspace, *servedProcess, tokenJSON) {
	t.Helper()
	bin := binary(t)
	w := newServeWorkspace(t)
	var tok tokenJSON
	w.json(t, &tok, "token", "create", name, "--role", role)
	p := startServe(t, bin, w.config)
	eventually(t, "the first pass", p, func() bool { return strings.Contains(p.log(), `"msg":"pass done"`) })
	return w, p, tok
}

func TestServeEndToEnd(t *testing.T) {
	w, p, tok := servedWorkspace(t, "carol", "approver")

	// This replica runs every feed: it says so in /metrics and /systems.
	eventually(t, "the feed leases in /metrics", p, func() bool {
		resp, err := http.Get(p.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `nhisync_leases_held{lease="feed/cmdb"} 1`) && strings.Contains(string(b), `nhisync_leases_held{lease="feed/idp"} 1`)
	})

	// 1. The CMDB changes an owner: the catalog (which maps owner) gets it.
	csv := w.path("cmdb.csv")
	b, _ := os.ReadFile(csv)
	write := func(path, content string) {
		tmp := path + ".edit"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(csv, strings.Replace(string(b), "ana@example.com", "zed@example.com", 1))
	eventually(t, "the CMDB's new owner in the catalog", p, fileHas(w.path("catalog.json"), "zed@example.com"))

	// 2. The IdP suspends bot-b in its table: the CMDB (which maps
	// lifecycle) gets it.
	db := idpDB(t, w)
	if _, err := db.Exec(`UPDATE accounts SET status = 'suspended', updated_at = '2026-06-01T00:00:00Z' WHERE id = 'i2'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	eventually(t, "the IdP's suspension in the CMDB", p, fileHas(csv, "c2,bot-b,aws,bo@example.com,suspended"))

	// 3. The catalog enforces bot-a's policy: the write to the policy
	// engine is held until carol approves it through the API.
	cat, _ := os.ReadFile(w.path("catalog.json"))
	write(w.path("catalog.json"), strings.Replace(string(cat), `"monitor"`, `"enforced"`, 1))
	api := func(method, path string) (int, []byte) {
		req, _ := http.NewRequest(method, p.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	var held []map[string]any
	eventually(t, "an approval for the policy write", p, func() bool {
		status, body := api("GET", "/api/v1/approvals")
		var page struct {
			Items []map[string]any `json:"items"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &page) != nil {
			return false
		}
		held = page.Items
		return len(held) == 1
	})
	if fileHas(w.path("policy.json"), "enforced")() {
		t.Fatal("the policy engine holds the write before anyone approved it")
	}
	if status, body := api("GET", "/api/v1/systems"); status != http.StatusOK || !strings.Contains(string(body), `"feed_holder"`) {
		t.Errorf("/systems does not name the feeds' holder: %d %s", status, body)
	}
	status, body := api("POST", fmt.Sprintf("/api/v1/approvals/%d/approve", int64(held[0]["id"].(float64))))
	if status != http.StatusOK {
		t.Fatalf("approve: %d %s", status, body)
	}
	eventually(t, "the approved write in the policy engine", p, fileHas(w.path("policy.json"), "enforced"))

	if code := p.stop(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0\n%s", code, p.log())
	}
	logs := p.log()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}
	if strings.Contains(logs, tok.Token) {
		t.Error("the log holds a token")
	}
	// The lease is released: a sync runs at once.
	w.ok(t, "sync")
	w.ok(t, "audit", "verify")
}

// TestQuickstartServe: `quickstart --serve` makes the demo, prints the
// console URL and an admin token, and serves: the token works on the API
// and the console's login page answers.
func TestQuickstartServe(t *testing.T) {
	bin := binary(t)
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, "quickstart", "--serve", "--dir", dir, "--addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var url string
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if u, ok := strings.CutPrefix(line, "Serving the console at "); ok {
				url = strings.TrimSuffix(u, "/login")
			}
			if url != "" && strings.HasPrefix(line, "nhs_") {
				found <- [2]string{url, line}
			}
		}
		done <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	var got [2]string
	select {
	case got = <-found:
	case err := <-done:
		t.Fatalf("quickstart --serve exited: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("quickstart --serve printed no URL and token\n%s", stderr.String())
	}
	url, token := got[0], got[1]
	req, _ := http.NewRequest("GET", url+"/api/v1/systems", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"cmdb"`) {
		t.Errorf("systems with the printed token: %d %s", resp.StatusCode, body)
	}
	if resp, err := http.Get(url + "/login"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("login page: %v %v", resp, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("quickstart --serve after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("quickstart --serve did not stop")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nhisync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: with --tls-cert/--tls-key the binary serves HTTPS, and the
// console's session cookie is Secure.
func TestServeTLS(t *testing.T) {
	bin := binary(t)
	w := newServeWorkspace(t)
	var tok tokenJSON
	w.json(t, &tok, "token", "create", "tess", "--role", "viewer")
	cert, key, pool := selfSigned(t, t.TempDir())
	p := startServe(t, bin, w.config, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(p.url, "https://") {
		t.Fatalf("served at %s, want https", p.url)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(p.url+"/login", url.Values{"token": {tok.Token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(ck, "Secure") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Errorf("login over TLS: %d, cookie %q; want Secure, HttpOnly, SameSite=Strict", resp.StatusCode, ck)
	}
	if r := w.run(t, "serve", "--tls-cert", cert); r.code != exitInvalid {
		t.Errorf("--tls-cert without --tls-key: exit %d, want 2", r.code)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// TestServeLoggerReachesConnectors: the app serve opens (openServing)
// hands serve's logger to every connector that logs (the SQL connector's
// batch-read fallback), so those lines go where the service's own go, in
// its format, not to the process's default logger.
func TestServeLoggerReachesConnectors(t *testing.T) {
	w := newServeWorkspace(t)
	g := &globals{stdout: io.Discard, stderr: io.Discard, config: w.config}
	var buf bytes.Buffer
	log := newLogger(&buf, "json")
	a, err := openServing(t.Context(), g, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, ok := a.conns["idp"].(*nsql.CursorConnector) // the idp has an updated_column
	if !ok {
		t.Fatalf("idp's connector is a %T, want *sql.CursorConnector", a.conns["idp"])
	}
	if c.Log != log {
		t.Fatal("the SQL connector did not get serve's logger")
	}
}

// TestServeKeepsLinkHeads: serve's engine keeps the link heads a full
// pass loaded for the next (engine.WithHeadCache): once a full pass found
// nothing to change, the next full pass compares every system's records
// with the heads kept, and its "pass done" line names those systems.
// (engine's TestKeptHeads shows what such a pass finds, and when it loads
// the heads again.)
func TestServeKeepsLinkHeads(t *testing.T) {
	_, p, tok := servedWorkspace(t, "root", "admin")
	eventually(t, "a full pass with the link heads kept", p, func() bool {
		if strings.Contains(p.log(), `"heads_kept"`) {
			return true
		}
		req, _ := http.NewRequest("POST", p.url+"/api/v1/sync", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusConflict {
			t.Fatalf("POST /api/v1/sync: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	if !strings.Contains(p.log(), `"heads_kept":["idp","cmdb","catalog","policy"]`) {
		t.Errorf("the pass with kept heads does not name every system:\n%s", p.log())
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0\n%s", code, p.log())
	}
}
