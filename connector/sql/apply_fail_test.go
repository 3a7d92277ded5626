package sql_test

import (
	"bytes"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// ownerConnector opens a system over table (its id column
// conntest.IDName) mapping owner (column conntest.OwnerName) only; dir is
// the base directory of a relative SQLite dsn.
func ownerConnector(t *testing.T, dsn, dir, table string) nhisync.Connector {
	t.Helper()
	sys := conntest.System("ids", "sql")
	sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
	sys.BaseDir = dir
	sys.Settings = nhisync.Settings{"dsn": dsn, "table": table}
	return openBatch(t, sys)
}

// owner reads the owner of row id of table.
func (s *server) owner(t *testing.T, table, id string) string {
	t.Helper()
	var got string
	if err := s.db.QueryRow("SELECT "+conntest.OwnerName+" FROM "+table+" WHERE "+conntest.IDName+" = "+s.p(1), id).Scan(&got); err != nil {
		t.Fatalf("row %s: %v", id, err)
	}
	return got
}

// ownerWrite is a write of id's owner from old to new.
func ownerWrite(id, old, new string) nhisync.Write {
	return nhisync.Write{ID: id, Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str(old), New: nhisync.Str(new)}}}
}

// TestApplyBatchReadFails: on PostgreSQL a batch whose read fails (an id
// the uuid id column refuses) goes write by write: that write fails,
// saying why (the message is what the failed write records), the others
// apply. The read failed outside a savepoint, which aborted the
// transaction: every write after it failed, and so did the commit (the
// whole Apply, every time it was retried). The failed write's message
// said only "cannot read row not-a-uuid". The connector's log says why
// the batch went write by write, naming the system (it said nothing:
// a batch read failing for every batch left each Apply slower, unsaid).
func TestApplyBatchReadFails(t *testing.T) {
	s := pgDatabase(t)
	ids := []string{"0b9d6c2e-4f0e-4f6a-9d55-1c2a3b4c5d01", "0b9d6c2e-4f0e-4f6a-9d55-1c2a3b4c5d02"}
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" uuid PRIMARY KEY, "+conntest.OwnerName+" text)")
	for _, id := range ids {
		s.exec(t, "INSERT INTO accounts VALUES ($1, 'old@example.com')", id)
	}
	c := ownerConnector(t, s.dsn, "", "accounts")
	var log bytes.Buffer
	c.(*nsql.Connector).Log = slog.New(slog.NewTextHandler(&log, nil))
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite(ids[0], "old@example.com", "a@example.com"),
		ownerWrite("not-a-uuid", "old@example.com", "x@example.com"),
		ownerWrite(ids[1], "old@example.com", "b@example.com"),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, want := range []string{"level=WARN", "batch read failed", "system=ids", "table=accounts", "writes=3", "invalid input syntax"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log %q lacks %q", log.String(), want)
		}
	}
	for i, want := range []nhisync.WriteStatus{nhisync.WriteApplied, nhisync.WriteFailed, nhisync.WriteApplied} {
		if res[i].Status != want {
			t.Errorf("write %d: %s (%v), want %s", i, res[i].Status, res[i].Err, want)
		}
	}
	if msg := nhisync.ErrorMessage(res[1].Err); !strings.Contains(msg, "invalid input syntax") {
		t.Errorf("write 1 failed with %q, which does not say why", msg)
	}
	for i, want := range []string{"a@example.com", "b@example.com"} {
		if got := s.owner(t, "accounts", ids[i]); got != want {
			t.Errorf("row %s: owner %q, want %q", ids[i], got, want)
		}
	}
}

// TestApplyDeadlockFailsApply: on MariaDB a deadlock mid-Apply rolls the
// whole transaction back, the writes before it too: Apply fails
// (EUNAVAIL, the writes stay queued) and says no write applied, and no
// statement runs after it (it would run outside any transaction). The
// first write was said applied although the deadlock had undone it.
//
// The Apply updates row a (a batch of its own: the next write is to a
// again), then reads a and b for update, waiting for b, which another
// transaction holds; that one, heavier (a thousand rows inserted), then
// updates a: the Apply's transaction is the deadlock's victim.
func TestApplyDeadlockFailsApply(t *testing.T) {
	s := mysqlDatabase(t)
	table := randName("accounts_")
	s.exec(t, "CREATE TABLE "+table+" ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO "+table+" VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	s.exec(t, "CREATE TABLE weight (n INT)")
	c := ownerConnector(t, s.dsn, "", table)

	other, err := s.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	for _, q := range []string{
		"INSERT INTO weight VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
		"INSERT INTO weight SELECT x.n FROM weight x, weight y, weight z",
		"SELECT " + conntest.IDName + " FROM " + table + " WHERE " + conntest.IDName + " = 'b' FOR UPDATE",
	} {
		if _, err := other.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	type outcome struct {
		res []nhisync.WriteResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.Apply(t.Context(), []nhisync.Write{
			ownerWrite("a", "old@example.com", "a1@example.com"),
			ownerWrite("a", "a1@example.com", "a2@example.com"),
			ownerWrite("b", "old@example.com", "b1@example.com"),
		})
		done <- outcome{res, err}
	}()
	// Wait until the Apply's read for update holds a's lock (it then
	// waits for b's). The statement showing in the process list is not
	// enough: an Apply that had not locked a yet when the other
	// transaction updates it would wait for the other's lock on a, with
	// no deadlock, and succeed once the other rolls back. InnoDB does
	// not always show the wait as LOCK WAIT in innodb_trx (not for a
	// read with a window function, as the batch read is), but it counts
	// the rows the Apply's transaction locked (found by its statement,
	// as other tests' transactions may lock rows meanwhile). innodb_trx
	// is a copy InnoDB refreshes only when it was last read more than
	// 0.1 s before: it is read less often than that.
	var otherID int64
	if err := other.QueryRow("SELECT CONNECTION_ID()").Scan(&otherID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for locked := 0; locked == 0; {
		select {
		case o := <-done:
			t.Fatalf("Apply returned before waiting for the lock: %v %v", o.res, o.err)
		case <-time.After(150 * time.Millisecond):
		}
		if err := s.db.QueryRow(`SELECT count(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
			WHERE t.trx_mysql_thread_id <> ? AND t.trx_rows_locked > 0 AND p.info LIKE ? AND p.info LIKE '%FOR UPDATE%'`,
			otherID, "%"+table+"%").Scan(&locked); err != nil {
			t.Fatal(err)
		}
		if locked == 0 && time.Now().After(deadline) {
			t.Fatal("the Apply's transaction locked no row in 30 s")
		}
	}
	if _, err := other.Exec("UPDATE " + table + " SET " + conntest.OwnerName + " = 'other@example.com' WHERE " + conntest.IDName + " = 'a'"); err != nil {
		t.Fatalf("the other transaction was the deadlock's victim, not the Apply: %v", err)
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err == nil {
		t.Errorf("Apply succeeded after its transaction was rolled back: %v", o.res)
		for i, r := range o.res {
			if r.Status == nhisync.WriteApplied {
				t.Errorf("write %d said applied", i)
			}
		}
	} else if code := nhisync.ErrorCode(o.err); code != nhisync.EUNAVAIL || !strings.Contains(nhisync.ErrorMessage(o.err), "stay queued") {
		t.Errorf("Apply: %s %q, want %s saying the writes stay queued", code, nhisync.ErrorMessage(o.err), nhisync.EUNAVAIL)
	}
	for _, id := range []string{"a", "b"} {
		if got := s.owner(t, table, id); got != "old@example.com" {
			t.Errorf("row %s: owner %q, want it untouched", id, got)
		}
	}
}

// TestApplyLockTimeoutFailsWrite: on a MariaDB that rolls back only the
// statement on a lock wait timeout (innodb_rollback_on_timeout off, the
// default), a write whose row another transaction holds past the
// timeout fails, saying so, and the other writes of the Apply still
// commit.
func TestApplyLockTimeoutFailsWrite(t *testing.T) {
	s := mysqlDatabase(t)
	var on int
	if err := s.db.QueryRow("SELECT @@innodb_rollback_on_timeout").Scan(&on); err != nil || on != 0 {
		t.Skipf("the server rolls a transaction back on a lock wait timeout (%d, %v)", on, err)
	}
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := ownerConnector(t, s.dsn+"?innodb_lock_wait_timeout=1", "", "accounts")
	other, err := s.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec("SELECT " + conntest.IDName + " FROM accounts WHERE " + conntest.IDName + " = 'b' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res[0].Status != nhisync.WriteApplied {
		t.Errorf("write a: %s (%v), want applied", res[0].Status, res[0].Err)
	}
	if res[1].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[1].Err), "holds the table's lock") {
		t.Errorf("write b: %s (%v), want failed for the lock", res[1].Status, res[1].Err)
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "a1@example.com", "b": "old@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q", id, got, want)
		}
	}
}

// TestApplyLockTimeoutPostgres: on PostgreSQL, whose sessions wait for a
// row lock for ever by default (lock_timeout 0), a write whose row
// another transaction holds fails once the timeout setting has run out,
// saying so (the writes stay queued), and the other writes of the Apply
// still commit. The Apply waited for as long as the other transaction
// lasted, or its context did.
func TestApplyLockTimeoutPostgres(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := timeoutConnector(t, s.dsn, "accounts")
	other, err := s.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec("SELECT " + conntest.IDName + " FROM accounts WHERE " + conntest.IDName + " = 'b' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	res, err := applyBounded(t, c, "it waited for the lock past the timeout setting")
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res[0].Status != nhisync.WriteApplied {
		t.Errorf("write a: %s (%v), want applied", res[0].Status, res[0].Err)
	}
	// The lock wait is cut by lock_timeout or, mostly, by an equal
	// statement_timeout started a moment before it: either says a row
	// or lock is held.
	if msg := nhisync.ErrorMessage(res[1].Err); res[1].Status != nhisync.WriteFailed || !strings.Contains(msg, "holds") || !strings.Contains(msg, "stay queued") {
		t.Errorf("write b: %s (%v), want failed for the lock, the write queued", res[1].Status, res[1].Err)
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "a1@example.com", "b": "old@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q", id, got, want)
		}
	}
}

// TestPostgresLockTimeoutLeftAlone: a lock_timeout the database sets for
// its sessions is kept; the timeout setting only fills in PostgreSQL's
// default of none.
func TestPostgresLockTimeoutLeftAlone(t *testing.T) {
	pgSettingLeftAlone(t, "lock_timeout")
}

// TestApplyConnectionKilledMidway: on MariaDB a connection killed in the
// middle of an Apply (here: just before its batch UPDATE is sent) takes
// the transaction with it, the server rolling it back: Apply fails
// EUNAVAIL saying so, the writes queued, and no statement runs after it.
// Each write went on to fail alone on the dead connection, and the
// COMMIT, never sent, was said to have an unknown outcome.
func TestApplyConnectionKilledMidway(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	c := ownerConnector(t, s.dsn, "", "accounts")
	admin := openMySQL(t, s.dsn)
	defer admin.Close()
	var after atomic.Int32
	killed := false
	rewritten(t, s, c, func(q string) string {
		if killed {
			after.Add(1)
		}
		if !batchUpdate(q) || killed {
			return q
		}
		killed = true
		// The Apply's session is among them.
		if err := killSessions(admin, s.name); err != nil {
			t.Error(err)
		}
		return q
	})
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if !killed {
		t.Fatal("no batch UPDATE sent")
	}
	msg := nhisync.ErrorMessage(err)
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL || strings.Contains(msg, "unknown") || !strings.Contains(msg, "rolled back") {
		t.Errorf("Apply: %v %s %q, want %s saying the transaction was rolled back", res, nhisync.ErrorCode(err), msg, nhisync.EUNAVAIL)
	}
	if n := after.Load(); n > 1 {
		t.Errorf("%d statements ran after the batch UPDATE on the dead connection", n)
	}
	for _, id := range []string{"a", "b"} {
		if got := s.owner(t, "accounts", id); got != "old@example.com" {
			t.Errorf("row %s: owner %q, want it unchanged", id, got)
		}
	}
}

// killSessions kills every session on database db but the one asking (on
// MariaDB): a session that ended meanwhile (ER_NO_SUCH_THREAD) is no
// failure.
func killSessions(admin *stdsql.DB, db string) error {
	rows, err := admin.Query("SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", db)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		var me *mysql.MySQLError
		if _, err := admin.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err != nil && !(errors.As(err, &me) && me.Number == 1094) {
			return fmt.Errorf("kill session %d: %w", id, err)
		}
	}
	return nil
}

// TestMySQLDriverLogsToLog: what the MySQL driver says (here: that it
// closes an idle connection the server killed) goes to the connector's
// logger, naming the system, not to the process's stderr past the
// logger serve hands it.
func TestMySQLDriverLogsToLog(t *testing.T) {
	s := mysqlDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200))")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com')")
	c := ownerConnector(t, s.dsn, "", "accounts")
	var log syncBuffer
	c.(nhisync.LogSetter).SetLogger(slog.New(slog.NewTextHandler(&log, nil)))
	admin := openMySQL(t, s.dsn)
	defer admin.Close()
	if err := killSessions(admin, s.name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(t.Context(), []nhisync.Write{ownerWrite("a", "old@example.com", "a1@example.com")}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, want := range []string{"level=WARN", "MySQL driver", "closing bad idle connection", "system=ids"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log %q lacks %q", log.String(), want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the driver's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
