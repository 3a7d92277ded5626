package engine

// SPEC §3.1 Update detection: a pass's observations of a record become
// proposals (a field differing from that system's shadow).

import (
	"context"
	"time"

	"github.com/nhisync/nhisync"
)

// decideRecord applies one pass's observations of a record.
func (p *pass) decideRecord(ctx context.Context, d *decider, rec *nhisync.Record, w *recWork) error {
	rc := d.newRecCtx(ctx, rec)
	if w.isNew && rec.Key == "" {
		// Name the new record before its first audit entries.
		rc.setKeyFromObservations(w.obs[0])
	}
	for i, st := range w.obs {
		r := st.r
		values := st.valuesInto(d.valueBuf, r.sys)
		d.valueBuf = values
		fieldIdx := d.mappingIndex(rc.kind, r.sys)
		modified, actor, _ := st.source()
		link := rc.linkFor(st.system(), st.id())
		switch {
		case link == nil && w.isNew && i == 0:
			link = rc.newLink(st.system(), st.id(), len(r.readIdx), len(w.obs)-i)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordCreated, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: "create_from"})
		case link == nil && rc.created != nil:
			// Linked to the record new in this pass: one more link of its
			// record.created entry.
			link = rc.newLink(st.system(), st.id(), len(r.readIdx), len(w.obs)-i)
			rc.createdLink(st.system(), nhisync.Str(st.id()).Text(), nhisync.ReasonMatch)
		case link == nil:
			link = rc.newLink(st.system(), st.id(), len(r.readIdx), len(w.obs)-i)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: nhisync.ReasonMatch})
		case link.Status == nhisync.LinkGone:
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: "reappeared"})
		}
		link.Status, link.Hash, link.SeenAt, link.Modified, link.GoneAt = nhisync.LinkLive, st.hashBytes(), d.now, modified, time.Time{}
		// A link without field states (every new one) has none to look
		// up: a system maps a field once.
		states, fresh := rc.statesOf(link), len(link.Fields) == 0
		for k, idx := range r.readIdx {
			m := r.sys.Fields[idx]
			v := values[idx]
			fi := fieldIdx[idx]
			var fs *nhisync.FieldState
			if fi >= 0 {
				fs = states[fi]
			}
			if fs == nil && (!fresh || fi < 0) {
				fs = link.Fields[m.Field]
			}
			if fs == nil {
				// The field states the links lack (all of a new link's)
				// come from one slab, sized for this link's and, in a
				// new record, as many for each observation left: one
				// allocation per record, not one per field.
				if len(rc.stateSlab) == 0 {
					n := len(r.readIdx) - k
					if w.isNew {
						n += (len(w.obs) - 1 - i) * len(r.readIdx)
					}
					rc.stateSlab = d.arena.fieldStates(n)
				}
				fs, rc.stateSlab = &rc.stateSlab[0], rc.stateSlab[1:]
				if link.Fields == nil {
					link.Fields = map[string]*nhisync.FieldState{}
				}
				link.Fields[m.Field] = fs
			}
			if fi >= 0 {
				states[fi] = fs
			}
			if !fs.Asserted.Equal(v) || fs.Since.IsZero() {
				fs.Asserted, fs.Since, fs.SourceTime, fs.Actor = v, r.at, modified, actor
			}
			if !v.Equal(fs.Shadow) {
				at := modified
				if at.IsZero() {
					at = r.at
				}
				if fi >= 0 {
					rc.props[fi] = append(rc.props[fi], d.newProp(prop{
						Proposal: nhisync.Proposal{System: st.system(), Value: v, At: at, Actor: actor},
						link:     link, fs: fs,
					}))
				}
			}
		}
	}
	for _, sys := range p.vanished[w.id] {
		rc.vanish(sys, "")
	}
	rc.settleQuarantine(w.obs)
	for i, f := range rc.fields {
		if ps := rc.props[i]; len(ps) > 0 {
			if err := rc.decideField(f, ps); err != nil {
				return err
			}
		}
	}
	if err := rc.refreshKey(); err != nil {
		return err
	}
	return rc.plan()
}
