package engine

// SPEC §3.6 Records: a record vanishing from a retire_from system is
// decommissioned. SPEC §3.11: when more records vanish from a retire_from
// system in one pass than its guard allows, none is retired: the vanishing
// waits as one approval request, approving it retires them, and records
// that reappear first were never retired.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// goneLink is a live link that a full read of its system did not see.
type goneLink struct {
	externalID string
	recordID   int64
}

// vanishAll routes the records that vanished from a full read of r's
// system. Each one is handled as vanished (its link gone and, from a
// retire_from system, the record retired), unless the system is a
// retire_from system and more records would retire than its guard
// allows: then none is, and the vanishing is held as one approval
// request. A pending request for the system that no longer matches what
// vanished (records reappeared, or more vanished) is superseded.
func (p *pass) vanishAll(ctx context.Context, r *sysRead, gone []goneLink) error {
	name := r.sys.Name
	retires := slices.Contains(r.kind.RetireFrom, name) && r.kind.Field(nhisync.FieldLifecycle) != nil
	if !retires {
		p.markVanished(name, gone)
		return nil
	}
	held, err := p.vanishGuards(ctx, name)
	if err != nil {
		return err
	}
	if len(gone) == 0 && len(held) == 0 {
		return nil
	}
	retiring, sample, err := p.wouldRetire(ctx, gone)
	if err != nil {
		return err
	}
	live := r.freshLinked
	for _, h := range r.heads.all() {
		if h.recordID != 0 && h.status == stateLive {
			live++
		}
	}
	limit := r.sys.Guard.Limit(live)
	if retiring <= limit {
		p.markVanished(name, gone)
		for _, a := range held {
			why := fmt.Sprintf("its records reappeared in %s before anyone approved: none was retired", name)
			if a.Status == nhisync.StatusRejected {
				why = fmt.Sprintf("its records reappeared in %s", name)
			}
			if len(gone) > 0 {
				why = fmt.Sprintf("records reappeared in %s; the %d still missing are within the guard's limit and are handled by this pass", name, len(gone))
			}
			p.closeVanishGuard(a, 0, why)
		}
		return nil
	}
	ids := make([]string, len(gone))
	for i, g := range gone {
		ids[i] = g.externalID
	}
	slices.Sort(ids)
	for _, a := range held {
		if slices.Equal(a.Vanished, ids) {
			// Already asked about exactly these records (pending, or a
			// person said no): nothing new to ask, nothing retires.
			return nil
		}
	}
	id, err := p.ids.get(ctx)
	if err != nil {
		return err
	}
	// A rejected request closes too: what it said no to is no longer
	// what is missing, and only a current one is listed as drift.
	for _, a := range held {
		p.closeVanishGuard(a, id, fmt.Sprintf("what vanished from %s changed (%d records then, %d now); guard request %d replaces it", name, len(a.Vanished), len(ids), id))
	}
	a := &nhisync.Approval{ID: id, Kind: r.kind.Name, Field: nhisync.FieldLifecycle, System: name, Guard: true, Count: retiring, Sample: sample, Vanished: ids,
		Value: nhisync.Str(fmt.Sprintf("retire %d records", retiring)), Status: nhisync.StatusPending, At: p.now, RequestedBy: name,
		Reason: fmt.Sprintf("guard: %d records vanished from %s in one pass (limit %d of %d records); none is retired until a person approves, and records that reappear first are never retired",
			retiring, name, limit, live)}
	p.batch.Approvals = append(p.batch.Approvals, a)
	// About a system, not a record (no kind or record), like the write
	// guard's request.
	p.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalRequested, Actor: name, Field: nhisync.FieldLifecycle, System: name, New: a.Value,
		Reason: a.Reason + "; sample: " + strings.Join(sample, "; ")})
	return nil
}

// markVanished gives every gone record its vanish work.
func (p *pass) markVanished(system string, gone []goneLink) {
	for _, g := range gone {
		p.addWork(g.recordID)
		p.vanished[g.recordID] = append(p.vanished[g.recordID], system)
	}
}

// vanishGuards returns the system's guard requests holding a vanishing
// that are pending or were rejected (a rejected one keeps its records
// from being asked about again while the same ones stay missing).
func (p *pass) vanishGuards(ctx context.Context, system string) ([]*nhisync.Approval, error) {
	var out []*nhisync.Approval
	for _, status := range []string{nhisync.StatusPending, nhisync.StatusRejected} {
		as, err := p.e.store.Approvals(ctx, nhisync.ItemFilter{Status: status, System: system})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if a.HoldsVanishing() {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// closeVanishGuard supersedes a vanish guard request, pending or
// rejected, once what it held is no longer what is missing: by the
// request by (0 when none replaces it), for reason. A rejected request
// stays in force only while exactly its records stay missing, so Drift
// can list them (heldVanishingDrift).
func (p *pass) closeVanishGuard(a *nhisync.Approval, by int64, reason string) {
	a.Status, a.Decided, a.SupersededBy = nhisync.StatusSuperseded, p.now, by
	a.Reason += "; superseded: " + reason
	p.batch.Approvals = append(p.batch.Approvals, a)
	p.audit(&nhisync.AuditEntry{Action: nhisync.ActApprovalSupersede, Field: a.Field, System: a.System, Old: a.Value, Reason: reason})
}

// wouldRetire counts the gone records that vanishing would retire (those
// not decommissioned already) and names up to ten of them.
func (p *pass) wouldRetire(ctx context.Context, gone []goneLink) (int, []string, error) {
	ids := make([]int64, len(gone))
	ext := make(map[int64]string, len(gone))
	for i, g := range gone {
		ids[i] = g.recordID
		ext[g.recordID] = g.externalID
	}
	slices.Sort(ids)
	if p.preloaded == nil {
		p.preloaded = make(map[int64]*nhisync.Record, len(ids))
	}
	n := 0
	var sample []string
	// Not marked nhisync.ForCommit as decideAll's are: these load before
	// the pass's first commit, in a run of batches, when the mark put a
	// load on the SQLite writer's connection, which took a fresh cache
	// page for each page read (1M NHIs: the drift pass's correlate phase
	// 0.68-0.81 s unmarked, 1.59 s marked). The mark now only maps the
	// store into the writer, which decideAll's first load does anyway.
	for start := 0; start < len(ids); start += p.e.batch {
		recs, err := p.e.store.LoadRecords(ctx, ids[start:min(start+p.e.batch, len(ids))])
		if err != nil {
			return 0, nil, err
		}
		for _, rec := range recs {
			// Kept for decideAll, which decides these records next: the
			// pass has committed nothing of them since.
			p.preloaded[rec.ID] = rec
			if rec.Value(nhisync.FieldLifecycle).Text() == nhisync.LifecycleDecommissioned {
				continue
			}
			n++
			if len(sample) < 10 {
				sample = append(sample, fmt.Sprintf("%s/%s (id %s)", rec.Kind, rec.Key, ext[rec.ID]))
			}
		}
	}
	return n, sample, nil
}

// vanish handles a record that disappeared from a full read of system.
// why, when not empty, adds to the reason of its retirement.
func (rc *recCtx) vanish(system, why string) {
	l := rc.liveLink(system)
	if l == nil {
		return
	}
	l.Status, l.GoneAt = nhisync.LinkGone, rc.d.now
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordVanished, Actor: system, System: system, Old: nhisync.Str(l.ExternalID)})
	// Writes queued for the vanished record can no longer land. (Over a
	// copy: dropOutbox deletes from rc.rec.Outbox, clearing its tail.)
	for _, o := range slices.Clone(rc.rec.Outbox) {
		if o.System == system && o.ExternalID == l.ExternalID {
			rc.dropOutbox(o)
		}
	}
	if !slices.Contains(rc.kind.RetireFrom, system) {
		return
	}
	lf := rc.kind.Field(nhisync.FieldLifecycle)
	if lf == nil {
		return
	}
	decom := nhisync.Str(nhisync.LifecycleDecommissioned)
	old := rc.rec.Value(nhisync.FieldLifecycle)
	if old.Equal(decom) {
		return
	}
	reason := fmt.Sprintf("retire_from: vanished from %s", system)
	if why != "" {
		reason += "; " + why
	}
	rc.putGolden(nhisync.FieldLifecycle, &nhisync.Golden{Value: decom, Source: system, Rule: "retire_from", At: rc.d.now})
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordRetired, Actor: system, Field: nhisync.FieldLifecycle, System: system, Old: old, New: decom, Reason: reason})
	for _, c := range rc.rec.Conflicts {
		if c.Field == nhisync.FieldLifecycle && c.Status == nhisync.StatusOpen {
			c.Status, c.Resolved, c.ResolvedBy, c.Resolution = nhisync.StatusResolved, rc.d.now, nhisync.Actor, decom
			rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictResolved, Field: nhisync.FieldLifecycle, New: decom, Reason: "retire_from: the record vanished from " + system})
		}
	}
}

// retireApproved retires the records whose vanishing an approved guard
// request held, through the same vanish and planning as a pass; the
// writes it plans are ready at once (a person approved them). A record
// whose link is no longer live in the system (a pass saw it go since) is
// left as that pass left it.
func (e *Engine) retireApproved(ctx context.Context, d *decider, a *nhisync.Approval, actor string) error {
	why := fmt.Sprintf("the guard held it until %s approved request %d", actor, a.ID)
	return e.heldRecords(ctx, a, func(rec *nhisync.Record, l *nhisync.Link) error {
		if rec.Fields == nil {
			rec.Fields = map[string]*nhisync.Golden{}
		}
		rc := d.newRecCtx(ctx, rec)
		if rc.kind == nil || rc.liveLink(a.System) != l {
			return nil // its kind left the config, or it links otherwise now
		}
		rc.vanish(a.System, why)
		if err := rc.plan(); err != nil {
			return err
		}
		d.batch.Records = append(d.batch.Records, rec)
		d.batch.Links = append(d.batch.Links, rec.Links...)
		return nil
	})
}

// heldRecords calls fn with every record whose vanishing the guard
// request a holds and whose link in a's system is still live, with that
// link (the record's own copy). It reads a.Vanished a batch at a time, so
// memory stays bounded however many records vanished.
func (e *Engine) heldRecords(ctx context.Context, a *nhisync.Approval, fn func(*nhisync.Record, *nhisync.Link) error) error {
	for start := 0; start < len(a.Vanished); start += e.batch {
		links, err := e.store.LoadLinks(ctx, a.System, a.Vanished[start:min(start+e.batch, len(a.Vanished))])
		if err != nil {
			return err
		}
		ext := map[int64]string{}
		var ids []int64
		for _, l := range links {
			if l.Status == nhisync.LinkLive && l.RecordID != 0 {
				ext[l.RecordID] = l.ExternalID
				ids = append(ids, l.RecordID)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		recs, err := e.store.LoadRecords(ctx, ids)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var live *nhisync.Link
			for _, l := range rec.Links {
				if l.System == a.System && l.ExternalID == ext[rec.ID] && l.Status == nhisync.LinkLive {
					live = l
				}
			}
			if live == nil {
				continue
			}
			if err := fn(rec, live); err != nil {
				return err
			}
		}
	}
	return nil
}

// heldVanishingDrift lists, for Drift, the records that are missing from
// a system while a guard request holds their retirement: pending (a
// person has not decided yet) or rejected (a person said they stay; the
// system still lacks them). The system no longer holds them although
// their link stays live, so the estate is not in step until they
// reappear or a person decides.
func (e *Engine) heldVanishingDrift(ctx context.Context, held []*nhisync.Approval) ([]DriftItem, error) {
	var out []DriftItem
	for _, a := range held {
		if !a.HoldsVanishing() {
			continue
		}
		reason := DriftGuard
		detail := fmt.Sprintf("missing from %s; guard request %d holds its retirement: nhisync approvals", a.System, a.ID)
		if a.Status == nhisync.StatusRejected {
			reason = DriftRejected
			detail = fmt.Sprintf("missing from %s; %s rejected retiring it (guard request %d), so it stays active: restore it in %s, or retire it there and in golden", a.System, a.DecidedBy, a.ID, a.System)
		}
		err := e.heldRecords(ctx, a, func(rec *nhisync.Record, _ *nhisync.Link) error {
			out = append(out, DriftItem{Kind: rec.Kind, Record: rec.Key, RecordID: rec.ID, Field: nhisync.FieldLifecycle, System: a.System,
				Golden: rec.Value(nhisync.FieldLifecycle), Reason: reason, Detail: detail})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
