//go:build unix

package main

import (
	"bytes"
	"context"
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

	"github.com/nhisync/nhisync/quickstart"
)

// TestStalledSyncCannotCommitOnPostgres runs `nhisync sync` processes on
// one PostgreSQL store: one is stopped (SIGSTOP) while it holds the pass
// lease, its lease expires, another process takes the lease over and runs
// a whole pass; the stopped one, woken (SIGCONT), cannot commit (its fence
// is stale, or the server ended its stalled session) and fails. Syncing on
// then reaches what a clean run on SQLite reaches: the same golden
// records and system contents, and the audit log verifies.
func TestStalledSyncCannotCommitOnPostgres(t *testing.T) {
	bin := binary(t)
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
	time.Sleep(50 * time.Millisecond) // into the pass
	if err := stalled.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Its lease runs out, as it would while the process stays stopped.
	if _, err := db.Exec(t.Context(), `UPDATE leases SET expires = '2000-01-01T00:00:00.000000000Z' WHERE name = 'pass'`); err != nil {
		t.Fatal(err)
	}
	var sum obj
	c.json(t, &sum, "sync")
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
}
