// Package report owns nhisync's governance findings (`nhisync report
// orphans|stale|drift|coverage|hygiene`) and the auditor's evidence pack
// (`nhisync report evidence`). Reports are queries over what the store
// already holds — golden records, links with every system's assertions,
// open items, system states and the audit log — and never read a system.
//
// Every finding carries a type (see [Types]), a severity and the framework
// ids (OWASP NHI Top 10, NIST CSF 2.0) it is evidence for, all kept in one
// table in framework.go. Sensitive field values never appear in a finding
// (they are withheld); the evidence pack shows only what the audit log
// keeps of them, their HMAC.
package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/rule"
)

// Severity ranks findings.
type Severity string

// Severities, most severe first.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
)

// Severities lists the severities, most severe first.
var Severities = []Severity{High, Medium, Low}

// rank orders severities: 0 is the most severe.
func (s Severity) rank() int { return slices.Index(Severities, s) }

// AtLeast reports whether s is as severe as t or more.
func (s Severity) AtLeast(t Severity) bool { return s.rank() <= t.rank() }

// ParseSeverity checks a severity given by a person.
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(strings.TrimSpace(s)))
	if v.rank() < 0 {
		return "", nhisync.Errorf(nhisync.EINVALID, "severity %q: use high, medium or low", s)
	}
	return v, nil
}

// Finding is one governance problem found in the store.
type Finding struct {
	Type string `json:"type"`
	Kind string `json:"kind"`
	// Record is the record's KEY (its match values, path-escaped, joined
	// by /), as in the other commands' JSON; empty for a system finding.
	Record   string   `json:"record"`
	System   string   `json:"system"`
	Field    string   `json:"field,omitempty"`
	Detail   string   `json:"detail"`
	Severity Severity `json:"severity"`
	// Frameworks are OWASP-NHIn and NIST-CSF-XX.YY-NN ids.
	Frameworks []string `json:"frameworks"`
	// Count is how many records a system or field finding is about.
	Count int `json:"count,omitempty"`
}

// Name returns the record as KIND/KEY, or "" for a system finding.
func (f *Finding) Name() string {
	if f.Record == "" {
		return ""
	}
	return f.Kind + "/" + f.Record
}

// Result is one report: its findings, most severe first, and how many of
// each type there are.
type Result struct {
	Report      string         `json:"report"`
	GeneratedAt time.Time      `json:"generated_at"`
	Findings    []*Finding     `json:"findings"`
	Summary     map[string]int `json:"summary"`
}

// Worst returns the highest severity among the findings ("" for none).
func (r *Result) Worst() Severity {
	var w Severity
	for _, f := range r.Findings {
		if w == "" || f.Severity.rank() < w.rank() {
			w = f.Severity
		}
	}
	return w
}

// Names lists the finding reports; "evidence" is the pack built on them.
var Names = []string{"orphans", "stale", "drift", "coverage", "hygiene"}

// DriftFunc lists, from stored state, every field a live system holds
// differently from the golden value and why it stays so: the engine's
// Drift, so the report says what a pass does.
type DriftFunc func(ctx context.Context) ([]engine.DriftItem, error)

// Options select what a report looks at.
type Options struct {
	// Clock tells the time findings are judged at (default: system clock).
	Clock nhisync.Clock
	// Kind, System keep only findings about that kind or system.
	Kind   string
	System string
	// Where is a CEL filter over records (as `records --where`); with it,
	// findings about no record are left out.
	Where string
	// Drift is the engine's drift rule; the drift report needs it.
	Drift DriftFunc
}

// Reporter runs reports over one config and store.
type Reporter struct {
	cfg   *nhisync.Config
	store nhisync.Store
	opt   Options
	now   time.Time
	where map[string]*rule.Filter
}

// New checks opt against cfg and returns a Reporter. It returns
// EINVALID for an unknown kind or system or a bad --where expression.
func New(cfg *nhisync.Config, store nhisync.Store, opt Options) (*Reporter, error) {
	if opt.Clock == nil {
		opt.Clock = nhisync.SystemClock{}
	}
	if opt.Kind != "" && cfg.Kinds[opt.Kind] == nil {
		return nil, nhisync.Errorf(nhisync.EINVALID, "no kind %q in the config; kinds: %s", opt.Kind, strings.Join(cfg.KindNames, ", "))
	}
	if opt.System != "" && cfg.Systems[opt.System] == nil {
		return nil, nhisync.Errorf(nhisync.EINVALID, "no system %q in the config; systems: %s", opt.System, strings.Join(cfg.SystemNames, ", "))
	}
	r := &Reporter{cfg: cfg, store: store, opt: opt, now: opt.Clock.Now().UTC()}
	if opt.Where != "" {
		// The filter applies to the kinds whose fields it reads; records
		// of other kinds are left out. It must compile for one.
		where, err := rule.CompileFilters(cfg, opt.Kind, opt.Where)
		if err != nil {
			return nil, nhisync.Errorf(nhisync.EINVALID, "--where: %s", nhisync.ErrorMessage(err))
		}
		r.where = where
	}
	return r, nil
}

// Run runs the named report (one of [Names]). It returns EINVALID for an
// unknown name, and the store's codes.
func (r *Reporter) Run(ctx context.Context, name string) (*Result, error) {
	var fs []*Finding
	var err error
	switch name {
	case "orphans":
		fs, err = r.orphans(ctx)
	case "stale":
		fs, err = r.stale(ctx)
	case "drift":
		fs, err = r.drift(ctx)
	case "coverage":
		fs, err = r.coverage(ctx)
	case "hygiene":
		fs, err = r.hygiene(ctx)
	default:
		return nil, nhisync.Errorf(nhisync.EINVALID, "no report %q; reports: %s, evidence", name, strings.Join(Names, ", "))
	}
	if err != nil {
		return nil, err
	}
	return r.result(name, fs), nil
}

// result filters, sorts and counts findings.
func (r *Reporter) result(name string, fs []*Finding) *Result {
	out := make([]*Finding, 0, len(fs))
	for _, f := range fs {
		switch {
		case r.opt.Kind != "" && f.Kind != r.opt.Kind:
		case r.opt.System != "" && f.System != r.opt.System:
		case r.where != nil && f.Record == "":
		default:
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b *Finding) int {
		return cmp.Or(
			cmp.Compare(a.Severity.rank(), b.Severity.rank()),
			cmp.Compare(typeIndex(a.Type), typeIndex(b.Type)),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Record, b.Record),
			cmp.Compare(a.System, b.System),
			cmp.Compare(a.Field, b.Field),
		)
	})
	sum := map[string]int{}
	for _, f := range out {
		sum[f.Type]++
	}
	return &Result{Report: name, GeneratedAt: r.now, Findings: out, Summary: sum}
}

func typeIndex(name string) int {
	return slices.IndexFunc(Types, func(t *Type) bool { return t.Name == name })
}

// finding makes a finding of type t.
func finding(t *Type, kind, record, system, field, format string, args ...any) *Finding {
	return &Finding{Type: t.Name, Kind: kind, Record: record, System: system, Field: field,
		Detail: fmt.Sprintf(format, args...), Severity: t.Severity, Frameworks: slices.Clone(t.Frameworks)}
}

// records streams the golden records the options select (kind, --where).
func (r *Reporter) records(ctx context.Context, fn func(rec *nhisync.Record, k *nhisync.Kind) error) error {
	return r.store.ScanRecords(ctx, r.opt.Kind, func(rec *nhisync.Record) error {
		k := r.cfg.Kinds[rec.Kind]
		if k == nil {
			return nil // a kind no longer configured
		}
		if r.where != nil {
			f := r.where[rec.Kind]
			if f == nil {
				return nil
			}
			ok, err := f.Match(rec)
			if err != nil {
				return nhisync.Errorf(nhisync.EINVALID, "--where on %s: %s", rec.Name(), nhisync.ErrorMessage(err))
			}
			if !ok {
				return nil
			}
		}
		return fn(rec, k)
	})
}

// show quotes a value for a sentence; a sensitive field's value is
// withheld (an unsalted hash would let a guessable value be recovered).
func show(f *nhisync.Field, v nhisync.Value) string {
	if v.IsZero() {
		return "∅"
	}
	if f != nil && f.Sensitive {
		return nhisync.Redacted
	}
	return fmt.Sprintf("%q", v.String())
}

// liveLinks returns the record's live links.
func liveLinks(rec *nhisync.Record) []*nhisync.Link {
	var out []*nhisync.Link
	for _, l := range rec.Links {
		if l.Status == nhisync.LinkLive {
			out = append(out, l)
		}
	}
	return out
}

// days prints a duration in days, the unit people judge ages in.
func days(d time.Duration) string {
	n := int(d / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}
