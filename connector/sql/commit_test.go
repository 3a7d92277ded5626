package sql_test

import (
	"bytes"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
)

// cutAtCommit is a TCP proxy to a PostgreSQL server that, once a client
// sends COMMIT (pgx's simple query "commit"), passes it on and hangs up
// on the client, keeping the server's side open: the server commits,
// and the client never hears so.
type cutAtCommit struct {
	ln   net.Listener
	to   string
	mu   sync.Mutex
	cuts int
	open []net.Conn
}

func newCutAtCommit(t *testing.T, to string) *cutAtCommit {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutAtCommit{ln: ln, to: to}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.open {
			c.Close()
		}
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", to)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.open = append(p.open, client, server)
			p.mu.Unlock()
			l := &link{}
			go l.back(client, server)
			go p.forward(l, client, server)
		}
	}()
	return p
}

// link is one client's connection through the proxy; cut, once set,
// stops the server's answers from reaching the client.
type link struct {
	mu  sync.Mutex
	cut bool
}

// back passes the server's answers on to the client until the cut.
func (l *link) back(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			l.mu.Lock()
			if l.cut {
				l.mu.Unlock()
				return
			}
			_, werr := client.Write(buf[:n])
			l.mu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutCount is how many connections the proxy cut at a COMMIT.
func (p *cutAtCommit) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// commitQuery is the simple query message pgx sends to commit.
var commitQuery = append([]byte{'Q', 0, 0, 0, 11}, "commit\x00"...)

func (p *cutAtCommit) forward(l *link, client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			commit := bytes.Contains(buf[:n], commitQuery)
			if commit {
				// Cut before the COMMIT leaves: its answer never reaches
				// the client, however fast the server is.
				l.mu.Lock()
				l.cut = true
				l.mu.Unlock()
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
			if commit {
				p.mu.Lock()
				p.cuts++
				p.mu.Unlock()
				client.Close()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestApplyCommitWithoutAnswer: on PostgreSQL, an Apply whose COMMIT
// reached the server but whose answer never came back (the connection
// lost in its last round trip) fails saying whether its writes were
// applied is unknown, and the server did commit them. It said "cannot
// commit the writes" (and Apply's doc: nothing applied), when they were.
func TestApplyCommitWithoutAnswer(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutAtCommit(t, u.Host)
	u.Host = p.ln.Addr().String()
	c := ownerConnector(t, u.String(), "", "accounts")
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if n := p.cutCount(); n != 1 {
		t.Fatalf("the proxy cut %d connections at a COMMIT, want 1 (Apply: %v %v)", n, res, err)
	}
	msg := nhisync.ErrorMessage(err)
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "unknown") || !strings.Contains(msg, "stay queued") {
		t.Errorf("Apply: %v %s %q, want %s saying whether the writes were applied is unknown", res, nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
	// The server commits once the COMMIT reaches it, which may be after
	// Apply has returned: its backend is waited for.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var busy int
		if err := s.db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 0 || time.Now().After(deadline) {
			break
		}
	}
	for id, want := range map[string]string{"a": "a1@example.com", "b": "b1@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q: the server did not commit (the test's premise)", id, got, want)
		}
	}
}
