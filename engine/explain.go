package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nhisync/nhisync"
)

// Explanation says, for one field of one record, what every system
// asserts, which value is golden, who set it under which rule, and what
// the current rules would choose from the assertions alone (SPEC §3.10).
type Explanation struct {
	Kind      string          `json:"kind"`
	Record    string          `json:"record"`
	Field     string          `json:"field"`
	Type      string          `json:"type"`
	Resolve   string          `json:"resolve"`
	Authority []string        `json:"authority,omitempty"`
	Golden    *nhisync.Golden `json:"golden"`
	// Assertions are every linked system's current assertion.
	Assertions []Assertion `json:"assertions"`
	// Recomputed is what the current rules choose from the assertions.
	Recomputed Choice                    `json:"recomputed"`
	Conflict   *nhisync.Conflict         `json:"conflict,omitempty"`
	Quarantine []*nhisync.QuarantineItem `json:"quarantine,omitempty"`
	Approvals  []*nhisync.Approval       `json:"approvals,omitempty"`
	Writes     []*nhisync.OutboxWrite    `json:"writes,omitempty"`
	// History is the field's latest audit entries, oldest first.
	History []*nhisync.AuditEntry `json:"history"`
}

// explainHistory is how many audit entries Explain shows.
const explainHistory = 10

// Assertion is one system's current claim about a field.
type Assertion struct {
	System     string        `json:"system"`
	ExternalID string        `json:"external_id"`
	Value      nhisync.Value `json:"value"`
	Shadow     nhisync.Value `json:"shadow"`
	Since      time.Time     `json:"since,omitzero"`
	SourceTime time.Time     `json:"source_time,omitzero"`
	Allowed    bool          `json:"allowed"`
	Rank       int           `json:"rank"`
	// State is one of: agrees, behind, write queued, held, quarantined,
	// conflict, drift, differs (read-only), differs (identifies the record
	// there), gone, unmatched, disputed.
	State string `json:"state"`
}

// Choice is a value chosen from assertions, with why.
type Choice struct {
	Value  nhisync.Value `json:"value"`
	Source string        `json:"source,omitempty"`
	Rule   string        `json:"rule"`
}

// Explain explains field of the record named by kind and match key.
// Errors: ENOTFOUND, EINVALID (unknown field).
func (e *Engine) Explain(ctx context.Context, kind, matchKey, field string) (*Explanation, error) {
	k := e.cfg.Kinds[kind]
	if k == nil {
		return nil, errInvalid("no kind %q in the config", kind)
	}
	f := k.Field(field)
	if f == nil {
		return nil, errInvalid("kind %s has no field %q; fields: %v", kind, field, k.FieldNames)
	}
	rec, err := e.store.RecordByKey(ctx, kind, matchKey)
	if err != nil {
		return nil, err
	}
	x := &Explanation{Kind: kind, Record: rec.Key, Field: field, Type: string(f.Type), Resolve: string(f.Resolve), Authority: f.Authority, Golden: rec.Fields[field]}
	for _, l := range rec.Links {
		sys := e.cfg.Systems[l.System]
		if sys == nil || sys.Mapping(field) == nil {
			continue
		}
		fs := l.Fields[field]
		a := Assertion{System: l.System, ExternalID: l.ExternalID, Allowed: f.Allowed(l.System), Rank: f.Rank(l.System)}
		if fs != nil {
			a.Value, a.Shadow, a.Since, a.SourceTime = fs.Asserted, fs.Shadow, fs.Since, fs.SourceTime
		}
		a.State = assertionState(rec, k, sys, l, field, fs)
		x.Assertions = append(x.Assertions, a)
	}
	sort.SliceStable(x.Assertions, func(i, j int) bool {
		return slices.Index(e.cfg.SystemNames, x.Assertions[i].System) < slices.Index(e.cfg.SystemNames, x.Assertions[j].System)
	})
	x.Recomputed = Recompute(e.cfg, k, rec, field)
	for _, c := range rec.Conflicts {
		if c.Field == field && c.Status == nhisync.StatusOpen {
			x.Conflict = c
		}
	}
	for _, q := range rec.Quarantine {
		if q.Field == field {
			x.Quarantine = append(x.Quarantine, q)
		}
	}
	for _, a := range rec.Approvals {
		if a.Field == field {
			x.Approvals = append(x.Approvals, a)
		}
	}
	for _, o := range rec.Outbox {
		if o.Field == field {
			x.Writes = append(x.Writes, o)
		}
	}
	entries, err := e.store.AuditByRecord(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	x.History = []*nhisync.AuditEntry{}
	for _, en := range entries {
		if en.Field == field {
			x.History = append(x.History, en)
		}
	}
	if len(x.History) > explainHistory {
		x.History = x.History[len(x.History)-explainHistory:]
	}
	return x, nil
}

func assertionState(rec *nhisync.Record, k *nhisync.Kind, sys *nhisync.System, l *nhisync.Link, field string, fs *nhisync.FieldState) string {
	if l.Status != nhisync.LinkLive {
		return string(l.Status)
	}
	if holding(sys, fs, field).Equal(rec.Value(field)) {
		return "agrees"
	}
	if why := holdBack(rec, k, sys, fs, field); why != "" {
		return why
	}
	for _, o := range rec.Outbox {
		if o.System == sys.Name && o.Field == field {
			if o.Status == nhisync.OutboxHeld {
				return "held"
			}
			return "write queued"
		}
	}
	if !sys.Writes(field) {
		return "differs (read-only)"
	}
	return "behind"
}

// Recompute chooses a field's value from the current assertions alone
// under cfg's rules: what golden values would be if decided afresh
// (what-if, or after finding a system sent bad data).
func Recompute(cfg *nhisync.Config, k *nhisync.Kind, rec *nhisync.Record, field string) Choice {
	f := k.Field(field)
	type cand struct {
		system string
		value  nhisync.Value
		rank   int
		at     time.Time
	}
	var cands []cand
	for _, l := range rec.Links {
		sys := cfg.Systems[l.System]
		if l.Status != nhisync.LinkLive || sys == nil || sys.Kind != k.Name || !sys.Reads(field) || !f.Allowed(l.System) {
			continue
		}
		fs := l.Fields[field]
		if fs == nil || fs.Asserted.IsZero() {
			continue
		}
		v := f.Type.Canonical(fs.Asserted)
		if f.Type.Check(v, f.Values) != "" {
			continue
		}
		if failsRules(k, rec, field, v, l.System) {
			continue
		}
		at := fs.SourceTime
		if at.IsZero() {
			at = fs.Since
		}
		cands = append(cands, cand{system: l.System, value: v, rank: f.Rank(l.System), at: at})
	}
	if len(cands) == 0 {
		return Choice{Rule: "no allowed system asserts a valid value"}
	}
	switch f.Resolve {
	case nhisync.ResolveMerge:
		var elems []string
		if f.WinsRemove {
			// State-based remove-wins: keep what every asserting system holds.
			for _, e := range cands[0].value.Elems() {
				all := true
				for _, c := range cands[1:] {
					all = all && c.value.Has(e)
				}
				if all {
					elems = append(elems, e)
				}
			}
			return Choice{Value: nhisync.SetOf(elems...), Rule: "merge (remove wins): elements every system holds"}
		}
		for _, c := range cands {
			elems = append(elems, c.value.Elems()...)
		}
		return Choice{Value: nhisync.SetOf(elems...), Rule: "merge (add wins): union of every system's set"}
	case nhisync.ResolveStrictest:
		best := cands[0]
		for _, c := range cands[1:] {
			if f.Strictness(c.value) > f.Strictness(best.value) {
				best = c
			}
		}
		return Choice{Value: best.value, Source: best.system, Rule: "strictest: the strictest asserted value"}
	case nhisync.ResolveLatest:
		sort.SliceStable(cands, func(i, j int) bool {
			if !cands[i].at.Equal(cands[j].at) {
				return cands[i].at.After(cands[j].at)
			}
			return cands[i].rank < cands[j].rank
		})
		return Choice{Value: cands[0].value, Source: cands[0].system, Rule: "latest: the newest assertion"}
	case nhisync.ResolveManual:
		for _, c := range cands[1:] {
			if !c.value.Equal(cands[0].value) {
				return Choice{Value: rec.Value(field), Rule: "manual: systems disagree; a person decides"}
			}
		}
		return Choice{Value: cands[0].value, Source: cands[0].system, Rule: "manual: every system agrees"}
	default:
		sort.SliceStable(cands, func(i, j int) bool {
			if cands[i].rank != cands[j].rank {
				return cands[i].rank < cands[j].rank
			}
			return cands[i].at.After(cands[j].at)
		})
		rule := "priority: the highest-ranked system asserting a value"
		if len(f.Authority) == 0 {
			rule = "priority: equal rank, the latest assertion"
		}
		return Choice{Value: cands[0].value, Source: cands[0].system, Rule: rule}
	}
}

func failsRules(k *nhisync.Kind, rec *nhisync.Record, field string, v nhisync.Value, system string) bool {
	var view map[string]nhisync.Value
	for _, r := range k.Rules {
		if !slices.Contains(r.Fields(), field) {
			continue
		}
		if view == nil {
			view = make(map[string]nhisync.Value, len(k.FieldNames)+1)
			for _, n := range k.FieldNames {
				view[n] = rec.Value(n)
			}
			view[field] = v
		}
		if ok, err := r.Check(view, system); err != nil || !ok {
			return true
		}
	}
	return false
}

// Change is one golden value a proposed config would change.
type Change struct {
	Kind    string        `json:"kind"`
	Record  string        `json:"record"`
	Field   string        `json:"field"`
	Current nhisync.Value `json:"current"`
	// Proposed is what the proposed rules choose, and why.
	Proposed Choice `json:"proposed"`
	// Writes names the systems that would then be written.
	Writes []string `json:"writes"`
}

// WhatIf recomputes every golden value from the stored assertions under a
// proposed config and returns the values that would change, without
// reading any system or writing anything.
func (e *Engine) WhatIf(ctx context.Context, proposed *nhisync.Config) ([]Change, int, error) {
	var out []Change
	n := 0
	err := e.store.ScanRecords(ctx, "", func(rec *nhisync.Record) error {
		k := proposed.Kinds[rec.Kind]
		if k == nil {
			return nil
		}
		n++
		for _, field := range k.FieldNames {
			if k.IsMatch(field) {
				continue
			}
			ch := Recompute(proposed, k, rec, field)
			cur := rec.Value(field)
			if ch.Value.Equal(cur) || (ch.Source == "" && ch.Value.IsZero() && !hasAssertion(rec, field)) {
				continue
			}
			c := Change{Kind: rec.Kind, Record: rec.Key, Field: field, Current: cur, Proposed: ch}
			for _, l := range rec.Links {
				sys := proposed.Systems[l.System]
				if l.Status == nhisync.LinkLive && sys != nil && sys.Writes(field) && !l.Asserted(field).Equal(ch.Value) {
					c.Writes = append(c.Writes, l.System)
				}
			}
			out = append(out, c)
		}
		return nil
	})
	return out, n, err
}

func hasAssertion(rec *nhisync.Record, field string) bool {
	for _, l := range rec.Links {
		if l.Status == nhisync.LinkLive && !l.Asserted(field).IsZero() {
			return true
		}
	}
	return false
}

// String renders a choice for people.
func (c Choice) String() string {
	if c.Source == "" {
		return fmt.Sprintf("%q (%s)", c.Value.String(), c.Rule)
	}
	return fmt.Sprintf("%q from %s (%s)", c.Value.String(), c.Source, c.Rule)
}
