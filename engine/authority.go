package engine

// SPEC §3.2 Who may set a field: authority, rank and stale_after; the
// priority strategy is this rule applied to several proposals.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// decideField settles the proposals for one field (SPEC §3.2–3.4).
func (rc *recCtx) decideField(f *nhisync.Field, ps []*prop) error {
	g := rc.goldenOf(f)
	var gv nhisync.Value
	if g != nil {
		gv = g.Value
	}
	// A new change from a system ends its drift hold.
	for _, p := range ps {
		p.fs.Report = nil
	}
	// Who may set the field. Proposals from systems that may not are heard
	// once the field is decided, against the value that then stands.
	var valid, notAllowed []*prop
	for _, p := range ps {
		if f.Allowed(p.System) {
			valid = append(valid, p)
		} else {
			notAllowed = append(notAllowed, p)
		}
	}
	if err := rc.decideAllowed(f, g, gv, valid); err != nil {
		return err
	}
	final := goldenValue(rc.goldenOf(f))
	for _, p := range notAllowed {
		if p.Value.Problem() != "" {
			// Malformed data (a row cut short, an object for text) is not
			// a value to refuse and repair over: it is quarantined, like
			// any other, and the system is left as it is.
			rule, reason, err := rc.validate(f, p)
			if err != nil {
				return err
			}
			if err := rc.quarantine(f, p, rule, reason); err != nil {
				return err
			}
			continue
		}
		if p.Value.Equal(final) {
			rc.agree(f, p)
			continue
		}
		rc.refuse(f, p, final, fmt.Sprintf("authority: %s may not set %s (authority: %s)", p.System, f.Name, strings.Join(f.Authority, ", ")))
	}
	return nil
}

// priority applies SPEC §3.2: accepted when the golden value is empty,
// the proposer ranks at least as high as the setter, or the value is
// stale; among several, the highest rank wins, then the latest.
func (rc *recCtx) priority(f *nhisync.Field, g *nhisync.Golden, ps []*prop) {
	gv := goldenValue(g)
	var eligible []*prop
	for _, p := range ps {
		switch {
		case g == nil || gv.IsZero():
		case p.rank <= f.Rank(g.Source):
		case rc.stale(f, g):
		default:
			rc.refuse(f, p, gv, fmt.Sprintf("authority: %s ranks below %s, which set the value", p.System, g.Source))
			continue
		}
		eligible = append(eligible, p)
	}
	if len(eligible) == 0 {
		return
	}
	slices.SortStableFunc(eligible, byPriority)
	win := eligible[0]
	var rival *prop
	for _, p := range eligible[1:] {
		if !p.Value.Equal(win.Value) {
			rival = p
			break
		}
	}
	reason := "priority"
	switch {
	case rival != nil && rival.rank > win.rank:
		reason = fmt.Sprintf("priority: %s ranks above %s", win.System, rival.System)
	case rival != nil:
		reason = fmt.Sprintf("priority: equal rank, %s's change is the latest", win.System)
	case g == nil || gv.IsZero():
		reason = nhisync.ReasonFirstValue
	case win.rank < f.Rank(g.Source):
		reason = fmt.Sprintf("priority: %s ranks above %s", win.System, g.Source)
	case win.rank > f.Rank(g.Source):
		reason = fmt.Sprintf("stale_after: %s had not been seen holding the value for %s", g.Source, f.StaleAfter)
	case win.System == g.Source:
		reason = fmt.Sprintf("priority: %s, which set the value, changed it", win.System)
	default:
		reason = fmt.Sprintf("priority: %s ranks as high as %s, which set the value", win.System, g.Source)
	}
	rc.settle(f, win, gv, reason, eligible, func(p *prop) string {
		return fmt.Sprintf("priority: %s's change wins (%s)", win.System, rankWord(p.rank, win.rank))
	})
}

func rankWord(loser, winner int) string {
	if loser > winner {
		return "higher rank"
	}
	return "equal rank, later change"
}

// stale reports whether the golden value's setter has not been seen
// holding it within the field's stale_after.
func (rc *recCtx) stale(f *nhisync.Field, g *nhisync.Golden) bool {
	if f.StaleAfter <= 0 || g == nil {
		return false
	}
	return rc.d.now.Sub(HeldSince(rc.rec, f.Name, rc.d.systems)) > f.StaleAfter
}

// HeldSince returns when the setter of rec's golden value of field was
// last seen holding it (SPEC §3.2): the value is stale once that is longer
// ago than the field's stale_after. A person's value is held since it was
// set; a system's since that system last read it holding the value, or,
// when the system no longer holds it, since it changed or vanished.
// systems is each system's remembered state (nhisync.Store.Systems); the
// zero time is returned when the field has no golden value.
func HeldSince(rec *nhisync.Record, field string, systems map[string]*nhisync.SystemState) time.Time {
	g := rec.Fields[field]
	if g == nil {
		return time.Time{}
	}
	held := g.At
	if nhisync.IsPerson(g.Source) {
		return held
	}
	var l *nhisync.Link
	for _, x := range rec.Links {
		if x.System == g.Source && (l == nil || x.Status == nhisync.LinkLive) {
			l = x
		}
	}
	switch {
	case l == nil:
	case l.Status == nhisync.LinkGone:
		held = l.GoneAt
	case l.Asserted(field).Equal(g.Value):
		held = l.SeenAt
		if st := systems[g.Source]; st != nil && st.LastReadAt.After(held) {
			held = st.LastReadAt
		}
	default:
		if fs := l.Fields[field]; fs != nil && !fs.Since.IsZero() {
			held = fs.Since
		}
	}
	return held
}
