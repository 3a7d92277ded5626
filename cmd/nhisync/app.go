package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/config"
	"github.com/nhisync/nhisync/engine"
)

// app is a loaded config with its store, connectors and engine.
type app struct {
	g      *globals
	cfg    *nhisync.Config
	store  nhisync.Store
	conns  map[string]nhisync.Connector
	engine *engine.Engine
	// engineOpts are the options engine was built with; serve builds its
	// own engine with more.
	engineOpts []engine.Option
	out        *out
	// progress draws a line on stderr during long passes (nil when off).
	progress *progress
}

// loadConfig reads and validates the config; any problem exits 2 before
// anything else happens.
func (g *globals) loadConfig() (*nhisync.Config, error) {
	if _, err := os.Stat(g.config); err != nil && os.IsNotExist(err) {
		return nil, nhisync.Errorf(nhisync.EINVALID, "no config at %s: run `nhisync init` to write a starter, `nhisync quickstart` for a demo, or pass -c FILE", g.config)
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return nil, err
	}
	applyMemoryLimit(cfg)
	return cfg, nil
}

// applyMemoryLimit sets the runtime's soft memory limit from memory_limit
// unless GOMEMLIMIT, which the runtime read at start, says otherwise.
func applyMemoryLimit(cfg *nhisync.Config) {
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
}

// open loads the config and opens the store; with connect it also opens
// every system's connector.
func (g *globals) open(ctx context.Context, connect bool) (*app, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	a := &app{g: g, cfg: cfg, out: newOut(g.stdout, g.output), conns: map[string]nhisync.Connector{}, progress: newProgress(g.stderr)}
	// Preconditions first: the signing key and the HMAC secret are checked
	// (0600, well-formed) and the store opened and checked before any
	// system is read or written.
	keys, err := audit.OpenKeys(cfg.SigningKey, cfg.AuditSecret, cfg.AuditPublish, !g.keepKeys, nil)
	if err != nil {
		return nil, err
	}
	a.store, err = openStoreURL(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	opts := []engine.Option{engine.WithProgress(a.progress.update), engine.WithHolder(holderName()), engine.WithDeadHolder(deadHolder)}
	if keys != nil {
		// Every commit signs a checkpoint of its entries in its own
		// transaction.
		a.store.SetNotary(keys.Notary)
		// audit.publish newly set: keep the latest checkpoint from now on
		// (not from an auditor's command, which must only read).
		if !g.keepKeys {
			if err := keys.Notary.Seed(ctx, a.store); err != nil {
				a.store.Close()
				return nil, err
			}
		}
		opts = append(opts, engine.WithAuditSecret(keys.Secret))
	}
	if connect {
		if err := a.connect(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	a.engineOpts = opts
	a.engine = engine.New(cfg, a.store, a.conns, opts...)
	return a, nil
}

// with opens the config and the store (with connect, every system too),
// runs f, and closes them.
func (g *globals) with(ctx context.Context, connect bool, f func(a *app) error) (err error) {
	a, err := g.open(ctx, connect)
	if err != nil {
		return err
	}
	defer func() {
		// A failed close after a command that succeeded still exits 1;
		// it goes to stderr only, as the command may have printed JSON.
		if cerr := a.Close(); cerr != nil && err == nil {
			err = &reportedError{cerr}
		}
	}()
	return f(a)
}

// unreachable stands for a system whose connector could not be opened:
// every read and write fails with the cause, so a pass reports the system
// as failed (SPEC §3.13) instead of skipping it as if it held nothing.
type unreachable struct{ err error }

var _ nhisync.Connector = unreachable{}

func (u unreachable) Snapshot(context.Context, func(nhisync.Observation) error) error { return u.err }
func (u unreachable) Apply(context.Context, []nhisync.Write) ([]nhisync.WriteResult, error) {
	return nil, u.err
}
func (u unreachable) Close() error { return nil }

// Check reports the cause, so `check --connect` names it.
func (u unreachable) Check(context.Context) error { return u.err }

// connect opens every system's connector. A system that cannot be opened
// stands as unreachable, so passes report it while the others go on
// syncing.
func (a *app) connect(ctx context.Context) error {
	for _, name := range a.cfg.SystemNames {
		sys := a.cfg.Systems[name]
		d, ok := nhisync.LookupDriver(sys.Connector)
		if !ok {
			return nhisync.Errorf(nhisync.EINVALID, "system %s: no connector %q in this build", name, sys.Connector)
		}
		c, err := d.Open(ctx, sys, a.cfg.Kinds[sys.Kind])
		if err != nil {
			// The settings passed validation when the config loaded, so an
			// invalid system here is the system itself (a table gone, a
			// mapped column renamed): it fails alone (SPEC §3 rule 13).
			if nhisync.ErrorCode(err) == nhisync.EINVALID {
				a.conns[name] = unreachable{err}
				continue
			}
			a.conns[name] = unreachable{nhisync.Errorf(nhisync.EUNAVAIL, "cannot open %s: %s", name, nhisync.ErrorMessage(err))}
			continue
		}
		a.conns[name] = c
	}
	return nil
}

// Close releases the connectors and the store.
//
// Everything a command decided is committed before Close, so a failure
// here loses nothing, but it is still said: it names the store or the
// system whose close failed.
func (a *app) Close() error {
	a.progress.done()
	var errs []error
	names := slices.Sorted(maps.Keys(a.conns))
	for _, name := range names {
		if err := a.conns[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing system %s: %s", name, nhisync.ErrorMessage(err)))
		}
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %s", nhisync.ErrorMessage(err)))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: errors.Join(errs...).Error() + " (what this command decided is committed)"}
}

// actor returns the person acting: --as, else $NHISYNC_ACTOR, else the
// operating-system user.
func actor(as string) (string, error) {
	if as == "" {
		as = os.Getenv("NHISYNC_ACTOR")
	}
	if as == "" {
		if u, err := user.Current(); err == nil {
			as = u.Username
		}
	}
	as = strings.TrimSpace(as)
	if as == "" {
		return "", usagef("who is acting? pass --as NAME or set NHISYNC_ACTOR")
	}
	return as, nil
}

func holderName() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// progress shows a pass's progress on stderr when it is a terminal and
// the pass has run for more than a second.
type progress struct {
	mu    sync.Mutex
	f     *os.File
	start time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return nil
	}
	return &progress{f: f, start: time.Now()}
}

// update draws the progress line.
func (p *progress) update(e engine.Progress) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.start) < time.Second {
		return
	}
	p.shown = true
	line := e.Stage
	if e.System != "" {
		line += " " + e.System
	}
	line += fmt.Sprintf(": %d", e.Done)
	if e.Total > 0 {
		line += fmt.Sprintf("/%d", e.Total)
	}
	fmt.Fprintf(p.f, "\r\x1b[K%s", line)
}

// done clears the progress line.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.f, "\r\x1b[K")
		p.shown = false
	}
}
