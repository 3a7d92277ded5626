package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
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
