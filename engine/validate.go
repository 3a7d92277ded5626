package engine

// SPEC §3.4 Validation: type, required, unique key, ref and the kind's
// rules; a failing proposal is quarantined once.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// settleQuarantine closes quarantine items whose source changed, and
// drops proposals that repeat a quarantined value (quarantined once).
func (rc *recCtx) settleQuarantine(observed []*staged) {
	for _, q := range rc.rec.Quarantine {
		if q.Status != nhisync.StatusOpen || q.Field == "" {
			continue
		}
		if !slices.ContainsFunc(observed, func(st *staged) bool { return st.system() == q.System }) {
			continue
		}
		ps := rc.propsOf(q.Field)
		i := slices.IndexFunc(ps, func(p *prop) bool { return p.System == q.System })
		if i >= 0 && ps[i].Value.Equal(q.Value) {
			rc.props[rc.d.fieldIndex(rc.kind, q.Field)] = slices.Delete(ps, i, i+1)
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

// validator checks values of one kind's fields (SPEC §3.4): type,
// required, unique match key, ref targets and the kind's rules. It is the
// one validation of every path: a pass's proposals, what-if and explain
// recomputing from assertions, and a person's --pick or --value.
type validator struct {
	cfg  *nhisync.Config
	kind *nhisync.Kind
	keys keyIndex
	// passed, when not nil, holds what the kind's rules passed before in
	// the same pass (ruleMemo); nil: every rule runs.
	passed *ruleMemo
}

// check validates value v of field f of rec as system proposes it (for a
// person's value, the person's actor, person:NAME). view returns the
// record as the proposer would leave it, for the rules reading f. It
// returns the failing check ("type", "required", "unique-key", "ref" or
// the rule's name) and why, or "" when v passes. err is set only when a
// check could not be made (the key index failed): v is then neither valid
// nor invalid, and the decision must stop.
func (vd validator) check(ctx context.Context, rec *nhisync.Record, f *nhisync.Field, system string, v nhisync.Value, view func() map[string]nhisync.Value) (rule, reason string, err error) {
	if rule, reason, err = vd.checkValue(ctx, rec, f, system, v); rule != "" || err != nil {
		return rule, reason, err
	}
	return vd.checkRules(f, system, v, view)
}

// checkValue is check's part that reads v alone, not who proposes it nor
// the rest of the record as they would leave it: type, required, unique
// match key and ref targets. Its verdict is the same for every proposal of
// an equal value of f in one decision (only a failure's reason names the
// system), so a decision asks it once per value that passes
// (recCtx.validateOnce).
func (vd validator) checkValue(ctx context.Context, rec *nhisync.Record, f *nhisync.Field, system string, v nhisync.Value) (rule, reason string, err error) {
	if msg := v.Problem(); msg != "" {
		// Not a value at all (a row cut short, an object for text, bad
		// bytes): said as such, whatever the field's type.
		return "malformed", fmt.Sprintf("%s is not a value: %s", f.Name, msg), nil
	}
	if msg := f.Type.Check(v, f.Values); msg != "" {
		if f.Sensitive {
			msg = "the value does not fit (withheld: sensitive field)"
		}
		return "type", fmt.Sprintf("%s must be %s: %s", f.Name, typeWord(f), msg), nil
	}
	if (f.Required || vd.kind.IsMatch(f.Name)) && v.IsZero() {
		return "required", fmt.Sprintf("%s is required; %s has no value", f.Name, system), nil
	}
	taken, err := keyTaken(ctx, vd.keys, vd.kind, rec, f, v)
	if err != nil {
		return "", "", err
	}
	if taken {
		return "unique-key", fmt.Sprintf("another %s already has %s %s", vd.kind.Name, f.Name, quoteText(f, v.Text())), nil
	}
	if (f.Type == nhisync.TypeRef || f.Type == nhisync.TypeRefs) && !v.IsZero() {
		missing, err := vd.missingRef(ctx, f, v)
		if err != nil {
			return "", "", err
		}
		if missing != "" {
			return "ref", fmt.Sprintf("no %s %s exists", f.To, quoteText(f, missing)), nil
		}
	}
	return "", "", nil
}

// checkRules is check's part that runs the kind's rules reading f over
// view, the record as system would leave it.
func (vd validator) checkRules(f *nhisync.Field, system string, v nhisync.Value, view func() map[string]nhisync.Value) (rule, reason string, err error) {
	for i, r := range vd.kind.Rules {
		if !slices.Contains(r.Fields(), f.Name) {
			continue
		}
		fields := view()
		key := vd.passed.key(r, fields)
		if vd.passed.has(vd.kind, i, key) {
			continue
		}
		ok, err := r.Check(fields, system)
		if err != nil {
			if f.Sensitive {
				return r.Name(), "rule failed to evaluate (details withheld: sensitive field)", nil
			}
			return r.Name(), "rule failed to evaluate: " + err.Error(), nil
		}
		if !ok {
			return r.Name(), fmt.Sprintf("rule %s fails for %s = %s", r.Name(), f.Name, quote(f, v)), nil
		}
		vd.passed.add(vd.kind, i, key)
	}
	return "", "", nil
}

// ruleMemo holds, per rule that does not read the proposing system, the
// values of the fields it reads that it passed in this pass: a rule is a
// function of what it reads (nhisync.Rule.ReadsSystem), so it passes them
// again, and a pass need not run it. Owners, cost centres and the like
// repeat across records: a first pass ran the kind's CEL rules, the
// dearest part of validating, about twice per record, on a few thousand
// distinct values. Only passes are kept: a failure, rare, runs again and
// says why. The memo stops growing at ruleMemoBytes of values; what it
// holds then is still kept.
type ruleMemo struct {
	passed map[kindRule]map[string]struct{}
	size   int
	buf    []byte
}

// kindRule names a rule: the kind's, at index i of its Rules.
type kindRule struct {
	kind *nhisync.Kind
	i    int
}

// ruleMemoBytes bounds what a ruleMemo holds: the values' encodings.
const ruleMemoBytes = 4 << 20

// key returns the encoding of the values fields holds for the fields r
// reads, nil when r's verdict is not to be remembered (it reads the
// system) or m is nil. It is valid until key is called again.
func (m *ruleMemo) key(r nhisync.Rule, fields map[string]nhisync.Value) []byte {
	if m == nil || r.ReadsSystem() {
		return nil
	}
	// Each value's encoding says where it ends (Value.AppendBinary), so
	// their concatenation names the values it was made of. A zero key
	// byte first: a rule reading no field still has a key.
	b := append(m.buf[:0], 0)
	for _, name := range r.Fields() {
		b = fields[name].AppendBinary(b)
	}
	m.buf = b
	return b
}

// has reports whether kind's rule i passed the values encoded as key
// in this pass.
func (m *ruleMemo) has(kind *nhisync.Kind, i int, key []byte) bool {
	if key == nil {
		return false
	}
	_, ok := m.passed[kindRule{kind, i}][string(key)]
	return ok
}

// add remembers that kind's rule i passed the values encoded as key.
func (m *ruleMemo) add(kind *nhisync.Kind, i int, key []byte) {
	if key == nil || m.size+len(key) > ruleMemoBytes {
		return
	}
	if m.passed == nil {
		m.passed = map[kindRule]map[string]struct{}{}
	}
	s := m.passed[kindRule{kind, i}]
	if s == nil {
		s = map[string]struct{}{}
		m.passed[kindRule{kind, i}] = s
	}
	if _, ok := s[string(key)]; !ok {
		s[string(key)] = struct{}{}
		m.size += len(key)
	}
}

// validate checks a proposal of this decision.
func (rc *recCtx) validate(f *nhisync.Field, p *prop) (rule, reason string, err error) {
	vd := validator{cfg: rc.d.e.cfg, kind: rc.kind, keys: rc.d.keys, passed: &rc.d.rulesPassed}
	return vd.check(rc.ctx, rc.rec, f, p.System, p.Value, func() map[string]nhisync.Value { return rc.view(p.System) })
}

// validateOnce checks a proposal of field f of this decision as validate
// does, but takes what it can from checked, the proposals of f that
// passed every check in this decision: a value equal to one of theirs
// passes checkValue, whose verdict is the same for every proposal of an
// equal value of f; and when one of them left the fields the kind's rules
// read as p leaves them and no rule reading f reads the proposing system,
// the rules' verdict on p is theirs (a rule is a function of what it
// reads).
func (rc *recCtx) validateOnce(f *nhisync.Field, p *prop, checked []*prop) (rule, reason string, err error) {
	vd := validator{cfg: rc.d.e.cfg, kind: rc.kind, keys: rc.d.keys, passed: &rc.d.rulesPassed}
	if !slices.ContainsFunc(checked, func(q *prop) bool { return q.Value.Equal(p.Value) }) {
		if rule, reason, err = vd.checkValue(rc.ctx, rc.rec, f, p.System, p.Value); rule != "" || err != nil {
			return rule, reason, err
		}
	}
	if rc.rulesPassedAlike(f, p, checked) {
		return "", "", nil
	}
	return vd.checkRules(f, p.System, p.Value, func() map[string]nhisync.Value { return rc.view(p.System) })
}

// rulesPassedAlike reports whether a proposal in checked, which passed
// the kind's rules reading f, leaves every field the kind's rules read as
// p does, and no rule reading f reads the proposing system: those rules
// then pass p too.
func (rc *recCtx) rulesPassedAlike(f *nhisync.Field, p *prop, checked []*prop) bool {
	if len(checked) == 0 {
		return false
	}
	reads := false
	for _, r := range rc.kind.Rules {
		if !slices.Contains(r.Fields(), f.Name) {
			continue
		}
		if r.ReadsSystem() {
			return false
		}
		reads = true
	}
	if !reads {
		return true // no rule reads f: there is nothing to run
	}
	pv := rc.view(p.System)
	for _, q := range checked {
		qv := rc.view(q.System)
		if !slices.ContainsFunc(rc.d.ruleFields(rc.kind), func(i int) bool {
			name := rc.kind.FieldNames[i]
			return !qv[name].Equal(pv[name])
		}) {
			return true
		}
	}
	return false
}

func typeWord(f *nhisync.Field) string {
	if f.Type == nhisync.TypeEnum {
		return "one of " + strings.Join(f.Values, ", ")
	}
	return "a " + string(f.Type)
}

// missingRef returns the first key v refers to that no golden record of
// the field's target kind has ("" when every one exists).
func (vd validator) missingRef(ctx context.Context, f *nhisync.Field, v nhisync.Value) (string, error) {
	target := vd.cfg.Kinds[f.To]
	if target == nil {
		// config.Load refuses a ref to an unknown kind.
		return "", nhisync.Errorf(nhisync.EINTERNAL, "field %s refers to kind %q, which is not in the config", f.Name, f.To)
	}
	refs := v.Elems()
	if !v.IsSet() {
		refs = []string{v.Text()}
	}
	for _, ref := range refs {
		parts := strings.Split(ref, "/")
		if len(parts) != len(target.Match) {
			return ref, nil
		}
		_, ok, err := vd.keys.owner(ctx, target.Name, nhisync.NormalizeKey(parts))
		if err != nil {
			return "", err
		}
		if !ok {
			return ref, nil
		}
	}
	return "", nil
}

// view returns the record as system proposes it, the fields the kind's
// rules read only: golden values overlaid with every proposal of that
// system in this pass.
func (rc *recCtx) view(system string) map[string]nhisync.Value {
	for _, v := range rc.views {
		if v.system == system {
			return v.values
		}
	}
	// The map of a previous decision's view, when the decider has one to
	// spare, cleared: the fields a rule reads are set below.
	var v map[string]nhisync.Value
	if n := len(rc.views); n < len(rc.d.viewPool) {
		v = rc.d.viewPool[n].values
		clear(v)
	} else {
		v = make(map[string]nhisync.Value, len(rc.kind.FieldNames)+1)
		rc.d.viewPool = append(rc.d.viewPool, recView{values: v})
	}
	// Only the fields a rule reads: a view is read by the kind's rules
	// only (validator.check), and a rule reads its fields only.
	for _, i := range rc.d.ruleFields(rc.kind) {
		name := rc.kind.FieldNames[i]
		v[name] = goldenValue(rc.golden[i])
		for _, p := range rc.props[i] {
			if p.System == system {
				v[name] = p.Value
			}
		}
	}
	rc.d.viewPool[len(rc.views)].system = system
	rc.views = rc.d.viewPool[:len(rc.views)+1]
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
