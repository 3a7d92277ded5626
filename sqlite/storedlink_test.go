package sqlite

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// storedLinksEstate commits records first..first+2, each linked to idp,
// cmdb and catalog, and an unmatched catalog link, and returns the
// records as LoadRecords gives them.
func storedLinksEstate(t *testing.T, s *Store, first int64) []*nhisync.Record {
	t.Helper()
	ctx := t.Context()
	b := storetest.BulkBatch(first, 3)
	for _, r := range b.Records {
		for _, sys := range []string{"cmdb", "catalog"} {
			b.Links = append(b.Links, &nhisync.Link{System: sys, ExternalID: fmt.Sprintf("%s-%d", sys, r.ID), RecordID: r.ID, Status: nhisync.LinkLive,
				Hash: []byte("h-" + sys), Fields: map[string]*nhisync.FieldState{"owner": {Asserted: nhisync.Str(sys + "@x")}}})
		}
	}
	b.Links = append(b.Links, &nhisync.Link{System: "catalog", ExternalID: "stray", Status: nhisync.LinkUnmatched, Hash: []byte("h-stray")})
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	recs, err := s.LoadRecords(ctx, []int64{first, first + 1, first + 2})
	if err != nil || len(recs) != 3 {
		t.Fatalf("LoadRecords: %d, %v", len(recs), err)
	}
	return recs
}

// linkOf returns rec's link to system.
func linkOf(t *testing.T, rec *nhisync.Record, system string) *nhisync.Link {
	t.Helper()
	i := slices.IndexFunc(rec.Links, func(l *nhisync.Link) bool { return l.System == system })
	if i < 0 {
		t.Fatalf("record %d has no %s link", rec.ID, system)
	}
	return rec.Links[i]
}

// TestLoadedLinksCommitWithoutReread: a commit of links LoadRecords or
// LoadLinks loaded reads none of their heads again (a pass decides the
// records it just loaded, an outcome the links it just loaded), only the
// heads of links made anew; and writes each as a commit that read them
// would: a changed hash, status or record, a changed state, an unchanged
// link, a new link under a state id of its own. Fails without the heads
// kept in Link.Stored: the commit reads all seven heads.
func TestLoadedLinksCommitWithoutReread(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	recs := storedLinksEstate(t, s, 1)
	for _, r := range recs {
		for _, l := range r.Links {
			if l.Stored == nil || l.Stored.By != s.token || l.Stored.StateID == 0 {
				t.Fatalf("loaded link %s/%s: Stored %+v", l.System, l.ExternalID, l.Stored)
			}
		}
	}
	r0, r1 := recs[0], recs[1]
	linkOf(t, r0, "cmdb").Hash = []byte("h-new")
	linkOf(t, r0, "catalog").Status = nhisync.LinkGone
	linkOf(t, r1, "cmdb").Field("owner").Asserted = nhisync.Str("changed@x")
	moved := linkOf(t, r1, "catalog")
	moved.RecordID = r0.ID
	fresh := &nhisync.Link{System: "ldap", ExternalID: "l-1", RecordID: r1.ID, Status: nhisync.LinkLive, Hash: []byte("h-ldap"),
		Fields: map[string]*nhisync.FieldState{"owner": {Asserted: nhisync.Str("ldap@x")}}}
	b := &nhisync.Batch{Links: slices.Concat(r0.Links, r1.Links, []*nhisync.Link{fresh})}
	before := s.headsRead.Load()
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := s.headsRead.Load() - before; n != 1 {
		t.Errorf("the commit read %d heads, want 1 (the new link's)", n)
	}
	got, err := s.LoadRecords(ctx, []int64{1, 2, 3})
	if err != nil || len(got) != 3 {
		t.Fatalf("LoadRecords: %d, %v", len(got), err)
	}
	check := func(rec *nhisync.Record, system, id string, status nhisync.LinkStatus, hash, owner string) {
		t.Helper()
		l := linkOf(t, rec, system)
		if l.ExternalID != id || l.Status != status || string(l.Hash) != hash || l.Asserted("owner").Text() != owner {
			t.Errorf("record %d's %s link: %s %s %q owner %q; want %s %s %q owner %q", rec.ID, system, l.ExternalID, l.Status, l.Hash, l.Asserted("owner").Text(), id, status, hash, owner)
		}
	}
	check(got[0], "cmdb", "cmdb-1", nhisync.LinkLive, "h-new", "cmdb@x")
	// Record 1 has two catalog links now: its own, gone, and record 2's.
	if n := len(got[0].Links); n != 4 {
		t.Errorf("record 1 has %d links, want 4", n)
	}
	for _, l := range got[0].Links {
		if l.System == "catalog" && l.ExternalID == "catalog-1" && l.Status != nhisync.LinkGone {
			t.Errorf("catalog-1: %s, want gone", l.Status)
		}
	}
	check(got[1], "cmdb", "cmdb-2", nhisync.LinkLive, "h-cmdb", "changed@x")
	check(got[1], "ldap", "l-1", nhisync.LinkLive, "h-ldap", "ldap@x")
	if slices.ContainsFunc(got[1].Links, func(l *nhisync.Link) bool { return l.System == "catalog" }) {
		t.Errorf("record 2 still has its catalog link")
	}
	check(got[2], "cmdb", "cmdb-3", nhisync.LinkLive, "h-cmdb", "cmdb@x")
	check(got[2], "catalog", "catalog-3", nhisync.LinkLive, "h-catalog", "catalog@x")
	stray, err := s.LoadLinks(ctx, "catalog", []string{"stray"})
	if err != nil || len(stray) != 1 || string(stray[0].Hash) != "h-stray" || stray[0].Status != nhisync.LinkUnmatched {
		t.Fatalf("the stray: %+v, %v", stray, err)
	}

	// LoadLinks keeps heads too: an outcome's links.
	links, err := s.LoadLinks(ctx, "cmdb", []string{"cmdb-1", "cmdb-3"})
	if err != nil || len(links) != 2 {
		t.Fatalf("LoadLinks: %d, %v", len(links), err)
	}
	links[0].Field("owner").Shadow = nhisync.Str("cmdb@x")
	links[1].Hash = nil
	before = s.headsRead.Load()
	if err := s.Commit(ctx, &nhisync.Batch{Links: links}); err != nil {
		t.Fatal(err)
	}
	if n := s.headsRead.Load() - before; n != 0 {
		t.Errorf("the outcome-like commit read %d heads, want 0", n)
	}
	again, err := s.LoadLinks(ctx, "cmdb", []string{"cmdb-1", "cmdb-3"})
	if err != nil || len(again) != 2 || again[0].Fields["owner"].Shadow.Text() != "cmdb@x" || again[1].Hash != nil || string(again[0].Hash) != "h-new" {
		t.Fatalf("after the commit: %+v, %v", again, err)
	}
}

// TestStoredLinkOfOtherStoreOrKey: a link's kept head counts only in the
// store that loaded it, under the key it was loaded by. A link loaded
// from one store and committed to another (store copy) is written there
// whole, and a loaded link given another external id is a new link, the
// one it was loaded as left as it was; both heads are read.
func TestStoredLinkOfOtherStoreOrKey(t *testing.T) {
	ctx := t.Context()
	src, dst := openTest(t), openTest(t)
	recs := storedLinksEstate(t, src, 1)
	if err := dst.Commit(ctx, &nhisync.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	before := dst.headsRead.Load()
	if err := dst.Commit(ctx, &nhisync.Batch{Links: recs[0].Links}); err != nil {
		t.Fatal(err)
	}
	if n := dst.headsRead.Load() - before; n != 3 {
		t.Errorf("the other store's commit read %d heads, want 3", n)
	}
	got, err := dst.LoadRecords(ctx, []int64{1})
	if err != nil || len(got) != 1 || len(got[0].Links) != 3 {
		t.Fatalf("the copy: %+v, %v", got, err)
	}
	if l := linkOf(t, got[0], "cmdb"); string(l.Hash) != "h-cmdb" || l.Asserted("owner").Text() != "cmdb@x" {
		t.Errorf("the copied cmdb link: %q %q", l.Hash, l.Asserted("owner").Text())
	}

	renamed := linkOf(t, recs[1], "cmdb")
	renamed.ExternalID = "cmdb-renamed"
	renamed.Field("owner").Asserted = nhisync.Str("renamed@x")
	before = src.headsRead.Load()
	if err := src.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{renamed}}); err != nil {
		t.Fatal(err)
	}
	if n := src.headsRead.Load() - before; n != 1 {
		t.Errorf("the renamed link's commit read %d heads, want 1", n)
	}
	links, err := src.LoadLinks(ctx, "cmdb", []string{"cmdb-2", "cmdb-renamed"})
	if err != nil || len(links) != 2 {
		t.Fatalf("LoadLinks: %d, %v", len(links), err)
	}
	if links[0].Asserted("owner").Text() != "cmdb@x" || links[1].Asserted("owner").Text() != "renamed@x" || links[1].Stored.StateID == links[0].Stored.StateID {
		t.Errorf("cmdb-2 %q (state %d), cmdb-renamed %q (state %d); want each its own", links[0].Asserted("owner").Text(), links[0].Stored.StateID,
			links[1].Asserted("owner").Text(), links[1].Stored.StateID)
	}
}

// BenchmarkCommitLoadedLinks commits what a drift pass's decide commit
// holds: 500 records loaded from a store of 20,000 (three links each),
// one link of each changed (its hash and state). loaded commits the links
// as loaded (their heads kept in Link.Stored); reread drops Stored first,
// so the commit reads every head again as it did before. commit-cpu-µs is
// the process's CPU per commit.
func BenchmarkCommitLoadedLinks(b *testing.B) {
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "loaded", false: "reread"}[keep]
		b.Run(name, func(b *testing.B) {
			s := openTest(b)
			ctx := b.Context()
			const n, batch = 20000, 500
			for first := int64(1); first <= n; first += 1000 {
				bb := storetest.BulkBatch(first, 1000)
				for _, r := range bb.Records {
					for _, sys := range []string{"cmdb", "catalog"} {
						bb.Links = append(bb.Links, &nhisync.Link{System: sys, ExternalID: fmt.Sprintf("%s-%08x", sys, uint32(r.ID)*2654435761), RecordID: r.ID,
							Status: nhisync.LinkLive, Hash: []byte("h"), Fields: map[string]*nhisync.FieldState{"owner": {Asserted: nhisync.Str(sys + "@x")}}})
					}
				}
				if err := s.Commit(ctx, bb); err != nil {
					b.Fatal(err)
				}
			}
			var cpu time.Duration
			round := 0
			for b.Loop() {
				b.StopTimer()
				ids := make([]int64, batch)
				for i := range ids {
					ids[i] = 1 + int64((round*batch+i)*37)%n
				}
				slices.Sort(ids)
				ids = slices.Compact(ids)
				round++
				recs, err := s.LoadRecords(ctx, ids)
				if err != nil {
					b.Fatal(err)
				}
				bb := &nhisync.Batch{}
				for _, r := range recs {
					l := r.Links[round%len(r.Links)]
					l.Hash = []byte(fmt.Sprintf("h%d", round))
					l.Field("owner").Asserted = nhisync.Str(fmt.Sprintf("o%d@x", round))
					for _, l := range r.Links {
						if !keep {
							l.Stored = nil
						}
						bb.Links = append(bb.Links, l)
					}
				}
				b.StartTimer()
				start := storetest.ProcessCPU()
				if err := s.Commit(ctx, bb); err != nil {
					b.Fatal(err)
				}
				cpu += storetest.ProcessCPU() - start
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "commit-cpu-µs")
		})
	}
}
