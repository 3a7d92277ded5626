package engine

import (
	"github.com/nhisync/nhisync"
)

// Listings never show the value of a sensitive field (sensitive: true):
// every command and API handler that prints golden values, assertions or
// open items passes them through these methods first, which put
// nhisync.Redacted in place of each non-empty sensitive value. They change
// the item they are given; give them copies of anything still in use.

// Sensitive reports whether field of kind is sensitive.
func (e *Engine) Sensitive(kind, field string) bool {
	if k := e.cfg.Kinds[kind]; k != nil {
		if f := k.Field(field); f != nil {
			return f.Sensitive
		}
	}
	return false
}

// Redact returns v, or nhisync.Redacted in its place when field of kind is
// sensitive and v is not empty.
func (e *Engine) Redact(kind, field string, v nhisync.Value) nhisync.Value {
	if v.IsZero() || !e.Sensitive(kind, field) {
		return v
	}
	return nhisync.Str(nhisync.Redacted)
}

// RedactRecord redacts the sensitive golden values of rec (its links and
// open items too).
func (e *Engine) RedactRecord(rec *nhisync.Record) {
	for name, g := range rec.Fields {
		if g != nil {
			g.Value = e.Redact(rec.Kind, name, g.Value)
		}
	}
	for _, l := range rec.Links {
		for name, fs := range l.Fields {
			if fs != nil && e.Sensitive(rec.Kind, name) {
				fs.Asserted = e.Redact(rec.Kind, name, fs.Asserted)
				fs.Shadow = e.Redact(rec.Kind, name, fs.Shadow)
				if fs.Report != nil {
					r := e.Redact(rec.Kind, name, *fs.Report)
					fs.Report = &r
				}
			}
		}
	}
	for _, c := range rec.Conflicts {
		e.RedactConflict(c)
	}
	for _, q := range rec.Quarantine {
		e.RedactQuarantine(q)
	}
	for _, a := range rec.Approvals {
		e.RedactApproval(a)
	}
	for _, w := range rec.Outbox {
		e.RedactWrite(w)
	}
}

// RedactConflict redacts a conflict on a sensitive field.
func (e *Engine) RedactConflict(c *nhisync.Conflict) {
	c.Golden = e.Redact(c.Kind, c.Field, c.Golden)
	c.Resolution = e.Redact(c.Kind, c.Field, c.Resolution)
	for i := range c.Proposals {
		c.Proposals[i].Value = e.Redact(c.Kind, c.Field, c.Proposals[i].Value)
	}
}

// RedactQuarantine redacts a quarantined value of a sensitive field.
func (e *Engine) RedactQuarantine(q *nhisync.QuarantineItem) {
	if q.Field != "" {
		q.Value = e.Redact(q.Kind, q.Field, q.Value)
	}
}

// RedactApproval redacts a held write of a sensitive field.
func (e *Engine) RedactApproval(a *nhisync.Approval) {
	a.Value = e.Redact(a.Kind, a.Field, a.Value)
	a.Old = e.Redact(a.Kind, a.Field, a.Old)
}

// RedactWrite redacts a queued write's sensitive values.
func (e *Engine) RedactWrite(w *nhisync.OutboxWrite) {
	w.Old, w.New = e.Redact(w.Kind, w.Field, w.Old), e.Redact(w.Kind, w.Field, w.New)
	if w.Values != nil {
		vals := make(map[string]nhisync.Value, len(w.Values))
		for f, v := range w.Values {
			vals[f] = e.Redact(w.Kind, f, v)
		}
		w.Values = vals
	}
}

// RedactExplanation redacts every value of an explained sensitive field.
func (e *Engine) RedactExplanation(x *Explanation) {
	if !e.Sensitive(x.Kind, x.Field) {
		return
	}
	hide := func(v nhisync.Value) nhisync.Value { return e.Redact(x.Kind, x.Field, v) }
	if x.Golden != nil {
		g := *x.Golden
		g.Value = hide(g.Value)
		x.Golden = &g
	}
	for i := range x.Assertions {
		x.Assertions[i].Value = hide(x.Assertions[i].Value)
		x.Assertions[i].Shadow = hide(x.Assertions[i].Shadow)
	}
	x.Recomputed.Value = hide(x.Recomputed.Value)
	if x.Conflict != nil {
		e.RedactConflict(x.Conflict)
	}
	for _, q := range x.Quarantine {
		e.RedactQuarantine(q)
	}
	for _, a := range x.Approvals {
		e.RedactApproval(a)
	}
	for _, w := range x.Writes {
		e.RedactWrite(w)
	}
}

// RedactSummary redacts the sensitive values of a pass's decisions and
// writes before they are shown. It replaces them with redacted copies:
// the pass's own entries and writes are left as they are.
func (e *Engine) RedactSummary(sum *Summary) {
	for i, ev := range sum.Events {
		if e.Sensitive(ev.Kind, ev.Field) {
			c := *ev
			c.Old, c.New = e.Redact(c.Kind, c.Field, c.Old), e.Redact(c.Kind, c.Field, c.New)
			sum.Events[i] = &c
		}
	}
	for i, w := range sum.Writes {
		c := *w
		e.RedactWrite(&c)
		sum.Writes[i] = &c
	}
}
