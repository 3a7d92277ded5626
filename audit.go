package nhisync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit actions (SPEC §4).
const (
	ActObserved          = "observed"
	ActAccepted          = "accepted"
	ActAgreed            = "agreed"
	ActRefused           = "refused"
	ActMerged            = "merged"
	ActQuarantined       = "quarantined"
	ActQuarantineCleared = "quarantine.cleared"
	ActQuarantineDismiss = "quarantine.dismissed"
	ActConflictOpened    = "conflict.opened"
	ActConflictUpdated   = "conflict.updated"
	ActConflictResolved  = "conflict.resolved"
	ActApprovalRequested = "approval.requested"
	ActApprovalGranted   = "approval.granted"
	ActApprovalRejected  = "approval.rejected"
	ActApprovalSupersede = "approval.superseded"
	ActWriteApplied      = "write.applied"
	ActWriteFailed       = "write.failed"
	ActWriteStale        = "write.stale"
	ActRecordCreated     = "record.created"
	ActRecordLinked      = "record.linked"
	ActRecordUnmatched   = "record.unmatched"
	ActRecordDisputed    = "record.disputed"
	ActRecordDismissed   = "record.dismissed" // a person dismissed an unmatched or disputed record
	ActRecordVanished    = "record.vanished"
	ActRecordRetired     = "record.retired"
	ActRecordProvisioned = "record.provisioned"
	ActConfigLoaded      = "config.loaded"
	ActSystemDegraded    = "system.degraded"
	ActSystemRecovered   = "system.recovered"
	// ActSensitiveRevealed records that a person printed sensitive values
	// in clear (--reveal): who, which command, which record.
	ActSensitiveRevealed = "sensitive.revealed"
)

// AuditEntry is one append-only, hash-chained record of an event. The
// store assigns Seq, PrevHash and Hash when it appends the entry.
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Kind     string    `json:"kind,omitempty"`
	RecordID int64     `json:"record_id,omitempty"`
	Record   string    `json:"record,omitempty"`
	Field    string    `json:"field,omitempty"`
	System   string    `json:"system,omitempty"`
	// Old and New are left out of the JSON when they hold no value, as
	// null is (leaves written before held "old":null and "new":null; both
	// read alike).
	Old    Value  `json:"old,omitzero"`
	New    Value  `json:"new,omitzero"`
	Reason string `json:"reason,omitempty"`
	// Links are, in a record.created entry, the other systems' records
	// linked to the new record in the same pass (SPEC §4): one entry per
	// new record instead of one record.linked entry per link.
	Links []AuditLink `json:"links,omitempty"`
	// Fields are, in a record.created entry, the value every field was
	// first adopted with, where it came from and which systems held the
	// same value (SPEC §4): one entry per new record instead of one
	// accepted entry per field and one observed entry per agreeing system.
	// Expand gives the per-decision view. Sensitive values are kept as
	// SensitiveValue.
	Fields   []AuditField `json:"fields,omitempty"`
	PrevHash string       `json:"prev_hash"`
	Hash     string       `json:"hash,omitempty"`
}

// AuditLink is one link made with a new record, in its record.created
// entry: the system, its native id and why it linked.
type AuditLink struct {
	System string `json:"system"`
	ID     string `json:"id"`
	// Reason is why it linked; empty for ReasonMatch, the reason of most
	// links (Expand gives it back).
	Reason string `json:"reason,omitempty"`
}

// ReasonMatch is why another system's record links to a new record: its
// match key is the record's. A record.created entry leaves it out of its
// links (AuditLink.Reason empty).
const ReasonMatch = "match"

// AuditField is one field's first value in a record.created entry.
type AuditField struct {
	Field  string `json:"field"`
	System string `json:"system"`
	// Actor is who set the value in the system, as "system:actor", when
	// the system tells (empty: the system itself).
	Actor string `json:"actor,omitempty"`
	Value Value  `json:"value"`
	// Reason is the rule that chose the value; empty for ReasonFirstValue,
	// the reason of most first values, and "merge" for
	// ReasonMergeFirstValue (CreatedFieldReason; Expand gives them back).
	Reason string `json:"reason,omitempty"`
	// Agreed are the other systems that held the same value when it was
	// adopted, each as its actor: "system", or "system:actor" when the
	// system tells who set it there.
	Agreed []string `json:"agreed,omitempty"`
}

// ReasonAgrees is the reason of an observed entry: a system holds the
// golden value.
const ReasonAgrees = "agrees with the golden value"

// ReasonFirstValue is why priority accepts a value into an empty golden
// field that no other system contests. A record.created entry leaves it
// out of its fields (AuditField.Reason empty): most first values have it,
// and it would be about a quarter of the entry's bytes.
const ReasonFirstValue = "priority: the golden value was empty"

// ReasonMergeFirstValue is why merge accepts a value into an empty golden
// field. A record.created entry keeps it as "merge".
const ReasonMergeFirstValue = "merge: the golden value was empty"

// mergeFirstValue is what a record.created entry keeps of
// ReasonMergeFirstValue. No first value had it as its reason before.
const mergeFirstValue = "merge"

// CreatedFieldReason returns what a record.created entry keeps of the
// reason a field's first value was accepted for (AuditField.Reason):
// empty for ReasonFirstValue, "merge" for ReasonMergeFirstValue, any other
// reason as it is. Expand gives the reason back.
func CreatedFieldReason(reason string) string {
	switch reason {
	case ReasonFirstValue:
		return ""
	case ReasonMergeFirstValue:
		return mergeFirstValue
	}
	return reason
}

// CreatedLinkReason returns what a record.created entry keeps of the
// reason a link was made for (AuditLink.Reason): empty for ReasonMatch,
// any other reason as it is. Expand gives the reason back.
func CreatedLinkReason(reason string) string {
	if reason == ReasonMatch {
		return ""
	}
	return reason
}

// Expand returns the entry as one entry per decision: a record.created
// entry carrying Links and Fields becomes itself (without them), one
// record.linked entry per link, and per field one accepted entry followed
// by one observed entry per system that agreed, all with the same seq and
// time, as they were written before first adoptions were folded into one
// entry. Any other entry is returned alone. History, explain, summaries
// and reports read entries through it.
func (e *AuditEntry) Expand() []*AuditEntry {
	if len(e.Fields) == 0 && len(e.Links) == 0 {
		return []*AuditEntry{e}
	}
	out := make([]*AuditEntry, 0, e.expandedLen())
	c := *e
	c.Fields, c.Links = nil, nil
	out = append(out, &c)
	for _, l := range e.Links {
		reason := l.Reason
		if reason == "" {
			reason = ReasonMatch
		}
		out = append(out, &AuditEntry{Seq: e.Seq, Time: e.Time, Actor: l.System, Action: ActRecordLinked, Kind: e.Kind,
			RecordID: e.RecordID, Record: e.Record, System: l.System, New: Str(l.ID), Reason: reason,
			PrevHash: e.PrevHash, Hash: e.Hash})
	}
	for _, f := range e.Fields {
		actor, reason := f.Actor, f.Reason
		if actor == "" {
			actor = f.System
		}
		switch reason {
		case "":
			reason = ReasonFirstValue
		case mergeFirstValue:
			reason = ReasonMergeFirstValue
		}
		out = append(out, &AuditEntry{Seq: e.Seq, Time: e.Time, Actor: actor, Action: ActAccepted, Kind: e.Kind,
			RecordID: e.RecordID, Record: e.Record, Field: f.Field, System: f.System, New: f.Value, Reason: reason,
			PrevHash: e.PrevHash, Hash: e.Hash})
		for _, a := range f.Agreed {
			out = append(out, &AuditEntry{Seq: e.Seq, Time: e.Time, Actor: a, Action: ActObserved, Kind: e.Kind,
				RecordID: e.RecordID, Record: e.Record, Field: f.Field, System: ActorSystem(a), New: f.Value, Reason: ReasonAgrees,
				PrevHash: e.PrevHash, Hash: e.Hash})
		}
	}
	return out
}

// expandedLen is len(e.Expand()).
func (e *AuditEntry) expandedLen() int {
	n := 1 + len(e.Links) + len(e.Fields)
	for _, f := range e.Fields {
		n += len(f.Agreed)
	}
	return n
}

// ActorSystem returns the system of a system's actor, "system" or
// "system:actor".
func ActorSystem(actor string) string {
	sys, _, _ := strings.Cut(actor, ":")
	return sys
}

// ExpandAll returns entries with every entry expanded (see Expand).
func ExpandAll(entries []*AuditEntry) []*AuditEntry {
	n := 0
	for _, e := range entries {
		n += e.expandedLen()
	}
	if n == len(entries) {
		return entries
	}
	out := make([]*AuditEntry, 0, n)
	for _, e := range entries {
		out = append(out, e.Expand()...)
	}
	return out
}

// LeafBytes returns the exact bytes hashed for the entry's Merkle leaf:
// its JSON without Hash. Because PrevHash is inside, the leaves chain.
func (e *AuditEntry) LeafBytes() []byte {
	return e.appendLeafBytes(make([]byte, 0, e.leafSize()))
}

// appendLeafBytes appends e's leaf (LeafBytes) to b.
func (e *AuditEntry) appendLeafBytes(b []byte) []byte {
	c := *e
	c.Hash = ""
	c.Time = c.Time.UTC()
	n := len(b)
	if out, ok := appendLeaf(b, &c); ok {
		if !mayHoldInvalidUTF8(out[n:]) || c.validUTF8() {
			return out
		}
		// encoding/json writes a byte that is not UTF-8 as the escape
		// \ufffd, but the entry decoded from those bytes holds U+FFFD
		// itself, which encodes raw: the leaf would not survive a round
		// trip and a verifier recomputing it would fail. Replace such
		// bytes before encoding.
		replaceInvalidUTF8(&c)
		out, _ = appendLeaf(out[:n], &c)
		return out
	}
	if !c.validUTF8() {
		replaceInvalidUTF8(&c)
	}
	// A copy for encoding/json, which keeps c itself off the heap on the
	// encoder's path.
	h := new(AuditEntry)
	*h = c
	return append(b, leafJSON(h)...)
}

// leafBody is an entry's leaf but for its head (seq, time) and tail
// (prev_hash): what Batch.PrepareAudit encodes ahead of sealing.
type leafBody struct {
	e    *AuditEntry // the entry it encodes (not a copy of it)
	size int         // e.bodySize() when encoded
	b    []byte
	// t is the entry's time then and tb its JSON text, what the head
	// holds unless the store raises the time.
	t  time.Time
	tb []byte
}

// preparedAudit is what PrepareAudit encoded of a batch's entries: their
// bodies, in one buffer, and the buffer the sealed leaves go to, so that
// neither costs an allocation per entry.
type preparedAudit struct {
	bodies []leafBody
	seal   []byte
	// room, when set, lends the memory of both and takes back the seal
	// buffer's full slabs (AuditRoom).
	room *AuditRoom
}

// AuditRoom is memory that PrepareAuditIn and the sealing of the batch it
// prepared encode into, kept from one batch to the next that uses it, so
// that a writer encoding batch after batch allocates none of it again. A
// room is lent to one batch at a time: use it again only once that batch
// is committed (or dropped) and its leaves no longer read. The zero room
// is ready to use.
type AuditRoom struct {
	pa     preparedAudit
	bodies []byte   // the bodies' buffer
	slabs  [][]byte // the seal buffer's slabs, all in use or free
	next   int      // slabs[next:] are free
}

// sealSlab is the size of a slab of sealed leaves.
const sealSlab = 64 << 10

// slab returns an empty seal buffer with room for need bytes.
func (pa *preparedAudit) slab(need int) []byte {
	r := pa.room
	if r == nil || need > sealSlab {
		return make([]byte, 0, max(need, sealSlab))
	}
	if r.next == len(r.slabs) {
		r.slabs = append(r.slabs, make([]byte, 0, sealSlab))
	}
	r.next++
	return r.slabs[r.next-1][:0]
}

// prepare encodes e's body at the end of buf, and returns buf.
func (p *leafBody) prepare(buf []byte, e *AuditEntry, size int) []byte {
	c := *e
	start := len(buf)
	buf = appendLeafBody(buf, &c)
	if mayHoldInvalidUTF8(buf[start:]) && !c.validUTF8() {
		replaceInvalidUTF8(&c) // as LeafBytes does
		buf = appendLeafBody(buf[:start], &c)
	}
	*p = leafBody{e: e, size: size, b: buf[start:len(buf):len(buf)], t: e.Time}
	return buf
}

// PrepareAudit encodes ahead what each audit entry's leaf holds but for
// seq, time and prev_hash, which the store sets when it appends the entry,
// so that sealing it (SealAudit) only splices those in and hashes: a
// writer calls it once the batch's entries are complete, off the store's
// path. The leaves are byte for byte those LeafBytes gives. Call it when
// the entries' other members no longer change: SealAudit encodes an entry
// afresh when they grew or shrank since (a member appended, a string
// changed length), or when it is another entry than the one prepared at
// its place, but cannot tell an edit in place that keeps every length.
func (b *Batch) PrepareAudit() {
	b.prepareAudit(nil, nil)
}

// PrepareAuditIn is PrepareAudit encoding into r's memory (AuditRoom),
// which the batch holds until it is committed.
func (b *Batch) PrepareAuditIn(r *AuditRoom) {
	b.prepareAudit(nil, r)
}

// prepareAudit is PrepareAudit, taking the body of the i-th entry from
// leaves[i] when that leaf has one (leafBodyOf).
func (b *Batch) prepareAudit(leaves [][]byte, r *AuditRoom) {
	var pa *preparedAudit
	if r != nil {
		pa = &r.pa
		bodies := pa.bodies
		if cap(bodies) < len(b.Audit) {
			bodies = make([]leafBody, len(b.Audit))
		}
		bodies = bodies[:len(b.Audit)]
		clear(bodies)
		*pa = preparedAudit{bodies: bodies, room: r}
		r.next = 0
	} else {
		pa = &preparedAudit{bodies: make([]leafBody, len(b.Audit))}
	}
	total := 0
	for i, e := range b.Audit {
		if e != nil {
			pa.bodies[i].size = e.bodySize()
			total += pa.bodies[i].size
		}
	}
	var buf []byte
	if r != nil && cap(r.bodies) >= total {
		buf = r.bodies[:0]
	} else {
		buf = make([]byte, 0, total)
		if r != nil {
			r.bodies = buf
		}
	}
	var lastT time.Time
	var lastTB []byte
	for i, e := range b.Audit {
		if e == nil {
			continue
		}
		p := &pa.bodies[i]
		if i < len(leaves) {
			if body := leafBodyOf(leaves[i]); body != nil {
				start := len(buf)
				buf = append(buf, body...)
				*p = leafBody{e: e, size: p.size, b: buf[start:len(buf):len(buf)]}
				continue
			}
		}
		buf = p.prepare(buf, e, p.size)
		// Entries of a batch mostly share their time: its text too.
		if lastTB != nil && e.Time == lastT {
			p.tb = lastTB
		} else if y := e.Time.UTC().Year(); y >= 0 && y <= 9999 {
			p.tb = appendLeafTime(nil, e.Time.UTC())
			lastT, lastTB = e.Time, p.tb
		}
	}
	b.prepared = pa
}

// PrepareAuditFrom is PrepareAudit for entries read from another log,
// leaves[i] the leaf b.Audit[i] was read from: each entry's leaf body is
// taken as it is in its leaf, so that the entry, appended at the same
// seq, time and prev_hash, seals to the same leaf and hash even when it
// was encoded otherwise then (such as "old":null, written before absent
// values were left out). A leaf whose head or tail is not as this
// encoder writes them is ignored: the entry is encoded afresh.
func (b *Batch) PrepareAuditFrom(leaves [][]byte) {
	b.prepareAudit(leaves, nil)
}

// leafBodyOf returns the body of leaf, between its head ({"seq":N,
// "time":"T") and its tail (,"prev_hash":"P"}), or nil when leaf does not
// have both.
func leafBodyOf(leaf []byte) []byte {
	const seqAt, timeAt, prevAt = `{"seq":`, `,"time":"`, `,"prev_hash":"`
	if !bytes.HasPrefix(leaf, []byte(seqAt)) {
		return nil
	}
	i := len(seqAt)
	for i < len(leaf) && (leaf[i] == '-' || leaf[i] >= '0' && leaf[i] <= '9') {
		i++
	}
	if !bytes.HasPrefix(leaf[i:], []byte(timeAt)) {
		return nil
	}
	i += len(timeAt)
	end := bytes.IndexByte(leaf[i:], '"') // a time holds no quote
	if end < 0 {
		return nil
	}
	i += end + 1
	// Inside a string a quote is escaped: the last ,"prev_hash":" is the
	// member.
	j := bytes.LastIndex(leaf, []byte(prevAt))
	if j < i || !bytes.HasSuffix(leaf, []byte(`"}`)) || bytes.IndexByte(leaf[j+len(prevAt):len(leaf)-2], '"') >= 0 {
		return nil
	}
	return leaf[i:j]
}

// SealAudit seals b.Audit[i] after the entry whose hash is prevHash, as
// its SealLeaf does, from what PrepareAudit encoded when that still holds.
func (b *Batch) SealAudit(i int, prevHash string) (leaf, leafHash []byte) {
	e := b.Audit[i]
	pa := b.prepared
	if pa == nil || i >= len(pa.bodies) {
		return e.sealLeaf(prevHash, nil, nil)
	}
	p := &pa.bodies[i]
	if p.e != e || p.size != e.bodySize() {
		return e.sealLeaf(prevHash, nil, nil)
	}
	return e.sealLeaf(prevHash, p, pa)
}

// appendSealedLeaf appends e's leaf to b, from p, the body PrepareAudit
// encoded, when not nil.
func (e *AuditEntry) appendSealedLeaf(b []byte, p *leafBody) []byte {
	if p == nil {
		return e.appendLeafBytes(b)
	}
	if p.tb != nil && e.Time == p.t {
		b = appendLeafHeadText(b, e.Seq, p.tb)
	} else {
		n := len(b)
		var ok bool
		if b, ok = appendLeafHead(b, e.Seq, e.Time.UTC()); !ok {
			return e.appendLeafBytes(b[:n])
		}
	}
	b = append(b, p.b...)
	prev := e.PrevHash
	if !utf8.ValidString(prev) {
		prev = strings.ToValidUTF8(prev, "\uFFFD")
	}
	return appendLeafTail(b, prev, "")
}

// leafSize is about the length of e's leaf, a little more when nothing
// needs escaping.
func (e *AuditEntry) leafSize() int {
	return 100 + len(e.PrevHash) + e.bodySize()
}

// bodySize is about the length of e's leaf body (leafBody): a sum of its
// lengths, which changes when a member is added or a string changes
// length.
func (e *AuditEntry) bodySize() int {
	n := 60 + len(e.Actor) + len(e.Action) + len(e.Kind) + len(e.Record) + len(e.Field) + len(e.System) + len(e.Reason) +
		e.Old.jsonSize() + e.New.jsonSize()
	for _, l := range e.Links {
		n += 36 + len(l.System) + len(l.ID) + len(l.Reason)
	}
	for _, f := range e.Fields {
		n += 60 + len(f.Field) + len(f.System) + len(f.Actor) + len(f.Reason) + f.Value.jsonSize()
		for _, a := range f.Agreed {
			n += 3 + len(a)
		}
	}
	return n
}

func (v Value) jsonSize() int {
	n := 6 + len(v.s)
	for _, e := range v.elems {
		n += 3 + len(e)
	}
	return n
}

// validUTF8 reports whether every string of e is UTF-8.
func (e *AuditEntry) validUTF8() bool {
	for _, s := range [...]string{e.Actor, e.Action, e.Kind, e.Record, e.Field, e.System, e.Reason, e.PrevHash} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	if !e.Old.validUTF8() || !e.New.validUTF8() {
		return false
	}
	for _, l := range e.Links {
		if !utf8.ValidString(l.System) || !utf8.ValidString(l.ID) || !utf8.ValidString(l.Reason) {
			return false
		}
	}
	for _, f := range e.Fields {
		if !utf8.ValidString(f.Field) || !utf8.ValidString(f.System) || !utf8.ValidString(f.Actor) || !utf8.ValidString(f.Reason) || !f.Value.validUTF8() {
			return false
		}
		for _, a := range f.Agreed {
			if !utf8.ValidString(a) {
				return false
			}
		}
	}
	return true
}

func (v Value) validUTF8() bool {
	if !utf8.ValidString(v.s) {
		return false
	}
	for _, e := range v.elems {
		if !utf8.ValidString(e) {
			return false
		}
	}
	return true
}

// replaceInvalidUTF8 replaces, in the copy c, bytes that are not UTF-8
// with U+FFFD.
func replaceInvalidUTF8(c *AuditEntry) {
	for _, s := range []*string{&c.Actor, &c.Action, &c.Kind, &c.Record, &c.Field, &c.System, &c.Reason, &c.PrevHash} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	c.Old, c.New = validUTF8(c.Old), validUTF8(c.New)
	if len(c.Links) > 0 {
		c.Links = slices.Clone(c.Links)
		for i := range c.Links {
			l := &c.Links[i]
			for _, s := range []*string{&l.System, &l.ID, &l.Reason} {
				*s = strings.ToValidUTF8(*s, "\uFFFD")
			}
		}
	}
	if len(c.Fields) > 0 {
		c.Fields = slices.Clone(c.Fields)
		for i := range c.Fields {
			f := &c.Fields[i]
			for _, s := range []*string{&f.Field, &f.System, &f.Actor, &f.Reason} {
				*s = strings.ToValidUTF8(*s, "\uFFFD")
			}
			f.Value = validUTF8(f.Value)
			if len(f.Agreed) > 0 {
				f.Agreed = slices.Clone(f.Agreed)
				for j, a := range f.Agreed {
					f.Agreed[j] = strings.ToValidUTF8(a, "\uFFFD")
				}
			}
		}
	}
}

// leafJSON is the leaf as encoding/json writes it: what appendLeaf must
// match byte for byte.
func leafJSON(c *AuditEntry) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		// Every member is a plain value; only a time whose year is
		// outside 0-9999 makes Marshal fail.
		panic(err)
	}
	return b
}

// validUTF8 returns v with bytes that are not UTF-8 replaced by U+FFFD.
func validUTF8(v Value) Value {
	if v.set {
		elems := make([]string, len(v.elems))
		for i, e := range v.elems {
			elems[i] = strings.ToValidUTF8(e, "\uFFFD")
		}
		return SetOf(elems...) // sorted again: replacing bytes can reorder
	}
	return Value{s: strings.ToValidUTF8(v.s, "\uFFFD")}
}

// LeafTime returns the time an audit leaf records; a store uses it to
// keep entry times from running backwards. A leaf that does not decode is
// an error (the log was tampered with or is corrupt).
func LeafTime(leaf []byte) (time.Time, error) {
	var e struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(leaf, &e); err != nil {
		return time.Time{}, fmt.Errorf("leaf does not decode: %w", err)
	}
	return e.Time, nil
}

// LeafHash returns the RFC 6962 leaf hash H(0x00 ‖ leaf).
func LeafHash(leaf []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(leaf)
	return h.Sum(nil)
}

// Seal sets PrevHash and Hash of e, the entry after prev (whose hash is
// prevHash, "" for the first entry). It returns the leaf bytes.
func (e *AuditEntry) Seal(prevHash string) []byte {
	leaf, _ := e.SealLeaf(prevHash)
	return leaf
}

// SealLeaf is Seal, also returning the leaf hash (what Hash encodes), so
// a store that feeds the notary does not hash the leaf a second time.
func (e *AuditEntry) SealLeaf(prevHash string) (leaf, leafHash []byte) {
	return e.sealLeaf(prevHash, nil, nil)
}

// sealLeaf is SealLeaf, from p, the leaf body encoded ahead, when not nil.
func (e *AuditEntry) sealLeaf(prevHash string, p *leafBody, pa *preparedAudit) (leaf, leafHash []byte) {
	e.PrevHash = prevHash
	e.Hash = ""
	// The leaf is written after a 0x00 byte: that is what its hash covers.
	var b []byte
	if p != nil {
		// At most: 0x00, the head (seq and time), the body, prev_hash
		// with every byte escaped, and the keys and braces.
		need := 1 + 80 + len(p.b) + 6*len(prevHash) + 20
		if pa != nil {
			arena := &pa.seal
			if cap(*arena)-len(*arena) < need {
				*arena = pa.slab(need)
			}
			n := len(*arena)
			b = (*arena)[n : n+1 : n+need]
			b[0] = 0
			b = e.appendSealedLeaf(b, p)
			if len(b) <= need { // written in place (else append moved it)
				*arena = (*arena)[:n+len(b)]
			}
		} else {
			b = e.appendSealedLeaf(append(make([]byte, 0, need), 0), p)
		}
	} else {
		b = e.appendSealedLeaf(append(make([]byte, 0, e.leafSize()+1), 0), p)
	}
	sum := sha256.Sum256(b)
	leafHash = sum[:]
	e.Hash = base64.StdEncoding.EncodeToString(leafHash)
	return b[1:], leafHash
}

// SensitiveValue returns what the audit log keeps of a sensitive value:
// its HMAC-SHA256 under the audit secret key ("hmac-sha256:" and hex), so
// whoever holds the secret can tell which value an entry proves, and
// nobody else can recover a guessable value by hashing guesses (an
// unsalted hash would give it away). The zero value stays zero. key must
// be the audit secret (at least 32 bytes); an empty key panics, as
// hashing without one would leak.
func SensitiveValue(key []byte, v Value) Value {
	if v.IsZero() {
		return v
	}
	if len(key) == 0 {
		panic("nhisync.SensitiveValue: no audit secret")
	}
	b, _ := v.MarshalJSON()
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return Str(SensitivePrefix + hex.EncodeToString(m.Sum(nil)))
}

// SensitivePrefix starts the audit log's form of a sensitive value.
const SensitivePrefix = "hmac-sha256:"

// Redacted is what listings print in place of a sensitive value.
const Redacted = "(sensitive)"
