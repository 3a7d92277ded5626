package service_test

import (
	"context"
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
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/service"
	"github.com/nhisync/nhisync/sqlite"
)

const feedConfig = `version: 1
store: sqlite:./data/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [cmdb]
    fields:
      name: { type: string }
      platform: { type: string }
      owner: { type: string, authority: [cmdb, catalog] }
systems:
  cmdb: { connector: file, kind: service_account, path: cmdb.csv, fields: { name: name, platform: platform, owner: owner } }
  catalog: { connector: file, kind: service_account, path: catalog.json, provision: true, fields: { name: name, platform: platform, owner: steward } }
`

// feedWorld is a workspace of two file systems served by a running
// Service.
type feedWorld struct {
	dir  string
	stop func()
	done chan error
}

func newFeedWorld(tb testing.TB, rows int) *feedWorld {
	tb.Helper()
	dir := tb.TempDir()
	var csv strings.Builder
	csv.WriteString("name,platform,owner\n")
	for i := range rows {
		fmt.Fprintf(&csv, "bot-%03d,aws,owner-%03d@example.com\n", i, i)
	}
	for name, content := range map[string]string{"nhisync.yaml": feedConfig, "cmdb.csv": csv.String(), "catalog.json": "[]"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "nhisync.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	store, err := sqlite.OpenURL(ctx, cfg.Store)
	if err != nil {
		tb.Fatal(err)
	}
	conns := map[string]nhisync.Connector{}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		d, _ := nhisync.LookupDriver(sys.Connector)
		c, err := d.Open(ctx, sys, cfg.Kinds[sys.Kind])
		if err != nil {
			tb.Fatal(err)
		}
		conns[name] = c
	}
	eng := engine.New(cfg, store, conns)
	svc := service.New(service.Options{Config: cfg, Engine: eng, Conns: conns})
	runCtx, cancel := context.WithCancel(ctx)
	w := &feedWorld{dir: dir, done: make(chan error, 1)}
	go func() { w.done <- svc.Run(runCtx) }()
	w.stop = func() {
		cancel()
		if err := <-w.done; err != nil {
			tb.Errorf("Run: %v", err)
		}
		store.Close()
	}
	tb.Cleanup(func() {
		if w.stop != nil {
			w.stop()
		}
	})
	// The first full pass creates the records and fills the catalog.
	w.await(tb, "the first pass", func(catalog string) bool {
		return strings.Contains(catalog, fmt.Sprintf("owner-%03d@example.com", rows-1))
	})
	return w
}

// await polls the catalog file until cond holds (bounded).
func (w *feedWorld) await(tb testing.TB, what string, cond func(catalog string) bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(w.dir, "catalog.json"))
		if cond(string(b)) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 30s; catalog:\n%.500s", what, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// edit replaces the CMDB file as exporters do (temp file, rename).
func (w *feedWorld) edit(tb testing.TB, from, to string) {
	tb.Helper()
	p := filepath.Join(w.dir, "cmdb.csv")
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		tb.Fatal(err)
	}
}

// TestFeedPropagates: with the service running, an edit of the CMDB file
// reaches the catalog with no command run, and stopping returns nil.
func TestFeedPropagates(t *testing.T) {
	w := newFeedWorld(t, 5)
	w.edit(t, "owner-002@example.com", "new-owner@example.com")
	w.await(t, "the edit in the catalog", func(c string) bool { return strings.Contains(c, "new-owner@example.com") })
	w.stop()
	w.stop = nil
}

// BenchmarkPropagation measures, over b.N edits of the CMDB file, the time
// from the rename to the catalog file holding the new value (file watch,
// quiet period, stable hash, incremental pass, conditional write), and
// reports p50 and p99 (SPEC §8: under 1 s at the 99th percentile).
func BenchmarkPropagation(b *testing.B) {
	w := newFeedWorld(b, 100)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		row := i % 100
		from := fmt.Sprintf("owner-%03d@example.com", row)
		if i >= 100 {
			from = fmt.Sprintf("edit-%d@example.com", i-100)
		}
		to := fmt.Sprintf("edit-%d@example.com", i)
		start := time.Now()
		w.edit(b, from, to)
		w.await(b, "edit", func(c string) bool { return strings.Contains(c, `"`+to+`"`) })
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Milliseconds()) }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
