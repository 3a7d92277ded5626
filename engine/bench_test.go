package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/storetest"
)

// benchWorld makes n records held by the three systems of baseConfig,
// with a few owners that disagree.
func benchWorld(b *testing.B, n int) *world {
	var idp, cmdb, cat []map[string]any
	for i := range n {
		id := fmt.Sprint(i)
		name := fmt.Sprintf("svc-%06d", i)
		owner := fmt.Sprintf("team%d@x", i%97)
		idp = append(idp, sa(id, "aws", name, "status", "active", "scopes", []any{"s3:read"}))
		cmdb = append(cmdb, sa(id, "aws", name, "owner", owner, "status", "active", "tags", []any{"pii"}))
		steward := owner
		if i%20 == 0 {
			steward = "other@x"
		}
		cat = append(cat, sa(id, "aws", name, "steward", steward, "tags", []any{"internal"}))
	}
	return newWorld(b, baseConfig+"    guard: off\n", map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": cat})
}

// BenchmarkFirstPass decides 2,000 NHIs seen for the first time in three
// systems, writes included.
func BenchmarkFirstPass(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		w := benchWorld(b, 2000)
		b.StartTimer()
		w.pass(engine.PassOptions{})
	}
}

// BenchmarkQuietPass reads 2,000 unchanged NHIs in three systems: the cost
// of a pass with nothing to do.
func BenchmarkQuietPass(b *testing.B) {
	w := benchWorld(b, 2000)
	w.pass(engine.PassOptions{})
	w.pass(engine.PassOptions{})
	for b.Loop() {
		if sum := w.pass(engine.PassOptions{}); sum.WritesPlanned != 0 {
			b.Fatalf("quiet pass planned %d writes", sum.WritesPlanned)
		}
	}
}

// BenchmarkPlan is the dry run over 2,000 unchanged NHIs.
func BenchmarkPlan(b *testing.B) {
	w := benchWorld(b, 2000)
	w.pass(engine.PassOptions{})
	for b.Loop() {
		w.pass(engine.PassOptions{DryRun: true})
	}
}

// BenchmarkQuietPass20k is BenchmarkQuietPass at 20,000 NHIs: loading
// every link head, reading every system, one hash compare per record.
func BenchmarkQuietPass20k(b *testing.B) {
	w := benchWorld(b, 20000)
	w.pass(engine.PassOptions{})
	w.pass(engine.PassOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if sum := w.pass(engine.PassOptions{}); sum.WritesPlanned != 0 {
			b.Fatalf("quiet pass planned %d writes", sum.WritesPlanned)
		}
	}
}

// BenchmarkFirstPlan20k plans the first pass over 20,000 NHIs in three
// systems: every observation staged, correlated and decided, nothing
// committed — the part of a first pass that holds the staged records.
func BenchmarkFirstPlan20k(b *testing.B) {
	w := benchWorld(b, 20000)
	b.ReportAllocs()
	for b.Loop() {
		if sum := w.pass(engine.PassOptions{DryRun: true}); sum.Records != 20000 {
			b.Fatalf("planned %d records, want 20000", sum.Records)
		}
	}
}

// appliedConn answers every write applied without sending it: what is
// left of a drain is the engine's and the store's part.
type appliedConn struct{ nhisync.Connector }

func (appliedConn) Apply(_ context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	res := make([]nhisync.WriteResult, len(ws))
	for i := range res {
		res[i].Status = nhisync.WriteApplied
	}
	return res, nil
}

// BenchmarkDrainOutcomes drains 2,000 queued updates to the catalog that
// the connector confirms: claiming them, checking the claim before each
// chunk leaves and committing each write's outcome (outbox row removed,
// link shadow moved, audit entry). The same writes are queued again
// before each drain.
func BenchmarkDrainOutcomes(b *testing.B) { benchDrainOutcomes(b, 2000, 1) }

// BenchmarkDrainOutcomes100k is BenchmarkDrainOutcomes in a store of
// 100,000 records linked to two systems, with a write queued to every
// 20th record's catalog link (5,000 writes, their links at random places
// of the links B-tree): what a first pass's drain pays at scale, where an
// outcome's links and records are no longer in any page cache.
func BenchmarkDrainOutcomes100k(b *testing.B) { benchDrainOutcomes(b, 100000, 20) }

// benchDrainOutcomes drains a write to the catalog link of every every-th
// of n records, each link's external id at a random place.
func benchDrainOutcomes(b *testing.B, n, every int) {
	var cmdb, catalog []map[string]any
	for i := range n {
		owner := fmt.Sprintf("o%d@x", i)
		cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", fmt.Sprintf("bot-%d", i), "owner", owner))
		ext := fmt.Sprintf("k%016x", uint64(i)*0x9e3779b97f4a7c15)
		if i%every == 0 {
			catalog = append(catalog, sa(ext, "aws", fmt.Sprintf("bot-%d", i)))
		} else {
			catalog = append(catalog, sa(ext, "aws", fmt.Sprintf("bot-%d", i), "steward", owner))
		}
	}
	want := (n + every - 1) / every
	w := newWorld(b, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
	down := w.process("first", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: &sync.Mutex{}, sent: map[string]int{}, fail: true}
	})
	ctx := context.Background()
	if _, err := down.Sync(ctx, engine.PassOptions{}); err != nil {
		b.Fatal(err)
	}
	queued, err := w.store.OutboxWrites(ctx, "catalog", nhisync.OutboxReady, time.Time{}, 0)
	if err != nil || len(queued) != want {
		b.Fatalf("%d catalog writes queued (%v), want %d", len(queued), err, want)
	}
	e := w.process("drain", func(c nhisync.Connector) nhisync.Connector { return appliedConn{c} })
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		w.clock.Advance(time.Hour)
		for _, o := range queued {
			o.NextAt, o.Attempts = w.clock.Now(), 0
		}
		if err := w.store.Commit(ctx, &nhisync.Batch{Outbox: queued}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := storetest.ProcessCPU()
		sum, err := e.Drain(ctx)
		cpu += storetest.ProcessCPU() - start
		if err != nil || sum.WritesApplied != want {
			b.Fatalf("Drain: applied %v, %v; want %d", sum, err, want)
		}
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*want), "cpu-ns/write")
}

// discardCommits is a store that drops every batch: a pass over it is
// always a first pass, and its decisions cost no store work.
type discardCommits struct{ nhisync.Store }

func (discardCommits) Commit(context.Context, *nhisync.Batch) error { return nil }

// BenchmarkFirstDecide20k decides the first pass over 20,000 NHIs in three
// systems as a pass does (batches prepared for the store, leaves encoded),
// with commits dropped: decide-cpu-ns/record, decide-B/record and
// decide-allocs/record are the decide phase's own CPU (its GC included)
// and allocation.
func BenchmarkFirstDecide20k(b *testing.B) {
	const n = 20000
	w := benchWorld(b, n)
	w.store = discardCommits{w.store.(*bulkCheck).Store}
	var cpu time.Duration
	var bytes, allocs uint64
	var start time.Duration
	var ms runtime.MemStats
	w.opts = append(w.opts, engine.WithProgress(func(p engine.Progress) {
		if p.Stage != "decide" {
			return
		}
		switch p.Done {
		case 0:
			runtime.ReadMemStats(&ms)
			bytes -= ms.TotalAlloc
			allocs -= ms.Mallocs
			start = storetest.ProcessCPU()
		case p.Total:
			cpu += storetest.ProcessCPU() - start
			runtime.ReadMemStats(&ms)
			bytes += ms.TotalAlloc
			allocs += ms.Mallocs
		}
	}))
	for b.Loop() {
		if sum := w.pass(engine.PassOptions{}); sum.Records != n {
			b.Fatalf("decided %d records, want %d", sum.Records, n)
		}
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "decide-cpu-ns/record")
	b.ReportMetric(float64(bytes)/float64(b.N*n), "decide-B/record")
	b.ReportMetric(float64(allocs)/float64(b.N*n), "decide-allocs/record")
}
