// Package quickstart owns the demo workspace behind "nhisync quickstart":
// a commented nhisync.yaml and four small systems (a CMDB CSV export, a
// data-catalog YAML file, an identity provider on SQLite and a policy
// engine's JSON file) holding a few hundred non-human identities that
// mostly agree, with realistic drift planted among them. The same seed
// always yields the same workspace, and the returned Scenario names the
// accounts that carry each planted case.
//
// It only writes data; running a sync over it is the engine's job.
package quickstart

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nhisync/nhisync"
)

// Options tune Generate.
type Options struct {
	// Seed picks the population; equal seeds give identical files.
	Seed int64
	// Accounts is how many distinct identities to spread over the four
	// systems (default DefaultAccounts, from MinAccounts to MaxAccounts).
	Accounts int
	// Force replaces an earlier quickstart workspace in the directory: it
	// removes only the files Generate writes (and nhisync-data/, the state
	// a sync made of them) and leaves anything else alone.
	Force bool
	// Now is the moment the data is dated against: rotations and updates
	// fall in the year before it. Zero means DefaultNow, so the files
	// depend on the seed alone.
	Now time.Time
}

// Limits and defaults of Options.
const (
	DefaultAccounts = 200
	MinAccounts     = 40
	MaxAccounts     = 1_000_000
)

// DefaultNow is the reference time used when Options.Now is zero.
var DefaultNow = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Workspace paths, relative to the directory Generate writes into.
const (
	ConfigFile  = "nhisync.yaml"
	DataDir     = "nhisync-data"
	CMDBFile    = "systems/cmdb.csv"
	CatalogFile = "systems/catalog.yaml"
	IDPFile     = "systems/idp.db"
	PolicyFile  = "systems/policy.json"
	AppsFile    = "systems/apps.csv"
)

// ownFiles are every path Generate creates or that exists because of it
// (SQLite's side files, a sync's state), in the order they are checked:
// the config first, so a refusal names it when it is there.
var ownFiles = []string{ConfigFile, CMDBFile, CatalogFile, IDPFile,
	IDPFile + "-journal", IDPFile + "-wal", IDPFile + "-shm", PolicyFile, AppsFile, DataDir}

// Generate writes a demo workspace into dir, creating it if needed, and
// returns what it planted. It refuses (EINVALID) to touch a directory that
// already holds nhisync.yaml or any other file it would write, unless
// opt.Force is set; then it removes those files first, and nothing else.
// Bad options are EINVALID too; failures to write are EINTERNAL, and leave
// none of the files behind.
func Generate(dir string, opt Options) (*Scenario, error) {
	const op = "quickstart.Generate"
	invalid := func(format string, args ...any) error {
		e := nhisync.Errorf(nhisync.EINVALID, format, args...)
		e.Op = op
		return e
	}
	if dir == "" {
		return nil, invalid("no directory given for the quickstart workspace")
	}
	switch {
	case opt.Accounts == 0:
		opt.Accounts = DefaultAccounts
	case opt.Accounts < MinAccounts || opt.Accounts > MaxAccounts:
		return nil, invalid("accounts must be between %d and %d, not %d", MinAccounts, MaxAccounts, opt.Accounts)
	}
	if opt.Now.IsZero() {
		opt.Now = DefaultNow
	}
	opt.Now = opt.Now.UTC().Truncate(time.Second)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, invalid("directory %s: %v", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, "systems")} {
		if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
			return nil, invalid("%s is a file, not a directory", d)
		}
	}

	if err := clearWorkspace(abs, opt.Force); err != nil {
		var e *nhisync.Error
		if errors.As(err, &e) {
			e.Op = op
			return nil, e
		}
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "could not clear the earlier quickstart files in " + dir, Err: err}
	}

	sc := &Scenario{Dir: abs, ConfigPath: filepath.Join(abs, ConfigFile), Seed: opt.Seed, Records: map[string]int{}}
	ws := &workspace{dir: abs}
	if err := ws.write(opt, sc); err != nil {
		ws.undo()
		return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "could not write the quickstart workspace in " + dir, Err: err}
	}
	return sc, nil
}

// clearWorkspace refuses a directory holding any file Generate writes,
// or with force removes those files.
func clearWorkspace(dir string, force bool) error {
	for _, f := range ownFiles {
		path := filepath.Join(dir, filepath.FromSlash(f))
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if !force {
			return nhisync.Errorf(nhisync.EINVALID,
				"%s already holds %s; refusing to overwrite a workspace (force replaces only the quickstart's own files)", dir, f)
		}
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	return nil
}

// workspace writes the files of one Generate call and remembers each path
// it created, so a failure can take them all back.
type workspace struct {
	dir     string
	created []string
}

func (ws *workspace) path(f string) string { return filepath.Join(ws.dir, filepath.FromSlash(f)) }

// undo removes what the workspace created, newest first. Directories go
// only when empty.
func (ws *workspace) undo() {
	for _, path := range slices.Backward(ws.created) {
		os.Remove(path) //nolint:errcheck // best effort: the write error is what matters
	}
}

// mkdir creates the directory f, and any missing parents, unless it exists.
func (ws *workspace) mkdir(f string) error {
	path := ws.path(f)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	ws.created = append(ws.created, path)
	return nil
}

// create makes the file f, which must not exist, and fills it with fill.
func (ws *workspace) create(f string, fill func(io.Writer) (int, error)) (n int, err error) {
	path := ws.path(f)
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	ws.created = append(ws.created, path)
	bw := bufio.NewWriter(file)
	n, err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// write generates the population and writes every file. The config goes
// last, so a workspace without one is never half-usable.
func (ws *workspace) write(opt Options, sc *Scenario) error {
	for _, d := range []string{".", "systems"} {
		if err := ws.mkdir(d); err != nil {
			return err
		}
	}
	p := newPopulation(opt.Seed, opt.Accounts, opt.Now)
	sc.Accounts = len(p.accounts)
	sc.record(p)

	// SQLite takes an empty file as a new database; creating it here first
	// makes sure an existing database is never opened and changed.
	if _, err := ws.create(IDPFile, func(io.Writer) (int, error) { return 0, nil }); err != nil {
		return err
	}
	ws.created = append(ws.created, ws.path(IDPFile+"-journal"))
	var err error
	if sc.Records[SystemIDP], err = writeIDP(context.Background(), ws.path(IDPFile), p.accounts); err != nil {
		return err
	}
	files := []struct {
		name, system string
		fill         func(io.Writer, []*account) (int, error)
	}{
		{CMDBFile, SystemCMDB, writeCMDB},
		{CatalogFile, SystemCatalog, writeCatalog},
		{PolicyFile, SystemPolicy, writePolicy},
		{AppsFile, SystemApps, func(w io.Writer, _ []*account) (int, error) { return writeApps(w, p.retiredApp) }},
		{ConfigFile, "", func(w io.Writer, _ []*account) (int, error) { return io.WriteString(w, configYAML) }},
	}
	for _, f := range files {
		n, err := ws.create(f.name, func(w io.Writer) (int, error) { return f.fill(w, p.accounts) })
		if err != nil {
			return err
		}
		if f.system != "" {
			sc.Records[f.system] = n
		}
	}
	return nil
}
