package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/engine"
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
	if len(created.Links) != 1 || created.Links[0] != (nhisync.AuditLink{System: "b", ID: "1"}) {
		t.Errorf("record.created links = %+v, want b's record 1 by match", created.Links)
	}
	// The per-decision view reads as before: created, b linked, name
	// accepted from one system and observed in the other, owner accepted.
	var got2 []string
	for _, e := range created.Expand() {
		if e.Seq != created.Seq || e.Fields != nil || e.Links != nil {
			t.Errorf("expanded entry %+v: want the created entry's seq, no fields or links", e)
		}
		got2 = append(got2, e.Action+" "+e.Field+" "+e.System)
	}
	nameFrom := got["name"].System
	other := map[string]string{"a": "b", "b": "a"}[nameFrom]
	want := []string{"record.created  a", "record.linked  b", "accepted name " + nameFrom, "observed name " + other, "accepted owner a"}
	if strings.Join(got2, "|") != strings.Join(want, "|") {
		t.Errorf("Expand = %q, want %q", got2, want)
	}
	x, err := w.engine().Explain(context.Background(), "sa", "bot", "name")
	if err != nil {
		t.Fatal(err)
	}
	if len(x.History) != 2 || x.History[0].Action != nhisync.ActAccepted || x.History[0].New.Text() != "bot" ||
		x.History[1].Action != nhisync.ActObserved || x.History[1].System != other || x.History[1].New.Text() != "bot" {
		t.Errorf("explain name history = %+v, want the first value accepted and the other system agreeing", x.History)
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

// threeSystems is an estate of three systems that all know every record,
// as the bench's: a registry that creates, two that link by match.
const threeSystems = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  sa:
    match: [platform, name]
    create_from: [idp, cmdb]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog] }
      secret:         { type: string, sensitive: true }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, suspended, decommissioned], resolve: strictest }
systems:
  idp:     { connector: file, path: idp.json, kind: sa, id: id, fields: { name: name, platform: platform, lifecycle: status, secret: secret } }
  cmdb:    { connector: file, path: cmdb.json, kind: sa, id: id, fields: { name: name, platform: platform, owner: owned_by, lifecycle: status, classification: tags } }
  catalog: { connector: file, path: catalog.json, kind: sa, id: id, fields: { name: name, platform: platform, owner: steward, classification: tags } }
`

// TestFirstPassWritesOneEntryPerRecord: a first pass over N records known
// to three systems writes N audit entries besides config.loaded — one
// record.created per record carrying both links, every first value (the
// sensitive one as its HMAC) and the systems that agreed with it — and
// summaries, explain and the expanded view still tell every link and
// agreement. A later change and a later link are entries of their own;
// a quiet pass writes none.
func TestFirstPassWritesOneEntryPerRecord(t *testing.T) {
	const n = 40
	files := map[string][]map[string]any{}
	for i := range n {
		name := fmt.Sprintf("svc-%03d", i)
		files["idp.json"] = append(files["idp.json"], map[string]any{"id": fmt.Sprint("i", i), "name": name, "platform": "aws", "status": "active", "secret": "s3cret-" + name})
		files["cmdb.json"] = append(files["cmdb.json"], map[string]any{"id": fmt.Sprint("c", i), "name": name, "platform": "aws", "owned_by": "team@x.example", "status": "active", "tags": []any{"pci"}})
		files["catalog.json"] = append(files["catalog.json"], map[string]any{"id": fmt.Sprint("k", i), "name": name, "platform": "aws", "steward": "team@x.example", "tags": []any{"pci"}})
	}
	w := newWorld(t, threeSystems, files)
	// One audit secret for every pass, as the CLI keeps one: the config's
	// print (its HMAC) stays the same, so a quiet pass has nothing to say.
	w.opts = append(w.opts, engine.WithAuditSecret([]byte("0123456789abcdef0123456789abcdef")))
	sum := w.sync()
	if sum.Created != n || sum.Linked != 2*n || sum.Accepted != 6*n {
		t.Fatalf("created %d linked %d accepted %d, want %d, %d, %d\n%s", sum.Created, sum.Linked, sum.Accepted, n, 2*n, 6*n, actions(sum))
	}
	if got := sum.Actions["cmdb"][nhisync.ActRecordLinked] + sum.Actions["catalog"][nhisync.ActRecordLinked]; got != 2*n {
		t.Errorf("summary actions count %d links, want %d: %v", got, 2*n, sum.Actions)
	}
	all := func() []*nhisync.AuditEntry {
		var out []*nhisync.AuditEntry
		if err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
			out = append(out, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	entries := all()
	var created []*nhisync.AuditEntry
	for _, e := range entries {
		switch e.Action {
		case nhisync.ActRecordCreated:
			created = append(created, e)
		case nhisync.ActConfigLoaded:
		default:
			t.Errorf("first pass wrote a %s entry: %+v", e.Action, e)
		}
	}
	if len(entries) != n+1 || len(created) != n {
		t.Fatalf("first pass wrote %d entries (%d record.created), want %d and %d", len(entries), len(created), n+1, n)
	}
	for _, e := range created {
		i := strings.TrimPrefix(e.New.Text(), "i")
		if e.System != "idp" || e.Reason != "create_from" {
			t.Errorf("record.created %+v: want created from idp", e)
		}
		want := []nhisync.AuditLink{{System: "cmdb", ID: "c" + i}, {System: "catalog", ID: "k" + i}} // reason match, the default
		if !slices.Equal(e.Links, want) {
			t.Errorf("record %s links %+v, want %+v", e.Record, e.Links, want)
		}
		fields := map[string]nhisync.AuditField{}
		for _, f := range e.Fields {
			fields[f.Field] = f
		}
		for field, holders := range map[string][]string{"name": {"catalog", "cmdb", "idp"}, "platform": {"catalog", "cmdb", "idp"},
			"owner": {"catalog", "cmdb"}, "classification": {"catalog", "cmdb"}, "lifecycle": {"cmdb", "idp"}, "secret": {"idp"}} {
			f, ok := fields[field]
			if !ok {
				t.Errorf("record %s: no first value of %s in %+v", e.Record, field, e.Fields)
				continue
			}
			got := slices.Sorted(slices.Values(append([]string{f.System}, f.Agreed...)))
			if !slices.Equal(got, holders) {
				t.Errorf("record %s %s: set by %s, agreed %v; want held by %v", e.Record, field, f.System, f.Agreed, holders)
			}
		}
		if s := fields["secret"].Value.Text(); !strings.HasPrefix(s, nhisync.SensitivePrefix) || strings.Contains(s, "s3cret") {
			t.Errorf("record %s: sensitive first value %q is not its HMAC", e.Record, s)
		}
		// The uncontested first value's reason is left out, merge's is
		// kept short, and the expanded view gives both in full.
		if r := fields["name"].Reason; r != "" {
			t.Errorf("record %s name: stored reason %q, want it left out (%s)", e.Record, r, nhisync.ReasonFirstValue)
		}
		if r := fields["classification"].Reason; r != "merge" {
			t.Errorf("record %s classification: stored reason %q, want merge's, short", e.Record, r)
		}
		for _, x := range e.Expand() {
			if x.Action == nhisync.ActAccepted && (x.Field == "name" && x.Reason != nhisync.ReasonFirstValue ||
				x.Field == "classification" && x.Reason != nhisync.ReasonMergeFirstValue || x.Reason == "") {
				t.Errorf("record %s: expanded %s has reason %q", e.Record, x.Field, x.Reason)
			}
			if x.Action == nhisync.ActRecordLinked && x.Reason != nhisync.ReasonMatch {
				t.Errorf("record %s: expanded link in %s has reason %q", e.Record, x.System, x.Reason)
			}
		}
	}

	// Every link and agreement is still told, through the expanded view.
	x, err := w.engine().Explain(context.Background(), "sa", nhisync.NormalizeKey([]string{"aws", "svc-007"}), "owner")
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	for _, h := range x.History {
		told = append(told, h.Action+" "+h.System)
	}
	slices.Sort(told)
	if !slices.Equal(told, []string{"accepted " + x.Golden.Source, "observed " + map[string]string{"cmdb": "catalog", "catalog": "cmdb"}[x.Golden.Source]}) {
		t.Errorf("explain owner history %q, want accepted from %s and observed in the other", told, x.Golden.Source)
	}
	rec := w.record("sa", "aws", "svc-007")
	recEntries, err := w.store.AuditByRecord(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]string{}
	for _, e := range nhisync.ExpandAll(recEntries) {
		if e.Action == nhisync.ActRecordLinked {
			linked[e.System] = e.New.Text() + " " + e.Reason
		}
	}
	if linked["cmdb"] != "c7 match" || linked["catalog"] != "k7 match" || len(linked) != 2 {
		t.Errorf("expanded history links %v, want cmdb c7 and catalog k7 by match", linked)
	}

	// A quiet pass writes nothing; a later change and a later link are
	// entries of their own.
	if w.sync(); len(all()) != n+1 {
		for _, e := range all()[n+1:] {
			t.Errorf("quiet pass wrote %+v", e)
		}
	}
	w.edit("cmdb.json", "c3", map[string]any{"owned_by": "other@x.example"})
	w.put("catalog.json", append(w.get("catalog.json")[:n-1], map[string]any{"id": "k-new", "name": fmt.Sprintf("svc-%03d", n-1), "platform": "aws", "steward": "team@x.example", "tags": []any{"pci"}}))
	sum = w.sync()
	var later []string
	for _, e := range all()[n+1:] {
		if e.Action != nhisync.ActWriteApplied {
			later = append(later, e.Action+" "+e.System+" "+e.Field)
		}
		if len(e.Links) > 0 || len(e.Fields) > 0 {
			t.Errorf("a later pass folded entries: %+v", e)
		}
	}
	slices.Sort(later)
	want := []string{"accepted cmdb owner", "record.linked catalog ", "record.vanished catalog "}
	if !slices.Equal(later, want) {
		t.Errorf("later pass wrote %q, want %q\n%s", later, want, actions(sum))
	}
	if rep, err := audit.Verify(context.Background(), w.store, w.verifier); err != nil || !rep.OK {
		t.Fatalf("audit verify: %v %+v", err, rep)
	}
}

// A pass's batches take their leaves' memory from two rooms in turn
// (nhisync.AuditRoom): a batch is prepared while the one before commits,
// so each leaf the store keeps still says what its own entry says (its
// record, the same as the row's record_id), batch after batch; run with
// -race, a room lent to a batch still being sealed is a race.
func TestBatchesLeavesKeepTheirEntries(t *testing.T) {
	var a, b []map[string]any
	for i := range 40 {
		id := fmt.Sprint(i)
		a = append(a, map[string]any{"id": id, "name": "bot" + id, "owner": "ana@x"})
		b = append(b, map[string]any{"id": id, "name": "bot" + id})
	}
	w := newWorld(t, sensitiveConfig, map[string][]map[string]any{"a.json": a, "b.json": b})
	w.opts = append(w.opts, engine.WithBatchSize(3))
	if sum := w.sync(); sum.Created != 40 {
		t.Fatalf("created %d records, want 40", sum.Created)
	}
	n := 0
	err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, leaf []byte) error {
		var own nhisync.AuditEntry
		if err := json.Unmarshal(leaf, &own); err != nil {
			return err
		}
		if own.Seq != e.Seq || own.RecordID != e.RecordID || own.Hash != "" {
			t.Errorf("entry %d (record %d): its leaf says seq %d, record %d: %s", e.Seq, e.RecordID, own.Seq, own.RecordID, leaf)
		}
		if e.Action == nhisync.ActRecordCreated {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("%d record.created entries, want 40", n)
	}
	if rep, err := audit.Verify(context.Background(), w.store, w.verifier); err != nil || !rep.OK {
		t.Fatalf("audit verify: %v %+v", err, rep)
	}
}
