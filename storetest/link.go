package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func testLinkRoundTrip(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 2)
	r1, r2 := record(ids[0], "service_account", "a"), record(ids[1], "service_account", "b")
	live := link("idp", "u-1", r1.ID, nhisync.LinkLive)
	gone := link("idp", "u-2", r2.ID, nhisync.LinkGone)
	unmatched := link("idp", "u-3", 0, nhisync.LinkUnmatched)
	disputed := link("idp", "u/4 ünïcode \"id\"", 0, nhisync.LinkDisputed)
	noHash := link("cmdb", "u-1", r1.ID, nhisync.LinkLive) // same external id, other system
	noHash.Hash, noHash.Fields = nil, nil
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{r1, r2}, Links: []*nhisync.Link{live, gone, unmatched, disputed, noHash}})

	tests := []struct {
		name   string
		system string
		ids    []string
		want   []*nhisync.Link
	}{
		{"every status", "idp", []string{"u-1", "u-2", "u-3", "u/4 ünïcode \"id\""}, []*nhisync.Link{live, gone, unmatched, disputed}},
		{"missing left out", "idp", []string{"nope", "u-3"}, []*nhisync.Link{unmatched}},
		{"by system", "cmdb", []string{"u-1", "u-2"}, []*nhisync.Link{noHash}},
		{"unknown system", "ldap", []string{"u-1"}, nil},
		{"none", "idp", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LoadLinks(ctx, tc.system, tc.ids)
			if err != nil {
				t.Fatalf("LoadLinks: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("LoadLinks(%s, %q) (-want +got):\n%s", tc.system, tc.ids, d)
			}
		})
	}
	got, err := s.LoadLinks(ctx, "idp", []string{"u-3"})
	if err != nil || len(got) != 1 {
		t.Fatalf("LoadLinks: %v, %v", got, err)
	}
	if r := got[0].Fields["lifecycle"].Report; r == nil || !r.IsZero() {
		t.Errorf("FieldState.Report set to a zero Value came back as %v, want a non-nil pointer to the zero Value", r)
	}
	if r := got[0].Fields["name"].Report; r != nil {
		t.Errorf("FieldState.Report left nil came back as %v", r)
	}

	// Upsert by (system, external id): an unmatched record gets linked,
	// a live one vanishes.
	linked := link("idp", "u-3", r2.ID, nhisync.LinkLive)
	linked.Fields["owner"].Shadow = nhisync.Str("new@example.com")
	linked.Hash = []byte("new hash")
	vanished := link("idp", "u-1", r1.ID, nhisync.LinkGone)
	delete(vanished.Fields, "labels")
	commit(t, s, &nhisync.Batch{Links: []*nhisync.Link{linked, vanished}})
	got, err = s.LoadLinks(ctx, "idp", []string{"u-1", "u-3"})
	if err != nil {
		t.Fatalf("LoadLinks after upsert: %v", err)
	}
	if d := diff([]*nhisync.Link{vanished, linked}, got); d != "" {
		t.Errorf("after upsert (-want +got):\n%s", d)
	}
	// Within one batch, a later row of the same link or record wins.
	first, second := link("cmdb", "dup", r1.ID, nhisync.LinkLive), link("cmdb", "dup", r2.ID, nhisync.LinkGone)
	r2b := record(r2.ID, r2.Kind, "b")
	r2b.Fields["owner"].Value = nhisync.Str("later@example.com")
	commit(t, s, &nhisync.Batch{Records: []*nhisync.Record{r2, r2b}, Links: []*nhisync.Link{first, second}})
	got, err = s.LoadLinks(ctx, "cmdb", []string{"dup"})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*nhisync.Link{second}, got); d != "" {
		t.Errorf("a link twice in one batch (-want +got):\n%s", d)
	}
	recs, err := s.LoadRecords(ctx, []int64{r2.ID})
	if err != nil || len(recs) != 1 {
		t.Fatalf("LoadRecords: %v, %v", recs, err)
	}
	if got := recs[0].Value("owner"); !got.Equal(nhisync.Str("later@example.com")) {
		t.Errorf("a record twice in one batch: owner = %v, want the later row's", got)
	}
	recs, err = s.LoadRecords(ctx, []int64{r2.ID})
	if err != nil || len(recs) != 1 {
		t.Fatalf("LoadRecords: %v, %v", recs, err)
	}
	if d := diff([]*nhisync.Link{gone, linked, second}, recs[0].Links); d != "" {
		t.Errorf("links of the record the link moved to (-want +got):\n%s", d)
	}
}

func testScanLinks(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const n = 1500 // more than one page of any sensible store
	ids := newIDs(t, s, n)
	var b nhisync.Batch
	all := map[string][]*nhisync.Link{}
	statuses := []nhisync.LinkStatus{nhisync.LinkLive, nhisync.LinkLive, nhisync.LinkGone, nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed}
	for i := range n {
		r := record(ids[i], "service_account", fmt.Sprintf("bot-%04d", i))
		b.Records = append(b.Records, r)
		for _, sys := range []string{"idp", "cmdb"} {
			if sys == "cmdb" && i%2 == 1 {
				continue
			}
			st := statuses[i%len(statuses)]
			rec := r.ID
			if st == nhisync.LinkUnmatched || st == nhisync.LinkDisputed || st == nhisync.LinkDismissed {
				rec = 0
			}
			l := link(sys, fmt.Sprintf("%s-%05d", sys, n-i), rec, st)
			b.Links = append(b.Links, l)
			all[sys] = append(all[sys], l)
		}
	}
	commit(t, s, &b)

	filter := func(links []*nhisync.Link, sts ...nhisync.LinkStatus) []*nhisync.Link {
		var out []*nhisync.Link
		for _, l := range links {
			if len(sts) == 0 || slices.Contains(sts, l.Status) {
				out = append(out, l)
			}
		}
		return out
	}
	tests := []struct {
		system   string
		statuses []nhisync.LinkStatus
		want     []*nhisync.Link
	}{
		{"idp", nil, all["idp"]},
		{"cmdb", nil, all["cmdb"]},
		{"", nil, append(slices.Clone(all["idp"]), all["cmdb"]...)},
		{"idp", []nhisync.LinkStatus{nhisync.LinkGone}, filter(all["idp"], nhisync.LinkGone)},
		{"cmdb", []nhisync.LinkStatus{nhisync.LinkUnmatched, nhisync.LinkDisputed}, filter(all["cmdb"], nhisync.LinkUnmatched, nhisync.LinkDisputed)},
		{"", []nhisync.LinkStatus{nhisync.LinkLive}, append(filter(all["idp"], nhisync.LinkLive), filter(all["cmdb"], nhisync.LinkLive)...)},
		// The records that link to no golden record, as nhisync unmatched
		// lists them; a dismissed one keeps its state.
		{"", []nhisync.LinkStatus{nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed},
			append(filter(all["idp"], nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed), filter(all["cmdb"], nhisync.LinkUnmatched, nhisync.LinkDisputed, nhisync.LinkDismissed)...)},
		{"idp", []nhisync.LinkStatus{nhisync.LinkDismissed}, filter(all["idp"], nhisync.LinkDismissed)},
		{"ldap", nil, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.system, tc.statuses), func(t *testing.T) {
			var got []*nhisync.Link
			err := s.ScanLinks(ctx, tc.system, tc.statuses, func(l *nhisync.Link) error {
				got = append(got, l)
				return nil
			})
			if err != nil {
				t.Fatalf("ScanLinks: %v", err)
			}
			if d := diffMany(tc.want, got, linkKey); d != "" {
				t.Errorf("ScanLinks (-want +got): %s", d)
			}

			if len(tc.statuses) > 0 {
				return
			}
			var heads []nhisync.LinkHead
			err = s.ScanLinkHeads(ctx, tc.system, func(h nhisync.LinkHead) error {
				heads = append(heads, h)
				return nil
			})
			if err != nil {
				t.Fatalf("ScanLinkHeads: %v", err)
			}
			var want []nhisync.LinkHead
			for _, l := range tc.want {
				want = append(want, nhisync.LinkHead{System: l.System, ExternalID: l.ExternalID, RecordID: l.RecordID, Status: l.Status, Hash: l.Hash})
			}
			sortHeads := func(hs []nhisync.LinkHead) {
				slices.SortFunc(hs, func(a, b nhisync.LinkHead) int {
					if a.System != b.System {
						return strings.Compare(a.System, b.System)
					}
					return strings.Compare(a.ExternalID, b.ExternalID)
				})
			}
			sortHeads(want)
			sortHeads(heads)
			if d := diff(want, heads); d != "" {
				t.Errorf("ScanLinkHeads(%q) (-want +got):\n%s", tc.system, d)
			}
		})
	}

	for _, scan := range []struct {
		name string
		run  func(stop func() error) error
	}{
		{"ScanLinks", func(stop func() error) error {
			return s.ScanLinks(ctx, "", nil, func(*nhisync.Link) error { return stop() })
		}},
		{"ScanLinkHeads", func(stop func() error) error {
			return s.ScanLinkHeads(ctx, "idp", func(nhisync.LinkHead) error { return stop() })
		}},
	} {
		calls := 0
		err := scan.run(func() error {
			calls++
			if calls == 2 {
				return errStop
			}
			return nil
		})
		if !errors.Is(err, errStop) || calls != 2 {
			t.Errorf("%s stopped by its callback: got %v after %d calls, want the callback's error after 2", scan.name, err, calls)
		}
	}
}

// testScanCallbackUsesStore commits from inside scans: a pass reads links
// and records while it decides, and may commit before a scan ends.
func testScanCallbackUsesStore(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const n = 1100
	ids := newIDs(t, s, n)
	var b nhisync.Batch
	for i := range n {
		r := record(ids[i], "service_account", fmt.Sprintf("bot-%04d", i))
		b.Records = append(b.Records, r)
		b.Links = append(b.Links, link("idp", fmt.Sprintf("u-%04d", i), r.ID, nhisync.LinkLive))
	}
	commit(t, s, &b)

	seen := map[string]int{}
	const every = 5 // commit on every 5th link: a commit is an fsync
	err := s.ScanLinks(ctx, "idp", nil, func(l *nhisync.Link) error {
		seen[l.ExternalID]++
		if len(seen)%every != 0 {
			return nil
		}
		l.Status, l.GoneAt = nhisync.LinkGone, at(50)
		return s.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{l}, Audit: []*nhisync.AuditEntry{
			audit(l.RecordID, nhisync.ActRecordVanished, "", nhisync.Value{}, nhisync.Value{}),
		}})
	})
	if err != nil {
		t.Fatalf("ScanLinks committing from its callback: %v", err)
	}
	if len(seen) != n {
		t.Errorf("ScanLinks saw %d links, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("ScanLinks saw %s %d times", id, k)
		}
	}
	gone := 0
	if err := s.ScanLinks(ctx, "idp", []nhisync.LinkStatus{nhisync.LinkGone}, func(*nhisync.Link) error {
		gone++
		return nil
	}); err != nil {
		t.Fatalf("ScanLinks: %v", err)
	}
	if gone != n/every {
		t.Errorf("after the scan %d links are gone, want %d", gone, n/every)
	}

	records := 0
	err = s.ScanRecords(ctx, "", func(r *nhisync.Record) error {
		records++
		if records%every != 0 {
			return nil
		}
		got, err := s.LoadRecords(ctx, []int64{r.ID})
		if err != nil {
			return err
		}
		if len(got) != 1 || len(got[0].Links) != 1 || got[0].Links[0].Status != r.Links[0].Status {
			return fmt.Errorf("record %d inside the scan: %v", r.ID, got)
		}
		return nil
	})
	if err != nil || records != n {
		t.Errorf("ScanRecords loading from its callback: %v after %d records, want %d", err, records, n)
	}
}

// testLinkChangesWritten: a commit of links the store loaded stores each
// as handed over, whatever a store skips of a link it finds as it holds
// it: a change of any one member (a time, status, hash, record, any
// member of a field's state, a field added or removed) is written, an
// unchanged link stays as it was, and a link loaded before another
// commit changed it is written as handed over (the later commit wins),
// never left as the other commit wrote it.
func testLinkChangesWritten(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := newIDs(t, s, 2)
	r1, r2 := record(ids[0], "service_account", "a"), record(ids[1], "service_account", "b")
	changes := linkChanges(r2.ID)
	ext := func(i int) string { return fmt.Sprintf("c-%02d", i) }
	b := &nhisync.Batch{Records: []*nhisync.Record{r1, r2}}
	var exts []string
	for i := range changes {
		b.Links = append(b.Links, link("idp", ext(i), r1.ID, nhisync.LinkLive))
		exts = append(exts, ext(i))
	}
	commit(t, s, b)
	load := func() []*nhisync.Link {
		t.Helper()
		got, err := s.LoadLinks(ctx, "idp", exts)
		if err != nil || len(got) != len(changes) {
			t.Fatalf("LoadLinks: %d links, %v", len(got), err)
		}
		return got
	}
	check := func(what string, want []*nhisync.Link) {
		t.Helper()
		got := load()
		for i, c := range changes {
			if d := diff(want[i], got[i]); d != "" {
				t.Errorf("%s, %s (-want +got):\n%s", what, c.name, d)
			}
		}
	}

	// Each link changed in one member, all in one batch.
	loaded := load()
	for i, c := range changes {
		c.change(loaded[i])
	}
	commit(t, s, &nhisync.Batch{Links: loaded})
	check("one change", loaded)

	// The same links, committed again as they are: a commit has written
	// them since they were loaded.
	commit(t, s, &nhisync.Batch{Links: loaded})
	check("committed again", loaded)

	// Loaded twice; the second load changed and committed; the first
	// committed as loaded: it is written (the later commit wins).
	first, second := load(), load()
	for i, c := range changes {
		c.change(second[i])
		second[i].SeenAt = second[i].SeenAt.Add(time.Minute)
	}
	commit(t, s, &nhisync.Batch{Links: second})
	check("changed by a later load", second)
	commit(t, s, &nhisync.Batch{Links: first})
	check("committed after another load's commit", first)

	// Links that came with their record: the first, written by another
	// load's commit meanwhile, committed as loaded (the later commit
	// wins); every other one changed.
	recs, err := s.LoadRecords(ctx, []int64{r1.ID})
	if err != nil || len(recs) != 1 || len(recs[0].Links) < 3 {
		t.Fatalf("LoadRecords: %v, %v", recs, err)
	}
	links := recs[0].Links
	meanwhile, err := s.LoadLinks(ctx, "idp", []string{links[0].ExternalID})
	if err != nil || len(meanwhile) != 1 {
		t.Fatalf("LoadLinks: %v, %v", meanwhile, err)
	}
	meanwhile[0].SeenAt = meanwhile[0].SeenAt.Add(time.Hour)
	commit(t, s, &nhisync.Batch{Links: meanwhile})
	for _, l := range links[1:] {
		l.Fields["name"].Shadow = nhisync.Str("renamed " + l.ExternalID)
	}
	commit(t, s, &nhisync.Batch{Records: recs, Links: links})
	recs, err = s.LoadRecords(ctx, []int64{r1.ID})
	if err != nil || len(recs) != 1 {
		t.Fatalf("LoadRecords: %v, %v", recs, err)
	}
	if d := diff(links, recs[0].Links); d != "" {
		t.Errorf("links of a loaded record (-want +got):\n%s", d)
	}
}

// linkChange is one way a stored link changes; head says whether it
// changes the link's head (its record, status or hash: what a pass's head
// scan reads, nhisync.LinkHead).
type linkChange struct {
	name   string
	head   bool
	change func(l *nhisync.Link)
}

// linkChanges are the ways a link of link() changes, each in one member;
// other is a record the link may move to.
func linkChanges(other int64) []linkChange {
	otherOwner := nhisync.Str("other@example.com")
	return []linkChange{
		{"unchanged", false, func(*nhisync.Link) {}},
		{"first seen", false, func(l *nhisync.Link) { l.FirstSeen = l.FirstSeen.Add(time.Nanosecond) }},
		{"seen at", false, func(l *nhisync.Link) { l.SeenAt = l.SeenAt.Add(time.Second) }},
		{"modified", false, func(l *nhisync.Link) { l.Modified = at(20) }},
		{"gone at", false, func(l *nhisync.Link) { l.GoneAt = at(21) }},
		{"status", true, func(l *nhisync.Link) { l.Status = nhisync.LinkGone }},
		{"hash", true, func(l *nhisync.Link) { l.Hash = []byte("another hash") }},
		{"hash one byte", true, func(l *nhisync.Link) { l.Hash = append(slices.Clone(l.Hash[:len(l.Hash)-1]), l.Hash[len(l.Hash)-1]+1) }},
		{"record", true, func(l *nhisync.Link) { l.RecordID = other }},
		{"unlinked", true, func(l *nhisync.Link) { l.RecordID, l.Status = 0, nhisync.LinkUnmatched }},
		{"shadow", false, func(l *nhisync.Link) { l.Fields["owner"].Shadow = otherOwner }},
		{"asserted", false, func(l *nhisync.Link) { l.Fields["owner"].Asserted = otherOwner }},
		{"asserted as shadow", false, func(l *nhisync.Link) { l.Fields["owner"].Asserted = l.Fields["owner"].Shadow }},
		{"set member", false, func(l *nhisync.Link) { l.Fields["entitlements"].Asserted = nhisync.SetOf("s3:read", "kms:encrypt") }},
		{"since", false, func(l *nhisync.Link) { l.Fields["name"].Since = at(30) }},
		{"source time", false, func(l *nhisync.Link) { l.Fields["owner"].SourceTime = time.Time{} }},
		{"actor", false, func(l *nhisync.Link) { l.Fields["owner"].Actor = "dee" }},
		{"report cleared", false, func(l *nhisync.Link) { l.Fields["owner"].Report = nil }},
		{"report moved", false, func(l *nhisync.Link) { l.Fields["lifecycle"].Report = &otherOwner }},
		{"field added", false, func(l *nhisync.Link) { l.Field("description").Asserted = nhisync.Str("x") }},
		{"field removed", false, func(l *nhisync.Link) { delete(l.Fields, "labels") }},
	}
}

// testLinksVersion: a store that keeps a links version
// (nhisync.LinksVersioner) replaces it in every commit that changes a
// link's head (a new link among them) and in no other: a commit of
// records only, or of a link changed anywhere but its head, or as it was.
func testLinksVersion(t *testing.T, s nhisync.Store) {
	lv, ok := s.(nhisync.LinksVersioner)
	if !ok {
		t.Skip("the store keeps no links version (nhisync.LinksVersioner)")
	}
	ctx := ctxOf(t)
	version := func() uint64 {
		t.Helper()
		v, err := lv.LinksVersion(ctx)
		if err != nil {
			t.Fatalf("LinksVersion: %v", err)
		}
		return v
	}
	last := version()
	step := func(what string, head bool, b *nhisync.Batch) {
		t.Helper()
		commit(t, s, b)
		switch v := version(); {
		case head && v == last:
			t.Errorf("%s: the links version stayed %d", what, v)
		case !head && v != last:
			t.Errorf("%s: the links version moved from %d to %d", what, last, v)
		default:
			last = v
		}
	}
	ids := newIDs(t, s, 2)
	r1, r2 := record(ids[0], "service_account", "a"), record(ids[1], "service_account", "b")
	step("records only", false, &nhisync.Batch{Records: []*nhisync.Record{r1, r2}})
	step("a new link", true, &nhisync.Batch{Links: []*nhisync.Link{link("idp", "v-1", r1.ID, nhisync.LinkLive)}})
	step("meta only", false, &nhisync.Batch{Meta: map[string]string{"storetest.links": "x"}})
	for _, c := range linkChanges(r2.ID) {
		got, err := s.LoadLinks(ctx, "idp", []string{"v-1"})
		if err != nil || len(got) != 1 {
			t.Fatalf("LoadLinks: %d links, %v", len(got), err)
		}
		c.change(got[0])
		step(c.name, c.head, &nhisync.Batch{Links: got})
	}
	ml, ok := s.(interface {
		MetaAll(ctx context.Context) (map[string]string, error)
	})
	if !ok {
		return
	}
	meta, err := ml.MetaAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range meta {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n == last {
			t.Errorf("MetaAll holds the links version (%s), which a copy must not carry: its commits draw their own", k)
		}
	}
}
