package report

import (
	"context"

	"github.com/nhisync/nhisync"
)

// drift lists every system value that differs from the golden value now,
// with why it is not fixed yet, as the engine decides it.
func (r *Reporter) drift(ctx context.Context) ([]*Finding, error) {
	if r.opt.Drift == nil {
		return nil, nhisync.Errorf(nhisync.EINTERNAL, "report drift needs the engine's drift rule")
	}
	var out []*Finding
	err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		for _, d := range r.opt.Drift(rec) {
			f := k.Field(d.Field)
			out = append(out, finding(TypeDrift, rec.Kind, rec.Key, d.System, d.Field,
				"%s holds %s %s, golden is %s: %s", d.System, d.Field, show(f, d.Held), show(f, d.Golden), d.Why))
		}
		return nil
	})
	return out, err
}
