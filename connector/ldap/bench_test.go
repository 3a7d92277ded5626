package ldap_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nldap "github.com/nhisync/nhisync/connector/ldap"
	"github.com/nhisync/nhisync/connector/ldap/ldaptest"
)

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("NHISYNC_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// fillLDAP adds n suite records under a fresh subtree, from four
// connections at once.
func fillLDAP(b *testing.B, n int) string {
	b.Helper()
	ou := subtree(b, ldaptest.Suffix)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := srv.Admin(ldaptest.Suffix)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < n; i += 4 {
				r := conntest.Record(i)
				req := ldap.NewAddRequest(fmt.Sprintf("%s=%s,%s", conntest.IDName, r[conntest.IDName], ou), nil)
				req.Attribute("objectClass", []string{"nhiConnTestRecord"})
				for k, vals := range attrs(r) {
					if len(vals) > 0 {
						req.Attribute(k, vals)
					}
				}
				if err := c.Add(req); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return ou
}

// BenchmarkSnapshotLDAP: the connector's paged snapshot of n entries
// beside ldapsearch reading the same attributes with the same page size.
func BenchmarkSnapshotLDAP(b *testing.B) {
	n := benchN()
	ou := fillLDAP(b, n)
	attrsRead := []string{conntest.IDName, conntest.NameName, conntest.PlatformName, conntest.OwnerName,
		conntest.TagsName, conntest.StatusName, conntest.RotatedName}
	b.Run("connector", func(b *testing.B) {
		sys := conntest.System("bench", "ldap")
		sys.Settings = nhisync.Settings{"url": srv.URL, "bind_dn": ldaptest.AdminDN, "bind_password": "env:" + passwordEnv,
			"base_dn": ou, "scope": "one", "filter": "(objectClass=nhiConnTestRecord)"}
		c, err := nldap.New(b.Context(), sys, conntest.Kind())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			got := 0
			if err := c.Snapshot(b.Context(), func(nhisync.Observation) error { got++; return nil }); err != nil {
				b.Fatal(err)
			}
			if got != n {
				b.Fatalf("%d entries, want %d", got, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("go-ldap", func(b *testing.B) {
		// The client library alone, every page held in memory: what the
		// connector adds is decoding into observations.
		c, err := srv.Admin(ldaptest.Suffix)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		for b.Loop() {
			res, err := c.SearchWithPaging(ldap.NewSearchRequest(ou, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
				"(objectClass=nhiConnTestRecord)", attrsRead, nil), 500)
			if err != nil || len(res.Entries) != n {
				b.Fatalf("%v (%d entries)", err, len(res.Entries))
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("ldapsearch", func(b *testing.B) {
		args := append([]string{"-x", "-LLL", "-o", "ldif-wrap=no", "-H", srv.URL, "-D", ldaptest.AdminDN, "-w", ldaptest.AdminPassword,
			"-b", ou, "-s", "one", "-E", "pr=500/noprompt", "(objectClass=nhiConnTestRecord)"}, attrsRead...)
		b.ResetTimer()
		for b.Loop() {
			cmd := exec.Command("ldapsearch", args...) // stdout: the null device
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("ldapsearch: %v\n%s", err, stderr.String())
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
