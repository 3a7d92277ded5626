package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// Why a system holds another value than the golden one (DriftItem.Reason).
// The reasons come from the same rules a pass follows when it plans writes
// (holdBack, approvals, the guard, the outbox), so what is listed is what
// is done.
const (
	DriftHeld        = "held"        // a write waits for a person's approval (approve_to)
	DriftRejected    = "rejected"    // a person rejected the write of this value
	DriftGuard       = "guard"       // the blast-radius guard holds the pass's writes to the system
	DriftQuarantined = "quarantined" // the system's value failed validation and was not repaired
	DriftConflicted  = "conflicted"  // an open conflict holds writes of the field
	DriftReported    = "reported"    // refused, and the system has on_refused: report
	DriftFailing     = "failing"     // the write was tried and failed; it retries with backoff
	DriftQueued      = "queued"      // the write is queued and not sent yet (system paused or not reached)
	DriftReadOnly    = "read-only"   // nhisync may not write the field to the system
	DriftIdentifies  = "identifies"  // a match field naming the record there (no id column): never rewritten
	DriftBehind      = "behind"      // no write planned yet: the next pass plans it
)

// DriftReasons lists every reason, in the order summaries print them.
var DriftReasons = []string{DriftHeld, DriftRejected, DriftGuard, DriftQuarantined, DriftConflicted, DriftReported,
	DriftFailing, DriftQueued, DriftReadOnly, DriftIdentifies, DriftBehind}

// DriftItem is one field of one golden record that a live system holds
// differently from the golden value, and why it stays so. Values of
// sensitive fields are given as the audit log keeps them (a hash).
type DriftItem struct {
	Kind   string        `json:"kind"`
	Record string        `json:"record"`
	Field  string        `json:"field"`
	System string        `json:"system"`
	Value  nhisync.Value `json:"value"`
	Golden nhisync.Value `json:"golden"`
	Reason string        `json:"reason"`
	// Detail says more where there is more to say: the approval waited
	// for, the error of a failing write.
	Detail string `json:"detail,omitempty"`
	// RecordID identifies the golden record (not printed).
	RecordID int64 `json:"-"`
}

// Drift lists, from stored state alone (no system is read), every field
// of every golden record that a live linked system holds differently from
// the golden value, with the reason it is left so. Records come in ID
// order; within a record, systems in config order, fields in mapping
// order. Storage failures are EINTERNAL.
func (e *Engine) Drift(ctx context.Context) ([]DriftItem, error) {
	guards := map[int64]bool{}
	pending, err := e.store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		return nil, err
	}
	for _, a := range pending {
		if a.Guard {
			guards[a.ID] = true
		}
	}
	items := []DriftItem{}
	err = e.store.ScanRecords(ctx, "", func(rec *nhisync.Record) error {
		items = append(items, e.recordDrift(rec, guards)...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Records missing from a system while the guard holds their
	// retirement, or after a person rejected it (retire.go).
	rejected, err := e.store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusRejected})
	if err != nil {
		return nil, err
	}
	held, err := e.heldVanishingDrift(ctx, append(slices.Clip(pending), rejected...))
	if err != nil {
		return nil, err
	}
	if len(held) > 0 {
		items = append(items, held...)
		slices.SortStableFunc(items, func(a, b DriftItem) int { return cmp.Compare(a.RecordID, b.RecordID) })
	}
	return items, nil
}

// recordDrift lists the drift of one record; guards holds the IDs of
// pending guard approvals.
func (e *Engine) recordDrift(rec *nhisync.Record, guards map[int64]bool) []DriftItem {
	k := e.cfg.Kinds[rec.Kind]
	if k == nil {
		return nil
	}
	links := slices.Clone(rec.Links)
	slices.SortStableFunc(links, func(a, b *nhisync.Link) int {
		return slices.Index(e.cfg.SystemNames, a.System) - slices.Index(e.cfg.SystemNames, b.System)
	})
	var out []DriftItem
	for _, l := range links {
		if l.Status != nhisync.LinkLive {
			continue
		}
		sys := e.cfg.Systems[l.System]
		if sys == nil || sys.Kind != rec.Kind {
			continue
		}
		seen := map[string]bool{}
		for _, m := range sys.Fields {
			field := m.Field
			if seen[field] || k.Field(field) == nil || (!sys.Reads(field) && !sys.Writes(field)) {
				continue
			}
			seen[field] = true
			fs := l.Fields[field]
			cur, gv := holding(sys, fs, field), rec.Value(field)
			if cur.Equal(gv) {
				continue
			}
			reason, detail := driftReason(rec, k, sys, l, fs, field, gv, guards)
			// Never a sensitive value itself, nor an unkeyed hash of it.
			cur, gv = e.Redact(rec.Kind, field, cur), e.Redact(rec.Kind, field, gv)
			out = append(out, DriftItem{Kind: rec.Kind, Record: rec.Key, RecordID: rec.ID, Field: field, System: sys.Name, Value: cur, Golden: gv, Reason: reason, Detail: detail})
		}
	}
	return out
}

// driftReason says why a system holding another value than gv is left
// so: first what holdBack says (the rule a pass plans by), then the write
// queued for it, then what keeps a write from being planned.
func driftReason(rec *nhisync.Record, k *nhisync.Kind, sys *nhisync.System, l *nhisync.Link, fs *nhisync.FieldState, field string, gv nhisync.Value, guards map[int64]bool) (reason, detail string) {
	if !sys.Writes(field) {
		if sys.Direction.Writes() {
			return DriftReadOnly, "mapped for reading only"
		}
		return DriftReadOnly, "direction: read"
	}
	switch why := holdBack(rec, k, sys, fs, field); why {
	case "":
	case "conflict":
		if c := openConflict(rec, field); c != nil {
			return DriftConflicted, fmt.Sprintf("conflict %d", c.ID)
		}
		return DriftConflicted, ""
	case "quarantined":
		for _, q := range rec.Quarantine {
			if q.Status == nhisync.StatusOpen && q.Field == field && q.System == sys.Name {
				return DriftQuarantined, fmt.Sprintf("quarantine %d (%s)", q.ID, q.Rule)
			}
		}
		return DriftQuarantined, ""
	case "drift":
		return DriftReported, "on_refused: report"
	default:
		if strings.HasPrefix(why, "differs (identifies") {
			return DriftIdentifies, sys.Name + " has no id column"
		}
		return why, ""
	}
	for _, o := range rec.Outbox {
		if o.System != sys.Name || o.ExternalID != l.ExternalID || o.Field != field || o.Create {
			continue
		}
		switch {
		case o.Status == nhisync.OutboxHeld && guards[o.ApprovalID]:
			return DriftGuard, fmt.Sprintf("guard approval %d", o.ApprovalID)
		case o.Status == nhisync.OutboxHeld:
			return DriftHeld, fmt.Sprintf("approval %d", o.ApprovalID)
		case o.Attempts > 0:
			return DriftFailing, fmt.Sprintf("%d attempts; last: %s", o.Attempts, o.LastError)
		default:
			return DriftQueued, "the next sync sends it"
		}
	}
	for _, a := range rec.Approvals {
		if !a.Guard && a.Field == field && a.System == sys.Name && a.Status == nhisync.StatusRejected && a.Value.Equal(gv) {
			return DriftRejected, fmt.Sprintf("approval %d rejected by %s", a.ID, a.DecidedBy)
		}
	}
	return DriftBehind, "the next sync plans a write"
}

// DriftSummary counts drift items: how many fields differ in which
// systems, and why.
type DriftSummary struct {
	Fields   int            `json:"fields"`
	Systems  []string       `json:"systems"`
	ByReason map[string]int `json:"by_reason"`
	// BySystem counts the items of each system.
	BySystem map[string]int `json:"by_system"`
}

// SummarizeDrift counts items; systems come in config order.
func (e *Engine) SummarizeDrift(items []DriftItem) DriftSummary {
	s := DriftSummary{Fields: len(items), Systems: []string{}, ByReason: map[string]int{}, BySystem: map[string]int{}}
	for _, it := range items {
		s.ByReason[it.Reason]++
		s.BySystem[it.System]++
	}
	for _, name := range e.cfg.SystemNames {
		if s.BySystem[name] > 0 {
			s.Systems = append(s.Systems, name)
		}
	}
	return s
}
