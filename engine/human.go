package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// humanLeaseTTL bounds how long a human action holds the pass lease.
const humanLeaseTTL = time.Minute

// act runs a human action under the pass lease, so it never interleaves
// with a pass deciding the same record.
func (e *Engine) act(ctx context.Context, f func(d *decider) error) error {
	now := e.clock.Now().UTC()
	if err := e.acquireLease(ctx, leaseName, now, humanLeaseTTL, "a sync pass is running on this store; try again when it ends"); err != nil {
		return err
	}
	defer func() { _ = e.store.ReleaseLease(context.WithoutCancel(ctx), leaseName, e.holder) }()
	fence, err := e.store.LeaseFence(ctx, leaseName, e.holder)
	if err != nil {
		return err
	}
	var planned []*nhisync.OutboxWrite
	d := &decider{e: e, now: now, ids: &ids{store: e.store}, batch: &nhisync.Batch{}, planned: &planned, direct: true, systems: map[string]*nhisync.SystemState{},
		keys: storeKeys{e.store}}
	states, err := e.store.Systems(ctx)
	if err != nil {
		return err
	}
	for _, s := range states {
		d.systems[s.Name] = s
	}
	if err := f(d); err != nil {
		return err
	}
	d.batch.Fence = fence
	return e.store.Commit(ctx, d.batch)
}

func (e *Engine) loadRecord(ctx context.Context, id int64) (*nhisync.Record, error) {
	recs, err := e.store.LoadRecords(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errNotFound("record %d not found", id)
	}
	if recs[0].Fields == nil {
		recs[0].Fields = map[string]*nhisync.Golden{}
	}
	return recs[0], nil
}

// ParseValue turns a person's text into a canonical value of field: set
// elements separated by commas.
func ParseValue(f *nhisync.Field, text string) nhisync.Value {
	if f.Type.IsSet() {
		return nhisync.SetOf(strings.Split(text, ",")...)
	}
	return f.Type.Canonical(nhisync.Str(text))
}

// ResolveConflict settles an open conflict by picking a system's proposal
// (pick) or giving a value (value, when pick is ""). The golden value
// changes, the resolution is audited with actor's name, and writes to the
// systems now behind are queued; call Drain to send them. The value is
// validated as a pass validates a proposal (type, required, unique key,
// ref targets looked up in the store, rules). Errors: ENOTFOUND, ECONFLICT
// (not open), EINVALID (unknown system, a value that fails validation),
// and the store's error when a key could not be looked up.
func (e *Engine) ResolveConflict(ctx context.Context, id int64, pick, value, actor string) (*nhisync.Conflict, error) {
	var out *nhisync.Conflict
	err := e.act(ctx, func(d *decider) error {
		c, err := e.store.Conflict(ctx, id)
		if err != nil {
			return err
		}
		if c.Status != nhisync.StatusOpen {
			return nhisync.Errorf(nhisync.ECONFLICT, "conflict %d is already %s", id, c.Status)
		}
		rec, err := e.loadRecord(ctx, c.RecordID)
		if err != nil {
			return err
		}
		for _, x := range rec.Conflicts {
			if x.ID == c.ID {
				c = x // the record's own copy, so planning sees it resolved
			}
		}
		rc := d.newRecCtx(ctx, rec)
		if rc.kind == nil {
			return errInvalid("kind %s of conflict %d's record is no longer in the config; put it back to resolve the conflict", rec.Kind, id)
		}
		f := rc.kind.Field(c.Field)
		if f == nil {
			return errInvalid("field %s of conflict %d is no longer in the config", c.Field, id)
		}
		person := nhisync.Person(actor)
		g := &nhisync.Golden{Actor: person, At: d.now}
		var reason string
		if pick != "" {
			i := slices.IndexFunc(c.Proposals, func(p nhisync.Proposal) bool { return p.System == pick })
			if i < 0 {
				var names []string
				for _, p := range c.Proposals {
					names = append(names, p.System)
				}
				return errInvalid("conflict %d has no proposal from %q; pick one of: %s", id, pick, strings.Join(names, ", "))
			}
			g.Value, g.Source = c.Proposals[i].Value, pick
			reason = fmt.Sprintf("manual: %s picked %s's value", actor, pick)
		} else {
			g.Value, g.Source = ParseValue(f, value), person
			reason = fmt.Sprintf("manual: %s gave the value", actor)
		}
		g.Rule = reason
		p := &prop{Proposal: nhisync.Proposal{System: g.Source, Value: g.Value}}
		rule, why, err := rc.validate(f, p)
		if err != nil {
			return err
		}
		if rule != "" {
			var names []string
			for _, p := range c.Proposals {
				names = append(names, p.System)
			}
			return errInvalid("value %s fails %s: %s; give a value that passes, or pick a proposal (%s)", quote(f, g.Value), rule, why, strings.Join(names, ", "))
		}
		old := rec.Value(f.Name)
		rc.putGolden(f.Name, g)
		c.Status, c.Resolved, c.ResolvedBy, c.Picked, c.Resolution = nhisync.StatusResolved, d.now, actor, pick, g.Value
		d.batch.Conflicts = append(d.batch.Conflicts, c)
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictResolved, Actor: person, Field: f.Name, System: pick, Old: old, New: g.Value, Reason: reason})
		if err := rc.refreshKey(); err != nil {
			return err
		}
		if err := rc.plan(); err != nil {
			return err
		}
		d.batch.Records = append(d.batch.Records, rec)
		d.batch.Links = append(d.batch.Links, rec.Links...)
		out = c
		return nil
	})
	return out, err
}

// DismissQuarantine closes a quarantine item for a person: the proposal is
// heard (the system's shadow moves to it) and the system is repaired with
// the golden value like any refused proposal. Errors: ENOTFOUND, ECONFLICT.
func (e *Engine) DismissQuarantine(ctx context.Context, id int64, actor string) (*nhisync.QuarantineItem, error) {
	var out *nhisync.QuarantineItem
	err := e.act(ctx, func(d *decider) error {
		q, err := e.store.QuarantineItem(ctx, id)
		if err != nil {
			return err
		}
		if q.Status != nhisync.StatusOpen {
			return nhisync.Errorf(nhisync.ECONFLICT, "quarantine item %d is already %s", id, q.Status)
		}
		person := nhisync.Person(actor)
		q.Status, q.Closed, q.ClosedBy = nhisync.StatusDismissed, d.now, actor
		d.batch.Quarantine = append(d.batch.Quarantine, q)
		out = q
		if q.RecordID == 0 {
			e.auditTo(d.batch, &nhisync.AuditEntry{Action: nhisync.ActQuarantineDismiss, Actor: person, Kind: q.Kind, Record: q.Record, System: q.System, Old: q.Value, Reason: q.Rule}, d.now)
			return nil
		}
		rec, err := e.loadRecord(ctx, q.RecordID)
		if err != nil {
			return err
		}
		rc := d.newRecCtx(ctx, rec)
		for _, x := range rec.Quarantine {
			if x.ID == q.ID {
				x.Status = q.Status
			}
		}
		if l := rc.linkFor(q.System, q.ExternalID); l != nil && q.Field != "" {
			rc.hearLoser(q.Field, q.System, l.Field(q.Field), q.Value, rec.Value(q.Field))
		}
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineDismiss, Actor: person, Field: q.Field, System: q.System, Old: q.Value, New: rec.Value(q.Field), Reason: q.Rule + ": dismissed; the system is repaired with the golden value"})
		if err := rc.plan(); err != nil {
			return err
		}
		d.batch.Records = append(d.batch.Records, rec)
		d.batch.Links = append(d.batch.Links, rec.Links...)
		return nil
	})
	return out, err
}

// Approve grants a held write (or a guard's held pass). The approver may
// not be the actor whose change caused the write. Errors: ENOTFOUND,
// ECONFLICT (not pending), EFORBIDDEN (separation of duties).
func (e *Engine) Approve(ctx context.Context, id int64, actor string) (*nhisync.Approval, error) {
	return e.decide(ctx, id, actor, true)
}

// Reject refuses a held write; the target stays behind and is reported as
// drift until the golden value changes. Errors as for Approve.
func (e *Engine) Reject(ctx context.Context, id int64, actor string) (*nhisync.Approval, error) {
	return e.decide(ctx, id, actor, false)
}

// SameActor reports whether a person is the actor recorded as causing a
// change ("person:alice", "catalog:alice", "alice").
func SameActor(person, cause string) bool {
	p := actorName(person)
	if p == "" {
		return false
	}
	for _, part := range strings.Split(cause, ":") {
		if actorName(part) == p {
			return true
		}
	}
	return actorName(cause) == p
}

func (e *Engine) decide(ctx context.Context, id int64, actor string, grant bool) (*nhisync.Approval, error) {
	var out *nhisync.Approval
	err := e.act(ctx, func(d *decider) error {
		a, err := e.store.Approval(ctx, id)
		if err != nil {
			return err
		}
		if a.Status == nhisync.StatusSuperseded && a.SupersededBy != 0 {
			return nhisync.Errorf(nhisync.ECONFLICT, "approval %d was superseded by guard request %d, which holds what it held now; review that one (nhisync approvals)", id, a.SupersededBy)
		}
		if a.Status != nhisync.StatusPending {
			return nhisync.Errorf(nhisync.ECONFLICT, "approval %d is already %s", id, a.Status)
		}
		if grant && SameActor(actor, a.RequestedBy) {
			return nhisync.Errorf(nhisync.EFORBIDDEN, "separation of duties: %s caused this write (%s) and may not approve it; ask another approver", actor, a.RequestedBy)
		}
		person := nhisync.Person(actor)
		a.Decided, a.DecidedBy = d.now, actor
		action := nhisync.ActApprovalRejected
		a.Status = nhisync.StatusRejected
		if grant {
			a.Status, action = nhisync.StatusApproved, nhisync.ActApprovalGranted
		}
		d.batch.Approvals = append(d.batch.Approvals, a)
		e.auditTo(d.batch, &nhisync.AuditEntry{Action: action, Actor: person, Kind: a.Kind, RecordID: a.RecordID, Record: a.Record, Field: a.Field, System: a.System, Old: a.Old, New: a.Value, Reason: a.Reason}, d.now)
		if grant && a.HoldsVanishing() {
			out = a
			return e.retireApproved(ctx, d, a, actor)
		}
		rows, err := e.store.OutboxWrites(ctx, a.System, nhisync.OutboxHeld, time.Time{}, 0)
		if err != nil {
			return err
		}
		for _, o := range rows {
			if o.ApprovalID != a.ID {
				continue
			}
			if grant {
				o.Status, o.NextAt = nhisync.OutboxReady, d.now
				d.batch.Outbox = append(d.batch.Outbox, o)
			} else {
				d.batch.OutboxDone = append(d.batch.OutboxDone, o.ID)
			}
		}
		out = a
		return nil
	})
	return out, err
}
