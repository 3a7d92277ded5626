package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nhisync/nhisync"
)

// TestStoredHeadsWrittenSinceLoad: a link's kept head (Link.Stored) is
// not trusted once another commit wrote the link after the load, whether
// this store's (a pass's or a person's commit landing between an
// outcome's LoadLinks and its commit) or another process's on the same
// file: the commit writes the link as it holds it, head and state
// together, as a commit that read the head did. Links no commit touched
// since their load keep their heads unread, also when other links were
// committed in between (a pass's next batch, loaded while the one before
// committed). Fails without the store's log of link writes (linkgen.go):
// the outcome's commit left the other commit's hash (and record) beside
// its own state, and the next pass would never read the link again.
func TestStoredHeadsWrittenSinceLoad(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nhisync.db")
	open := func() *Store {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	storedLinksEstate(t, s, 1)
	hashOf := func(system, id string) (string, int64) {
		t.Helper()
		got, err := s.LoadLinks(ctx, system, []string{id})
		if err != nil || len(got) != 1 {
			t.Fatalf("LoadLinks %s/%s: %d, %v", system, id, len(got), err)
		}
		return string(got[0].Hash), got[0].RecordID
	}
	commit := func(st *Store, links ...*nhisync.Link) {
		t.Helper()
		if err := st.Commit(ctx, &nhisync.Batch{Links: links}); err != nil {
			t.Fatal(err)
		}
	}
	load := func(st *Store, system, id string) *nhisync.Link {
		t.Helper()
		got, err := st.LoadLinks(ctx, system, []string{id})
		if err != nil || len(got) != 1 {
			t.Fatalf("LoadLinks %s/%s: %d, %v", system, id, len(got), err)
		}
		return got[0]
	}

	t.Run("this store", func(t *testing.T) {
		outcome := load(s, "cmdb", "cmdb-1")
		pass := load(s, "cmdb", "cmdb-1")
		pass.Hash = []byte("h-seen")
		pass.Field("owner").Asserted = nhisync.Str("seen@x")
		commit(s, pass)
		outcome.Field("owner").Shadow = nhisync.Str("cmdb@x")
		commit(s, outcome)
		if h, _ := hashOf("cmdb", "cmdb-1"); h != "h-cmdb" {
			t.Errorf("cmdb-1's hash %q beside the outcome's state, want h-cmdb (the outcome's)", h)
		}
	})
	t.Run("moved", func(t *testing.T) {
		outcome := load(s, "catalog", "catalog-2")
		mover := load(s, "catalog", "catalog-2")
		mover.RecordID = 3
		commit(s, mover)
		commit(s, outcome)
		if _, rec := hashOf("catalog", "catalog-2"); rec != 2 {
			t.Errorf("catalog-2 on record %d beside the outcome's state, want 2 (the outcome's)", rec)
		}
	})
	t.Run("another process", func(t *testing.T) {
		other := open()
		outcome := load(s, "cmdb", "cmdb-2")
		w := load(other, "cmdb", "cmdb-2")
		w.Hash = []byte("h-other")
		commit(other, w)
		commit(s, outcome)
		if h, _ := hashOf("cmdb", "cmdb-2"); h != "h-cmdb" {
			t.Errorf("cmdb-2's hash %q beside the outcome's state, want h-cmdb (the outcome's)", h)
		}
	})
	t.Run("untouched", func(t *testing.T) {
		first := load(s, "cmdb", "cmdb-3")
		next := load(s, "catalog", "catalog-3")
		first.Hash = []byte("h-first")
		commit(s, first)
		next.Hash = []byte("h-next")
		before := s.headsRead.Load()
		commit(s, next)
		if n := s.headsRead.Load() - before; n != 0 {
			t.Errorf("the commit of a link no commit touched since its load read %d heads, want 0", n)
		}
		if h, _ := hashOf("catalog", "catalog-3"); h != "h-next" {
			t.Errorf("catalog-3's hash %q, want h-next", h)
		}
	})
}
