package file_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/connector/file"
	"github.com/nhisync/nhisync/storetest"
)

// BenchmarkSnapshotCSV reads a CSV export of a million service accounts
// (SPEC §8: a quiet pass may cost at most twice reading the inputs).
// cpu-ns/op is the process's CPU per snapshot (the machine's other work
// aside).
func BenchmarkSnapshotCSV(b *testing.B) {
	const rows = 1_000_000
	c := bigCSV(b, rows)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		n := 0
		start := storetest.ProcessCPU()
		if err := c.Snapshot(b.Context(), func(nhisync.Observation) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		cpu += storetest.ProcessCPU() - start
		if n != rows {
			b.Fatalf("%d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkApplyCSV writes a drift pass's 1% (2,000 owners) into a CSV
// export of 200,000 service accounts: one rewrite, the file streamed, so
// B/op stays far below the file's size (~24 MB). cpu-ns/op is the
// process's CPU per rewrite (the machine's other work aside; ns/op also
// waits for the new file's fsync).
func BenchmarkApplyCSV(b *testing.B) {
	benchApplyCSV(b, bigCSV)
}

// BenchmarkApplyWideCSV is BenchmarkApplyCSV on an export as wide as a
// CMDB's (26 columns, ~330 bytes a row, quoted lists among them; the
// benchmark command's CMDB is of this shape): the cells past a row's id
// dominate the rewrite's scan.
func BenchmarkApplyWideCSV(b *testing.B) {
	benchApplyCSV(b, wideCSV)
}

// benchApplyCSV writes 1% of 200,000 rows' owners, to and fro, into the
// CSV export open makes.
func benchApplyCSV(b *testing.B, open func(b *testing.B, rows int) *file.Connector) {
	const rows = 200_000
	c := open(b, rows)
	b.ReportAllocs()
	flip := false
	var cpu time.Duration
	for b.Loop() {
		start := storetest.ProcessCPU()
		var writes []nhisync.Write
		for i := 0; i < rows; i += 100 {
			old, nv := fmt.Sprintf("owner%d@example.com", i%5000), "moved@example.com"
			if flip {
				old, nv = nv, old
			}
			writes = append(writes, nhisync.Write{ID: fmt.Sprintf("sa-%07d", i), Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str(old), New: nhisync.Str(nv)}}})
		}
		flip = !flip
		res, err := c.Apply(b.Context(), writes)
		if err != nil {
			b.Fatal(err)
		}
		cpu += storetest.ProcessCPU() - start
		for _, r := range res {
			if r.Status != nhisync.WriteApplied {
				b.Fatalf("write %s: %s %v", r.ID, r.Status, r.Err)
			}
		}
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// bigCSV writes a CSV export of rows service accounts and opens it.
func bigCSV(b *testing.B, rows int) *file.Connector {
	return writeCSV(b, rows, strings.Join(conntest.Columns[:8], ","), func(w io.Writer, i int) {
		fmt.Fprintf(w, "sa-%07d,bot-%d,aws,owner%d@example.com,\"internal,team-%d\",active,2026-01-02T03:04:05Z,\"note, %d\"\n", i, i, i%5000, i%7, i)
	})
}

// wideCSV is bigCSV with 18 more (unmapped) columns a row.
func wideCSV(b *testing.B, rows int) *file.Connector {
	return writeCSV(b, rows, file.WideHeader(), file.WideRow)
}

// writeCSV writes a CSV file of header and rows rows (row writes the i-th,
// line end included) and opens it.
func writeCSV(b *testing.B, rows int, header string, row func(w io.Writer, i int)) *file.Connector {
	dir := b.TempDir()
	p := filepath.Join(dir, "big.csv")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, header)
	for i := range rows {
		row(w, i)
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
	return c
}
