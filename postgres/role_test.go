package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nhisync/nhisync"
)

// TestRoleLayout follows README's role layout: the owner opens (and
// migrates) the store, the service's role is granted what README grants.
// The service role then runs a commit that appends audit entries, and is
// refused UPDATE, DELETE and TRUNCATE on the audit table by privileges;
// the owner, who has the privileges, is refused by the triggers.
func TestRoleLayout(t *testing.T) {
	ctx := t.Context()
	b := make([]byte, 4)
	rand.Read(b)
	role := "nhisync_app_" + hex.EncodeToString(b)
	schema := newSchema(t)
	owner, err := Open(ctx, dbURL(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	admin, err := pgx.Connect(ctx, dbURL(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
		`REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM ` + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		admin, err := pgx.Connect(ctx, dbURL(t, schema))
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close(ctx)
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	appURL := strings.Replace(dbURL(t, schema), "postgres://postgres@", "postgres://"+role+"@", 1)
	app, err := Open(ctx, appURL)
	if err != nil {
		t.Fatalf("Open as the service role: %v", err)
	}
	defer app.Close()
	// Only the tables' owner may drop their keys: the service role's first
	// pass runs without the bulk window.
	if open, err := app.BeginBulk(ctx); err != nil || open {
		t.Fatalf("BeginBulk as the service role = %v, %v; want false, nil", open, err)
	}
	if err := app.Commit(ctx, parityBatches()[0]); err != nil {
		t.Fatalf("a commit as the service role: %v", err)
	}
	if n, _, err := app.AuditHead(ctx); err != nil || n != 4 {
		t.Fatalf("AuditHead = %d, %v; want 4", n, err)
	}
	// A replica's drain claims queued writes and commits their outcome
	// under the claim with the service role's privileges.
	now := time.Now()
	id, err := app.NewIDs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(ctx, &nhisync.Batch{Outbox: []*nhisync.OutboxWrite{{ID: id, System: "idp", ExternalID: "x", RecordID: 1, Field: "owner", Status: nhisync.OutboxReady, NextAt: now.Add(-time.Second)}}}); err != nil {
		t.Fatal(err)
	}
	c, _, err := app.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "idp", Holder: "replica", Now: now, TTL: time.Minute, Yield: "pass"})
	if err != nil {
		t.Fatalf("ClaimOutbox as the service role: %v", err)
	}
	if len(c.IDs) != 1 {
		t.Fatalf("the service role claimed %v, want the one queued write", c.IDs)
	}
	if err := app.Commit(ctx, &nhisync.Batch{OutboxDone: c.IDs, Claim: c}); err != nil {
		t.Fatalf("a commit under a claim as the service role: %v", err)
	}
	if err := app.ReleaseClaims(ctx, "replica"); err != nil {
		t.Fatalf("ReleaseClaims as the service role: %v", err)
	}
	for _, q := range []string{`UPDATE audit SET hash = 'x' WHERE seq = 1`, `DELETE FROM audit WHERE seq = 4`, `TRUNCATE audit`} {
		err := app.ExecRaw(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the service role: %v, want permission denied", q, err)
		}
		err = owner.ExecRaw(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s as the owner: %v, want the append-only trigger", q, err)
		}
	}
	if n, _, _ := owner.AuditHead(ctx); n != 4 {
		t.Fatalf("the audit log holds %d entries after the refused changes, want 4", n)
	}
}
