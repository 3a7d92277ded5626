package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	_ "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/sqlite"
)

// world is a workspace of real JSON files synced through a real SQLite
// store, with a fake clock.
type world struct {
	t     tester
	dir   string
	cfg   *nhisync.Config
	store nhisync.Store
	clock *nhisync.FakeClock
	conns map[string]nhisync.Connector
	// wrap, when set, wraps each opened connector (to inject faults or
	// concurrent edits around the real connector).
	wrap func(name string, c nhisync.Connector) nhisync.Connector
	// opts are added to every engine the world makes.
	opts []engine.Option
	// verifier is the verifier key of the checkpoints commits sign.
	verifier string
}

var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// newWorld writes the config and the system files and opens the store.
// files maps a file name under dir to JSON records.
func newWorld(t testing.TB, yaml string, files map[string][]map[string]any) *world {
	t.Helper()
	return newWorldIn(t, t.TempDir(), yaml, files)
}

// tester is what a world needs of *testing.T and *rapid.T.
type tester interface {
	Fatalf(format string, args ...any)
	Fatal(args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

func newWorldIn(t tester, dir, yaml string, files map[string][]map[string]any) *world {
	w := &world{t: t, dir: dir, clock: &nhisync.FakeClock{T: t0}}
	for name, recs := range files {
		w.put(name, recs)
	}
	if err := os.WriteFile(filepath.Join(dir, "nhisync.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "nhisync.yaml"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w.cfg = cfg
	st, err := sqlite.OpenURL(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	w.store = &bulkCheck{Store: st, t: t, systems: cfg.SystemNames}
	t.Cleanup(func() { w.closeConns(); st.Close() })
	// As the CLI does: every commit signs its entries' checkpoint.
	keys, err := audit.OpenKeys(cfg.SigningKey, cfg.AuditSecret, "", true, w.clock)
	if err != nil {
		t.Fatal(err)
	}
	st.SetNotary(keys.Notary)
	w.verifier = keys.Signer.VerifierKey()
	return w
}

func (w *world) closeConns() {
	for _, c := range w.conns {
		c.Close()
	}
	w.conns = nil
}

// engine opens every connector afresh and returns an engine.
func (w *world) engine() *engine.Engine {
	w.closeConns()
	conns, err := nhisync.OpenConnectors(context.Background(), w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	if w.wrap != nil {
		for name, c := range conns {
			conns[name] = w.wrap(name, c)
		}
	}
	w.conns = conns
	return engine.New(w.cfg, w.store, w.conns, append([]engine.Option{engine.WithClock(w.clock)}, w.opts...)...)
}

// sync runs one pass and advances the clock a minute.
func (w *world) sync() *engine.Summary {
	return w.pass(engine.PassOptions{KeepEvents: true})
}

func (w *world) pass(opt engine.PassOptions) *engine.Summary {
	sum, err := w.engine().Sync(context.Background(), opt)
	if err != nil {
		w.t.Fatalf("sync: %v", err)
	}
	w.clock.Advance(time.Minute)
	return sum
}

func (w *world) put(name string, recs []map[string]any) {
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, name), b, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) get(name string) []map[string]any {
	b, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		w.t.Fatal(err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(b, &recs); err != nil {
		w.t.Fatalf("%s: %v", name, err)
	}
	return recs
}

// field returns the native value of key in the record with id in file.
func (w *world) field(file, id, key string) any {
	for _, r := range w.get(file) {
		if r["id"] == id {
			return r[key]
		}
	}
	w.t.Fatalf("%s has no record %s", file, id)
	return nil
}

// edit changes one record of a file as a person would.
func (w *world) edit(file, id string, set map[string]any) {
	recs := w.get(file)
	found := false
	for _, r := range recs {
		if r["id"] == id {
			found = true
			for k, v := range set {
				if v == nil {
					delete(r, k)
				} else {
					r[k] = v
				}
			}
		}
	}
	if !found {
		w.t.Fatalf("%s has no record %s", file, id)
	}
	w.put(file, recs)
}

// remove deletes a record from a file.
func (w *world) remove(file, id string) {
	recs := slices.DeleteFunc(w.get(file), func(r map[string]any) bool { return r["id"] == id })
	w.put(file, recs)
}

func (w *world) record(kind string, key ...string) *nhisync.Record {
	rec, err := w.store.RecordByKey(context.Background(), kind, nhisync.NormalizeKey(key))
	if err != nil {
		w.t.Fatalf("record %s/%v: %v", kind, key, err)
	}
	return rec
}

func (w *world) golden(kind, field string, key ...string) string {
	return w.record(kind, key...).Value(field).String()
}

func (w *world) conflicts(status string) []*nhisync.Conflict {
	cs, err := w.store.Conflicts(context.Background(), nhisync.ItemFilter{Status: status})
	if err != nil {
		w.t.Fatal(err)
	}
	return cs
}

func (w *world) quarantine(status string) []*nhisync.QuarantineItem {
	qs, err := w.store.QuarantineItems(context.Background(), nhisync.ItemFilter{Status: status})
	if err != nil {
		w.t.Fatal(err)
	}
	return qs
}

func (w *world) approvals(status string) []*nhisync.Approval {
	as, err := w.store.Approvals(context.Background(), nhisync.ItemFilter{Status: status})
	if err != nil {
		w.t.Fatal(err)
	}
	return as
}

// actions lists the audit actions of a summary's events, with reasons,
// for failure messages.
func actions(sum *engine.Summary) string {
	var b strings.Builder
	for _, ev := range sum.Events {
		b.WriteString(ev.Action + " " + ev.Record + " " + ev.Field + " " + ev.System + " " + ev.New.String() + " (" + ev.Reason + ")\n")
	}
	return b.String()
}

func keys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sa(id, platform, name string, kv ...any) map[string]any {
	m := map[string]any{"id": id, "platform": platform, "name": name}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}
