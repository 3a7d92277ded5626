package report

import (
	"context"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// Fields the hygiene report reads, where a kind has them.
const (
	// UsedByField lists the applications that use an NHI (a set).
	UsedByField = "used_by"
	// EnvironmentField is where an NHI is used: a set, or a single
	// value that systems may disagree about.
	EnvironmentField = "environment"
	// InteractiveField (bool) marks an NHI a person signs in with.
	InteractiveField = "interactive"
)

// hygiene lists risky use of NHIs: one NHI used by several applications
// (OWASP NHI9), one NHI across environments (NHI8), an NHI a person uses
// interactively (NHI10), and records matching the configured
// overprivileged check (NHI5).
func (r *Reporter) hygiene(ctx context.Context) ([]*Finding, error) {
	over := map[string]*rule.Filter{}
	if expr := r.cfg.Reports.Overprivileged; expr != "" {
		for _, k := range r.cfg.Reports.OverprivilegedKinds {
			f, err := rule.CompileFilter(r.cfg.Kinds[k], expr)
			if err != nil {
				return nil, err
			}
			over[k] = f
		}
	}
	var out []*Finding
	err := r.records(ctx, func(rec *nhisync.Record, k *nhisync.Kind) error {
		if retired(rec.Value(LifecycleField)) {
			return nil
		}
		if f := k.Field(UsedByField); f != nil {
			if apps := rec.Value(UsedByField).Elems(); len(apps) > 1 {
				out = append(out, finding(TypeReuse, rec.Kind, rec.Key, "", UsedByField,
					"one NHI is used by %d applications (%s); give each application its own", len(apps), strings.Join(apps, ", ")))
			}
		}
		if f := k.Field(EnvironmentField); f != nil && !f.Sensitive {
			envs := slices.Clone(rec.Value(EnvironmentField).Elems())
			if !f.Type.IsSet() {
				for _, v := range append([]nhisync.Value{rec.Value(EnvironmentField)}, asserted(rec, EnvironmentField)...) {
					if !v.IsZero() {
						envs = append(envs, v.Text())
					}
				}
			}
			envs = distinctFold(envs)
			if len(envs) > 1 {
				out = append(out, finding(TypeCrossEnvironment, rec.Kind, rec.Key, "", EnvironmentField,
					"one NHI is used in %d environments (%s); keep one NHI per environment", len(envs), strings.Join(envs, ", ")))
			}
		}
		if f := k.Field(InteractiveField); f != nil && f.Type == nhisync.TypeBool {
			var who []string
			if rec.Value(InteractiveField).Text() == "true" {
				who = append(who, "golden record")
			}
			for _, l := range liveLinks(rec) {
				if l.Asserted(InteractiveField).Text() == "true" {
					who = append(who, l.System)
				}
			}
			if len(who) > 0 {
				out = append(out, finding(TypeHumanUse, rec.Kind, rec.Key, "", InteractiveField,
					"marked as used interactively by a person (%s); people should sign in as themselves", strings.Join(distinctFold(who), ", ")))
			}
		}
		if f := over[rec.Kind]; f != nil {
			ok, err := f.Match(rec)
			if err != nil {
				return nhisync.Errorf(nhisync.EINVALID, "reports.hygiene.overprivileged on %s: %s", rec.Name(), nhisync.ErrorMessage(err))
			}
			if ok {
				out = append(out, finding(TypeOverprivileged, rec.Kind, rec.Key, "", "",
					"matches reports.hygiene.overprivileged (%s)%s; reduce its grants", f.Expr(), grants(rec, k)))
			}
		}
		return nil
	})
	return out, err
}

// grants names the record's entitlements, when it has them.
func grants(rec *nhisync.Record, k *nhisync.Kind) string {
	f := k.Field("entitlements")
	if f == nil || f.Sensitive || rec.Value("entitlements").IsZero() {
		return ""
	}
	return ": entitlements " + strings.Join(rec.Value("entitlements").Elems(), ", ")
}

// asserted returns what each live system holds for field.
func asserted(rec *nhisync.Record, field string) []nhisync.Value {
	var out []nhisync.Value
	for _, l := range liveLinks(rec) {
		out = append(out, l.Asserted(field))
	}
	return out
}

// distinctFold returns the values once each (case-insensitive), sorted.
func distinctFold(vs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vs {
		k := strings.ToLower(strings.TrimSpace(v))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
