package ldap_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/ldap"
	"github.com/nhisync/nhisync/connector/ldap/ldaptest"
)

// srv is the slapd every test of this package uses: started once for the
// test binary, stopped at its end. A machine without slapd fails the
// tests (scripts/deps installs it).
var srv *ldaptest.Server

// passwordEnv holds the bind password the tests' systems read.
const passwordEnv = "NHISYNC_TEST_LDAP_PASSWORD"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nhisync-ldap-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = ldaptest.Start(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "the ldap connector's tests need OpenLDAP slapd: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv(passwordEnv, ldaptest.AdminPassword)
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func admin(t testing.TB, suffix string) *ldap.Conn {
	t.Helper()
	c, err := srv.Admin(suffix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// subtree makes a fresh organizational unit under suffix for one test and
// deletes it, with everything under it, when the test ends.
func subtree(t testing.TB, suffix string) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	ou := "ou=t" + hex.EncodeToString(b) + "," + suffix
	c := admin(t, suffix)
	req := ldap.NewAddRequest(ou, nil)
	req.Attribute("objectClass", []string{"organizationalUnit"})
	req.Attribute("ou", []string{strings.TrimPrefix(strings.Split(ou, ",")[0], "ou=")})
	if err := c.Add(req); err != nil {
		t.Fatalf("add %s: %v", ou, err)
	}
	t.Cleanup(func() {
		c, err := srv.Admin(suffix)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		res, err := c.SearchWithPaging(ldap.NewSearchRequest(ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil), 1000)
		if err != nil {
			t.Errorf("clean %s: %v", ou, err)
			return
		}
		dns := make([]string, len(res.Entries))
		for i, e := range res.Entries {
			dns[i] = e.DN
		}
		// Deepest first: children before their parents.
		sort.Slice(dns, func(i, j int) bool { return strings.Count(dns[i], ",") > strings.Count(dns[j], ",") })
		for _, dn := range dns {
			if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
				t.Errorf("delete %s: %v", dn, err)
			}
		}
	})
	return ou
}

// ldapHarness keeps the suite's records as entries of class
// nhiConnTestRecord, named sysid=ID, under a fresh subtree per system.
type ldapHarness struct {
	suffix string
}

func (h *ldapHarness) Features() conntest.Features { return conntest.Features{} }

// attrs turns a suite record into attribute values: empty values left
// out, set elements unique, times as GeneralizedTime.
func attrs(rec map[string]any) map[string][]string {
	out := map[string][]string{}
	for k, v := range rec {
		var vals []string
		switch v := v.(type) {
		case string:
			if strings.TrimSpace(v) != "" {
				vals = []string{v}
			}
		case []string:
			for _, e := range v {
				if e = strings.TrimSpace(e); e != "" && !slices.Contains(vals, e) {
					vals = append(vals, e)
				}
			}
		}
		if k == conntest.RotatedName {
			for i, s := range vals {
				if t, ok := nhisync.ParseTime(s); ok {
					vals[i] = strings.TrimSuffix(strings.TrimRight(t.Format("20060102150405.000000000"), "0"), ".") + "Z"
				}
			}
		}
		out[k] = vals
	}
	return out
}

func (h *ldapHarness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	ou := subtree(t, h.suffix)
	sys.Settings = nhisync.Settings{
		"url": srv.URL, "bind_dn": "cn=admin," + h.suffix, "bind_password": "env:" + passwordEnv,
		"base_dn": ou, "scope": "one", "filter": "(objectClass=nhiConnTestRecord)",
		"create": map[string]any{"object_classes": []any{"nhiConnTestRecord"}, "rdn": conntest.NameName},
	}
	c := admin(t, h.suffix)
	for _, r := range recs {
		id, _ := r[conntest.IDName].(string)
		req := ldap.NewAddRequest(conntest.IDName+"="+ldap.EscapeDN(id)+","+ou, nil)
		req.Attribute("objectClass", []string{"nhiConnTestRecord"})
		for k, vals := range attrs(r) {
			if len(vals) > 0 {
				req.Attribute(k, vals)
			}
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("add %s: %v", req.DN, err)
		}
	}
}

func (h *ldapHarness) find(t *testing.T, sys *nhisync.System, id string) *ldap.Entry {
	t.Helper()
	res, err := admin(t, h.suffix).Search(ldap.NewSearchRequest(sys.Settings.String("base_dn"), ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"("+conntest.IDName+"="+ldap.EscapeFilter(id)+")", []string{"*"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) == 0 {
		return nil
	}
	return res.Entries[0]
}

func (h *ldapHarness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	e := h.find(t, sys, id)
	if e == nil {
		t.Fatalf("Edit: no entry %s", id)
	}
	req := ldap.NewModifyRequest(e.DN, nil)
	for k, vals := range attrs(native) {
		req.Replace(k, vals)
	}
	if err := admin(t, h.suffix).Modify(req); err != nil {
		t.Fatal(err)
	}
}

func (h *ldapHarness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	if e := h.find(t, sys, id); e != nil {
		if err := admin(t, h.suffix).Del(ldap.NewDelRequest(e.DN, nil)); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *ldapHarness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	e := h.find(t, sys, id)
	if e == nil {
		return nil
	}
	out := map[string]any{}
	for _, a := range e.Attributes {
		if len(a.Values) == 1 {
			out[a.Name] = a.Values[0]
		} else {
			out[a.Name] = a.Values
		}
	}
	return out
}

// TestConformanceLDAP runs the suite on the suffix with syncprov, so
// Changes is an RFC 4533 content sync. (The modifyTimestamp cursor has
// whole seconds, so the suite's "at most one boundary record" cannot hold
// for entries made in one second; TestModifyTimestampCursor covers it.)
func TestConformanceLDAP(t *testing.T) {
	conntest.Run(t, "ldap", &ldapHarness{suffix: ldaptest.Suffix})
}
