package engine

// SPEC §3.6 Records: links to systems and the record's match key.

import (
	"context"
	"fmt"

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

// newLink links rec to (system, id), a system's record of which the pass
// reads fields fields; more is how many links the decision may still
// make, this one included (the new links of a record share an
// allocation).
func (rc *recCtx) newLink(system, id string, fields, more int) *nhisync.Link {
	if len(rc.linkSlab) == cap(rc.linkSlab) {
		rc.linkSlab = rc.d.arena.linkRoom(max(1, more))
	}
	n := len(rc.linkSlab)
	rc.linkSlab = rc.linkSlab[:n+1]
	l := &rc.linkSlab[n]
	m := l.Fields // an emptied map of a committed batch's link, if any
	if m == nil {
		m = make(map[string]*nhisync.FieldState, fields)
	}
	*l = nhisync.Link{System: system, ExternalID: id, RecordID: rc.rec.ID, Status: nhisync.LinkLive, FirstSeen: rc.d.now, Fields: m}
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
	sys := rc.d.e.cfg.Systems[st.system()]
	vals := make([]string, len(rc.kind.Match))
	for i, f := range rc.kind.Match {
		for j, m := range sys.Fields {
			if m.Field == f {
				vals[i] = st.value(sys, j).Text()
			}
		}
	}
	rc.rec.Key = nhisync.DisplayKey(vals)
}

// refreshKey recomputes the display key from golden match values.
func (rc *recCtx) refreshKey() error {
	vals := make([]string, len(rc.kind.Match))
	for i, f := range rc.kind.Match {
		vals[i] = rc.rec.Value(f).Text()
		if vals[i] == "" {
			return nil
		}
	}
	rc.rec.Key = nhisync.DisplayKey(vals)
	rc.rec.Updated = rc.d.now
	if nk := nhisync.NormalizeKey(vals); nk != rc.rec.MatchKey {
		old := rc.rec.MatchKey
		rc.rec.MatchKey = nk
		return rc.d.keys.moved(rc.ctx, rc.rec.Kind, old, nk, rc.rec.ID)
	}
	return nil
}

// keyIndex finds golden records by kind and normalized match key, for the
// unique-key check of match fields and the targets of ref fields
// (SPEC §3.4). A pass holds the keys it needs in memory, every key or
// those it looked up (passKeys, recIndex), what-if the
// keys it scanned (memKeys); a person's action and explain ask the store
// (storeKeys). A lookup that fails returns its error: a key is never
// taken to be free, or a ref target missing, because the store could not
// be asked.
type keyIndex interface {
	// owner returns the ID of the record of kind holding key; ok is false
	// when no record holds it.
	owner(ctx context.Context, kind, key string) (id int64, ok bool, err error)
	// moved tells the index that a decision gave record id a new key; it
	// fails when the index could not learn who held either key.
	moved(ctx context.Context, kind, oldKey, newKey string, id int64) error
}

// memKeys is an in-memory key index: kind → match key → record ID.
type memKeys map[string]map[string]int64

func (m memKeys) owner(_ context.Context, kind, key string) (int64, bool, error) {
	id, ok := m[kind][key]
	return id, ok, nil
}

func (m memKeys) moved(_ context.Context, kind, oldKey, newKey string, id int64) error {
	if m[kind] == nil {
		m[kind] = map[string]int64{}
	}
	if m[kind][oldKey] == id {
		delete(m[kind], oldKey)
	}
	m[kind][newKey] = id
	return nil
}

// scanKeys builds a memKeys of every golden record in the store.
func scanKeys(ctx context.Context, st nhisync.Store) (memKeys, error) {
	m := memKeys{}
	err := st.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error {
		if m[h.Kind] == nil {
			m[h.Kind] = map[string]int64{}
		}
		m[h.Kind][h.MatchKey] = h.ID
		return nil
	})
	return m, err
}

// storeKeys asks the store: one record's decision (a person's action,
// explain) needs a few keys, not the index of every record.
type storeKeys struct{ store nhisync.Store }

func (s storeKeys) owner(ctx context.Context, kind, key string) (int64, bool, error) {
	r, err := s.store.RecordByKey(ctx, kind, key)
	switch {
	case nhisync.ErrorCode(err) == nhisync.ENOTFOUND:
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("look up %s %q: %w", kind, key, err)
	}
	return r.ID, true, nil
}

// moved does nothing: the record's key moves in the store when the
// decision commits.
func (storeKeys) moved(context.Context, string, string, string, int64) error { return nil }

// keyTaken reports whether value v of match field f would give rec the key
// of another golden record.
func keyTaken(ctx context.Context, keys keyIndex, k *nhisync.Kind, rec *nhisync.Record, f *nhisync.Field, v nhisync.Value) (bool, error) {
	if !k.IsMatch(f.Name) {
		return false, nil
	}
	vals := make([]string, len(k.Match))
	for i, m := range k.Match {
		vals[i] = rec.Value(m).Text()
		if m == f.Name {
			vals[i] = v.Text()
		}
		if vals[i] == "" {
			return false, nil
		}
	}
	key := nhisync.NormalizeKey(vals)
	if key == rec.MatchKey {
		// rec holds this key itself, and no other record of its kind can
		// (records' match keys are unique, and no decision gives a record
		// a key another holds: this check refuses it first): nothing to
		// look up. Every system mapping a match field proposes a new
		// record's own key in a first pass; at 1M NHIs those look-ups,
		// each a miss in the pass's key index of every record, took 0.94
		// of the pass's 78 CPU-s.
		return false, nil
	}
	id, ok, err := keys.owner(ctx, rec.Kind, key)
	return ok && id != rec.ID, err
}
