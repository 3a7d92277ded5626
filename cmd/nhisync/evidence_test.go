package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/quickstart"
)

// corruptStoreTable overwrites the root page of a table of the store at
// path (closed) with garbage.
func corruptStoreTable(t *testing.T, path, table string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xde\xad\xbe\xef", int(pageSize/4))), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStoreWritesNoSystem (issue 6 finding 14): a pass on a corrupt
// store stops, says the store is corrupt and what to do, and writes
// nothing to any system, though it had a write for the CMDB to make.
func TestCorruptStoreWritesNoSystem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		table   string
		unclean bool // a WAL left behind, as by a killed process
	}{
		{"after an unclean shutdown", "links", true},
		{"found while running", "records", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
			editFile(t, w.path("systems/catalog.yaml"), "  tags:\n    - confidential\n  policy: monitor\n", "  tags:\n    - confidential\n    - pii\n  policy: monitor\n")
			var plan obj
			w.json(t, &plan, "plan")
			if n := intOf(t, "plan", objOf(t, "plan", objOf(t, "plan", objOf(t, "plan", plan, "summary"), "systems"), "cmdb"), "planned"); n == 0 {
				t.Fatalf("the edit plans no write to the CMDB; the test would prove nothing: %v", plan)
			}
			store := w.path(quickstart.DataDir + "/nhisync.db")
			corruptStoreTable(t, store, tc.table)
			if tc.unclean {
				writeFile(t, store+"-wal", "")
			}
			cmdb := readFile(t, w.path("systems/cmdb.csv"))
			r := w.run(t, "sync")
			if r.code == exitOK || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, "backup") {
				t.Errorf("sync on a corrupt store: exit %d, stderr %q; want a failure naming the corruption and the remedy", r.code, r.stderr)
			}
			if got := readFile(t, w.path("systems/cmdb.csv")); got != cmdb {
				t.Errorf("sync on a corrupt store wrote to the CMDB")
			}
		})
	}
}

// storeDB opens a workspace's store behind nhisync's back, as an attacker
// with file access would, with the audit log's triggers dropped.
func storeDB(t *testing.T, w *workspace) *sql.DB {
	t.Helper()
	db := openDB(t, w.path(quickstart.DataDir+"/nhisync.db"))
	t.Cleanup(func() { db.Close() })
	for _, trg := range []string{"audit_no_update", "audit_no_delete", "audit_append"} {
		if _, err := db.Exec("DROP TRIGGER IF EXISTS " + trg); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// rechain edits entries from seq on with edit and seals each again after
// the previous one, so the hash chain holds: what an attacker who cannot
// sign does after deleting the checkpoints.
func rechain(t *testing.T, db *sql.DB, from int64, edit func(e *nhisync.AuditEntry)) {
	t.Helper()
	var prev string
	if from > 1 {
		if err := db.QueryRow(`SELECT hash FROM audit WHERE seq = ?`, from-1).Scan(&prev); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(`SELECT seq, leaf FROM audit WHERE seq >= ? ORDER BY seq`, from)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq  int64
		leaf []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.leaf); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}()
	for _, r := range all {
		e := &nhisync.AuditEntry{}
		if err := json.Unmarshal(r.leaf, e); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(e)
		}
		leaf := e.Seal(prev)
		prev = e.Hash
		if _, err := tx.Exec(`UPDATE audit SET leaf = ?, hash = ? WHERE seq = ?`, leaf, e.Hash, r.seq); err != nil {
			t.Fatal(err)
		}
	}
}

// appendEntry appends a chained entry after the last one.
func appendEntry(t *testing.T, db *sql.DB, e *nhisync.AuditEntry) {
	t.Helper()
	var seq int64
	var prev string
	if err := db.QueryRow(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev); err != nil {
		t.Fatal(err)
	}
	e.Seq = seq + 1
	leaf := e.Seal(prev)
	if _, err := db.Exec(`INSERT INTO audit (seq, record_id, leaf, hash) VALUES (?, NULL, ?, ?)`, e.Seq, leaf, e.Hash); err != nil {
		t.Fatal(err)
	}
}

// verifyFails runs audit verify (with extra args) and wants a failure
// whose message holds each of mentions.
func verifyFails(t *testing.T, w *workspace, what string, args []string, mentions ...string) {
	t.Helper()
	r := w.run(t, append([]string{"audit", "verify"}, args...)...)
	if r.code == exitOK {
		t.Errorf("%s: audit verify passed:\n%s", what, r.stdout)
		return
	}
	for _, m := range mentions {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("%s: audit verify says %q, want it to mention %q", what, r.stderr, m)
		}
	}
}

// TestAuditEvidenceNotForgeable (issue 6 finding 9): every way of quietly
// rewriting the log that the probe found verifies no longer.
func TestAuditEvidenceNotForgeable(t *testing.T) {
	t.Run("checkpoints deleted, entries edited and re-chained", func(t *testing.T) {
		w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
		db := storeDB(t, w)
		if _, err := db.Exec(`DELETE FROM checkpoints`); err != nil {
			t.Fatal(err)
		}
		rechain(t, db, 5, func(e *nhisync.AuditEntry) {
			if e.Seq == 5 {
				e.Actor = "person:mallory"
			}
		})
		verifyFails(t, w, "re-chained log without checkpoints", nil, "entries 1 to", "not covered by any signed checkpoint")
	})
	t.Run("entry appended after the last checkpoint", func(t *testing.T) {
		w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
		var head int64
		db := storeDB(t, w)
		if err := db.QueryRow(`SELECT max(seq) FROM audit`).Scan(&head); err != nil {
			t.Fatal(err)
		}
		appendEntry(t, db, &nhisync.AuditEntry{Time: time.Now().UTC(), Actor: "person:mallory", Action: nhisync.ActApprovalGranted, Reason: "forged"})
		db.Close()
		verifyFails(t, w, "forged tail", nil, fmt.Sprintf("entries %d to %d are not covered", head+1, head+1))
		// The next pass refuses to sign what it did not write.
		editFile(t, w.path("systems/catalog.yaml"), "  tags:\n    - confidential\n  policy: monitor\n", "  tags:\n    - confidential\n    - pii\n  policy: monitor\n")
		cmdb := readFile(t, w.path("systems/cmdb.csv"))
		r := w.run(t, "sync")
		if r.code == exitOK || !strings.Contains(r.stderr, "no signed checkpoint covers") {
			t.Errorf("sync over a forged tail: exit %d, stderr %q; want a refusal naming the uncovered entries", r.code, r.stderr)
		}
		if readFile(t, w.path("systems/cmdb.csv")) != cmdb {
			t.Error("sync over a forged tail wrote to the CMDB")
		}
		verifyFails(t, w, "forged tail after a refused sync", nil, fmt.Sprintf("entries %d to %d are not covered", head+1, head+1))
	})
	t.Run("record_id emptied", func(t *testing.T) {
		w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
		db := storeDB(t, w)
		var seq int64
		if err := db.QueryRow(`SELECT min(seq) FROM audit WHERE record_id IS NOT NULL`).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE audit SET record_id = NULL`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		verifyFails(t, w, "record_id emptied", nil, fmt.Sprintf("entry %d: stored record_id differs from its hashed contents", seq))
	})
}

// TestAuditVerifyAgainstKeptCheckpoint (issue 6 finding 9): a rollback and
// a rewrite re-signed with the stored key both verify on their own (the
// store cannot tell), and both are caught against the checkpoints
// published outside the store.
func TestAuditVerifyAgainstKeptCheckpoint(t *testing.T) {
	newPublished := func(t *testing.T) (*workspace, string) {
		w := newQuickstart(t, quickstart.Options{Seed: 1}, false)
		editFile(t, w.config, "  signing_key: ./nhisync-data/audit.key\n", "  signing_key: ./nhisync-data/audit.key\n  publish: ./published/checkpoints.txt\n")
		w.ok(t, "sync")
		editFile(t, w.path("systems/catalog.yaml"), "  tags:\n    - confidential\n  policy: monitor\n", "  tags:\n    - confidential\n    - pii\n  policy: monitor\n")
		w.ok(t, "sync")
		published := w.path("published/checkpoints.txt")
		w.ok(t, "audit", "verify", "--against", published)
		return w, published
	}
	t.Run("rollback", func(t *testing.T) {
		w, published := newPublished(t)
		db := storeDB(t, w)
		var first int64
		if err := db.QueryRow(`SELECT min(size) FROM checkpoints`).Scan(&first); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`DELETE FROM audit WHERE seq > ?`, `DELETE FROM checkpoints WHERE size > ?`} {
			if _, err := db.Exec(q, first); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		w.ok(t, "audit", "verify") // the store alone cannot tell
		verifyFails(t, w, "rolled back log", []string{"--against", published}, "kept checkpoint", "rolled back")
	})
	t.Run("rewritten and re-signed with the stored key", func(t *testing.T) {
		w, published := newPublished(t)
		db := storeDB(t, w)
		rechain(t, db, 3, func(e *nhisync.AuditEntry) {
			if e.Seq == 3 {
				e.Actor = "person:mallory"
			}
		})
		if _, err := db.Exec(`DELETE FROM checkpoints`); err != nil {
			t.Fatal(err)
		}
		// Sign the rewritten log afresh with the key the store keeps.
		signer, err := audit.LoadOrCreateKey(w.path(quickstart.DataDir+"/audit.key"), "nhisync")
		if err != nil {
			t.Fatal(err)
		}
		n, err := audit.NewNotary(signer, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var leaves [][]byte
		rows, err := db.Query(`SELECT leaf FROM audit ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var leaf []byte
			if err := rows.Scan(&leaf); err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, nhisync.LeafHash(leaf))
		}
		rows.Close()
		cp, err := n.Extend(nil, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO checkpoints (size, root, note, at) VALUES (?, ?, ?, ?)`, cp.Size, cp.Root, cp.Note, "2026-11-29T00:00:00.000000000Z"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		w.ok(t, "audit", "verify") // the store alone cannot tell
		verifyFails(t, w, "re-signed log", []string{"--against", published}, "kept checkpoint", "do not hash to the root it signed")
	})
}

// TestPreconditionsBeforeAnything (issue 6 finding 11): a signing key or an
// HMAC secret that others can read stops sync before it reads or writes
// anything: no system written, no audit entry appended.
func TestPreconditionsBeforeAnything(t *testing.T) {
	for _, file := range []string{"audit.key", "audit.hmac"} {
		t.Run(file, func(t *testing.T) {
			w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
			editFile(t, w.path("systems/catalog.yaml"), "  tags:\n    - confidential\n  policy: monitor\n", "  tags:\n    - confidential\n    - pii\n  policy: monitor\n")
			db := openDB(t, w.path(quickstart.DataDir+"/nhisync.db"))
			var before int64
			if err := db.QueryRow(`SELECT count(*) FROM audit`).Scan(&before); err != nil {
				t.Fatal(err)
			}
			db.Close()
			if err := os.Chmod(w.path(quickstart.DataDir+"/"+file), 0o644); err != nil {
				t.Fatal(err)
			}
			cmdb := readFile(t, w.path("systems/cmdb.csv"))
			r := w.run(t, "sync")
			if r.code != exitInvalid || !strings.Contains(r.stderr, "readable by group or others") || !strings.Contains(r.stderr, "chmod 600") {
				t.Errorf("sync with a 0644 %s: exit %d, stderr %q; want exit 2 naming the mode and the fix", file, r.code, r.stderr)
			}
			if readFile(t, w.path("systems/cmdb.csv")) != cmdb {
				t.Errorf("sync with a 0644 %s wrote to the CMDB", file)
			}
			db = openDB(t, w.path(quickstart.DataDir+"/nhisync.db"))
			defer db.Close()
			var after int64
			if err := db.QueryRow(`SELECT count(*) FROM audit`).Scan(&after); err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Errorf("sync with a 0644 %s appended %d audit entries", file, after-before)
			}
		})
	}
}

const sensitiveWorkspace = `version: 1
kinds:
  sa:
    match: [name]
    create_from: [a]
    fields:
      name:  { type: string, required: true }
      owner: { type: string, sensitive: true, approve_to: [b] }
      token: { type: string, sensitive: true, resolve: manual }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
systems:
  a: { connector: file, path: a.json, kind: sa, id: id, fields: { name: name, owner: owner, token: token } }
  b: { connector: file, path: b.json, kind: sa, id: id, fields: { name: name, owner: owner, token: token } }
`

// TestSensitiveListingsRedacted (issue 6 finding 10): explain, show,
// records, quarantine, conflicts and approvals print a redaction for
// sensitive values, in tables and JSON; --reveal prints them for a steward
// and is audited.
func TestSensitiveListingsRedacted(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"nhisync.yaml": sensitiveWorkspace,
		"a.json":       `[{"id": "1", "name": "bot", "owner": "ana@x", "token": "tok-alpha"}]`,
		"b.json":       `[{"id": "1", "name": "bot"}]`,
	})
	secrets := []string{"ana@x", "payments team", "tok-alpha", "tok-bravo", "tok-charlie"}
	var all strings.Builder
	noSecret := func(what, out string) {
		t.Helper()
		all.WriteString(out)
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("nhisync %s prints the sensitive value %q:\n%s", what, s, out)
			}
		}
	}
	for _, args := range [][]string{{"plan"}, {"plan", "-o", "json"}, {"sync", "-v"}} {
		noSecret(strings.Join(args, " "), w.ok(t, args...))
	}
	writeFile(t, w.path("a.json"), `[{"id": "1", "name": "bot", "owner": "payments team", "token": "tok-bravo"}]`)
	writeFile(t, w.path("b.json"), `[{"id": "1", "name": "bot", "token": "tok-charlie"}]`)
	for _, args := range [][]string{{"plan"}, {"plan", "-o", "json"}, {"sync", "-v"}} {
		noSecret(strings.Join(args, " "), w.ok(t, args...))
	}
	for _, args := range [][]string{
		{"explain", "sa/bot", "owner"}, {"explain", "sa/bot", "token"}, {"show", "sa/bot"}, {"records"},
		{"quarantine"}, {"conflicts"}, {"approvals"}, {"history", "sa/bot"}, {"audit", "export"},
	} {
		for _, json := range []bool{false, true} {
			a := args
			if json {
				a = append(slices.Clone(args), "-o", "json")
			}
			noSecret(strings.Join(a, " "), w.ok(t, a...))
		}
	}
	if !strings.Contains(all.String(), nhisync.Redacted) {
		t.Error("no listing shows the redaction: the test saw no sensitive value at all")
	}
	// A steward may see them, and that is audited.
	out := w.ok(t, "explain", "sa/bot", "token", "--reveal")
	if !strings.Contains(out, "tok-bravo") || !strings.Contains(out, "tok-charlie") {
		t.Errorf("explain --reveal does not print the proposals in clear:\n%s", out)
	}
	var entries []obj
	for line := range strings.Lines(w.ok(t, "audit", "export")) {
		var e obj
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	last := entries[len(entries)-1]
	if last["action"] != nhisync.ActSensitiveRevealed || last["field"] != "token" || !strings.HasPrefix(fmt.Sprint(last["actor"]), nhisync.PersonPrefix) {
		t.Errorf("the reveal is not audited with who and what: last entry %v", last)
	}
	w.ok(t, "audit", "verify")
}

// TestPublishSeededOnFirstRun (issue 6 finding 9): audit.publish set on a
// workspace that already has a log keeps its latest checkpoint from the
// next command on, and the log verifies against it.
func TestPublishSeededOnFirstRun(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	editFile(t, w.config, "  signing_key: ./nhisync-data/audit.key\n", "  signing_key: ./nhisync-data/audit.key\n  publish: ./published/checkpoints.txt\n")
	w.ok(t, "records")
	var rep obj
	w.json(t, &rep, "audit", "verify", "--against", w.path("published/checkpoints.txt"))
	if got, want := intOf(t, "verify", rep, "signed"), intOf(t, "verify", rep, "entries"); got != want {
		t.Errorf("verify against the seeded file: signed %d of %d entries", got, want)
	}
}
