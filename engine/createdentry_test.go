package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
)

// A record's first adoption is one record.created entry carrying every
// field's value and source (sensitive values as their HMAC), not one
// accepted entry per field (SPEC §4); a later change is an entry of its
// own; the log still verifies, and explain reads the first value.
func TestFirstAdoptionIsOneCreatedEntry(t *testing.T) {
	w := newWorld(t, sensitiveConfig, map[string][]map[string]any{
		"a.json": {{"id": "1", "name": "bot", "owner": "ana@x"}},
		"b.json": {{"id": "1", "name": "bot"}},
	})
	sum := w.sync()
	if sum.Created != 1 || sum.Accepted != 2 {
		t.Fatalf("created %d accepted %d, want 1 and 2 (the folded first values still count)\n%s", sum.Created, sum.Accepted, actions(sum))
	}
	entries := func() []*nhisync.AuditEntry {
		var out []*nhisync.AuditEntry
		err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
			if e.RecordID != 0 {
				out = append(out, e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var created *nhisync.AuditEntry
	for _, e := range entries() {
		switch e.Action {
		case nhisync.ActRecordCreated:
			created = e
		case nhisync.ActAccepted:
			t.Errorf("first adoption wrote an accepted entry of its own: %+v", e)
		}
	}
	if created == nil {
		t.Fatal("no record.created entry")
	}
	got := map[string]nhisync.AuditField{}
	for _, f := range created.Fields {
		got[f.Field] = f
	}
	if f := got["name"]; f.System == "" || f.Value.Text() != "bot" {
		t.Errorf("name in record.created = %+v, want bot and its source", f)
	}
	if f := got["owner"]; f.System != "a" || !strings.HasPrefix(f.Value.Text(), nhisync.SensitivePrefix) || strings.Contains(f.Value.Text(), "ana@x") {
		t.Errorf("sensitive owner in record.created = %+v, want its HMAC from a", f)
	}
	if len(got) != 2 {
		t.Errorf("record.created carries %d fields, want 2: %+v", len(got), created.Fields)
	}
	// The per-field view reads as before.
	exp := created.Expand()
	if len(exp) != 3 || exp[0].Fields != nil || exp[1].Action != nhisync.ActAccepted || exp[1].Seq != created.Seq {
		t.Errorf("Expand = %+v", exp)
	}
	x, err := w.engine().Explain(context.Background(), "sa", "bot", "name")
	if err != nil {
		t.Fatal(err)
	}
	if len(x.History) != 1 || x.History[0].Action != nhisync.ActAccepted || x.History[0].New.Text() != "bot" {
		t.Errorf("explain name history = %+v, want the first value accepted from a", x.History)
	}

	// A later change is its own accepted entry.
	w.edit("a.json", "1", map[string]any{"owner": "bea@x"})
	w.sync()
	accepted := 0
	for _, e := range entries() {
		if e.Action == nhisync.ActAccepted && e.Field == "owner" && !e.Old.IsZero() {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("owner change wrote %d accepted entries, want 1", accepted)
	}
	if rep, err := audit.Verify(context.Background(), w.store, w.verifier); err != nil || !rep.OK {
		t.Fatalf("audit verify: %v %+v", err, rep)
	}
}
