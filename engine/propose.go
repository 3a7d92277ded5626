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
	observed := map[string]*staged{}
	for i, st := range w.obs {
		r := st.r
		observed[st.system()] = st
		values := st.values(r.sys)
		modified, actor, _ := st.source()
		link := rc.linkFor(st.system(), st.id())
		switch {
		case link == nil && w.isNew && i == 0:
			link = rc.newLink(st.system(), st.id())
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordCreated, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: "create_from"})
		case link == nil:
			link = rc.newLink(st.system(), st.id())
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: "match"})
		case link.Status == nhisync.LinkGone:
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordLinked, Actor: st.system(), System: st.system(), New: nhisync.Str(st.id()), Reason: "reappeared"})
		}
		link.Status, link.Hash, link.SeenAt, link.Modified, link.GoneAt = nhisync.LinkLive, st.hashBytes(), d.now, modified, time.Time{}
		for _, idx := range r.readIdx {
			m := r.sys.Fields[idx]
			v := values[idx]
			fs := link.Field(m.Field)
			if !fs.Asserted.Equal(v) || fs.Since.IsZero() {
				fs.Asserted, fs.Since, fs.SourceTime, fs.Actor = v, r.at, modified, actor
			}
			if !v.Equal(fs.Shadow) {
				at := modified
				if at.IsZero() {
					at = r.at
				}
				rc.props[m.Field] = append(rc.props[m.Field], &prop{
					Proposal: nhisync.Proposal{System: st.system(), Value: v, At: at, Actor: actor},
					link:     link, fs: fs,
				})
			}
		}
	}
	for _, sys := range p.vanished[w.id] {
		rc.vanish(sys, "")
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
