package engine

// SPEC §3.6 Records: links to systems and the record's match key.

import (
	"github.com/nhisync/nhisync"
)

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
