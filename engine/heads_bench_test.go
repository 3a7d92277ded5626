package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"testing"
	"time"

	"github.com/nhisync/nhisync/storetest"
)

// benchHeadIDs returns n GUID-like external ids (36 bytes, as the bench
// estate's), sorted as the store hands link heads out, and the same ids in
// a random order, as a system's read finds them.
func benchHeadIDs(n int) (sorted, shuffled []string) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		sorted = append(sorted, fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", i, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff))
	}
	shuffled = append([]string(nil), sorted...)
	r.Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	return sorted, shuffled
}

// BenchmarkHeadTableGet1M looks up a million ids, in read order, in a head
// table of a million: a quiet pass's one look-up per record read.
func BenchmarkHeadTableGet1M(b *testing.B) {
	const n = 1_000_000
	sorted, shuffled := benchHeadIDs(n)
	t := newHeadTable(n)
	for _, id := range sorted {
		t.add(id)
	}
	b.ResetTimer()
	start := storetest.ProcessCPU()
	for b.Loop() {
		for _, id := range shuffled {
			if t.get(id) == nil {
				b.Fatal("missing")
			}
		}
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-start).Nanoseconds())/float64(b.N)/n, "cpu-ns/get")
}

// BenchmarkHeadTableAdd1M adds a million ids in the store's order to a
// table sized for them: loading a system's link heads.
func BenchmarkHeadTableAdd1M(b *testing.B) {
	const n = 1_000_000
	sorted, _ := benchHeadIDs(n)
	start := storetest.ProcessCPU()
	for b.Loop() {
		t := newHeadTable(n)
		for _, id := range sorted {
			t.add(id)
		}
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-start).Nanoseconds())/float64(b.N)/n, "cpu-ns/add")
}

// BenchmarkHeadTableWarmGet1M is BenchmarkHeadTableGet1M with the ids
// looked up a batch at a time, each batch warmed first (warm).
func BenchmarkHeadTableWarmGet1M(b *testing.B) {
	const n = 1_000_000
	sorted, shuffled := benchHeadIDs(n)
	t := newHeadTable(n)
	for _, id := range sorted {
		t.add(id)
	}
	var sink uint32
	b.ResetTimer()
	start := storetest.ProcessCPU()
	for b.Loop() {
		sink += warmGetAll(b, t, shuffled)
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-start).Nanoseconds())/float64(b.N)/n, "cpu-ns/get")
	_ = sink
}

// BenchmarkHeadTableAll1M walks a table of a million heads, added in the
// store's order, once (all), as correlation's sweep walks each system's
// heads, reading each head's status and its id's length.
func BenchmarkHeadTableAll1M(b *testing.B) {
	const n = 1_000_000
	sorted, _ := benchHeadIDs(n)
	t := newHeadTable(n)
	for _, id := range sorted {
		hd, _ := t.add(id)
		hd.recordID, hd.status, hd.seen = 1, stateLive, true
	}
	live, bytes := 0, 0
	b.ResetTimer()
	start := storetest.ProcessCPU()
	for b.Loop() {
		for id, h := range t.all() {
			if h.recordID != 0 && h.status == stateLive {
				live++
			}
			bytes += len(id)
		}
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-start).Nanoseconds())/float64(b.N)/n, "cpu-ns/head")
	if live != b.N*n || bytes == 0 {
		b.Fatalf("walked %d live heads, want %d", live, b.N*n)
	}
}

// BenchmarkHeadTableAddRun1M is BenchmarkHeadTableAdd1M with the ids added
// a run at a time (addRun).
func BenchmarkHeadTableAddRun1M(b *testing.B) {
	const n = 1_000_000
	sorted, _ := benchHeadIDs(n)
	var sink uint32
	start := storetest.ProcessCPU()
	for b.Loop() {
		t := newHeadTable(n)
		for i := 0; i < len(sorted); i += addRunLen {
			sink += t.addRun(sorted[i:min(i+addRunLen, len(sorted))], func(int, *head, bool) {})
		}
	}
	b.ReportMetric(float64((storetest.ProcessCPU()-start).Nanoseconds())/float64(b.N)/n, "cpu-ns/add")
	_ = sink
}

// BenchmarkHeadTableColdPass1M loads a million heads in the store's order
// into a new table, a run at a time, and looks each up once in read order,
// warmed a run at a time, as a quiet pass does with a system's heads; the
// memory the table had is handed back to the system before each (as a
// pass starts: one pass per process, and nhisync-bench frees the memory
// before each), so the table's pages are faulted in afresh, which a table
// built over memory the process still holds does not show.
func BenchmarkHeadTableColdPass1M(b *testing.B) {
	const n = 1_000_000
	sorted, shuffled := benchHeadIDs(n)
	var sink uint32
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		debug.FreeOSMemory()
		b.StartTimer()
		start := storetest.ProcessCPU()
		t := newHeadTable(n)
		for i := 0; i < len(sorted); i += addRunLen {
			sink += t.addRun(sorted[i:min(i+addRunLen, len(sorted))], func(int, *head, bool) {})
		}
		sink += warmGetAll(b, t, shuffled)
		cpu += storetest.ProcessCPU() - start
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/n, "cpu-ns/head")
	_ = sink
}

// warmGetAll looks every id up in t a batch at a time, each batch warmed
// first (warm), as a pass looks up the records it read; it returns what
// warm returned, summed, for the caller's sink.
func warmGetAll(b *testing.B, t *headTable, ids []string) uint32 {
	var sink uint32
	for i := 0; i < len(ids); i += warmRun {
		batch := ids[i:min(i+warmRun, len(ids))]
		sink += t.warm(batch)
		for _, id := range batch {
			if t.get(id) == nil {
				b.Fatal("missing")
			}
		}
	}
	return sink
}
