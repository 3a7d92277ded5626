package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	_ "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/report"
	"github.com/nhisync/nhisync/sqlite"
)

// t0 is when the estates below are synced; their dates are relative to it.
var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// estateYAML is the smallest config with every field the reports read: a
// person kind (owners), an application kind, and service accounts held
// by an identity provider (idp, which creates them) and a catalog.
const estateYAML = `version: 1
kinds:
  person:
    match: [email]
    create_from: [hr]
    fields:
      email: { type: string }
      lifecycle: { type: enum, values: [active, departed] }
  application:
    match: [name]
    create_from: [apps]
    fields:
      name: { type: string }
      lifecycle: { type: enum, values: [active, decommissioned] }
  service_account:
    match: [name]
    create_from: [idp]
    fields:
      name: { type: string }
      owner: { type: string, authority: [cat, idp], stale_after: 720h }
      application: { type: string }
      lifecycle: { type: enum, values: [active, decommissioned], resolve: strictest }
      last_rotated: { type: time, authority: [idp], max_age: 2160h }
      used_by: { type: set, resolve: merge }
      environment: { type: string, authority: [cat] }
      interactive: { type: bool }
      entitlements: { type: set, resolve: merge }
      secret: { type: string, sensitive: true }
systems:
  hr:
    connector: file
    kind: person
    path: hr.json
    id: id
    poll: 1h
    fields: { email: email, lifecycle: status }
  apps:
    connector: file
    kind: application
    path: apps.json
    id: id
    poll: 1h
    fields: { name: name, lifecycle: status }
  idp:
    connector: file
    kind: service_account
    path: idp.json
    id: id
    poll: 1h
    on_refused: report
    fields: { name: name, owner: owner, application: app, lifecycle: status, last_rotated: rotated, used_by: used_by, interactive: interactive, entitlements: grants, secret: secret, environment: env }
  cat:
    connector: file
    kind: service_account
    path: cat.json
    id: id
    poll: 1h
    fields: { name: name, owner: steward, environment: env, used_by: consumers }
reports:
  hygiene:
    overprivileged: '"admin" in entitlements'
`

// estate is the content of each system's file: records as JSON objects.
type estate map[string][]map[string]any

// cleanEstate returns an estate in which no report finds anything.
func cleanEstate() estate {
	rotated := t0.Add(-10 * 24 * time.Hour).Format(time.RFC3339)
	return estate{
		"hr.json":   {{"id": "p1", "email": "alice@example.com", "status": "active"}},
		"apps.json": {{"id": "a1", "name": "payments", "status": "active"}},
		"idp.json": {{"id": "i1", "name": "pay-bot", "owner": "alice@example.com", "app": "payments", "status": "active",
			"rotated": rotated, "used_by": []any{"payments"}, "interactive": false, "grants": []any{"read"}, "secret": "s3cr3t-value", "env": "prod"}},
		"cat.json": {{"id": "c1", "name": "pay-bot", "steward": "alice@example.com", "env": "prod", "consumers": []any{"payments"}}},
	}
}

// set changes fields of the record with id in file (nil deletes a key).
func (e estate) set(file, id string, kv ...any) estate {
	for _, r := range e[file] {
		if r["id"] == id {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(r, kv[i].(string))
				} else {
					r[kv[i].(string)] = kv[i+1]
				}
			}
			return e
		}
	}
	panic(fmt.Sprintf("%s has no record %s", file, id))
}

// add appends a record to file.
func (e estate) add(file string, rec map[string]any) estate {
	e[file] = append(e[file], rec)
	return e
}

// world is an estate synced through the real engine into a real SQLite
// store, with a fake clock.
type world struct {
	t     testing.TB
	dir   string
	cfg   *nhisync.Config
	store nhisync.Store
	clock *nhisync.FakeClock
}

func newWorld(t testing.TB, yaml string, e estate) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), clock: &nhisync.FakeClock{T: t0}}
	w.write(e)
	path := filepath.Join(w.dir, "nhisync.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w.cfg = cfg
	st, err := sqlite.OpenURL(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	w.store = st
	t.Cleanup(func() { st.Close() })
	return w
}

func (w *world) write(e estate) {
	for name, recs := range e {
		b, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.dir, name), b, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
}

// engine opens every system and returns an engine on the world's clock.
func (w *world) engine() (*engine.Engine, func()) {
	conns, err := nhisync.OpenConnectors(context.Background(), w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return engine.New(w.cfg, w.store, conns, engine.WithClock(w.clock)), func() { nhisync.CloseConnectors(conns) }
}

// sync runs one pass and advances the clock a minute.
func (w *world) sync() *engine.Summary {
	w.t.Helper()
	e, done := w.engine()
	defer done()
	sum, err := e.Sync(context.Background(), engine.PassOptions{})
	if err != nil {
		w.t.Fatalf("sync: %v", err)
	}
	w.clock.Advance(time.Minute)
	return sum
}

// report runs a report at the world's clock.
func (w *world) report(name string, opt report.Options) *report.Result {
	w.t.Helper()
	opt.Clock = w.clock
	e, done := w.engine()
	defer done()
	opt.Drift = e.Drift
	r, err := report.New(w.cfg, w.store, opt)
	if err != nil {
		w.t.Fatalf("report %s: %v", name, err)
	}
	res, err := r.Run(context.Background(), name)
	if err != nil {
		w.t.Fatalf("report %s: %v", name, err)
	}
	return res
}

// of returns "TYPE KIND/KEY[ SYSTEM][ FIELD]" for each finding of type
// typ, sorted: what the tables below expect.
func of(res *report.Result, typ string) []string {
	var out []string
	for _, f := range res.Findings {
		if f.Type != typ {
			continue
		}
		s := f.Type + " " + f.Kind
		if f.Record != "" {
			s += "/" + f.Record
		}
		if f.System != "" {
			s += " @" + f.System
		}
		if f.Field != "" {
			s += " ." + f.Field
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func details(res *report.Result) string {
	var b strings.Builder
	for _, f := range res.Findings {
		fmt.Fprintf(&b, "  %s %s %s %s: %s\n", f.Type, f.Name(), f.System, f.Field, f.Detail)
	}
	return b.String()
}
