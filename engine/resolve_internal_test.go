package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// The orderings break every tie the same way in a pass and in recompute
// (issue 5 observation 6: recompute's latest ignored the system name and
// its strictest had no rank tie-break, so which system a value was
// credited to depended on link order).
func TestOrderingsBreakTies(t *testing.T) {
	at := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	p := func(system, value string, rank int, when time.Time) *prop {
		return &prop{Proposal: nhisync.Proposal{System: system, Value: nhisync.Str(value), At: when}, rank: rank}
	}
	enum := &nhisync.Field{Name: "lifecycle", Type: nhisync.TypeEnum, Values: []string{"active", "suspended", "decommissioned"}}
	tests := []struct {
		name  string
		order func(a, b *prop) int
		ps    []*prop
		want  string
	}{
		{"latest: newest first", byLatest, []*prop{p("a", "x", 0, at), p("b", "y", 1, at.Add(time.Second))}, "b"},
		{"latest: a tie goes to the higher rank", byLatest, []*prop{p("a", "x", 1, at), p("b", "y", 0, at)}, "b"},
		{"latest: then to the system name", byLatest, []*prop{p("b", "y", 0, at), p("a", "x", 0, at)}, "a"},
		{"priority: rank first", byPriority, []*prop{p("a", "x", 1, at.Add(time.Hour)), p("b", "y", 0, at)}, "b"},
		{"priority: equal rank, the latest", byPriority, []*prop{p("a", "x", 0, at), p("b", "y", 0, at.Add(time.Second))}, "b"},
		{"priority: then the system name", byPriority, []*prop{p("b", "y", 0, at), p("a", "x", 0, at)}, "a"},
		{"strictest: the strictest value", byStrictest(enum), []*prop{p("a", "active", 0, at), p("b", "suspended", 1, at)}, "b"},
		{"strictest: one value, the higher rank", byStrictest(enum), []*prop{p("a", "suspended", 1, at.Add(time.Hour)), p("b", "suspended", 0, at)}, "b"},
		{"strictest: then the system name", byStrictest(enum), []*prop{p("b", "suspended", 0, at), p("a", "suspended", 0, at)}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ps := range [][]*prop{tt.ps, {tt.ps[1], tt.ps[0]}} {
				if got := slices.MinFunc(ps, tt.order).System; got != tt.want {
					t.Errorf("winner of %s, %s = %s, want %s", ps[0].System, ps[1].System, got, tt.want)
				}
			}
		})
	}
}

// recompute credits a tied value to the same system whatever the order of
// the record's links, as a pass does.
func TestRecomputeTiesDoNotDependOnLinkOrder(t *testing.T) {
	at := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for _, resolve := range []nhisync.Strategy{nhisync.ResolveLatest, nhisync.ResolveStrictest, nhisync.ResolvePriority, nhisync.ResolveMerge} {
		f := &nhisync.Field{Name: "v", Type: nhisync.TypeString, Resolve: resolve}
		if resolve == nhisync.ResolveStrictest {
			f.Type, f.Values = nhisync.TypeEnum, []string{"x"}
		}
		if resolve == nhisync.ResolveMerge {
			f.Type = nhisync.TypeSet
		}
		k := &nhisync.Kind{Name: "k", Match: []string{"name"}, FieldNames: []string{"name", "v"},
			Fields: map[string]*nhisync.Field{"name": {Name: "name", Type: nhisync.TypeString}, "v": f}}
		cfg := &nhisync.Config{Kinds: map[string]*nhisync.Kind{"k": k}, Systems: map[string]*nhisync.System{}}
		var links []*nhisync.Link
		for _, name := range []string{"b", "a", "c"} {
			cfg.Systems[name] = &nhisync.System{Name: name, Kind: "k", Fields: []*nhisync.Mapping{{Field: "name", Name: "name"}, {Field: "v", Name: "v"}}}
			v := nhisync.Str("x")
			if f.Type == nhisync.TypeSet {
				v = nhisync.SetOf("x")
			}
			links = append(links, &nhisync.Link{System: name, ExternalID: "1", Status: nhisync.LinkLive,
				Fields: map[string]*nhisync.FieldState{"v": {Asserted: v, Since: at}}})
		}
		for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
			rec := &nhisync.Record{ID: 1, Kind: "k", Fields: map[string]*nhisync.Golden{}}
			for _, i := range order {
				rec.Links = append(rec.Links, links[i])
			}
			ch, err := recompute(context.Background(), cfg, memKeys{}, k, rec, "v")
			if err != nil {
				t.Fatal(err)
			}
			if ch.Source != "a" {
				t.Errorf("%s, links in order %v: recompute credits %s, want a (equal time and rank: the system name)", resolve, order, ch.Source)
			}
		}
	}
}
