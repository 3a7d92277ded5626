package engine

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestHeadTable holds the head table to a map's behaviour: every id added
// is found with its head, through growth from a table sized for far fewer,
// ids that are prefixes of others, an empty id and one longer than a chunk;
// an id added twice keeps one head; all yields each id once, in the
// order added.
func TestHeadTable(t *testing.T) {
	tbl := newHeadTable(3)
	want := map[string]int64{}
	ids := []string{"", "a", "ab", strings.Repeat("x", headChunk+10)}
	for i := range 20000 {
		ids = append(ids, "id-"+strconv.Itoa(i))
	}
	for i, id := range ids {
		hd, found := tbl.add(id)
		if found {
			t.Fatalf("add(%.20q): found before it was added", id)
		}
		hd.recordID = int64(i + 1)
		want[id] = int64(i + 1)
	}
	if hd, found := tbl.add("ab"); !found || hd.recordID != want["ab"] {
		t.Fatalf("add of an id held: found %v, head %+v", found, hd)
	}
	if tbl.n != len(want) {
		t.Fatalf("holds %d heads, want %d", tbl.n, len(want))
	}
	for id, rec := range want {
		if hd := tbl.get(id); hd == nil || hd.recordID != rec {
			t.Fatalf("get(%.20q) = %+v, want record %d", id, hd, rec)
		}
	}
	for _, id := range []string{"b", "id-", "id-20000", "a\x00"} {
		if hd := tbl.get(id); hd != nil {
			t.Fatalf("get(%q) = %+v for an id never added", id, hd)
		}
	}
	seen := map[string]bool{}
	k := 0
	for id, hd := range tbl.all() {
		if seen[id] {
			t.Fatalf("all yields %.20q twice", id)
		}
		seen[id] = true
		if k >= len(ids) || id != ids[k] {
			t.Fatalf("all yields %.20q as the id added %d-th", id, k)
		}
		k++
		if hd.recordID != want[id] {
			t.Fatalf("all: %.20q has record %d, want %d", id, hd.recordID, want[id])
		}
		// Heads are changed in place.
		hd.seen = true
	}
	if len(seen) != len(want) {
		t.Fatalf("all yields %d ids, want %d", len(seen), len(want))
	}
	if hd := tbl.get("id-7"); !hd.seen {
		t.Fatal("a change to a head that all yielded is lost")
	}
	for range tbl.all() {
		break // stopping early is allowed
	}
	var empty *headTable
	if empty.get("a") != nil {
		t.Fatal("a nil table holds a head")
	}
	for range empty.all() {
		t.Fatal("a nil table yields a head")
	}
}

// TestHeadTableRoomForGoneLinks holds a table sized for a system's last
// read to room for an eighth more heads without growing (the links of
// records gone since are loaded too), and to growing by half, not double,
// past that.
func TestHeadTableRoomForGoneLinks(t *testing.T) {
	const n = 8000
	tbl := newHeadTable(n)
	slots := len(tbl.slots)
	for i := range n + n/8 {
		tbl.add("id-" + strconv.Itoa(i))
	}
	if len(tbl.slots) != slots {
		t.Fatalf("%d heads in a table sized for %d grew it from %d to %d slots", n+n/8, n, slots, len(tbl.slots))
	}
	for i := n + n/8; len(tbl.slots) == slots; i++ {
		tbl.add("id-" + strconv.Itoa(i))
	}
	if len(tbl.slots) != slots+slots/2 {
		t.Fatalf("grew from %d to %d slots, want %d", slots, len(tbl.slots), slots+slots/2)
	}
}

// warm reads only: on a nil or empty table, over an empty id's slot, past
// warmRun ids and over ids the table does not hold, it neither fails nor
// changes what get finds.
func TestHeadTableWarm(t *testing.T) {
	var none *headTable
	if none.warm([]string{"a"}) != 0 || newHeadTable(0).warm([]string{"a"}) != 0 {
		t.Fatal("warm of a table without heads read something")
	}
	tbl := newHeadTable(100)
	var ids []string
	for i := range 3 * warmRun {
		ids = append(ids, "id-"+strconv.Itoa(i))
	}
	ids = append(ids, "")
	for i, id := range ids {
		hd, _ := tbl.add(id)
		hd.recordID = int64(i + 1)
	}
	for start := 0; start < len(ids); start += warmRun {
		tbl.warm(ids[start:])
		tbl.warm(append([]string{"absent", ""}, ids[start:]...))
	}
	for i, id := range ids {
		if hd := tbl.get(id); hd == nil || hd.recordID != int64(i+1) {
			t.Fatalf("get(%q) after warm = %+v", id, hd)
		}
	}
}

// TestHeadTableAddRun holds addRun to add's behaviour, id by id: runs
// longer and shorter than addRunLen into a table sized for far fewer
// (growing inside a call), an id twice within one run and ids added by
// an earlier run or by add; each id is found with the head fn set, and fn
// is told found as add would have told it.
func TestHeadTableAddRun(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tbl, ref := newHeadTable(3), newHeadTable(3)
	var ids []string
	for i := range 5000 {
		ids = append(ids, "id-"+strconv.Itoa(i))
	}
	tbl.add(ids[7])
	ref.add(ids[7])
	next := int64(1)
	for at := 0; at < len(ids); {
		n := r.IntN(3 * addRunLen)
		run := slices.Clone(ids[at:min(at+n, len(ids))])
		at += len(run)
		// Ids repeated within the run and from earlier ones.
		if len(run) > 2 {
			run = slices.Insert(run, len(run)/2, run[0])
			run = append(run, run[1], ids[r.IntN(at)])
		}
		calls := 0
		tbl.addRun(run, func(i int, hd *head, found bool) {
			if i != calls {
				t.Fatalf("fn called for index %d, want %d", i, calls)
			}
			calls++
			want, wantFound := ref.add(run[i])
			if found != wantFound {
				t.Fatalf("addRun(%q): found %v, add says %v", run[i], found, wantFound)
			}
			if found && hd.recordID != want.recordID {
				t.Fatalf("addRun(%q) gave head of record %d, want %d", run[i], hd.recordID, want.recordID)
			}
			hd.recordID, want.recordID = next, next
			next++
		})
		if calls != len(run) {
			t.Fatalf("fn called %d times for a run of %d", calls, len(run))
		}
	}
	if tbl.n != ref.n || tbl.n != len(ids) {
		t.Fatalf("addRun's table holds %d heads, add's %d, want %d", tbl.n, ref.n, len(ids))
	}
	for id, want := range ref.all() {
		if hd := tbl.get(id); hd == nil || hd.recordID != want.recordID {
			t.Fatalf("get(%q) = %+v, want record %d", id, hd, want.recordID)
		}
	}
}
