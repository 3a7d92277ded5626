package sql

import (
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/storetest"
)

// BenchmarkSweep: the end of a rowid read of a SQLite table of 100,000
// rows with random (GUID-like) ids (NHISYNC_BENCH_N) during which another
// connection committed and rows moved behind the read: the sweep walks
// every id and reads the rows the read missed.
func BenchmarkSweep(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("NHISYNC_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	db, err := stdsql.Open("sqlite", "file:"+filepath.Join(dir, "inv.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, owner TEXT)",
		fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM seq WHERE i < %d)
			INSERT INTO accounts SELECT lower(hex(randomblob(16))), 'bot-'||i, 'owner'||i||'@example.com' FROM seq`, n-1),
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	sys := &nhisync.System{Name: "inv", Connector: "sql", Kind: "service_account", ID: "id", Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"dsn": "sqlite:inv.db", "table": "accounts"}, BaseDir: dir,
		Fields: []*nhisync.Mapping{
			{Field: "name", Name: "name", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
			{Field: "owner", Name: "owner", Type: nhisync.TypeString, Direction: nhisync.DirBoth},
		}}
	c, err := New(b.Context(), sys, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if c.rowid == "" {
		b.Fatal("the table is read in id order, not by rowid")
	}
	conn, err := c.db.Conn(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// every: the read missed every every-th row (1%; all, as when VACUUM
	// numbered the rows afresh behind the read).
	for _, every := range []int{100, 1} {
		b.Run(fmt.Sprintf("missed-1-in-%d", every), func(b *testing.B) {
			s := &emitted{h: newIDHasher()}
			rows, err := db.Query("SELECT id FROM accounts ORDER BY _rowid_")
			if err != nil {
				b.Fatal(err)
			}
			i, missed := 0, 0
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					b.Fatal(err)
				}
				if i++; i%every == 0 {
					missed++
					continue
				}
				s.add(id)
			}
			rows.Close()
			s.freeze()
			b.ReportAllocs()
			cpu := storetest.ProcessCPU()
			for b.Loop() {
				clear(s.more)
				got := 0
				o := c.observer("", func(nhisync.Observation) error { got++; return nil })
				if _, err := c.sweep(b.Context(), conn, o, s); err != nil {
					b.Fatal(err)
				}
				if got != missed {
					b.Fatalf("the sweep emitted %d rows, want the %d missed", got, missed)
				}
			}
			b.ReportMetric((storetest.ProcessCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
