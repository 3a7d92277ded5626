package sql_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
)

// timeoutConnector opens a connector on table with a timeout of 1s, its
// log discarded.
func timeoutConnector(t *testing.T, dsn, table string) nhisync.Connector {
	t.Helper()
	sys := conntest.System("ids", "sql")
	sys.Fields = []*nhisync.Mapping{sys.Mapping("owner")}
	sys.Settings = nhisync.Settings{"dsn": dsn, "table": table, "timeout": "1s"}
	c := openBatch(t, sys)
	c.(*nsql.Connector).Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// applyBounded applies writes to rows a and b (old@example.com to
// a1@ and b1@example.com) under a ctx lasting a minute, far past the
// timeout setting, and fails t if Apply returned only once that ctx
// ended, saying what that means (why).
func applyBounded(t *testing.T, c nhisync.Connector, why string) ([]nhisync.WriteResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := c.Apply(ctx, []nhisync.Write{
		ownerWrite("a", "old@example.com", "a1@example.com"),
		ownerWrite("b", "old@example.com", "b1@example.com"),
	})
	if ctx.Err() != nil {
		t.Fatalf("Apply returned only once ctx ended (%v %v): %s", res, err, why)
	}
	return res, err
}

// applyTimedOut applies writes to rows a and b, b's statement running
// past the timeout setting, and checks that b alone failed, saying so,
// queued, and a committed.
func applyTimedOut(t *testing.T, c nhisync.Connector) {
	t.Helper()
	res, err := applyBounded(t, c, "a statement ran past the timeout setting")
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res[0].Status != nhisync.WriteApplied {
		t.Errorf("write a: %s (%v), want applied", res[0].Status, res[0].Err)
	}
	msg := nhisync.ErrorMessage(res[1].Err)
	t.Logf("write b: %s", msg)
	if res[1].Status != nhisync.WriteFailed || nhisync.ErrorCode(res[1].Err) != nhisync.EUNAVAIL {
		t.Errorf("write b: %s %s (%v), want failed %s", res[1].Status, nhisync.ErrorCode(res[1].Err), res[1].Err, nhisync.EUNAVAIL)
	}
	for _, want := range []string{"system ids", "within 1s", "setting timeout", "stay queued"} {
		if !strings.Contains(msg, want) {
			t.Errorf("write b: message %q does not say %q", msg, want)
		}
	}
}

// TestApplyStatementTimeoutPostgres: a write's statement that runs past
// the timeout setting (here a trigger sleeping on row b) fails that
// write alone, saying so, queued; the others commit. Before, PostgreSQL
// sessions had no statement_timeout: the Apply waited as long as the
// statement ran.
func TestApplyStatementTimeoutPostgres(t *testing.T) {
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	s.exec(t, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$`)
	s.exec(t, "CREATE TRIGGER slow BEFORE UPDATE ON accounts FOR EACH ROW WHEN (NEW."+conntest.IDName+" = 'b') EXECUTE FUNCTION slow()")
	c := timeoutConnector(t, s.dsn, "accounts")
	applyTimedOut(t, c)
	for id, want := range map[string]string{"a": "a1@example.com", "b": "old@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q", id, got, want)
		}
	}
}

// TestPostgresStatementTimeoutLeftAlone: a statement_timeout the database
// sets for its sessions is kept; the timeout setting only fills in
// PostgreSQL's default of none.
func TestPostgresStatementTimeoutLeftAlone(t *testing.T) {
	pgSettingLeftAlone(t, "statement_timeout")
}

// pgSettingLeftAlone checks that the PostgreSQL session setting name
// (one the timeout setting fills in) is the timeout setting's 1s when
// nothing sets it, and 7s once the database sets it so.
func pgSettingLeftAlone(t *testing.T, name string) {
	t.Helper()
	s := pgDatabase(t)
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" text PRIMARY KEY, "+conntest.OwnerName+" text)")
	for _, tc := range []struct{ alter, want string }{{"", "1s"}, {"ALTER DATABASE " + s.name + " SET " + name + " = '7s'", "7s"}} {
		if tc.alter != "" {
			s.exec(t, tc.alter)
		}
		c := timeoutConnector(t, s.dsn, "accounts")
		var got string
		if err := nsql.DB(c.(*nsql.Connector)).QueryRow("SHOW " + name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%q: %s %q, want %q", tc.alter, name, got, tc.want)
		}
	}
}

// TestApplyStatementTimeoutMariaDB: on MariaDB a write waiting for a row
// another session holds fails once the timeout setting runs out, alone,
// saying so, queued; the others commit. Before, it waited for InnoDB's
// innodb_lock_wait_timeout (50 s by default).
func TestApplyStatementTimeoutMariaDB(t *testing.T) {
	s := mysqlDatabase(t)
	var version string
	if err := s.db.QueryRow("SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(version, "MariaDB") {
		t.Skipf("server %s is not MariaDB: MySQL has no max_statement_time", version)
	}
	s.exec(t, "CREATE TABLE accounts ("+conntest.IDName+" VARCHAR(64) PRIMARY KEY, "+conntest.OwnerName+" VARCHAR(200)) ENGINE=InnoDB")
	s.exec(t, "INSERT INTO accounts VALUES ('a', 'old@example.com'), ('b', 'old@example.com')")
	// One the DSN sets is kept (sent by the driver as the session's),
	// none (0) too.
	got := -1.0
	if err := nsql.DB(timeoutConnector(t, s.dsn+"?max_statement_time=0", "accounts").(*nsql.Connector)).QueryRow("SELECT @@SESSION.max_statement_time").Scan(&got); err != nil || got != 0 {
		t.Errorf("max_statement_time=0 in the DSN: %v %v, want 0", got, err)
	}
	c := timeoutConnector(t, s.dsn, "accounts")
	other, err := s.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec("SELECT " + conntest.IDName + " FROM accounts WHERE " + conntest.IDName + " = 'b' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	applyTimedOut(t, c)
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "a1@example.com", "b": "old@example.com"} {
		if got := s.owner(t, "accounts", id); got != want {
			t.Errorf("row %s: owner %q, want %q", id, got, want)
		}
	}
}
