//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplicasFailoverOnPostgres starts three `serve` replicas (the built
// binary, free loopback ports) on one PostgreSQL store and file/SQLite
// systems, with 2 s feed leases. It SIGKILLs the replica holding the
// CMDB's feed lease, changes the CMDB, and sees the change reach the
// catalog through another replica within the lease period plus a few
// seconds; every replica answers /readyz; at the end a sync plans no
// write and the audit log verifies.
func TestReplicasFailoverOnPostgres(t *testing.T) {
	bin := binary(t)
	w := newServeWorkspace(t)
	storeURL := newPGDatabase(t)
	w.useStore(t, storeURL)
	w.ok(t, "sync") // one first pass, so the replicas start from a synced store
	var ps []*servedProcess
	for range 3 {
		ps = append(ps, startServe(t, bin, w.config, "--lease", "2s"))
	}
	db, err := pgx.Connect(t.Context(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	holder := func(lease string) string {
		var h string
		if err := db.QueryRow(t.Context(), `SELECT holder FROM leases WHERE name = $1`, lease).Scan(&h); err != nil {
			return ""
		}
		return h
	}
	byPid := func(h string) *servedProcess {
		for _, p := range ps {
			if strings.HasSuffix(h, fmt.Sprintf("/%d", p.cmd.Process.Pid)) {
				return p
			}
		}
		return nil
	}
	var victim *servedProcess
	eventually(t, "a replica holding the cmdb feed lease", ps[0], func() bool {
		victim = byPid(holder("feed/cmdb"))
		return victim != nil
	})
	for _, p := range ps {
		if code, _ := httpGet(p.url + "/readyz"); code != 200 {
			t.Fatalf("replica %s: /readyz = %d", p.url, code)
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	killed := time.Now()
	var rest []*servedProcess
	for _, p := range ps {
		if p != victim {
			rest = append(rest, p)
		}
	}
	csv := w.path("cmdb.csv")
	b, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, csv+".edit", strings.Replace(string(b), "ana@example.com", "zed@example.com", 1))
	if err := os.Rename(csv+".edit", csv); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the CMDB's change in the catalog after the kill", rest[0], fileHas(w.path("catalog.json"), "zed@example.com"))
	took := time.Since(killed)
	// The killed replica's feed lease passes to a live one once it runs
	// out.
	eventually(t, "a live replica holding the cmdb feed lease", rest[0], func() bool {
		h := byPid(holder("feed/cmdb"))
		return h != nil && h != victim
	})
	t.Logf("the cmdb feed lease passed to a live replica %v after the kill", time.Since(killed).Round(time.Millisecond))
	// The replica holding it says so in its metrics; the other does not.
	newHolder := byPid(holder("feed/cmdb"))
	for _, p := range rest {
		want := `nhisync_leases_held{lease="feed/cmdb"} 0`
		if p == newHolder {
			want = `nhisync_leases_held{lease="feed/cmdb"} 1`
		}
		eventually(t, "the cmdb feed lease in /metrics: "+want, p, func() bool {
			_, body := httpBody(p.url + "/metrics")
			return strings.Contains(body, want)
		})
	}
	// A second change, made while only live replicas hold the feed.
	b, err = os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, csv+".edit", strings.Replace(string(b), "bo@example.com", "yu@example.com", 1))
	if err := os.Rename(csv+".edit", csv); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second change in the catalog", rest[0], fileHas(w.path("catalog.json"), "yu@example.com"))
	t.Logf("the change reached the catalog %v after the kill (lease 2s)", took.Round(time.Millisecond))
	if took > 12*time.Second {
		t.Errorf("the change took %v after the kill, want within the 2s lease plus a few seconds", took)
	}
	for _, p := range rest {
		if code := p.stop(t); code != 0 {
			t.Errorf("replica exited %d after SIGTERM\n%s", code, p.log())
		}
	}
	var sum obj
	w.json(t, &sum, "sync")
	if n := sum["writes_applied"].(float64) + sum["writes_planned"].(float64); n != 0 {
		t.Errorf("a sync after the replicas planned or applied %v writes: %v", n, sum)
	}
	w.ok(t, "audit", "verify")
	// Each write was applied once: no two write.applied entries carry
	// the same record, system, field and value.
	var dups int
	err = db.QueryRow(t.Context(), `SELECT count(*) FROM (
		SELECT e->>'record', e->>'system', e->>'field', e->'new', e->'fields' FROM (SELECT convert_from(leaf, 'UTF8')::jsonb AS e FROM audit) a
		WHERE e->>'action' = 'write.applied' GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1) d`).Scan(&dups)
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM audit WHERE convert_from(leaf, 'UTF8')::jsonb->>'action' = 'write.applied'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if dups != 0 || applied == 0 {
		t.Errorf("the audit log holds %d writes applied, %d of them more than once", applied, dups)
	}
}
