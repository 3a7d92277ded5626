package scim_test

import (
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
)

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("NHISYNC_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

// BenchmarkSnapshot reads N suite records (default 10,000;
// NHISYNC_BENCH_N) from the SCIMMY server in pages of page_size (200),
// and reports records per second.
func BenchmarkSnapshot(b *testing.B) {
	n := benchN()
	reset(b)
	all := make([]map[string]any, n)
	for i := range all {
		all[i] = body(conntest.Record(i))
	}
	srv.Must(b, http.MethodPost, "/_load", all)
	sys := conntest.System("bench", "scim")
	sys.Settings = nhisync.Settings{"url": srv.URL, "token": "env:" + tokenEnv}
	d, _ := nhisync.LookupDriver("scim")
	c, err := d.Open(b.Context(), sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		got := 0
		if err := c.Snapshot(b.Context(), func(nhisync.Observation) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
