package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestLinksVersion: the links' version changes with every commit that
// changes a link's record, status or hash (a new link among them), in the
// bulk window too, and is seen by another Store on the same file; a
// commit that writes links as they were (their state aside), or none,
// keeps it. MetaAll leaves it out.
func TestLinksVersion(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "nhisync.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	version := func(st *Store) uint64 {
		t.Helper()
		v, err := st.LinksVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	last := version(s)
	step := func(what string, changes bool, b *nhisync.Batch) {
		t.Helper()
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		switch v := version(s); {
		case changes && v == last:
			t.Errorf("%s: the links' version stayed %d", what, v)
		case !changes && v != last:
			t.Errorf("%s: the links' version moved from %d to %d", what, last, v)
		default:
			last = v
		}
	}

	recs := storedLinksEstate(t, s, 1)
	if v := version(s); v == last {
		t.Errorf("new links: the links' version stayed %d", v)
	}
	last = version(s)
	link := func() *nhisync.Link {
		got, err := s.LoadLinks(ctx, "cmdb", []string{"cmdb-1"})
		if err != nil || len(got) != 1 {
			t.Fatalf("LoadLinks: %d, %v", len(got), err)
		}
		return got[0]
	}
	step("no links", false, &nhisync.Batch{Meta: map[string]string{"x": "y"}})
	l := link()
	step("a link as it was", false, &nhisync.Batch{Links: []*nhisync.Link{l}})
	l = link()
	l.Field("owner").Asserted = nhisync.Str("other@x")
	step("a link's state only", false, &nhisync.Batch{Links: []*nhisync.Link{l}})
	l = link()
	l.Hash = []byte("h-new")
	step("a link's hash", true, &nhisync.Batch{Links: []*nhisync.Link{l}})
	l = link()
	l.Status = nhisync.LinkUnmatched
	step("a link's status", true, &nhisync.Batch{Links: []*nhisync.Link{l}})
	l = link()
	l.RecordID = recs[1].ID
	step("a link's record", true, &nhisync.Batch{Links: []*nhisync.Link{l}})
	step("a new link", true, &nhisync.Batch{Links: []*nhisync.Link{{System: "cmdb", ExternalID: "fresh", Status: nhisync.LinkUnmatched}}})

	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l = link()
	l.Hash = []byte("h-other")
	if err := other.Commit(ctx, &nhisync.Batch{Links: []*nhisync.Link{l}}); err != nil {
		t.Fatal(err)
	}
	if v := version(s); v == last {
		t.Errorf("another Store's commit of a link's hash: the links' version stayed %d", v)
	}
	meta, err := s.MetaAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := meta[linksVersionKey]; ok {
		t.Errorf("MetaAll holds %s", linksVersionKey)
	}

	// In the bulk window: every commit's links are new.
	b := openTest(t)
	before := version(b)
	bulkCommit(t, b, 5)
	if v := version(b); v == before {
		t.Errorf("a commit in the bulk window: the links' version stayed %d", v)
	}
	if err := b.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
}
