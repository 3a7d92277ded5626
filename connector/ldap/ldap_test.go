package ldap_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
	nldap "github.com/nhisync/nhisync/connector/ldap"
	"github.com/nhisync/nhisync/connector/ldap/ldaptest"
)

// nhiKind is a service account whose owner refers to a person.
func nhiKind() *nhisync.Kind {
	k := &nhisync.Kind{Name: "service_account", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range []*nhisync.Field{
		{Name: "name", Type: nhisync.TypeString},
		{Name: "owner", Type: nhisync.TypeRef, To: "person"},
		{Name: "classification", Type: nhisync.TypeSet, Resolve: nhisync.ResolveMerge},
		{Name: "lifecycle", Type: nhisync.TypeString},
		{Name: "last_rotated", Type: nhisync.TypeTime},
	} {
		if f.Resolve == "" {
			f.Resolve = nhisync.ResolvePriority
		}
		k.Fields[f.Name] = f
		k.FieldNames = append(k.FieldNames, f.Name)
	}
	return k
}

// nhiSystem maps nhiKind onto account entries with the example NHI schema.
func nhiSystem(base string, settings nhisync.Settings) *nhisync.System {
	sys := &nhisync.System{Name: "directory", Connector: "ldap", Kind: "service_account", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"url": srv.URL, "bind_dn": ldaptest.AdminDN, "bind_password": "env:" + passwordEnv,
			"base_dn": "ou=serviceaccounts," + base, "filter": "(objectClass=nhiServiceAccount)"}}
	for k, v := range settings {
		sys.Settings[k] = v
	}
	for _, m := range []*nhisync.Mapping{
		{Field: "name", Name: "uid", Type: nhisync.TypeString},
		{Field: "owner", Name: "nhiOwner", Type: nhisync.TypeRef, Ref: "person"},
		{Field: "classification", Name: "nhiClassification", Type: nhisync.TypeSet},
		{Field: "lifecycle", Name: "nhiLifecycle", Type: nhisync.TypeString},
		{Field: "last_rotated", Name: "nhiLastRotated", Type: nhisync.TypeTime},
	} {
		m.Direction = nhisync.DirBoth
		sys.Fields = append(sys.Fields, m)
	}
	return sys
}

func add(t *testing.T, c *ldap.Conn, dn string, attrs map[string][]string) {
	t.Helper()
	req := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	if err := c.Add(req); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
}

// directory makes people and service accounts under a fresh subtree of
// suffix and returns the subtree.
func directory(t *testing.T, suffix string) string {
	t.Helper()
	base := subtree(t, suffix)
	c := admin(t, suffix)
	add(t, c, "ou=people,"+base, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	add(t, c, "ou=serviceaccounts,"+base, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"serviceaccounts"}})
	for _, p := range []string{"alice", "bob"} {
		add(t, c, "uid="+p+",ou=people,"+base, map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {p}, "cn": {p}, "sn": {p}, "mail": {p + "@example.com"}})
	}
	add(t, c, "cn=Carol Jones,ou=people,"+base, map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {"carol"}, "cn": {"Carol Jones"}, "sn": {"Jones"}, "mail": {"carol@example.com"}})
	add(t, c, "uid=svc-billing,ou=serviceaccounts,"+base, map[string][]string{
		"objectClass": {"account", "nhiServiceAccount"}, "uid": {"svc-billing"},
		"nhiOwner": {"uid=alice,ou=people," + base}, "nhiClassification": {"pci", "internal"},
		"nhiLifecycle": {"active"}, "nhiLastRotated": {"20260102030405Z"}, "description": {"billing batch job"},
	})
	add(t, c, "uid=svc-ci,ou=serviceaccounts,"+base, map[string][]string{
		"objectClass": {"account", "nhiServiceAccount"}, "uid": {"svc-ci"},
		"nhiOwner": {"cn=Carol Jones,ou=people," + base},
	})
	add(t, c, "uid=svc-orphan,ou=serviceaccounts,"+base, map[string][]string{
		"objectClass": {"account", "nhiServiceAccount"}, "uid": {"svc-orphan"},
		"nhiOwner": {"uid=gone,ou=people," + base},
	})
	// Not an NHI: outside the filter.
	add(t, c, "uid=human,ou=serviceaccounts,"+base, map[string][]string{"objectClass": {"account"}, "uid": {"human"}})
	return base
}

func open(t *testing.T, sys *nhisync.System) *nldap.Connector {
	t.Helper()
	if err := nldap.Validate(sys, nhiKind()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c, err := nldap.New(t.Context(), sys, nhiKind())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type obsByName map[string]nhisync.Observation

func snapshot(t *testing.T, c nhisync.Connector) obsByName {
	t.Helper()
	out := obsByName{}
	if err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		o.Values = slices.Clone(o.Values)
		out[o.Values[0].Text()] = o
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func entry(t *testing.T, suffix, dn string, attr string) []string {
	t.Helper()
	res, err := admin(t, suffix).Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		t.Fatal(err)
	}
	return res.Entries[0].GetAttributeValues(attr)
}

// TestDNValuedRefs: a DN-valued attribute reads as the referenced
// person's key (the RDN value, or ref_attribute read from the entry) and a
// key writes back as that person's DN; a key no entry has fails the write.
func TestDNValuedRefs(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	c := open(t, nhiSystem(base, nil))
	got := snapshot(t, c)
	if len(got) != 3 {
		t.Fatalf("snapshot %v, want the 3 NHI entries", got)
	}
	b := got["svc-billing"]
	if b.Values[1].Text() != "alice" || b.Values[2].String() != "internal, pci" || b.Values[4].Text() != "2026-01-02T03:04:05Z" {
		t.Errorf("svc-billing reads %v", b.Values)
	}
	if len(b.ID) != 36 {
		t.Errorf("id %q is not an entryUUID", b.ID)
	}
	if b.Actor != ldaptest.AdminDN || b.Modified.IsZero() {
		t.Errorf("actor %q, modified %v: want modifiersName and modifyTimestamp", b.Actor, b.Modified)
	}
	if v := got["svc-ci"].Values[1].Text(); v != "carol" {
		t.Errorf("a cn= DN reads as %q, want carol (its uid)", v)
	}
	if v := got["svc-orphan"].Values[1].Text(); v != "gone" {
		t.Errorf("a uid= DN naming no entry reads as %q, want its RDN value (the engine's ref check finds no person gone)", v)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{
		{ID: b.ID, Changes: []nhisync.Change{
			{Field: "owner", Old: nhisync.Str("alice"), New: nhisync.Str("carol")},
			{Field: "classification", Old: nhisync.SetOf("pci", "internal"), New: nhisync.SetOf("pci", "confidential")},
			{Field: "last_rotated", Old: nhisync.Str("2026-01-02T03:04:05Z"), New: nhisync.Str("2026-07-01T10:00:00+02:00")},
		}},
		{ID: got["svc-ci"].ID, Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("carol"), New: nhisync.Str("nobody")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write: %s %v", res[0].Status, res[0].Err)
	}
	if res[1].Status != nhisync.WriteFailed || !strings.Contains(nhisync.ErrorMessage(res[1].Err), "uid=nobody") {
		t.Errorf("a write of an unknown person: %s %v", res[1].Status, res[1].Err)
	}
	dn := "uid=svc-billing,ou=serviceaccounts," + base
	if v := entry(t, ldaptest.Suffix, dn, "nhiOwner"); len(v) != 1 || !strings.EqualFold(v[0], "cn=Carol Jones,ou=people,"+base) {
		t.Errorf("nhiOwner holds %v, want carol's DN", v)
	}
	if v := entry(t, ldaptest.Suffix, dn, "nhiLastRotated"); len(v) != 1 || v[0] != "20260701080000Z" {
		t.Errorf("nhiLastRotated holds %v, want GeneralizedTime in UTC", v)
	}
	if v := entry(t, ldaptest.Suffix, dn, "description"); len(v) != 1 || v[0] != "billing batch job" {
		t.Errorf("an unmapped attribute holds %v after the write", v)
	}
	// ref_attribute: mail as the person's key.
	c2 := open(t, nhiSystem(base, nhisync.Settings{"ref_attribute": "mail", "ref_base_dn": "ou=people," + base}))
	if v := snapshot(t, c2)["svc-billing"].Values[1].Text(); v != "carol@example.com" {
		t.Errorf("with ref_attribute mail the owner reads as %q", v)
	}
	res, err = c2.Apply(t.Context(), []nhisync.Write{{ID: b.ID, Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("carol@example.com"), New: nhisync.Str("bob@example.com")}}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("write by mail: %v %v", res, err)
	}
	if v := entry(t, ldaptest.Suffix, dn, "nhiOwner"); len(v) != 1 || !strings.EqualFold(v[0], "uid=bob,ou=people,"+base) {
		t.Errorf("nhiOwner holds %v, want bob's DN", v)
	}
}

// TestConditionalModify: a modify deletes the values it read and adds the
// new ones in one operation, and an empty attribute is asserted absent, so
// a concurrent change in between makes the write stale and changes
// nothing.
func TestConditionalModify(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	c := open(t, nhiSystem(base, nil))
	got := snapshot(t, c)
	ci := got["svc-ci"]
	dn := "uid=svc-ci,ou=serviceaccounts," + base
	// Someone sets the lifecycle the write expects empty.
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Add("nhiLifecycle", []string{"suspended"})
	if err := admin(t, ldaptest.Suffix).Modify(mod); err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: ci.ID, Changes: []nhisync.Change{
		{Field: "lifecycle", Old: nhisync.Value{}, New: nhisync.Str("active")},
	}}})
	if err != nil || res[0].Status != nhisync.WriteStale {
		t.Errorf("write over a concurrent change: %v %v, want stale", res, err)
	}
	if v := entry(t, ldaptest.Suffix, dn, "nhiLifecycle"); !slices.Equal(v, []string{"suspended"}) {
		t.Errorf("nhiLifecycle %v, want the concurrent value kept", v)
	}
	// Ids holding filter syntax are escaped (RFC 4515): no entry matches.
	res, err = c.Apply(t.Context(), []nhisync.Write{{ID: "*)(uid=*", Changes: []nhisync.Change{{Field: "lifecycle", New: nhisync.Str("x")}}}})
	if err != nil || res[0].Status != nhisync.WriteMissing {
		t.Errorf("write to id *)(uid=*: %v %v, want missing", res, err)
	}
}

// TestModifyTimestampCursor: without syncprov, Changes reads entries
// whose modifyTimestamp is at or after the cursor, so an entry changed in
// the cursor's second is never missed.
func TestModifyTimestampCursor(t *testing.T) {
	base := directory(t, ldaptest.PlainSuffix)
	sys := nhiSystem(base, nhisync.Settings{"bind_dn": ldaptest.PlainAdminDN})
	c := open(t, sys)
	changes := func(cursor string) ([]string, string) {
		var names []string
		next, err := c.Changes(t.Context(), cursor, func(o nhisync.Observation) error {
			names = append(names, o.Values[0].Text())
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names, next
	}
	names, cur := changes("")
	if len(names) != 3 || !strings.HasPrefix(cur, "ts:") {
		t.Fatalf("first read %v, cursor %q", names, cur)
	}
	mod := ldap.NewModifyRequest("uid=svc-ci,ou=serviceaccounts,"+base, nil)
	mod.Replace("nhiLifecycle", []string{"suspended"})
	if err := admin(t, ldaptest.PlainSuffix).Modify(mod); err != nil {
		t.Fatal(err)
	}
	names, next := changes(cur)
	if !slices.Contains(names, "svc-ci") {
		t.Errorf("Changes(%s) = %v lacks the modified entry", cur, names)
	}
	if next < cur {
		t.Errorf("cursor went back from %s to %s", cur, next)
	}
}

// TestSyncCursor: with syncprov, the cursor is a content sync cookie and
// only the entry changed since comes back; a cookie the server does not
// know starts over.
func TestSyncCursor(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	c := open(t, nhiSystem(base, nil))
	var names []string
	collect := func(o nhisync.Observation) error { names = append(names, o.Values[0].Text()); return nil }
	cur, err := c.Changes(t.Context(), "", collect)
	if err != nil || len(names) != 3 || !strings.HasPrefix(cur, "sync:") {
		t.Fatalf("first sync: %v %q %v", names, cur, err)
	}
	mod := ldap.NewModifyRequest("uid=svc-ci,ou=serviceaccounts,"+base, nil)
	mod.Replace("nhiClassification", []string{"pii"})
	if err := admin(t, ldaptest.Suffix).Modify(mod); err != nil {
		t.Fatal(err)
	}
	names = nil
	next, err := c.Changes(t.Context(), cur, collect)
	if err != nil || !slices.Equal(names, []string{"svc-ci"}) {
		t.Errorf("sync after one modify: %v %v", names, err)
	}
	names = nil
	if _, err := c.Changes(t.Context(), next, collect); err != nil || len(names) != 0 {
		t.Errorf("sync with nothing new: %v %v", names, err)
	}
	names = nil
	if _, err := c.Changes(t.Context(), "sync:Ym9ndXM=", collect); err != nil || len(names) != 3 {
		t.Errorf("sync from an unknown cookie: %v %v, want every entry", names, err)
	}
}

// TestTLSAndBind: ldaps:// and StartTLS with ca_file; a server whose CA is
// not trusted is refused; the bind password comes only from the
// environment or a file and never shows in a message.
func TestTLSAndBind(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "ldap.pw")
	if err := os.WriteFile(pwFile, []byte(ldaptest.AdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]nhisync.Settings{
		"ldaps":         {"url": srv.LDAPSURL, "ca_file": srv.CAFile},
		"starttls":      {"start_tls": true, "ca_file": srv.CAFile},
		"password file": {"bind_password": "file:" + pwFile},
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t, nhiSystem(base, s))
			if err := c.Check(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := len(snapshot(t, c)); n != 3 {
				t.Errorf("%d entries", n)
			}
		})
	}
	for name, tc := range map[string]struct {
		s        nhisync.Settings
		code     string
		fragment string
	}{
		"untrusted CA":       {nhisync.Settings{"url": srv.LDAPSURL}, nhisync.EUNAVAIL, "cannot reach"},
		"literal password":   {nhisync.Settings{"bind_password": ldaptest.AdminPassword}, nhisync.EINVALID, "env:VARIABLE or file:PATH"},
		"unset variable":     {nhisync.Settings{"bind_password": "env:NHISYNC_TEST_NO_SUCH_VAR"}, nhisync.EINVALID, "NHISYNC_TEST_NO_SUCH_VAR is not set"},
		"wrong password":     {nhisync.Settings{"bind_password": "env:" + passwordEnv + "_WRONG"}, nhisync.EINVALID, "invalid credentials"},
		"bad filter":         {nhisync.Settings{"filter": "(uid=a"}, nhisync.EINVALID, "filter"},
		"bad scope":          {nhisync.Settings{"scope": "deep"}, nhisync.EINVALID, "scope"},
		"missing base":       {nhisync.Settings{"base_dn": ""}, nhisync.EINVALID, "set base_dn"},
		"url with password":  {nhisync.Settings{"url": "ldap://u:p@127.0.0.1"}, nhisync.EINVALID, "no credentials"},
		"starttls on ldaps":  {nhisync.Settings{"url": srv.LDAPSURL, "start_tls": true}, nhisync.EINVALID, "start_tls"},
		"provision, no rule": {nil, nhisync.EINVALID, "create:"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(passwordEnv+"_WRONG", "not-the-password-42")
			sys := nhiSystem(base, tc.s)
			if name == "provision, no rule" {
				sys.Provision = true
			}
			_, err := nldap.New(t.Context(), sys, nhiKind())
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if nhisync.ErrorCode(err) != tc.code || !strings.Contains(nhisync.ErrorMessage(err), tc.fragment) {
				t.Errorf("error %s %q, want %s with %q", nhisync.ErrorCode(err), nhisync.ErrorMessage(err), tc.code, tc.fragment)
			}
			for _, secret := range []string{ldaptest.AdminPassword, "not-the-password-42"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
		})
	}
}

// TestProvision: a new entry is named by create.rdn under base_dn, with
// create.object_classes; its entryUUID is the id.
func TestProvision(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	sys := nhiSystem(base, nhisync.Settings{"create": map[string]any{"object_classes": []any{"account", "nhiServiceAccount"}, "rdn": "uid"}})
	sys.Provision = true
	c := open(t, sys)
	w := nhisync.Write{Create: true, Changes: []nhisync.Change{
		{Field: "name", New: nhisync.Str("svc, new+one")},
		{Field: "owner", New: nhisync.Str("bob")},
		{Field: "classification", New: nhisync.SetOf("pii")},
	}}
	for try := range 2 {
		res, err := c.Apply(t.Context(), []nhisync.Write{w})
		if err != nil || res[0].Status != nhisync.WriteApplied || len(res[0].ID) != 36 {
			t.Fatalf("try %d: %v %v", try, res, err)
		}
	}
	got := snapshot(t, c)
	n := got["svc, new+one"]
	if n.Values[1].Text() != "bob" || n.Values[2].String() != "pii" {
		t.Errorf("the new entry reads %v", n.Values)
	}
	if len(got) != 4 {
		t.Errorf("%d entries after a create retried once, want 4", len(got))
	}
}

// TestWatch: with syncprov, Watch subscribes (changed(nil)), then hands
// on the entryUUID of each entry modified; on a suffix without syncprov it
// fails at once with EUNAVAIL so the caller polls.
func TestWatch(t *testing.T) {
	base := directory(t, ldaptest.Suffix)
	c := open(t, nhiSystem(base, nil))
	ids := snapshot(t, c)
	ch := make(chan []string, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, func(x []string) { ch <- x }) }()
	next := func() []string {
		select {
		case x := <-ch:
			return x
		case err := <-done:
			t.Fatalf("Watch ended: %v", err)
		}
		return nil
	}
	if first := next(); first != nil {
		t.Fatalf("first call %v, want nil (subscribed)", first)
	}
	ldapModify(t, "uid=svc-ci,ou=serviceaccounts,"+base, "nhiLifecycle", "suspended")
	if got := next(); !slices.Equal(got, []string{ids["svc-ci"].ID}) {
		t.Errorf("after a modify: %v, want svc-ci's entryUUID %s", got, ids["svc-ci"].ID)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}

	plain := directory(t, ldaptest.PlainSuffix)
	p := open(t, nhiSystem(plain, nhisync.Settings{"bind_dn": ldaptest.PlainAdminDN}))
	if _, err := p.Changes(t.Context(), "", func(nhisync.Observation) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := p.Watch(t.Context(), func([]string) {}); nhisync.ErrorCode(err) != nhisync.EUNAVAIL {
		t.Errorf("Watch without syncprov: %v, want EUNAVAIL", err)
	}
}

func ldapModify(t *testing.T, dn, attr string, vals ...string) {
	t.Helper()
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace(attr, vals)
	if err := admin(t, ldaptest.Suffix).Modify(mod); err != nil {
		t.Fatal(err)
	}
}
