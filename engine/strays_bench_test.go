package engine

import (
	"context"
	"testing"

	"github.com/nhisync/nhisync/storetest"
)

// BenchmarkQuietPassStraysEstate100k is BenchmarkQuietPassEstate100k with
// its quiet passes taking turns: one leaving the estate's unchanged
// unmatched records (2% of the NHIs, catalog rows no golden record
// matches) alone (leaveStrays), the next staging, matching and storing
// every one of them again, as passes did before. Taking turns in one
// process over one store, the two see the same machine: it reports each
// one's CPU seconds per pass (leave-cpu-s, restage-cpu-s) and their
// difference.
func BenchmarkQuietPassStraysEstate100k(b *testing.B) {
	ctx := context.Background()
	_, _, e := quietEstate(b, 100_000)
	defer func(on bool) { leaveStraysOn = on }(leaveStraysOn)
	var cpu [2]float64
	var runs [2]int
	i := 0
	for b.Loop() {
		leaveStraysOn = i%2 == 0
		start := storetest.ProcessCPU()
		sum, err := e.Sync(ctx, PassOptions{})
		cpu[i%2] += (storetest.ProcessCPU() - start).Seconds()
		runs[i%2]++
		if err != nil {
			b.Fatal(err)
		}
		if sum.WritesPlanned != 0 || sum.OpenUnmatched == 0 {
			b.Fatalf("a quiet pass planned %d writes and counted %d open unmatched", sum.WritesPlanned, sum.OpenUnmatched)
		}
		i++
	}
	if runs[1] == 0 {
		return
	}
	leave, restage := cpu[0]/float64(runs[0]), cpu[1]/float64(runs[1])
	b.ReportMetric(leave, "leave-cpu-s")
	b.ReportMetric(restage, "restage-cpu-s")
	b.ReportMetric(restage-leave, "saved-cpu-s")
}
