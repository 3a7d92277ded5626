package engine

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
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
	dir := b.TempDir()
	if _, err := benchestate.Generate(dir, n, benchestate.DefaultMix(0.01)); err != nil {
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
	ctx := context.Background()
	store, err := sqlite.OpenURL(ctx, cfg.Store)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
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
		p := e.newPass(PassOptions{}, e.clock.Now())
		// No lease is taken: one held for an hour needs no renewal.
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
