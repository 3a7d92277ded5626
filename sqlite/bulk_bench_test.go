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

// stageLinks fills an open bulk window as a first pass of records NHIs in
// three systems leaves it, by SQL: records in id order with scattered
// match keys, three links a record staged in record order with scattered
// external ids (one run), their states appended.
func stageLinks(tb testing.TB, s *Store, records int) {
	tb.Helper()
	ctx := tb.Context()
	for _, q := range []string{
		`INSERT INTO link_systems (id, name) VALUES (1, 'idp'), (2, 'cmdb'), (3, 'catalog')`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO records (id, kind, match_key, key, state)
		SELECT i, 'service_account', printf('aws%08x%d', (i * 2654435761) % 4294967291, i), printf('aws/svc-%d', i), zeroblob(120) FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * ? - 1)
		INSERT INTO link_state (id, state) SELECT i + 1, zeroblob(150) FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * ? - 1)
		INSERT INTO links_stage (state_id, system_id, ext_id, record_id, status, hash)
		SELECT i + 1, i % 3 + 1, printf('%08x-%04x-%012x', (i * 2654435761) % 4294967291, i / 3 % 65536, (i * 40503) % 281474976710597), i / 3 + 1, 'live', zeroblob(32) FROM n`,
		`INSERT INTO links_stage_runs (first_state, last_state, min_record, max_record)
		SELECT min(state_id), max(state_id), min(record_id), max(record_id) FROM links_stage`,
	} {
		args := []any{records}
		if q[0] == 'I' {
			args = nil
		}
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			tb.Fatal(err)
		}
	}
	// The fill itself is checkpointed before EndBulk is measured.
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkEndBulk closes a bulk window holding 100,000 records and
// 300,000 staged links (a first pass of 100,000 NHIs in three systems;
// ENDBULK_RECORDS sets another count). peak-rss-growth-bytes is the most
// the resident set grew during one EndBulk (Linux): memory SQLite's
// allocator kept from an earlier iteration is used again, so the first
// iteration's growth is the one that counts (run with -benchtime 1x).
func BenchmarkEndBulk(b *testing.B) {
	records := 100000
	if n, err := strconv.Atoi(os.Getenv("ENDBULK_RECORDS")); err == nil {
		records = n
	}
	var used time.Duration
	var grew int64
	for b.Loop() {
		b.StopTimer()
		s := openTest(b)
		if open, err := s.BeginBulk(b.Context()); err != nil || !open {
			b.Fatalf("BeginBulk = %v, %v", open, err)
		}
		stageLinks(b, s, records)
		runtime.GC()
		rss := resetPeakRSS()
		b.StartTimer()
		cpu := processCPU()
		if err := s.EndBulk(b.Context()); err != nil {
			b.Fatal(err)
		}
		used += processCPU() - cpu
		if peak := peakRSS(); rss > 0 && peak > 0 {
			grew = max(grew, peak-rss)
		}
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
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
