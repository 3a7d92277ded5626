package engine

import "github.com/nhisync/nhisync"

// batchArena holds what a pass's decisions give the records of one batch
// — their links' field states, their golden values and their new links —
// in slabs that the batch after next reuses: a first pass decides
// millions of records, and these were most of the bytes it allocated per
// record (its GC's work), garbage as soon as their batch was committed.
//
// decideAll keeps two and alternates them: a batch's slabs are handed to
// the store with it and reused only once commitAsync has seen that batch
// committed (one batch in flight), when nothing holds the records any
// more (stores copy what they commit; the engine keeps no record of a
// committed batch). Nothing else decides with one, and a nil arena
// allocates as before: a dry run commits no batch to wait for, a human
// action decides one batch, and explain and what-if decide nothing
// (they recompute).
type batchArena struct {
	states  slabReuse[nhisync.FieldState]
	goldens slabReuse[nhisync.Golden]
	links   slabReuse[nhisync.Link]
	records slabReuse[nhisync.Record]
}

// reset makes every slab of a committed batch available again, zeroed,
// each sized for what the batch asked of it. Links and records keep
// their maps and link lists, emptied: a record's map of golden values
// and a link's of field states were each one or two allocations more.
func (a *batchArena) reset() {
	a.states.reset(nil)
	a.goldens.reset(nil)
	a.links.reset(func(l *nhisync.Link) {
		m := l.Fields
		clear(m)
		*l = nhisync.Link{Fields: m}
	})
	a.records.reset(func(r *nhisync.Record) {
		m, links := r.Fields, r.Links
		clear(m)
		clear(links)
		*r = nhisync.Record{Fields: m, Links: links[:0]}
	})
}

// record returns a zero record but, from the arena, for an empty map of
// golden values and an empty list of links with room.
func (a *batchArena) record() *nhisync.Record {
	if a == nil {
		return new(nhisync.Record)
	}
	return &a.records.take(1)[0]
}

func (a *batchArena) fieldStates(n int) []nhisync.FieldState {
	if a == nil {
		return make([]nhisync.FieldState, n)
	}
	return a.states.take(n)
}

func (a *batchArena) goldenRoom(n int) []nhisync.Golden {
	if a == nil {
		return make([]nhisync.Golden, 0, n)
	}
	return a.goldens.take(n)[:0]
}

// linkRoom returns an empty list of links with room for n, each of which
// may hold an empty map of field states (reset).
func (a *batchArena) linkRoom(n int) []nhisync.Link {
	if a == nil {
		return make([]nhisync.Link, 0, n)
	}
	return a.links.take(n)[:0]
}

// slabReuse hands out zeroed slices of one buffer, until reset.
type slabReuse[T any] struct {
	buf  []T
	used int
	// want is how many were asked for since reset: the next buffer's size.
	want int
}

// take returns n Ts as reset left them (zero, or emptied), with capacity n: from the buffer while it has
// room, else newly allocated (the buffer grows at reset).
func (r *slabReuse[T]) take(n int) []T {
	r.want += n
	if r.used+n > len(r.buf) {
		return make([]T, n)
	}
	s := r.buf[r.used : r.used+n : r.used+n]
	r.used += n
	return s
}

// reset zeroes what was taken, or hands each to empty when not nil.
func (r *slabReuse[T]) reset(empty func(*T)) {
	if empty == nil {
		clear(r.buf[:r.used])
	} else {
		for i := range r.buf[:r.used] {
			empty(&r.buf[i])
		}
	}
	r.used = 0
	if r.want > len(r.buf) {
		r.buf = make([]T, r.want+r.want/8)
	}
	r.want = 0
}
