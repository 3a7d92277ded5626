package sql_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nsql "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/storetest"
)

// benchN is the table size of the snapshot benchmarks
// (NHISYNC_BENCH_N, default 100,000).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("NHISYNC_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// fillBench makes the suite's table of n records on s with one
// INSERT … SELECT on the server (generate_series / a recursive CTE).
func fillBench(b *testing.B, s *server, n int) {
	b.Helper()
	h := &serverHarness{s: s}
	s.exec(b, h.ddl("bench"))
	if s.kind == "postgres" {
		s.exec(b, fmt.Sprintf(`INSERT INTO bench SELECT 'sa-'||lpad(i::text, 7, '0'), 'bot-'||i, (ARRAY['aws','gcp','azure','k8s','github'])[i%%5+1],
			'owner'||i||'@example.com', ARRAY['internal','team-'||(i%%7)], 'active', timestamptz '2026-01-01' + i * interval '1 hour',
			'note '||i, 'cc-'||(100+i), now() FROM generate_series(0, %d) AS i`, n-1))
		return
	}
	// MariaDB's Sequence engine: seq_0_to_N is a table of 0…N.
	s.exec(b, fmt.Sprintf(`INSERT INTO bench SELECT CONCAT('sa-', LPAD(seq, 7, '0')), CONCAT('bot-', seq), ELT(seq %% 5 + 1, 'aws','gcp','azure','k8s','github'),
		CONCAT('owner', seq, '@example.com'), JSON_ARRAY('internal', CONCAT('team-', seq %% 7)), 'active',
		TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq HOUR, CONCAT('note ', seq), CONCAT('cc-', 100+seq), NOW(6) FROM seq_0_to_%d`, n-1))
}

func benchSnapshot(b *testing.B, s *server, n int) {
	sys := conntest.System("bench", "sql")
	sys.Settings = nhisync.Settings{"dsn": s.dsn, "table": "bench"}
	c, err := nsql.Open(b.Context(), sys, conntest.Kind())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	for b.Loop() {
		got := 0
		if err := c.Snapshot(b.Context(), func(nhisync.Observation) error {
			if got++; got%50_000 == 0 {
				// The live heap part-way: constant in n when pages are.
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(peak)/(1<<20), "live-heap-MB")
}

// benchClient times the native command-line client reading the same
// columns to /dev/null: the floor the connector is compared with.
func benchClient(b *testing.B, n int, name string, args ...string) {
	if _, err := exec.LookPath(name); err != nil {
		b.Fatalf("%s is not installed: %v", name, err)
	}
	b.ResetTimer()
	for b.Loop() {
		cmd := exec.Command(name, args...) // stdout: the null device
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

var benchCols = strings.Join([]string{conntest.IDName, conntest.NameName, conntest.PlatformName, conntest.OwnerName,
	conntest.TagsName, conntest.StatusName, conntest.RotatedName}, ", ")

// BenchmarkSnapshotPostgres: the connector's snapshot of n rows beside
// psql \copy of the same columns.
func BenchmarkSnapshotPostgres(b *testing.B) {
	n := benchN()
	s := pgDatabase(b)
	fillBench(b, s, n)
	b.Run("connector", func(b *testing.B) { benchSnapshot(b, s, n) })
	b.Run("psql-copy", func(b *testing.B) {
		benchClient(b, n, "psql", "-X", "-q", "-d", s.dsn, "-c",
			`\copy (SELECT `+benchCols+` FROM bench) TO '/dev/null'`)
	})
}

// BenchmarkSnapshotMariaDB: the connector's snapshot of n rows beside
// `mariadb -e` selecting the same columns.
func BenchmarkSnapshotMariaDB(b *testing.B) {
	n := benchN()
	s := mysqlDatabase(b)
	fillBench(b, s, n)
	b.Run("connector", func(b *testing.B) { benchSnapshot(b, s, n) })
	b.Run("mariadb-e", func(b *testing.B) {
		u, _ := url.Parse(s.dsn)
		pw, _ := u.User.Password()
		args := []string{"-h", u.Hostname(), "-P", u.Port(), "-u", u.User.Username(), "--quick", "-N", "-B"}
		if pw != "" {
			args = append(args, "-p"+pw)
		}
		args = append(args, strings.TrimPrefix(u.Path, "/"), "-e", "SELECT "+benchCols+" FROM bench")
		cmd := "mariadb"
		if _, err := exec.LookPath(cmd); err != nil {
			cmd = "mysql"
		}
		benchClient(b, n, cmd, args...)
	})
}

// BenchmarkSnapshotSQLite: the connector's snapshot of n rows of a SQLite
// table with a text primary key whose ids sort as the rows were inserted,
// beside a plain full scan of the same columns through database/sql.
func BenchmarkSnapshotSQLite(b *testing.B) {
	benchSQLite(b, benchN(), "printf('sa-%07d', i)")
}

// BenchmarkSnapshotSQLiteRandomIDs: as BenchmarkSnapshotSQLite, on a table
// of 300,000 rows (NHISYNC_BENCH_N) whose text ids are random, GUID-like,
// as an identity provider's are: their order is not the rows' order in
// the file.
func BenchmarkSnapshotSQLiteRandomIDs(b *testing.B) {
	n := 300_000
	if os.Getenv("NHISYNC_BENCH_N") != "" {
		n = benchN()
	}
	benchSQLite(b, n, "lower(hex(randomblob(16)))")
}

// benchSQLite fills a SQLite table of n rows, ids made by the SQL
// expression id (of the row number i), and reads it.
func benchSQLite(b *testing.B, n int, id string) {
	dir := b.TempDir()
	db := openDB(b, dir+"/bench.db")
	if _, err := db.Exec("CREATE TABLE bench (" + conntest.IDName + " TEXT PRIMARY KEY, " + strings.Join(conntest.Columns[1:], " TEXT, ") + " TEXT)"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM seq WHERE i < %d)
		INSERT INTO bench SELECT %s, 'bot-'||i, 'aws', 'owner'||i||'@example.com', 'internal,team-'||(i%%7),
		'active', '2026-01-01T00:00:00Z', 'note', 'cc' FROM seq`, n-1, id)); err != nil {
		b.Fatal(err)
	}
	// connector-changing: another connection writes one row while each
	// read is a few pages in (the cost of reading a table that changes
	// meanwhile).
	for _, changing := range []bool{false, true} {
		name := "connector"
		if changing {
			name += "-changing"
		}
		b.Run(name, func(b *testing.B) {
			sys := conntest.System("bench", "sql")
			sys.BaseDir = dir
			sys.Settings = nhisync.Settings{"dsn": "sqlite:bench.db", "table": "bench"}
			c, err := nsql.Open(b.Context(), sys, conntest.Kind())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			cpu := storetest.ProcessCPU()
			reads := 0
			for b.Loop() {
				got := 0
				reads++
				if err := c.Snapshot(b.Context(), func(nhisync.Observation) error {
					if got++; changing && got == 10_000 {
						// A new value: writing a row as it is changes nothing.
						if _, err := db.Exec("UPDATE bench SET "+conntest.NameName+" = ? WHERE _rowid_ = 1", fmt.Sprint("changed-", reads)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("%d rows", got)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric((storetest.ProcessCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
	b.Run("full-scan", func(b *testing.B) {
		cpu := storetest.ProcessCPU()
		for b.Loop() {
			rows, err := db.Query("SELECT " + strings.Join(conntest.Columns[:7], ", ") + " FROM bench")
			if err != nil {
				b.Fatal(err)
			}
			vals := make([]any, 7)
			dest := make([]any, 7)
			for i := range vals {
				dest[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(dest...); err != nil {
					b.Fatal(err)
				}
			}
			rows.Close()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric((storetest.ProcessCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	})
}
