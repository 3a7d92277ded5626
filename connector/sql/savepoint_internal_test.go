package sql

import (
	stdsql "database/sql"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestAloneReleasesSavepoint: on PostgreSQL a statement that fails under
// alone is rolled back to its savepoint, and the savepoint released, as
// one that succeeds: none is left behind (it was, rolled back to but not
// released, and every later statement of the Apply nested one level
// deeper), and the transaction goes on.
func TestAloneReleasesSavepoint(t *testing.T) {
	db, dsn := testPostgres(t)
	c := &Connector{d: postgres}
	for _, stmt := range []string{"SELECT 1", "SELECT 1/0"} {
		stx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatalf("PostgreSQL at %s is needed for this test (set NHISYNC_TEST_POSTGRES to reach another): %v", dsn, err)
		}
		tx := &txn{Tx: stx}
		err = c.alone(t.Context(), tx, func() error {
			_, err := tx.ExecContext(t.Context(), stmt)
			return err
		})
		if (err != nil) != (stmt == "SELECT 1/0") {
			t.Errorf("%s: %v", stmt, err)
		}
		if _, err := tx.ExecContext(t.Context(), "SELECT 1"); err != nil {
			t.Errorf("%s: the transaction does not go on after it: %v", stmt, err)
		}
		_, err = tx.ExecContext(t.Context(), "RELEASE SAVEPOINT nhisync_write")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "3B001" {
			t.Errorf("%s: the savepoint is still there after it (releasing it again: %v)", stmt, err)
		}
		stx.Rollback()
	}
}

// testPostgres opens the test PostgreSQL, closed when t ends.
func testPostgres(t *testing.T) (*stdsql.DB, string) {
	dsn := os.Getenv("NHISYNC_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	db, err := stdsql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

// TestAloneSavepointFailureLosesTx: on PostgreSQL a savepoint command
// that fails (RELEASE of a savepoint the statement took away; SAVEPOINT
// on a connection the server ended) marks the transaction lost, with
// its cause: the statement fails saying so, and no later statement runs.
// The transaction was left aborted and not marked: each later write
// failed with "current transaction is aborted" or a closed connection,
// the cause never said.
func TestAloneSavepointFailureLosesTx(t *testing.T) {
	db, dsn := testPostgres(t)
	c := &Connector{d: postgres}
	for _, tc := range []struct {
		name   string
		before func(tx *txn) // run before alone, outside it
		stmt   string
		want   string // in the error
	}{
		{"release", nil, "RELEASE SAVEPOINT nhisync_write", "release a savepoint"},
		{"savepoint", func(tx *txn) {
			var pid int
			if err := tx.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(t.Context(), "SELECT pg_terminate_backend($1, 10000)", pid); err != nil {
				t.Fatal(err)
			}
		}, "SELECT 1", "set a savepoint"},
	} {
		stx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatalf("PostgreSQL at %s is needed for this test (set NHISYNC_TEST_POSTGRES to reach another): %v", dsn, err)
		}
		tx := &txn{Tx: stx}
		if tc.before != nil {
			tc.before(tx)
		}
		err = c.alone(t.Context(), tx, func() error {
			_, err := tx.ExecContext(t.Context(), tc.stmt)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: alone returned %v, want it to fail saying %q", tc.name, err, tc.want)
		}
		if tx.lost == nil {
			t.Errorf("%s: the transaction is not marked lost", tc.name)
		}
		ran := false
		err = c.alone(t.Context(), tx, func() error { ran = true; return nil })
		if ran || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: the next statement ran (%v) or failed without the cause: %v", tc.name, ran, err)
		}
		stx.Rollback()
	}
}

// TestAloneRollbackFailureKeepsCause: on PostgreSQL, when a statement
// fails and the rollback to its savepoint fails too (the backend was
// terminated between them), the transaction is lost with both errors,
// the statement's first: a person sees the cause (here division by
// zero) and why the transaction could not go on. Only the rollback's
// failure was kept ("conn closed"), the statement's error dropped.
func TestAloneRollbackFailureKeepsCause(t *testing.T) {
	db, dsn := testPostgres(t)
	c := &Connector{d: postgres}
	stx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatalf("PostgreSQL at %s is needed for this test (set NHISYNC_TEST_POSTGRES to reach another): %v", dsn, err)
	}
	defer stx.Rollback()
	tx := &txn{Tx: stx}
	var pid int
	if err := tx.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	err = c.alone(t.Context(), tx, func() error {
		_, err := tx.ExecContext(t.Context(), "SELECT 1/0")
		if err == nil {
			t.Fatal("SELECT 1/0 succeeded")
		}
		if _, err := db.ExecContext(t.Context(), "SELECT pg_terminate_backend($1, 10000)", pid); err != nil {
			t.Fatal(err)
		}
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22012" {
		t.Errorf("alone returned %v, which does not hold the statement's error (division by zero, 22012)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "division by zero") || !strings.Contains(err.Error(), "roll back to a savepoint") {
		t.Errorf("alone returned %v, want it to say the statement's failure and the rollback's", err)
	}
	if tx.lost == nil || !errors.As(tx.lost, &pe) {
		t.Errorf("the transaction is lost with %v, without the statement's error", tx.lost)
	}
}
