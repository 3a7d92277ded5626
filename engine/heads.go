package engine

import (
	"hash/maphash"
	"iter"
	"math/bits"
	"strings"
)

// headTable holds a system's stored link heads by external id while a
// pass reads it: a quiet pass looks every record it reads up here, a
// million per system. It is one array of slots, each a head with where
// its id is, found by open addressing (linear probing) from the id's
// hash, and the ids themselves in shared chunks of text: no pointer per
// head, so the garbage collector skips the whole table (a map of
// *head by id string held three pointers per head for it to follow), and
// a look-up reads the slot, then the id's bytes, instead of the map's
// control word, its key, the id's bytes and the head. In the bench
// estate's quiet pass at 300,000 NHIs the maps' look-ups and inserts and
// their share of marking were about a sixth of the pass's CPU time.
//
// A *head that get or add returns stays valid until the next add (which
// may move the slots); all and get return heads in place, so changes to
// them are kept. Nothing adds while all yields: a growth would move the
// slots under it. (A pass adds every head before it looks one up.)
type headTable struct {
	seed  maphash.Seed
	slots []headSlot
	n     int
	// ids holds the slots' ids: chunks of text, appended to only, and the
	// current chunk's builder (cur, whose bytes never move: it is grown to
	// its size at once, see texts).
	ids    []string
	cur    strings.Builder
	curIdx uint32
}

// headSlot is a head and where its id is (ids[chunk][off:off+n]); tag
// is the id's hash with its low bit set, 0 in an empty slot.
type headSlot struct {
	head
	tag   uint32
	chunk uint32
	off   uint32
	n     uint32
}

// headLoad is the share of slots a table fills before it grows: short
// probes with linear probing, and slots of 48 bytes about as many bytes
// per head as the map and head slab did.
const (
	headLoadNum, headLoadDen = 4, 5
	headChunk                = 64 << 10
)

// newHeadTable returns a table sized for about n heads, and an eighth
// more: n is what the system's last full read saw, and the store keeps the
// links of records that vanished since (gone) beside them.
func newHeadTable(n int) *headTable {
	t := &headTable{seed: maphash.MakeSeed()}
	t.slots = make([]headSlot, max(8, (n+n/8)*headLoadDen/headLoadNum+1))
	return t
}

func (t *headTable) hash(id string) (uint64, uint32) {
	h := maphash.String(t.seed, id)
	return h, uint32(h) | 1
}

// start is the first slot to probe for hash h: h scaled to the slots'
// range (its high bits), not h modulo a power of two, so the table can
// be sized to what it holds.
func (t *headTable) start(h uint64) int {
	i, _ := bits.Mul64(h, uint64(len(t.slots)))
	return int(i)
}

func (t *headTable) idOf(s *headSlot) string {
	return t.ids[s.chunk][s.off : s.off+s.n]
}

// get returns the head of id, or nil.
func (t *headTable) get(id string) *head {
	if t == nil || t.n == 0 {
		return nil
	}
	h, tag := t.hash(id)
	for i := t.start(h); ; {
		s := &t.slots[i]
		switch {
		case s.tag == 0:
			return nil
		case s.tag == tag && int(s.n) == len(id) && t.idOf(s) == id:
			return &s.head
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// warm reads the slots the look-ups of ids (at most warmRun) probe
// first and the first byte of the ids those slots hold, and returns what
// it read, for the caller to keep so that the reads are not left out.
// Each read is a miss in cache and, as the table is far larger than the
// TLB reaches, a walk of the page tables: get, one id at a time, waits for
// each in turn (two a look-up: the slot, then its id), while warm's loops,
// a read an iteration with nothing between them, have the processor make
// the run's reads at once; the gets that follow find the slots and ids in
// cache. At a million heads this took 45% off the CPU time of a look-up
// on the build machine (BenchmarkHeadTableGet1M, BenchmarkHeadTableWarmGet1M).
func (t *headTable) warm(ids []string) (sum uint32) {
	if t == nil || t.n == 0 {
		return 0
	}
	var at [warmRun]int
	ids = ids[:min(len(ids), warmRun)]
	for i, id := range ids {
		h, _ := t.hash(id)
		at[i] = t.start(h)
	}
	for _, i := range at[:len(ids)] {
		sum += t.slots[i].tag
	}
	for _, i := range at[:len(ids)] {
		if s := &t.slots[i]; s.n > 0 {
			sum += uint32(t.ids[s.chunk][s.off])
		}
	}
	return sum
}

// add adds id with an empty head and returns the head; an id already in
// the table keeps its head, which add returns, and found is true.
func (t *headTable) add(id string) (hd *head, found bool) {
	t.room(1)
	h, _ := t.hash(id)
	return t.place(id, h)
}

// addRun adds ids as add does, in order, and calls fn with the index of
// each, its head and found; a head fn is given stays valid while fn runs.
// It returns what it read ahead, for the caller to keep (see warm). Heads
// load in the store's order, by id, and land in slots all over a table
// far larger than the cache: add, one id at a time, waits for each slot's
// miss in turn; addRun takes the ids a run (addRunLen) at a time, grows
// the table for the run if it must, hashes the run's ids and reads the
// slots they land in first, at once, as warm does for look-ups, so the
// adds that follow find them in cache.
func (t *headTable) addRun(ids []string, fn func(i int, hd *head, found bool)) (sum uint32) {
	var hs [addRunLen]uint64
	for at := 0; at < len(ids); at += addRunLen {
		run := ids[at:min(at+addRunLen, len(ids))]
		t.room(len(run))
		for i, id := range run {
			hs[i] = maphash.String(t.seed, id)
		}
		for i := range run {
			sum += t.slots[t.start(hs[i])].tag
		}
		for i, id := range run {
			hd, found := t.place(id, hs[i])
			fn(at+i, hd, found)
		}
	}
	return sum
}

// addRunLen is how many heads addRun reads ahead for at once: as
// warmRun, enough slot reads in flight to overlap their misses.
const addRunLen = 32

// room grows the table until it takes n more heads at its load.
func (t *headTable) room(n int) {
	for (t.n+n)*headLoadDen > len(t.slots)*headLoadNum {
		t.grow()
	}
}

// place adds id, whose hash is h, to a table with room for it (room).
func (t *headTable) place(id string, h uint64) (hd *head, found bool) {
	tag := uint32(h) | 1
	for i := t.start(h); ; {
		s := &t.slots[i]
		switch {
		case s.tag == 0:
			s.tag = tag
			s.chunk, s.off, s.n = t.keep(id)
			t.n++
			return &s.head, false
		case s.tag == tag && int(s.n) == len(id) && t.idOf(s) == id:
			return &s.head, true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// keep copies id into the current chunk of ids (a new one when it has no
// room) and returns where it is.
func (t *headTable) keep(id string) (chunk, off, n uint32) {
	if t.cur.Cap()-t.cur.Len() < len(id) || len(t.ids) == 0 {
		t.cur = strings.Builder{}
		t.cur.Grow(max(headChunk, len(id)))
		t.ids = append(t.ids, "")
		t.curIdx = uint32(len(t.ids) - 1)
	}
	off = uint32(t.cur.Len())
	t.cur.WriteString(id)
	// The builder's bytes stay where they are (it had room): the chunk's
	// earlier ids keep pointing into the same text.
	t.ids[t.curIdx] = t.cur.String()
	return t.curIdx, off, uint32(len(id))
}

// grow makes half as many slots again and places every head again: the
// slots need not be a power of two (start), and a table that outgrew its
// estimate by a little does not take twice the memory.
func (t *headTable) grow() {
	old := t.slots
	t.slots = make([]headSlot, len(old)+len(old)/2)
	for k := range old {
		s := &old[k]
		if s.tag == 0 {
			continue
		}
		h, _ := t.hash(t.idOf(s))
		i := t.start(h)
		for t.slots[i].tag != 0 {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i] = *s
	}
}

// all yields every id and its head, in no particular order.
func (t *headTable) all() iter.Seq2[string, *head] {
	return func(yield func(string, *head) bool) {
		if t == nil {
			return
		}
		for k := range t.slots {
			s := &t.slots[k]
			if s.tag != 0 && !yield(t.idOf(s), &s.head) {
				return
			}
		}
	}
}

// warmRun is how many ids are warmed ahead of their look-ups: enough
// reads in flight to overlap their misses, few enough that what they
// bring in stays in cache until the look-ups.
const warmRun = 32
