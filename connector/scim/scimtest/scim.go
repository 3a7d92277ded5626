// Package scimtest runs a throwaway SCIM 2.0 server for tests: SCIMMY
// (an independent JavaScript implementation of RFC 7643/7644) behind
// express, in memory, on a free loopback port, with If-Match enforced and
// a fault hook (connector/scim/testdata/server.mjs). Start it once per
// test binary (TestMain) and Stop it by its process id. Its npm packages
// are installed with `npm ci` from the committed package-lock.json the
// first time (node and npm must be on PATH).
package scimtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Token is the bearer token the server accepts; Username and Password
// are the basic credentials it also accepts.
const (
	Token    = "scim-test-token-8d1e77"
	Username = "nhisync"
	Password = "scim-test-password-41b0"
)

// Server is a running SCIM server.
type Server struct {
	// Root is http://127.0.0.1:PORT; URL the SCIM base, Root + /scim/v2.
	Root, URL string
	cmd       *exec.Cmd
	exited    chan error
}

// Dir is the folder holding server.mjs and package.json.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Install runs `npm ci` in Dir when node_modules is missing. Test
// binaries running at once take turns (a lock file beside it).
func Install() error {
	dir := Dir()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "scimmy-routers")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v: %s", dir, err, out)
	}
	return nil
}

// Start installs the packages if needed, starts the server and waits
// until it listens.
func Start() (*Server, error) {
	if err := Install(); err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("no node on PATH (the SCIM test server runs on Node.js)")
	}
	s := &Server{exited: make(chan error, 1)}
	s.cmd = exec.Command(node, filepath.Join(Dir(), "server.mjs"))
	s.cmd.Dir = Dir()
	s.cmd.Env = append(os.Environ(), "SCIM_PORT=0", "SCIM_TOKEN="+Token, "SCIM_BASIC="+Username+":"+Password)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
		close(port)
		s.exited <- s.cmd.Wait()
	}()
	select {
	case p, ok := <-port:
		if !ok {
			return nil, fmt.Errorf("the SCIM server exited: %s", stderr.String())
		}
		s.Root = "http://127.0.0.1:" + p
		s.URL = s.Root + "/scim/v2"
		return s, nil
	case <-time.After(30 * time.Second):
		_ = s.Stop()
		return nil, errors.New("the SCIM server did not listen within 30s")
	}
}

// Stop ends the server by its process id and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return nil
}

// Do sends one request to the SCIM base (path relative to it) with the
// token, body JSON-encoded unless nil; it returns status and body.
func (s *Server) Do(method, path string, body any, header ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := s.URL + path
	if strings.HasPrefix(path, "/_") {
		u = s.Root + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
		if strings.HasPrefix(path, "/_") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// Must is Do failing t on a transport error or a status of 300 and above.
func (s *Server) Must(t testing.TB, method, path string, body any) []byte {
	t.Helper()
	code, b, err := s.Do(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	if code >= 300 {
		t.Fatalf("%s %s: HTTP %d %s", method, path, code, b)
	}
	return b
}

// Find returns the Users resource whose attribute attr equals value (nil
// when there is none).
func (s *Server) Find(t testing.TB, attr, value string) map[string]any {
	t.Helper()
	q, _ := json.Marshal(value)
	var page struct {
		Resources []map[string]any `json:"Resources"`
	}
	b := s.Must(t, http.MethodGet, "/Users?count=2&filter="+urlQuery(attr+" eq "+string(q)), nil)
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	switch len(page.Resources) {
	case 0:
		return nil
	case 1:
		return page.Resources[0]
	}
	t.Fatalf("%d Users have %s %s", len(page.Resources), attr, value)
	return nil
}

// Fault asks the server to answer the next times requests with status
// (Retry-After retryAfter seconds when >= 0), or to wait delayMs first.
func (s *Server) Fault(t testing.TB, status, times, retryAfter, delayMs int) {
	t.Helper()
	f := map[string]any{"status": status, "times": times, "delayMs": delayMs}
	if retryAfter >= 0 {
		f["retryAfter"] = retryAfter
	}
	s.Must(t, http.MethodPost, "/_fault", f)
}

// Raw stores a resource as given, bypassing validation: it appears in
// list responses (to test records that cannot be decoded).
func (s *Server) Raw(t testing.TB, res map[string]any) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_fault", map[string]any{"raw": res})
}

// ChangeAfterRead makes the server change the next resource read by id
// right after answering (attrs set, version bumped): a concurrent change
// between a connector's read and its write.
func (s *Server) ChangeAfterRead(t testing.TB, attrs map[string]any) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_fault", map[string]any{"changeAfterRead": attrs})
}

// ChangeBeforeWrite makes the server change resource id (its SCIM id)
// just before the next PATCH of it is handled: attrs set, version bumped,
// as if someone changed it between a connector's read and its write.
func (s *Server) ChangeBeforeWrite(t testing.TB, id string, attrs map[string]any) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_change_before_write", map[string]any{"id": id, "attrs": attrs})
}

// DeleteFirstAfterNext makes the server delete its first stored resource
// right after answering the next request (a list moving while it is paged).
func (s *Server) DeleteFirstAfterNext(t testing.TB) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_fault", map[string]any{"deleteFirstAfter": true})
}

// NoLastModifiedFilter makes the server refuse filters on
// meta.lastModified (400 invalidFilter), as some SCIM services do.
func (s *Server) NoLastModifiedFilter(t testing.TB) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_fault", map[string]any{"noLastModified": true})
}

// ClearFaults drops pending faults and raw resources.
func (s *Server) ClearFaults(t testing.TB) {
	t.Helper()
	s.Must(t, http.MethodPost, "/_fault", map[string]any{"clear": true})
}

func urlQuery(s string) string { return url.QueryEscape(s) }
