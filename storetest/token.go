package storetest

import (
	"bytes"
	"testing"

	"github.com/nhisync/nhisync"
)

func testTokens(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	if ts, err := s.Tokens(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("Tokens on an empty store = %v, %v; want none", ts, err)
	}
	secretA, hashA, err := nhisync.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	_, hashB, _ := nhisync.NewTokenSecret()
	a := &nhisync.Token{Name: "zoe-ci", Role: nhisync.RoleApprover, Hash: hashA, Created: t0, CreatedBy: "root"}
	b := &nhisync.Token{Name: "ana", Role: nhisync.RoleViewer, Hash: hashB, Created: at(1)}
	for _, tk := range []*nhisync.Token{a, b} {
		if err := s.CreateToken(ctx, tk); err != nil {
			t.Fatalf("CreateToken(%s): %v", tk.Name, err)
		}
	}
	if err := s.CreateToken(ctx, &nhisync.Token{Name: "zoe-ci", Role: nhisync.RoleAdmin, Hash: hashB, Created: t0}); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Errorf("CreateToken with a taken name: %v, want ECONFLICT", err)
	}
	for _, bad := range []*nhisync.Token{
		{Name: "", Role: nhisync.RoleViewer, Hash: hashA},
		{Name: "has space", Role: nhisync.RoleViewer, Hash: hashA},
		{Name: "x", Role: "root", Hash: hashA},
		{Name: "y", Role: nhisync.RoleViewer, Hash: []byte("short")},
	} {
		if err := s.CreateToken(ctx, bad); nhisync.ErrorCode(err) != nhisync.EINVALID {
			t.Errorf("CreateToken(%+v): %v, want EINVALID", bad, err)
		}
	}
	ts, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*nhisync.Token{b, a}, ts); d != "" {
		t.Errorf("Tokens (-want +got):\n%s", d)
	}
	if m := nhisync.MatchToken(ts, secretA); m == nil || m.Name != "zoe-ci" || !bytes.Equal(m.Hash, hashA) {
		t.Errorf("MatchToken(secret of zoe-ci) = %v", m)
	}
	if m := nhisync.MatchToken(ts, secretA+"x"); m != nil {
		t.Errorf("MatchToken(wrong secret) = %v, want nil", m)
	}
	if err := s.RevokeToken(ctx, "zoe-ci"); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := s.RevokeToken(ctx, "zoe-ci"); nhisync.ErrorCode(err) != nhisync.ENOTFOUND {
		t.Errorf("RevokeToken twice: %v, want ENOTFOUND", err)
	}
	ts, _ = s.Tokens(ctx)
	if len(ts) != 1 || ts[0].Name != "ana" || nhisync.MatchToken(ts, secretA) != nil {
		t.Errorf("after revoking, Tokens = %v and the revoked secret must not match", ts)
	}
	// The name is free again.
	if err := s.CreateToken(ctx, &nhisync.Token{Name: "zoe-ci", Role: nhisync.RoleAdmin, Hash: hashA, Created: at(2)}); err != nil {
		t.Errorf("CreateToken after revoke: %v", err)
	}
}
