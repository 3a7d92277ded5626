package report_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/audit/ocsf"
	"github.com/nhisync/nhisync/report"
)

// evidenceYAML adds a validation rule to the estate, so a bad owner is
// quarantined and a person can dismiss it.
var evidenceYAML = strings.Replace(estateYAML, "      secret: { type: string, sensitive: true }\n",
	"      secret: { type: string, sensitive: true }\n    rules:\n      - name: owner-is-email\n        check: owner == \"\" || owner.contains(\"@\")\n", 1)

// evidenceWorld is a synced estate with findings, a drift, a person's
// decision, more changes a day later and a signed checkpoint.
func evidenceWorld(t *testing.T) (*world, *report.Evidence, string) {
	t.Helper()
	e := cleanEstate().set("idp.json", "i1", "env", "dev", "owner", "not-an-email").
		add("cat.json", map[string]any{"id": "c2", "name": "ghost-bot", "steward": "bob@example.com", "env": "prod"})
	w := newWorld(t, evidenceYAML, e)
	w.sync()
	qs, err := w.store.QuarantineItems(context.Background(), nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil || len(qs) != 1 {
		t.Fatalf("quarantine: %v %v, want the bad owner", qs, err)
	}
	eng, done := w.engine()
	if _, err := eng.DismissQuarantine(context.Background(), qs[0].ID, "auditor-ann"); err != nil {
		t.Fatal(err)
	}
	done()
	w.clock.Advance(24 * time.Hour)
	w.write(estate{"cat.json": {{"id": "c1", "name": "pay-bot", "steward": "alice@example.com", "env": "prod", "consumers": []any{"payments", "billing"}},
		{"id": "c2", "name": "ghost-bot", "steward": "carol@example.com"}}})
	w.sync()
	signer, err := audit.LoadOrCreateKey(filepath.Join(w.dir, "audit.key"), "nhisync")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Checkpoint(context.Background(), w.store, signer); err != nil {
		t.Fatal(err)
	}
	eng, done = w.engine()
	defer done()
	r, err := report.New(w.cfg, w.store, report.Options{Clock: w.clock, Drift: eng.Drift})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Evidence(context.Background(), t0.Add(-24*time.Hour), signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return w, ev, signer.VerifierKey()
}

// TestEvidenceContent checks what the pack holds, before any rendering.
func TestEvidenceContent(t *testing.T) {
	w, ev, _ := evidenceWorld(t)
	if len(ev.Findings) == 0 || ev.Summary["unmatched"] != 1 || ev.Summary["drift"] == 0 {
		t.Errorf("findings %v", ev.Summary)
	}
	if len(ev.Decisions) != 1 || ev.Decisions[0].Actor != "person:auditor-ann" || ev.Decisions[0].Action != nhisync.ActQuarantineDismiss {
		t.Errorf("decisions %+v, want the dismissal by auditor-ann", ev.Decisions)
	}
	days := 0
	for _, c := range ev.Changes {
		if c.Decisions+c.Writes > 0 {
			days++
		}
	}
	if ev.Bucket != "day" || days != 2 {
		t.Errorf("changes per %s: %+v, want two days with changes", ev.Bucket, ev.Changes)
	}
	if v := ev.Audit.Verified; v == nil || !v.OK || ev.Audit.Checkpoint == nil || ev.Audit.Proof == nil {
		t.Fatalf("audit evidence %+v", ev.Audit)
	}
	if ev.Audit.Proof.Seq != ev.Audit.Checkpoint.Size {
		t.Errorf("the proof is of entry %d, want the newest signed one, %d", ev.Audit.Proof.Seq, ev.Audit.Checkpoint.Size)
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(ev); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"window", "scope", "coverage", "findings", "by_framework", "changes", "decisions", "audit", "verifier_key", "checkpoint"} {
		if !strings.Contains(b.String(), `"`+k+`"`) {
			t.Errorf("evidence JSON lacks %q", k)
		}
	}
	if strings.Contains(b.String(), "s3cr3t") {
		t.Error("the evidence pack shows a sensitive value")
	}
	var html bytes.Buffer
	if err := report.WriteHTML(&html, ev); err != nil || strings.Contains(html.String(), "s3cr3t") {
		t.Errorf("the HTML pack shows a sensitive value (or failed: %v)", err)
	}
	// The SIEM export of the same log keeps it hashed too.
	var siem bytes.Buffer
	if err := ocsf.Export(context.Background(), w.store, &siem, 1, 0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(siem.String(), "s3cr3t") || !strings.Contains(siem.String(), `"field":"secret"`) {
		t.Error("the OCSF export shows the sensitive value, or lacks its (hashed) change")
	}
}

// TestProofVerifiesIndependently checks the pack's inclusion proof with
// verifiers nhisync did not write: golang.org/x/mod/sumdb/tlog (RFC 6962
// trees) and sumdb/note (the signed checkpoint), then with the
// stand-alone script the pack prints (Python and openssl).
func TestProofVerifiesIndependently(t *testing.T) {
	w, ev, vkey := evidenceWorld(t)
	p := ev.Audit.Proof
	var path tlog.RecordProof
	for _, h := range p.Hashes {
		path = append(path, tlog.Hash(h))
	}
	var root tlog.Hash
	copy(root[:], p.RootHash)
	if err := tlog.CheckRecord(path, p.TreeSize, root, p.LeafIndex, tlog.RecordHash(p.Entry)); err != nil {
		t.Fatalf("sumdb/tlog rejects the proof: %v", err)
	}
	if err := tlog.CheckRecord(path, p.TreeSize, root, p.LeafIndex, tlog.RecordHash(append([]byte(" "), p.Entry...))); err == nil {
		t.Fatal("sumdb/tlog accepts the proof for another entry")
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("sumdb/note rejects the checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if lines[1] != strconv.FormatInt(p.TreeSize, 10) || lines[2] != base64.StdEncoding.EncodeToString(p.RootHash) {
		t.Errorf("the checkpoint signs %q, not the proof's root", n.Text)
	}

	py, err1 := exec.LookPath("python3")
	_, err2 := exec.LookPath("openssl")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 or openssl missing under CI: %v %v", err1, err2)
		}
		t.Skip("python3 or openssl not installed: the script is not run")
	}
	script := filepath.Join(w.dir, "verify_inclusion.py")
	if err := os.WriteFile(script, []byte(ev.Audit.Script), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(proof *audit.Proof) (string, error) {
		b, _ := json.Marshal(proof)
		f := filepath.Join(w.dir, "proof.json")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, script, f, vkey).CombinedOutput()
		return string(out), err
	}
	if out, err := run(p); err != nil || !strings.HasPrefix(out, "OK: entry") {
		t.Fatalf("the pack's script rejects a good proof: %v\n%s", err, out)
	}
	bad := *p
	bad.Entry = bytes.Replace(bytes.Clone(p.Entry), []byte(`"actor":"`), []byte(`"actor":"x`), 1)
	bad.LeafHash = nhisync.LeafHash(bad.Entry)
	if out, err := run(&bad); err == nil || !strings.Contains(out, "FAILED") {
		t.Errorf("the script accepts an edited entry:\n%s", out)
	}
	forged := *p
	forged.Checkpoint = strings.Replace(p.Checkpoint, "\n\n", "\nextra\n\n", 1)
	if out, err := run(&forged); err == nil || !strings.Contains(out, "FAILED") {
		t.Errorf("the script accepts an edited checkpoint:\n%s", out)
	}
}
