package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestLinksVersion: what storetest's LinksVersion does not see. Another
// Store on the same file (another process) changing a link's hash moves
// the version this Store reads, and so does a commit inside the bulk
// window, whose links are all new. (storetest checks each kind of change,
// and the commits that keep it.)
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
	storedLinksEstate(t, s, 1)
	before := version(s)
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got, err := other.LoadLinks(ctx, "cmdb", []string{"cmdb-1"})
	if err != nil || len(got) != 1 {
		t.Fatalf("LoadLinks: %d, %v", len(got), err)
	}
	got[0].Hash = []byte("h-other")
	if err := other.Commit(ctx, &nhisync.Batch{Links: got}); err != nil {
		t.Fatal(err)
	}
	if v := version(s); v == before {
		t.Errorf("another Store's commit of a link's hash: the links version stayed %d", v)
	}

	b := openTest(t)
	before = version(b)
	bulkCommit(t, b, 5)
	if v := version(b); v == before {
		t.Errorf("a commit in the bulk window: the links version stayed %d", v)
	}
	if err := b.EndBulk(ctx); err != nil {
		t.Fatal(err)
	}
}
