package engine

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// droppedCommits is a store that drops every batch: a pass over it is
// always a first pass, and its decisions cost no store work.
type droppedCommits struct{ nhisync.Store }

func (droppedCommits) Commit(context.Context, *nhisync.Batch) error { return nil }

// BenchmarkFirstDecideEstate50k is a first pass's decide phase over
// cmd/nhisync-bench's estate of 50,000 NHIs (internal/benchestate), with
// the store's commits dropped: every record decided, its batch built and
// its audit leaves encoded, as a pass does, but nothing written.
// decide-cpu-ns/NHI is the process's CPU per NHI in decideAll (its GC
// included), decide-B/NHI and decide-allocs/NHI what it allocated; the
// read and correlation before it are not timed.
func BenchmarkFirstDecideEstate50k(b *testing.B) {
	const n = 50_000
	cfg, store := benchEstate(b, n)
	ctx := context.Background()
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer nhisync.CloseConnectors(conns)
	e := New(cfg, droppedCommits{store}, conns)
	var cpu time.Duration
	var bytes, allocs uint64
	var ms runtime.MemStats
	for b.Loop() {
		b.StopTimer()
		p := benchCorrelated(ctx, b, e)
		if len(p.work) < n {
			b.Fatalf("%d records to decide, want at least %d", len(p.work), n)
		}
		runtime.GC()
		b.StartTimer()
		runtime.ReadMemStats(&ms)
		bytes -= ms.TotalAlloc
		allocs -= ms.Mallocs
		start := storetest.ProcessCPU()
		if err := p.decideAll(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += storetest.ProcessCPU() - start
		runtime.ReadMemStats(&ms)
		bytes += ms.TotalAlloc
		allocs += ms.Mallocs
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "decide-cpu-ns/NHI")
	b.ReportMetric(float64(bytes)/float64(b.N*n), "decide-B/NHI")
	b.ReportMetric(float64(allocs)/float64(b.N*n), "decide-allocs/NHI")
}
