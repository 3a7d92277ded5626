package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync/quickstart"
)

// pgAdminURL is the PostgreSQL server the store tests use (this machine's
// and CI's); a test that cannot reach it fails.
func pgAdminURL() string {
	if v := os.Getenv("NHISYNC_PGTEST_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// newPGDatabase creates an empty database, dropped when the test ends, and
// returns its store URL.
func newPGDatabase(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "nhisync_cmdtest_" + hex.EncodeToString(b)
	cfg, err := pgx.ParseConfig(pgAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("cannot reach PostgreSQL at %s:%d: %v", cfg.Host, cfg.Port, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		admin, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return "postgres://" + cfg.User + "@" + cfg.Host + ":5432/" + name + "?sslmode=disable"
}

// useStore points the workspace's config at storeURL.
func (w *workspace) useStore(t *testing.T, storeURL string) {
	t.Helper()
	b, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^store:.*$`)
	if !re.Match(b) {
		t.Fatalf("no store: line in %s", w.config)
	}
	writeFile(t, w.config, re.ReplaceAllLiteralString(string(b), "store: "+storeURL))
}

// TestQuickstartOnPostgres: the quickstart workspace runs end to end with
// `store: postgres://…`: sync, a second quiet sync, records and audit
// verify.
func TestQuickstartOnPostgres(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, false)
	w.useStore(t, newPGDatabase(t))
	first := syncJSON(t, w)
	if n := intOf(t, "records", first, "records"); n < 100 {
		t.Fatalf("first sync on PostgreSQL: %d records, want the quickstart's ~200\n%v", n, first)
	}
	w.ok(t, "sync")
	var rep obj
	w.json(t, &rep, "audit", "verify")
	if rep["ok"] != true || intOf(t, "entries", rep, "entries") == 0 {
		t.Fatalf("audit verify on PostgreSQL: %v", rep)
	}
}
