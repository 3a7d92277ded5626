package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func testRecordRoundTrip(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 3)
	r1 := record(ids[0], "service_account", "payments-bot")
	r2 := record(ids[1], "application", "payments")
	r3 := &nhisync.Record{ID: ids[2], Kind: "service_account", Key: "aws/empty", MatchKey: "aws\x1fempty",
		Created: t0.In(time.FixedZone("CET", 3600)), Updated: t0}
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{r1, r2, r3}})

	tests := []struct {
		name string
		ids  []int64
		want []*nhisync.Record
	}{
		{"one", []int64{r1.ID}, []*nhisync.Record{r1}},
		{"in the order asked", []int64{r3.ID, r1.ID, r2.ID}, []*nhisync.Record{r3, r1, r2}},
		{"missing left out", []int64{999999, r2.ID, 999998}, []*nhisync.Record{r2}},
		{"each once", []int64{r1.ID, r1.ID}, []*nhisync.Record{r1}},
		{"none", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LoadRecords(ctx, tc.ids)
			if err != nil {
				t.Fatalf("LoadRecords: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("LoadRecords(%v) (-want +got):\n%s", tc.ids, d)
			}
		})
	}

	got, err := s.RecordByKey(ctx, "service_account", r1.MatchKey)
	if err != nil {
		t.Fatalf("RecordByKey: %v", err)
	}
	if d := diff(r1, got); d != "" {
		t.Errorf("RecordByKey (-want +got):\n%s", d)
	}
	_, err = s.RecordByKey(ctx, "application", r1.MatchKey)
	wantCode(t, "RecordByKey of another kind", err, nhisync.ENOTFOUND)
	_, err = s.RecordByKey(ctx, "service_account", "aws\x1fnobody")
	wantCode(t, "RecordByKey of a missing key", err, nhisync.ENOTFOUND)

	// Upsert replaces the record whole: a field left out is gone.
	r1b := record(r1.ID, "service_account", "payments-bot-2")
	delete(r1b.Fields, "owner")
	r1b.Fields["lifecycle"] = &nhisync.Golden{Value: nhisync.Str("suspended"), Source: "person:ana", Rule: "manual", At: at(20)}
	r1b.Updated = at(20)
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{r1b}})
	gotAll, err := s.LoadRecords(ctx, []int64{r1.ID})
	if err != nil {
		t.Fatalf("LoadRecords after upsert: %v", err)
	}
	if d := diff([]*nhisync.Record{r1b}, gotAll); d != "" {
		t.Errorf("after upsert (-want +got):\n%s", d)
	}
	if _, err := s.RecordByKey(ctx, "service_account", r1.MatchKey); nhisync.ErrorCode(err) != nhisync.ENOTFOUND {
		t.Errorf("RecordByKey of the old key after the key changed: got %v, want ENOTFOUND", err)
	}
	if got, err := s.RecordByKey(ctx, "service_account", r1b.MatchKey); err != nil || got.ID != r1.ID {
		t.Errorf("RecordByKey of the new key: got %v, %v; want record %d", got, err, r1.ID)
	}
}

func testRecordMatchKeyUnique(t *testing.T, s nhisync.Store) {
	ids := newIDs(t, s, 2)
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{record(ids[0], "service_account", "bot")}})
	err := s.Commit(ctxOf(t), &nhisync.Batch{Records: []*nhisync.Record{record(ids[1], "service_account", "BOT ")}})
	// record() normalizes the key, so "BOT " has the same match key as "bot".
	wantCode(t, "a second record with the same kind and match key", err, nhisync.ECONFLICT)
	// The same key under another kind is another record.
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{record(ids[1], "application", "bot")}})
}

func testScanRecordHeads(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 30)
	var want []nhisync.RecordHead
	var b nhisync.Batch
	// Committed in reverse order; scanned in ID order.
	for i := len(ids) - 1; i >= 0; i-- {
		kind := []string{"service_account", "application"}[i%2]
		r := record(ids[i], kind, fmt.Sprintf("bot-%02d", i))
		b.Records = append(b.Records, r)
	}
	for i, id := range ids {
		kind := []string{"service_account", "application"}[i%2]
		want = append(want, nhisync.RecordHead{ID: id, Kind: kind, MatchKey: nhisync.NormalizeKey([]string{"aws", fmt.Sprintf("bot-%02d", i)})})
	}
	commit(t, s, &b)

	var got []nhisync.RecordHead
	if err := s.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error {
		got = append(got, h)
		return nil
	}); err != nil {
		t.Fatalf("ScanRecordHeads: %v", err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("ScanRecordHeads (-want +got):\n%s", d)
	}

	n := 0
	err := s.ScanRecordHeads(ctx, func(nhisync.RecordHead) error {
		n++
		if n == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || n != 3 {
		t.Errorf("ScanRecordHeads stopped by its callback: got %v after %d heads, want the callback's error after 3", err, n)
	}
}

func testRecordKeys(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 4)
	a, b := record(ids[0], "service_account", "a/b ünïcode"), record(ids[1], "application", "bot")
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{a, b}})
	got, err := s.RecordKeys(ctx, []int64{ids[1], ids[2], ids[0], ids[1]})
	if err != nil {
		t.Fatalf("RecordKeys: %v", err)
	}
	want := map[int64]string{a.ID: a.Key, b.ID: b.Key}
	if d := diff(want, got); d != "" {
		t.Errorf("RecordKeys (-want +got):\n%s", d)
	}
	// A record renamed: its key is the one it has now.
	renamed := record(b.ID, b.Kind, "bot-2")
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{renamed}})
	if got, err := s.RecordKeys(ctx, []int64{b.ID}); err != nil || got[b.ID] != renamed.Key || len(got) != 1 {
		t.Errorf("RecordKeys after a rename = %v, %v; want %s", got, err, renamed.Key)
	}
	if got, err := s.RecordKeys(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("RecordKeys(none) = %v, %v; want nothing", got, err)
	}
}

func testRecordIDsByKey(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	if got, err := s.CountRecords(ctx); err != nil || len(got) != 0 {
		t.Errorf("CountRecords of an empty store = %v, %v; want nothing", got, err)
	}
	ids := newIDs(t, s, 4)
	key := func(name string) string { return nhisync.NormalizeKey([]string{"aws", name}) }
	// The same key under two kinds; a key with the separator and
	// characters JSON escapes.
	a, b := record(ids[0], "service_account", "bot"), record(ids[1], "application", "bot")
	c := record(ids[2], "service_account", "a/b \"ünï\"\tcode")
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{a, b, c}})
	got, err := s.RecordIDsByKey(ctx, "service_account", []string{key("BOT "), c.MatchKey, key("nobody"), b.MatchKey})
	if err != nil {
		t.Fatalf("RecordIDsByKey: %v", err)
	}
	want := map[string]int64{a.MatchKey: a.ID, c.MatchKey: c.ID}
	if d := diff(want, got); d != "" {
		t.Errorf("RecordIDsByKey (-want +got):\n%s", d)
	}
	if got, err := s.RecordIDsByKey(ctx, "application", []string{a.MatchKey}); err != nil || len(got) != 1 || got[a.MatchKey] != b.ID {
		t.Errorf("RecordIDsByKey of the other kind = %v, %v; want %s → %d", got, err, a.MatchKey, b.ID)
	}
	if got, err := s.RecordIDsByKey(ctx, "service_account", nil); err != nil || len(got) != 0 {
		t.Errorf("RecordIDsByKey(none) = %v, %v; want nothing", got, err)
	}
	// A record renamed: found by its new key only.
	renamed := record(a.ID, a.Kind, "bot-2")
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{renamed}})
	if got, err := s.RecordIDsByKey(ctx, "service_account", []string{a.MatchKey, renamed.MatchKey}); err != nil || len(got) != 1 || got[renamed.MatchKey] != a.ID {
		t.Errorf("RecordIDsByKey after a rename = %v, %v; want only %s → %d", got, err, renamed.MatchKey, a.ID)
	}
	counts, err := s.CountRecords(ctx)
	if err != nil {
		t.Fatalf("CountRecords: %v", err)
	}
	if d := diff(map[string]int{"service_account": 2, "application": 1}, counts); d != "" {
		t.Errorf("CountRecords (-want +got):\n%s", d)
	}
}

func testScanRecords(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const n = 1200 // more than one page of any sensible store
	ids := newIDs(t, s, 2*n)
	var b nhisync.Batch
	want := map[string][]*nhisync.Record{}
	for i := range n {
		kind := []string{"service_account", "application", "api_key"}[i%3]
		r := record(ids[i], kind, fmt.Sprintf("bot-%04d", i))
		l := link("idp", fmt.Sprintf("u-%04d", i), r.ID, nhisync.LinkLive)
		r.Links = []*nhisync.Link{l}
		b.Records, b.Links = append(b.Records, r), append(b.Links, l)
		if i%100 == 0 {
			q := &nhisync.QuarantineItem{ID: ids[n+i], Kind: kind, RecordID: r.ID, Field: "owner", System: "idp",
				Value: nhisync.Str("x"), Rule: "owner-is-email", Status: nhisync.StatusOpen, At: at(i)}
			r.Quarantine = []*nhisync.QuarantineItem{q}
			b.Quarantine = append(b.Quarantine, q)
		}
		want[kind] = append(want[kind], r)
		want[""] = append(want[""], r)
	}
	// Committed in reverse so that insertion order is not ID order.
	for i, j := 0, len(b.Records)-1; i < j; i, j = i+1, j-1 {
		b.Records[i], b.Records[j] = b.Records[j], b.Records[i]
	}
	commit(t, s, &b)

	for _, kind := range []string{"", "service_account", "application", "api_key", "person"} {
		t.Run("kind="+kind, func(t *testing.T) {
			var got []*nhisync.Record
			err := s.ScanRecords(ctx, kind, func(r *nhisync.Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil {
				t.Fatalf("ScanRecords: %v", err)
			}
			if !slices.IsSortedFunc(got, func(a, b *nhisync.Record) int { return int(a.ID - b.ID) }) {
				t.Errorf("ScanRecords(%q) is not in ID order", kind)
			}
			if d := diffMany(want[kind], got, recordKey); d != "" {
				t.Errorf("ScanRecords(%q) (-want +got): %s", kind, d)
			}
			// RecordsAfter pages through the same records, keyset by ID.
			var paged []*nhisync.Record
			for after := int64(0); ; {
				page, err := s.RecordsAfter(ctx, kind, after, 77)
				if err != nil {
					t.Fatalf("RecordsAfter: %v", err)
				}
				if len(page) > 77 {
					t.Fatalf("RecordsAfter(limit 77) returned %d records", len(page))
				}
				if len(page) == 0 {
					break
				}
				paged = append(paged, page...)
				after = page[len(page)-1].ID
			}
			if d := diffMany(want[kind], paged, recordKey); d != "" || !slices.IsSortedFunc(paged, func(a, b *nhisync.Record) int { return int(a.ID - b.ID) }) {
				t.Errorf("RecordsAfter(%q) pages, in ID order (-want +got): %s", kind, d)
			}
			// GoldenAfter pages through the same records, golden fields
			// only.
			var golden []*nhisync.Record
			for after := int64(0); ; {
				page, err := s.GoldenAfter(ctx, kind, after, 101)
				if err != nil {
					t.Fatalf("GoldenAfter: %v", err)
				}
				if len(page) == 0 {
					break
				}
				golden = append(golden, page...)
				after = page[len(page)-1].ID
			}
			bare := make([]*nhisync.Record, len(want[kind]))
			for i, r := range want[kind] {
				c := *r
				c.Links, c.Quarantine = nil, nil
				bare[i] = &c
			}
			if d := diffMany(bare, golden, recordKey); d != "" {
				t.Errorf("GoldenAfter(%q) (-want +got): %s", kind, d)
			}
		})
	}
	if _, err := s.RecordsAfter(ctx, "", 0, 0); nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Errorf("RecordsAfter with limit 0: %v, want EINVALID", err)
	}
	count := 0
	err := s.ScanRecords(ctx, "", func(*nhisync.Record) error {
		count++
		return errStop
	})
	if !errors.Is(err, errStop) || count != 1 {
		t.Errorf("ScanRecords stopped by its callback: got %v after %d records, want the callback's error after 1", err, count)
	}
}

// workFixture commits two records with links and items of every status
// and returns the records as LoadRecords must return them.
func workFixture(t *testing.T, s nhisync.Store) (r1, r2 *nhisync.Record) {
	ids := newIDs(t, s, 30)
	next := func() int64 { id := ids[0]; ids = ids[1:]; return id }
	r1 = record(next(), "service_account", "bot-1")
	r2 = record(next(), "service_account", "bot-2")
	var b nhisync.Batch
	b.Records = []*nhisync.Record{r1, r2}

	l1 := link("idp", "u-1", r1.ID, nhisync.LinkLive)
	l2 := link("cmdb", "c-1", r1.ID, nhisync.LinkGone)
	l3 := link("idp", "u-2", r2.ID, nhisync.LinkLive)
	l4 := link("cmdb", "c-orphan", 0, nhisync.LinkUnmatched)
	b.Links = []*nhisync.Link{l1, l2, l3, l4}
	r1.Links, r2.Links = []*nhisync.Link{l1, l2}, []*nhisync.Link{l3}

	conflict := func(rec *nhisync.Record, status string) *nhisync.Conflict {
		c := &nhisync.Conflict{ID: next(), Kind: rec.Kind, RecordID: rec.ID, Record: rec.Name(), Field: "owner", Status: status,
			Proposals: []nhisync.Proposal{{System: "idp", Value: nhisync.Str("a@x"), At: at(1)}, {System: "cmdb", Value: nhisync.Str("b@x"), At: at(2)}},
			Golden:    nhisync.Str("c@x"), Opened: at(3)}
		b.Conflicts = append(b.Conflicts, c)
		return c
	}
	quarantine := func(rec *nhisync.Record, status string) *nhisync.QuarantineItem {
		q := &nhisync.QuarantineItem{ID: next(), Kind: "service_account", Field: "owner", System: "idp", Value: nhisync.Str("nope"),
			Rule: "owner-is-email", Reason: "rule failed", Status: status, At: at(4)}
		if rec != nil {
			q.RecordID, q.Record = rec.ID, rec.Name()
		}
		b.Quarantine = append(b.Quarantine, q)
		return q
	}
	approval := func(rec *nhisync.Record, status string) *nhisync.Approval {
		a := &nhisync.Approval{ID: next(), Kind: "service_account", Field: "policy_state", System: "policy",
			Value: nhisync.Str("strict"), RequestedBy: "catalog", Status: status, At: at(5)}
		if rec != nil {
			a.RecordID, a.Record = rec.ID, rec.Name()
		} else {
			a.Guard, a.Count, a.Sample = true, 40, []string{"service_account/aws/a", "service_account/aws/b"}
		}
		b.Approvals = append(b.Approvals, a)
		return a
	}
	outbox := func(rec *nhisync.Record, system, status string) *nhisync.OutboxWrite {
		w := &nhisync.OutboxWrite{ID: next(), System: system, ExternalID: "x", RecordID: rec.ID, Kind: rec.Kind, Record: rec.Name(),
			Field: "owner", Old: nhisync.Str("a@x"), New: nhisync.Str("b@x"), Status: status, Cause: "cmdb", NextAt: at(6), Created: at(6)}
		b.Outbox = append(b.Outbox, w)
		return w
	}

	r1.Conflicts = []*nhisync.Conflict{conflict(r1, nhisync.StatusOpen)}
	conflict(r1, nhisync.StatusResolved)
	r2.Conflicts = []*nhisync.Conflict{conflict(r2, nhisync.StatusOpen)}

	r1.Quarantine = []*nhisync.QuarantineItem{quarantine(r1, nhisync.StatusOpen)}
	quarantine(r1, nhisync.StatusDismissed)
	quarantine(r1, nhisync.StatusCleared)
	quarantine(nil, nhisync.StatusOpen) // a record no golden record holds

	r1.Approvals = []*nhisync.Approval{
		approval(r1, nhisync.StatusPending), approval(r1, nhisync.StatusApproved), approval(r1, nhisync.StatusRejected),
	}
	approval(r1, nhisync.StatusSuperseded)
	r2.Approvals = []*nhisync.Approval{approval(r2, nhisync.StatusPending)}
	approval(nil, nhisync.StatusPending) // a guard approval

	r1.Outbox = []*nhisync.OutboxWrite{outbox(r1, "cmdb", nhisync.OutboxReady), outbox(r1, "policy", nhisync.OutboxHeld)}
	r2.Outbox = []*nhisync.OutboxWrite{outbox(r2, "cmdb", nhisync.OutboxPlanned)}

	commit(t, s, &b)
	return r1, r2
}

func testLoadRecordsAttachesWork(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	r1, r2 := workFixture(t, s)

	got, err := s.LoadRecords(ctx, []int64{r1.ID, r2.ID})
	if err != nil {
		t.Fatalf("LoadRecords: %v", err)
	}
	if d := diff([]*nhisync.Record{r1, r2}, got); d != "" {
		t.Errorf("LoadRecords (-want +got):\n%s", d)
	}
	one, err := s.RecordByKey(ctx, r2.Kind, r2.MatchKey)
	if err != nil {
		t.Fatalf("RecordByKey: %v", err)
	}
	if d := diff(r2, one); d != "" {
		t.Errorf("RecordByKey (-want +got):\n%s", d)
	}
	var scanned []*nhisync.Record
	if err := s.ScanRecords(ctx, "service_account", func(r *nhisync.Record) error {
		scanned = append(scanned, r)
		return nil
	}); err != nil {
		t.Fatalf("ScanRecords: %v", err)
	}
	if d := diff([]*nhisync.Record{r1, r2}, scanned); d != "" {
		t.Errorf("ScanRecords (-want +got):\n%s", d)
	}

	// Settling work detaches it: the open conflict resolved, the outbox
	// write done.
	c := *r1.Conflicts[0]
	c.Status, c.Resolved, c.ResolvedBy, c.Picked = nhisync.StatusResolved, at(30), "person:ana", "idp"
	commit(t, s, &nhisync.Batch{Conflicts: []*nhisync.Conflict{&c}, OutboxDone: []int64{r1.Outbox[0].ID}})
	r1.Conflicts, r1.Outbox = nil, r1.Outbox[1:]
	got, err = s.LoadRecords(ctx, []int64{r1.ID})
	if err != nil {
		t.Fatalf("LoadRecords: %v", err)
	}
	if d := diff([]*nhisync.Record{r1}, got); d != "" {
		t.Errorf("LoadRecords after settling (-want +got):\n%s\n(records: %s)", d, names(got))
	}
}
