package engine

import (
	"context"
	"fmt"
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
func BenchmarkDrainEstate50k(b *testing.B) { benchDrainEstate(b, false) }

// BenchmarkPassDrainEstate50k is BenchmarkDrainEstate50k's drain as a
// pass's: under the pass lease's fence, whose outcomes are built a chunk
// ahead of their commit (commitJob).
func BenchmarkPassDrainEstate50k(b *testing.B) { benchDrainEstate(b, true) }

// benchDrainEstate drains the writes of a first pass over the estate of
// 50,000 NHIs, as a pass's drain under its lease when pass is set.
func benchDrainEstate(b *testing.B, pass bool) {
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
			if !pass {
				sum, err = e.Drain(ctx)
				return
			}
			sum, err = e.passDrain(ctx)
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

// passDrain drains as a pass does: under the pass lease, its fence
// carried by every claim and outcome commit.
func (e *Engine) passDrain(ctx context.Context) (*Summary, error) {
	now := e.clock.Now().UTC()
	const ttl = 2 * time.Minute
	if ok, err := e.store.AcquireLease(ctx, leaseName, e.holder, now, ttl); err != nil || !ok {
		return nil, fmt.Errorf("pass lease: %v, %w", ok, err)
	}
	defer func() { _ = e.store.ReleaseLease(context.WithoutCancel(ctx), leaseName, e.holder) }()
	fence, err := e.store.LeaseFence(ctx, leaseName, e.holder)
	if err != nil {
		return nil, err
	}
	sum := newSummary(e.cfg, false)
	return sum, e.drain(ctx, sum, now, nil, &held{fence: fence, ttl: ttl, leaseAt: now})
}
