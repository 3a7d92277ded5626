package engine

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	_ "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/internal/benchestate"
	"github.com/nhisync/nhisync/sqlite"
	"github.com/nhisync/nhisync/storetest"
)

// BenchmarkReadCorrelate100k is a first pass's read and correlate phases
// over cmd/nhisync-bench's estate of 100,000 NHIs (internal/benchestate:
// the idp a SQLite table, the CMDB and the catalog CSV files), into an
// empty store: every record read, canonicalised, hashed, staged and
// tied to a new or matching golden record, which is what a first pass
// holds until it decides. It reports the process's CPU seconds per pass and the live
// heap per NHI once correlation is done.
func BenchmarkReadCorrelate100k(b *testing.B) {
	const n = 100_000
	cfg, store := benchEstate(b, n)
	ctx := context.Background()
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer nhisync.CloseConnectors(conns)
	e := New(cfg, store, conns)
	var cpu, live float64
	b.ReportAllocs()
	for b.Loop() {
		start := storetest.ProcessCPU()
		p := benchCorrelated(ctx, b, e)
		cpu += (storetest.ProcessCPU() - start).Seconds()
		for name, ss := range p.sum.Systems {
			if ss.Error != "" {
				b.Fatalf("%s: %s", name, ss.Error)
			}
		}
		if len(p.work) < n {
			b.Fatalf("%d records to decide, want at least %d", len(p.work), n)
		}
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		live += float64(ms.HeapAlloc) / n
		runtime.KeepAlive(p)
		p = nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
	b.ReportMetric(live/float64(b.N), "live-B/NHI")
}

// BenchmarkQuietPassEstate100k is a quiet pass (Sync, nothing changed
// since the pass before) over cmd/nhisync-bench's estate of 100,000 NHIs
// in a SQLite store: every link head and record head loaded, every system
// read, canonicalised and hashed, one compare per record, and the pass's
// one small commit. It reports the process's CPU seconds per pass
// (cpu-s/op), and the same for the floor (floor-cpu-s: the three systems
// read, canonicalised and hashed in parallel, nothing else, as
// cmd/nhisync-bench measures it) and their ratio, which SPEC §8 bounds.
func BenchmarkQuietPassEstate100k(b *testing.B) {
	cfg, conns, e := quietEstate(b, 100_000)
	benchQuiet(b, cfg, conns, e)
}

// BenchmarkQuietPassKeptHeadsEstate100k is BenchmarkQuietPassEstate100k
// by an engine that keeps the link heads from pass to pass
// (WithHeadCache), as nhisync serve's does: every quiet pass after the
// first takes the heads the one before kept instead of loading them.
func BenchmarkQuietPassKeptHeadsEstate100k(b *testing.B) {
	cfg, conns, e := quietEstate(b, 100_000, WithHeadCache(NewHeadCache()))
	sum := benchQuiet(b, cfg, conns, e)
	for _, name := range cfg.SystemNames {
		if !sum.Systems[name].HeadsKept {
			b.Fatalf("the last quiet pass loaded %s's link heads, want them kept", name)
		}
	}
}

// benchQuiet runs e's quiet passes over cfg's systems, reporting their
// CPU seconds beside the floor's, and returns the last one's summary.
func benchQuiet(b *testing.B, cfg *nhisync.Config, conns map[string]nhisync.Connector, e *Engine) *Summary {
	ctx := context.Background()
	floor := benchFloor(b, cfg, conns)
	var cpu float64
	var sum *Summary
	b.ReportAllocs()
	for b.Loop() {
		start := storetest.ProcessCPU()
		var err error
		// Labelled, so that -cpuprofile can be read for the quiet passes
		// alone (go tool pprof -tagfocus pass=quiet).
		pprof.Do(ctx, pprof.Labels("pass", "quiet"), func(ctx context.Context) { sum, err = e.Sync(ctx, PassOptions{}) })
		cpu += (storetest.ProcessCPU() - start).Seconds()
		if err != nil {
			b.Fatal(err)
		}
		if sum.WritesPlanned != 0 || sum.Created != 0 {
			b.Fatalf("a quiet pass planned %d writes and created %d records", sum.WritesPlanned, sum.Created)
		}
	}
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
	b.ReportMetric(floor, "floor-cpu-s")
	b.ReportMetric(cpu/float64(b.N)/floor, "x-floor")
	return sum
}

// quietEstate is benchEstate's estate of n NHIs with its connectors
// open (closed when b ends) and an engine over them that has run the
// first pass and one more, which repairs what the first's writes left
// (none, but a quiet pass is the one after a pass).
func quietEstate(b *testing.B, n int, opts ...Option) (*nhisync.Config, map[string]nhisync.Connector, *Engine) {
	b.Helper()
	ctx := context.Background()
	cfg, store := benchEstate(b, n)
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nhisync.CloseConnectors(conns) })
	e := New(cfg, store, conns, opts...)
	for range 2 {
		if _, err := e.Sync(ctx, PassOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return cfg, conns, e
}

// benchEstate generates cmd/nhisync-bench's estate of n NHIs and opens its
// SQLite store, closed when b ends.
func benchEstate(b *testing.B, n int) (*nhisync.Config, nhisync.Store) {
	_, cfg, store := openEstate(b, n, benchestate.DefaultMix(0.01))
	return cfg, store
}

// openEstate generates cmd/nhisync-bench's estate of n NHIs, with mix m,
// in a directory of its own and opens its SQLite store, closed when tb
// ends.
func openEstate(tb testing.TB, n int, m benchestate.Mix) (*benchestate.Estate, *nhisync.Config, nhisync.Store) {
	dir := tb.TempDir()
	es, err := benchestate.Generate(dir, n, m)
	if err != nil {
		tb.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "nhisync.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchestate.Config), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		tb.Fatal(err)
	}
	store, err := sqlite.OpenURL(context.Background(), cfg.Store)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return es, cfg, store
}

// benchFloor is the least CPU seconds of three reads of the read floor
// (benchestate.ReadFloor: every system of cfg, in parallel, each record
// canonicalised and hashed as a pass does, nothing else), as
// cmd/nhisync-bench measures it.
func benchFloor(b *testing.B, cfg *nhisync.Config, conns map[string]nhisync.Connector) float64 {
	best := 0.0
	for range 3 {
		start := storetest.ProcessCPU()
		if err := benchestate.ReadFloor(context.Background(), cfg, conns); err != nil {
			b.Fatal(err)
		}
		if c := (storetest.ProcessCPU() - start).Seconds(); best == 0 || c < best {
			best = c
		}
	}
	return best
}

// benchCorrelated runs a pass of e up to its correlate step (state
// loaded, every system read), as the estate benchmarks measure it. No
// lease is taken: one held for an hour needs no renewal.
func benchCorrelated(ctx context.Context, b *testing.B, e *Engine) *pass {
	b.Helper()
	p := e.newPass(PassOptions{}, e.clock.Now())
	p.leaseTTL, p.leaseAt = time.Hour, e.clock.Now()
	if err := p.loadState(ctx); err != nil {
		b.Fatal(err)
	}
	if err := p.observe(ctx); err != nil {
		b.Fatal(err)
	}
	if err := p.correlate(ctx); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkDriftPassEstate100k is the drift pass of cmd/nhisync-bench over
// its estate of 100,000 NHIs: a first pass and a quiet one, then 1% of the
// records changed in each system and 0.5% of the idp's gone
// (benchestate.ApplyDrift), and the pass that reads, correlates, decides,
// commits and applies them. Each iteration generates its estate afresh
// (the drift is applied once); only the drift pass is timed. It reports
// the pass's CPU seconds (cpu-s/op), labelled pass=drift for -cpuprofile.
func BenchmarkDriftPassEstate100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	var cpu float64
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		es, err := benchestate.Generate(dir, n, benchestate.DefaultMix(0.01))
		if err != nil {
			b.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "nhisync.yaml")
		if err := os.WriteFile(cfgPath, []byte(benchestate.Config), 0o644); err != nil {
			b.Fatal(err)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			b.Fatal(err)
		}
		store, err := sqlite.OpenURL(ctx, cfg.Store)
		if err != nil {
			b.Fatal(err)
		}
		conns, err := nhisync.OpenConnectors(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		e := New(cfg, store, conns)
		for range 2 {
			if _, err := e.Sync(ctx, PassOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := es.ApplyDrift(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := storetest.ProcessCPU()
		pprof.Do(ctx, pprof.Labels("pass", "drift"), func(ctx context.Context) { _, err = e.Sync(ctx, PassOptions{}) })
		cpu += (storetest.ProcessCPU() - start).Seconds()
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		nhisync.CloseConnectors(conns)
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
}
