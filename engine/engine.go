// Package engine owns the one sync pipeline: observe → correlate → detect
// proposals → decide → validate → plan writes → commit → apply. sync, plan
// (the same pass with the outbox discarded), what-if, explain and the
// human actions (resolve, dismiss, approve, reject) all run through it.
//
// It imports no storage and no connector package: it works on the
// nhisync.Store and nhisync.Connector interfaces, with an injected clock.
//
// Where each rule of SPEC §3 is decided:
//
//	§3.1  update detection (observations → proposals)   propose.go
//	§3.2  who may set a field (authority, stale_after)   authority.go
//	§3.3  concurrent proposals, the resolve strategies   resolve.go
//	      a losing proposal is heard                     hear.go
//	      resolve: manual (conflicts)                    conflict.go
//	      a person resolves, dismisses, approves         human.go
//	§3.4  validation and quarantine                      validate.go
//	§3.5  approvals and the blast-radius guard (§3.11)   plan.go
//	§3.6  records: links, match keys                     identity.go, correlate.go
//	      retire_from                                    retire.go
//	§3.10 assertions explained, what-if                  explain.go
//
// decide.go holds the decider they share (a pass's and a person's) and
// the pass's loop over records with work; pass.go reads the systems and
// stage.go holds what a pass keeps of them until it has decided.
package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// Engine runs passes and human actions for one configuration.
type Engine struct {
	cfg   *nhisync.Config
	store nhisync.Store
	conns map[string]nhisync.Connector
	clock nhisync.Clock
	log   *slog.Logger
	// Progress, when set, is told how far a pass is (for a progress line).
	progress func(Progress)
	holder   string
	batch    int
	// leaseTTL is how long a drain's outbox claims last unless renewed.
	leaseTTL time.Duration
	// deadHolder tells whether a lease holder is a process known to be
	// gone, so its lease can be taken over at once.
	deadHolder func(holder string) bool
	// writeObserver is told of every write's outcome once it is committed.
	writeObserver func(o *nhisync.OutboxWrite, status nhisync.WriteStatus, at time.Time)
	// auditKey is the HMAC secret that hashes sensitive values in audit
	// entries.
	auditKey []byte
	// heads keeps the link heads a pass loaded for the next (WithHeadCache).
	heads *HeadCache
}

// Progress reports a pass's progress.
type Progress struct {
	Stage  string // "read", "decide", "write"
	System string
	Done   int
	Total  int // 0 when unknown
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock (default: the system clock).
func WithClock(c nhisync.Clock) Option { return func(e *Engine) { e.clock = c } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithProgress sets a progress callback.
func WithProgress(f func(Progress)) Option { return func(e *Engine) { e.progress = f } }

// WithHolder names this process for leases (default "nhisync").
func WithHolder(h string) Option { return func(e *Engine) { e.holder = h } }

// WithLeaseTTL sets how long the outbox claims of a Drain last unless
// renewed (default 1m): a drain on a process that died returns its writes
// to the queue after it, for another process to send.
func WithLeaseTTL(d time.Duration) Option { return func(e *Engine) { e.leaseTTL = d } }

// WithDeadHolder lets the engine take over a lease whose holder is known
// to be gone (a killed process on this host) instead of waiting for it to
// expire.
func WithDeadHolder(f func(holder string) bool) Option { return func(e *Engine) { e.deadHolder = f } }

// WithWriteObserver is told of every write's outcome (applied, stale,
// missing, failed) once the outcome is committed, with the time it was
// confirmed: the service measures propagation with it.
func WithWriteObserver(f func(o *nhisync.OutboxWrite, status nhisync.WriteStatus, at time.Time)) Option {
	return func(e *Engine) { e.writeObserver = f }
}

// WithAuditSecret sets the HMAC secret that hashes sensitive values in
// audit entries (nhisync.SensitiveValue). Without it an engine makes a
// random one of its own: values stay hidden, but nobody can later tell
// which value an entry proves.
func WithAuditSecret(key []byte) Option { return func(e *Engine) { e.auditKey = key } }

// WithBatchSize sets how many records one store transaction decides
// (default 500); n below 1 keeps the default (the loops that page by it
// would not advance).
func WithBatchSize(n int) Option {
	return func(e *Engine) {
		if n >= 1 {
			e.batch = n
		}
	}
}

// New returns an engine for cfg over store. conns holds an open connector
// per system name; a system without one is skipped by passes.
func New(cfg *nhisync.Config, store nhisync.Store, conns map[string]nhisync.Connector, opts ...Option) *Engine {
	e := &Engine{
		cfg:    cfg,
		store:  store,
		conns:  conns,
		clock:  nhisync.SystemClock{},
		log:    slog.New(slog.DiscardHandler),
		holder: "nhisync",
		batch:  500,
	}
	for _, o := range opts {
		o(e)
	}
	if len(e.auditKey) == 0 {
		e.auditKey = make([]byte, 32)
		if _, err := rand.Read(e.auditKey); err != nil {
			panic("engine: no randomness for the audit secret: " + err.Error())
		}
	}
	return e
}

// Config returns the engine's configuration.
func (e *Engine) Config() *nhisync.Config { return e.cfg }

func (e *Engine) report(p Progress) {
	if e.progress != nil {
		e.progress(p)
	}
}

// mappingFingerprint identifies a system's mapping; content hashes are
// only comparable under the same fingerprint.
func mappingFingerprint(sys *nhisync.System) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", sys.Connector, sys.Kind, sys.ID, sys.Direction)
	for _, m := range sys.Fields {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\n", m.Field, m.Type, m.Name, m.Direction, m.Join, m.ReadExpr, m.WriteExpr)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// actorName returns the name to compare for separation of duties.
func actorName(actor string) string {
	return strings.ToLower(strings.TrimSpace(strings.TrimPrefix(actor, nhisync.PersonPrefix)))
}

// backoff returns the wait before retry number n (1-based): 1s doubling to 1h.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

func errInvalid(format string, args ...any) error {
	return nhisync.Errorf(nhisync.EINVALID, format, args...)
}

func errNotFound(format string, args ...any) error {
	return nhisync.Errorf(nhisync.ENOTFOUND, format, args...)
}

// ids hands out IDs: from the store, or (for dry runs) from a local
// counter so that nothing is written.
//
// Each reservation from the store is a write transaction of its own, with
// its fsync (about 3 ms here), and it waits for the store's writer, which
// the pass's commits hold: a first pass creating a million records in
// reservations of 256 spent about 12 s on them. So a reservation is twice
// the one before, from idsFirst up to idsMost: a person's action takes
// one small one, a million records about twenty. The IDs reserved and not
// used when a pass ends are a gap in the sequence (at most as many as the
// pass used, and at most idsMost), which nothing reads as meaningful.
type ids struct {
	store  nhisync.Store
	dry    bool
	next   int64
	remain int
	// size is the next reservation's size (0: idsFirst).
	size int
}

const (
	idsFirst = 256
	idsMost  = 1 << 16
)

func (a *ids) get(ctx context.Context) (int64, error) {
	if a.remain == 0 {
		if a.dry {
			if a.next == 0 {
				a.next = 1 << 40
			}
			a.remain = 1 << 20
		} else {
			n := max(a.size, idsFirst)
			first, err := a.store.NewIDs(ctx, n)
			if err != nil {
				return 0, err
			}
			a.next, a.remain, a.size = first, n, min(2*n, idsMost)
		}
	}
	id := a.next
	a.next++
	a.remain--
	return id, nil
}

// acquireLease takes the named lease, taking it over from a holder known
// to be dead. It returns ECONFLICT when another live process holds it.
// Holding the pass lease, it waits for other processes' outbox claims to
// end (awaitClaims).
func (e *Engine) acquireLease(ctx context.Context, name string, now time.Time, ttl time.Duration, busy string) error {
	ok, err := e.store.AcquireLease(ctx, name, e.holder, now, ttl)
	if err != nil {
		return err
	}
	if !ok && e.deadHolder != nil {
		holder, _, err := e.store.Lease(ctx, name)
		if err != nil {
			return err
		}
		if holder != "" && holder != e.holder && e.deadHolder(holder) {
			e.log.Warn("taking over the lease of a process that is gone", "lease", name, "holder", holder)
			if err := e.store.ReleaseLease(ctx, name, holder); err != nil {
				return err
			}
			if ok, err = e.store.AcquireLease(ctx, name, e.holder, now, ttl); err != nil {
				return err
			}
		}
	}
	if !ok {
		return nhisync.Errorf(nhisync.ECONFLICT, "%s", busy)
	}
	if name == leaseName {
		// A drain elsewhere may hold writes it claimed before the lease
		// was taken: let it finish before deciding records.
		if err := e.awaitClaims(ctx); err != nil {
			_ = e.store.ReleaseLease(context.WithoutCancel(ctx), name, e.holder)
			return err
		}
	}
	return nil
}
