// Package service is the continuous engine behind `nhisync serve` (SPEC
// §7): it schedules passes of the one engine — an incremental pass for a
// system whose feed (nhisync.Watcher: file watch, NOTIFY…) or poll
// interval says it may have changed, a full reconciliation every
// `reconcile`, a drain of queued writes whose retry is due — one at a time,
// and stops gracefully: the pass in hand finishes, its lease is released.
//
// It adds scheduling only. Every decision is the engine's, through the
// same Sync and Drain that `nhisync sync` runs.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// Observer is told what passes and drains did (the API's metrics).
type Observer interface {
	ObservePass(sum *engine.Summary, took time.Duration)
	ObserveWrites(sum *engine.Summary)
	// FlushPropagation is called after each pass and drain.
	FlushPropagation()
	// Refresh re-reads the gauges kept in the store.
	Refresh(ctx context.Context)
	// LeaseHeld says whether this process now holds a lease ("pass",
	// "feed/SYSTEM").
	LeaseHeld(lease string, held bool)
}

// Options configure a Service.
type Options struct {
	Config *nhisync.Config
	Engine *engine.Engine
	// Conns are the open connectors by system (the engine's): a Watcher
	// among them feeds its system; the others are polled.
	Conns map[string]nhisync.Connector
	// Store and Holder, when Store is set, make feeds leased: replicas
	// sharing a store each run a system's feed only while holding the
	// lease "feed/SYSTEM" as Holder (default host/pid), renewed every
	// third of FeedLease (default 30s); a lost replica's feeds are taken
	// over within one FeedLease.
	Store     nhisync.Store
	Holder    string
	FeedLease time.Duration
	// PassLease is how long a pass's lease lasts unrenewed (0: the
	// engine's default): a replica stalled in a pass loses it after that,
	// another replica's pass takes it, and the stalled pass can commit
	// nothing more (its fence is stale).
	PassLease time.Duration
	Observer  Observer
	Logger    *slog.Logger
	// Grace is how long a stop waits for the pass in hand before cutting
	// it short (a cut pass loses nothing: each batch commits whole, SPEC
	// §3.9). Default 30s.
	Grace time.Duration
	// DrainEvery is how often writes whose retry is due are sent between
	// passes (default 5s).
	DrainEvery time.Duration
	// Debounce gathers feed signals arriving together into one pass
	// (default 50ms).
	Debounce time.Duration
}

// Service runs passes continuously.
type Service struct {
	opt Options
	log *slog.Logger
	// work is held by every pass and drain, and by the API around human
	// actions (Exclusive), so in this process they run one at a time
	// rather than failing on the store's pass lease.
	work sync.Mutex

	mu      sync.Mutex
	full    bool
	systems map[string]bool
	seq     int
	queued  string // id of the queued full pass
	// walFailures is the store's checkpoint failures last reported.
	walFailures int64
	wake        chan struct{}
}

// New returns a service; Run starts it.
func New(opt Options) *Service {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Grace == 0 {
		opt.Grace = 30 * time.Second
	}
	if opt.DrainEvery == 0 {
		opt.DrainEvery = 5 * time.Second
	}
	if opt.Debounce == 0 {
		opt.Debounce = 50 * time.Millisecond
	}
	if opt.FeedLease == 0 {
		opt.FeedLease = 30 * time.Second
	}
	if opt.Holder == "" {
		host, _ := os.Hostname()
		opt.Holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	return &Service{opt: opt, log: opt.Logger, systems: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Exclusive is held around every pass and drain; the API holds it around
// people's decisions.
func (s *Service) Exclusive() sync.Locker { return &s.work }

// StartPass queues a full pass and returns its id; asking again before it
// starts returns the same id.
func (s *Service) StartPass(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		s.full = true
		s.seq++
		s.queued = fmt.Sprintf("pass-%d", s.seq)
	}
	s.signal()
	return s.queued, nil
}

// Changed queues an incremental pass reading system.
func (s *Service) Changed(system string) {
	s.mu.Lock()
	s.systems[system] = true
	s.signal()
	s.mu.Unlock()
}

func (s *Service) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the queued work and clears it.
func (s *Service) take() (full bool, id string, systems []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	full, id = s.full, s.queued
	for name := range s.systems {
		systems = append(systems, name)
	}
	slices.Sort(systems)
	s.full, s.queued, s.systems = false, "", map[string]bool{}
	if !full && len(systems) > 0 {
		s.seq++
		id = fmt.Sprintf("pass-%d", s.seq)
	}
	return full, id, systems
}

// Run runs until ctx ends: a full pass first, then passes as feeds, polls
// and the reconcile interval ask, and drains in between. When ctx ends it
// lets the pass in hand finish (up to Grace), and returns nil.
func (s *Service) Run(ctx context.Context) error {
	var feeds sync.WaitGroup
	for _, name := range s.opt.Config.SystemNames {
		sys := s.opt.Config.Systems[name]
		conn := s.opt.Conns[name]
		if conn == nil || !sys.Direction.Reads() {
			continue
		}
		feeds.Add(1)
		go func() {
			defer feeds.Done()
			s.feed(ctx, sys, conn)
		}()
	}
	defer feeds.Wait()

	reconcile := time.NewTicker(s.opt.Config.Reconcile)
	defer reconcile.Stop()
	drain := time.NewTicker(s.opt.DrainEvery)
	defer drain.Stop()
	_, _ = s.StartPass(ctx)
	for {
		select {
		case <-ctx.Done():
			s.log.Info("stopping: no new passes")
			return nil
		case <-reconcile.C:
			_, _ = s.StartPass(ctx)
		case <-drain.C:
			s.drain(ctx)
		case <-s.wake:
			// Let signals that arrive together make one pass.
			t := time.NewTimer(s.opt.Debounce)
			select {
			case <-ctx.Done():
				t.Stop()
				continue
			case <-t.C:
			}
			full, id, systems := s.take()
			if full {
				s.pass(ctx, id, engine.PassOptions{RespectPause: true})
			} else if len(systems) > 0 {
				s.pass(ctx, id, engine.PassOptions{RespectPause: true, Incremental: true, Systems: systems})
			}
		}
	}
}

// feed runs one system's feed, under its lease when feeds are leased:
// it waits to hold the lease, runs the feed while renewing it, and goes
// back to waiting if another replica took it.
func (s *Service) feed(ctx context.Context, sys *nhisync.System, conn nhisync.Connector) {
	if s.opt.Store == nil {
		s.runFeed(ctx, sys, conn)
		return
	}
	name := "feed/" + sys.Name
	every := s.opt.FeedLease / 3
	defer func() {
		_ = s.opt.Store.ReleaseLease(context.WithoutCancel(ctx), name, s.opt.Holder)
		s.leaseHeld(name, false)
	}()
	for {
		// Wait for the lease.
		for !s.lease(ctx, name) {
			t := time.NewTimer(every)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		s.log.Info("running the system's feed", "system", sys.Name, "holder", s.opt.Holder)
		s.leaseHeld(name, true)
		fctx, cancel := context.WithCancel(ctx)
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-fctx.Done():
					return
				case <-t.C:
					if !s.lease(fctx, name) {
						s.log.Warn("lost the system's feed to another replica", "system", sys.Name)
						s.leaseHeld(name, false)
						cancel()
						return
					}
				}
			}
		}()
		// A feed starts with a look: what changed while nobody held it
		// was seen by no one.
		s.Changed(sys.Name)
		s.runFeed(fctx, sys, conn)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Service) leaseHeld(name string, held bool) {
	if s.opt.Observer != nil {
		s.opt.Observer.LeaseHeld(name, held)
	}
}

// lease takes or renews a feed lease; a store failure counts as not held.
func (s *Service) lease(ctx context.Context, name string) bool {
	ok, err := s.opt.Store.AcquireLease(ctx, name, s.opt.Holder, time.Now().UTC(), s.opt.FeedLease)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("feed lease failed", "lease", name, "error", nhisync.ErrorMessage(err))
	}
	return err == nil && ok
}

// runFeed signals changes of one system until ctx ends: its Watcher, or
// its poll interval (also when the Watcher fails).
func (s *Service) runFeed(ctx context.Context, sys *nhisync.System, conn nhisync.Connector) {
	if w, ok := conn.(nhisync.Watcher); ok {
		s.log.Info("watching system", "system", sys.Name)
		err := w.Watch(ctx, func([]string) { s.Changed(sys.Name) })
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("the system's feed stopped; polling it instead", "system", sys.Name, "poll", sys.Poll, "error", nhisync.ErrorMessage(err))
	}
	every := sys.Poll
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Changed(sys.Name)
		}
	}
}

// graceful returns a context for work that must finish its batch when
// ctx ends: it is canceled only Grace after ctx.
func (s *Service) graceful(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.opt.Grace, cancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	return wctx, func() { stop(); cancel() }
}

// pass runs one pass and reports it.
func (s *Service) pass(ctx context.Context, id string, opt engine.PassOptions) {
	s.work.Lock()
	defer s.work.Unlock()
	wctx, cancel := s.graceful(ctx)
	defer cancel()
	mode := nhisync.ModeFull
	if opt.Incremental {
		mode = nhisync.ModeIncremental
	}
	start := time.Now()
	// The engine holds the pass lease for the length of Sync.
	s.leaseHeld("pass", true)
	opt.LeaseTTL = s.opt.PassLease
	sum, err := s.opt.Engine.Sync(wctx, opt)
	s.leaseHeld("pass", false)
	took := time.Since(start)
	if err != nil {
		level := slog.LevelError
		if nhisync.ErrorCode(err) == nhisync.ECONFLICT {
			// Another process holds the pass lease: try again later.
			level = slog.LevelWarn
			s.requeue(opt)
		}
		s.log.Log(ctx, level, "pass failed", "pass", id, "mode", mode, "systems", opt.Systems, "error", nhisync.ErrorMessage(err))
		return
	}
	if s.opt.Observer != nil {
		s.opt.Observer.ObservePass(sum, took)
		s.opt.Observer.FlushPropagation()
		s.opt.Observer.Refresh(wctx)
	}
	attrs := []any{"pass", id, "mode", mode, "took", took.Round(time.Millisecond), "records", sum.Records,
		"accepted", sum.Accepted, "created", sum.Created, "quarantined", sum.Quarantined, "conflicts_opened", sum.ConflictsOpened,
		"approvals_requested", sum.ApprovalsRequested, "writes_applied", sum.WritesApplied, "writes_failed", sum.WritesFailed}
	if opt.Systems != nil {
		attrs = append(attrs, "systems", opt.Systems)
	}
	// The systems whose records were compared with the link heads the
	// pass before kept (engine.WithHeadCache), not loaded again.
	var kept []string
	for _, name := range s.opt.Config.SystemNames {
		if ss := sum.Systems[name]; ss != nil && ss.HeadsKept {
			kept = append(kept, name)
		}
	}
	if kept != nil {
		attrs = append(attrs, "heads_kept", kept)
	}
	for _, name := range s.opt.Config.SystemNames {
		if ss := sum.Systems[name]; ss != nil && ss.Error != "" {
			s.log.Warn("system failed in pass", "pass", id, "system", name, "error", ss.Error)
		}
	}
	s.log.Info("pass done", attrs...)
	s.reportWAL()
}

// reportWAL logs a failed checkpoint of the store's write-ahead log once
// per new failure: no commit fails for it, the log only grows.
func (s *Service) reportWAL() {
	wr, ok := s.opt.Store.(nhisync.WALReporter)
	if !ok {
		return
	}
	st := wr.WALStatus()
	s.mu.Lock()
	seen := s.walFailures
	s.walFailures = st.Failures
	s.mu.Unlock()
	if st.Failures > seen {
		s.log.Warn("the store's write-ahead log is not being copied back", "failures", st.Failures-seen, "wal_frames", st.Frames, "error", st.LastError)
	}
}

// requeue asks again for a pass that could not start.
func (s *Service) requeue(opt engine.PassOptions) {
	time.AfterFunc(time.Second, func() {
		if !opt.Incremental {
			_, _ = s.StartPass(context.Background())
			return
		}
		for _, name := range opt.Systems {
			s.Changed(name)
		}
	})
}

// drain sends queued writes whose retry is due.
func (s *Service) drain(ctx context.Context) {
	s.work.Lock()
	defer s.work.Unlock()
	wctx, cancel := s.graceful(ctx)
	defer cancel()
	sum, err := s.opt.Engine.Drain(wctx)
	if err != nil {
		if nhisync.ErrorCode(err) == nhisync.ECONFLICT {
			// Another process's pass holds the lease: its own drain sends
			// these writes, or the next tick does.
			s.log.Debug("drain deferred: a pass is running elsewhere", "error", nhisync.ErrorMessage(err))
			return
		}
		s.log.Error("drain failed", "error", nhisync.ErrorMessage(err))
		return
	}
	if sum.WritesApplied+sum.WritesFailed+sum.WritesStale == 0 {
		return
	}
	if s.opt.Observer != nil {
		s.opt.Observer.ObserveWrites(sum)
		s.opt.Observer.FlushPropagation()
		s.opt.Observer.Refresh(wctx)
	}
	s.log.Info("queued writes sent", "writes_applied", sum.WritesApplied, "writes_failed", sum.WritesFailed, "writes_stale", sum.WritesStale)
}
