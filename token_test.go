package nhisync_test

import (
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

func TestRoleIncludes(t *testing.T) {
	for i, have := range nhisync.Roles {
		for j, need := range nhisync.Roles {
			if got := have.Includes(need); got != (i >= j) {
				t.Errorf("%s.Includes(%s) = %v", have, need, got)
			}
		}
	}
	if nhisync.Role("root").Includes(nhisync.RoleViewer) || nhisync.RoleAdmin.Includes("root") {
		t.Error("an unknown role must include nothing and be included by nothing")
	}
	if _, err := nhisync.ParseRole("Root"); err == nil || !strings.Contains(err.Error(), "viewer, steward, approver, admin") {
		t.Errorf("ParseRole(Root) = %v; want the roles listed", err)
	}
	if r, err := nhisync.ParseRole(" Steward "); err != nil || r != nhisync.RoleSteward {
		t.Errorf("ParseRole(Steward) = %v, %v", r, err)
	}
}

func TestTokenSecret(t *testing.T) {
	s1, h1, err := nhisync.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _ := nhisync.NewTokenSecret()
	if s1 == s2 || !strings.HasPrefix(s1, "nhs_") || len(s1) != 4+43 {
		t.Errorf("secrets %q, %q: want distinct nhs_ + 43 base64url characters", s1, s2)
	}
	if string(nhisync.HashToken(s1)) != string(h1) || len(h1) != 32 {
		t.Error("the hash must be the SHA-256 of the secret")
	}
	toks := []*nhisync.Token{{Name: "a", Hash: nhisync.HashToken("x")}, {Name: "b", Hash: h1}}
	if m := nhisync.MatchToken(toks, s1); m == nil || m.Name != "b" {
		t.Errorf("MatchToken = %v, want b", m)
	}
	if m := nhisync.MatchToken(toks, ""); m != nil {
		t.Errorf("MatchToken(empty) = %v", m)
	}
}
