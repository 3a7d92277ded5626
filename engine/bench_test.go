package engine_test

import (
	"fmt"
	"testing"

	"github.com/nhisync/nhisync/engine"
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
