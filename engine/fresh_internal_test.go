package engine

import (
	"hash/maphash"
	"testing"
	"time"
)

// TestPlaceFreshCollision holds placeFresh to a set of ids, not of their
// hashes: an id whose hash another id read before has is new the first
// time and a duplicate the second, and so is the other id. No two ids are
// known to share a hash, so the test puts one id's record under the
// other's hash, as a collision would have.
func TestPlaceFreshCollision(t *testing.T) {
	r := &sysRead{freshIDs: map[uint64]*staged{}, dups: map[string]int{}}
	stage := func(id string) *staged { return r.stage(id, nil, time.Time{}, "") }
	a := stage("a")
	r.freshIDs[maphash.String(freshSeed, "b")] = a
	steps := []struct {
		id  string
		dup bool
	}{
		{"b", false}, // b's hash is a's: b is new all the same
		{"b", true},
		{"a", false}, // a under its own hash
		{"a", true},
		{"c", false},
		{"b", true},
		{"c", true},
	}
	for i, s := range steps {
		st := stage(s.id)
		if dup := r.placeFresh(st); dup != s.dup {
			t.Fatalf("step %d: placeFresh(%q) = %v, want %v", i, s.id, dup, s.dup)
		}
		if st.fresh == s.dup {
			t.Fatalf("step %d: %q fresh = %v, want %v", i, s.id, st.fresh, !s.dup)
		}
	}
	if want := map[string]int{"a": 1, "b": 2, "c": 1}; len(r.dups) != len(want) || r.dups["a"] != 1 || r.dups["b"] != 2 || r.dups["c"] != 1 {
		t.Fatalf("dups = %v, want %v", r.dups, want)
	}
	if r.seen != 3 {
		t.Fatalf("seen = %d, want 3 (a, b, c)", r.seen)
	}
}
