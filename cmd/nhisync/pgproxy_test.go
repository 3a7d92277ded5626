package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/nhisync/nhisync/quickstart"
)

// pgProxy forwards a loopback port to the PostgreSQL server, and can cut
// the way to it (every connection closed, new ones refused) and restore
// it on the same port: a store that becomes unreachable and comes back.
type pgProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	p := &pgProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *pgProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same port.
func (p *pgProxy) restore() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// TestReadyzFollowsThePostgresStore: serve on a PostgreSQL store answers
// /readyz 200; while the store is unreachable /readyz fails (503), and it
// answers 200 again once the store is back; serve then stops cleanly.
func TestReadyzFollowsThePostgresStore(t *testing.T) {
	bin := binary(t)
	w := newServeWorkspace(t)
	direct := newPGDatabase(t)
	proxy := newPGProxy(t, "127.0.0.1:5432")
	w.useStore(t, strings.Replace(direct, "127.0.0.1:5432", proxy.addr, 1))
	w.ok(t, "sync")
	p := startServe(t, bin, w.config)
	ready := func(want int) func() bool {
		return func() bool { code, _ := httpGet(p.url + "/readyz"); return code == want }
	}
	eventually(t, "/readyz 200 on a reachable store", p, ready(200))
	proxy.cut()
	eventually(t, "/readyz 503 while the store is unreachable", p, ready(503))
	proxy.restore()
	eventually(t, "/readyz 200 once the store is back", p, ready(200))
	if code := p.stop(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, p.log())
	}
}

// httpGet returns the status of a GET (0 when the request fails).
func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestLostStoreMidPassResumes: the way to the PostgreSQL store is cut while
// `nhisync sync` (the built binary) is in its pass. The pass fails saying
// the store is unreachable, nothing half-committed stays behind, and once
// the store is back syncing resumes and reaches what a clean SQLite run
// reaches (golden records, system contents), with the audit log verifying.
func TestLostStoreMidPassResumes(t *testing.T) {
	bin := binary(t)
	root := t.TempDir()
	pgDir, refDir := filepath.Join(root, "pg"), filepath.Join(root, "reference")
	sc, err := quickstart.Generate(pgDir, quickstart.Options{Seed: 1, Accounts: 800})
	if err != nil {
		t.Fatal(err)
	}
	copyDir(t, pgDir, refDir)
	direct := newPGDatabase(t)
	proxy := newPGProxy(t, "127.0.0.1:5432")
	w := &workspace{dir: pgDir, config: sc.ConfigPath}
	w.useStore(t, strings.Replace(direct, "127.0.0.1:5432", proxy.addr, 1))
	c := proc{bin, sc.ConfigPath}
	r := proc{bin, filepath.Join(refDir, quickstart.ConfigFile)}
	r.syncUntilQuiet(t)

	db, err := pgx.Connect(t.Context(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	cmd := exec.Command(bin, "-c", c.config, "sync")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	suffix := fmt.Sprintf("/%d", cmd.Process.Pid)
	for held := false; !held; {
		select {
		case err := <-done:
			t.Fatalf("the sync ended (%v) before it was seen holding the pass lease: %s", err, errb.String())
		case <-time.After(5 * time.Millisecond):
		}
		var holder string
		_ = db.QueryRow(t.Context(), `SELECT holder FROM leases WHERE name = 'pass'`).Scan(&holder)
		held = strings.HasSuffix(holder, suffix)
	}
	time.Sleep(50 * time.Millisecond)
	proxy.cut()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the sync succeeded with its store cut off mid-pass: %s", errb.String())
		}
		if !strings.Contains(errb.String(), "unreachable") {
			t.Errorf("the sync failed without saying the store is unreachable: %v\n%s", err, errb.String())
		}
		t.Logf("the cut-off sync: %v: %s", err, strings.TrimSpace(errb.String()))
	case <-time.After(2 * time.Minute):
		t.Fatal("the sync did not end within 2 minutes of losing its store")
	}
	proxy.restore()
	c.syncUntilQuiet(t)
	if d := cmp.Diff(goldenValues(t, r), goldenValues(t, c)); d != "" {
		t.Errorf("golden records differ from a clean run's (-reference +postgres):\n%s", d)
	}
	for _, f := range []string{quickstart.CMDBFile, quickstart.CatalogFile, quickstart.PolicyFile} {
		if want, got := readFile(t, filepath.Join(refDir, f)), readFile(t, filepath.Join(pgDir, f)); want != got {
			t.Errorf("%s differs from a clean run's (-reference +postgres):\n%s", f, lineDiff(want, got))
		}
	}
	if d := cmp.Diff(tableRows(t, filepath.Join(refDir, quickstart.IDPFile)), tableRows(t, filepath.Join(pgDir, quickstart.IDPFile))); d != "" {
		t.Errorf("%s rows differ from a clean run's:\n%s", quickstart.IDPFile, d)
	}
	if res := c.run(t, "audit", "verify"); res.code != exitOK {
		t.Errorf("audit verify: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// httpBody returns the status and body of a GET (0 when it fails).
func httpBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
