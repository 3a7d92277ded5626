package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// The tests run against the PostgreSQL server of the machine (PGTEST_URL,
// default below): the binary creates one database of its own, each store a
// schema in it, and drops the database at the end. A server that cannot be
// reached fails the tests; they do not skip.
var (
	adminURL = envOr("NHISYNC_PGTEST_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	testDB   string // the database of this test binary
	schemas  atomic.Int64
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	testDB = "nhisync_test_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "postgres tests: cannot reach the server at %s: %v\n", adminURL, err)
		return 1
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+testDB); err != nil {
		fmt.Fprintf(os.Stderr, "postgres tests: create database: %v\n", err)
		return 1
	}
	code := m.Run()
	if _, err := admin.Exec(ctx, `DROP DATABASE `+testDB+` WITH (FORCE)`); err != nil {
		fmt.Fprintf(os.Stderr, "postgres tests: drop database: %v\n", err)
		return 1
	}
	return code
}

// dbURL is the URL of the test database with search_path set to schema.
func dbURL(t testing.TB, schema string) string {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, testDB)
	if schema != "" {
		u += "&search_path=" + schema
	}
	return u
}

// newSchema creates an empty schema in the test database and returns its
// name.
func newSchema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("s%d", schemas.Add(1))
	conn, err := pgx.Connect(t.Context(), dbURL(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE SCHEMA `+name); err != nil {
		t.Fatal(err)
	}
	return name
}

// openTest opens a new, empty store in a schema of its own.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), dbURL(t, newSchema(t)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformancePostgresStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) nhisync.Store { return openTest(t) })
}

// TestKeysetPagesInByteOrder: scans over links cross pages of two rows in
// byte order of (system, ext_id), as Go and SQLite compare strings, what
// ever the database's collation: every link is seen once, in order.
func TestKeysetPagesInByteOrder(t *testing.T) {
	defer func(a, b int) { headPage, linkPage = a, b }(headPage, linkPage)
	headPage, linkPage = 2, 2
	ctx := t.Context()
	s := openTest(t)
	ids := []string{"a", "B", "b", "é", "Z", "a b", "a-b", "ab", "A", "z", "0", "~", "ä"}
	var want []string
	b := &nhisync.Batch{}
	for _, sys := range []string{"idp", "IdP", "cmdb"} {
		for _, id := range ids {
			b.Links = append(b.Links, &nhisync.Link{System: sys, ExternalID: id, Status: nhisync.LinkUnmatched})
			want = append(want, sys+"\x00"+id)
		}
	}
	slices.Sort(want)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	var heads, links []string
	if err := s.ScanLinkHeads(ctx, "", func(h nhisync.LinkHead) error {
		heads = append(heads, h.System+"\x00"+h.ExternalID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanLinks(ctx, "", []nhisync.LinkStatus{nhisync.LinkUnmatched}, func(l *nhisync.Link) error {
		links = append(links, l.System+"\x00"+l.ExternalID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(heads, want) || !slices.Equal(links, want) {
		t.Fatalf("scans in pages of 2:\nheads %q\nlinks %q\nwant  %q", heads, links, want)
	}
}
