package http_test

import (
	"testing"

	"github.com/nhisync/nhisync"
)

// BenchmarkSnapshot10k lists 10,000 records from the test API, 500 a
// page (20 calls), as a full pass reads them.
func BenchmarkSnapshot10k(b *testing.B) {
	const n = 10_000
	a := newAPI(b, "page", true)
	fill(a, n)
	s := settings(a, "page")
	s["list"].(map[string]any)["size"] = 500
	sys := systemFor(s)
	c := openB(b, sys)
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		if err := c.Snapshot(b.Context(), func(nhisync.Observation) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
