package engine

import (
	"context"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// downConn is a system that refuses every write: a pass over it queues
// its writes for a later drain.
type downConn struct{ nhisync.Connector }

func (downConn) Apply(context.Context, []nhisync.Write) ([]nhisync.WriteResult, error) {
	return nil, nhisync.Errorf(nhisync.EUNAVAIL, "down (benchmark)")
}

// BenchmarkDrainEstate50k drains the writes a first pass over
// cmd/nhisync-bench's estate of 50,000 NHIs plans (internal/benchestate:
// the idp's through the SQL connector, the CMDB's and the catalog's each
// one CSV rewrite), as the first pass's apply phase sends them but for the
// bulk window's close: each iteration generates the estate and runs a
// first pass with every system refusing its writes (not timed), then
// drains them all. It reports the process's CPU seconds and the wall
// seconds of the drain. Its CPU profile labels the drain phase=drain.
func BenchmarkDrainEstate50k(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	var cpu, wall time.Duration
	writes := 0
	for b.Loop() {
		b.StopTimer()
		cfg, store := benchEstate(b, n)
		conns, err := nhisync.OpenConnectors(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		down := map[string]nhisync.Connector{}
		for name, c := range conns {
			down[name] = downConn{c}
		}
		clock := &nhisync.FakeClock{T: time.Now().UTC()}
		if _, err := New(cfg, store, down, WithClock(clock)).Sync(ctx, PassOptions{}); err != nil {
			b.Fatal(err)
		}
		clock.Advance(time.Hour)
		e := New(cfg, store, conns, WithClock(clock))
		b.StartTimer()
		start, at := storetest.ProcessCPU(), time.Now()
		var sum *Summary
		// Labelled (goroutines it starts inherit the label): a profile's
		// -tagfocus phase=drain leaves out the pass that queued the writes.
		pprof.Do(ctx, pprof.Labels("phase", "drain"), func(ctx context.Context) {
			sum, err = e.Drain(ctx)
		})
		cpu += storetest.ProcessCPU() - start
		wall += time.Since(at)
		if err != nil || sum.WritesFailed != 0 || sum.WritesApplied == 0 {
			b.Fatalf("Drain: %+v, %v", sum, err)
		}
		writes = sum.WritesApplied
		nhisync.CloseConnectors(conns)
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(float64(writes), "writes")
}
