package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
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
	// recIdx (kind → match key → ID) lets ref fields be checked; nil skips.
	recIdx map[string]map[string]int64
	// keyOwner finds the record holding a match key; rekey moves a record
	// to a new key.
	keyOwner func(ctx context.Context, kind, key string) (int64, bool)
	rekey    func(kind, oldKey, newKey string, id int64)
}

func (d *decider) audit(ev *nhisync.AuditEntry) { auditTo(d.batch, d.e.cfg, ev, d.now) }

// prop is one proposal during a decision.
type prop struct {
	nhisync.Proposal
	link *nhisync.Link
	fs   *nhisync.FieldState
	rank int
}

// recCtx is one record being decided.
type recCtx struct {
	d     *decider
	ctx   context.Context
	rec   *nhisync.Record
	kind  *nhisync.Kind
	props map[string][]*prop
	// views caches, per system, the record as that system proposes it.
	views map[string]map[string]nhisync.Value
}

func (d *decider) newRecCtx(ctx context.Context, rec *nhisync.Record) *recCtx {
	return &recCtx{d: d, ctx: ctx, rec: rec, kind: d.e.cfg.Kinds[rec.Kind], props: map[string][]*prop{}, views: map[string]map[string]nhisync.Value{}}
}

func (rc *recCtx) audit(ev *nhisync.AuditEntry) {
	ev.Kind = rc.rec.Kind
	ev.RecordID = rc.rec.ID
	if ev.Record == "" {
		ev.Record = rc.rec.Key
	}
	rc.d.audit(ev)
}

// decideAll decides every record with work, a batch per transaction.
func (p *pass) decideAll(ctx context.Context) error {
	ids := make([]int64, 0, len(p.work))
	for id := range p.work {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	d := p.decider()
	for start := 0; start < len(ids); start += p.e.batch {
		chunk := ids[start:min(start+p.e.batch, len(ids))]
		var load []int64
		for _, id := range chunk {
			if !p.work[id].isNew {
				load = append(load, id)
			}
		}
		loaded := map[int64]*nhisync.Record{}
		if len(load) > 0 {
			recs, err := p.e.store.LoadRecords(ctx, load)
			if err != nil {
				return err
			}
			for _, r := range recs {
				loaded[r.ID] = r
			}
		}
		for _, id := range chunk {
			w := p.work[id]
			rec := loaded[id]
			if rec == nil {
				if !w.isNew {
					return nhisync.Errorf(nhisync.EINTERNAL, "record %d is linked but missing from the store", id)
				}
				rec = &nhisync.Record{ID: id, Kind: w.kind, MatchKey: p.recKey[id], Fields: map[string]*nhisync.Golden{}, Created: p.now}
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
		if err := p.commit(ctx); err != nil {
			return err
		}
		p.e.report(Progress{Stage: "decide", Done: min(start+p.e.batch, len(ids)), Total: len(ids)})
	}
	return nil
}

func (p *pass) decider() *decider {
	return &decider{e: p.e, now: p.now, ids: p.ids, batch: p.batch, planned: &p.planned, systems: p.systems, recIdx: p.recIdx,
		keyOwner: func(_ context.Context, kind, key string) (int64, bool) {
			id, ok := p.recIdx[kind][key]
			return id, ok
		},
		rekey: func(kind, oldKey, newKey string, id int64) {
			if p.recIdx[kind][oldKey] == id {
				delete(p.recIdx[kind], oldKey)
			}
			p.recIdx[kind][newKey] = id
			p.recKey[id] = newKey
			p.partial = map[string]map[string][]int64{}
		}}
}

// decideRecord applies one pass's observations of a record.
func (p *pass) decideRecord(ctx context.Context, d *decider, rec *nhisync.Record, w *recWork) error {
	rc := d.newRecCtx(ctx, rec)
	if w.isNew && rec.Key == "" {
		// Name the new record before its first audit entries.
		rc.setKeyFromObservations(w.obs[0])
	}
	observed := map[string]*staged{}
	for i, st := range w.obs {
		r := p.reads[st.system]
		observed[st.system] = st
		link := rc.linkFor(st.system, st.id)
		switch {
		case link == nil && w.isNew && i == 0:
			link = rc.newLink(st.system, st.id)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordCreated, Actor: st.system, System: st.system, New: nhisync.Str(st.id), Reason: "create_from"})
		case link == nil:
			link = rc.newLink(st.system, st.id)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system, System: st.system, New: nhisync.Str(st.id), Reason: "match"})
		case link.Status == nhisync.LinkGone:
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system, System: st.system, New: nhisync.Str(st.id), Reason: "reappeared"})
		}
		link.Status, link.Hash, link.SeenAt, link.Modified, link.GoneAt = nhisync.LinkLive, st.hash, d.now, st.modified, time.Time{}
		for _, idx := range r.readIdx {
			m := r.sys.Fields[idx]
			v := st.values[idx]
			fs := link.Field(m.Field)
			if !fs.Asserted.Equal(v) || fs.Since.IsZero() {
				fs.Asserted, fs.Since, fs.SourceTime, fs.Actor = v, r.at, st.modified, st.actor
			}
			if !v.Equal(fs.Shadow) {
				at := st.modified
				if at.IsZero() {
					at = r.at
				}
				rc.props[m.Field] = append(rc.props[m.Field], &prop{
					Proposal: nhisync.Proposal{System: st.system, Value: v, At: at, Actor: st.actor},
					link:     link, fs: fs,
				})
			}
		}
	}
	for _, sys := range w.vanished {
		rc.vanish(sys)
	}
	rc.settleQuarantine(observed)
	for _, f := range rc.kind.FieldNames {
		if ps := rc.props[f]; len(ps) > 0 {
			if err := rc.decideField(rc.kind.Fields[f], ps); err != nil {
				return err
			}
		}
	}
	rc.refreshKey()
	return rc.plan()
}

// linkFor returns the record's link to (system, id), or nil.
func (rc *recCtx) linkFor(system, id string) *nhisync.Link {
	for _, l := range rc.rec.Links {
		if l.System == system && l.ExternalID == id {
			return l
		}
	}
	return nil
}

func (rc *recCtx) newLink(system, id string) *nhisync.Link {
	l := &nhisync.Link{System: system, ExternalID: id, RecordID: rc.rec.ID, Status: nhisync.LinkLive, FirstSeen: rc.d.now, Fields: map[string]*nhisync.FieldState{}}
	rc.rec.Links = append(rc.rec.Links, l)
	return l
}

// liveLink returns the record's live link to system, or nil.
func (rc *recCtx) liveLink(system string) *nhisync.Link {
	for _, l := range rc.rec.Links {
		if l.System == system && l.Status == nhisync.LinkLive {
			return l
		}
	}
	return nil
}

// setKeyFromObservations names a new record by the creating observation's
// match values until golden values exist.
func (rc *recCtx) setKeyFromObservations(st *staged) {
	sys := rc.d.e.cfg.Systems[st.system]
	vals := make([]string, len(rc.kind.Match))
	for i, f := range rc.kind.Match {
		for j, m := range sys.Fields {
			if m.Field == f {
				vals[i] = st.values[j].Text()
			}
		}
	}
	rc.rec.Key = nhisync.DisplayKey(vals)
}

// refreshKey recomputes the display key from golden match values.
func (rc *recCtx) refreshKey() {
	vals := make([]string, len(rc.kind.Match))
	for i, f := range rc.kind.Match {
		vals[i] = rc.rec.Value(f).Text()
		if vals[i] == "" {
			return
		}
	}
	rc.rec.Key = nhisync.DisplayKey(vals)
	rc.rec.Updated = rc.d.now
	if nk := nhisync.NormalizeKey(vals); nk != rc.rec.MatchKey {
		old := rc.rec.MatchKey
		rc.rec.MatchKey = nk
		if rc.d.rekey != nil {
			rc.d.rekey(rc.rec.Kind, old, nk, rc.rec.ID)
		}
	}
}

// keyTaken reports whether a proposed match value would give the record
// the key of another golden record.
func (rc *recCtx) keyTaken(f *nhisync.Field, v nhisync.Value) bool {
	if rc.d.keyOwner == nil || !rc.kind.IsMatch(f.Name) {
		return false
	}
	vals := make([]string, len(rc.kind.Match))
	for i, m := range rc.kind.Match {
		vals[i] = rc.rec.Value(m).Text()
		if m == f.Name {
			vals[i] = v.Text()
		}
		if vals[i] == "" {
			return false
		}
	}
	id, ok := rc.d.keyOwner(rc.ctx, rc.rec.Kind, nhisync.NormalizeKey(vals))
	return ok && id != rc.rec.ID
}

// vanish handles a record that disappeared from a full read of system.
func (rc *recCtx) vanish(system string) {
	l := rc.liveLink(system)
	if l == nil {
		return
	}
	l.Status, l.GoneAt = nhisync.LinkGone, rc.d.now
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordVanished, Actor: system, System: system, Old: nhisync.Str(l.ExternalID)})
	// Writes queued for the vanished record can no longer land.
	for _, o := range rc.rec.Outbox {
		if o.System == system && o.ExternalID == l.ExternalID {
			rc.dropOutbox(o)
		}
	}
	if !slices.Contains(rc.kind.RetireFrom, system) {
		return
	}
	lf := rc.kind.Field("lifecycle")
	if lf == nil {
		return
	}
	decom := nhisync.Str("decommissioned")
	old := rc.rec.Value("lifecycle")
	if old.Equal(decom) {
		return
	}
	rc.rec.Fields["lifecycle"] = &nhisync.Golden{Value: decom, Source: system, Rule: "retire_from", At: rc.d.now}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordRetired, Actor: system, Field: "lifecycle", System: system, Old: old, New: decom,
		Reason: fmt.Sprintf("retire_from: vanished from %s", system)})
	for _, c := range rc.rec.Conflicts {
		if c.Field == "lifecycle" && c.Status == nhisync.StatusOpen {
			c.Status, c.Resolved, c.ResolvedBy, c.Resolution = nhisync.StatusResolved, rc.d.now, "nhisync", decom
			rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictResolved, Field: "lifecycle", New: decom, Reason: "retire_from: the record vanished from " + system})
		}
	}
}

// settleQuarantine closes quarantine items whose source changed, and
// drops proposals that repeat a quarantined value (quarantined once).
func (rc *recCtx) settleQuarantine(observed map[string]*staged) {
	for _, q := range rc.rec.Quarantine {
		if q.Status != nhisync.StatusOpen || q.Field == "" {
			continue
		}
		if observed[q.System] == nil {
			continue
		}
		ps := rc.props[q.Field]
		i := slices.IndexFunc(ps, func(p *prop) bool { return p.System == q.System })
		if i >= 0 && ps[i].Value.Equal(q.Value) {
			rc.props[q.Field] = slices.Delete(ps, i, i+1)
			continue
		}
		q.Status, q.Closed, q.ClosedBy = nhisync.StatusCleared, rc.d.now, "nhisync"
		rc.d.batch.Quarantine = append(rc.d.batch.Quarantine, q)
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineCleared, Actor: q.System, Field: q.Field, System: q.System, Old: q.Value, Reason: "the source changed"})
	}
}

// openQuarantine reports whether rec has an open item for (field, system).
func openQuarantine(rec *nhisync.Record, field, system string) bool {
	for _, q := range rec.Quarantine {
		if q.Status == nhisync.StatusOpen && q.Field == field && q.System == system {
			return true
		}
	}
	return false
}

// openConflict returns rec's open conflict on field, or nil.
func openConflict(rec *nhisync.Record, field string) *nhisync.Conflict {
	for _, c := range rec.Conflicts {
		if c.Status == nhisync.StatusOpen && c.Field == field {
			return c
		}
	}
	return nil
}

// decideField settles the proposals for one field (SPEC §3.2–3.4).
func (rc *recCtx) decideField(f *nhisync.Field, ps []*prop) error {
	g := rc.rec.Fields[f.Name]
	var gv nhisync.Value
	if g != nil {
		gv = g.Value
	}
	// A new change from a system ends its drift hold.
	for _, p := range ps {
		p.fs.Report = nil
	}
	// Who may set the field. Proposals from systems that may not are heard
	// once the field is decided, against the value that then stands.
	var valid, notAllowed []*prop
	for _, p := range ps {
		if f.Allowed(p.System) {
			valid = append(valid, p)
		} else {
			notAllowed = append(notAllowed, p)
		}
	}
	if err := rc.decideAllowed(f, g, gv, valid); err != nil {
		return err
	}
	final := rc.rec.Value(f.Name)
	for _, p := range notAllowed {
		if p.Value.Equal(final) {
			rc.agree(f, p)
			continue
		}
		rc.refuse(f, p, final, fmt.Sprintf("authority: %s may not set %s (authority: %s)", p.System, f.Name, strings.Join(f.Authority, ", ")))
	}
	return nil
}

// agree hears a proposal equal to the golden value: the system came round
// to it. Worth a line in the audit log unless the link is new.
func (rc *recCtx) agree(f *nhisync.Field, p *prop) {
	p.fs.Shadow = p.Value
	if !p.link.FirstSeen.Equal(rc.d.now) {
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActObserved, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, New: p.Value, Reason: "agrees with the golden value"})
	}
}

// decideAllowed settles the proposals of systems allowed to set the field.
func (rc *recCtx) decideAllowed(f *nhisync.Field, g *nhisync.Golden, gv nhisync.Value, valid []*prop) error {
	// Validation quarantines before anything is accepted.
	checked := valid[:0:0]
	for _, p := range valid {
		if rule, reason := rc.validate(f, p); rule != "" {
			if err := rc.quarantine(f, p, rule, reason); err != nil {
				return err
			}
			continue
		}
		p.rank = f.Rank(p.System)
		checked = append(checked, p)
	}
	if len(checked) == 0 {
		return nil
	}
	if c := openConflict(rc.rec, f.Name); c != nil {
		rc.joinConflict(f, c, checked)
		return nil
	}
	if f.Resolve == nhisync.ResolveMerge {
		rc.merge(f, gv, checked)
		return nil
	}
	var changing []*prop
	for _, p := range checked {
		if p.Value.Equal(gv) {
			rc.agree(f, p)
			continue
		}
		changing = append(changing, p)
	}
	if len(changing) == 0 {
		return nil
	}
	concurrent := distinct(changing) > 1
	var incumbent *prop
	if g != nil && !gv.IsZero() && !nhisync.IsPerson(g.Source) {
		for _, p := range changing {
			if p.System != g.Source && !p.fs.Shadow.Equal(gv) {
				// The proposer never saw the golden value: its change
				// competes with the value's setter.
				concurrent = true
				at := g.SourceTime
				if at.IsZero() {
					at = g.At
				}
				incumbent = &prop{Proposal: nhisync.Proposal{System: g.Source, Value: gv, At: at, Actor: g.Actor}, rank: f.Rank(g.Source)}
				break
			}
		}
	}
	switch {
	case f.Resolve == nhisync.ResolveLatest:
		rc.latest(f, g, changing, incumbent)
	case f.Resolve == nhisync.ResolveStrictest && concurrent:
		rc.strictest(f, g, changing, incumbent)
	case f.Resolve == nhisync.ResolveManual && concurrent:
		return rc.openNewConflict(f, gv, changing, incumbent)
	default:
		rc.priority(f, g, changing)
	}
	return nil
}

func distinct(ps []*prop) int {
	var seen []nhisync.Value
	for _, p := range ps {
		if !slices.ContainsFunc(seen, p.Value.Equal) {
			seen = append(seen, p.Value)
		}
	}
	return len(seen)
}

// priority applies SPEC §3.2: accepted when the golden value is empty,
// the proposer ranks at least as high as the setter, or the value is
// stale; among several, the highest rank wins, then the latest.
func (rc *recCtx) priority(f *nhisync.Field, g *nhisync.Golden, ps []*prop) {
	gv := goldenValue(g)
	var eligible []*prop
	for _, p := range ps {
		switch {
		case g == nil || gv.IsZero():
		case p.rank <= f.Rank(g.Source):
		case rc.stale(f, g):
		default:
			rc.refuse(f, p, gv, fmt.Sprintf("authority: %s ranks below %s, which set the value", p.System, g.Source))
			continue
		}
		eligible = append(eligible, p)
	}
	if len(eligible) == 0 {
		return
	}
	sort.SliceStable(eligible, func(i, j int) bool {
		a, b := eligible[i], eligible[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if !a.At.Equal(b.At) {
			return a.At.After(b.At)
		}
		return a.System < b.System
	})
	win := eligible[0]
	var rival *prop
	for _, p := range eligible[1:] {
		if !p.Value.Equal(win.Value) {
			rival = p
			break
		}
	}
	reason := "priority"
	switch {
	case rival != nil && rival.rank > win.rank:
		reason = fmt.Sprintf("priority: %s ranks above %s", win.System, rival.System)
	case rival != nil:
		reason = fmt.Sprintf("priority: equal rank, %s's change is the latest", win.System)
	case g == nil || gv.IsZero():
		reason = "priority: the golden value was empty"
	case win.rank < f.Rank(g.Source):
		reason = fmt.Sprintf("priority: %s ranks above %s", win.System, g.Source)
	case win.rank > f.Rank(g.Source):
		reason = fmt.Sprintf("stale_after: %s had not been seen holding the value for %s", g.Source, f.StaleAfter)
	case win.System == g.Source:
		reason = fmt.Sprintf("priority: %s, which set the value, changed it", win.System)
	default:
		reason = fmt.Sprintf("priority: %s ranks as high as %s, which set the value", win.System, g.Source)
	}
	rc.settle(f, win, gv, reason, eligible, func(p *prop) string {
		return fmt.Sprintf("priority: %s's change wins (%s)", win.System, rankWord(p.rank, win.rank))
	})
}

// settle makes win's value golden and hears every other proposal: one
// with the same value agrees, the rest lose for lost(p).
func (rc *recCtx) settle(f *nhisync.Field, win *prop, old nhisync.Value, reason string, ps []*prop, lost func(p *prop) string) {
	rc.accept(f, win, old, reason)
	for _, p := range ps {
		switch {
		case p == win:
		case p.Value.Equal(win.Value):
			p.fs.Shadow = p.Value
		default:
			rc.refuse(f, p, win.Value, lost(p))
		}
	}
}

func rankWord(loser, winner int) string {
	if loser > winner {
		return "higher rank"
	}
	return "equal rank, later change"
}

// latest lets the latest source timestamp win; ties by authority order,
// then system name.
func (rc *recCtx) latest(f *nhisync.Field, g *nhisync.Golden, ps []*prop, incumbent *prop) {
	cands := slices.Clone(ps)
	if incumbent != nil {
		cands = append(cands, incumbent)
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if !a.At.Equal(b.At) {
			return a.At.After(b.At)
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		return a.System < b.System
	})
	win := cands[0]
	gv := goldenValue(g)
	if win == incumbent {
		for _, p := range ps {
			rc.refuse(f, p, gv, fmt.Sprintf("latest: the golden value from %s is newer", incumbent.System))
		}
		return
	}
	rc.settle(f, win, gv, "latest: newest change", ps, func(*prop) string {
		return fmt.Sprintf("latest: %s's change is newer", win.System)
	})
}

// strictest lets the value latest in the enum's values win among
// concurrent proposals: security fields fail closed.
func (rc *recCtx) strictest(f *nhisync.Field, g *nhisync.Golden, ps []*prop, incumbent *prop) {
	gv := goldenValue(g)
	best := -1
	var win *prop
	for _, p := range ps {
		if s := f.Strictness(p.Value); s > best || (s == best && win != nil && p.rank < win.rank) {
			best, win = s, p
		}
	}
	if incumbent != nil && f.Strictness(gv) >= best {
		for _, p := range ps {
			rc.refuse(f, p, gv, fmt.Sprintf("strictest: %q is stricter than %q", gv.Text(), p.Value.Text()))
		}
		return
	}
	rc.settle(f, win, gv, "strictest: the strictest concurrent value wins", ps, func(p *prop) string {
		return fmt.Sprintf("strictest: %q is stricter than %q", win.Value.Text(), p.Value.Text())
	})
}

// merge applies set additions and removals, each against the proposing
// system's own shadow; add wins over a concurrent removal unless the
// field says wins: remove.
func (rc *recCtx) merge(f *nhisync.Field, gv nhisync.Value, ps []*prop) {
	adds := map[string]bool{}
	removes := map[string]bool{}
	var contributors []string
	for _, p := range ps {
		sh := p.fs.Shadow
		touched := false
		for _, e := range p.Value.Elems() {
			if !sh.Has(e) {
				adds[e], touched = true, true
			}
		}
		for _, e := range sh.Elems() {
			if !p.Value.Has(e) {
				removes[e], touched = true, true
			}
		}
		if touched {
			contributors = append(contributors, p.System)
		}
	}
	result := map[string]bool{}
	for _, e := range gv.Elems() {
		result[e] = true
	}
	for e := range adds {
		if !removes[e] || !f.WinsRemove {
			result[e] = true
		}
	}
	for e := range removes {
		if !adds[e] || f.WinsRemove {
			delete(result, e)
		}
	}
	elems := make([]string, 0, len(result))
	for e := range result {
		elems = append(elems, e)
	}
	nv := nhisync.SetOf(elems...)
	for _, p := range ps {
		p.fs.Shadow = p.Value
	}
	if nv.Equal(gv) {
		return
	}
	// Provenance names the latest contributing change.
	var latest *prop
	for _, p := range ps {
		if slices.Contains(contributors, p.System) && (latest == nil || p.At.After(latest.At)) {
			latest = p
		}
	}
	rc.rec.Fields[f.Name] = &nhisync.Golden{Value: nv, Source: latest.System, Actor: latest.Actor, Rule: "merge", At: rc.d.now, SourceTime: latest.At}
	reason := mergeReason(f, gv, nv)
	for _, p := range ps {
		if slices.Contains(contributors, p.System) {
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActMerged, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: gv, New: nv, Reason: reason})
		}
	}
}

// setDiff returns the elements of a not in b and of b not in a.
func setDiff(a, b nhisync.Value) (onlyA, onlyB []string) {
	for _, e := range a.Elems() {
		if !b.Has(e) {
			onlyA = append(onlyA, e)
		}
	}
	for _, e := range b.Elems() {
		if !a.Has(e) {
			onlyB = append(onlyB, e)
		}
	}
	return onlyA, onlyB
}

func mergeReason(f *nhisync.Field, old, merged nhisync.Value) string {
	added, removed := setDiff(merged, old)
	mode := "add wins"
	if f.WinsRemove {
		mode = "remove wins"
	}
	parts := []string{"merge (" + mode + ")"}
	if len(added) > 0 {
		parts = append(parts, "added "+strings.Join(added, ","))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+strings.Join(removed, ","))
	}
	return strings.Join(parts, "; ")
}

func goldenValue(g *nhisync.Golden) nhisync.Value {
	if g == nil {
		return nhisync.Value{}
	}
	return g.Value
}

// stale reports whether the golden value's setter has not been seen
// holding it within the field's stale_after.
func (rc *recCtx) stale(f *nhisync.Field, g *nhisync.Golden) bool {
	if f.StaleAfter <= 0 || g == nil {
		return false
	}
	held := g.At
	if !nhisync.IsPerson(g.Source) {
		var l *nhisync.Link
		for _, x := range rc.rec.Links {
			if x.System == g.Source && (l == nil || x.Status == nhisync.LinkLive) {
				l = x
			}
		}
		switch {
		case l == nil:
		case l.Status == nhisync.LinkGone:
			held = l.GoneAt
		case l.Asserted(f.Name).Equal(g.Value):
			held = l.SeenAt
			if st := rc.d.systems[g.Source]; st != nil && st.LastReadAt.After(held) {
				held = st.LastReadAt
			}
		default:
			if fs := l.Fields[f.Name]; fs != nil && !fs.Since.IsZero() {
				held = fs.Since
			}
		}
	}
	return rc.d.now.Sub(held) > f.StaleAfter
}

// accept makes p's value golden.
func (rc *recCtx) accept(f *nhisync.Field, p *prop, old nhisync.Value, reason string) {
	st := time.Time{}
	if p.link != nil && !p.link.Modified.IsZero() {
		st = p.At
	}
	rc.rec.Fields[f.Name] = &nhisync.Golden{Value: p.Value, Source: p.System, Actor: p.Actor, Rule: reason, At: rc.d.now, SourceTime: st}
	if p.fs != nil {
		p.fs.Shadow = p.Value
	}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActAccepted, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: old, New: p.Value, Reason: reason})
}

func actorOr(actor, system string) string {
	if actor != "" {
		return system + ":" + actor
	}
	return system
}

// refuse hears a losing proposal: audited, the system's shadow moves to it
// so it is not proposed again, and the system is then behind (repaired,
// or under on_refused: report listed as drift).
func (rc *recCtx) refuse(f *nhisync.Field, p *prop, golden nhisync.Value, reason string) {
	p.fs.Shadow = p.Value
	sys := rc.d.e.cfg.Systems[p.System]
	if sys != nil && sys.OnRefused == nhisync.Report {
		g := goldenAfter(rc, f, golden)
		p.fs.Report = &g
	}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRefused, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: golden, New: p.Value, Reason: reason})
}

// goldenAfter returns the field's golden value as it will stand; refusals
// made before the winner is accepted still hold against the final value.
func goldenAfter(rc *recCtx, f *nhisync.Field, fallback nhisync.Value) nhisync.Value {
	if g := rc.rec.Fields[f.Name]; g != nil {
		return g.Value
	}
	return fallback
}

// validate runs type checks, required and the kind's rules on a proposal.
func (rc *recCtx) validate(f *nhisync.Field, p *prop) (rule, reason string) {
	if msg := f.Type.Check(p.Value, f.Values); msg != "" {
		return "type", fmt.Sprintf("%s must be %s: %s", f.Name, typeWord(f), msg)
	}
	if (f.Required || rc.kind.IsMatch(f.Name)) && p.Value.IsZero() {
		return "required", fmt.Sprintf("%s is required; %s has no value", f.Name, p.System)
	}
	if rc.keyTaken(f, p.Value) {
		return "unique-key", fmt.Sprintf("another %s already has %s %q", rc.kind.Name, f.Name, p.Value.Text())
	}
	if (f.Type == nhisync.TypeRef || f.Type == nhisync.TypeRefs) && rc.d.recIdx != nil && !p.Value.IsZero() {
		if missing := rc.missingRefs(f, p.Value); missing != "" {
			return "ref", fmt.Sprintf("no %s %q exists", f.To, missing)
		}
	}
	for _, r := range rc.kind.Rules {
		if !slices.Contains(r.Fields(), f.Name) {
			continue
		}
		ok, err := checkRule(r, rc.view(p.System), p.System)
		if err != nil {
			return r.Name(), "rule failed to evaluate: " + err.Error()
		}
		if !ok {
			return r.Name(), fmt.Sprintf("rule %s fails for %s = %q", r.Name(), f.Name, p.Value.String())
		}
	}
	return "", ""
}

func typeWord(f *nhisync.Field) string {
	if f.Type == nhisync.TypeEnum {
		return "one of " + strings.Join(f.Values, ", ")
	}
	return "a " + string(f.Type)
}

// missingRefs returns the first referenced key with no golden record.
func (rc *recCtx) missingRefs(f *nhisync.Field, v nhisync.Value) string {
	target := rc.d.e.cfg.Kinds[f.To]
	idx := rc.d.recIdx[f.To]
	if target == nil || idx == nil {
		return ""
	}
	refs := v.Elems()
	if !v.IsSet() {
		refs = []string{v.Text()}
	}
	for _, ref := range refs {
		parts := strings.Split(ref, "/")
		if len(parts) != len(target.Match) {
			return ref
		}
		if _, ok := idx[nhisync.NormalizeKey(parts)]; !ok {
			return ref
		}
	}
	return ""
}

// view returns the record as system proposes it: golden values overlaid
// with every proposal of that system in this pass.
func (rc *recCtx) view(system string) map[string]nhisync.Value {
	if v := rc.views[system]; v != nil {
		return v
	}
	v := make(map[string]nhisync.Value, len(rc.kind.FieldNames)+1)
	for _, name := range rc.kind.FieldNames {
		v[name] = rc.rec.Value(name)
	}
	for field, ps := range rc.props {
		for _, p := range ps {
			if p.System == system {
				v[field] = p.Value
			}
		}
	}
	rc.views[system] = v
	return v
}

// systemRule is a rule that can be told which system proposes a change.
type systemRule interface {
	CheckWith(fields map[string]nhisync.Value, system string) (bool, error)
}

func checkRule(r nhisync.Rule, fields map[string]nhisync.Value, system string) (bool, error) {
	if sr, ok := r.(systemRule); ok {
		return sr.CheckWith(fields, system)
	}
	return r.Check(fields)
}

// quarantine holds a failing proposal: neither applied nor propagated,
// the source is not repaired, and the same value is not quarantined again.
func (rc *recCtx) quarantine(f *nhisync.Field, p *prop, rule, reason string) error {
	id, err := rc.d.ids.get(rc.ctx)
	if err != nil {
		return err
	}
	q := &nhisync.QuarantineItem{ID: id, Kind: rc.rec.Kind, RecordID: rc.rec.ID, Record: rc.rec.Key, Field: f.Name, System: p.System,
		ExternalID: p.link.ExternalID, Value: p.Value, Rule: rule, Reason: reason, Status: nhisync.StatusOpen, At: rc.d.now}
	rc.rec.Quarantine = append(rc.rec.Quarantine, q)
	rc.d.batch.Quarantine = append(rc.d.batch.Quarantine, q)
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantined, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: rc.rec.Value(f.Name), New: p.Value, Reason: rule + ": " + reason})
	return nil
}

// openNewConflict opens a conflict with every proposal (and the incumbent
// value); the golden value stays and the proposers are heard.
func (rc *recCtx) openNewConflict(f *nhisync.Field, gv nhisync.Value, ps []*prop, incumbent *prop) error {
	id, err := rc.d.ids.get(rc.ctx)
	if err != nil {
		return err
	}
	c := &nhisync.Conflict{ID: id, Kind: rc.rec.Kind, RecordID: rc.rec.ID, Record: rc.rec.Key, Field: f.Name, Status: nhisync.StatusOpen, Golden: gv, Opened: rc.d.now}
	if incumbent != nil {
		c.Proposals = append(c.Proposals, incumbent.Proposal)
	}
	for _, p := range ps {
		c.Proposals = append(c.Proposals, p.Proposal)
		p.fs.Shadow = p.Value
	}
	rc.rec.Conflicts = append(rc.rec.Conflicts, c)
	rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
	var sb []string
	for _, pr := range c.Proposals {
		sb = append(sb, fmt.Sprintf("%s=%q", pr.System, pr.Value.String()))
	}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictOpened, Field: f.Name, Old: gv, Reason: "manual: " + strings.Join(sb, ", ")})
	return nil
}

// joinConflict adds new proposals to an open conflict.
func (rc *recCtx) joinConflict(f *nhisync.Field, c *nhisync.Conflict, ps []*prop) {
	for _, p := range ps {
		p.fs.Shadow = p.Value
		i := slices.IndexFunc(c.Proposals, func(x nhisync.Proposal) bool { return x.System == p.System })
		if i >= 0 {
			c.Proposals[i] = p.Proposal
		} else {
			c.Proposals = append(c.Proposals, p.Proposal)
		}
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictUpdated, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, New: p.Value, Reason: "new proposal while the conflict is open"})
	}
	rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
}
