package file

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/storetest"
)

// BenchmarkStreamRewriteWide is the one-read rewrite's own work on an
// export of 200,000 rows of 26 columns (BenchmarkApplyWideCSV's file) read
// from memory and written to nowhere: the scan, the id lookups, the
// content hash and the rewritten rows, without the file system's reads,
// writes and fsync, so its cpu-ns/op is that work alone (ns/op waits for the
// machine's other work too).
func BenchmarkStreamRewriteWide(b *testing.B) {
	const rows = 200_000
	var file bytes.Buffer
	file.WriteString(wideHeader() + "\n")
	for i := range rows {
		wideRow(&file, i)
	}
	sys := conntest.System("big", "file")
	sys.Settings, sys.BaseDir = nhisync.Settings{"path": "big.csv"}, b.TempDir()
	c, err := New(sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
	var writes []nhisync.Write
	for i := 0; i < rows; i += 100 {
		writes = append(writes, nhisync.Write{ID: fmt.Sprintf("sa-%07d", i), Changes: []nhisync.Change{{Field: "owner",
			Old: nhisync.Str(fmt.Sprintf("owner%d@example.com", i%5000)), New: nhisync.Str("moved@example.com")}}})
	}
	byID := make(map[string][]int, len(writes))
	for i, w := range writes {
		byID[w.ID] = append(byID[w.ID], i)
	}
	f := c.format.(csvFormat)
	w := bufio.NewWriterSize(io.Discard, 256<<10)
	b.SetBytes(int64(file.Len()))
	b.ReportAllocs()
	cpu := storetest.ProcessCPU()
	for b.Loop() {
		out, dirty, err := c.streamRewrite(b.Context(), f, bytes.NewReader(file.Bytes()), w, writes, byID)
		if err != nil || !dirty {
			b.Fatalf("dirty %v, err %v", dirty, err)
		}
		for _, r := range out.res {
			if r.Status != nhisync.WriteApplied {
				b.Fatalf("write %s: %s %v", r.ID, r.Status, r.Err)
			}
		}
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// wideHeader is the header of a CSV export as wide as a CMDB's: the
// conformance columns and 18 unmapped ones (26 columns).
func wideHeader() string {
	header := strings.Join(conntest.Columns[:8], ",")
	for k := range 18 {
		header += fmt.Sprintf(",extra_%d", k)
	}
	return header
}

// wideRow writes the i-th row of wideHeader's export (about 330 bytes,
// quoted lists among its cells), line end included.
func wideRow(w io.Writer, i int) {
	fmt.Fprintf(w, "sa-%07d,bot-%d,aws,owner%d@example.com,\"internal,team-%d\",active,2026-01-02T03:04:05Z,\"note, %d\"", i, i, i%5000, i%7, i)
	fmt.Fprintf(w, ",CC-%04d,%d,cmdb_ci_service_account,rotates the deploy runner nightly,\"audit,billing,write\",Platform,app-%d,Risk Ops,eu-west-1,aws,%d.42,Installed,Operational,2024-07-28T23:15:06Z,2025-04-17T21:07:40Z,team%d@example.com,backstage,https://status.example.com/aws\n",
		i%10000, i%4, i%1000, i%5000, i%2000)
}
