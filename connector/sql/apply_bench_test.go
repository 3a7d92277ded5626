package sql_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/storetest"
)

// applyChunk is how many writes one Apply call of the benchmarks carries:
// the engine's chunk.
const applyChunk = 500

// benchApply applies a chunk of applyChunk conditional writes to rows
// spread over a table of n rows made by fillBench or benchSQLite (ids
// sa-0000000…, owner ownerI@example.com, status active, tags internal
// and team-I%7), each changing the owner, the lifecycle and the
// classification (a set); the next op changes them back, so every write
// applies. It reports CPU and wall time per write.
func benchApply(b *testing.B, sys *nhisync.System, n int) {
	c, err := nsql.Open(b.Context(), sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	stride := max(1, n/applyChunk)
	tags := func(k int) nhisync.Value { return nhisync.SetOf("internal", fmt.Sprintf("team-%d", k%7)) }
	chunk := func(back bool) []nhisync.Write {
		writes := make([]nhisync.Write, 0, applyChunk)
		for j := 0; j < applyChunk && j*stride < n; j++ {
			k := j * stride
			from := []nhisync.Value{nhisync.Str(fmt.Sprintf("owner%d@example.com", k)), nhisync.Str("active"), tags(k)}
			to := []nhisync.Value{nhisync.Str(fmt.Sprintf("alt%d@example.com", k)), nhisync.Str("suspended"), nhisync.SetOf("internal", fmt.Sprintf("team-%d", k%7), "batch")}
			if back {
				from, to = to, from
			}
			writes = append(writes, nhisync.Write{ID: fmt.Sprintf("sa-%07d", k), Changes: []nhisync.Change{
				{Field: "owner", Old: from[0], New: to[0]},
				{Field: "lifecycle", Old: from[1], New: to[1]},
				{Field: "classification", Old: from[2], New: to[2]},
			}})
		}
		return writes
	}
	chunks := [2][]nhisync.Write{chunk(false), chunk(true)}
	b.ReportAllocs()
	cpu := storetest.ProcessCPU()
	start := time.Now()
	ops := 0
	for b.Loop() {
		writes := chunks[ops%2]
		ops++
		res, err := c.Apply(b.Context(), writes)
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range res {
			if r.Status != nhisync.WriteApplied {
				b.Fatalf("write %d (%s): %s %v", i, writes[i].ID, r.Status, r.Err)
			}
		}
	}
	writes := float64(ops * len(chunks[0]))
	b.ReportMetric((storetest.ProcessCPU()-cpu).Seconds()/float64(ops), "cpu-s/op")
	b.ReportMetric(float64((storetest.ProcessCPU()-cpu).Microseconds())/writes, "cpu-µs/write")
	b.ReportMetric(float64(time.Since(start).Microseconds())/writes, "µs/write")
}

// BenchmarkApplySQLite: a chunk of 500 conditional writes to a SQLite
// table of 100,000 rows (NHISYNC_BENCH_N) with a text primary key.
func BenchmarkApplySQLite(b *testing.B) {
	n := benchN()
	dir := b.TempDir()
	db := openDB(b, dir+"/bench.db")
	if _, err := db.Exec("CREATE TABLE bench (" + conntest.IDName + " TEXT PRIMARY KEY, " + strings.Join(conntest.Columns[1:], " TEXT, ") + " TEXT)"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM seq WHERE i < %d)
		INSERT INTO bench SELECT printf('sa-%%07d', i), 'bot-'||i, 'aws', 'owner'||i||'@example.com', 'internal,team-'||(i%%7),
		'active', '2026-01-01T00:00:00Z', 'note', 'cc' FROM seq`, n-1)); err != nil {
		b.Fatal(err)
	}
	sys := conntest.System("bench", "sql")
	sys.BaseDir = dir
	sys.Settings = nhisync.Settings{"dsn": "sqlite:bench.db", "table": "bench"}
	benchApply(b, sys, n)
}

// BenchmarkApplyPostgres: BenchmarkApplySQLite on PostgreSQL (text[]
// tags); the CPU is this process's only, the server's is not in it.
func BenchmarkApplyPostgres(b *testing.B) {
	n := benchN()
	s := pgDatabase(b)
	fillBench(b, s, n)
	sys := conntest.System("bench", "sql")
	sys.Settings = nhisync.Settings{"dsn": s.dsn, "table": "bench"}
	benchApply(b, sys, n)
}

// BenchmarkApplyMariaDB: BenchmarkApplySQLite on MariaDB (JSON tags); the
// CPU is this process's only, the server's is not in it.
func BenchmarkApplyMariaDB(b *testing.B) {
	n := benchN()
	s := mysqlDatabase(b)
	fillBench(b, s, n)
	sys := conntest.System("bench", "sql")
	sys.Settings = nhisync.Settings{"dsn": s.dsn, "table": "bench"}
	benchApply(b, sys, n)
}
