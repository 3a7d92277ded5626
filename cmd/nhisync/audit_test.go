package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/nhisync/nhisync/quickstart"
)

// TestAudit checks the audit commands with tools that do not trust
// nhisync: an RFC 6962 verifier for the proof and a signed-note verifier
// for its checkpoint.
func TestAudit(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)

	var rep obj
	w.json(t, &rep, "audit", "verify")
	entries := intOf(t, "verify", rep, "entries")
	if rep["ok"] != true || entries == 0 || intOf(t, "verify", rep, "checkpoints") == 0 {
		t.Fatalf("audit verify -o json = %v, want ok with entries and a checkpoint", rep)
	}
	if out := w.ok(t, "audit", "verify"); !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify printed %q", out)
	}

	key := strings.TrimSpace(w.ok(t, "audit", "key"))
	if strings.Count(key, "\n") != 0 || strings.Count(key, "+") < 2 {
		t.Fatalf("audit key printed %q, want one verifier key in signed-note form", key)
	}
	var keyJSON obj
	w.json(t, &keyJSON, "audit", "key")
	if keyJSON["verifier_key"] != key || keyJSON["origin"] == "" {
		t.Errorf("audit key -o json = %v", keyJSON)
	}
	w.ok(t, "audit", "verify", "--key", key)
	verifier, err := note.NewVerifier(key)
	if err != nil {
		t.Fatalf("audit key is not a signed-note verifier key: %v", err)
	}

	t.Run("proof", func(t *testing.T) {
		const seq = 3
		var p obj
		w.json(t, &p, "audit", "proof", fmt.Sprint(seq))
		requireKeys(t, "proof", p, "leaf_index", "tree_size", "entry", "leaf_hash", "root_hash", "proof", "checkpoint")
		index, size := intOf(t, "proof", p, "leaf_index"), intOf(t, "proof", p, "tree_size")
		if index != seq-1 || size < seq {
			t.Errorf("leaf_index %d, tree_size %d for entry %d", index, size, seq)
		}
		b64 := func(s string) []byte {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("%q is not standard base64: %v", s, err)
			}
			return b
		}
		entry := b64(strOf(t, "proof", p, "entry"))
		leafHash := b64(strOf(t, "proof", p, "leaf_hash"))
		root := b64(strOf(t, "proof", p, "root_hash"))
		if want := sha256.Sum256(append([]byte{0}, entry...)); !bytes.Equal(leafHash, want[:]) {
			t.Errorf("leaf_hash is not SHA-256(0x00 ‖ entry)")
		}
		var e obj
		if err := json.Unmarshal(entry, &e); err != nil || intOf(t, "entry", e, "seq") != seq {
			t.Errorf("entry is not audit entry %d: %s (%v)", seq, entry, err)
		}
		var hashes [][]byte
		for _, h := range p["proof"].([]any) {
			hashes = append(hashes, b64(h.(string)))
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), leafHash, hashes, root); err != nil {
			t.Errorf("an RFC 6962 verifier refuses the proof: %v", err)
		}
		n, err := note.Open([]byte(strOf(t, "proof", p, "checkpoint")), note.VerifierList(verifier))
		if err != nil {
			t.Fatalf("the checkpoint does not verify with `audit key`: %v", err)
		}
		if lines := strings.Split(n.Text, "\n"); len(lines) < 3 || lines[1] != fmt.Sprint(size) || lines[2] != p["root_hash"] {
			t.Errorf("checkpoint text %q does not sign tree size %d and root %v", n.Text, size, p["root_hash"])
		}
		if out := w.ok(t, "audit", "proof", fmt.Sprint(seq)); !strings.Contains(out, fmt.Sprintf("entry %d (leaf %d)", seq, index)) {
			t.Errorf("audit proof table:\n%s", out)
		}
		for _, tc := range []struct {
			arg  string
			code int
		}{{"0", exitInvalid}, {"x", exitInvalid}, {fmt.Sprint(entries + 100), exitInvalid}} {
			if r := w.run(t, "audit", "proof", tc.arg); r.code != tc.code || r.stderr == "" {
				t.Errorf("audit proof %s: exit %d %q, want %d", tc.arg, r.code, r.stderr, tc.code)
			}
		}
	})

	t.Run("consistency", func(t *testing.T) {
		var c obj
		w.json(t, &c, "audit", "consistency", "3", fmt.Sprint(entries))
		requireKeys(t, "consistency", c, "old_size", "new_size", "old_root", "new_root", "proof")
	})

	t.Run("export", func(t *testing.T) {
		out := w.ok(t, "audit", "export")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != entries {
			t.Fatalf("export wrote %d lines, verify counted %d entries", len(lines), entries)
		}
		prev := ""
		for i, l := range lines {
			var e obj
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("line %d is not JSON: %v", i+1, err)
			}
			requireKeys(t, "exported entry", e, "seq", "time", "actor", "action", "prev_hash", "hash")
			if intOf(t, "export", e, "seq") != i+1 || e["prev_hash"] != prev {
				t.Fatalf("line %d: seq %v prev_hash %v, want seq %d chained to %q", i+1, e["seq"], e["prev_hash"], i+1, prev)
			}
			prev = e["hash"].(string)
		}
		part := w.ok(t, "audit", "export", "--from", "2", "--to", "4")
		if got := strings.Count(part, "\n"); got != 2 {
			t.Errorf("export --from 2 --to 4 wrote %d lines, want 2", got)
		}
	})
}

// TestAuditTamper edits one entry behind nhisync's back; verify must fail
// and name it.
func TestAuditTamper(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	w.ok(t, "audit", "verify")

	const seq = 5
	db, err := sql.Open("sqlite", w.path(quickstart.DataDir+"/nhisync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var leaf []byte
	if err := db.QueryRowContext(ctx, "SELECT leaf FROM audit WHERE seq = ?", seq).Scan(&leaf); err != nil {
		t.Fatal(err)
	}
	var e obj
	if err := json.Unmarshal(leaf, &e); err != nil {
		t.Fatal(err)
	}
	actor := strOf(t, "entry", e, "actor")
	forged := bytes.Replace(leaf, []byte(`"actor":"`+actor+`"`), []byte(`"actor":"person:mallory"`), 1)
	if bytes.Equal(forged, leaf) {
		t.Fatalf("entry %d holds no actor to forge: %s", seq, leaf)
	}
	// The store refuses the edit while its append-only triggers stand.
	if _, err := db.ExecContext(ctx, "UPDATE audit SET leaf = ? WHERE seq = ?", forged, seq); err == nil {
		t.Fatal("the audit table accepted an UPDATE: it is not append-only")
	}
	if _, err := db.ExecContext(ctx, "DROP TRIGGER audit_no_update"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE audit SET leaf = ? WHERE seq = ?", forged, seq); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r := w.run(t, "audit", "verify")
	if r.code == exitOK || !strings.Contains(r.stderr, fmt.Sprintf("entry %d", seq)) {
		t.Errorf("audit verify of a tampered log: exit %d %q, want failure naming entry %d", r.code, r.stderr, seq)
	}
	r = w.run(t, "audit", "verify", "-o", "json")
	var rep obj
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("audit verify -o json of a tampered log printed %q: %v", r.stdout, err)
	}
	if r.code == exitOK || rep["ok"] != false || intOf(t, "verify", rep, "first_bad") != seq {
		t.Errorf("audit verify -o json: exit %d, report %v, want ok false and first_bad %d", r.code, rep, seq)
	}
}

// TestInternalErrorNamesItsCause: an internal error's message says "see the
// cause below"; the CLI printed only the message, so a person learned
// nothing. A leaf cut short behind nhisync's back makes the store fail to
// decode entry 5: stderr names it.
func TestInternalErrorNamesItsCause(t *testing.T) {
	w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
	db, err := sql.Open("sqlite", w.path(quickstart.DataDir+"/nhisync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"DROP TRIGGER audit_no_update", `UPDATE audit SET leaf = CAST('{"seq":5' AS BLOB) WHERE seq = 5`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	r := w.run(t, "audit", "verify")
	if r.code != exitFailed || !strings.Contains(r.stderr, "see the cause below") ||
		!strings.Contains(r.stderr, "\nnhisync: cause: ") || !strings.Contains(r.stderr, "audit entry 5: leaf does not decode") {
		t.Errorf("audit verify over an undecodable entry: exit %d\n%s", r.code, r.stderr)
	}
	r = w.run(t, "audit", "verify", "-o", "json")
	if strings.Contains(r.stdout, "does not decode") {
		t.Errorf("the cause reached the JSON on stdout:\n%s", r.stdout)
	}
}
