package sql_test

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// cutAtCommit is a TCP proxy to a PostgreSQL server that, once a client
// sends COMMIT (pgx's simple query "commit"; commit, another driver's),
// passes it on and hangs up on the client (or, hang set, keeps the
// client waiting), keeping the server's side open: the server commits,
// and the client never hears so.
type cutAtCommit struct {
	ln     net.Listener
	to     string
	hang   bool
	commit []byte
	mu     sync.Mutex
	cuts   int
	open   []net.Conn
}

func newCutAtCommit(t *testing.T, to string) *cutAtCommit {
	return newProxy(t, to, false)
}

// newProxy is newCutAtCommit, keeping a client whose COMMIT it passed on
// waiting when hang is set.
func newProxy(t *testing.T, to string, hang bool) *cutAtCommit {
	return newProxyAt(t, to, hang, commitQuery)
}

// newProxyAt is newProxy for a server whose clients send commit, the
// bytes of their COMMIT's message.
func newProxyAt(t *testing.T, to string, hang bool, commit []byte) *cutAtCommit {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutAtCommit{ln: ln, to: to, hang: hang, commit: commit}
	t.Cleanup(p.close)
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

// close stops the proxy and hangs up on every client and server.
func (p *cutAtCommit) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
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

// mysqlCommitQuery is the packet the MySQL driver sends to commit: a
// COM_QUERY (3) "COMMIT", 7 bytes long, sequence number 0.
var mysqlCommitQuery = append([]byte{7, 0, 0, 0, 3}, "COMMIT"...)

func (p *cutAtCommit) forward(l *link, client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			commit := bytes.Contains(buf[:n], p.commit)
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
				if !p.hang {
					client.Close()
				}
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
	// Apply has returned: its backend is waited for. Once, in CI beside
	// the race run, the rows were still not committed when a 10 s wait
	// ended, so the wait is a minute; a server that never commits still
	// fails the test, which then names what its other backends were
	// doing.
	var states string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if err := s.db.QueryRow(`SELECT coalesce(string_agg(state || coalesce(' (' || wait_event_type || ' ' || wait_event || ')', ''), ', '), '')
			FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&states); err != nil {
			t.Fatal(err)
		}
		if states == "" || time.Now().After(deadline) {
			break
		}
	}
	for id, want := range map[string]string{"a": "a1@example.com", "b": "b1@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q: the server did not commit (the test's premise); other backends: %q", id, got, want, states)
		}
	}
}

// beforeCommit is a driver.Connector whose transactions run before on
// their own connection just before their COMMIT goes to the real server:
// how a test makes something happen at that moment (a context ending, a
// lock taken elsewhere).
type beforeCommit struct {
	driver.Connector
	before func(conn driver.Conn)
}

func (b *beforeCommit) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := b.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &beforeCommitConn{rewritingConn: &rewritingConn{Conn: c, rewrite: func(q string) string { return q }}, before: b.before}, nil
}

type beforeCommitConn struct {
	*rewritingConn
	before func(conn driver.Conn)
}

func (c *beforeCommitConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.rewritingConn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &beforeCommitTx{Tx: tx, before: func() { c.before(c.Conn) }}, nil
}

type beforeCommitTx struct {
	driver.Tx
	before func()
}

func (t *beforeCommitTx) Commit() error {
	t.before()
	return t.Tx.Commit()
}

// hookCommit hands c a pool to the server s whose transactions run before
// just before their COMMIT.
func hookCommit(t *testing.T, s *server, c nhisync.Connector, before func(conn driver.Conn)) {
	t.Helper()
	nsql.SetDB(c.(*nsql.Connector), stdsql.OpenDB(&beforeCommit{Connector: serverConnector(t, s), before: before}))
}

// backupLockConns opens admin, a second pool to the MariaDB server of
// dsn, and lock, one connection of it to take the backup lock on, both
// closed when t ends.
func backupLockConns(t *testing.T, dsn string) (admin *stdsql.DB, lock *stdsql.Conn) {
	t.Helper()
	admin = openMySQL(t, dsn)
	t.Cleanup(func() { admin.Close() })
	lock, err := admin.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	return admin, lock
}

// TestApplyCommitKilled: on MariaDB a COMMIT answered by a kill of its
// statement (KILL QUERY: ER_QUERY_INTERRUPTED 1317) fails the Apply
// saying whether its writes were applied is unknown: a kill may land
// after the commit point (a semi-synchronous replica's ACK awaited) as
// well as before it. Here the COMMIT waits for the backup lock another
// session holds (BACKUP STAGE BLOCK_COMMIT, the server's, held only
// until the COMMIT is seen waiting) and is killed there, before its
// commit point: the server committed nothing, but its error says no
// more than that the COMMIT was killed. It was read as refused: "cannot
// commit the writes", nothing applied.
func TestApplyCommitKilled(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := ownerConnector(t, s.dsn, "", "accounts")
	admin, lock := backupLockConns(t, s.dsn)
	done := make(chan error, 1)
	hookCommit(t, s, c, func(conn driver.Conn) {
		id, err := connectionID(conn)
		if err != nil {
			done <- err
			return
		}
		// The backup lock is the server's: held only until the
		// COMMIT is seen waiting for it (and killed).
		for _, q := range []string{"SET SESSION lock_wait_timeout = 10", "BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"} {
			if _, err := lock.ExecContext(t.Context(), q); err != nil {
				done <- fmt.Errorf("%s: %w", q, err)
				return
			}
		}
		go func() {
			defer lock.ExecContext(context.Background(), "BACKUP STAGE END")
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				var n int
				if err := admin.QueryRow("SELECT count(*) FROM information_schema.processlist WHERE id = ? AND info = 'COMMIT' AND state LIKE '%backup lock%'", id).Scan(&n); err != nil {
					done <- err
					return
				}
				if n == 1 {
					_, err := admin.Exec(fmt.Sprintf("KILL QUERY %d", id))
					// The lock goes only once the COMMIT has left its
					// wait: a KILL QUERY returns before the killed
					// statement sees it, and the lock let go at once
					// could let the COMMIT through first.
					for err == nil && n == 1 && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond)
						err = admin.QueryRow("SELECT count(*) FROM information_schema.processlist WHERE id = ? AND info = 'COMMIT' AND state LIKE '%backup lock%'", id).Scan(&n)
					}
					done <- err
					return
				}
			}
			done <- fmt.Errorf("the COMMIT of connection %d never waited for the backup lock", id)
		}()
	})
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if herr := <-done; herr != nil {
		t.Fatalf("the kill: %v (Apply: %v %v)", herr, res, err)
	}
	if err == nil || !strings.Contains(err.Error(), "1317") {
		t.Fatalf("Apply: %v %v, not the kill's error 1317 (the test's premise)", res, err)
	}
	msg := nhisync.ErrorMessage(err)
	if nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "unknown") || !strings.Contains(msg, "stay queued") {
		t.Errorf("Apply: %s %q, want %s saying whether the writes were applied is unknown", nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
}

// connectionID is the MySQL/MariaDB session id of conn.
func connectionID(conn driver.Conn) (int64, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(context.Background(), "SELECT CONNECTION_ID()", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		return 0, err
	}
	switch id := v[0].(type) {
	case int64:
		return id, nil
	case []byte:
		return strconv.ParseInt(string(id), 10, 64)
	}
	return 0, fmt.Errorf("CONNECTION_ID() gave %T", v[0])
}

// TestApplyCommitAsContextEnds: a context that ends just as the Apply
// sends its COMMIT (here: as the driver is handed it) leaves nothing
// unknown: the COMMIT goes out and its answer is waited for, and Apply
// says the writes were applied, as they were. On PostgreSQL the driver
// saw the context done and sent nothing, and Apply said whether the
// writes were applied was unknown, though nothing was committed.
func TestApplyCommitAsContextEnds(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *server{"mariadb": mysqlDatabase, "postgres": pgDatabase} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			typ := "text"
			if s.kind == "mysql" {
				typ = "VARCHAR(64)"
			}
			s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" "+typ+" PRIMARY KEY, "+conntest.OwnerName+" "+typ+")")
			s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
			c := ownerConnector(t, s.dsn, "", "accounts")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			hookCommit(t, s, c, func(driver.Conn) { cancel() })
			res, err := c.Apply(ctx, []nhisync.Write{
				ownerWrite("a", "old@example.com", "a1@example.com"),
				ownerWrite("b", "old@example.com", "b1@example.com"),
			})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for i, id := range []string{"a", "b"} {
				if res[i].Status != nhisync.WriteApplied {
					t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, nhisync.WriteApplied)
				}
				if got, want := s.owner(t, "accounts", id), id+"1@example.com"; got != want {
					t.Errorf("row %s: owner %q, want %q", id, got, want)
				}
			}
		})
	}
}

// TestApplyCommitTimesOut: on PostgreSQL a COMMIT whose answer does not
// come is waited for up to the timeout setting, not for as long as ctx
// lasts: Apply fails once it has run out (ctx still live), saying
// whether the writes were applied is unknown. The COMMIT was bounded by
// ctx alone: a server that never answered held the Apply until ctx
// ended, or forever.
func TestApplyCommitTimesOut(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host, true)
	u.Host = p.ln.Addr().String()
	c := timeoutConnector(t, u.String(), "accounts")
	res, err := applyBounded(t, c, "its COMMIT was not bounded by the timeout setting")
	if n := p.cutCount(); n != 1 {
		t.Fatalf("the proxy held %d COMMITs, want 1 (Apply: %v %v)", n, res, err)
	}
	msg := nhisync.ErrorMessage(err)
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "unknown") {
		t.Errorf("Apply: %v %s %q, want %s saying whether the writes were applied is unknown", res, nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
}

// sessionGone waits up to 10 s for the MariaDB session id to be gone
// from the server's process list (its kill done), and reports whether it
// went.
func sessionGone(t *testing.T, admin *stdsql.DB, id int64) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM information_schema.processlist WHERE id = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestApplyCommitTimesOutMariaDB: on MariaDB a COMMIT that gets no
// answer is waited for up to the timeout setting, not for as long as ctx
// lasts: then its session is killed, and Apply fails (ctx still live),
// saying whether the writes were applied is unknown. Here the COMMIT
// waits for the backup lock another session holds (BACKUP STAGE
// BLOCK_COMMIT) for longer than the test: the kill ends it before its
// commit point, and nothing is committed. The driver runs its COMMIT on
// no context: it waited for the lock as long as the lock was held.
func TestApplyCommitTimesOutMariaDB(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := timeoutConnector(t, s.dsn, "accounts")
	admin, lock := backupLockConns(t, s.dsn)
	var id int64
	var hookErr error
	hookCommit(t, s, c, func(conn driver.Conn) {
		if id, hookErr = connectionID(conn); hookErr != nil {
			return
		}
		for _, q := range []string{"BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"} {
			if _, hookErr = lock.ExecContext(t.Context(), q); hookErr != nil {
				hookErr = fmt.Errorf("%s: %w", q, hookErr)
				return
			}
		}
	})
	defer lock.ExecContext(context.Background(), "BACKUP STAGE END")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := c.Apply(ctx, []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if hookErr != nil {
		t.Fatalf("the backup lock: %v (Apply: %v %v)", hookErr, res, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Apply returned only once ctx ended (%v %v): its COMMIT was not bounded by the timeout setting", res, err)
	}
	msg := nhisync.ErrorMessage(err)
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "unknown") || !strings.Contains(msg, "session was killed") {
		t.Fatalf("Apply: %v %s %q, want %s saying its session was killed and whether the writes were applied is unknown", res, nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
	if !sessionGone(t, admin, id) {
		t.Fatalf("session %d, whose COMMIT waited past the timeout setting, is still there: it was not killed", id)
	}
	if _, err := lock.ExecContext(t.Context(), "BACKUP STAGE END"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if got := s.owner(t, "accounts", id); got != "old@example.com" {
			t.Errorf("row %s: owner %q: the killed COMMIT committed (the test's premise: killed before its commit point)", id, got)
		}
	}
}

// TestApplyCommitUnansweredMariaDB: on MariaDB a COMMIT whose answer
// never comes back (a proxy keeps the client waiting once it passed the
// COMMIT on), even once its session is killed, holds the Apply up to
// twice the timeout setting, not as long as ctx lasts: Apply fails
// saying whether the writes were applied is unknown, and they were.
func TestApplyCommitUnansweredMariaDB(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	u, err := url.Parse(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxyAt(t, u.Host, true, mysqlCommitQuery)
	u.Host = p.ln.Addr().String()
	c := timeoutConnector(t, u.String(), "accounts")
	res, err := applyBounded(t, c, "its COMMIT was not bounded by the timeout setting")
	if n := p.cutCount(); n != 1 {
		t.Fatalf("the proxy held %d COMMITs, want 1 (Apply: %v %v)", n, res, err)
	}
	msg := nhisync.ErrorMessage(err)
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(msg, "unknown") || !strings.Contains(msg, "still no answer") {
		t.Errorf("Apply: %v %s %q, want %s saying no answer came and whether the writes were applied is unknown", res, nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
	// The held COMMIT's goroutine ends once its connection does.
	p.close()
	for id, want := range map[string]string{"a": "a1@example.com", "b": "b1@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q: the server did not commit (the test's premise)", id, got, want)
		}
	}
}
