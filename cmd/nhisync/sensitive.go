package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// Listings never print the value of a sensitive field (sensitive: true):
// they print nhisync.Redacted instead, in tables and in JSON alike. A
// steward who must see one passes --reveal, which is itself audited
// (sensitive.revealed, with who and what).

// revealFlag adds --reveal to a command that prints field values.
func revealFlag(cmd *cobra.Command, reveal *bool) {
	cmd.Flags().BoolVar(reveal, "reveal", false, "print the values of sensitive fields in clear (audited: sensitive.revealed with who and what)")
}

// revealed audits a --reveal: who printed sensitive values, with which
// command, about which record (recordID 0 for a listing). The store signs
// the entry's checkpoint in the same transaction.
func (a *app) revealed(ctx context.Context, what string, kind string, recordID int64, record, field string) error {
	who, err := actor("")
	if err != nil {
		return err
	}
	e := &nhisync.AuditEntry{Time: time.Now().UTC(), Actor: nhisync.Person(who), Action: nhisync.ActSensitiveRevealed,
		Kind: kind, RecordID: recordID, Record: record, Field: field, Reason: what + " --reveal"}
	return a.store.Commit(ctx, &nhisync.Batch{Audit: []*nhisync.AuditEntry{e}})
}

// sensitive reports whether field of kind is sensitive.
func (a *app) sensitive(kind, field string) bool {
	if k := a.cfg.Kinds[kind]; k != nil {
		if f := k.Field(field); f != nil {
			return f.Sensitive
		}
	}
	return false
}

// hide returns v, or nhisync.Redacted in its place when field of kind is
// sensitive and v is not empty.
func (a *app) hide(kind, field string, v nhisync.Value) nhisync.Value {
	if v.IsZero() || !a.sensitive(kind, field) {
		return v
	}
	return nhisync.Str(nhisync.Redacted)
}

// hideRecord redacts the sensitive golden values of rec.
func (a *app) hideRecord(rec *nhisync.Record) {
	for name, g := range rec.Fields {
		if g != nil {
			g.Value = a.hide(rec.Kind, name, g.Value)
		}
	}
}

func (a *app) hideConflict(c *nhisync.Conflict) {
	c.Golden = a.hide(c.Kind, c.Field, c.Golden)
	c.Resolution = a.hide(c.Kind, c.Field, c.Resolution)
	for i := range c.Proposals {
		c.Proposals[i].Value = a.hide(c.Kind, c.Field, c.Proposals[i].Value)
	}
}

func (a *app) hideQuarantine(q *nhisync.QuarantineItem) {
	if q.Field != "" {
		q.Value = a.hide(q.Kind, q.Field, q.Value)
	}
}

func (a *app) hideApproval(ap *nhisync.Approval) {
	ap.Value = a.hide(ap.Kind, ap.Field, ap.Value)
	ap.Old = a.hide(ap.Kind, ap.Field, ap.Old)
}

// hideExplanation redacts every value of an explained sensitive field.
func (a *app) hideExplanation(x *engine.Explanation) {
	if !a.sensitive(x.Kind, x.Field) {
		return
	}
	hide := func(v nhisync.Value) nhisync.Value { return a.hide(x.Kind, x.Field, v) }
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
		a.hideConflict(x.Conflict)
	}
	for _, q := range x.Quarantine {
		a.hideQuarantine(q)
	}
	for _, ap := range x.Approvals {
		a.hideApproval(ap)
	}
	for _, w := range x.Writes {
		w.Old, w.New = hide(w.Old), hide(w.New)
		for f, v := range w.Values {
			w.Values[f] = a.hide(w.Kind, f, v)
		}
	}
}

// hideSummary redacts the sensitive values of a pass's decisions and
// writes before they are printed. They are copies: the pass's own entries
// and writes are left as they are.
func (a *app) hideSummary(sum *engine.Summary) {
	for i, ev := range sum.Events {
		if a.sensitive(ev.Kind, ev.Field) {
			c := *ev
			c.Old, c.New = a.hide(c.Kind, c.Field, c.Old), a.hide(c.Kind, c.Field, c.New)
			sum.Events[i] = &c
		}
	}
	for i, w := range sum.Writes {
		c := *w
		c.Old, c.New = a.hide(c.Kind, c.Field, c.Old), a.hide(c.Kind, c.Field, c.New)
		if c.Values != nil {
			c.Values = make(map[string]nhisync.Value, len(w.Values))
			for f, v := range w.Values {
				c.Values[f] = a.hide(c.Kind, f, v)
			}
		}
		sum.Writes[i] = &c
	}
}
