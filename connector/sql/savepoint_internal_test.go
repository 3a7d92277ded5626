package sql

import (
	stdsql "database/sql"
	"errors"
	"os"
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
	dsn := os.Getenv("NHISYNC_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	db, err := stdsql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
