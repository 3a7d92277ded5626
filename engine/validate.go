package engine

// SPEC §3.4 Validation: type, required, unique key, ref and the kind's
// rules; a failing proposal is quarantined once.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// settleQuarantine closes quarantine items whose source changed, and
// drops proposals that repeat a quarantined value (quarantined once).
func (rc *recCtx) settleQuarantine(observed map[string]*staged) {
	for _, q := range rc.rec.Quarantine {
		if q.Status != nhisync.StatusOpen || q.Field == "" {
			continue
		}
		if observed[q.System] == nil {
			continue
		}
		ps := rc.props[q.Field]
		i := slices.IndexFunc(ps, func(p *prop) bool { return p.System == q.System })
		if i >= 0 && ps[i].Value.Equal(q.Value) {
			rc.props[q.Field] = slices.Delete(ps, i, i+1)
			continue
		}
		q.Status, q.Closed, q.ClosedBy = nhisync.StatusCleared, rc.d.now, nhisync.Actor
		rc.d.batch.Quarantine = append(rc.d.batch.Quarantine, q)
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantineCleared, Actor: q.System, Field: q.Field, System: q.System, Old: q.Value, Reason: "the source changed"})
	}
}

// openQuarantine reports whether rec has an open item for (field, system).
func openQuarantine(rec *nhisync.Record, field, system string) bool {
	for _, q := range rec.Quarantine {
		if q.Status == nhisync.StatusOpen && q.Field == field && q.System == system {
			return true
		}
	}
	return false
}

// validate runs type checks, required and the kind's rules on a proposal.
func (rc *recCtx) validate(f *nhisync.Field, p *prop) (rule, reason string) {
	if msg := f.Type.Check(p.Value, f.Values); msg != "" {
		return "type", fmt.Sprintf("%s must be %s: %s", f.Name, typeWord(f), msg)
	}
	if (f.Required || rc.kind.IsMatch(f.Name)) && p.Value.IsZero() {
		return "required", fmt.Sprintf("%s is required; %s has no value", f.Name, p.System)
	}
	if rc.keyTaken(f, p.Value) {
		return "unique-key", fmt.Sprintf("another %s already has %s %q", rc.kind.Name, f.Name, p.Value.Text())
	}
	if (f.Type == nhisync.TypeRef || f.Type == nhisync.TypeRefs) && rc.d.recIdx != nil && !p.Value.IsZero() {
		if missing := rc.missingRefs(f, p.Value); missing != "" {
			return "ref", fmt.Sprintf("no %s %q exists", f.To, missing)
		}
	}
	for _, r := range rc.kind.Rules {
		if !slices.Contains(r.Fields(), f.Name) {
			continue
		}
		ok, err := r.Check(rc.view(p.System), p.System)
		if err != nil {
			return r.Name(), "rule failed to evaluate: " + err.Error()
		}
		if !ok {
			return r.Name(), fmt.Sprintf("rule %s fails for %s = %q", r.Name(), f.Name, p.Value.String())
		}
	}
	return "", ""
}

func typeWord(f *nhisync.Field) string {
	if f.Type == nhisync.TypeEnum {
		return "one of " + strings.Join(f.Values, ", ")
	}
	return "a " + string(f.Type)
}

// missingRefs returns the first referenced key with no golden record.
func (rc *recCtx) missingRefs(f *nhisync.Field, v nhisync.Value) string {
	target := rc.d.e.cfg.Kinds[f.To]
	idx := rc.d.recIdx[f.To]
	if target == nil || idx == nil {
		return ""
	}
	refs := v.Elems()
	if !v.IsSet() {
		refs = []string{v.Text()}
	}
	for _, ref := range refs {
		parts := strings.Split(ref, "/")
		if len(parts) != len(target.Match) {
			return ref
		}
		if _, ok := idx[nhisync.NormalizeKey(parts)]; !ok {
			return ref
		}
	}
	return ""
}

// view returns the record as system proposes it: golden values overlaid
// with every proposal of that system in this pass.
func (rc *recCtx) view(system string) map[string]nhisync.Value {
	if v := rc.views[system]; v != nil {
		return v
	}
	v := make(map[string]nhisync.Value, len(rc.kind.FieldNames)+1)
	for _, name := range rc.kind.FieldNames {
		v[name] = rc.rec.Value(name)
	}
	for field, ps := range rc.props {
		for _, p := range ps {
			if p.System == system {
				v[field] = p.Value
			}
		}
	}
	rc.views[system] = v
	return v
}

// quarantine holds a failing proposal: neither applied nor propagated,
// the source is not repaired, and the same value is not quarantined again.
func (rc *recCtx) quarantine(f *nhisync.Field, p *prop, rule, reason string) error {
	id, err := rc.d.ids.get(rc.ctx)
	if err != nil {
		return err
	}
	q := &nhisync.QuarantineItem{ID: id, Kind: rc.rec.Kind, RecordID: rc.rec.ID, Record: rc.rec.Key, Field: f.Name, System: p.System,
		ExternalID: p.link.ExternalID, Value: p.Value, Rule: rule, Reason: reason, Status: nhisync.StatusOpen, At: rc.d.now}
	rc.rec.Quarantine = append(rc.rec.Quarantine, q)
	rc.d.batch.Quarantine = append(rc.d.batch.Quarantine, q)
	rc.audit(&nhisync.AuditEntry{Action: nhisync.ActQuarantined, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: rc.rec.Value(f.Name), New: p.Value, Reason: rule + ": " + reason})
	return nil
}
