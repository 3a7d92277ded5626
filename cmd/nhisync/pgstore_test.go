package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// TestStoreCopy: a synced quickstart workspace (with held approvals,
// quarantine, an API token) copied from SQLite to PostgreSQL and back:
// each copy lists the same records, approvals, quarantine and tokens,
// `audit verify` reports the same root and entries, a second copy into the
// same store is refused unless --force, and the copy syncs on.
func TestStoreCopy(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	w.ok(t, "token", "create", "ci", "--role", "viewer", "--as", "ana")
	pgURL := newPGDatabase(t)
	liteURL := "sqlite:" + w.path("copy/back.db")

	type view struct{ verify, records, approvals, quarantine, tokens obj }
	look := func() view {
		var v view
		var list []any
		w.json(t, &v.verify, "audit", "verify")
		w.json(t, &list, "records")
		v.records = obj{"list": list}
		w.json(t, &list, "approvals")
		v.approvals = obj{"list": list}
		w.json(t, &list, "quarantine")
		v.quarantine = obj{"list": list}
		w.json(t, &list, "token", "list")
		v.tokens = obj{"list": list}
		return v
	}
	orig := look()
	if orig.verify["ok"] != true {
		t.Fatalf("audit verify on the original: %v", orig.verify)
	}
	w.ok(t, "store", "copy", "--to", pgURL)
	if r := w.run(t, "store", "copy", "--to", pgURL); r.code == exitOK || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("a second copy into the same store: exit %d, stderr %s; want a refusal naming --force", r.code, r.stderr)
	}
	w.ok(t, "store", "copy", "--to", pgURL, "--force")

	w.useStore(t, pgURL)
	onPG := look()
	w.ok(t, "store", "copy", "--to", liteURL)
	w.useStore(t, liteURL)
	back := look()
	for name, got := range map[string]view{"postgres copy": onPG, "copy back to sqlite": back} {
		for what, pair := range map[string][2]obj{
			"audit verify": {orig.verify, got.verify}, "records": {orig.records, got.records},
			"approvals": {orig.approvals, got.approvals}, "quarantine": {orig.quarantine, got.quarantine},
			"tokens": {orig.tokens, got.tokens},
		} {
			if d := cmp.Diff(pair[0], pair[1]); d != "" {
				t.Errorf("%s: %s differs from the original (-orig +copy):\n%s", name, what, d)
			}
		}
	}
	// The copies go on: a pass runs, and an audited change commits and
	// signs a checkpoint after the copied ones.
	for i, u := range []string{pgURL, liteURL} {
		w.useStore(t, u)
		w.ok(t, "sync")
		w.ok(t, "token", "create", fmt.Sprintf("after-copy-%d", i), "--role", "viewer", "--as", "ana")
		var v obj
		w.json(t, &v, "audit", "verify")
		if v["ok"] != true || intOf(t, "entries", v, "entries") <= intOf(t, "entries", orig.verify, "entries") {
			t.Fatalf("audit verify after changes on the copy %s: %v (original %v)", u[:8], v, orig.verify)
		}
	}
}
