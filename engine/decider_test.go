package engine_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"

	"pgregory.net/rapid"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// One decider (issue 5): a pass, a person's action, explain and what-if
// validate with one function and order candidates with one set of
// functions.

const refWorldConfig = `version: 1
store: sqlite:./state/nhisync.db
kinds:
  app:
    match: [name]
    create_from: [a]
    fields:
      name: { type: string }
      team: { type: ref, to: team, resolve: manual }
  team:
    match: [name]
    create_from: [teams]
    fields:
      name: { type: string }
systems:
  a: { connector: file, path: a.json, kind: app, id: id, fields: { name: name, team: team } }
  b: { connector: file, path: b.json, kind: app, id: id, fields: { name: name, team: team } }
  teams: { connector: file, path: teams.json, kind: team, id: id, fields: { name: name } }
`

// keyLookupFails is the store with RecordByKey failing, as a store that
// cannot be read fails.
type keyLookupFails struct{ nhisync.Store }

func (keyLookupFails) RecordByKey(context.Context, string, string) (*nhisync.Record, error) {
	return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: "test.RecordByKey", Message: "the store could not be read"}
}

// A person's value for a ref field is checked against the store, and a
// store that cannot answer stops the action: the value is neither taken to
// exist nor accepted (it was accepted before: the human path had no
// record index, and its key lookup read a store error as "free").
func TestResolveChecksRefsAgainstTheStore(t *testing.T) {
	w := newWorld(t, refWorldConfig, map[string][]map[string]any{
		"a.json":     {{"id": "1", "name": "bot", "team": "core"}},
		"b.json":     {{"id": "1", "name": "bot", "team": "ops"}},
		"teams.json": {{"id": "core", "name": "core"}, {"id": "ops", "name": "ops"}},
	})
	if sum := w.sync(); sum.ConflictsOpened != 1 {
		t.Fatalf("conflicts opened = %d\n%s", sum.ConflictsOpened, actions(sum))
	}
	c := w.conflicts(nhisync.StatusOpen)[0]
	ctx := context.Background()

	_, err := w.engine().ResolveConflict(ctx, c.ID, "", "no-such-team", "carol")
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !regexp.MustCompile(`fails ref: no team "no-such-team" exists`).MatchString(err.Error()) {
		t.Fatalf("resolve --value no-such-team: %v; want EINVALID naming the missing team", err)
	}

	w.engine() // opens the connectors
	broken := engine.New(w.cfg, keyLookupFails{w.store}, nil, engine.WithClock(w.clock))
	_, err = broken.ResolveConflict(ctx, c.ID, "", "ops", "carol")
	if err == nil || nhisync.ErrorCode(err) != nhisync.EINTERNAL {
		t.Fatalf("resolve with a store that cannot look keys up: %v; want the store's EINTERNAL", err)
	}
	if open := w.conflicts(nhisync.StatusOpen); len(open) != 1 {
		t.Fatalf("conflict closed although its value could not be checked: %+v", open)
	}

	if _, err := w.engine().ResolveConflict(ctx, c.ID, "", "ops", "carol"); err != nil {
		t.Fatalf("resolve --value ops (a team that exists): %v", err)
	}
}

// For random systems, what-if and explain with the unchanged config choose
// exactly what a pass chose: every golden value (and who set it) of a
// pass that saw every system for the first time is what recomputing from
// the assertions the pass stored chooses. The config is
// property_test.go's (random systems, authority and strategies, a CEL
// rule), with a ref field added in the file systems.
func TestPropertyRecomputeChoosesWhatAPassChose(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pc := genConfig(rt)
		withTeams := addTeamRef(rt, pc)
		dir, err := os.MkdirTemp("", "nhisync-recompute-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		files := map[string][]map[string]any{}
		tables := map[string][]map[string]any{}
		for _, s := range pc.systems {
			names := rapid.SliceOfDistinct(rapid.SampledFrom(propNames), rapid.ID[string]).Draw(rt, "names-"+s.name)
			recs := []map[string]any{}
			for _, n := range names {
				r := genRecord(rt, s, "id-"+n, n)
				if withTeams[s.name] {
					if team := rapid.SampledFrom([]string{"", "t1", "T2", "ghost"}).Draw(rt, "team-"+s.name+"-"+n); team != "" {
						r["team"] = team
					}
				}
				recs = append(recs, r)
			}
			if s.sqlTable {
				createTable(rt, dir, s.name)
				tables[s.name] = recs
			} else {
				files[s.name+".json"] = recs
			}
		}
		var teams []map[string]any
		for _, tm := range rapid.SliceOfDistinct(rapid.SampledFrom([]string{"t1", "t2"}), rapid.ID[string]).Draw(rt, "teams") {
			teams = append(teams, map[string]any{"id": tm, "name": tm})
		}
		files["teams.json"] = teams
		w := newWorldIn(rt, dir, pc.yaml, files)
		pc.dir = dir
		for name, recs := range tables {
			pc.put(w, pc.systemByName(name), recs)
		}
		// The systems take no write, so their assertions stay those the
		// pass decided from (a write moves the target's assertion).
		w.wrap = func(_ string, c nhisync.Connector) nhisync.Connector { return writesRefused{c} }
		sum := w.sync()
		w.wrap = nil

		ctx := context.Background()
		e := w.engine()
		changes, _, err := e.WhatIf(ctx, w.cfg)
		if err != nil {
			rt.Fatalf("what-if: %v", err)
		}
		for _, c := range changes {
			rt.Errorf("what-if with the unchanged config changes %s %s from %q to %s", c.Record, c.Field, c.Current.String(), c.Proposed.String())
		}
		k := w.cfg.Kinds["sa"]
		err = w.store.ScanRecords(ctx, "sa", func(rec *nhisync.Record) error {
			for _, field := range k.FieldNames {
				if k.IsMatch(field) {
					continue
				}
				x, err := e.Explain(ctx, "sa", rec.MatchKey, field)
				if err != nil {
					return fmt.Errorf("explain %s %s: %w", rec.Key, field, err)
				}
				var source string
				if g := rec.Fields[field]; g != nil {
					source = g.Source
				}
				if !x.Recomputed.Value.Equal(rec.Value(field)) || x.Recomputed.Source != source {
					rt.Errorf("record %s %s: the pass chose %q from %q, explain recomputes %s", rec.Key, field, rec.Value(field).String(), source, x.Recomputed.String())
				}
			}
			return nil
		})
		if err != nil {
			rt.Fatal(err)
		}
		if rt.Failed() {
			rt.Fatalf("config:\n%s\npass:\n%s", pc.yaml, actions(sum))
		}
	})
}

// addTeamRef gives kind sa of a generated config a ref field team (to a
// kind team read from teams.json) and maps it in some of the file systems.
// It returns the systems that map it.
func addTeamRef(t *rapid.T, pc *propConfig) map[string]bool {
	mapped := map[string]bool{}
	for _, s := range pc.systems {
		if !s.sqlTable && rapid.Float64Range(0, 1).Draw(t, "team-"+s.name) < 0.7 {
			mapped[s.name] = true
		}
	}
	y := regexp.MustCompile(`(?m)^      name: \{ type: string \}\n`).ReplaceAllString(pc.yaml, "      name: { type: string }\n      team: { type: ref, to: team }\n")
	y = regexp.MustCompile(`(?m)^systems:\n`).ReplaceAllString(y, "  team:\n    match: [name]\n    create_from: [teams]\n    fields:\n      name: { type: string }\nsystems:\n")
	cur := ""
	lines := regexp.MustCompile(`(?m)^.*$`).FindAllString(y, -1)
	for i, l := range lines {
		if m := regexp.MustCompile(`^  (s\d+):$`).FindStringSubmatch(l); m != nil {
			cur = m[1]
		}
		if mapped[cur] && regexp.MustCompile(`^    fields: \{ name: name`).MatchString(l) {
			lines[i] = "    fields: { name: name, team: team" + l[len("    fields: { name: name"):]
		}
	}
	y = ""
	for _, l := range lines {
		y += l + "\n"
	}
	y += "  teams:\n    connector: file\n    path: teams.json\n    kind: team\n    id: id\n    fields: { name: name }\n"
	pc.yaml = y
	return mapped
}

// writesRefused is a connector whose system refuses every write.
type writesRefused struct{ nhisync.Connector }

func (writesRefused) Apply(context.Context, []nhisync.Write) ([]nhisync.WriteResult, error) {
	return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: "the test's systems take no writes"}
}
