package file_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/connector/file"
)

// BenchmarkSnapshotCSV reads a CSV export of a million service accounts
// (SPEC §8: a quiet pass may cost at most twice reading the inputs).
func BenchmarkSnapshotCSV(b *testing.B) {
	const rows = 1_000_000
	dir := b.TempDir()
	p := filepath.Join(dir, "big.csv")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, strings.Join(conntest.Columns[:8], ","))
	for i := range rows {
		fmt.Fprintf(w, "sa-%07d,bot-%d,aws,owner%d@example.com,\"internal,team-%d\",active,2026-01-02T03:04:05Z,\"note, %d\"\n", i, i, i%5000, i%7, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	sys := conntest.System("big", "file")
	sys.Settings, sys.BaseDir = nhisync.Settings{"path": "big.csv"}, dir
	c, err := file.New(sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := c.Snapshot(b.Context(), func(nhisync.Observation) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != rows {
			b.Fatalf("%d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
