package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/quickstart"
	"github.com/nhisync/nhisync/sqlite"
)

func TestTokenCommands(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, false)
	t.Setenv("NHISYNC_ACTOR", "root-admin")
	var tok tokenJSON
	w.json(t, &tok, "token", "create", "ci-bot", "--role", "approver")
	if tok.Name != "ci-bot" || tok.Role != nhisync.RoleApprover || !strings.HasPrefix(tok.Token, "nhs_") {
		t.Fatalf("token create -o json = %+v", tok)
	}
	out := w.ok(t, "token", "create", "ana", "--role", "viewer")
	if !strings.Contains(out, "nhs_") {
		t.Errorf("token create prints no secret:\n%s", out)
	}
	if r := w.run(t, "token", "create", "ana", "--role", "viewer"); r.code != exitFailed || !strings.Contains(r.stderr, "exists") {
		t.Errorf("duplicate name: exit %d, %s", r.code, r.stderr)
	}
	for _, bad := range [][]string{{"x", "--role", "root"}, {"x"}, {"bad name", "--role", "viewer"}} {
		if r := w.run(t, append([]string{"token", "create"}, bad...)...); r.code != exitInvalid {
			t.Errorf("token create %v: exit %d, want 2 (%s)", bad, r.code, r.stderr)
		}
	}

	var list []map[string]any
	w.json(t, &list, "token", "list")
	if len(list) != 2 || list[0]["name"] != "ana" || list[1]["role"] != "approver" || list[1]["created_by"] != "root-admin" {
		t.Errorf("token list -o json = %v", list)
	}
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), tok.Token) || strings.Contains(string(raw), "hash") {
		t.Errorf("token list shows a secret or hash: %s", raw)
	}

	// Only the hash is stored: the secret appears nowhere in the store.
	s, err := sqlite.OpenURL(t.Context(), "sqlite:"+w.path("nhisync-data/nhisync.db"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s.Tokens(t.Context())
	s.Close()
	if err != nil || nhisync.MatchToken(ts, tok.Token) == nil {
		t.Fatalf("the stored hash does not match the printed secret: %v", err)
	}

	w.ok(t, "token", "revoke", "ci-bot")
	if r := w.run(t, "token", "revoke", "ci-bot"); r.code != exitFailed || !strings.Contains(r.stderr, "no token named ci-bot") {
		t.Errorf("revoke twice: exit %d, %s", r.code, r.stderr)
	}
	hist := w.ok(t, "audit", "export")
	if !strings.Contains(hist, `"token.created"`) || !strings.Contains(hist, `"token.revoked"`) || strings.Contains(hist, tok.Token) {
		t.Errorf("audit log: want token.created and token.revoked without the secret")
	}
	w.ok(t, "audit", "verify")
}
