package engine

// Staging: what a pass holds in memory between reading the systems and
// deciding the records. A first pass holds every record of every system
// (SPEC §8: a million NHIs in three systems, in 2 GiB), so everything here
// is sized for millions: link heads and observations are small structs
// without their own heap objects (allocated in slabs, hashes inline), an
// observation keeps its canonical values as the bytes its content hash
// was built from, and both are dropped as soon as correlation and the
// decision of their record are done.

import (
	"crypto/sha256"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// linkState is a link's status as a pass keeps it in a head: one byte
// instead of the status text.
type linkState uint8

const (
	// stateNone is a link the store does not hold yet (or with a status
	// this version does not know): it equals none of the others.
	stateNone linkState = iota
	stateLive
	stateGone
	stateUnmatched
	stateDisputed
	stateDismissed
)

func stateOf(s nhisync.LinkStatus) linkState {
	switch s {
	case nhisync.LinkLive:
		return stateLive
	case nhisync.LinkGone:
		return stateGone
	case nhisync.LinkUnmatched:
		return stateUnmatched
	case nhisync.LinkDisputed:
		return stateDisputed
	case nhisync.LinkDismissed:
		return stateDismissed
	}
	return stateNone
}

// hashLen is the length of a content hash.
const hashLen = 16

// contentHash hashes an observation's canonical values.
func contentHash(fp string, values []nhisync.Value) []byte {
	h := hashValues(make([]byte, 0, 256), fp, values)
	return h.sum[:]
}

// hashed is a content hash and the encoded values it was computed from.
type hashed struct {
	sum [hashLen]byte
	// buf is the mapping fingerprint followed by the values' encoding.
	buf []byte
}

// hashValues encodes values after fp into buf (reused) and hashes them.
func hashValues(buf []byte, fp string, values []nhisync.Value) hashed {
	buf = append(buf[:0], fp...)
	for _, v := range values {
		buf = v.AppendBinary(buf)
	}
	sum := sha256.Sum256(buf)
	return hashed{sum: [hashLen]byte(sum[:hashLen]), buf: buf}
}

// head is what a pass keeps of one stored link while reading its system:
// enough to tell an unchanged record by one hash compare, and to see what
// vanished.
type head struct {
	recordID int64
	hash     [hashLen]byte
	// hasHash is false for a new link, one stored without a hash, or one
	// whose system's mapping changed since its hash was computed.
	hasHash bool
	status  linkState
	seen    bool
}

// staged is one observation that must be correlated and decided: a
// record new to the pass's view, or changed since its hash was stored.
type staged struct {
	system string
	id     string
	// vals are the canonical values, one per mapping of the system (none
	// for a mapping not read), as nhisync.Value.AppendBinary encodes them:
	// the bytes the content hash was built from, without the fingerprint.
	// Decoded values share its text.
	vals     string
	modified time.Time
	actor    string
	hash     [hashLen]byte
	// hasHash is false for an observation that must read as changed next
	// time (a disputed duplicate id).
	hasHash bool
}

// hashBytes returns the content hash to store in the link (nil: none).
func (st *staged) hashBytes() []byte {
	if !st.hasHash {
		return nil
	}
	return st.hash[:]
}

// values decodes every value, one per mapping of sys (the observation's
// system).
func (st *staged) values(sys *nhisync.System) []nhisync.Value {
	fields := sys.Fields
	out := make([]nhisync.Value, len(fields))
	b := st.vals
	for i, m := range fields {
		v, rest, ok := m.Type.ReadBinary(b)
		if !ok {
			panic("engine: a staged observation of " + st.system + " does not decode")
		}
		out[i], b = v, rest
	}
	return out
}

// value decodes the value of sys's mapping i only.
func (st *staged) value(sys *nhisync.System, i int) nhisync.Value {
	b := st.vals
	for range i {
		rest, ok := nhisync.SkipBinary(b)
		if !ok {
			panic("engine: a staged observation of " + st.system + " does not decode")
		}
		b = rest
	}
	v, _, ok := sys.Fields[i].Type.ReadBinary(b)
	if !ok {
		panic("engine: a staged observation of " + st.system + " does not decode")
	}
	return v
}

// stage keeps an observation: id (a copy the caller made) and its
// encoded values, copied into the read's arena (so no connector's read
// buffer is kept alive by it).
func (r *sysRead) stage(id string, enc []byte, modified time.Time, actor string) *staged {
	st := r.staged.alloc()
	st.system, st.id, st.vals, st.modified, st.actor = r.sys.Name, id, r.arena.copy(enc), modified, actor
	return st
}

// texts copies many small strings into shared chunks: one allocation per
// 64 KiB instead of one per string, and a copy holds no larger string
// (a connector's whole input row) alive.
type texts struct{ b strings.Builder }

func (t *texts) clone(s string) string {
	start := t.room(len(s))
	t.b.WriteString(s)
	return t.b.String()[start:]
}

// copy is clone of b's bytes.
func (t *texts) copy(b []byte) string {
	start := t.room(len(b))
	t.b.Write(b)
	return t.b.String()[start:]
}

// room makes room for n more bytes in the current chunk and returns where
// they start.
func (t *texts) room(n int) int {
	const chunk = 64 << 10
	if t.b.Cap()-t.b.Len() < n {
		// A new chunk: the strings handed out keep the old one alive; a
		// Builder only ever appends, so they never change.
		t.b = strings.Builder{}
		t.b.Grow(max(chunk, n))
	}
	return t.b.Len()
}

// slab allocates many small structs a few thousand at a time: one heap
// object per slab instead of one per struct.
type slab[T any] struct{ cur []T }

func (s *slab[T]) alloc() *T {
	const size = 4096
	if len(s.cur) == cap(s.cur) {
		s.cur = make([]T, 0, size)
	}
	s.cur = s.cur[:len(s.cur)+1]
	return &s.cur[len(s.cur)-1]
}
