package report

import (
	"context"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// Field and kind names the reports recognise. A report whose fields a
// config does not have finds nothing of that sort.
const (
	// OwnerField names who answers for an NHI.
	OwnerField = "owner"
	// ApplicationField names the application an NHI serves.
	ApplicationField = "application"
	// LifecycleField holds an NHI's (or a person's, an application's) state.
	LifecycleField = nhisync.FieldLifecycle
	// PersonKind and ApplicationKind are the kinds owner and application
	// values are looked up in, unless the field is a ref naming another.
	PersonKind      = "person"
	ApplicationKind = "application"
)

// retiredStates are lifecycle values that mean a person, an application
// or an NHI is gone or going.
var retiredStates = []string{nhisync.LifecycleDecommissioned, "retired", "departed", "terminated", "deleted", "inactive", "disabled", "offboarded", "left"}

// retired reports whether a lifecycle value means gone.
func retired(v nhisync.Value) bool {
	return slices.Contains(retiredStates, strings.ToLower(v.Text()))
}

// target returns the kind a field's values name: its ref's to, else the
// conventional kind, when configured with a single match field.
func (r *Reporter) target(f *nhisync.Field, conventional string) *nhisync.Kind {
	name := conventional
	if f.To != "" {
		name = f.To
	}
	k := r.cfg.Kinds[name]
	if k == nil || len(k.Match) != 1 {
		return nil
	}
	return k
}

// lookup finds the record of kind k whose single match value is v (nil
// when there is none).
func (r *Reporter) lookup(ctx context.Context, cache map[string]*nhisync.Record, k *nhisync.Kind, v string) (*nhisync.Record, error) {
	key := k.Name + "\x00" + nhisync.NormalizeKey([]string{v})
	if rec, ok := cache[key]; ok {
		return rec, nil
	}
	rec, err := r.store.RecordByKey(ctx, k.Name, nhisync.NormalizeKey([]string{v}))
	if nhisync.ErrorCode(err) == nhisync.ENOTFOUND {
		rec, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	cache[key] = rec
	return rec, nil
}

// orphans lists NHIs nobody answers for (SPEC §6, OWASP NHI1): no owner
// in any system; an owner who is not a known person, or whose person
// record is retired; an application decommissioned while the NHI stays
// active. Person and application records themselves are not checked.
func (r *Reporter) orphans(ctx context.Context) ([]*Finding, error) {
	var out []*Finding
	cache := map[string]*nhisync.Record{}
	err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		if k.Name == PersonKind || k.Name == ApplicationKind {
			return nil
		}
		if retired(rec.Value(LifecycleField)) {
			return nil // already offboarded
		}
		if f := k.Field(OwnerField); f != nil {
			fs, err := r.ownerFindings(ctx, cache, rec, k, f)
			if err != nil {
				return err
			}
			out = append(out, fs...)
		}
		if f := k.Field(ApplicationField); f != nil && !rec.Value(ApplicationField).IsZero() {
			if ak := r.target(f, ApplicationKind); ak != nil && ak.Field(LifecycleField) != nil {
				app := rec.Value(ApplicationField).Text()
				a, err := r.lookup(ctx, cache, ak, app)
				if err != nil {
					return err
				}
				if a != nil && retired(a.Value(LifecycleField)) {
					state := rec.Value(LifecycleField).Text()
					if state == "" {
						state = "not retired"
					}
					out = append(out, finding(TypeRetiredApplication, rec.Kind, rec.Key, "", ApplicationField,
						"application %s is %s, but the NHI is still %s: retire it or move it to a live application",
						app, a.Value(LifecycleField).Text(), state))
				}
			}
		}
		return nil
	})
	return out, err
}

func (r *Reporter) ownerFindings(ctx context.Context, cache map[string]*nhisync.Record, rec *nhisync.Record, k *nhisync.Kind, f *nhisync.Field) ([]*Finding, error) {
	owner := rec.Value(OwnerField)
	if owner.IsZero() {
		// The golden value may be empty while a system holds one that
		// is quarantined or in conflict: that is an owner, not none.
		var held []string
		for _, l := range liveLinks(rec) {
			if v := l.Asserted(OwnerField); !v.IsZero() {
				held = append(held, l.System+" "+show(f, v))
			}
		}
		if len(held) > 0 {
			return nil, nil
		}
		var systems []string
		for _, name := range r.cfg.SystemNames {
			if s := r.cfg.Systems[name]; s.Kind == rec.Kind && s.Reads(OwnerField) {
				systems = append(systems, name)
			}
		}
		return []*Finding{finding(TypeNoOwner, rec.Kind, rec.Key, "", OwnerField,
			"no system names an owner (read from %s); assign one in an authoritative system", strings.Join(systems, ", "))}, nil
	}
	pk := r.target(f, PersonKind)
	if pk == nil || owner.IsSet() {
		return nil, nil
	}
	p, err := r.lookup(ctx, cache, pk, owner.Text())
	if err != nil {
		return nil, err
	}
	switch {
	case p == nil:
		return []*Finding{finding(TypeUnknownOwner, rec.Kind, rec.Key, "", OwnerField,
			"owner %s is not a known %s record", show(f, owner), pk.Name)}, nil
	case retired(p.Value(LifecycleField)):
		return []*Finding{finding(TypeDepartedOwner, rec.Kind, rec.Key, "", OwnerField,
			"owner %s is %s; hand the NHI to a current owner or retire it", show(f, owner), p.Value(LifecycleField).Text())}, nil
	}
	return nil, nil
}
