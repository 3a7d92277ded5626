package git_test

import (
	"fmt"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/connector/git"
)

// BenchmarkSnapshot10k reads 10,000 entities kept as 1,000 catalog files
// of ten documents each, committed in one repository on disk.
func BenchmarkSnapshot10k(b *testing.B) {
	const n, perFile = 10_000, 10
	g := newRepo(b, true)
	files := map[string][]byte{}
	for f := 0; f < n/perFile; f++ {
		var docs []map[string]any
		for i := f * perFile; i < (f+1)*perFile; i++ {
			docs = append(docs, conntest.Record(i))
		}
		files[fmt.Sprintf("teams/t%04d/catalog-info.yaml", f)] = encodeDocs(b, docs)
	}
	g.commit(b, "catalog", files)
	sys := conntest.System("big", "git")
	sys.Settings = nhisync.Settings{"repo": g.dir}
	c, err := git.Open(b.Context(), sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
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
