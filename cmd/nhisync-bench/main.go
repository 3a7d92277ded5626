// Command nhisync-bench measures nhisync end to end on a generated estate
// of N non-human identities across three systems — an identity provider
// (a SQLite table of 25 columns), a CMDB export (CSV, 26 columns) and a
// data catalog (CSV, 22 columns, no id column) — mapping ten fields (sets
// merged, an enum resolved strictest, a time, strings with authority, an
// enum settled by a person, an int, two rules) with a few percent of each
// kind of disagreement (internal/benchestate: owners differing, labels merged,
// lifecycle conflicts, quarantined owners, unmatched catalog rows, idp
// records vanishing before the drift pass). It times, with the embedded
// SQLite store, the read floor (best of three: reading, decoding,
// canonicalising and hashing every input), the first pass, a quiet pass
// and a pass after drift, one after the other in one process as nhisync
// serve runs them (the link heads a pass loaded kept for the next while
// none changes; -load-heads loads them every pass, as the CLI's one pass
// a process does). Per pass it prints wall and CPU time, writes,
// audit entries, peak memory and phases, and checks after the first and
// drift passes that every system holds the golden values except where
// engine.Drift says why not (held, quarantined, conflicted, reported).
// It ends with SPEC §8's verdict: each target's figure, its limit, met or
// missed (targets.go); -check exits 1 when any is missed.
//
//	go run ./cmd/nhisync-bench -n 100000
//	go run ./cmd/nhisync-bench -n 100000,300000 -md
//	go run ./cmd/nhisync-bench -n 1000000 -check
//	go run ./cmd/nhisync-bench -n 1000000 -load-heads
//	go run ./cmd/nhisync-bench -n 100000 -profile-pass first -cpuprofile cpu.out -memprofile heap.out
//	go run ./cmd/nhisync-bench -n 300000 -profile-pass first -trace first.trace
//	go run ./cmd/nhisync-bench -n 100000 --pg postgres://postgres@127.0.0.1:5432/nhisync_bench?sslmode=disable
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	"github.com/nhisync/nhisync/internal/benchestate"
	"github.com/nhisync/nhisync/postgres"
	"github.com/nhisync/nhisync/sqlite"
)

// options are the command's flags.
type options struct {
	ns                     []int
	drift                  float64
	dir                    string
	asJSON, asMD, check    bool
	cpuProfile, memProfile string
	traceFile              string
	profilePass, pgDSN     string
	jsonOut                string
	// loadHeads: every pass loads the link heads (the CLI's one pass a
	// process), none kept from the pass before (nhisync serve's).
	loadHeads bool
}

// result is what -json prints: issue 10's shape, plus CPU seconds, the
// estate's disagreement mix and what the convergence checks held back.
type result struct {
	Records      int     `json:"records"`
	Systems      int     `json:"systems"`
	Store        string  `json:"store"`
	FloorSeconds float64 `json:"floor_seconds"`
	// FloorCPUSeconds is the floor's CPU time (user + system), least of three.
	FloorCPUSeconds float64      `json:"floor_cpu_seconds"`
	Passes          []passResult `json:"passes"`
	StoreBytes      int64        `json:"store_bytes"`
	Converged       bool         `json:"converged"`
	// GenerateSeconds is the time generating the estate took (in no pass).
	GenerateSeconds float64         `json:"generate_seconds"`
	Mix             benchestate.Mix `json:"mix"`
	// Targets are SPEC §8's targets measured by this run (verdict), and
	// on the largest N's run of several, linearity in N (linearity).
	Targets []target `json:"targets"`
}

// passResult is one pass: wall and CPU (user + system) seconds, writes
// applied, audit entries appended, the process's peak RSS during the pass,
// wall seconds per phase, and (after the first and drift passes) what the
// convergence check found.
type passResult struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// SystemCPUSeconds is the kernel's part of CPUSeconds: on a virtual
	// machine much of it is the first touch of memory (page cache the
	// store grows into, temporary files), whose cost swings with what
	// the host has backed.
	SystemCPUSeconds float64 `json:"system_cpu_seconds"`
	Writes           int     `json:"writes"`
	AuditEntries     int64   `json:"audit_entries"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	// PeakHeapLiveBytes is the highest live heap a garbage collection
	// left during the pass (sampled every 50 ms).
	PeakHeapLiveBytes int64 `json:"peak_heap_live_bytes"`
	// WriteBytes is what the process wrote to storage during the pass
	// (Linux /proc/self/io write_bytes: the store, its WAL and
	// checkpoints, and the systems' files).
	WriteBytes int64 `json:"write_bytes"`
	// CancelledWriteBytes is the part of WriteBytes never written out, as
	// its file was truncated or deleted first (Linux
	// cancelled_write_bytes: SQLite's sorter's temporary files, a WAL
	// started over before its pages went to disk).
	CancelledWriteBytes int64 `json:"cancelled_write_bytes"`
	// MinorFaults is the page faults the process took during the pass
	// that no disk read served (getrusage ru_minflt): nearly all of them
	// first touches of memory the process had not used or had handed back.
	// On a virtual machine each costs far more than on bare metal (on the
	// one these figures were first taken on, ~13 µs of CPU), so they are
	// worth watching beside CPU seconds.
	MinorFaults int64 `json:"minor_faults"`
	// StealSeconds is the CPU time the hypervisor gave to others while
	// this machine's CPUs wanted to run, during the pass, summed over the
	// CPUs (Linux /proc/stat steal, machine-wide; 0 elsewhere): wall time
	// the pass lost to a busy host, which no change to nhisync wins back.
	StealSeconds float64      `json:"steal_seconds"`
	Phases       phases       `json:"phases"`
	Summary      passSummary  `json:"summary"`
	Check        *checkResult `json:"check,omitempty"`
}

// passSummary is the engine's account of a pass, the part the mix shows.
type passSummary struct {
	Created         int `json:"created"`
	Accepted        int `json:"accepted"`
	Refused         int `json:"refused"`
	Merged          int `json:"merged"`
	Quarantined     int `json:"quarantined"`
	ConflictsOpened int `json:"conflicts_opened"`
	OpenUnmatched   int `json:"open_unmatched"`
	Retired         int `json:"retired"`
	WritesPlanned   int `json:"writes_planned"`
	WritesHeld      int `json:"writes_held"`
	WritesFailed    int `json:"writes_failed"`
}

// phases splits a pass's wall time: read (state and every system),
// correlate, decide (the store committing the batch before beside it),
// and apply (the last commit, the guard, writes to systems and their
// commits); commit is the store's commit time within decide (phaseClock).
type phases struct {
	Read      float64 `json:"read"`
	Correlate float64 `json:"correlate"`
	Decide    float64 `json:"decide"`
	Commit    float64 `json:"commit"`
	Apply     float64 `json:"apply"`
	// EndBulk is the part of apply the store took to close its bulk
	// window (a first pass into an empty store), 0 without one.
	EndBulk float64 `json:"end_bulk"`
	// WriteBytes is what each phase wrote to storage (write_bytes), and
	// EndBulk's part of apply's.
	WriteBytes phaseBytes `json:"write_bytes"`
	// CPU is the process's CPU seconds (user + system, every goroutine
	// and SQLite's threads) in each phase, and EndBulk's part of apply's:
	// beside the wall times it says which phase waits (on a sync, on a
	// system) rather than computes.
	CPU phaseCPU `json:"cpu"`
}

// phaseCPU is the CPU seconds each phase took (cpuSeconds).
type phaseCPU struct {
	Read      float64 `json:"read"`
	Correlate float64 `json:"correlate"`
	Decide    float64 `json:"decide"`
	Apply     float64 `json:"apply"`
	EndBulk   float64 `json:"end_bulk"`
}

// phaseBytes is what each phase wrote to storage (writeBytes).
type phaseBytes struct {
	Read      int64 `json:"read"`
	Correlate int64 `json:"correlate"`
	Decide    int64 `json:"decide"`
	Apply     int64 `json:"apply"`
	EndBulk   int64 `json:"end_bulk"`
}

// rusage returns the process's resource usage so far (zero should
// getrusage fail).
func rusage() syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return syscall.Rusage{}
	}
	return ru
}

// cpuSeconds returns the process's CPU time so far (user + system).
func cpuSeconds() float64 {
	total, _ := cpuTimes()
	return total
}

// cpuTimes returns the process's CPU time so far (user + system) and
// its system part, from one getrusage.
func cpuTimes() (total, system float64) {
	ru := rusage()
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()
}

// minorFaults returns the process's minor page faults so far.
func minorFaults() int64 { return int64(rusage().Minflt) }

func main() { os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr)) }

// cli runs the command with these arguments and returns its exit code:
// 2 for bad arguments, 1 when a run fails, does not converge or (with
// -check) misses a target, else 0.
func cli(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("nhisync-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("n", "100000", "number of NHIs; several, comma-separated (100000,300000), run one after the other")
	fs.Float64Var(&o.drift, "drift", 0.01, "share of NHIs changed in a system before the drift pass")
	fs.StringVar(&o.dir, "dir", "", "work directory, kept (default: a new temporary one, removed afterwards)")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON (an array when -n names several)")
	fs.BoolVar(&o.asMD, "md", false, "print a Markdown results table (the README's)")
	fs.StringVar(&o.jsonOut, "json-out", "", "also write the results, as -json prints them (an array), to this file: with -md, the table and the figures behind it from one run")
	fs.BoolVar(&o.check, "check", false, "exit 1, naming them, when any of SPEC §8's targets is missed")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of one pass (-profile-pass) to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of one pass (-profile-pass) to this file, taken when its live heap was highest")
	fs.StringVar(&o.traceFile, "trace", "", "write an execution trace of one pass (-profile-pass) to this file (go tool trace): where its goroutines wait, which a CPU profile does not show")
	fs.StringVar(&o.profilePass, "profile-pass", "quiet", "the pass to profile: first, quiet or drift")
	fs.StringVar(&o.pgDSN, "pg", "", "run on the PostgreSQL store of this (empty) database instead of SQLite")
	fs.BoolVar(&o.loadHeads, "load-heads", false, "every pass loads every link head from the store, as the CLI's one pass a process does; by default the passes run as nhisync serve runs them, keeping the link heads a pass loaded for the next while none changes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var err error
	if o.ns, err = parseNs(*ns); err == nil && o.pgDSN != "" && len(o.ns) > 1 {
		err = fmt.Errorf("--pg takes one -n: each run needs an empty database")
	}
	if err == nil && (o.drift < 0 || o.drift > 1) {
		err = fmt.Errorf("-drift %v: want a share between 0 and 1", o.drift)
	}
	if entries, rerr := os.ReadDir(o.dir); err == nil && o.dir != "" && rerr == nil && len(entries) > 0 {
		err = fmt.Errorf("-dir %s holds %d entries: give a new or empty directory", o.dir, len(entries))
	}
	if err == nil && o.asJSON && o.asMD {
		err = fmt.Errorf("-json and -md: give one")
	}
	if err == nil && (fs.NArg() > 0 || !slices.Contains([]string{"first", "quiet", "drift"}, o.profilePass)) {
		err = fmt.Errorf("usage: nhisync-bench [-n N[,N…]] [-json|-md] [-check] [-drift SHARE] [-cpuprofile F] [-memprofile F] [-trace F] [-profile-pass first|quiet|drift] [-load-heads] [--pg DSN]")
	}
	if err != nil {
		fmt.Fprintln(stderr, "nhisync-bench:", err)
		return 2
	}
	if err := runAll(stdout, o); err != nil {
		fmt.Fprintln(stderr, "nhisync-bench:", err)
		return 1
	}
	return 0
}

// parseNs reads -n: one or more positive counts.
func parseNs(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n %q: want positive counts, comma-separated", s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// runAll runs the bench at every -n and prints the results with each
// target's verdict; it fails (after printing them) when any run did not
// converge or, with -check, when any target is missed.
func runAll(w io.Writer, o options) error {
	var results []*result
	m := machineNow()
	for _, n := range o.ns {
		dir := o.dir
		if dir != "" && len(o.ns) > 1 {
			dir = filepath.Join(dir, "n"+strconv.Itoa(n))
		}
		res, err := run(n, dir, o)
		if err != nil {
			return err
		}
		res.Targets = verdict(res)
		results = append(results, res)
		if !o.asJSON && !o.asMD {
			printText(w, res)
			printVerdict(w, res)
		}
	}
	linear := linearity(results)
	if len(linear) > 0 {
		largest := slices.MaxFunc(results, func(a, b *result) int { return a.Records - b.Records })
		largest.Targets = append(largest.Targets, linear...)
	}
	switch {
	case o.asJSON && len(results) == 1:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results[0]); err != nil {
			return err
		}
	case o.asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	case o.asMD:
		printMarkdown(w, m, machineNow(), results)
	case len(linear) > 0:
		printLinearity(w, linear)
	}
	if o.jsonOut != "" {
		// After the results are printed: a file that cannot be written
		// loses none of them.
		if err := writeJSONFile(o.jsonOut, results); err != nil {
			return errors.Join(err, outcome(results, o.check))
		}
	}
	return outcome(results, o.check)
}

// writeJSONFile writes results to path as an indented JSON array.
func writeJSONFile(path string, results []*result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json-out: %w", err)
	}
	return nil
}

// outcome is runAll's verdict on the printed results: an error when any
// run did not converge and, with check, naming every missed target
// (convergence among them) beside it.
func outcome(results []*result, check bool) error {
	var errs []error
	for _, r := range results {
		if !r.Converged {
			errs = append(errs, fmt.Errorf("the estate of %d NHIs did not converge (see the check of each pass)", r.Records))
		}
	}
	if bad := missed(results); check && len(bad) > 0 {
		errs = append(errs, fmt.Errorf("SPEC §8 targets missed: %s", strings.Join(bad, ", ")))
	}
	return errors.Join(errs...)
}

func run(n int, dir string, o options) (*result, error) {
	ctx := context.Background()
	if dir == "" {
		d, err := os.MkdirTemp("", "nhisync-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "generating %d NHIs in %s…\n", n, dir)
	genStart := time.Now()
	es, err := benchestate.Generate(dir, n, benchestate.DefaultMix(o.drift))
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	cfgPath := filepath.Join(dir, "nhisync.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchestate.Config), 0o644); err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	res := &result{Records: n, Systems: len(cfg.SystemNames), GenerateSeconds: time.Since(genStart).Seconds(), Mix: es.Mix}

	// The floor, best of three: read and decode every input, and the
	// canonicalisation and hashing change detection needs, nothing else.
	// Its CPU seconds too (the least of three), the fairer base on a
	// shared machine.
	for range 3 {
		cpu := cpuSeconds()
		f, err := floor(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if res.FloorSeconds == 0 || f < res.FloorSeconds {
			res.FloorSeconds = f
		}
		if c := cpuSeconds() - cpu; res.FloorCPUSeconds == 0 || c < res.FloorCPUSeconds {
			res.FloorCPUSeconds = c
		}
	}

	// As the CLI does: the keys first, and every commit signs its audit
	// entries' checkpoint, so the figures include signing and the estate
	// can be synced by the CLI afterwards.
	keys, err := audit.OpenKeys(cfg.SigningKey, cfg.AuditSecret, cfg.AuditPublish, true, nil)
	if err != nil {
		return nil, err
	}
	var store nhisync.Store
	if o.pgDSN != "" {
		store, err = postgres.OpenURL(ctx, o.pgDSN)
		if err == nil {
			if n, _, herr := store.AuditHead(ctx); herr != nil || n > 0 {
				store.Close()
				return nil, fmt.Errorf("the --pg database already holds a workspace (%d audit entries, %v): give an empty database", n, herr)
			}
		}
		res.Store = "postgres"
	} else {
		store, err = sqlite.OpenURL(ctx, cfg.Store)
		res.Store = "sqlite"
	}
	if err != nil {
		return nil, err
	}
	defer store.Close()
	store.SetNotary(keys.Notary)
	// The passes run as nhisync serve runs them, one after the other in
	// one process: each engine is new (and its connectors), but they share
	// the link heads a pass kept for the next (engine.WithHeadCache).
	heads := engine.NewHeadCache()
	pass := func(label string) (*passResult, error) {
		conns, err := nhisync.OpenConnectors(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer nhisync.CloseConnectors(conns)
		engineStore, ts := timed(store)
		var t phaseClock
		// The product's own batch size: no WithBatchSize.
		opts := []engine.Option{engine.WithAuditSecret(keys.Secret), engine.WithProgress(t.progress)}
		if !o.loadHeads {
			opts = append(opts, engine.WithHeadCache(heads))
		}
		e := engine.New(cfg, engineStore, conns, opts...)
		fmt.Fprintf(os.Stderr, "%s pass…\n", label)
		profiled := label == o.profilePass
		if o.cpuProfile != "" && profiled {
			f, err := os.Create(o.cpuProfile)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return nil, err
			}
			defer pprof.StopCPUProfile()
		}
		var tr *passTrace
		if o.traceFile != "" && profiled {
			if tr, err = startTrace(o.traceFile); err != nil {
				return nil, err
			}
			defer tr.stop() // on a failed pass; stopped, and its error heard, below
		}
		entries, _, err := store.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		resetPeakRSS()
		heap := watchHeap(o.memProfile != "" && profiled)
		cpu, sys := cpuTimes()
		written, cancelled, faults, stolen := writeBytes(), cancelledWriteBytes(), minorFaults(), stealSeconds()
		t.start(ts, written)
		sum, err := e.Sync(ctx, engine.PassOptions{})
		if err != nil {
			heap.finish("")
			return nil, err
		}
		wrote := writeBytes()
		cpuEnd, sysEnd := cpuTimes()
		pr := passResult{Name: label, CPUSeconds: cpuEnd - cpu, SystemCPUSeconds: sysEnd - sys, WriteBytes: wrote - written, CancelledWriteBytes: cancelledWriteBytes() - cancelled, Writes: sum.WritesApplied, PeakRSSBytes: peakRSS(), MinorFaults: minorFaults() - faults, StealSeconds: stealSeconds() - stolen}
		pr.Seconds, pr.Phases = t.finish(ts, wrote)
		if err := tr.stop(); err != nil { // after the figures: its file's writes are not the pass's
			heap.finish("")
			return nil, err
		}
		live, err := heap.finish(o.memProfile)
		if err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
		pr.PeakHeapLiveBytes = int64(live)
		after, _, err := store.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		pr.AuditEntries = after - entries
		pr.Summary = passSummary{Created: sum.Created, Accepted: sum.Accepted, Refused: sum.Refused, Merged: sum.Merged,
			Quarantined: sum.Quarantined, ConflictsOpened: sum.ConflictsOpened, OpenUnmatched: sum.OpenUnmatched,
			Retired: sum.Retired, WritesPlanned: sum.WritesPlanned, WritesHeld: sum.WritesHeld, WritesFailed: sum.WritesFailed}
		res.Passes = append(res.Passes, pr)
		return &res.Passes[len(res.Passes)-1], nil
	}
	converged := true
	check := func(p *passResult) error {
		c, err := convergence(ctx, cfg, store)
		if err != nil {
			return fmt.Errorf("convergence check after the %s pass: %w", p.Name, err)
		}
		p.Check = c
		if bad := c.String(); bad != "" {
			converged = false
			fmt.Fprintf(os.Stderr, "after the %s pass, not converged: %s\n", p.Name, bad)
		}
		return nil
	}
	first, err := pass("first")
	if err != nil {
		return nil, err
	}
	if err := check(first); err != nil {
		return nil, err
	}
	quiet, err := pass("quiet")
	if err != nil {
		return nil, err
	}
	if quiet.Summary.WritesPlanned != 0 {
		converged = false
		fmt.Fprintf(os.Stderr, "the quiet pass planned %d writes, want none\n", quiet.Summary.WritesPlanned)
	}
	if err := es.ApplyDrift(); err != nil {
		return nil, fmt.Errorf("drift the systems: %w", err)
	}
	drift, err := pass("drift")
	if err != nil {
		return nil, err
	}
	if drift.Summary.Retired != es.Vanished() {
		converged = false
		fmt.Fprintf(os.Stderr, "the drift pass retired %d of the %d records that vanished from the idp (the retirement guard held them?), want all\n", drift.Summary.Retired, es.Vanished())
	}
	if drift.Summary.WritesHeld > 0 {
		converged = false
		fmt.Fprintf(os.Stderr, "the drift pass held %d writes (a guard tripped?), want none\n", drift.Summary.WritesHeld)
	}
	if err := check(drift); err != nil {
		return nil, err
	}
	res.Converged = converged
	if res.Store == "sqlite" {
		res.StoreBytes = dirBytes(filepath.Join(dir, "nhisync-data"))
	} else if conn, err := pgx.Connect(ctx, o.pgDSN); err == nil {
		_ = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&res.StoreBytes)
		conn.Close(ctx)
	}
	return res, nil
}

func printText(w io.Writer, res *result) {
	fmt.Fprintf(w, "NHIs        %d across %d systems (SQLite table, CSV, CSV), %s store, %d CPUs; generated in %.1fs\n",
		res.Records, res.Systems, res.Store, runtime.NumCPU(), res.GenerateSeconds)
	fmt.Fprintf(w, "read floor  %.2fs  cpu %.2fs  (best of 3: read, decode, canonicalise and hash every input)\n", res.FloorSeconds, res.FloorCPUSeconds)
	for _, p := range res.Passes {
		fmt.Fprintf(w, "%-6s pass %7.2fs  cpu %6.2fs (sys %.2f, host took %.2f)  %.1f× floor  writes %d  audit +%d  peak RSS %d MiB, live heap %d MiB, %dk minor faults  wrote %d MiB (%d cancelled)  (read %.2f correlate %.2f decide %.2f commit %.2f apply %.2f, of it end bulk %.2f)\n",
			p.Name, p.Seconds, p.CPUSeconds, p.SystemCPUSeconds, p.StealSeconds, p.Seconds/res.FloorSeconds, p.Writes, p.AuditEntries, p.PeakRSSBytes>>20, p.PeakHeapLiveBytes>>20, p.MinorFaults/1000, p.WriteBytes>>20, p.CancelledWriteBytes>>20,
			p.Phases.Read, p.Phases.Correlate, p.Phases.Decide, p.Phases.Commit, p.Phases.Apply, p.Phases.EndBulk)
		b := p.Phases.WriteBytes
		fmt.Fprintf(w, "            wrote MiB: read %d correlate %d decide %d apply %d, of it end bulk %d\n", b.Read>>20, b.Correlate>>20, b.Decide>>20, b.Apply>>20, b.EndBulk>>20)
		c := p.Phases.CPU
		fmt.Fprintf(w, "            cpu s:     read %.2f correlate %.2f decide %.2f apply %.2f, of it end bulk %.2f\n", c.Read, c.Correlate, c.Decide, c.Apply, c.EndBulk)
		if p.Check != nil {
			fmt.Fprintf(w, "            after it: held back %s; out of step %d\n", heldBackString(p.Check.HeldBack), p.Check.Bad)
		}
	}
	fmt.Fprintf(w, "store       %d MiB (%.1f KB per NHI); converged %v (%d records drifted, %d idp records vanished)\n",
		res.StoreBytes>>20, float64(res.StoreBytes)/float64(res.Records)/1000, res.Converged, res.Mix.Counts["drift"], res.Mix.Counts["vanished"])
}

// floor reads and decodes every input and canonicalises and hashes each
// record as change detection does (benchestate.ReadFloor), and returns
// the seconds it took, opening the connectors included.
func floor(ctx context.Context, cfg *nhisync.Config) (float64, error) {
	start := time.Now()
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer nhisync.CloseConnectors(conns)
	if err := benchestate.ReadFloor(ctx, cfg, conns); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// timedStore is the store, with the time its commits take. The engine
// commits one batch while it decides the next, so Commit runs beside the
// progress reports: the total is atomic.
type timedStore struct {
	nhisync.Store
	commit atomic.Int64 // nanoseconds
	// endBulk, endBulkBytes and endBulkCPU are the time EndBulk took
	// (nanoseconds), what it wrote and the process's CPU time meanwhile
	// (nanoseconds; timedBulk).
	endBulk, endBulkBytes, endBulkCPU atomic.Int64
}

func (s *timedStore) Commit(ctx context.Context, b *nhisync.Batch) error {
	start := time.Now()
	err := s.Store.Commit(ctx, b)
	s.commit.Add(int64(time.Since(start)))
	return err
}

// LinksVersion is the store's (nhisync.LinksVersioner), or an error from
// a store without one: the engine then keeps no link heads, as with that
// store unwrapped.
func (s *timedStore) LinksVersion(ctx context.Context) (uint64, error) {
	lv, ok := s.Store.(nhisync.LinksVersioner)
	if !ok {
		return 0, errors.New("the store keeps no links version")
	}
	return lv.LinksVersion(ctx)
}

// timed wraps the store to time its commits. The engine finds the
// store's optional capabilities by type, as it does for the CLI, which
// does not wrap the store: the first pass's bulk path
// (nhisync.BulkLoader) and the link heads a pass loads a page at a time
// (nhisync.LinkHeadPager). The wrapper keeps each one the store has, and
// adds none it lacks: a bench of the product takes the product's paths.
// (The links' version, which tells whether kept link heads still hold,
// it passes on as the store answers: see LinksVersion.)
func timed(store nhisync.Store) (nhisync.Store, *timedStore) {
	ts := &timedStore{Store: store}
	sbl, bulk := store.(nhisync.BulkLoader)
	bl := &timedBulk{ts, sbl}
	hp, pager := store.(nhisync.LinkHeadPager)
	switch {
	case bulk && pager:
		return &struct {
			*timedStore
			nhisync.BulkLoader
			nhisync.LinkHeadPager
		}{ts, bl, hp}, ts
	case bulk:
		return &struct {
			*timedStore
			nhisync.BulkLoader
		}{ts, bl}, ts
	case pager:
		return &struct {
			*timedStore
			nhisync.LinkHeadPager
		}{ts, hp}, ts
	}
	return ts, ts
}

// timedBulk is a store's bulk path, with the time its EndBulk takes and
// what it writes.
type timedBulk struct {
	ts   *timedStore
	bulk nhisync.BulkLoader
}

func (b *timedBulk) BeginBulk(ctx context.Context) (bool, error) { return b.bulk.BeginBulk(ctx) }

func (b *timedBulk) EndBulk(ctx context.Context) error {
	start, written, cpu := time.Now(), writeBytes(), cpuSeconds()
	err := b.bulk.EndBulk(ctx)
	b.ts.endBulk.Add(int64(time.Since(start)))
	b.ts.endBulkBytes.Add(writeBytes() - written)
	b.ts.endBulkCPU.Add(int64((cpuSeconds() - cpu) * 1e9))
	return err
}

// phaseClock splits a pass's wall time by the engine's progress reports:
// reading ends at the last system's final read report, correlating at
// the first decide report, deciding at the last one, and the rest of the
// pass is apply (the last commit, the guard, the writes). Commit is the
// time the store spent committing between the first and the last decide
// report: the engine decides batch k+1 while the store commits batch k,
// so commit overlaps decide, and read + correlate + decide + apply make
// the pass.
type phaseClock struct {
	begin, readEnd, decideStart, decideEnd time.Time
	commitAtDecideStart, commitAtDecideEnd time.Duration
	ts                                     *timedStore
	// The bytes written (writeBytes) at begin and at each phase's end.
	begun, readWritten, decideStartWritten, decideEndWritten int64
	// The CPU seconds (cpuSeconds) at begin and at each phase's end.
	cpuBegun, readCPU, decideStartCPU, decideEndCPU float64
}

// start starts the clock of a pass, written being writeBytes at its start.
func (t *phaseClock) start(ts *timedStore, written int64) {
	t.begin, t.ts, t.begun, t.cpuBegun = time.Now(), ts, written, cpuSeconds()
	t.ts.endBulk.Store(0)
	t.ts.endBulkBytes.Store(0)
	t.ts.endBulkCPU.Store(0)
}

func (t *phaseClock) progress(p engine.Progress) {
	now := time.Now()
	switch p.Stage {
	case "read":
		if p.Total > 0 {
			t.readEnd, t.readWritten, t.readCPU = now, writeBytes(), cpuSeconds()
		}
	case "decide":
		c := time.Duration(t.ts.commit.Load())
		w, cpu := writeBytes(), cpuSeconds()
		if t.decideStart.IsZero() {
			t.decideStart, t.commitAtDecideStart, t.decideStartWritten, t.decideStartCPU = now, c, w, cpu
		}
		t.decideEnd, t.commitAtDecideEnd, t.decideEndWritten, t.decideEndCPU = now, c, w, cpu
	}
}

// finish returns the pass's wall time and its phases, written being
// writeBytes at its end.
func (t *phaseClock) finish(ts *timedStore, written int64) (float64, phases) {
	end, cpu := time.Now(), cpuSeconds()
	if t.readEnd.IsZero() {
		t.readEnd, t.readWritten, t.readCPU = t.begin, t.begun, t.cpuBegun
	}
	if t.decideStart.IsZero() {
		t.decideStart, t.decideEnd = t.readEnd, t.readEnd
		t.decideStartWritten, t.decideEndWritten = t.readWritten, t.readWritten
		t.decideStartCPU, t.decideEndCPU = t.readCPU, t.readCPU
	}
	return end.Sub(t.begin).Seconds(), phases{
		Read:      t.readEnd.Sub(t.begin).Seconds(),
		Correlate: t.decideStart.Sub(t.readEnd).Seconds(),
		Decide:    t.decideEnd.Sub(t.decideStart).Seconds(),
		Commit:    (t.commitAtDecideEnd - t.commitAtDecideStart).Seconds(),
		Apply:     end.Sub(t.decideEnd).Seconds(),
		EndBulk:   time.Duration(ts.endBulk.Load()).Seconds(),
		WriteBytes: phaseBytes{
			Read:      t.readWritten - t.begun,
			Correlate: t.decideStartWritten - t.readWritten,
			Decide:    t.decideEndWritten - t.decideStartWritten,
			Apply:     written - t.decideEndWritten,
			EndBulk:   ts.endBulkBytes.Load(),
		},
		CPU: phaseCPU{
			Read:      t.readCPU - t.cpuBegun,
			Correlate: t.decideStartCPU - t.readCPU,
			Decide:    t.decideEndCPU - t.decideStartCPU,
			Apply:     cpu - t.decideEndCPU,
			EndBulk:   time.Duration(ts.endBulkCPU.Load()).Seconds(),
		},
	}
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

// resetPeakRSS returns freed memory to the system and resets the
// process's peak resident memory (Linux: writing 5 to clear_refs), so
// peakRSS gives each pass's own peak, not the heap the last one left.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// writeBytes returns the bytes the process has caused to be written to
// storage so far (Linux; 0 elsewhere).
func writeBytes() int64 {
	return procField("/proc/self/io", "write_bytes:")
}

// cancelledWriteBytes returns the bytes of writeBytes that were never
// written out, their file truncated or deleted first (Linux; 0 elsewhere).
func cancelledWriteBytes() int64 {
	return procField("/proc/self/io", "cancelled_write_bytes:")
}

// stealSeconds returns the CPU time the hypervisor has taken from this
// machine so far, summed over its CPUs (Linux; 0 elsewhere).
func stealSeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseSteal(string(b))
}

// parseSteal reads the steal time of /proc/stat's first line, "cpu" then
// user, nice, system, idle, iowait, irq, softirq, steal… in clock ticks
// of USER_HZ, which Linux fixes at 100 a second for /proc/stat.
func parseSteal(stat string) float64 {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return float64(ticks) / 100
}

// peakRSS returns the process's peak resident memory in bytes since the
// last resetPeakRSS (Linux; 0 elsewhere).
func peakRSS() int64 { return procField("/proc/self/status", "VmHWM:") << 10 }

// procField returns the number after key in a /proc file, 0 when absent.
func procField(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) >= 1 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
