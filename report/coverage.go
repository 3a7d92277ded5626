package report

import (
	"context"
	"fmt"

	"github.com/nhisync/nhisync"
)

// coverage says how much of the estate each system holds: per system, the
// golden records of its kind it lacks; records no registry knows
// (unmatched: the shadow-IT case) and ones matching several golden
// records (disputed); and fields no system gives a value for.
func (r *Reporter) coverage(ctx context.Context) ([]*Finding, error) {
	type kindCount struct {
		total int
		held  map[string]int      // system → live records
		lacks map[string][]string // system → keys it lacks
		empty map[string][]string // field → keys with no value anywhere
	}
	counts := map[string]*kindCount{}
	err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		if retired(rec.Value(LifecycleField)) {
			return nil // a system may rightly have dropped it
		}
		c := counts[k.Name]
		if c == nil {
			c = &kindCount{held: map[string]int{}, lacks: map[string][]string{}, empty: map[string][]string{}}
			counts[k.Name] = c
		}
		c.total++
		for _, name := range r.cfg.SystemNames {
			sys := r.cfg.Systems[name]
			if sys.Kind != k.Name || !sys.Direction.Reads() {
				continue
			}
			if l := rec.Link(name); l != nil && l.Status == nhisync.LinkLive {
				c.held[name]++
			} else {
				c.lacks[name] = append(c.lacks[name], rec.Key)
			}
		}
		for _, field := range k.FieldNames {
			if !rec.Value(field).IsZero() || !r.mapped(k.Name, field) {
				continue
			}
			held := false
			for _, l := range liveLinks(rec) {
				if !l.Asserted(field).IsZero() {
					held = true
				}
			}
			if !held {
				c.empty[field] = append(c.empty[field], rec.Key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.where != nil {
		return nil, nil // every coverage finding is about a system, a field or a record with no golden record
	}
	var out []*Finding
	for _, kn := range r.cfg.KindNames {
		c := counts[kn]
		if c == nil {
			continue
		}
		for _, name := range r.cfg.SystemNames {
			if lacks := c.lacks[name]; len(lacks) > 0 {
				f := finding(TypeSystemCoverage, kn, "", name, "",
					"%s holds %d of %d %s records; it lacks %d (%s)", name, c.held[name], c.total, kn, len(lacks), sample(lacks, 3))
				f.Count = len(lacks)
				out = append(out, f)
			}
		}
		k := r.cfg.Kinds[kn]
		for _, field := range k.FieldNames {
			if keys := c.empty[field]; len(keys) > 0 {
				f := finding(TypeEmptyField, kn, "", "", field,
					"%s has no value in any system for %d of %d %s records (%s)", field, len(keys), c.total, kn, sample(keys, 3))
				f.Count = len(keys)
				out = append(out, f)
			}
		}
	}
	err = r.store.ScanLinks(ctx, r.opt.System, []nhisync.LinkStatus{nhisync.LinkUnmatched, nhisync.LinkDisputed}, func(l *nhisync.Link) error {
		sys := r.cfg.Systems[l.System]
		if sys == nil {
			return nil
		}
		k := r.cfg.Kinds[sys.Kind]
		if k == nil {
			return nil
		}
		vals := make([]string, len(k.Match))
		for i, m := range k.Match {
			vals[i] = l.Asserted(m).Text()
		}
		key := nhisync.DisplayKey(vals)
		if l.Status == nhisync.LinkDisputed {
			out = append(out, finding(TypeDisputed, k.Name, key, l.System, "",
				"%s record %s matches more than one golden record; it is quarantined until a person sorts it out", l.System, l.ExternalID))
			return nil
		}
		out = append(out, finding(TypeUnmatched, k.Name, key, l.System, "",
			"only %s knows this NHI (its id there: %s, first seen %s), and %s may not create records: %s", l.System, l.ExternalID,
			l.FirstSeen.Format("2006-01-02"), l.System, createHint(k, l.System)))
		return nil
	})
	return out, err
}

// createHint tells how an unmatched record becomes known.
func createHint(k *nhisync.Kind, system string) string {
	return fmt.Sprintf("register it in %s or add %s to kinds.%s.create_from", joinOr(k.CreateFrom, "a create_from system"), system, k.Name)
}

func joinOr(list []string, none string) string {
	switch len(list) {
	case 0:
		return none
	case 1:
		return list[0]
	}
	s := list[0]
	for _, x := range list[1 : len(list)-1] {
		s += ", " + x
	}
	return s + " or " + list[len(list)-1]
}

// mapped reports whether some system reads field of kind.
func (r *Reporter) mapped(kind, field string) bool {
	for _, name := range r.cfg.SystemNames {
		if s := r.cfg.Systems[name]; s.Kind == kind && s.Reads(field) {
			return true
		}
	}
	return false
}
