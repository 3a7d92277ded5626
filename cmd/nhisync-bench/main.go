// Command nhisync-bench measures nhisync end to end on a generated estate
// of N non-human identities across three systems — a CMDB export (CSV),
// a data catalog (CSV) and an identity provider (a SQLite table) — with
// the embedded SQLite store: the read floor (reading and decoding every
// input, nothing else), the first pass, a quiet pass, and a pass after
// drift in a share of the records. It prints wall times, writes and the
// process's peak memory (SPEC §8 targets). With --pg DSN the same passes
// run on the PostgreSQL store instead (an empty database: the bench
// refuses one that holds a workspace).
//
//	go run ./cmd/nhisync-bench -n 100000
//	go run ./cmd/nhisync-bench -n 100000 --pg postgres://postgres@127.0.0.1:5432/nhisync_bench?sslmode=disable
package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/config"
	_ "github.com/nhisync/nhisync/connector/file"
	_ "github.com/nhisync/nhisync/connector/sql"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/postgres"
	"github.com/nhisync/nhisync/sqlite"
)

const benchConfig = `version: 1
store: sqlite:./nhisync-data/nhisync.db
kinds:
  service_account:
    match: [platform, name]
    create_from: [idp, cmdb]
    retire_from: [idp]
    fields:
      name:           { type: string, required: true }
      platform:       { type: string, required: true }
      owner:          { type: string, authority: [cmdb, catalog] }
      classification: { type: set, resolve: merge }
      lifecycle:      { type: enum, values: [active, rotation_due, suspended, decommissioned], resolve: strictest }
    rules:
      - name: owner-is-email
        check: owner == "" || owner.matches('^[^@\\s]+@[^@\\s]+$')
systems:
  idp:
    connector: sql
    kind: service_account
    dsn: sqlite:./idp.db
    table: accounts
    id: id
    fields: { name: name, platform: platform, lifecycle: status }
  cmdb:
    connector: file
    kind: service_account
    path: ./cmdb.csv
    id: sys_id
    guard: off
    fields: { name: name, platform: platform, owner: owned_by, lifecycle: status, classification: tags }
  catalog:
    connector: file
    kind: service_account
    path: ./catalog.csv
    guard: off
    fields: { name: name, platform: platform, owner: steward, classification: tags }
`

var profile, profilePass, pgDSN string

type result struct {
	Store        string  `json:"store"`
	Records      int     `json:"records"`
	ReadFloorS   float64 `json:"read_floor_s"`
	FirstPassS   float64 `json:"first_pass_s"`
	QuietPassS   float64 `json:"quiet_pass_s"`
	DriftPassS   float64 `json:"drift_pass_s"`
	DriftRecords int     `json:"drift_records"`
	DriftWrites  int     `json:"drift_writes"`
	QuietRatio   float64 `json:"quiet_over_floor"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
}

func main() {
	n := flag.Int("n", 100000, "number of NHIs")
	drift := flag.Float64("drift", 0.01, "share of CMDB records whose owner changes before the drift pass")
	dir := flag.String("dir", "", "work directory (default: a new temporary one, removed afterwards)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.StringVar(&profile, "cpuprofile", "", "write a CPU profile of one pass (-profile-pass) to this file")
	flag.StringVar(&profilePass, "profile-pass", "quiet", "the pass to profile: first, quiet or drift")
	flag.StringVar(&pgDSN, "pg", "", "run on the PostgreSQL store of this (empty) database instead of SQLite")
	flag.Parse()
	if err := run(*n, *drift, *dir, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "nhisync-bench:", err)
		os.Exit(1)
	}
}

func run(n int, drift float64, dir string, asJSON bool) error {
	ctx := context.Background()
	if dir == "" {
		d, err := os.MkdirTemp("", "nhisync-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(os.Stderr, "generating %d NHIs in %s…\n", n, dir)
	if err := generate(dir, n); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "nhisync.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfig), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	res := result{Records: n}

	// The floor: read and decode every input, nothing else.
	start := time.Now()
	conns, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	for _, c := range conns {
		count := 0
		if err := c.Snapshot(ctx, func(nhisync.Observation) error { count++; return nil }); err != nil {
			return err
		}
	}
	res.ReadFloorS = time.Since(start).Seconds()

	// As the CLI does: the keys first, and every commit signs its audit
	// entries' checkpoint, so the figures include signing and the estate
	// can be synced by the CLI afterwards.
	keys, err := audit.OpenKeys(cfg.SigningKey, cfg.AuditSecret, cfg.AuditPublish, true, nil)
	if err != nil {
		return err
	}
	var store nhisync.Store
	if pgDSN != "" {
		store, err = postgres.OpenURL(ctx, pgDSN)
		if err == nil {
			if n, _, herr := store.AuditHead(ctx); herr != nil || n > 0 {
				store.Close()
				return fmt.Errorf("the --pg database already holds a workspace (%d audit entries, %v): give an empty database", n, herr)
			}
		}
		res.Store = "postgres"
	} else {
		store, err = sqlite.OpenURL(ctx, cfg.Store)
		res.Store = "sqlite"
	}
	if err != nil {
		return err
	}
	defer store.Close()
	store.SetNotary(keys.Notary)
	pass := func(label string) (*engine.Summary, float64, error) {
		conns, err := open(ctx, cfg)
		if err != nil {
			return nil, 0, err
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		e := engine.New(cfg, store, conns, engine.WithBatchSize(2000), engine.WithAuditSecret(keys.Secret))
		fmt.Fprintf(os.Stderr, "%s pass…\n", label)
		if profile != "" && label == profilePass {
			f, err := os.Create(profile)
			if err != nil {
				return nil, 0, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return nil, 0, err
			}
			defer pprof.StopCPUProfile()
		}
		start := time.Now()
		sum, err := e.Sync(ctx, engine.PassOptions{})
		return sum, time.Since(start).Seconds(), err
	}
	if _, res.FirstPassS, err = pass("first"); err != nil {
		return err
	}
	var sum *engine.Summary
	if sum, res.QuietPassS, err = pass("quiet"); err != nil {
		return err
	}
	if sum.WritesPlanned != 0 {
		return fmt.Errorf("quiet pass planned %d writes", sum.WritesPlanned)
	}
	res.DriftRecords, err = driftCMDB(filepath.Join(dir, "cmdb.csv"), drift)
	if err != nil {
		return err
	}
	if sum, res.DriftPassS, err = pass("drift"); err != nil {
		return err
	}
	res.DriftWrites = sum.WritesApplied
	res.QuietRatio = res.QuietPassS / res.ReadFloorS
	res.PeakRSSMiB = peakRSS()
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("NHIs                 %d across 3 systems (CSV, CSV, SQLite), %s store, %d CPUs\n", n, res.Store, runtime.NumCPU())
	fmt.Printf("read floor           %.2fs  (read and decode every input)\n", res.ReadFloorS)
	fmt.Printf("first pass           %.2fs\n", res.FirstPassS)
	fmt.Printf("quiet pass           %.2fs  (%.2f × the floor)\n", res.QuietPassS, res.QuietRatio)
	fmt.Printf("drift pass           %.2fs  (%d records changed, %d writes)\n", res.DriftPassS, res.DriftRecords, res.DriftWrites)
	fmt.Printf("peak memory (RSS)    %.0f MiB\n", res.PeakRSSMiB)
	return nil
}

func open(ctx context.Context, cfg *nhisync.Config) (map[string]nhisync.Connector, error) {
	conns := map[string]nhisync.Connector{}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		d, _ := nhisync.LookupDriver(sys.Connector)
		c, err := d.Open(ctx, sys, cfg.Kinds[sys.Kind])
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		conns[name] = c
	}
	return conns, nil
}

var (
	platforms = []string{"aws", "gcp", "azure", "k8s", "github"}
	statuses  = []string{"active", "active", "active", "rotation_due", "suspended"}
	tags      = []string{"pii", "pci", "internal", "public", "confidential"}
)

// generate writes the three systems: every NHI in the idp, 90% in the
// cmdb, 80% in the catalog; a few owners disagree.
func generate(dir string, n int) error {
	r := rand.New(rand.NewPCG(1, 2))
	db, err := sql.Open("sqlite", filepath.Join(dir, "idp.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE accounts(id TEXT PRIMARY KEY, name TEXT, platform TEXT, status TEXT, updated_at TEXT)`); err != nil {
		return err
	}
	cmdbF, err := os.Create(filepath.Join(dir, "cmdb.csv"))
	if err != nil {
		return err
	}
	defer cmdbF.Close()
	catF, err := os.Create(filepath.Join(dir, "catalog.csv"))
	if err != nil {
		return err
	}
	defer catF.Close()
	cmdb, cat := csv.NewWriter(cmdbF), csv.NewWriter(catF)
	cmdb.Write([]string{"sys_id", "name", "platform", "owned_by", "status", "tags", "cost_center"})
	cat.Write([]string{"name", "platform", "steward", "tags", "description"})
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	stmt, err := tx.Prepare(`INSERT INTO accounts VALUES (?,?,?,?,?)`)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("svc-%07d", i)
		platform := platforms[i%len(platforms)]
		status := statuses[r.IntN(len(statuses))]
		owner := fmt.Sprintf("team%d@example.com", r.IntN(500))
		tg := tags[r.IntN(len(tags))] + "," + tags[r.IntN(len(tags))]
		if _, err := stmt.Exec("i"+strconv.Itoa(i), name, platform, status, "2026-01-01T00:00:00Z"); err != nil {
			return err
		}
		if i%10 != 9 {
			cmdb.Write([]string{"c" + strconv.Itoa(i), name, platform, owner, status, tg, "cc-" + strconv.Itoa(i%40)})
		}
		if i%5 != 4 {
			steward := owner
			if i%50 == 0 {
				steward = "other@example.com"
			}
			cat.Write([]string{name, platform, steward, tg, "generated"})
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	cmdb.Flush()
	cat.Flush()
	if err := cmdb.Error(); err != nil {
		return err
	}
	return cat.Error()
}

// driftCMDB changes the owner of a share of the CMDB's records.
func driftCMDB(path string, share float64) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		return 0, err
	}
	every := int(1 / share)
	changed := 0
	for i := 1; i < len(rows); i++ {
		if i%every == 0 {
			rows[i][3] = "drifted" + strconv.Itoa(i) + "@example.com"
			changed++
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return 0, err
	}
	return changed, f.Close()
}

// peakRSS returns the process's peak resident memory in MiB (Linux).
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
