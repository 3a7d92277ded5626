package engine

// Staging: what a pass holds in memory between reading the systems and
// deciding the records. A first pass holds every record of every system
// (SPEC §8: a million NHIs in three systems, in 2 GiB), so everything here
// is sized for millions: link heads and observations are small structs
// without their own heap objects (heads in a table without pointers,
// heads.go; observations in slabs; hashes inline), an
// observation keeps its canonical values as the bytes its content hash
// was built from, and both are dropped as soon as correlation and the
// decision of their record are done.

import (
	"crypto/sha256"
	"encoding/binary"
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
	// changed is set when the read staged the record (its hash differed):
	// restageStrays need not stage it again.
	changed bool
}

// staged is one observation that must be correlated and decided: a
// record new to the pass's view, or changed since its hash was stored.
// It is 48 bytes plus its encoding: a first pass holds one per record
// and system.
type staged struct {
	// r is the read of the observation's system.
	r *sysRead
	// enc is the observation's external ID, source time and actor (a
	// header, see stage) followed by its canonical values, one per
	// mapping of the system (none for a mapping not read), as
	// nhisync.Value.AppendBinary encodes them: the bytes the content hash
	// was built from, without the fingerprint. Decoded values share its
	// text.
	enc  string
	hash [hashLen]byte
	// hasHash is false for an observation that must read as changed next
	// time (a disputed duplicate id).
	hasHash bool
	// matched is set when correlation linked the observation to its
	// record by match values (not by a stored link): no other record of
	// its system may then link to that record in this pass.
	matched bool
	// fresh is set when the store held no link for the id when the read
	// staged it: its head is the read's fresh one.
	fresh bool
}

// system is the name of the observation's system.
func (st *staged) system() string { return st.r.sys.Name }

// id is the observation's external ID (a part of its encoding).
func (st *staged) id() string {
	n, k := binary.Uvarint([]byte(st.enc[:min(len(st.enc), binary.MaxVarintLen64)]))
	return st.enc[k : k+int(n)]
}

// The header of a staged encoding: the external ID (a uvarint length,
// then the text), a byte of flags, then the source time (its length, then
// time.Time.AppendBinary) and the actor (a uvarint length, then the text)
// when present.
const (
	hasModified = 1 << iota
	hasActor
)

// stage keeps an observation: its external ID, source time, actor and
// encoded values vals, copied into the read's arena (so no connector's
// read buffer is kept alive by it).
func (r *sysRead) stage(id string, vals []byte, modified time.Time, actor string) *staged {
	hdr := binary.AppendUvarint(r.hdr[:0], uint64(len(id)))
	hdr = append(hdr, id...)
	flags := len(hdr)
	hdr = append(hdr, 0)
	if !modified.IsZero() {
		hdr[flags] |= hasModified
		hdr = append(hdr, 0)
		n := len(hdr)
		var err error
		// In UTC AppendBinary cannot fail (it refuses only zone offsets
		// that are not whole minutes).
		if hdr, err = modified.UTC().AppendBinary(hdr); err != nil {
			panic("engine: " + err.Error())
		}
		hdr[n-1] = byte(len(hdr) - n)
	}
	if actor != "" {
		hdr[flags] |= hasActor
		hdr = binary.AppendUvarint(hdr, uint64(len(actor)))
		hdr = append(hdr, actor...)
	}
	r.hdr = hdr
	st := r.staged.alloc()
	st.r, st.enc = r, r.arena.copy(hdr, vals)
	return st
}

// source returns the observation's source time (zero when its system
// gave none) and actor, and the encoded values after them.
func (st *staged) source() (modified time.Time, actor, vals string) {
	n, k := binary.Uvarint([]byte(st.enc[:min(len(st.enc), binary.MaxVarintLen64)]))
	b := st.enc[k+int(n):]
	flags := b[0]
	b = b[1:]
	if flags&hasModified != 0 {
		n := int(b[0])
		if err := modified.UnmarshalBinary([]byte(b[1 : 1+n])); err != nil {
			panic("engine: a staged observation of " + st.system() + " does not decode: " + err.Error())
		}
		b = b[1+n:]
	}
	if flags&hasActor != 0 {
		n, k := binary.Uvarint([]byte(b[:min(len(b), binary.MaxVarintLen64)]))
		actor, b = b[k:k+int(n)], b[k+int(n):]
	}
	return modified, actor, b
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
	return st.valuesInto(nil, sys)
}

// valuesInto is values, decoded into dst's array when it has room: a
// decision copies the values it keeps, so its decider decodes every
// observation into one slice instead of a new one each.
func (st *staged) valuesInto(dst []nhisync.Value, sys *nhisync.System) []nhisync.Value {
	_, _, b := st.source()
	fields := sys.Fields
	out := dst[:0]
	if cap(out) < len(fields) {
		out = make([]nhisync.Value, len(fields))
	}
	out = out[:len(fields)]
	for i, m := range fields {
		v, rest, ok := m.Type.ReadBinary(b)
		if !ok {
			panic("engine: a staged observation of " + st.system() + " does not decode")
		}
		out[i], b = v, rest
	}
	return out
}

// value decodes the value of sys's mapping i only.
func (st *staged) value(sys *nhisync.System, i int) nhisync.Value {
	_, _, b := st.source()
	for range i {
		rest, ok := nhisync.SkipBinary(b)
		if !ok {
			panic("engine: a staged observation of " + st.system() + " does not decode")
		}
		b = rest
	}
	v, _, ok := sys.Fields[i].Type.ReadBinary(b)
	if !ok {
		panic("engine: a staged observation of " + st.system() + " does not decode")
	}
	return v
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

// copy is clone of a's bytes followed by b's.
func (t *texts) copy(a, b []byte) string {
	start := t.room(len(a) + len(b))
	t.b.Write(a)
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
