package engine

// SPEC §3.6 Records: a record vanishing from a retire_from system is
// decommissioned.

import (
	"fmt"
	"slices"

	"github.com/nhisync/nhisync"
)

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
	lf := rc.kind.Field(nhisync.FieldLifecycle)
	if lf == nil {
		return
	}
	decom := nhisync.Str(nhisync.LifecycleDecommissioned)
	old := rc.rec.Value(nhisync.FieldLifecycle)
	if old.Equal(decom) {
		return
	}
	rc.rec.Fields[nhisync.FieldLifecycle] = &nhisync.Golden{Value: decom, Source: system, Rule: "retire_from", At: rc.d.now}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRecordRetired, Actor: system, Field: nhisync.FieldLifecycle, System: system, Old: old, New: decom,
		Reason: fmt.Sprintf("retire_from: vanished from %s", system)})
	for _, c := range rc.rec.Conflicts {
		if c.Field == nhisync.FieldLifecycle && c.Status == nhisync.StatusOpen {
			c.Status, c.Resolved, c.ResolvedBy, c.Resolution = nhisync.StatusResolved, rc.d.now, nhisync.Actor, decom
			rc.d.batch.Conflicts = append(rc.d.batch.Conflicts, c)
			rc.audit(&nhisync.AuditEntry{Action: nhisync.ActConflictResolved, Field: nhisync.FieldLifecycle, New: decom, Reason: "retire_from: the record vanished from " + system})
		}
	}
}
