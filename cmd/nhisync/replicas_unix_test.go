//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplicasFailoverOnPostgres starts three `serve` replicas (the built
// binary, free loopback ports) on one PostgreSQL store and file/SQLite
// systems, with 2 s leases. It SIGKILLs the replica holding the CMDB's
// feed lease, changes the CMDB, and sees the change reach the catalog
// through another replica within the lease period plus a few seconds.
// Then it SIGSTOPs the replica caught holding the pass lease, past the
// lease: the other takes the pass lease over (its epoch grows) and
// carries a change through; SIGCONT: the stalled pass cannot commit (its
// fence is stale) and says so. Every replica answers /readyz; at the end
// a sync plans no write (every system equals golden), each write is
// audited once and the audit log verifies.
func TestReplicasFailoverOnPostgres(t *testing.T) {
	bin := binary(t)
	w := newServeWorkspace(t)
	storeURL := newPGDatabase(t)
	// The server ends a session stopped inside a transaction after 1.5 s,
	// so a stalled replica holds no lock the others wait on for long.
	w.useStore(t, storeURL+"&idle_in_transaction_session_timeout=1500")
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

	// The stall: a replica stopped while it holds the pass lease.
	edit := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(csv)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, csv+".edit", strings.Replace(string(b), from, to, 1))
		if err := os.Rename(csv+".edit", csv); err != nil {
			t.Fatal(err)
		}
	}
	owners := []string{"zed@example.com", "ann@example.com", "eve@example.com", "kim@example.com", "lu@example.com"}
	fenced := false
	for round := 1; !fenced && round < len(owners); round++ {
		stalled, epoch := stopPassHolder(t, db, rest)
		other := rest[0]
		if other == stalled {
			other = rest[1]
		}
		mark := len(stalled.log())
		stoppedAt := time.Now()
		// While it sleeps the CMDB changes; the other replica takes the
		// pass lease over once it runs out and carries the change.
		edit(owners[round-1], owners[round])
		eventually(t, "the other replica taking the pass lease over", other, func() bool {
			var e int64
			err := db.QueryRow(t.Context(), `SELECT epoch FROM leases WHERE name = 'pass'`).Scan(&e)
			return err == nil && e > epoch
		})
		eventually(t, "the change made during the stall in the catalog", other, fileHas(w.path("catalog.json"), owners[round]))
		t.Logf("round %d: the pass lease passed on and the change went through %v after the stop", round, time.Since(stoppedAt).Round(time.Millisecond))
		if err := stalled.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// The stalled pass's next commit (or lease renewal) is refused.
		var outcome map[string]any
		eventually(t, "the woken replica's stalled pass ending", stalled, func() bool {
			outcome = firstLogLine(stalled.log()[mark:], "pass failed", "pass done")
			return outcome != nil
		})
		if outcome["msg"] == "pass done" {
			// Stopped after its last commit: nothing was left to refuse.
			t.Logf("round %d: the replica was stopped after its pass's last commit; stalling again", round)
			continue
		}
		msg, _ := outcome["error"].(string)
		if !strings.Contains(msg, "lease") && !strings.Contains(msg, "claim") && !strings.Contains(msg, "session") {
			t.Fatalf("the stalled pass failed for another reason than its stale fence: %v\n%s", outcome, stalled.log()[mark:])
		}
		t.Logf("round %d: the woken replica's stale pass was refused: %s", round, msg)
		fenced = true
	}
	if !fenced {
		t.Fatalf("no replica was caught stalled before its pass's last commit in %d rounds", len(owners)-1)
	}
	// Both replicas work on: a change made now reaches the catalog.
	edit("yu@example.com", "max@example.com")
	eventually(t, "a change after the stall in the catalog", rest[0], fileHas(w.path("catalog.json"), "max@example.com"))
	for _, p := range rest {
		if code, _ := httpGet(p.url + "/readyz"); code != 200 {
			t.Fatalf("replica %s: /readyz = %d after the stall", p.url, code)
		}
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

// stopPassHolder watches the pass lease and SIGSTOPs the first of ps seen
// holding it, and still holding it once stopped (a pass, not one just
// ended). It returns the stopped replica and the lease's epoch then.
func stopPassHolder(t *testing.T, db *pgx.Conn, ps []*servedProcess) (*servedProcess, int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var holder string
		var epoch int64
		err := db.QueryRow(t.Context(), `SELECT holder, epoch FROM leases WHERE name = 'pass'`).Scan(&holder, &epoch)
		if err != nil {
			continue
		}
		for _, p := range ps {
			if !strings.HasSuffix(holder, fmt.Sprintf("/%d", p.cmd.Process.Pid)) {
				continue
			}
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			var now string
			var e int64
			if err := db.QueryRow(t.Context(), `SELECT holder, epoch FROM leases WHERE name = 'pass'`).Scan(&now, &e); err != nil {
				t.Fatal(err)
			}
			if now == holder && e == epoch {
				return p, epoch
			}
			if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatalf("no replica was seen holding the pass lease within 30s")
	return nil, 0
}

// firstLogLine returns the first JSON log line in logs whose msg is one of
// msgs, nil if none.
func firstLogLine(logs string, msgs ...string) map[string]any {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if msg, _ := m["msg"].(string); slices.Contains(msgs, msg) {
			return m
		}
	}
	return nil
}
