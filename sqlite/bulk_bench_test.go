//go:build unix

package sqlite

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEndBulk closes a bulk window holding 100,000 records and
// 300,000 staged links (a first pass of 100,000 NHIs in three systems;
// ENDBULK_RECORDS sets another count). cpu-ns/op is the process's CPU,
// main-cpu-ns/op the calling thread's: closing the window is all a first
// pass does then, so on an idle core the sorter's threads cost no time
// and the calling thread's CPU is what the wall clock waits for. peak-rss-growth-bytes is the most
// the resident set grew during one EndBulk (Linux): memory SQLite's
// allocator kept from an earlier iteration is used again, so the first
// iteration's growth is the one that counts (run with -benchtime 1x).
func BenchmarkEndBulk(b *testing.B) {
	records := 100000
	if n, err := strconv.Atoi(os.Getenv("ENDBULK_RECORDS")); err == nil {
		records = n
	}
	var used, onMain time.Duration
	var grew int64
	for b.Loop() {
		b.StopTimer()
		s := openTest(b)
		beginBulk(b, s)
		stageLinks(b, s, records)
		runtime.GC()
		rss := resetPeakRSS()
		b.StartTimer()
		// EndBulk's statements run on this goroutine, kept on this
		// thread; SQLite's sorter threads are goroutines of their own.
		runtime.LockOSThread()
		cpu, mainCPU := processCPU(), threadCPU()
		if err := s.EndBulk(b.Context()); err != nil {
			b.Fatal(err)
		}
		used += processCPU() - cpu
		onMain += threadCPU() - mainCPU
		runtime.UnlockOSThread()
		if peak := peakRSS(); rss > 0 && peak > 0 {
			grew = max(grew, peak-rss)
		}
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(onMain.Nanoseconds())/float64(b.N), "main-cpu-ns/op")
	if grew > 0 {
		b.ReportMetric(float64(grew), "peak-rss-growth-bytes")
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPU is the CPU time (user and system) the calling thread has used
// (Linux: RUSAGE_THREAD; 0 elsewhere).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the process's peak resident set (Linux; 0 where it
// cannot) and returns the resident set now.
func resetPeakRSS() int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0
	}
	return statusKiB("VmRSS:")
}

// peakRSS is the process's peak resident set since the last reset.
func peakRSS() int64 { return statusKiB("VmHWM:") }

func statusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte(field))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}
