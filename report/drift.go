package report

import (
	"context"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// driftSeverity ranks why a value stays wrong: what nothing will fix
// without a person is worse than what the next pass writes.
var driftSeverity = map[string]Severity{
	engine.DriftRejected: High, engine.DriftFailing: High, engine.DriftGuard: High,
	engine.DriftBehind: Low, engine.DriftQueued: Low, engine.DriftIdentifies: Low,
}

// drift lists every system value that differs from the golden value now,
// with why it is not fixed yet, as the engine decides it (engine.Drift:
// the planner's holdBack rule, approvals, the guard, the outbox).
func (r *Reporter) drift(ctx context.Context) ([]*Finding, error) {
	if r.opt.Drift == nil {
		return nil, nhisync.Errorf(nhisync.EINTERNAL, "report drift needs the engine's drift rule")
	}
	items, err := r.opt.Drift(ctx)
	if err != nil {
		return nil, err
	}
	// The records the options select (kind, --where).
	keep := map[int64]*nhisync.Kind{}
	if err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		keep[rec.ID] = k
		return nil
	}); err != nil {
		return nil, err
	}
	var out []*Finding
	for _, it := range items {
		k := keep[it.RecordID]
		if k == nil {
			continue
		}
		f := k.Field(it.Field)
		why := it.Reason
		if it.Detail != "" {
			why += ": " + it.Detail
		}
		fd := finding(TypeDrift, it.Kind, it.Record, it.System, it.Field,
			"%s holds %s %s, golden is %s; not fixed: %s", it.System, it.Field, show(f, it.Value), show(f, it.Golden), why)
		if s, ok := driftSeverity[it.Reason]; ok {
			fd.Severity = s
		}
		out = append(out, fd)
	}
	return out, nil
}
