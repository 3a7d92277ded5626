// Package opatest runs a throwaway Open Policy Agent server for tests:
// `opa run --server` on a free loopback port, with token authentication
// and a system.authz policy that lets in only Token. Start it once per
// test binary (TestMain) and Stop it by its process id. The opa binary is
// built from its Go module by scripts/deps (go install
// github.com/open-policy-agent/opa@v1.22.3) into GOPATH/bin; a machine
// without it fails the tests that need it.
package opatest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Token is the bearer token the server accepts.
const Token = "opa-test-token-5f2c9a"

// authz lets in requests bearing Token, and nothing else.
const authz = `package system.authz

default allow := false

allow if input.identity == "` + Token + `"
`

// Server is a running OPA.
type Server struct {
	// URL is the server root, http://127.0.0.1:PORT.
	URL    string
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
	dir    string
}

// Binary finds opa: on PATH, else in GOPATH/bin.
func Binary() (string, error) {
	if p, err := exec.LookPath("opa"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "opa")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no opa binary on PATH or in GOPATH/bin; run scripts/deps (go install github.com/open-policy-agent/opa@v1.22.3)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts OPA in dir and waits until it answers.
func Start(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	policy := filepath.Join(dir, "authz.rego")
	if err := os.WriteFile(policy, []byte(authz), 0o600); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port may be taken between probe and bind
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan error, 1), dir: dir}
		if s.log, err = os.Create(filepath.Join(dir, "opa.log")); err != nil {
			return nil, err
		}
		s.cmd = exec.Command(bin, "run", "--server", "--addr", fmt.Sprintf("127.0.0.1:%d", port),
			"--authentication=token", "--authorization=basic", "--log-level=error", policy)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			s.log.Close()
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		go func() { s.exited <- s.cmd.Wait() }()
		if lastErr = s.wait(); lastErr == nil {
			return s, nil
		}
		_ = s.Stop()
	}
	return nil, lastErr
}

func (s *Server) wait() error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			b, _ := os.ReadFile(s.log.Name())
			return fmt.Errorf("opa exited: %v: %s", err, b)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/health", nil)
		req.Header.Set("Authorization", "Bearer "+Token)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("opa did not answer within 30s")
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
	return s.log.Close()
}

// Do sends one request with the token; body is JSON-encoded unless nil.
// It returns the status and the response body.
func (s *Server) Do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/json-patch+json")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
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

// PutPolicy loads a Rego module under id.
func (s *Server) PutPolicy(id, rego string) error {
	req, err := http.NewRequest(http.MethodPut, s.URL+"/v1/policies/"+id, strings.NewReader(rego))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("put policy %s: HTTP %d %s", id, res.StatusCode, b)
	}
	return nil
}
