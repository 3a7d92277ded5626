package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

const sensitiveConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [name]
    create_from: [a]
    fields:
      name:   { type: string, required: true }
      owner:  { type: string, sensitive: true }
      token:  { type: string, sensitive: true, resolve: manual }
      scopes: { type: set, sensitive: true, resolve: merge }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
systems:
  a: { connector: file, path: a.json, kind: sa, id: id, fields: { name: name, owner: owner, token: token, scopes: scopes } }
  b: { connector: file, path: b.json, kind: sa, id: id, fields: { name: name, owner: owner, token: token, scopes: scopes } }
`

// TestSensitiveValuesStayOutOfReasons (issue 6 finding 10): a rule that
// fails, a conflict opened and a set merged on sensitive fields never quote
// the values in the audit log (reasons included) nor in the quarantine
// item's reason.
func TestSensitiveValuesStayOutOfReasons(t *testing.T) {
	w := newWorld(t, sensitiveConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "bot", "owner": "ana@x", "token": "tok-alpha", "scopes": []any{"scope-alpha"}}},
		"b.json": {{"id": "1", "name": "bot"}},
	})
	w.sync()
	secrets := []string{"payments team", "tok-bravo", "tok-charlie", "scope-bravo", "scope-charlie", "tok-alpha", "scope-alpha", "ana@x"}
	w.edit("a.json", "1", map[string]any{"owner": "payments team", "token": "tok-bravo", "scopes": []any{"scope-alpha", "scope-bravo"}})
	w.edit("b.json", "1", map[string]any{"token": "tok-charlie", "scopes": []any{"scope-alpha", "scope-charlie"}})
	sum := w.sync()
	if sum.Quarantined == 0 || sum.ConflictsOpened == 0 || sum.Merged == 0 {
		t.Fatalf("the test did not reach a quarantine, a conflict and a merge:\n%s", actions(sum))
	}
	err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		for _, s := range secrets {
			if strings.Contains(string(leaf), s) {
				t.Errorf("audit entry %d (%s) holds the sensitive value %q: %s", e.Seq, e.Action, s, leaf)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range w.quarantine(nhisync.StatusOpen) {
		for _, s := range secrets {
			if strings.Contains(q.Reason, s) {
				t.Errorf("quarantine reason %q holds the sensitive value %q", q.Reason, s)
			}
		}
	}
	// nhisync drift (and report drift) list the values a system holds
	// differently: a sensitive one only as nhisync.Redacted.
	drift := mustDrift(t, w)
	if len(drift) == 0 {
		t.Fatal("the quarantined owner and the conflicted token make no drift")
	}
	for _, d := range drift {
		for _, s := range secrets {
			if strings.Contains(d.Value.String()+d.Golden.String()+d.Detail, s) {
				t.Errorf("drift item %s %s in %s holds the sensitive value %q: %+v", d.Record, d.Field, d.System, s, d)
			}
		}
		if !d.Value.IsZero() && d.Value.String() != nhisync.Redacted {
			t.Errorf("drift item %s %s in %s shows %q, want %s", d.Record, d.Field, d.System, d.Value, nhisync.Redacted)
		}
	}
}

// TestConfigFingerprintIsKeyed (issue 6 finding 10): config.loaded keeps an
// HMAC of the config's fingerprint, which hashes expanded ${VAR} settings,
// so an audit export does not let anyone test guesses of a secret offline.
func TestConfigFingerprintIsKeyed(t *testing.T) {
	w := newWorld(t, sensitiveConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "bot"}},
		"b.json": {},
	})
	w.sync()
	found := false
	err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action != nhisync.ActConfigLoaded {
			return nil
		}
		found = true
		if got := e.New.Text(); got == w.cfg.Fingerprint || !strings.HasPrefix(got, nhisync.SensitivePrefix) || strings.Contains(got, w.cfg.Fingerprint) {
			t.Errorf("config.loaded keeps %q; want an HMAC of the fingerprint, not the fingerprint %s", got, w.cfg.Fingerprint)
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("no config.loaded entry (%v)", err)
	}
}
