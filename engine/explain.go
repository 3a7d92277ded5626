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
	// Rank is the system's place in the field's authority, 1 for the
	// highest; 0 when the field has no authority list (every system at
	// equal rank) or the system may not set the field.
	Rank int `json:"rank"`
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
		a := Assertion{System: l.System, ExternalID: l.ExternalID, Allowed: f.Allowed(l.System)}
		if a.Allowed && len(f.Authority) > 0 {
			a.Rank = f.Rank(l.System) + 1
		}
		if fs != nil {
			a.Value, a.Shadow, a.Since, a.SourceTime = fs.Asserted, fs.Shadow, fs.Since, fs.SourceTime
		}
		a.State = assertionState(rec, k, sys, l, field, fs)
		x.Assertions = append(x.Assertions, a)
	}
	sort.SliceStable(x.Assertions, func(i, j int) bool {
		return slices.Index(e.cfg.SystemNames, x.Assertions[i].System) < slices.Index(e.cfg.SystemNames, x.Assertions[j].System)
	})
	x.Recomputed, err = recompute(ctx, e.cfg, storeKeys{e.store}, k, rec, field)
	if err != nil {
		return nil, err
	}
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
	for _, en := range nhisync.ExpandAll(entries) {
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

// recompute chooses a field's value from the current assertions alone,
// under cfg's rules: what the golden value would be if decided afresh
// (explain; what-if under a proposed config; after finding that a system
// sent bad data). It decides as a pass decides the first sight of every
// system (SPEC §3.1): each live system allowed to set the field proposes
// its non-empty assertion against an empty golden value. Each is
// validated by the pass's validator (type, required, unique key, ref,
// rules), and the pass's orderings choose (strategy, byPriority, byLatest,
// byStrictest, mergeSets), so with an unchanged config it chooses what a
// pass over those assertions chooses. Merging assertions alone sees no
// removals (they need each system's history): it is their union, with
// either wins. keys finds match keys and ref targets; its errors are
// returned.
func recompute(ctx context.Context, cfg *nhisync.Config, keys keyIndex, k *nhisync.Kind, rec *nhisync.Record, field string) (Choice, error) {
	f := k.Field(field)
	vd := validator{cfg: cfg, kind: k, keys: keys}
	var ps []*prop
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
		rule, _, err := vd.check(ctx, rec, f, l.System, v, func() map[string]nhisync.Value { return assertedView(k, rec, l) })
		if err != nil {
			return Choice{}, err
		}
		if rule != "" {
			continue
		}
		at := fs.SourceTime
		if at.IsZero() {
			at = fs.Since
		}
		ps = append(ps, &prop{Proposal: nhisync.Proposal{System: l.System, Value: v, At: at, Actor: fs.Actor}, link: l, fs: &nhisync.FieldState{}, rank: f.Rank(l.System)})
	}
	if len(ps) == 0 {
		return Choice{Rule: "no allowed system asserts a valid value"}, nil
	}
	if f.Resolve == nhisync.ResolveMerge {
		nv, contributors := mergeSets(f, nhisync.Value{}, ps)
		return Choice{Value: nv, Source: slices.MinFunc(contributors, byLatest).System, Rule: "merge: union of every system's set"}, nil
	}
	switch strategy(f, distinct(ps) > 1) {
	case nhisync.ResolveLatest:
		win := slices.MinFunc(ps, byLatest)
		return Choice{Value: win.Value, Source: win.System, Rule: "latest: the newest assertion"}, nil
	case nhisync.ResolveStrictest:
		win := slices.MinFunc(ps, byStrictest(f))
		return Choice{Value: win.Value, Source: win.System, Rule: "strictest: the strictest asserted value"}, nil
	case nhisync.ResolveManual:
		return Choice{Value: rec.Value(field), Rule: "manual: systems disagree; a person decides"}, nil
	}
	win := slices.MinFunc(ps, byPriority)
	rule := "priority: the highest-ranked system asserting a value"
	switch {
	case f.Resolve == nhisync.ResolveManual || f.Resolve == nhisync.ResolveStrictest:
		rule = string(f.Resolve) + ": every system agrees"
	case len(f.Authority) == 0:
		rule = "priority: equal rank, the latest assertion"
	}
	return Choice{Value: win.Value, Source: win.System, Rule: rule}, nil
}

// assertedView is the record as link's system would leave it: golden
// values overlaid with its non-empty assertions, as a pass's rules see
// the proposals of a system seen for the first time.
func assertedView(k *nhisync.Kind, rec *nhisync.Record, l *nhisync.Link) map[string]nhisync.Value {
	view := make(map[string]nhisync.Value, len(k.FieldNames))
	for _, n := range k.FieldNames {
		view[n] = rec.Value(n)
	}
	for n, fs := range l.Fields {
		if k.Field(n) != nil && !fs.Asserted.IsZero() {
			view[n] = fs.Asserted
		}
	}
	return view
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
// reading any system or writing anything. It decides as a pass does (see
// recompute), with every golden record's match key in memory for the
// unique-key and ref checks, so under the unchanged config it changes
// nothing a pass over the same assertions chose.
func (e *Engine) WhatIf(ctx context.Context, proposed *nhisync.Config) ([]Change, int, error) {
	keys, err := scanKeys(ctx, e.store)
	if err != nil {
		return nil, 0, err
	}
	var out []Change
	n := 0
	err = e.store.ScanRecords(ctx, "", func(rec *nhisync.Record) error {
		k := proposed.Kinds[rec.Kind]
		if k == nil {
			return nil
		}
		n++
		for _, field := range k.FieldNames {
			if k.IsMatch(field) {
				continue
			}
			ch, err := recompute(ctx, proposed, keys, k, rec, field)
			if err != nil {
				return err
			}
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
