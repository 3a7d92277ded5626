package engine

// SPEC §3.3 (last paragraph) A proposal is heard: accepted, agreeing or
// refused, and the proposing system's shadow moves to it.

import (
	"time"

	"github.com/nhisync/nhisync"
)

// agree hears a proposal equal to the golden value: the system came round
// to it. Worth a line in the audit log unless the link is new.
func (rc *recCtx) agree(f *nhisync.Field, p *prop) {
	p.fs.Shadow = p.Value
	if !p.link.FirstSeen.Equal(rc.d.now) {
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActObserved, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, New: p.Value, Reason: "agrees with the golden value"})
	}
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
