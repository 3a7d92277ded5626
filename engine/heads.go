package engine

import (
	"encoding/binary"
	"hash/maphash"
	"iter"
	"math"
	"math/bits"
	"strings"
)

// headTable holds a system's stored link heads by external id while a
// pass reads it: a quiet pass looks every record it reads up here, a
// million per system. It is an array of slots found by open addressing
// (linear probing) from the id's hash, each the id's tag, its head's place
// in an array of heads (in the order added) and its id's place in shared
// chunks of text: no pointer per head, so the garbage collector skips the
// whole table (a map of *head by id string held three pointers per head
// for it to follow), and a look-up reads the slot, then the head and the
// id's bytes at once, instead of the map's control word, its key, the id's
// bytes and the head. In the bench estate's quiet pass at 300,000 NHIs the
// maps' look-ups and inserts and their share of marking were about a
// sixth of the pass's CPU time.
//
// The slots are 12 bytes, not a head each (48 bytes with the id's place):
// a table of a million heads touches 17 MB of slots and 32 MB of heads
// (appended in order, page after page), not 67 MB of slots all over. A
// pass touches its head tables' memory for the first time, a page fault
// each 4 KiB (about 15 µs each on the build machine, a virtual machine),
// and the slots an add lands in at random are a quarter as many bytes, so
// more of them stay in cache. A million heads loaded into a new table over
// memory handed back to the system, then each looked up once
// (BenchmarkHeadTableColdPass1M), took a fifth less CPU time.
//
// A *head that get or add returns stays valid until the next add (which
// may move the heads); all and get return heads in place, so changes to
// them are kept. Nothing adds while all yields: a growth would move the
// slots under it. (A pass adds every head before it looks one up.)
type headTable struct {
	seed  maphash.Seed
	slots []headSlot
	// heads holds the heads, in the order added; n is how many.
	heads []head
	n     int
	// ids holds the slots' ids: chunks of text, appended to only, each
	// id after its length (a uvarint), and the current chunk's builder
	// (cur, whose bytes never move: it is grown to its size at once, see
	// keep) with the bytes it may take (curCap).
	ids    []string
	cur    strings.Builder
	curCap int
	curIdx uint32
}

// headSlot is where a head and its id are: heads[at], and the id's length
// and bytes at ids[id>>16][id&0xffff:]; tag is the id's hash with its low
// bit set, 0 in an empty slot.
type headSlot struct {
	tag uint32
	at  uint32
	id  uint32
}

// headLoad is the share of slots a table fills before it grows: short
// probes with linear probing. headChunk is the size of a chunk of ids: an
// id's offset in its chunk fits the low 16 bits of headSlot.id (an id
// longer than a chunk has one of its own, at offset 0).
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
	t.heads = make([]head, 0, n+n/8)
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

// idOf returns the id of slot s.
func (t *headTable) idOf(s *headSlot) string {
	c := t.ids[s.id>>16]
	if off := int(s.id & 0xffff); c[off] < 0x80 {
		return c[off+1 : off+1+int(c[off])]
	}
	id, _ := idAt(c, int(s.id&0xffff))
	return id
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
		case s.tag == tag && t.idOf(s) == id:
			return &t.heads[s.at]
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// warm reads the slots the look-ups of ids (at most warmRun) probe first,
// then the heads and the first byte of the ids those slots hold, and
// returns what it read, for the caller to keep so that the reads are not
// left out. Each read is a miss in cache and, as the table is far larger
// than the TLB reaches, a walk of the page tables: get, one id at a time,
// waits for each in turn (the slot, then its head and id), while warm's loops,
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
		if s := &t.slots[i]; s.tag != 0 {
			sum += uint32(t.ids[s.id>>16][s.id&0xffff]) + uint32(t.heads[s.at].status)
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

// room grows the table until it takes n more heads at its load, and the
// heads by half (not double, as append would) when they have no room for
// n more.
func (t *headTable) room(n int) {
	for (t.n+n)*headLoadDen > len(t.slots)*headLoadNum {
		t.grow()
	}
	if cap(t.heads)-len(t.heads) < n {
		heads := make([]head, len(t.heads), max(len(t.heads)+n, cap(t.heads)+cap(t.heads)/2))
		copy(heads, t.heads)
		t.heads = heads
	}
}

// place adds id, whose hash is h, to a table with room for it (room).
func (t *headTable) place(id string, h uint64) (hd *head, found bool) {
	tag := uint32(h) | 1
	for i := t.start(h); ; {
		s := &t.slots[i]
		switch {
		case s.tag == 0:
			if uint64(t.n) == math.MaxUint32 {
				panic("a system holds more than 2^32-1 link heads")
			}
			s.tag, s.at, s.id = tag, uint32(t.n), t.keep(id)
			t.heads = append(t.heads, head{})
			t.n++
			return &t.heads[s.at], false
		case s.tag == tag && t.idOf(s) == id:
			return &t.heads[s.at], true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// keep copies id, after its length, into the current chunk of ids (a new
// one when it has no room) and returns where it is: the chunk's index in
// the high 16 bits, the offset in the low.
func (t *headTable) keep(id string) uint32 {
	var pre [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(pre[:], uint64(len(id)))
	if t.curCap-t.cur.Len() < k+len(id) || len(t.ids) == 0 {
		if len(t.ids) == 1<<16 {
			panic("a system's link heads hold more than 4 GiB of external ids")
		}
		t.cur = strings.Builder{}
		t.curCap = max(headChunk, k+len(id))
		t.cur.Grow(t.curCap)
		t.ids = append(t.ids, "")
		t.curIdx = uint32(len(t.ids) - 1)
	}
	off := uint32(t.cur.Len())
	t.cur.Write(pre[:k])
	t.cur.WriteString(id)
	// The builder's bytes stay where they are (it had room): the chunk's
	// earlier ids keep pointing into the same text.
	t.ids[t.curIdx] = t.cur.String()
	return t.curIdx<<16 | off
}

// grow makes half as many slots again and places every slot again (the
// heads stay where they are): the slots need not be a power of two
// (start), and a table that outgrew its estimate by a little does not take
// twice the memory.
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

// all yields every id and its head, in the order they were added (the
// store's, for a system's link heads). It walks the heads and the chunks
// of ids side by side, both in that order, each once from start to end:
// not the slots, whose heads and ids lie all over the table, two misses
// in cache per slot. At a million heads a walk of the slots took 66 ns of
// CPU per head on the build machine, this walk about 1 ns
// (BenchmarkHeadTableAll1M); correlation walks every system's heads once.
func (t *headTable) all() iter.Seq2[string, *head] {
	return func(yield func(string, *head) bool) {
		if t == nil {
			return
		}
		i := 0
		for _, c := range t.ids {
			for off := 0; off < len(c) && i < t.n; i++ {
				id, next := idAt(c, off)
				if !yield(id, &t.heads[i]) {
					return
				}
				off = next
			}
		}
	}
}

// idAt returns the id kept at offset off of chunk c (keep: its length, a
// uvarint, then its bytes) and the offset after it.
func idAt(c string, off int) (id string, next int) {
	n, k := uint64(0), off
	for shift := 0; ; shift += 7 {
		b := c[k]
		k++
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	return c[k : k+int(n)], k + int(n)
}

// warmRun is how many ids are warmed ahead of their look-ups: enough
// reads in flight to overlap their misses, few enough that what they
// bring in stays in cache until the look-ups.
const warmRun = 32

// clearMarks readies a table kept from the last pass (HeadCache) for the
// next: no head is seen or changed yet.
func (t *headTable) clearMarks() {
	for i := range t.heads[:t.n] {
		t.heads[i].seen, t.heads[i].changed = false, false
	}
}
