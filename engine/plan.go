package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// plan brings every linked system of the record towards the golden values:
// a write per field that a system holds differently, unless the field is
// conflicted, quarantined for that system, reported as drift, or waiting
// for approval (SPEC §3.5, §3.8).
func (rc *recCtx) plan() error {
	cfg := rc.d.e.cfg
	for _, l := range rc.rec.Links {
		if l.Status != nhisync.LinkLive {
			continue
		}
		sys := cfg.Systems[l.System]
		if sys == nil || sys.Kind != rc.rec.Kind || !sys.Direction.Writes() {
			continue
		}
		idx := rc.d.mappingIndex(rc.kind, sys)
		for j, m := range sys.Fields {
			// A system maps a field once: m is sys.Mapping(m.Field), and
			// sys.Writes(m.Field) is m's and the system's direction.
			if !m.Direction.Writes() {
				continue
			}
			if err := rc.planField(sys, l, m, idx[j]); err != nil {
				return err
			}
		}
	}
	return rc.planProvision()
}

// outboxFor returns the queued update of (system, id, field), or nil.
func (rc *recCtx) outboxFor(system, id, field string) *nhisync.OutboxWrite {
	for _, o := range rc.rec.Outbox {
		if o.System == system && o.ExternalID == id && o.Field == field && !o.Create {
			return o
		}
	}
	return nil
}

// dropOutbox removes a queued write that is no longer needed.
func (rc *recCtx) dropOutbox(o *nhisync.OutboxWrite) {
	rc.rec.Outbox = slices.DeleteFunc(rc.rec.Outbox, func(x *nhisync.OutboxWrite) bool { return x == o })
	rc.d.batch.OutboxDone = append(rc.d.batch.OutboxDone, o.ID)
	if o.ApprovalID != 0 {
		rc.supersedeApproval(o.ApprovalID, "the write it held is no longer needed")
	}
}

func (rc *recCtx) supersedeApproval(id int64, reason string) {
	for _, a := range rc.rec.Approvals {
		if a.ID == id && a.Status == nhisync.StatusPending && !a.Guard {
			a.Status, a.Decided = nhisync.StatusSuperseded, rc.d.now
			rc.d.batch.Approvals = append(rc.d.batch.Approvals, a)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalSupersede, Field: a.Field, System: a.System, New: a.Value, Reason: reason})
		}
	}
}

// planField plans the write of field m of sys to l, when one is due; i
// is the index of the field in the kind's FieldNames (-1: not the
// kind's).
func (rc *recCtx) planField(sys *nhisync.System, l *nhisync.Link, m *nhisync.Mapping, i int) error {
	field := m.Field
	var f *nhisync.Field
	var g *nhisync.Golden
	if i >= 0 {
		f, g = rc.fields[i], rc.golden[i]
	} else {
		f, g = rc.kind.Field(field), rc.rec.Fields[field]
	}
	gv := goldenValue(g)
	fs := rc.stateOf(l, i, field)
	// holding(sys, fs, field), with m the field's one mapping.
	cur := fs.Shadow
	if sys.Direction.Reads() && m.Direction.Reads() {
		cur = fs.Asserted
	}
	if cur.Equal(gv) || holdBack(rc.rec, rc.kind, sys, fs, field) != "" {
		if pending := rc.outboxFor(sys.Name, l.ExternalID, field); pending != nil {
			rc.dropOutbox(pending)
		}
		return nil
	}
	pending := rc.outboxFor(sys.Name, l.ExternalID, field)
	cause := causeOf(g)
	status := nhisync.OutboxPlanned
	if rc.d.direct {
		status = nhisync.OutboxReady
	}
	var approvalID int64
	// A write a guard holds stays with it while nothing about it changes;
	// a pass that changes it hands it to applyGuard, which keeps it held
	// while that guard request is pending. (A person's action about the
	// record is no pass: a value it changes is written at once.)
	guardHeld := pending != nil && pending.Status == nhisync.OutboxHeld && pending.ApprovalID != 0 && !f.NeedsApproval(sys.Name)
	if guardHeld && pending.New.Equal(gv) && pending.Old.Equal(cur) {
		return nil
	}
	if guardHeld && !rc.d.direct {
		approvalID = pending.ApprovalID
	}
	if f.NeedsApproval(sys.Name) {
		a, err := rc.approvalFor(sys, field, gv, cur, cause)
		if err != nil {
			return err
		}
		switch a.Status {
		case nhisync.StatusRejected:
			if pending != nil {
				rc.dropOutbox(pending)
			}
			return nil
		case nhisync.StatusPending:
			status = nhisync.OutboxHeld
		}
		approvalID = a.ID
	}
	if pending != nil && pending.New.Equal(gv) && pending.Old.Equal(cur) && pending.ApprovalID == approvalID {
		return nil
	}
	w := pending
	if w == nil {
		id, err := rc.d.ids.get(rc.ctx)
		if err != nil {
			return err
		}
		w = &nhisync.OutboxWrite{ID: id, System: sys.Name, ExternalID: l.ExternalID, RecordID: rc.rec.ID, Kind: rc.rec.Kind, Field: field, Created: rc.d.now}
		rc.rec.Outbox = append(rc.rec.Outbox, w)
	}
	w.Record, w.Old, w.New, w.Status, w.ApprovalID, w.Cause = rc.rec.Key, cur, gv, status, approvalID, cause
	w.Rule = goldenReason(g)
	w.Attempts, w.NextAt, w.LastError = 0, rc.d.now, ""
	w.Counts = !cur.IsZero() || (field == nhisync.FieldLifecycle && gv.Text() == nhisync.LifecycleDecommissioned)
	rc.d.batch.Outbox = append(rc.d.batch.Outbox, w)
	*rc.d.planned = append(*rc.d.planned, w)
	return nil
}

// holding returns what a system holds for a field: its assertion, or
// for a write-only mapping what nhisync last wrote there.
func holding(sys *nhisync.System, fs *nhisync.FieldState, field string) nhisync.Value {
	switch {
	case fs == nil:
		return nhisync.Value{}
	case sys.Reads(field):
		return fs.Asserted
	default:
		return fs.Shadow
	}
}

// holdBack says why a system that holds another value than the golden
// one is left as it is, "" when it is to be written. Planning and explain
// both ask it, so what explain shows is what a pass does.
func holdBack(rec *nhisync.Record, k *nhisync.Kind, sys *nhisync.System, fs *nhisync.FieldState, field string) string {
	switch {
	case k.IsMatch(field) && sys.ID == "":
		// The system names its records by their match values: writing one
		// would change the record's id there. It keeps its own spelling.
		return "differs (identifies the record there)"
	case openConflict(rec, field) != nil:
		return "conflict"
	case openQuarantine(rec, field, sys.Name):
		return "quarantined"
	case fs != nil && fs.Report != nil && fs.Report.Equal(rec.Value(field)):
		return "drift"
	}
	return ""
}

// causeOf names the actor whose change made the golden value: a person,
// or a system with the user who changed it there when it tells.
func causeOf(g *nhisync.Golden) string {
	switch {
	case g == nil:
		return nhisync.Actor
	case nhisync.IsPerson(g.Actor):
		return g.Actor
	case nhisync.IsPerson(g.Source) || g.Actor == "":
		return g.Source
	default:
		return g.Source + ":" + g.Actor
	}
}

// goldenReason says why a golden value is what it is, for systems that
// keep a message with a write (a git commit): its source and the rule that
// chose it. Rules never quote sensitive values.
func goldenReason(g *nhisync.Golden) string {
	switch {
	case g == nil:
		return ""
	case g.Rule == "":
		return g.Source
	case g.Source == "":
		return g.Rule
	default:
		return g.Source + ": " + g.Rule
	}
}

// approvalFor returns the approval request for writing value to (system,
// field), creating it when none exists and superseding requests for other
// values: one request per (record, field, system, value).
func (rc *recCtx) approvalFor(sys *nhisync.System, field string, value, old nhisync.Value, cause string) (*nhisync.Approval, error) {
	var found *nhisync.Approval
	for _, a := range rc.rec.Approvals {
		if a.Guard || a.Field != field || a.System != sys.Name || a.Status == nhisync.StatusSuperseded {
			continue
		}
		if a.Value.Equal(value) {
			found = a
			continue
		}
		if a.Status == nhisync.StatusPending || a.Status == nhisync.StatusApproved || a.Status == nhisync.StatusRejected {
			a.Status, a.Decided = nhisync.StatusSuperseded, rc.d.now
			rc.d.batch.Approvals = append(rc.d.batch.Approvals, a)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalSupersede, Field: field, System: sys.Name, Old: a.Value, New: value, Reason: "a newer golden value supersedes it"})
		}
	}
	if found != nil {
		return found, nil
	}
	id, err := rc.d.ids.get(rc.ctx)
	if err != nil {
		return nil, err
	}
	a := &nhisync.Approval{ID: id, Kind: rc.rec.Kind, RecordID: rc.rec.ID, Record: rc.rec.Key, Field: field, System: sys.Name,
		Value: value, Old: old, RequestedBy: cause, Status: nhisync.StatusPending, At: rc.d.now,
		Reason: fmt.Sprintf("approve_to: writes of %s to %s wait for a person", field, sys.Name)}
	rc.rec.Approvals = append(rc.rec.Approvals, a)
	rc.d.batch.Approvals = append(rc.d.batch.Approvals, a)
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalRequested, Actor: cause, Field: field, System: sys.Name, Old: old, New: value, Reason: a.Reason})
	return a, nil
}

// planProvision creates the record in systems with provision: true that
// do not hold it yet (SPEC §3.6: nhisync never creates elsewhere).
func (rc *recCtx) planProvision() error {
	cfg := rc.d.e.cfg
	if rc.rec.Value(nhisync.FieldLifecycle).Text() == nhisync.LifecycleDecommissioned {
		return nil
	}
	for _, m := range rc.kind.Match {
		if rc.rec.Value(m).IsZero() {
			return nil
		}
	}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		if !sys.Provision || sys.Kind != rc.rec.Kind || !sys.Direction.Writes() || rc.liveLink(name) != nil {
			continue
		}
		if rc.d.e.conns != nil && rc.d.e.conns[name] == nil && !rc.d.direct {
			continue
		}
		values := map[string]nhisync.Value{}
		for _, m := range sys.Fields {
			if sys.Writes(m.Field) && !rc.rec.Value(m.Field).IsZero() {
				values[m.Field] = rc.rec.Value(m.Field)
			}
		}
		var w *nhisync.OutboxWrite
		for _, o := range rc.rec.Outbox {
			if o.System == name && o.Create {
				w = o
			}
		}
		if w == nil {
			id, err := rc.d.ids.get(rc.ctx)
			if err != nil {
				return err
			}
			w = &nhisync.OutboxWrite{ID: id, System: name, RecordID: rc.rec.ID, Kind: rc.rec.Kind, Create: true, Created: rc.d.now}
			rc.rec.Outbox = append(rc.rec.Outbox, w)
		} else if mapsEqual(w.Values, values) {
			continue
		}
		status := nhisync.OutboxPlanned
		if rc.d.direct {
			status = nhisync.OutboxReady
		}
		w.Record, w.Values, w.Status, w.Cause, w.NextAt, w.Attempts = rc.rec.Key, values, status, nhisync.Actor, rc.d.now, 0
		rc.d.batch.Outbox = append(rc.d.batch.Outbox, w)
		*rc.d.planned = append(*rc.d.planned, w)
	}
	return nil
}

func mapsEqual(a, b map[string]nhisync.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

// applyGuard turns the pass's planned writes ready, except where one
// system would see more overwrites of non-empty values (or retirements)
// than its guard allows: then every write of the pass to that system is
// held under one approval carrying the count and a sample (SPEC §3.11).
// That request supersedes the system's older pending guard requests and
// takes over the writes they held, so one request holds them all and an
// older one cannot be approved for nothing. Below the limit, a write that
// a pending guard request held stays held by it.
func (p *pass) applyGuard(ctx context.Context) error {
	planned := p.planned
	if !p.dry && !p.emptyStore {
		// Writes left planned by an interrupted pass are judged now too
		// (a pass into an empty store found none: the store's planned
		// writes are all in planned, and reading them back would cost a
		// first pass a read of every write it queued).
		rows, err := p.e.store.OutboxWrites(ctx, "", nhisync.OutboxPlanned, time.Time{}, 0)
		if err != nil {
			return err
		}
		mine := map[int64]bool{}
		for _, w := range planned {
			mine[w.ID] = true
		}
		for _, w := range rows {
			if !mine[w.ID] {
				planned = append(planned, w)
			}
		}
	}
	bySystem := map[string][]*nhisync.OutboxWrite{}
	for _, w := range planned {
		if w.Status == nhisync.OutboxPlanned {
			bySystem[w.System] = append(bySystem[w.System], w)
		}
	}
	names := make([]string, 0, len(bySystem))
	for n := range bySystem {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		ws := bySystem[name]
		older, err := p.writeGuards(ctx, name)
		if err != nil {
			return err
		}
		total := p.systems[name].Records
		if r := p.reads[name]; r != nil && r.full {
			total = r.seen
		}
		limit := int(^uint(0) >> 1)
		if sys := p.e.cfg.Systems[name]; sys != nil {
			limit = sys.Guard.Limit(total)
		}
		counted, sample := countWrites(p.e.cfg, ws, nil)
		if counted <= limit {
			for _, w := range ws {
				if older[w.ApprovalID] != nil {
					w.Status = nhisync.OutboxHeld
				} else {
					w.Status = nhisync.OutboxReady
				}
				p.batch.Outbox = append(p.batch.Outbox, w)
			}
			continue
		}
		id, err := p.ids.get(ctx)
		if err != nil {
			return err
		}
		// The writes older requests still hold join this one.
		var kept []*nhisync.OutboxWrite
		if len(older) > 0 {
			rows, err := p.e.store.OutboxWrites(ctx, name, nhisync.OutboxHeld, time.Time{}, 0)
			if err != nil {
				return err
			}
			mine := map[int64]bool{}
			for _, w := range ws {
				mine[w.ID] = true
			}
			for _, w := range rows {
				if older[w.ApprovalID] != nil && !mine[w.ID] {
					kept = append(kept, w)
				}
			}
		}
		if n, more := countWrites(p.e.cfg, kept, sample); n > 0 {
			counted, sample = counted+n, more
		}
		a := &nhisync.Approval{ID: id, System: name, Guard: true, Count: counted, Sample: sample, Status: nhisync.StatusPending, At: p.now, RequestedBy: nhisync.Actor,
			Value:  nhisync.Str(fmt.Sprintf("%d writes", len(ws)+len(kept))),
			Reason: fmt.Sprintf("guard: this pass would overwrite %d non-empty values in %s (limit %d of %d records); every write of the pass to %s is held", counted, name, limit, total, name)}
		if len(kept) > 0 {
			a.Reason += fmt.Sprintf(", with %d writes older guard requests held", len(kept))
		}
		p.batch.Approvals = append(p.batch.Approvals, a)
		p.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalRequested, System: name, New: a.Value, Reason: a.Reason + "; sample: " + strings.Join(sample, "; ")})
		for _, o := range sortedApprovals(older) {
			o.Status, o.Decided, o.SupersededBy = nhisync.StatusSuperseded, p.now, id
			o.Reason += fmt.Sprintf("; superseded: guard request %d holds its writes now", id)
			p.batch.Approvals = append(p.batch.Approvals, o)
			p.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalSupersede, System: name, Old: o.Value, New: a.Value, Reason: fmt.Sprintf("guard request %d supersedes guard request %d", id, o.ID)})
		}
		for _, w := range append(ws, kept...) {
			w.Status, w.ApprovalID = nhisync.OutboxHeld, id
			p.batch.Outbox = append(p.batch.Outbox, w)
		}
	}
	for _, w := range planned {
		ss := p.sum.sys(w.System)
		ss.Planned++
		p.sum.WritesPlanned++
		if w.Status == nhisync.OutboxHeld {
			ss.Held++
			p.sum.WritesHeld++
		}
	}
	p.sum.Writes = planned
	return nil
}

// countWrites counts the writes that overwrite a non-empty value (or
// retire a record) and adds them to sample, up to ten in all.
func countWrites(cfg *nhisync.Config, ws []*nhisync.OutboxWrite, sample []string) (int, []string) {
	n := 0
	for _, w := range ws {
		if !w.Counts {
			continue
		}
		n++
		if len(sample) < 10 {
			var f *nhisync.Field
			if k := cfg.Kinds[w.Kind]; k != nil {
				f = k.Field(w.Field)
			}
			sample = append(sample, fmt.Sprintf("%s/%s %s: %s → %s", w.Kind, w.Record, w.Field, quote(f, w.Old), quote(f, w.New)))
		}
	}
	return n, sample
}

// writeGuards returns the system's pending guard requests that hold
// writes, by ID.
func (p *pass) writeGuards(ctx context.Context, system string) (map[int64]*nhisync.Approval, error) {
	as, err := p.e.store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending, System: system})
	if err != nil {
		return nil, err
	}
	out := map[int64]*nhisync.Approval{}
	for _, a := range as {
		if a.Guard && !a.HoldsVanishing() {
			out[a.ID] = a
		}
	}
	return out, nil
}

// sortedApprovals returns the approvals of m by ID.
func sortedApprovals(m map[int64]*nhisync.Approval) []*nhisync.Approval {
	out := make([]*nhisync.Approval, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *nhisync.Approval) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
