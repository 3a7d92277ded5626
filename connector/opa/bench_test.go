package opa_test

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

// BenchmarkSnapshot reads a document of N suite records (default 10,000;
// NHISYNC_BENCH_N) from OPA in one GET, and reports records per second.
func BenchmarkSnapshot(b *testing.B) {
	n := benchN()
	p := docPath(b)
	doc := map[string]any{}
	for i := range n {
		r := conntest.Record(i)
		doc[r[conntest.IDName].(string)] = object(r)
	}
	srv.Must(b, http.MethodPut, "/v1/data/"+p, doc)
	sys := conntest.System("bench", "opa")
	sys.Settings = nhisync.Settings{"url": srv.URL, "path": p, "token": "env:" + tokenEnv}
	d, _ := nhisync.LookupDriver("opa")
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
