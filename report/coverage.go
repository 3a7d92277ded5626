package report

import (
	"context"
	"fmt"
	"strings"

	"github.com/nhisync/nhisync"
)

// coverage says how much of the estate each system holds: per system, the
// golden records of its kind it lacks; records no registry knows
// (unmatched: the shadow-IT case) and ones matching several golden
// records (disputed); and fields no system gives a value for.
func (r *Reporter) coverage(ctx context.Context) ([]*Finding, error) {
	type kindCount struct {
		total int
		held  map[string]int    // system → live records
		lacks map[string]*tally // system → the records it lacks
		empty map[string]*tally // field → the records with no value anywhere
	}
	counts := map[string]*kindCount{}
	err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		if retired(rec.Value(LifecycleField)) {
			return nil // a system may rightly have dropped it
		}
		c := counts[k.Name]
		if c == nil {
			c = &kindCount{held: map[string]int{}, lacks: map[string]*tally{}, empty: map[string]*tally{}}
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
				add(c.lacks, name, rec.Key)
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
				add(c.empty, field, rec.Key)
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
			if lacks := c.lacks[name]; lacks != nil {
				f := finding(TypeSystemCoverage, kn, "", name, "",
					"%s holds %d of %d %s records; it lacks %d (%s)", name, c.held[name], c.total, kn, lacks.n, lacks.String())
				f.Count = lacks.n
				out = append(out, f)
			}
		}
		k := r.cfg.Kinds[kn]
		for _, field := range k.FieldNames {
			if keys := c.empty[field]; keys != nil {
				f := finding(TypeEmptyField, kn, "", "", field,
					"%s has no value in any system for %d of %d %s records (%s)", field, keys.n, c.total, kn, keys.String())
				f.Count = keys.n
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

// tally counts records and keeps the first few keys as examples, so
// coverage needs memory per system and field, not per record.
type tally struct {
	n       int
	samples []string
}

const samples = 3

func add(m map[string]*tally, k, key string) {
	t := m[k]
	if t == nil {
		t = &tally{}
		m[k] = t
	}
	t.n++
	if len(t.samples) < samples {
		t.samples = append(t.samples, key)
	}
}

// String names the examples and how many more there are.
func (t *tally) String() string {
	s := strings.Join(t.samples, ", ")
	if more := t.n - len(t.samples); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
