//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/nhisync/nhisync/internal/storecodec"
	"github.com/nhisync/nhisync/quickstart"
)

// TestStalledSyncCannotCommitOnPostgres runs `nhisync sync` processes on
// one PostgreSQL store: one is stopped (SIGSTOP) while it holds the pass
// lease, its lease expires, another process takes the lease over and runs
// a whole pass; the stopped one, woken (SIGCONT), cannot commit (its fence
// is stale, or the server ended its stalled session) and fails. Syncing on
// then reaches what a clean run on SQLite reaches: the same golden
// records and system contents, and the audit log verifies.
//
// Where in its pass the stop lands is up to the scheduler: a stop that
// comes after the pass gave its lease back is not this scenario, and the
// test tries again with a shorter delay on a new store.
func TestStalledSyncCannotCommitOnPostgres(t *testing.T) {
	bin := binary(t)
	for _, delay := range []time.Duration{50 * time.Millisecond, 20 * time.Millisecond, 5 * time.Millisecond, 0} {
		if stalledSyncScenario(t, bin, delay) {
			return
		}
		t.Logf("the sync stopped %s into its pass had already given its lease back; again with a shorter delay", delay)
	}
	t.Fatal("no sync was stopped while it held the pass lease, even at once")
}

// stalledSyncScenario is one try of TestStalledSyncCannotCommitOnPostgres,
// the first sync stopped delay after it is seen holding the pass lease. It
// returns false, having checked nothing, when the stop came after that
// sync gave its lease back.
func stalledSyncScenario(t *testing.T, bin string, delay time.Duration) bool {
	root := t.TempDir()
	pgDir, refDir := filepath.Join(root, "pg"), filepath.Join(root, "reference")
	sc, err := quickstart.Generate(pgDir, quickstart.Options{Seed: 1, Accounts: 800})
	if err != nil {
		t.Fatal(err)
	}
	copyDir(t, pgDir, refDir)
	storeURL := newPGDatabase(t)
	w := &workspace{dir: pgDir, config: sc.ConfigPath}
	// The server ends a session stopped inside a transaction after 2 s.
	w.useStore(t, storeURL+"&idle_in_transaction_session_timeout=2000")
	c := proc{bin, sc.ConfigPath}
	r := proc{bin, filepath.Join(refDir, quickstart.ConfigFile)}
	r.syncUntilQuiet(t)

	db, err := pgx.Connect(t.Context(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	stalled := exec.Command(bin, "-c", c.config, "sync")
	var errb bytes.Buffer
	stalled.Stderr = &errb
	if err := stalled.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stalled.Wait() }()
	defer func() {
		_ = stalled.Process.Signal(syscall.SIGCONT)
		_ = stalled.Process.Kill()
	}()
	suffix := fmt.Sprintf("/%d", stalled.Process.Pid)
	for held := false; !held; {
		select {
		case err := <-done:
			t.Fatalf("the first sync ended (%v) before it was seen holding the pass lease: %s", err, errb.String())
		case <-time.After(5 * time.Millisecond):
		}
		var holder string
		err := db.QueryRow(t.Context(), `SELECT holder FROM leases WHERE name = 'pass'`).Scan(&holder)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) && !strings.Contains(err.Error(), "does not exist") {
			t.Fatal(err)
		}
		held = strings.HasSuffix(holder, suffix)
	}
	time.Sleep(delay) // into the pass
	if err := stalled.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Its lease runs out, as it would while the process stays stopped —
	// if it still holds it: a pass that ended before the stop gave it back.
	tag, err := db.Exec(t.Context(), `UPDATE leases SET expires = '2000-01-01T00:00:00.000000000Z' WHERE name = 'pass' AND holder LIKE '%' || $1`, suffix)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() == 0 {
		if err := stalled.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the first sync, stopped after its pass, failed: %v\n%s", err, errb.String())
		}
		return false
	}
	// The pass that takes over waits for the claims of the stopped one to
	// run out (its writes may be on their way). The stopped process may
	// hold a write transaction on the idp's SQLite file: the new pass's
	// writes to it then fail as the file is locked, said as such, and stay
	// queued with backoff; any other failure fails the test.
	taker := c.run(t, "sync", "-o", "json")
	retried := false
	if taker.code != exitOK {
		var sum struct {
			Systems map[string]struct {
				Failed     int    `json:"failed"`
				ReadFailed bool   `json:"read_failed"`
				Paused     bool   `json:"paused"`
				Error      string `json:"error"`
			} `json:"systems"`
		}
		if err := json.Unmarshal([]byte(taker.stdout), &sum); err != nil || len(sum.Systems) == 0 {
			t.Fatalf("the sync that took the lease over: exit %d\n%s%s", taker.code, taker.stdout, taker.stderr)
		}
		for name, ss := range sum.Systems {
			if ss.ReadFailed || ss.Paused || ss.Failed > 0 && !strings.Contains(ss.Error, "holds the table's lock") {
				t.Fatalf("the sync that took the lease over failed %s otherwise than on a lock the stopped process holds: %+v\n%s", name, ss, taker.stderr)
			}
			if ss.Failed > 0 {
				t.Logf("the sync that took the lease over found %s locked by the stopped one: %s", name, ss.Error)
				retried = true
			}
		}
		if !retried {
			t.Fatalf("the sync that took the lease over: exit %d with no system failed\n%s%s", taker.code, taker.stdout, taker.stderr)
		}
	}
	if err := stalled.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		msg := errb.String()
		if err == nil {
			t.Fatalf("the stalled sync committed after another process took its lease over and ran a pass:\n%s", msg)
		}
		// Under load the server may end the stalled session first
		// (idle_in_transaction_session_timeout): that is a loss of its
		// session, said as such, and equally keeps it from committing.
		if !strings.Contains(msg, "no longer holds the pass lease") && !strings.Contains(msg, "unreachable") && !strings.Contains(msg, "ended this process's session") {
			t.Errorf("the stalled sync failed without saying it lost its lease or its session: %v\n%s", err, msg)
		}
		t.Logf("the stalled sync: %v: %s", err, strings.TrimSpace(msg))
	case <-time.After(2 * time.Minute):
		t.Fatal("the stalled sync did not end within 2 minutes of SIGCONT")
	}
	if retried {
		// The writes the lock refused are retried after a backoff, and as
		// most of the taker's writes to that system failed, its pass
		// marked the system degraded: plain syncs rest it for its poll
		// interval (an hour). One sync that tries it anyway sends them.
		untilDue(t, db)
		var sum map[string]any
		c.json(t, &sum, "sync", "--retry-paused")
	}

	c.syncUntilQuiet(t)
	if d := cmp.Diff(goldenValues(t, r), goldenValues(t, c)); d != "" {
		t.Errorf("golden records differ from a clean run's (-reference +postgres):\n%s", d)
	}
	for _, f := range []string{quickstart.CMDBFile, quickstart.CatalogFile, quickstart.PolicyFile} {
		if want, got := readFile(t, filepath.Join(refDir, f)), readFile(t, filepath.Join(pgDir, f)); want != got {
			t.Errorf("%s differs from a clean run's (-reference +postgres):\n%s", f, lineDiff(want, got))
		}
	}
	if d := cmp.Diff(tableRows(t, filepath.Join(refDir, quickstart.IDPFile)), tableRows(t, filepath.Join(pgDir, quickstart.IDPFile))); d != "" {
		t.Errorf("%s rows differ from a clean run's:\n%s", quickstart.IDPFile, d)
	}
	if res := c.run(t, "audit", "verify"); res.code != exitOK {
		t.Errorf("audit verify: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	return true
}

// untilDue waits until every queued write of the store is due: until the
// latest next_at of a ready write, as the store holds it.
func untilDue(t *testing.T, db *pgx.Conn) {
	t.Helper()
	var last string
	if err := db.QueryRow(t.Context(), `SELECT coalesce(max(next_at), '') FROM outbox WHERE status = 'ready'`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last == "" {
		return
	}
	at, err := storecodec.ParseTime(last)
	if err != nil {
		t.Fatalf("a queued write's next_at %q: %v", last, err)
	}
	time.Sleep(time.Until(at))
}
