package engine

// SPEC §3.3 (last paragraph) A proposal is heard: accepted, agreeing or
// refused, and the proposing system's shadow moves to it.

import (
	"time"

	"github.com/nhisync/nhisync"
)

// agree hears a proposal equal to the golden value: the system came round
// to it. Worth a line in the audit log unless the link is new (a new
// record's record.created entry names it among the systems that agreed).
func (rc *recCtx) agree(f *nhisync.Field, p *prop) {
	rc.agreed(f.Name, p, p.Value, !p.link.FirstSeen.Equal(rc.d.now))
}

// accept makes p's value golden.
func (rc *recCtx) accept(f *nhisync.Field, p *prop, old nhisync.Value, reason string) {
	st := time.Time{}
	if p.link != nil && !p.link.Modified.IsZero() {
		st = p.At
	}
	rc.setGolden(f, nhisync.Golden{Value: p.Value, Source: p.System, Actor: p.Actor, Rule: reason, At: rc.d.now, SourceTime: st})
	if p.fs != nil {
		p.fs.Shadow = p.Value
	}
	rc.accepted(f, p.System, p.Actor, old, p.Value, reason)
}

// accepted audits that field's golden value became value, as system
// proposed it (actor: who changed it there, "" when it does not say). A
// new record's first value is folded into its record.created entry (as
// rc.audit would fold the accepted entry) without an entry of its own
// being made: a first pass accepts millions.
func (rc *recCtx) accepted(f *nhisync.Field, system, actor string, old, value nhisync.Value, reason string) {
	if rc.created != nil && old.IsZero() {
		by := ""
		if actor != "" {
			by = actorOr(actor, system)
		}
		rc.createdFieldOf(f, system, by, value, reason)
		return
	}
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActAccepted, Actor: actorOr(actor, system), Field: f.Name, System: system, Old: old, New: value, Reason: reason})
}

// setGolden makes g the golden value of f. The golden values a decision
// sets share one allocation: a new record gets all of them.
func (rc *recCtx) setGolden(f *nhisync.Field, g nhisync.Golden) {
	if len(rc.goldens) == cap(rc.goldens) {
		rc.goldens = rc.d.arena.goldenRoom(len(rc.kind.FieldNames))
	}
	rc.goldens = append(rc.goldens, g)
	ptr := &rc.goldens[len(rc.goldens)-1]
	rc.rec.Fields[f.Name] = ptr
	if i := rc.indexOf(f); i >= 0 {
		rc.golden[i] = ptr
	} else {
		rc.putGolden(f.Name, ptr)
	}
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
	rc.hearLoser(f.Name, p.System, p.fs, p.Value, golden)
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActRefused, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: golden, New: p.Value, Reason: reason})
}

// hearLoser hears value, which system proposed and which does not stand
// (refused, or quarantined and dismissed by a person): system's shadow
// moves to it so it is not proposed again, and the system is then behind:
// repaired with the golden value, or under on_refused: report left and
// listed as drift against it.
func (rc *recCtx) hearLoser(field, system string, fs *nhisync.FieldState, value, golden nhisync.Value) {
	fs.Shadow = value
	if sys := rc.d.e.cfg.Systems[system]; sys != nil && sys.OnRefused == nhisync.Report {
		g := goldenAfter(rc, field, golden)
		fs.Report = &g
	}
}

// goldenAfter returns the field's golden value as it will stand; refusals
// made before the winner is accepted still hold against the final value.
func goldenAfter(rc *recCtx, field string, fallback nhisync.Value) nhisync.Value {
	if g := rc.rec.Fields[field]; g != nil {
		return g.Value
	}
	return fallback
}
