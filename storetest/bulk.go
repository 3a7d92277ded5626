package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// testBulkLoad holds a store that offers a bulk window
// (nhisync.BulkLoader) to its contract: it opens only on an empty store,
// commits inside it read back at once (links of loaded records, link
// scans, heads), and after EndBulk every lookup and upsert works as if
// the links had been committed one by one. Stores without one skip it.
func testBulkLoad(t *testing.T, s nhisync.Store) {
	bl, ok := s.(nhisync.BulkLoader)
	if !ok {
		t.Skip("the store has no bulk window")
	}
	ctx := ctxOf(t)
	open, err := bl.BeginBulk(ctx)
	if err != nil || !open {
		t.Fatalf("BeginBulk on an empty store = %v, %v; want true", open, err)
	}
	const n = 30
	ids := newIDs(t, s, n)
	var want []*nhisync.Link
	for start := 0; start < n; start += 10 {
		var b nhisync.Batch
		for i := start; i < start+10; i++ {
			r := record(ids[i], "service_account", fmt.Sprintf("bot-%02d", i))
			b.Records = append(b.Records, r)
			for _, sys := range []string{"idp", "cmdb"} {
				l := link(sys, fmt.Sprintf("%s-%02d", sys, (i*7)%n), r.ID, nhisync.LinkLive)
				b.Links = append(b.Links, l)
				want = append(want, l)
			}
		}
		stray := link("cmdb", fmt.Sprintf("stray-%d", start), 0, nhisync.LinkUnmatched)
		b.Links = append(b.Links, stray)
		want = append(want, stray)
		commit(t, s, &b)
	}
	byKey := func(ls []*nhisync.Link) {
		slices.SortFunc(ls, func(a, b *nhisync.Link) int {
			if c := strings.Compare(a.System, b.System); c != 0 {
				return c
			}
			return strings.Compare(a.ExternalID, b.ExternalID)
		})
	}
	byKey(want)
	check := func(when string) {
		t.Helper()
		var got []*nhisync.Link
		if err := s.ScanLinks(ctx, "", nil, func(l *nhisync.Link) error { got = append(got, l); return nil }); err != nil {
			t.Fatalf("%s: ScanLinks: %v", when, err)
		}
		byKey(got)
		if d := diff(want, got); d != "" {
			t.Errorf("%s: ScanLinks (-want +got):\n%s", when, d)
		}
		heads := 0
		for _, sys := range []string{"idp", "cmdb"} {
			if err := s.ScanLinkHeads(ctx, sys, func(nhisync.LinkHead) error { heads++; return nil }); err != nil {
				t.Fatalf("%s: ScanLinkHeads: %v", when, err)
			}
		}
		if heads != len(want) {
			t.Errorf("%s: ScanLinkHeads saw %d links, want %d", when, heads, len(want))
		}
		var strays []*nhisync.Link
		if err := s.ScanLinks(ctx, "cmdb", []nhisync.LinkStatus{nhisync.LinkUnmatched}, func(l *nhisync.Link) error { strays = append(strays, l); return nil }); err != nil {
			t.Fatalf("%s: ScanLinks(unmatched): %v", when, err)
		}
		if len(strays) != 3 {
			t.Errorf("%s: %d unmatched links, want 3", when, len(strays))
		}
		recs, err := s.LoadRecords(ctx, ids[:2])
		if err != nil || len(recs) != 2 || len(recs[0].Links) != 2 || len(recs[1].Links) != 2 {
			t.Errorf("%s: LoadRecords of two records = %d records, %v; want 2, with two links each", when, len(recs), err)
		}
	}
	check("inside the window")
	if err := bl.EndBulk(ctx); err != nil {
		t.Fatalf("EndBulk: %v", err)
	}
	check("after the window")

	got, err := s.LoadLinks(ctx, "idp", []string{"idp-00", "idp-07", "nope"})
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadLinks after the window = %d links, %v; want 2", len(got), err)
	}
	// An upsert after the window changes the link, it does not add one.
	changed := *want[0]
	changed.Status = nhisync.LinkGone
	commit(t, s, &nhisync.Batch{Links: []*nhisync.Link{&changed}})
	want[0] = &changed
	check("after an upsert")

	if open, err := bl.BeginBulk(ctx); err != nil || open {
		t.Errorf("BeginBulk on a store holding records = %v, %v; want false", open, err)
	}
}
