package engine

// SPEC §3.3 Concurrent proposals: the resolve strategies (latest,
// strictest, merge; manual in conflict.go, priority in authority.go).

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// decideAllowed settles the proposals of systems allowed to set the field.
func (rc *recCtx) decideAllowed(f *nhisync.Field, g *nhisync.Golden, gv nhisync.Value, valid []*prop) error {
	// Validation quarantines before anything is accepted.
	checked := valid[:0:0]
	// Systems mostly propose the same value: what the proposals checked
	// already passed is not checked again (validateOnce).
	for _, p := range valid {
		rule, reason, err := rc.validateOnce(f, p, checked)
		if err != nil {
			return err
		}
		if rule != "" {
			if err := rc.quarantine(f, p, rule, reason); err != nil {
				return err
			}
			continue
		}
		p.rank = f.Rank(p.System)
		checked = append(checked, p)
	}
	if len(checked) == 0 {
		return nil
	}
	if c := openConflict(rc.rec, f.Name); c != nil {
		rc.joinConflict(f, c, checked)
		return nil
	}
	if f.Resolve == nhisync.ResolveMerge {
		rc.merge(f, gv, checked)
		return nil
	}
	var changing []*prop
	for _, p := range checked {
		if p.Value.Equal(gv) {
			rc.agree(f, p)
			continue
		}
		changing = append(changing, p)
	}
	if len(changing) == 0 {
		return nil
	}
	concurrent := distinct(changing) > 1
	var incumbent *prop
	if g != nil && !gv.IsZero() && !nhisync.IsPerson(g.Source) {
		for _, p := range changing {
			if p.System != g.Source && !p.fs.Shadow.Equal(gv) {
				// The proposer never saw the golden value: its change
				// competes with the value's setter.
				concurrent = true
				at := g.SourceTime
				if at.IsZero() {
					at = g.At
				}
				incumbent = &prop{Proposal: nhisync.Proposal{System: g.Source, Value: gv, At: at, Actor: g.Actor}, rank: f.Rank(g.Source)}
				break
			}
		}
	}
	switch strategy(f, concurrent) {
	case nhisync.ResolveLatest:
		rc.latest(f, g, changing, incumbent)
	case nhisync.ResolveStrictest:
		rc.strictest(f, g, changing, incumbent)
	case nhisync.ResolveManual:
		return rc.openNewConflict(f, gv, changing, incumbent)
	default:
		rc.priority(f, g, changing)
	}
	return nil
}

// The candidate orderings of the strategies. They are pure, and the one
// place each ordering is written: a pass settles proposals with them, and
// recompute (explain, what-if) settles assertions with them.

// strategy returns the strategy that settles a field's changing values
// (merge is applied to every proposal before that). latest always
// applies; strictest and manual only to concurrent values: a single value
// is settled by priority, the rule of who may set the field.
func strategy(f *nhisync.Field, concurrent bool) nhisync.Strategy {
	switch {
	case f.Resolve == nhisync.ResolveLatest, f.Resolve == nhisync.ResolveMerge:
		return f.Resolve
	case concurrent && (f.Resolve == nhisync.ResolveStrictest || f.Resolve == nhisync.ResolveManual):
		return f.Resolve
	}
	return nhisync.ResolvePriority
}

// byPriority orders candidates as priority prefers them (SPEC §3.2–3.3):
// the highest rank first, then the latest change, then system name.
func byPriority(a, b *prop) int {
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	if c := b.At.Compare(a.At); c != 0 {
		return c
	}
	return strings.Compare(a.System, b.System)
}

// byLatest orders candidates as latest prefers them: the latest source
// timestamp first; ties by authority order, then system name.
func byLatest(a, b *prop) int {
	if c := b.At.Compare(a.At); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	return strings.Compare(a.System, b.System)
}

// byStrictest orders candidates as strictest prefers them: the value
// latest in the enum's values first; ties (one value from several
// systems) in priority's order, so the provenance is the same every time.
func byStrictest(f *nhisync.Field) func(a, b *prop) int {
	return func(a, b *prop) int {
		if c := cmp.Compare(f.Strictness(b.Value), f.Strictness(a.Value)); c != 0 {
			return c
		}
		return byPriority(a, b)
	}
}

// mergeSets applies set additions and removals to golden, each taken
// against its proposer's own shadow (an assertion never merged before has
// an empty shadow: all of it is added). An element one proposal adds and
// another removes stays, unless the field says wins: remove. It returns
// the merged set and the proposals that added or removed something, and
// changes nothing.
func mergeSets(f *nhisync.Field, golden nhisync.Value, ps []*prop) (nhisync.Value, []*prop) {
	// Sets are short and their elements sorted: sorted slices, searched
	// by bisection, cost less than maps here, and this runs for every
	// proposal of every set field.
	var adds, removes []string
	var contributors []*prop
	for _, p := range ps {
		var sh nhisync.Value
		if p.fs != nil {
			sh = p.fs.Shadow
		}
		touched := false
		for _, e := range p.Value.Elems() {
			if !sh.Has(e) {
				adds, touched = append(adds, e), true
			}
		}
		for _, e := range sh.Elems() {
			if !p.Value.Has(e) {
				removes, touched = append(removes, e), true
			}
		}
		if touched {
			contributors = append(contributors, p)
		}
	}
	if len(ps) > 1 {
		// Several proposals: their additions and removals may repeat.
		slices.Sort(adds)
		adds = slices.Compact(adds)
		slices.Sort(removes)
		removes = slices.Compact(removes)
	}
	has := func(sorted []string, e string) bool {
		_, ok := slices.BinarySearch(sorted, e)
		return ok
	}
	// An element both added and removed stays, unless removal wins.
	elems := make([]string, 0, len(golden.Elems())+len(adds))
	for _, e := range golden.Elems() {
		if !has(removes, e) || (has(adds, e) && !f.WinsRemove) {
			elems = append(elems, e)
		}
	}
	for _, e := range adds {
		if !has(removes, e) || !f.WinsRemove {
			elems = append(elems, e)
		}
	}
	return nhisync.SetOf(elems...), contributors
}

// distinct counts the different values of ps.
func distinct(ps []*prop) int {
	n := 0
next:
	for i, p := range ps {
		for _, q := range ps[:i] {
			if q.Value.Equal(p.Value) {
				continue next
			}
		}
		n++
	}
	return n
}

// settle makes win's value golden and hears every other proposal: one
// with the same value agrees, the rest lose for lost(p).
func (rc *recCtx) settle(f *nhisync.Field, win *prop, old nhisync.Value, reason string, ps []*prop, lost func(p *prop) string) {
	rc.accept(f, win, old, reason)
	for _, p := range ps {
		switch {
		case p == win:
		case p.Value.Equal(win.Value):
			rc.agreed(f.Name, p, p.Value, false)
		default:
			rc.refuse(f, p, win.Value, lost(p))
		}
	}
}

// latest lets the latest source timestamp win; ties by authority order,
// then system name.
func (rc *recCtx) latest(f *nhisync.Field, g *nhisync.Golden, ps []*prop, incumbent *prop) {
	cands := slices.Clone(ps)
	if incumbent != nil {
		cands = append(cands, incumbent)
	}
	win := slices.MinFunc(cands, byLatest)
	gv := goldenValue(g)
	if win == incumbent {
		for _, p := range ps {
			rc.refuse(f, p, gv, fmt.Sprintf("latest: the golden value from %s is newer", incumbent.System))
		}
		return
	}
	rc.settle(f, win, gv, "latest: newest change", ps, func(*prop) string {
		return fmt.Sprintf("latest: %s's change is newer", win.System)
	})
}

// strictest lets the value latest in the enum's values win among
// concurrent proposals: security fields fail closed.
func (rc *recCtx) strictest(f *nhisync.Field, g *nhisync.Golden, ps []*prop, incumbent *prop) {
	gv := goldenValue(g)
	win := slices.MinFunc(ps, byStrictest(f))
	if incumbent != nil && f.Strictness(gv) >= f.Strictness(win.Value) {
		for _, p := range ps {
			rc.refuse(f, p, gv, fmt.Sprintf("strictest: %s is stricter than %s", quoteText(f, gv.Text()), quoteText(f, p.Value.Text())))
		}
		return
	}
	rc.settle(f, win, gv, "strictest: the strictest concurrent value wins", ps, func(p *prop) string {
		return fmt.Sprintf("strictest: %s is stricter than %s", quoteText(f, win.Value.Text()), quoteText(f, p.Value.Text()))
	})
}

// merge applies set additions and removals, each against the proposing
// system's own shadow; add wins over a concurrent removal unless the
// field says wins: remove.
func (rc *recCtx) merge(f *nhisync.Field, gv nhisync.Value, ps []*prop) {
	nv, contributors := mergeSets(f, gv, ps)
	for _, p := range ps {
		p.fs.Shadow = p.Value
	}
	if nv.Equal(gv) {
		return
	}
	// Provenance names the latest contributing change.
	latest := slices.MinFunc(contributors, byLatest)
	rc.setGolden(f, nhisync.Golden{Value: nv, Source: latest.System, Actor: latest.Actor, Rule: "merge", At: rc.d.now, SourceTime: latest.At})
	if gv.IsZero() && !slices.ContainsFunc(contributors, func(p *prop) bool { return !p.Value.Equal(nv) }) {
		// A first sighting: the golden set was empty and every system that
		// holds one holds the same. Nothing was combined: the value is
		// accepted, not merged; the others agree with it.
		rc.accepted(f, latest.System, latest.Actor, gv, nv, "merge: the golden value was empty")
		for _, p := range contributors {
			if p != latest {
				rc.agreed(f.Name, p, nv, true)
			}
		}
		return
	}
	reason := mergeReason(f, gv, nv)
	for _, p := range contributors {
		rc.audit(&nhisync.AuditEntry{Action: nhisync.ActMerged, Actor: actorOr(p.Actor, p.System), Field: f.Name, System: p.System, Old: gv, New: nv, Reason: reason})
	}
}

// setDiff returns the elements of a not in b and of b not in a.
func setDiff(a, b nhisync.Value) (onlyA, onlyB []string) {
	for _, e := range a.Elems() {
		if !b.Has(e) {
			onlyA = append(onlyA, e)
		}
	}
	for _, e := range b.Elems() {
		if !a.Has(e) {
			onlyB = append(onlyB, e)
		}
	}
	return onlyA, onlyB
}

func mergeReason(f *nhisync.Field, old, merged nhisync.Value) string {
	added, removed := setDiff(merged, old)
	mode := "add wins"
	if f.WinsRemove {
		mode = "remove wins"
	}
	parts := []string{"merge (" + mode + ")"}
	if len(added) > 0 {
		parts = append(parts, "added "+elems(f, added))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+elems(f, removed))
	}
	return strings.Join(parts, "; ")
}

func goldenValue(g *nhisync.Golden) nhisync.Value {
	if g == nil {
		return nhisync.Value{}
	}
	return g.Value
}
