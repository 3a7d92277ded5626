package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// correlate ties every staged observation to a golden record (SPEC §3.6):
// by existing link, else by equal match fields, else by creating a record
// when the system is in create_from; what remains is unmatched or
// disputed. It also collects the records that vanished from full reads.
func (p *pass) correlate(ctx context.Context) error {
	stop := p.startKeysAhead()
	defer stop()
	// One walk of each system's heads serves settleKeys and the system's
	// correlation (sweep: correlation places only what was read).
	sweeps := make(map[string]headSweep, len(p.reads))
	for name, r := range p.reads {
		sweeps[name] = r.sweep()
	}
	if err := p.settleKeys(ctx, sweeps); err != nil {
		return err
	}
	p.sizeIndexes()
	for i, name := range p.e.cfg.SystemNames {
		r := p.reads[name]
		if r == nil {
			continue
		}
		if i < 32 {
			r.bit = 1 << i
		}
		err := p.correlateSystem(ctx, r, sweeps[name])
		delete(sweeps, name)
		// The system's heads and its list of changed observations are not
		// needed any more (what is left to decide is in p.work): a first
		// pass holding millions drops each system's as soon as it is done,
		// before the next system's records add their work.
		r.doneAhead()
		if err == nil {
			p.keepHeads(r)
		}
		r.heads, r.freshIDs, r.freshMore, r.changed, r.strayKeys = nil, nil, nil, nil, nil
		if err != nil {
			return err
		}
	}
	return p.settleStrays(ctx)
}

// sizeIndexes sizes the work and a first pass's key indexes (empty when
// correlation starts) for the records correlation is about to add: at
// least as many as the largest system staged, so that the maps do not
// grow and rehash a few times over, each entry moved each time.
func (p *pass) sizeIndexes() {
	most, create := 0, map[string]int{}
	for _, r := range p.reads {
		most = max(most, len(r.changed))
		if slices.Contains(r.kind.CreateFrom, r.sys.Name) {
			create[r.kind.Name] = max(create[r.kind.Name], len(r.changed))
		}
	}
	if len(p.work) == 0 {
		p.work = make(map[int64]*recWork, most)
	}
	for kind, n := range create {
		p.recIdx.size(kind, n)
	}
}

// settleKeys has the key index load every golden record's head unless
// correlation matches few observations by key (recIndex.settle): those
// whose id links to no record, the changed and the strays restageStrays
// takes again (each system's sweep's restage).
func (p *pass) settleKeys(ctx context.Context, sweeps map[string]headSweep) error {
	if p.recIdx.full {
		return nil
	}
	need, partial := 0, false
	for name, r := range p.reads {
		n := len(sweeps[name].restage)
		for _, st := range r.changed {
			if !linkedHead(r.headOf(st)) {
				n++
			}
		}
		need += n
		partial = partial || (n > 0 && slices.Contains(r.matchIdx, -1))
	}
	return p.recIdx.settle(ctx, need, partial)
}

// fetchKeys looks up, for a lazy key index, the keys of the observations
// of r that correlation will match by key, before it does.
func (p *pass) fetchKeys(ctx context.Context, r *sysRead) error {
	if p.recIdx.full {
		return nil
	}
	var keys []string
	for _, st := range r.changed {
		if linkedHead(r.headOf(st)) {
			continue
		}
		if key, full, unmatched := p.matchKeyOf(r, st); full && unmatched == "" {
			keys = append(keys, key)
		}
	}
	return p.recIdx.fetch(ctx, r.kind.Name, keys)
}

// correlateSystem ties the staged observations of one system's read to
// golden records and collects what vanished from it (sw, r's sweep).
func (p *pass) correlateSystem(ctx context.Context, r *sysRead, sw headSweep) error {
	p.disputeDuplicates(r)
	restage, err := p.leaveStrays(ctx, r, sw.restage)
	if err != nil {
		return err
	}
	if err := p.restageStrays(ctx, r, restage); err != nil {
		return err
	}
	if r.full {
		// Every stray of the system this read did not see vanishes
		// (goneStrays); the others were seen now, those leaveStrays left
		// alone too (lastSeen).
		p.batch.Meta = setMeta(p.batch.Meta, metaStraysSeen+r.sys.Name, strconv.FormatInt(p.now.UnixNano(), 10))
	}
	if err := p.fetchKeys(ctx, r); err != nil {
		return err
	}
	linked := &linkedIndex{p: p, ctx: ctx, r: r}
	if r.someHeads {
		if err := linked.prefetch(); err != nil {
			return err
		}
	}
	var settled []string
	for _, st := range r.changed {
		h := r.headOf(st)
		wasDisputed := h != nil && h.status == stateDisputed
		p.place(ctx, r, st, h, linked)
		if wasDisputed && h.status == stateLive {
			settled = append(settled, st.id())
		}
	}
	if linked.err != nil {
		return linked.err
	}
	if p.recIdx.err != nil {
		return p.recIdx.err
	}
	if err := p.clearDisputes(ctx, r, settled); err != nil {
		return err
	}
	if !r.full {
		return nil
	}
	if err := p.vanishAll(ctx, r, sw.gone); err != nil {
		return err
	}
	if len(sw.goneStrays) > 0 {
		if err := p.goneStrays(ctx, r, sw.goneStrays); err != nil {
			return err
		}
	}
	return nil
}

// headSweep is what correlation takes from one walk of a system's heads:
// the ids restageStrays stages again, and what vanished from a full read.
// A walk reads every slot of the table (at a million heads, tens of MiB):
// a pass walks each system's once, not once for each of them.
type headSweep struct {
	// restage are the unchanged unmatched, disputed and dismissed ids
	// read once.
	restage []string
	// gone are the links to records, goneStrays the others, that a full
	// read did not see (and that were not gone already).
	gone       []goneLink
	goneStrays []string
}

// sweep walks r's heads once, before correlation places anything. Placing
// changes only the heads of ids read (seen), so what vanished is the same
// before it as after; nor does disputing duplicates (it reads dups, which
// the read filled).
func (r *sysRead) sweep() headSweep {
	var sw headSweep
	for id, h := range r.heads.all() {
		switch {
		case !h.seen:
			if !r.full || h.status == stateGone {
				continue
			}
			if h.recordID != 0 {
				sw.gone = append(sw.gone, goneLink{externalID: id, recordID: h.recordID})
			} else {
				sw.goneStrays = append(sw.goneStrays, id)
			}
		case h.recordID == 0 && !h.changed && (h.status == stateUnmatched || h.status == stateDisputed || h.status == stateDismissed) && r.dups[id] == 0:
			sw.restage = append(sw.restage, id)
		}
	}
	return sw
}

// clearDisputes closes the open dispute items of records that now link to
// one golden record.
func (p *pass) clearDisputes(ctx context.Context, r *sysRead, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	items, err := p.e.store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen, System: r.sys.Name})
	if err != nil {
		return err
	}
	gone := setOf(ids)
	for _, q := range items {
		if q.RecordID == 0 && q.Rule == "disputed" && gone[q.ExternalID] {
			q.Status, q.Closed, q.ClosedBy = nhisync.StatusCleared, p.now, nhisync.Actor
			p.batch.Quarantine = append(p.batch.Quarantine, q)
			p.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineCleared, Kind: q.Kind, Record: q.Record, System: q.System, Old: q.Value, Reason: "the record now links to one golden record"})
		}
	}
	return nil
}

// disputeDuplicates takes the records sharing an id out of the read: with
// two records behind one id nhisync cannot tell which one is meant, so
// neither proposes anything; the id is disputed (quarantined and listed)
// until the system holds it once. It stays seen, so nothing vanishes.
func (p *pass) disputeDuplicates(r *sysRead) {
	if len(r.dups) == 0 {
		return
	}
	done := map[string]bool{}
	kept := r.changed[:0]
	for _, st := range r.changed {
		n, dup := r.dups[st.id()]
		if !dup {
			kept = append(kept, st)
			continue
		}
		if done[st.id()] {
			continue
		}
		done[st.id()] = true
		// No content hash: once the id is unique again its record reads
		// as changed and is correlated afresh.
		st.hasHash = false
		s := &strayObs{st: st, status: nhisync.LinkDisputed, stored: r.heads.get(st.id()) != nil,
			reason: fmt.Sprintf("id %q is held by %d records in %s; neither is read until the id is unique", st.id(), n+1, r.sys.Name)}
		p.stray = append(p.stray, s)
		p.sum.sys(r.sys.Name).Error = s.reason
	}
	r.changed = kept
}

// goneStrays marks unmatched and disputed records that vanished, and
// clears their disputes.
func (p *pass) goneStrays(ctx context.Context, r *sysRead, ids []string) error {
	links, err := p.e.store.LoadLinks(ctx, r.sys.Name, ids)
	if err != nil {
		return err
	}
	for _, l := range links {
		// Last seen when the system was last read in full, as a stray that
		// read left alone (leaveStrays) is: what lastSeen gave while it
		// was listed.
		l.SeenAt = lastSeen(l, p.straysSeen[r.sys.Name])
		l.Status = nhisync.LinkGone
		l.GoneAt = p.now
		p.batch.Links = append(p.batch.Links, l)
	}
	items, err := p.e.store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen, System: r.sys.Name})
	if err != nil {
		return err
	}
	gone := setOf(ids)
	for _, q := range items {
		if q.RecordID == 0 && gone[q.ExternalID] {
			q.Status, q.Closed, q.ClosedBy = nhisync.StatusCleared, p.now, nhisync.Actor
			p.batch.Quarantine = append(p.batch.Quarantine, q)
			p.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineCleared, Kind: q.Kind, Record: q.Record, System: q.System, Old: q.Value, Reason: "the record vanished from " + q.System})
		}
	}
	return nil
}

// strayKey is what the match values of an unchanged unmatched or
// dismissed record say, taken as a full read reads it (noteStray):
// leaveStrays tells from it, without loading the record's link, whether
// correlation would place it as it is.
type strayKey struct {
	// key is its normalized match key, the system mapping every match
	// field.
	key string
	// cannot is set when a match value is malformed or empty: it matches
	// nothing, whatever golden records there are.
	cannot bool
}

// noteStray keeps the match key of the unchanged record id, which the
// store holds as unmatched or dismissed, from its canonical values (those
// of r.sys.Fields, as a read canonicalises them): the values its stored
// link asserts, as its content hash is the link's. A system that maps
// some match fields only matches by the full key index: its strays are
// restaged, not noted, but for those with a malformed or empty match
// value, which match nothing.
func (r *sysRead) noteStray(id string, values []nhisync.Value) {
	key, full, unmatched := r.matchKey(func(i int) nhisync.Value { return values[i] })
	if !full && unmatched == "" {
		return
	}
	if r.strayKeys == nil {
		r.strayKeys = map[string]strayKey{}
	}
	// The read's id may share its bytes with the connector's buffers.
	r.strayKeys[strings.Clone(id)] = strayKey{key: key, cannot: unmatched != ""}
}

// leaveStrays returns the ids of restage (sweep's unchanged unmatched,
// disputed and dismissed records of a full read) that correlation must
// stage again, leaving alone those it would place exactly as they are
// stored: no link loaded, rehashed, matched or written, nothing audited.
// Those are the unmatched and dismissed records with no open item that
// still match no golden record: their match values cannot match (cannot),
// or the system is not in create_from (else it would create one) and no
// record holds their key in the key index as it stands now, with the
// records that systems correlated before this one created in this pass
// (nothing of this system's correlation gives a key: it may not create,
// and keys move only as records are decided). For such a record place
// finds no candidate and makes it a stray of its stored status (a
// dismissed one stays dismissed: unchanged, settleStrays keeps the
// dismissal), and settleStrays rewrites its link as it was but for
// SeenAt, which lastSeen derives instead. A disputed record, one whose
// key a record holds and a system that may create are restaged, as is
// every stray of an incremental read (its heads are those of the ids
// read only, and the system's last full read says nothing of them).
func (p *pass) leaveStrays(ctx context.Context, r *sysRead, restage []string) ([]string, error) {
	if !r.full || len(r.strayKeys) == 0 || !leaveStraysOn {
		return restage, nil
	}
	kind := r.kind.Name
	create := slices.Contains(r.kind.CreateFrom, r.sys.Name)
	var keys []string
	if !create {
		for _, id := range restage {
			if k, ok := r.strayKeys[id]; ok && !k.cannot {
				keys = append(keys, k.key)
			}
		}
	}
	if err := p.recIdx.fetch(ctx, kind, keys); err != nil {
		return nil, err
	}
	items, err := p.strayItems(ctx, r.sys.Name)
	if err != nil {
		return nil, err
	}
	kept := restage[:0]
	for _, id := range restage {
		k, ok := r.strayKeys[id]
		h := r.heads.get(id)
		leave := ok && h != nil && items[id] == nil && (h.status == stateUnmatched || h.status == stateDismissed)
		if leave && !k.cannot {
			_, owned, known := p.recIdx.known(kind, k.key)
			leave = !create && known && !owned
		}
		if !leave {
			kept = append(kept, id)
			continue
		}
		if h.status == stateUnmatched {
			p.sum.OpenUnmatched++
		}
	}
	r.strayKeys = nil
	return kept, nil
}

// leaveStraysOn is false in tests that plan a pass restaging every stray,
// to compare with one that leaves some alone (SetLeaveStrays).
var leaveStraysOn = true

// strayItems returns the open quarantine items of system that belong to
// no golden record (disputes), by external id, loaded once a pass: the
// store's do not change before the pass commits.
func (p *pass) strayItems(ctx context.Context, system string) (map[string]*nhisync.QuarantineItem, error) {
	if m, ok := p.strayOpen[system]; ok {
		return m, nil
	}
	items, err := p.e.store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen, System: system})
	if err != nil {
		return nil, err
	}
	m := map[string]*nhisync.QuarantineItem{}
	for _, q := range items {
		if q.RecordID == 0 {
			m[q.ExternalID] = q
		}
	}
	if p.strayOpen == nil {
		p.strayOpen = map[string]map[string]*nhisync.QuarantineItem{}
	}
	p.strayOpen[system] = m
	return m, nil
}

// restageStrays re-correlates unmatched, disputed and dismissed records that did not
// change (ids, from sweep): a golden record may have appeared for them since.
func (p *pass) restageStrays(ctx context.Context, r *sysRead, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	links, err := p.e.store.LoadLinks(ctx, r.sys.Name, ids)
	if err != nil {
		return err
	}
	if p.restaged == nil {
		p.restaged = make(map[string]*nhisync.Link, len(links))
	}
	values := make([]nhisync.Value, len(r.sys.Fields))
	var enc []byte
	for _, l := range links {
		p.restaged[r.sys.Name+"\x00"+l.ExternalID] = l
		clear(values)
		for _, i := range r.readIdx {
			values[i] = l.Asserted(r.sys.Fields[i].Field)
		}
		h := hashValues(enc, r.fp, values)
		enc = h.buf
		st := r.stage(l.ExternalID, h.buf[len(r.fp):], l.Modified, "")
		if len(l.Hash) == hashLen {
			st.hash, st.hasHash = [hashLen]byte(l.Hash), true
		}
		r.changed = append(r.changed, st)
	}
	return nil
}

// linkedIndex maps record ID → external ID for the system's stored live
// links that still count (seen in a full read, or any in an incremental
// one), built the first time a match asks (most passes match nothing with
// a golden record that has a stored link: it is not built). The links
// correlation makes by match values are in the records' work
// (staged.matched).
type linkedIndex struct {
	p   *pass
	ctx context.Context
	r   *sysRead
	m   map[int64]string
	// err is the first failure to look a record's links up (r.someHeads):
	// correlation fails with it.
	err error
}

// get returns the external ID of the stored live link of the system to
// record id.
//
// Built when first asked, after correlation may have linked some of the
// system's stored strays (place): those are in the records' work too, and
// none links to a record another live link of the system holds (that
// match is disputed), so the answer is the one an index built before
// correlation gives.
func (x *linkedIndex) get(id int64) (string, bool) {
	if x.r.someHeads {
		return x.stored(id)
	}
	if x.m == nil {
		x.m = make(map[int64]string, x.r.stored)
		for ext, h := range x.r.heads.all() {
			if h.recordID != 0 && h.status == stateLive && (h.seen || !x.r.full) {
				x.m[h.recordID] = ext
			}
		}
	}
	ext, ok := x.m[id]
	return ext, ok
}

// stored answers get when the system's heads are those of the ids read
// only (an incremental read): from the links the store holds of record
// id, as a full set of heads loaded before correlation would (most
// loaded by prefetch, in batches).
func (x *linkedIndex) stored(id int64) (string, bool) {
	if x.m == nil {
		x.m = map[int64]string{}
	}
	if ext, ok := x.m[id]; ok {
		return ext, ext != ""
	}
	if x.err != nil {
		return "", false
	}
	if x.err = x.load([]int64{id}); x.err != nil {
		return "", false
	}
	ext := x.m[id]
	return ext, ext != ""
}

// prefetch loads, for an incremental read, the stored links of the golden
// records that the observations correlation will match have as their one
// candidate, a batch of records per store call: the lookups of stored
// (one a record) are then answered from x.m. Records created later in
// the pass have no stored link; stored finds none for them.
func (x *linkedIndex) prefetch() error {
	p, r := x.p, x.r
	if x.m == nil {
		x.m = map[int64]string{}
	}
	var ids []int64
	for _, st := range r.changed {
		if linkedHead(r.headOf(st)) {
			continue
		}
		if c, _, _, _ := p.candidates(x.ctx, r, st); len(c) == 1 {
			if _, ok := x.m[c[0]]; !ok {
				x.m[c[0]] = ""
				ids = append(ids, c[0])
			}
		}
	}
	for start := 0; start < len(ids); start += p.e.batch {
		if err := x.load(ids[start:min(start+p.e.batch, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}

// load notes in x.m the live link of the system of each record of ids
// ("" for none).
func (x *linkedIndex) load(ids []int64) error {
	recs, err := x.p.e.store.LoadRecords(x.ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		x.m[id] = ""
	}
	for _, rec := range recs {
		for _, l := range rec.Links {
			if l.System == x.r.sys.Name && l.RecordID == rec.ID && stateOf(l.Status) == stateLive {
				x.m[rec.ID] = l.ExternalID
			}
		}
	}
	return nil
}

func (p *pass) addWork(id int64) *recWork {
	w := p.work[id]
	if w == nil {
		w = p.works.alloc()
		// Room for an observation from every system, allocated once.
		w.id, w.obs = id, make([]*staged, 0, len(p.reads))
		p.work[id] = w
	}
	return w
}

// headOf is the head of st's id: fresh for an id read with no stored
// link.
func (r *sysRead) headOf(st *staged) *head {
	if st.fresh {
		return &r.fresh
	}
	return r.heads.get(st.id())
}

// linkedHead reports whether h links its id to a golden record, so that
// place adds the observation to that record's work without matching it.
func linkedHead(h *head) bool {
	return h != nil && h.recordID != 0 && h.status != stateUnmatched && h.status != stateDisputed
}

// place routes one staged observation; h is its id's head.
func (p *pass) place(ctx context.Context, r *sysRead, st *staged, h *head, linked *linkedIndex) {
	if linkedHead(h) {
		w := p.addWork(h.recordID)
		w.obs = append(w.obs, st)
		return
	}
	id, isNew, status, reason := p.match(ctx, r, st, linked)
	if status != nhisync.LinkLive {
		p.stray = append(p.stray, &strayObs{st: st, status: status, reason: reason, stored: h != &r.fresh})
		return
	}
	st.matched = true
	switch {
	case h == &r.fresh:
		r.freshLinked++
	case h != nil:
		h.recordID, h.status = id, stateLive
		// No longer the store's head (until a commit makes it so): not
		// kept for the next pass (keepHeads).
		r.headsMoved = true
	}
	w := p.addWork(id)
	w.isNew = w.isNew || isNew
	w.matchedBy |= r.bit
	w.obs = append(w.obs, st)
}

// candidates returns the golden records st's match values match, with
// its normalized key when r maps every match field (full); unmatched says
// why st cannot match at all (a malformed or empty match value).
func (p *pass) candidates(ctx context.Context, r *sysRead, st *staged) (candidates []int64, key string, full bool, unmatched string) {
	kind := r.kind
	if k, ok := r.aheadKey(st); ok {
		key, full, unmatched = k.key, k.unmatched == "", k.unmatched
	} else {
		key, full, unmatched = p.matchKeyOf(r, st)
	}
	if unmatched != "" {
		return nil, "", false, unmatched
	}
	if full {
		// The key is known (fetchKeys) unless something went wrong: then
		// the look-up's failure fails correlation.
		id, ok, err := p.recIdx.owner(ctx, kind.Name, key)
		if err != nil && p.recIdx.err == nil {
			p.recIdx.err = err
		}
		if ok {
			candidates = []int64{id}
		}
	} else {
		candidates = p.partialLookup(kind, r.matchIdx, r.matchVals)
	}
	return candidates, key, full, ""
}

// matchKeyOf returns st's normalized match key when r maps every match
// field (full), leaving its match values in r.matchVals ("" for the fields
// r does not map); unmatched says why st cannot match at all (a malformed
// or empty match value).
func (p *pass) matchKeyOf(r *sysRead, st *staged) (key string, full bool, unmatched string) {
	return r.matchKey(func(i int) nhisync.Value { return st.value(r.sys, i) })
}

// matchKey is matchKeyOf for the record whose value of the system's
// mapping i is value(i).
func (r *sysRead) matchKey(value func(i int) nhisync.Value) (key string, full bool, unmatched string) {
	return matchKeyInto(r.kind, r.matchIdx, &r.matchVals, value)
}

// matchKeyInto is matchKey for a record of kind whose system maps match
// field i to its mapping matchIdx[i] (-1: not mapped), with scratch for
// its match values (left there when the key is built).
func matchKeyInto(kind *nhisync.Kind, matchIdx []int, scratch *[]string, value func(i int) nhisync.Value) (key string, full bool, unmatched string) {
	vals := (*scratch)[:0]
	full = true
	for i, idx := range matchIdx {
		if idx < 0 {
			full = false
			vals = append(vals, "")
			continue
		}
		v := value(idx)
		vals = append(vals, v.Text())
		if p := v.Problem(); p != "" {
			// A malformed key must not create or claim a golden record.
			return "", false, fmt.Sprintf("match field %s: %s", kind.Match[i], p)
		}
		if strings.TrimSpace(vals[i]) == "" {
			return "", false, fmt.Sprintf("match field %s is empty", kind.Match[i])
		}
	}
	*scratch = vals
	if full {
		key = nhisync.NormalizeKey(vals)
	}
	return key, full, ""
}

// match finds the golden record for an observation that has no link.
func (p *pass) match(ctx context.Context, r *sysRead, st *staged, linked *linkedIndex) (id int64, isNew bool, status nhisync.LinkStatus, reason string) {
	kind := r.kind
	candidates, key, full, unmatched := p.candidates(ctx, r, st)
	if unmatched != "" {
		return 0, false, nhisync.LinkUnmatched, unmatched
	}
	switch len(candidates) {
	case 0:
		if full && slices.Contains(kind.CreateFrom, r.sys.Name) {
			nid, err := p.ids.get(ctx)
			if err != nil {
				return 0, false, nhisync.LinkUnmatched, "cannot allocate a record id: " + err.Error()
			}
			p.addRecord(kind.Name, key, nid)
			return nid, true, nhisync.LinkLive, ""
		}
		if !full {
			return 0, false, nhisync.LinkUnmatched, fmt.Sprintf("no golden record matches, and %s does not map every match field so it cannot create one", r.sys.Name)
		}
		return 0, false, nhisync.LinkUnmatched, UnmatchedReason(kind, r.sys.Name)
	case 1:
		if other, ok := p.linkedTo(r, candidates[0], linked); ok && other != st.id() {
			return 0, false, nhisync.LinkDisputed, fmt.Sprintf("%s record %q already links to the same golden record", r.sys.Name, other)
		}
		return candidates[0], false, nhisync.LinkLive, ""
	default:
		return 0, false, nhisync.LinkDisputed, fmt.Sprintf("%d golden records match on the fields %s maps", len(candidates), r.sys.Name)
	}
}

// linkedTo returns the external ID of the record of r's system that
// links to golden record id: by a stored link (linked), or by match
// values earlier in this pass.
func (p *pass) linkedTo(r *sysRead, id int64, linked *linkedIndex) (string, bool) {
	if other, ok := linked.get(id); ok {
		return other, true
	}
	if w := p.work[id]; w != nil && (r.bit == 0 || w.matchedBy&r.bit != 0) {
		for _, o := range w.obs {
			if o.r == r && o.matched {
				return o.id(), true
			}
		}
	}
	return "", false
}

// addRecord registers a record created in this pass in the key indexes,
// and gives it its work.
func (p *pass) addRecord(kind, key string, id int64) {
	p.recIdx.add(kind, key, id)
	w := p.addWork(id)
	w.key = key
	if len(p.partial) == 0 {
		return
	}
	parts := strings.Split(key, "\x1f")
	for sig, idx := range p.partial {
		k, s, ok := strings.Cut(sig, ":")
		if !ok || k != kind {
			continue
		}
		pk := partialKey(s, parts)
		idx[pk] = append(idx[pk], id)
	}
}

// partialLookup finds records whose match values equal vals on the
// positions the system maps.
func (p *pass) partialLookup(kind *nhisync.Kind, matchIdx []int, vals []string) []int64 {
	var sig strings.Builder
	for _, idx := range matchIdx {
		if idx >= 0 {
			sig.WriteByte('1')
		} else {
			sig.WriteByte('0')
		}
	}
	key := kind.Name + ":" + sig.String()
	idx := p.partial[key]
	if idx == nil {
		idx = map[string][]int64{}
		// Every key is in the index: settleKeys loads every head for a
		// system that maps some match fields.
		for mk, id := range p.recIdx.ids[kind.Name] {
			pk := partialKey(sig.String(), strings.Split(mk, "\x1f"))
			idx[pk] = append(idx[pk], id)
		}
		p.partial[key] = idx
	}
	norm := make([]string, len(vals))
	for i, v := range vals {
		norm[i] = nhisync.NormalizeMatchValue(v)
	}
	return idx[partialKey(sig.String(), norm)]
}

func partialKey(sig string, parts []string) string {
	var b strings.Builder
	for i := range sig {
		if sig[i] == '1' && i < len(parts) {
			b.WriteString(parts[i])
		}
		b.WriteByte(0x1f)
	}
	return b.String()
}

// settleStrays stores unmatched and disputed records and audits them when
// they are new or changed; a disputed record is quarantined once.
func (p *pass) settleStrays(ctx context.Context) error {
	restaged := p.restaged
	p.restaged = nil
	if len(p.stray) == 0 {
		return nil
	}
	// Only strays the store held a link for at load have one to load: the
	// others (a first pass's, new ids') were seen for the first time. A
	// restaged stray's link is loaded already (restageStrays), and nothing
	// of the pass is committed yet: it is the one the store holds.
	bySystem := map[string][]string{}
	existing := map[string]*nhisync.Link{}
	for _, s := range p.stray {
		system := s.st.system()
		ids := bySystem[system]
		if s.stored {
			key := system + "\x00" + s.st.id()
			if l := restaged[key]; l != nil {
				existing[key] = l
			} else {
				ids = append(ids, s.st.id())
			}
		}
		bySystem[system] = ids
	}
	openItems := map[string]*nhisync.QuarantineItem{}
	for sys, ids := range bySystem {
		if len(ids) > 0 {
			links, err := p.e.store.LoadLinks(ctx, sys, ids)
			if err != nil {
				return err
			}
			for _, l := range links {
				existing[sys+"\x00"+l.ExternalID] = l
			}
		}
		items, err := p.strayItems(ctx, sys)
		if err != nil {
			return err
		}
		for ext, q := range items {
			openItems[sys+"\x00"+ext] = q
		}
	}
	for _, s := range p.stray {
		system := s.st.system()
		r := p.reads[system]
		key := system + "\x00" + s.st.id()
		l := existing[key]
		if l != nil && l.Status == nhisync.LinkDismissed && string(l.Hash) == string(s.st.hashBytes()) {
			// A person dismissed it and it has not changed since.
			s.status = nhisync.LinkDismissed
		}
		switch s.status {
		case nhisync.LinkUnmatched:
			p.sum.OpenUnmatched++
		case nhisync.LinkDisputed:
			p.sum.OpenDisputed++
		}
		changed := l == nil || l.Status != s.status || string(l.Hash) != string(s.st.hashBytes())
		if l == nil {
			l = &nhisync.Link{System: system, ExternalID: s.st.id(), FirstSeen: p.now}
		}
		modified, _, _ := s.st.source()
		l.RecordID, l.Status, l.Hash, l.SeenAt, l.Modified = 0, s.status, s.st.hashBytes(), p.now, modified
		l.GoneAt = time.Time{}
		values := s.st.values(r.sys)
		for _, i := range r.readIdx {
			fs := l.Field(r.sys.Fields[i].Field)
			if !fs.Asserted.Equal(values[i]) {
				fs.Asserted, fs.Since = values[i], r.at
			}
		}
		p.batch.Links = append(p.batch.Links, l)
		q := openItems[key]
		if q != nil && (s.status != nhisync.LinkDisputed || changed) {
			q.Status, q.Closed, q.ClosedBy = nhisync.StatusCleared, p.now, nhisync.Actor
			p.batch.Quarantine = append(p.batch.Quarantine, q)
			p.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineCleared, Kind: r.kind.Name, System: system, Reason: "the record changed in " + system})
			q = nil
		}
		if !changed {
			continue
		}
		label := strayLabel(r, s.st)
		action := nhisync.ActRecordUnmatched
		if s.status == nhisync.LinkDisputed {
			action = nhisync.ActRecordDisputed
		}
		p.audit(&nhisync.AuditEntry{Action: action, Actor: system, Kind: r.kind.Name, Record: label, System: system, New: nhisync.Str(s.st.id()), Reason: s.reason})
		if s.status == nhisync.LinkDisputed && q == nil {
			id, err := p.ids.get(ctx)
			if err != nil {
				return err
			}
			item := &nhisync.QuarantineItem{ID: id, Kind: r.kind.Name, Record: label, System: system, ExternalID: s.st.id(),
				Value: nhisync.Str(s.st.id()), Rule: "disputed", Reason: s.reason, Status: nhisync.StatusOpen, At: p.now}
			p.batch.Quarantine = append(p.batch.Quarantine, item)
			p.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantined, Actor: system, Kind: r.kind.Name, Record: label, System: system, New: nhisync.Str(s.st.id()), Reason: "disputed: " + s.reason})
		}
	}
	p.stray = nil
	return nil
}

// strayLabel names an uncorrelated record by the match values it has.
func strayLabel(r *sysRead, st *staged) string {
	vals := make([]string, len(r.matchIdx))
	for i, idx := range r.matchIdx {
		if idx >= 0 {
			vals[i] = st.value(r.sys, idx).Text()
		} else {
			vals[i] = "?"
		}
	}
	return nhisync.DisplayKey(vals)
}

// setOf returns ids as a set, for look-ups inside loops.
func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
