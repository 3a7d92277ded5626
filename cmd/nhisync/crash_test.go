package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nhisync/nhisync/quickstart"
)

var (
	crashSeed  = flag.Uint64("crash.seed", 0, "seed of the crash test's kill times (0: taken from the clock and logged)")
	crashKills = flag.Int("crash.kills", 8, "how many runs the crash test kills")
)

// nhisyncBinary is the command built once for the tests that run it as a
// subprocess; TestMain removes it.
var nhisyncBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if nhisyncBinary.dir != "" {
		os.RemoveAll(nhisyncBinary.dir)
	}
	os.Exit(code)
}

// binary builds the nhisync command (once per test run) and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	b := &nhisyncBinary
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("the go command is needed to build nhisync: %w", err)
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "nhisync-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "nhisync")
		if runtime.GOOS == "windows" {
			b.path += ".exe"
		}
		out, err := exec.Command(goTool, "build", "-o", b.path, ".").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// proc runs the nhisync binary on one workspace.
type proc struct {
	bin    string
	config string
}

// run runs the binary to completion.
func (p proc) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), p.bin, append([]string{"-c", p.config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("run nhisync: %v", err)
	}
	return r
}

// json runs a command with -o json that must succeed and decodes it.
func (p proc) json(t *testing.T, v any, args ...string) {
	t.Helper()
	r := p.run(t, append(args, "-o", "json")...)
	if r.code != exitOK {
		t.Fatalf("nhisync %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("nhisync %s -o json: %v", strings.Join(args, " "), err)
	}
}

// quiet reports whether a sync summary shows a pass that changed nothing
// (records and open_* count what is there, not what the pass did).
func quiet(sum map[string]any) bool {
	for k, v := range sum {
		if n, ok := v.(float64); ok && n != 0 && k != "records" && k != "duration_ms" && !strings.HasPrefix(k, "open_") {
			return false
		}
	}
	return true
}

// syncUntilQuiet runs passes until one changes nothing and returns how many
// it took.
func (p proc) syncUntilQuiet(t *testing.T) int {
	t.Helper()
	for pass := 1; pass <= 6; pass++ {
		var sum map[string]any
		p.json(t, &sum, "sync")
		if quiet(sum) {
			return pass
		}
	}
	t.Fatal("six passes without outside changes and still not quiet")
	return 0
}

// TestCrash kills `nhisync sync` at random moments of a pass over a few
// thousand records, then syncs without kills, and requires the outcome a
// clean run reaches: no accepted change lost, no write applied twice, no
// audit entry lost (SPEC §3.9).
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds the binary and runs a few dozen passes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL semantics")
	}
	bin := binary(t)
	root := t.TempDir()
	crashed, ref := filepath.Join(root, "crashed"), filepath.Join(root, "reference")
	sc, err := quickstart.Generate(crashed, quickstart.Options{Seed: 1, Accounts: 3000})
	if err != nil {
		t.Fatal(err)
	}
	copyDir(t, crashed, ref)
	c := proc{bin, sc.ConfigPath}
	r := proc{bin, filepath.Join(ref, quickstart.ConfigFile)}

	// The reference: clean passes until quiet; the first one's wall time
	// spreads the kills.
	start := time.Now()
	var first map[string]any
	r.json(t, &first, "sync")
	clean := time.Since(start)
	passes := r.syncUntilQuiet(t)
	t.Logf("reference: first pass %v, quiet after %d more", clean.Round(time.Millisecond), passes)

	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("kill seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	store := filepath.Join(crashed, quickstart.DataDir, "nhisync.db")
	kills := time.Duration(max(1, *crashKills))
	killed, leases := 0, 0
	refused := ""
	// A killed pass may leave the pass lease behind. The first time it
	// does, the next sync must still run; after that (and when it does
	// not), the lease is made to expire as its TTL would, so that the
	// kills and the checks of the data go on.
	deadLease := func() {
		if !leftLease(t, store) {
			return
		}
		leases++
		if leases == 1 {
			if res := c.run(t, "sync"); res.code != exitOK {
				refused = fmt.Sprintf("exit %d: %s", res.code, strings.TrimSpace(res.stderr))
			}
		}
		expireLease(t, store)
	}
	// One kill in each eighth of a clean pass, in random order, so that
	// every stage of a pass (reading, deciding, committing, writing,
	// checkpointing) is likely hit while the first, long pass is redone.
	var at []time.Duration
	for i := range kills {
		at = append(at, clean*i/kills+time.Duration(rng.Int64N(int64(clean/kills))))
	}
	rng.Shuffle(len(at), func(i, j int) { at[i], at[j] = at[j], at[i] })
	for i, after := range at {
		deadLease()
		outcome := killAfter(t, bin, c.config, after)
		if outcome == "killed" {
			killed++
		}
		t.Logf("run %d: SIGKILL after %v: %s", i+1, after.Round(time.Millisecond), outcome)
	}
	if killed == 0 {
		t.Fatal("no run was killed: the kills came after every pass ended")
	}
	deadLease()
	if refused != "" {
		t.Errorf("a killed pass left the pass lease behind (%d of %d kills did), and the sync after it was refused until the lease's TTL ends: %s", leases, killed, refused)
	}
	n := c.syncUntilQuiet(t)
	t.Logf("crashed workspace: quiet after %d passes without kills", n)

	t.Run("golden records", func(t *testing.T) {
		want, got := goldenValues(t, r), goldenValues(t, c)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("golden records differ from the clean run's (-reference +crashed):\n%s", diff)
			explainDiff(t, r, c, want, got)
		}
	})
	t.Run("system files", func(t *testing.T) {
		for _, f := range []string{quickstart.CMDBFile, quickstart.CatalogFile, quickstart.PolicyFile} {
			want, got := readFile(t, filepath.Join(ref, f)), readFile(t, filepath.Join(crashed, f))
			if want != got {
				t.Errorf("%s differs from the clean run's (-reference +crashed):\n%s", f, lineDiff(want, got))
			}
		}
		want, got := tableRows(t, filepath.Join(ref, quickstart.IDPFile)), tableRows(t, filepath.Join(crashed, quickstart.IDPFile))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s rows differ from the clean run's (-reference +crashed):\n%s", quickstart.IDPFile, diff)
		}
	})
	t.Run("open items", func(t *testing.T) {
		for _, list := range []string{"approvals", "quarantine", "conflicts"} {
			want, got := openItems(t, r, list), openItems(t, c, list)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("open %s differ from the clean run's (-reference +crashed):\n%s", list, diff)
			}
		}
	})
	t.Run("audit", func(t *testing.T) {
		if res := c.run(t, "audit", "verify"); res.code != exitOK {
			t.Errorf("audit verify after the crashes: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		var sum map[string]any
		c.json(t, &sum, "sync")
		if n := sum["writes_applied"].(float64) + sum["writes_planned"].(float64); n != 0 {
			t.Errorf("a final sync planned or applied %v writes", n)
		}
	})
}

// killAfter starts `nhisync sync` and SIGKILLs it after d, unless it ends
// first.
func killAfter(t *testing.T, bin, config string, d time.Duration) string {
	t.Helper()
	cmd := exec.Command(bin, "-c", config, "sync")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Sprintf("ended first with %v: %s", err, strings.TrimSpace(errb.String()))
		}
		return "ended first"
	case <-timer.C:
		if err := cmd.Process.Kill(); err != nil {
			<-done
			if errors.Is(err, os.ErrProcessDone) {
				return "ended first" // it exited just as the timer fired
			}
			t.Fatal(err)
		}
		<-done
		return "killed"
	}
}

// leftLease reports whether the store holds a pass lease (no nhisync
// process runs when it is called, so any lease is a dead one's).
func leftLease(t *testing.T, store string) bool {
	t.Helper()
	store = storeAsOpened(store)
	if _, err := os.Stat(store); errors.Is(err, os.ErrNotExist) {
		return false
	}
	db := openDB(t, store)
	defer db.Close()
	// A kill before the store's first migrations committed leaves a
	// store without the table (the next Open migrates it): no lease.
	var tables int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leases'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables == 0 {
		return false
	}
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM leases WHERE holder != ''").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// expireLease ends every lease, as its TTL passing would.
func expireLease(t *testing.T, store string) {
	t.Helper()
	db := openDB(t, storeAsOpened(store))
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "UPDATE leases SET expires = '2000-01-01T00:00:00.000000000Z' WHERE holder != ''"); err != nil {
		t.Fatal(err)
	}
}

// storeAsOpened is the file the next sqlite.Open of the store at path
// opens: a kill inside a bulk window without a WAL left the store as it
// was before the window beside it, which that Open puts back (the file
// at path is half written).
func storeAsOpened(path string) string {
	if pre := path + ".prewindow"; fileExists(pre) {
		return pre
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// goldenValues returns every golden record's field values by KIND/KEY.
func goldenValues(t *testing.T, p proc) map[string]map[string]string {
	t.Helper()
	var recs []struct {
		Kind   string `json:"kind"`
		Key    string `json:"key"`
		Fields map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"fields"`
	}
	p.json(t, &recs, "records")
	out := map[string]map[string]string{}
	for _, r := range recs {
		name := r.Kind + "/" + r.Key
		if out[name] != nil {
			t.Errorf("%s: two golden records", name)
		}
		fs := map[string]string{}
		for f, v := range r.Fields {
			if s := string(v.Value); s != "null" {
				fs[f] = s
			}
		}
		out[name] = fs
	}
	return out
}

// explainDiff logs, for the first few records whose golden values differ,
// their audit history in both runs, for the bug report.
func explainDiff(t *testing.T, r, c proc, want, got map[string]map[string]string) {
	t.Helper()
	shown := 0
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if cmp.Equal(want[name], got[name]) || got[name] == nil || shown == 3 {
			continue
		}
		shown++
		for _, side := range []struct {
			name string
			p    proc
		}{{"reference", r}, {"crashed", c}} {
			res := side.p.run(t, "history", name)
			t.Logf("history of %s in the %s run:\n%s", name, side.name, res.stdout)
		}
	}
}

// openItems returns the open items of a list command as
// "record field system value" lines, sorted.
func openItems(t *testing.T, p proc, list string) []string {
	t.Helper()
	var items []struct {
		Kind      string          `json:"kind"`
		Record    string          `json:"record"`
		Field     string          `json:"field"`
		System    string          `json:"system"`
		Value     json.RawMessage `json:"value"`
		Proposals []struct {
			System string          `json:"system"`
			Value  json.RawMessage `json:"value"`
		} `json:"proposals"`
	}
	p.json(t, &items, list)
	out := []string{}
	for _, it := range items {
		line := []string{it.Kind + "/" + it.Record, it.Field, it.System, string(it.Value)}
		// A conflict's proposals, by system and value (not by when).
		var ps []string
		for _, pr := range it.Proposals {
			ps = append(ps, pr.System+"="+string(pr.Value))
		}
		slices.Sort(ps)
		out = append(out, strings.Join(append(line, ps...), " "))
	}
	slices.Sort(out)
	return out
}

// tableRows returns the rows of the idp's table, each as its columns'
// text, in id order.
func tableRows(t *testing.T, path string) [][]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM service_accounts ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = cols[i] + "=" + v.String
			if !v.Valid {
				row[i] = cols[i] + " IS NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lineDiff returns the differing lines of two texts (at most 20).
func lineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(a), len(b)) && len(out) < 20; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n-%s\n+%s", i+1, x, y))
		}
	}
	if len(a) != len(b) {
		out = append(out, fmt.Sprintf("(%d lines against %d)", len(a), len(b)))
	}
	return strings.Join(out, "\n")
}

// copyDir copies a directory tree of regular files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
