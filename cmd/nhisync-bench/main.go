// Command nhisync-bench measures nhisync end to end on a generated estate
// of N non-human identities across three systems — a CMDB export (CSV),
// a data catalog (CSV) and an identity provider (a SQLite table) — with
// the embedded SQLite store: the read floor (best of three, reading,
// decoding, canonicalising and hashing every input), the first pass, a
// quiet pass, and a pass after drift in a share of the records. Per pass it
// prints wall and CPU time, writes, audit entries, peak memory and phases,
// and checks that every system converged to golden after the first and
// drift passes (SPEC §8 targets).
//
//	go run ./cmd/nhisync-bench -n 100000
//	go run ./cmd/nhisync-bench -n 100000 --pg postgres://postgres@127.0.0.1:5432/nhisync_bench?sslmode=disable
package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/jackc/pgx/v5"
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

// result is what -json prints (issue 10's shape, plus cpu_seconds).
type result struct {
	Records      int          `json:"records"`
	Systems      int          `json:"systems"`
	Store        string       `json:"store"`
	FloorSeconds float64      `json:"floor_seconds"`
	Passes       []passResult `json:"passes"`
	StoreBytes   int64        `json:"store_bytes"`
	Converged    bool         `json:"converged"`
	DriftRecords int          `json:"drift_records"`
}

// passResult is one pass: wall and CPU (user + system) seconds, writes
// applied, audit entries appended, the process's peak RSS during the pass,
// and wall seconds per phase.
type passResult struct {
	Name         string  `json:"name"`
	Seconds      float64 `json:"seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	Writes       int     `json:"writes"`
	AuditEntries int64   `json:"audit_entries"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	Phases       phases  `json:"phases"`
}

// phases splits a pass's wall time: read (state and every system),
// correlate, decide (without its commits), commit (the store commits of
// the decisions) and apply (guard, writes to systems and their commits).
type phases struct {
	Read      float64 `json:"read"`
	Correlate float64 `json:"correlate"`
	Decide    float64 `json:"decide"`
	Commit    float64 `json:"commit"`
	Apply     float64 `json:"apply"`
}

// cpuSeconds returns the process's CPU time so far (user + system).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
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
	res := result{Records: n, Systems: len(cfg.SystemNames)}

	// The floor, best of three: read and decode every input, and the
	// canonicalisation and hashing change detection needs, nothing else.
	for range 3 {
		f, err := floor(ctx, cfg)
		if err != nil {
			return err
		}
		if res.FloorSeconds == 0 || f < res.FloorSeconds {
			res.FloorSeconds = f
		}
	}

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
	pass := func(label string) (*engine.Summary, error) {
		conns, err := open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		ts := &timedStore{Store: store}
		var t phaseClock
		// The product's own batch size: no WithBatchSize.
		e := engine.New(cfg, ts, conns, engine.WithAuditSecret(keys.Secret), engine.WithProgress(t.progress))
		fmt.Fprintf(os.Stderr, "%s pass…\n", label)
		if profile != "" && label == profilePass {
			f, err := os.Create(profile)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return nil, err
			}
			defer pprof.StopCPUProfile()
		}
		entries, _, err := store.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		resetPeakRSS()
		cpu := cpuSeconds()
		t.start(ts)
		sum, err := e.Sync(ctx, engine.PassOptions{})
		if err != nil {
			return nil, err
		}
		pr := passResult{Name: label, CPUSeconds: cpuSeconds() - cpu, Writes: sum.WritesApplied, PeakRSSBytes: peakRSS()}
		pr.Seconds, pr.Phases = t.finish(ts)
		after, _, err := store.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		pr.AuditEntries = after - entries
		res.Passes = append(res.Passes, pr)
		return sum, nil
	}
	converged := true
	check := func(label string) error {
		bad, err := convergence(ctx, cfg, store)
		if err != nil {
			return err
		}
		if bad != "" {
			converged = false
			fmt.Fprintf(os.Stderr, "after the %s pass, not converged: %s\n", label, bad)
		}
		return nil
	}
	if _, err := pass("first"); err != nil {
		return err
	}
	if err := check("first"); err != nil {
		return err
	}
	sum, err := pass("quiet")
	if err != nil {
		return err
	}
	if sum.WritesPlanned != 0 {
		return fmt.Errorf("quiet pass planned %d writes", sum.WritesPlanned)
	}
	res.DriftRecords, err = driftCMDB(filepath.Join(dir, "cmdb.csv"), drift)
	if err != nil {
		return err
	}
	if _, err := pass("drift"); err != nil {
		return err
	}
	if err := check("drift"); err != nil {
		return err
	}
	res.Converged = converged
	if res.Store == "sqlite" {
		res.StoreBytes = dirBytes(filepath.Join(dir, "nhisync-data"))
	} else if conn, err := pgx.Connect(ctx, pgDSN); err == nil {
		_ = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&res.StoreBytes)
		conn.Close(ctx)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("NHIs        %d across %d systems (CSV, CSV, SQLite), %s store, %d CPUs\n", n, res.Systems, res.Store, runtime.NumCPU())
	fmt.Printf("read floor  %.2fs  (best of 3: read, decode, canonicalise and hash every input)\n", res.FloorSeconds)
	for _, p := range res.Passes {
		fmt.Printf("%-6s pass %7.2fs  cpu %6.2fs  %.1f× floor  writes %d  audit +%d  peak RSS %d MiB  (read %.2f correlate %.2f decide %.2f commit %.2f apply %.2f)\n",
			p.Name, p.Seconds, p.CPUSeconds, p.Seconds/res.FloorSeconds, p.Writes, p.AuditEntries, p.PeakRSSBytes>>20,
			p.Phases.Read, p.Phases.Correlate, p.Phases.Decide, p.Phases.Commit, p.Phases.Apply)
	}
	fmt.Printf("store       %d MiB; converged %v (%d CMDB records drifted)\n", res.StoreBytes>>20, res.Converged, res.DriftRecords)
	return nil
}

// floor reads and decodes every input and canonicalises and hashes each
// record as change detection does, and returns the seconds it took.
func floor(ctx context.Context, cfg *nhisync.Config) (float64, error) {
	start := time.Now()
	conns, err := open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		buf := make([]byte, 0, 256)
		var sink byte
		err := conns[name].Snapshot(ctx, func(obs nhisync.Observation) error {
			buf = buf[:0]
			for i, v := range obs.Values {
				if i < len(sys.Fields) {
					buf = sys.Fields[i].Type.Canonical(v).AppendBinary(buf)
				}
			}
			sum := sha256.Sum256(buf)
			sink ^= sum[0]
			return nil
		})
		if err != nil {
			return 0, err
		}
		_ = sink
	}
	return time.Since(start).Seconds(), nil
}

// timedStore is the store, with the time its commits take.
type timedStore struct {
	nhisync.Store
	commit time.Duration
}

func (s *timedStore) Commit(ctx context.Context, b *nhisync.Batch) error {
	start := time.Now()
	err := s.Store.Commit(ctx, b)
	s.commit += time.Since(start)
	return err
}

// phaseClock splits a pass's wall time by the engine's progress reports:
// reading ends at the last system's final read report, correlating at
// the first decide report, deciding at the last one; the store's commits
// in between are the commit phase, the rest of the pass is apply.
type phaseClock struct {
	begin, readEnd, decideStart, decideEnd time.Time
	commitAtDecideStart, commitAtDecideEnd time.Duration
	ts                                     *timedStore
}

func (t *phaseClock) start(ts *timedStore) { t.begin, t.ts = time.Now(), ts }

func (t *phaseClock) progress(p engine.Progress) {
	now := time.Now()
	switch p.Stage {
	case "read":
		if p.Total > 0 {
			t.readEnd = now
		}
	case "decide":
		if t.decideStart.IsZero() {
			t.decideStart, t.commitAtDecideStart = now, t.ts.commit
		}
		t.decideEnd, t.commitAtDecideEnd = now, t.ts.commit
	}
}

func (t *phaseClock) finish(ts *timedStore) (float64, phases) {
	end := time.Now()
	if t.readEnd.IsZero() {
		t.readEnd = t.begin
	}
	if t.decideStart.IsZero() {
		t.decideStart, t.decideEnd = t.readEnd, t.readEnd
		t.commitAtDecideStart, t.commitAtDecideEnd = ts.commit, ts.commit
	}
	commit := t.commitAtDecideEnd - t.commitAtDecideStart
	return end.Sub(t.begin).Seconds(), phases{
		Read:      t.readEnd.Sub(t.begin).Seconds(),
		Correlate: t.decideStart.Sub(t.readEnd).Seconds(),
		Decide:    (t.decideEnd.Sub(t.decideStart) - commit).Seconds(),
		Commit:    commit.Seconds(),
		Apply:     end.Sub(t.decideEnd).Seconds(),
	}
}

// convergence checks every system against the golden records: each live
// link's mapped, written fields hold the golden value, except fields with
// an open conflict or quarantine item or a pending approval. It returns
// "" when they all do, else the count and a first example.
func convergence(ctx context.Context, cfg *nhisync.Config, store nhisync.Store) (string, error) {
	excused := map[string]bool{} // record id, field
	key := func(id int64, field string) string { return strconv.FormatInt(id, 10) + "\x00" + field }
	cs, err := store.Conflicts(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		excused[key(c.RecordID, c.Field)] = true
	}
	qs, err := store.QuarantineItems(ctx, nhisync.ItemFilter{Status: nhisync.StatusOpen})
	if err != nil {
		return "", err
	}
	for _, q := range qs {
		excused[key(q.RecordID, q.Field)] = true
	}
	as, err := store.Approvals(ctx, nhisync.ItemFilter{Status: nhisync.StatusPending})
	if err != nil {
		return "", err
	}
	for _, a := range as {
		excused[key(a.RecordID, a.Field)] = true
	}
	var ids []int64
	if err := store.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error { ids = append(ids, h.ID); return nil }); err != nil {
		return "", err
	}
	// want[system][external id] = the golden record it links to.
	want := map[string]map[string]*nhisync.Record{}
	for _, name := range cfg.SystemNames {
		want[name] = map[string]*nhisync.Record{}
	}
	for start := 0; start < len(ids); start += 1000 {
		recs, err := store.LoadRecords(ctx, ids[start:min(start+1000, len(ids))])
		if err != nil {
			return "", err
		}
		for _, r := range recs {
			for _, l := range r.Links {
				if l.Status == nhisync.LinkLive && want[l.System] != nil {
					want[l.System][l.ExternalID] = r
				}
			}
		}
	}
	conns, err := open(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	bad, first := 0, ""
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		err := conns[name].Snapshot(ctx, func(obs nhisync.Observation) error {
			rec := want[name][obs.ID]
			if rec == nil {
				return nil // unmatched or disputed: not in step by design
			}
			for i, m := range sys.Fields {
				if i >= len(obs.Values) || !sys.Reads(m.Field) || !sys.Direction.Writes() || !m.Direction.Writes() || excused[key(rec.ID, m.Field)] {
					continue
				}
				got, golden := m.Type.Canonical(obs.Values[i]), m.Type.Canonical(rec.Value(m.Field))
				if !got.Equal(golden) {
					bad++
					if first == "" {
						first = fmt.Sprintf("%s %s %s = %v, golden %v", name, obs.ID, m.Field, got, golden)
					}
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	if bad == 0 {
		return "", nil
	}
	return fmt.Sprintf("%d fields differ from golden (first: %s)", bad, first), nil
}

// dirBytes returns the size of the files in dir.
func dirBytes(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
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
		// Names and ids in no order, as real estates have them: the store
		// gets keys at random, not appended in order.
		name := fmt.Sprintf("svc-%016x", uint64(i+1)*0x9e3779b97f4a7c15)
		platform := platforms[i%len(platforms)]
		status := statuses[r.IntN(len(statuses))]
		owner := fmt.Sprintf("team%d@example.com", r.IntN(500))
		tg := tags[r.IntN(len(tags))] + "," + tags[r.IntN(len(tags))]
		if _, err := stmt.Exec(guid(r), name, platform, status, "2026-01-01T00:00:00Z"); err != nil {
			return err
		}
		if i%10 != 9 {
			cmdb.Write([]string{guid(r), name, platform, owner, status, tg, "cc-" + strconv.Itoa(i%40)})
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

// guid returns a random GUID-like id.
func guid(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
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

// resetPeakRSS returns freed memory to the system and resets the
// process's peak resident memory (Linux: writing 5 to clear_refs), so
// peakRSS gives each pass's own peak, not the heap the last one left.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns the process's peak resident memory in bytes since the
// last resetPeakRSS (Linux; 0 elsewhere).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
