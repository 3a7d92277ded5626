package engine

// The decider: what deciding about one record needs, and the pass's loop
// over records with work. Each rule of SPEC §3 lives in its own file; the
// table is in the package doc (engine.go).

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/nhisync/nhisync"
)

// decider holds what deciding about one record needs; passes and human
// actions share it so there is one implementation of every rule.
type decider struct {
	e     *Engine
	now   time.Time
	ids   *ids
	batch *nhisync.Batch
	// planned collects every write planned (for guard and plan output).
	planned *[]*nhisync.OutboxWrite
	// direct makes planned writes ready at once: a human action about one
	// record is not subject to the pass's blast-radius guard.
	direct  bool
	systems map[string]*nhisync.SystemState
	// keys finds golden records by match key: unique keys and ref targets.
	keys keyIndex

	// What deciding one record needs and the next can reuse: a decider
	// decides one record at a time, and nothing of these outlives the
	// decision (a conflict copies its proposals; rules read a view only
	// while they run). A first pass decides millions of records: each of
	// these would otherwise be garbage per record.
	propBuf  [][]*prop
	propPool []prop
	viewPool []recView
	// valueBuf holds the values of the observation being proposed
	// (decideRecord): each is copied into its field state or proposal.
	valueBuf []nhisync.Value
	// fieldIdx maps a kind's field names to their index in its
	// FieldNames, and mapIdx a system's mappings to the index of their
	// field in a kind's FieldNames (-1: not a field of the kind), per
	// kind and system: a record linked to a system before the config
	// moved the system to another kind is decided with its own kind.
	fieldIdx map[*nhisync.Kind]map[string]int
	mapIdx   map[kindSystem][]int
	// ruleIdx holds, per kind, the indexes in its FieldNames of the
	// fields its rules read, in that order.
	ruleIdx map[*nhisync.Kind][]int
	// kindFields holds, per kind, its fields in FieldNames order
	// (fieldsOf).
	kindFields map[*nhisync.Kind][]*nhisync.Field
	// goldenBuf and linkBuf back a decision's recCtx.golden and
	// recCtx.links, stateBuf the field states of its links by field
	// (statesOf): reused by the next decision.
	goldenBuf []*nhisync.Golden
	linkBuf   []linkStates
	stateBuf  []*nhisync.FieldState
	// rulesPassed holds the values the kind's rules passed in this
	// decider's decisions (ruleMemo).
	rulesPassed ruleMemo
	// arena, in a pass that commits, holds the field states, golden
	// values and links given to the records of the batch being decided
	// (batchArena); nil: allocated anew.
	arena *batchArena
}

// ruleFields returns the indexes in kind.FieldNames of the fields any of
// the kind's rules reads, in field order.
func (d *decider) ruleFields(kind *nhisync.Kind) []int {
	if idx, ok := d.ruleIdx[kind]; ok {
		return idx
	}
	if d.ruleIdx == nil {
		d.ruleIdx = map[*nhisync.Kind][]int{}
	}
	idx := []int{}
	for i, name := range kind.FieldNames {
		if slices.ContainsFunc(kind.Rules, func(r nhisync.Rule) bool { return slices.Contains(r.Fields(), name) }) {
			idx = append(idx, i)
		}
	}
	d.ruleIdx[kind] = idx
	return idx
}

// fieldsOf returns kind's fields, each at the index of its name in
// kind.FieldNames.
func (d *decider) fieldsOf(kind *nhisync.Kind) []*nhisync.Field {
	if fs, ok := d.kindFields[kind]; ok {
		return fs
	}
	if d.kindFields == nil {
		d.kindFields = map[*nhisync.Kind][]*nhisync.Field{}
	}
	fs := make([]*nhisync.Field, len(kind.FieldNames))
	for i, name := range kind.FieldNames {
		fs[i] = kind.Fields[name]
	}
	d.kindFields[kind] = fs
	return fs
}

// recView is the record as one system proposes it (recCtx.view).
type recView struct {
	system string
	values map[string]nhisync.Value
}

// fieldIndex returns the index of field in kind.FieldNames, -1 when the
// kind has no such field.
func (d *decider) fieldIndex(kind *nhisync.Kind, field string) int {
	m := d.fieldIdx[kind]
	if m == nil {
		if d.fieldIdx == nil {
			d.fieldIdx = map[*nhisync.Kind]map[string]int{}
		}
		m = make(map[string]int, len(kind.FieldNames))
		for i, name := range kind.FieldNames {
			m[name] = i
		}
		d.fieldIdx[kind] = m
	}
	if i, ok := m[field]; ok {
		return i
	}
	return -1
}

// mappingIndex returns, per mapping of sys, the index of its field in
// kind.FieldNames (-1 when the kind has no such field).
func (d *decider) mappingIndex(kind *nhisync.Kind, sys *nhisync.System) []int {
	if idx, ok := d.mapIdx[kindSystem{kind, sys}]; ok {
		return idx
	}
	if d.mapIdx == nil {
		d.mapIdx = map[kindSystem][]int{}
	}
	idx := make([]int, len(sys.Fields))
	for i, m := range sys.Fields {
		idx[i] = d.fieldIndex(kind, m.Field)
	}
	d.mapIdx[kindSystem{kind, sys}] = idx
	return idx
}

// kindSystem keys decider.mapIdx.
type kindSystem struct {
	kind *nhisync.Kind
	sys  *nhisync.System
}

// newProp returns a proposal of this record's decision, from the
// decider's pool.
func (d *decider) newProp(p prop) *prop {
	if len(d.propPool) == cap(d.propPool) {
		// A fresh pool: proposals taken from the full one stay where
		// they are until their record is decided.
		d.propPool = make([]prop, 0, max(64, 2*cap(d.propPool)))
	}
	d.propPool = append(d.propPool, p)
	return &d.propPool[len(d.propPool)-1]
}

func (d *decider) audit(ev *nhisync.AuditEntry) { d.e.auditTo(d.batch, ev, d.now) }

// prop is one proposal during a decision.
type prop struct {
	nhisync.Proposal
	link *nhisync.Link
	fs   *nhisync.FieldState
	rank int
}

// recCtx is one record being decided.
type recCtx struct {
	d    *decider
	ctx  context.Context
	rec  *nhisync.Record
	kind *nhisync.Kind
	// fields are kind's fields by their index in kind.FieldNames
	// (decider.fieldsOf).
	fields []*nhisync.Field
	// golden holds rec.Fields by the index of their field in
	// kind.FieldNames, as this decision leaves them (setGolden,
	// putGolden: nothing else sets a golden value during a decision). A
	// decision reads each golden value several times: by index, not by
	// name through the map, which cost a first pass more than the rules
	// it applies.
	golden []*nhisync.Golden
	// links holds, per link this decision touched, its field states by
	// field index (statesOf).
	links []linkStates
	// props are the proposals of this decision, by the index of their
	// field in kind.FieldNames.
	props [][]*prop
	// views caches, per system, the record as that system proposes it.
	views []recView
	// goldens holds the golden values this decision set (setGolden),
	// agreedSlab the lists of agreeing systems of created (agreedRoom).
	goldens    []nhisync.Golden
	agreedSlab []string
	// linkSlab holds the links this decision made (newLink), stateSlab
	// the field states it may still give them (decideRecord).
	linkSlab  []nhisync.Link
	stateSlab []nhisync.FieldState
	// created is the record.created entry of a record new in this pass:
	// its links, its fields' first adoptions and the systems that agreed
	// with them are folded into it (SPEC §4).
	created *nhisync.AuditEntry
}

// newRecCtx starts deciding rec; the decision of the record before, if
// any, is over.
func (d *decider) newRecCtx(ctx context.Context, rec *nhisync.Record) *recCtx {
	rc := &recCtx{d: d, ctx: ctx, rec: rec, kind: d.e.cfg.Kinds[rec.Kind]}
	// The pools are the previous decision's: cleared, so that they hold
	// nothing of it alive.
	clear(d.propPool)
	d.propPool = d.propPool[:0]
	clear(d.linkBuf)
	rc.links = d.linkBuf[:0]
	clear(d.stateBuf)
	d.stateBuf = d.stateBuf[:0]
	if rc.kind != nil {
		n := len(rc.kind.FieldNames)
		if cap(d.propBuf) < n {
			d.propBuf = make([][]*prop, n)
		}
		rc.props = d.propBuf[:n]
		for i := range rc.props {
			clear(rc.props[i])
			rc.props[i] = rc.props[i][:0]
		}
		rc.fields = d.fieldsOf(rc.kind)
		if cap(d.goldenBuf) < n {
			d.goldenBuf = make([]*nhisync.Golden, n)
		}
		rc.golden = d.goldenBuf[:n]
		clear(rc.golden)
		if len(rec.Fields) > 0 {
			for i, name := range rc.kind.FieldNames {
				rc.golden[i] = rec.Fields[name]
			}
		}
	}
	for i := range d.viewPool {
		d.viewPool[i].system = ""
	}
	rc.views = d.viewPool[:0]
	return rc
}

// indexOf returns the index of f in kind.FieldNames, -1 when f is not one
// of the kind's fields.
func (rc *recCtx) indexOf(f *nhisync.Field) int {
	for i, x := range rc.fields {
		if x == f {
			return i
		}
	}
	return -1
}

// goldenOf returns the golden value of f, nil when it has none.
func (rc *recCtx) goldenOf(f *nhisync.Field) *nhisync.Golden {
	if i := rc.indexOf(f); i >= 0 {
		return rc.golden[i]
	}
	return rc.rec.Fields[f.Name]
}

// putGolden makes g the golden value of field.
func (rc *recCtx) putGolden(field string, g *nhisync.Golden) {
	rc.rec.Fields[field] = g
	for i, name := range rc.kind.FieldNames {
		if name == field {
			rc.golden[i] = g
		}
	}
}

// linkStates is a link of a decision and its field states by the index
// of their field in the kind's FieldNames: nil where the decision has not
// asked for it yet (statesOf).
type linkStates struct {
	l      *nhisync.Link
	states []*nhisync.FieldState
}

// statesOf returns l's field states by field index, as far as this
// decision has asked for them: a nil one is to be looked up in l.Fields
// (stateOf). A decision touches each link's states more than once
// (proposing, then planning each field): by index, not by name.
func (rc *recCtx) statesOf(l *nhisync.Link) []*nhisync.FieldState {
	for _, x := range rc.links {
		if x.l == l {
			return x.states
		}
	}
	d, n := rc.d, len(rc.fields)
	if len(d.stateBuf)+n > cap(d.stateBuf) {
		// A new buffer: the rows already handed out keep the old one
		// until this decision is over.
		d.stateBuf = make([]*nhisync.FieldState, 0, max(4*n, 2*cap(d.stateBuf)))
	}
	k := len(d.stateBuf)
	d.stateBuf = d.stateBuf[:k+n]
	states := d.stateBuf[k : k+n : k+n]
	rc.links = append(rc.links, linkStates{l, states})
	d.linkBuf = rc.links
	return states
}

// stateOf returns l's state of the field at index i of kind.FieldNames,
// named field, creating it when absent (nhisync.Link.Field).
func (rc *recCtx) stateOf(l *nhisync.Link, i int, field string) *nhisync.FieldState {
	if i < 0 {
		return l.Field(field)
	}
	states := rc.statesOf(l)
	if states[i] == nil {
		states[i] = l.Field(field)
	}
	return states[i]
}

// propsOf returns the proposals for field.
func (rc *recCtx) propsOf(field string) []*prop {
	if i := rc.d.fieldIndex(rc.kind, field); i >= 0 {
		return rc.props[i]
	}
	return nil
}

func (rc *recCtx) audit(ev *nhisync.AuditEntry) {
	ev.Kind = rc.rec.Kind
	ev.RecordID = rc.rec.ID
	if ev.Record == "" {
		ev.Record = rc.rec.Key
	}
	if rc.created != nil {
		switch {
		case ev.Action == nhisync.ActAccepted && ev.Field != "" && ev.Old.IsZero():
			actor := ev.Actor
			if actor == ev.System {
				actor = ""
			}
			rc.createdField(ev.Field, ev.System, actor, ev.New, ev.Reason)
			return
		case ev.Action == nhisync.ActRecordLinked && ev.Field == "":
			rc.createdLink(ev.System, ev.New.Text(), ev.Reason)
			return
		}
	}
	rc.d.audit(ev)
	if ev.Action == nhisync.ActRecordCreated {
		rc.created = ev
		// Sized once: growing it field by field would allocate five
		// times per new record.
		ev.Fields = make([]nhisync.AuditField, 0, len(rc.kind.FieldNames))
	}
}

// createdField adds a field adopted for the first time to the record.created
// entry of the record new in this pass (rc.created): one more value of
// it, not an entry of its own. actor is who set it in system, "" for the
// system itself.
func (rc *recCtx) createdField(field, system, actor string, value nhisync.Value, reason string) {
	rc.created.Fields = append(rc.created.Fields, nhisync.AuditField{Field: field, System: system, Actor: actor,
		Value: rc.d.e.auditValue(rc.rec.Kind, field, value), Reason: nhisync.CreatedFieldReason(reason)})
}

// createdFieldOf is createdField for f, a field of the record's kind.
func (rc *recCtx) createdFieldOf(f *nhisync.Field, system, actor string, value nhisync.Value, reason string) {
	if f.Sensitive {
		value = nhisync.SensitiveValue(rc.d.e.auditKey, value)
	}
	rc.created.Fields = append(rc.created.Fields, nhisync.AuditField{Field: f.Name, System: system, Actor: actor,
		Value: value, Reason: nhisync.CreatedFieldReason(reason)})
}

// createdLink adds another system's record, linked to the record new in
// this pass, to its record.created entry (rc.created).
func (rc *recCtx) createdLink(system, id, reason string) {
	if rc.created.Links == nil {
		rc.created.Links = make([]nhisync.AuditLink, 0, len(rc.d.e.cfg.SystemNames)-1)
	}
	rc.created.Links = append(rc.created.Links, nhisync.AuditLink{System: system, ID: id, Reason: nhisync.CreatedLinkReason(reason)})
}

// agreedRoom returns an empty list with room for every other system, the
// systems that agree with one first value of the record.created entry:
// the lists of one entry share an allocation.
func (rc *recCtx) agreedRoom() []string {
	per := max(1, len(rc.d.e.cfg.SystemNames)-1)
	if len(rc.agreedSlab)+per > cap(rc.agreedSlab) {
		rc.agreedSlab = make([]string, 0, per*max(1, len(rc.kind.FieldNames)))
	}
	n := len(rc.agreedSlab)
	rc.agreedSlab = rc.agreedSlab[:n+per]
	return rc.agreedSlab[n : n : n+per]
}

// agreed hears p, which holds value, the value field was just set to
// (SPEC §3.3: its shadow moves to it). In a record new in this pass the
// agreement is one more system of the field's first value in its
// record.created entry; otherwise, with observe, it is an observed entry
// of its own, and without, it goes unsaid (as when a system that shares a
// winner's value is settled with it).
func (rc *recCtx) agreed(field string, p *prop, value nhisync.Value, observe bool) {
	if p.fs != nil {
		p.fs.Shadow = p.Value
	}
	if rc.created != nil {
		for i := len(rc.created.Fields) - 1; i >= 0; i-- {
			if f := &rc.created.Fields[i]; f.Field == field {
				if f.Agreed == nil {
					f.Agreed = rc.agreedRoom()
				}
				f.Agreed = append(f.Agreed, actorOr(p.Actor, p.System))
				return
			}
		}
	}
	if observe {
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActObserved, Actor: actorOr(p.Actor, p.System), Field: field, System: p.System, New: value, Reason: nhisync.ReasonAgrees})
	}
}

// decideAll decides every record with work, a batch per transaction.
func (p *pass) decideAll(ctx context.Context) (err error) {
	defer func() {
		// Every batch is in the store (or the pass failed) when this returns.
		if ferr := p.flush(); err == nil {
			err = ferr
		}
	}()
	// The records by ID, each with its work: the loop below looks none up
	// in p.work (a map of every record of a first pass, where each look-up
	// is a cache miss), and the map goes once they are listed.
	works := make([]idWork, 0, len(p.work))
	for id, w := range p.work {
		works = append(works, idWork{id, w})
	}
	slices.SortFunc(works, func(a, b idWork) int { return cmp.Compare(a.id, b.id) })
	p.work = nil
	p.e.report(Progress{Stage: "decide", Total: len(works)}) // correlation is done
	d := p.decider()
	var arenas [2]batchArena
	if !p.dry {
		d.arena = &arenas[0]
	}
	ld := p.newLoader(ctx, works)
	defer ld.stop()
	recs := make([]*nhisync.Record, 0, p.e.batch)
	for start := 0; start < len(works); start += p.e.batch {
		chunk := works[start:min(start+p.e.batch, len(works))]
		if err := ld.through(chunk[len(chunk)-1].id); err != nil {
			return err
		}
		recs = recs[:len(chunk)]
		for i, iw := range chunk {
			recs[i] = p.preloaded[iw.id]
			delete(p.preloaded, iw.id)
		}
		for i, iw := range chunk {
			id, w, rec := iw.id, iw.w, recs[i]
			if rec == nil {
				if !w.isNew {
					return nhisync.Errorf(nhisync.EINTERNAL, "record %d is linked but missing from the store", id)
				}
				// The creating observation is the first: its system's kind.
				kind := w.obs[0].r.kind
				rec = d.arena.record()
				fields, links := rec.Fields, rec.Links // emptied ones of a committed batch, if any
				if fields == nil {
					fields = make(map[string]*nhisync.Golden, len(kind.FieldNames))
				}
				*rec = nhisync.Record{ID: id, Kind: kind.Name, MatchKey: w.key, Fields: fields, Links: links, Created: p.now}
			}
			if rec.Fields == nil {
				rec.Fields = map[string]*nhisync.Golden{}
			}
			if err := p.decideRecord(ctx, d, rec, w); err != nil {
				return err
			}
			p.batch.Records = append(p.batch.Records, rec)
			p.batch.Links = append(p.batch.Links, rec.Links...)
		}
		clear(recs)
		if err := p.commitAsync(ctx); err != nil {
			return err
		}
		if d.arena != nil {
			// The batch before this one is committed (commitAsync waited
			// for it): its slabs serve the next.
			if d.arena == &arenas[0] {
				d.arena = &arenas[1]
			} else {
				d.arena = &arenas[0]
			}
			d.arena.reset()
		}
		// Decided (the batch being committed holds what it needs): the
		// chunk's observations can go.
		for i := range chunk {
			*chunk[i].w = recWork{} // its slab stays until its neighbours are done too
			chunk[i].w = nil
			delete(p.vanished, chunk[i].id)
		}
		p.e.report(Progress{Stage: "decide", Done: min(start+p.e.batch, len(works)), Total: len(works)})
	}
	return nil
}

// loadAheadChunks is how many chunks' stored records decideAll loads in
// one read (recLoader). A SQLite reader drops its whole page cache at its
// first read after a commit, and a pass commits every chunk: loading each
// chunk's records on its own, a drifting pass's decide phase spent most
// of its CPU freeing and allocating again the reader's pages (and in the
// madvise calls the allocator makes as they go), more than it read. One
// read every eight chunks holds at most eight chunks' records (4,000) at
// once, and twice that while the next read runs. A variable for tests.
var loadAheadChunks = 8

// recLoader loads the stored records decideAll decides, in ID order, a
// read of loadAheadChunks chunks' records at a time, into p.preloaded:
// while the pass decides and commits the records of one read, the next
// read runs beside it. A store may read them on other connections than
// its commits' (the SQLite store does, on a reader): the loads then take
// none of the time the commits take.
//
// That is as sound as loading each chunk on its own just before it is
// decided (or as wouldRetire's preloading): each read is one snapshot,
// taken while the pass's batches before may still commit; a batch commits
// the records it decided and their links, items and writes only, and
// each record is decided in one chunk, so no commit of this pass writes a
// record loaded ahead before it is decided. Records new in this pass and
// those correlation loaded already (wouldRetire) are not read; a linked
// record the store does not hold is left missing (decideAll fails on it).
type recLoader struct {
	p   *pass
	ctx context.Context
	// ids are the records to read, in ID order; asked, how many of them
	// reads have been started for; have, how many are in p.preloaded.
	ids         []int64
	asked, have int
	// pending is the read in flight, if any.
	pending chan loaded
}

// loaded is the outcome of one read of recLoader.
type loaded struct {
	recs []*nhisync.Record
	n    int
	err  error
}

// newLoader returns the loader of works (in ID order).
func (p *pass) newLoader(ctx context.Context, works []idWork) *recLoader {
	if p.preloaded == nil {
		p.preloaded = map[int64]*nhisync.Record{}
	}
	ld := &recLoader{p: p, ctx: ctx}
	if !p.dry {
		// Decided and committed next.
		ld.ctx = nhisync.ForCommit(ctx)
	}
	for _, iw := range works {
		if !iw.w.isNew && p.preloaded[iw.id] == nil {
			ld.ids = append(ld.ids, iw.id)
		}
	}
	return ld
}

// through returns once every record to read up to ID last is in
// p.preloaded (or missing from the store), with the next read started.
func (ld *recLoader) through(last int64) error {
	need := ld.have
	for need < len(ld.ids) && ld.ids[need] <= last {
		need++
	}
	for ld.have < need {
		if ld.pending == nil {
			ld.start()
		}
		if err := ld.await(); err != nil {
			return err
		}
	}
	if ld.pending == nil {
		ld.start()
	}
	return nil
}

// start starts reading the next loadAheadChunks chunks' records, if any.
func (ld *recLoader) start() {
	most := ld.p.e.batch * max(1, loadAheadChunks)
	ids := ld.ids[ld.asked:min(ld.asked+most, len(ld.ids))]
	if len(ids) == 0 {
		return
	}
	ld.asked += len(ids)
	ch := make(chan loaded, 1)
	ld.pending = ch
	go func() {
		recs, err := ld.p.e.store.LoadRecords(ld.ctx, ids)
		ch <- loaded{recs, len(ids), err}
	}()
}

// await waits for the read in flight and keeps what it read.
func (ld *recLoader) await() error {
	r := <-ld.pending
	ld.pending = nil
	if r.err != nil {
		return r.err
	}
	for _, rec := range r.recs {
		ld.p.preloaded[rec.ID] = rec
	}
	ld.have += r.n
	return nil
}

// stop waits for the read in flight, if any: decideAll ends with no read
// of the store left running.
func (ld *recLoader) stop() {
	if ld.pending != nil {
		<-ld.pending
		ld.pending = nil
	}
}

// idWork is a record with work of a pass and its ID (decideAll).
type idWork struct {
	id int64
	w  *recWork
}

func (p *pass) decider() *decider {
	return &decider{e: p.e, now: p.now, ids: p.ids, batch: p.batch, planned: &p.planned, systems: p.systems, keys: passKeys{p}}
}

// passKeys is a pass's key index, p.recIdx, to which correlation adds
// every record it creates; when a record changes key, the partial-key
// indexes built from it are dropped.
type passKeys struct{ p *pass }

func (k passKeys) owner(ctx context.Context, kind, key string) (int64, bool, error) {
	return k.p.recIdx.owner(ctx, kind, key)
}

func (k passKeys) moved(ctx context.Context, kind, oldKey, newKey string, id int64) error {
	k.p.partial = map[string]map[string][]int64{}
	return k.p.recIdx.moved(ctx, kind, oldKey, newKey, id)
}
