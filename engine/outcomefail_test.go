package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// failedOutcome is a store whose outcome commits (the batches that carry a
// claim) fail; every claim of a system after one that claimed its writes
// waits until the drain can see that an outcome failed
// (engine.SetOutcomeDone), so the failure is in before the next chunk
// leaves. (Only that system's: the others' senders run beside it, and
// their outcomes commit before its own.)
type failedOutcome struct {
	nhisync.Store
	once    sync.Once
	failed  chan struct{}
	mu      sync.Mutex
	claimed map[string]bool
}

var errDiskFull = errors.New("the disk is full (test)")

func (s *failedOutcome) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil {
		return errDiskFull
	}
	return s.Store.Commit(ctx, b)
}

func (s *failedOutcome) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	s.mu.Lock()
	claimed := s.claimed[req.System]
	s.mu.Unlock()
	if claimed {
		<-s.failed
	}
	c, rows, err := s.Store.ClaimOutbox(ctx, req)
	if len(rows) > 0 {
		s.mu.Lock()
		s.claimed[req.System] = true
		s.mu.Unlock()
	}
	return c, rows, err
}

// TestDrainStopsOnceAnOutcomeFailsToCommit: once the outcome of a chunk
// fails to commit (on its goroutine, while the drain claims the next), no
// more writes leave, and Drain fails with that commit's error.
func TestDrainStopsOnceAnOutcomeFailsToCommit(t *testing.T) {
	const n = 6
	defer engine.SetClaimRows(2)()
	w, mu, counted := queuedCatalogWrites(t, n)
	store := &failedOutcome{Store: w.store, failed: make(chan struct{}), claimed: map[string]bool{}}
	defer engine.SetOutcomeDone(func(err error) {
		if err != nil {
			store.once.Do(func() { close(store.failed) })
		}
	})()
	sent := &sentLog{}
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
		sent.Connector = &sendCounter{Connector: c, mu: mu, sent: counted}
		return sent
	})
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	if _, err := e.Drain(context.Background()); !errors.Is(err, errDiskFull) {
		t.Fatalf("Drain: %v; want %v", err, errDiskFull)
	}
	if len(sent.calls) != 1 {
		t.Errorf("%d chunks of writes went out, want 1: none after the first chunk's outcome failed to commit", len(sent.calls))
	}
}

// failingAfterSend is a store whose outcome commits fail and whose claims
// (claim) or claim renewals but the first (renew) fail once a claim has
// taken writes:
// the drain's next step fails while the first chunk's outcome commit,
// on its goroutine, fails too.
type failingAfterSend struct {
	nhisync.Store
	claim, renew bool
	// mu guards claimed and renewals: the systems' senders run at once.
	mu       sync.Mutex
	claimed  bool
	renewals int
	// claimErr, when set, is the claim's failure instead of errStoreGone.
	claimErr error
}

var errStoreGone = errors.New("the store went away (test)")

func (s *failingAfterSend) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil {
		return errDiskFull
	}
	return s.Store.Commit(ctx, b)
}

func (s *failingAfterSend) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	s.mu.Lock()
	claimed := s.claimed
	s.mu.Unlock()
	if s.claim && claimed {
		if s.claimErr != nil {
			return nil, nil, s.claimErr
		}
		return nil, nil, errStoreGone
	}
	c, rows, err := s.Store.ClaimOutbox(ctx, req)
	s.mu.Lock()
	s.claimed = s.claimed || len(rows) > 0
	s.mu.Unlock()
	return c, rows, err
}

func (s *failingAfterSend) RenewClaim(ctx context.Context, c *nhisync.Claim, ids []int64, now time.Time, ttl time.Duration) error {
	s.mu.Lock()
	s.renewals++
	fail := s.renew && s.renewals > 1
	s.mu.Unlock()
	if fail {
		return errStoreGone
	}
	return s.Store.RenewClaim(ctx, c, ids, now, ttl)
}

// TestDrainReportsTheOutcomeThatFailedBeforeItsOwnFailure: when a drain's
// claim (or the renewal before a chunk leaves) fails while the outcome
// commit of the chunk sent before fails on its goroutine, Drain returns
// both failures, and its progress never counted a write of that outcome
// as done.
func TestDrainReportsTheOutcomeThatFailedBeforeItsOwnFailure(t *testing.T) {
	for _, step := range []string{"claim", "renew"} {
		t.Run(step, func(t *testing.T) {
			const n = 6
			w, mu, counted := queuedCatalogWrites(t, n)
			defer engine.SetClaimRows(2)()
			store := &failingAfterSend{Store: w.store, claim: step == "claim"}
			if step == "renew" {
				// One claim of every write, sent in chunks of two: the
				// renewal before the second chunk fails.
				defer engine.SetClaimRows(n)()
				defer engine.SetApplyChunk(2)()
				store.renew = true
			}
			conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
				return &sendCounter{Connector: c, mu: mu, sent: counted}
			})
			var written []int
			e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"),
				engine.WithProgress(func(p engine.Progress) {
					if p.Stage == "write" {
						written = append(written, p.Done)
					}
				}))
			_, err := e.Drain(context.Background())
			if !errors.Is(err, errDiskFull) {
				t.Errorf("Drain: %v; want the failed outcome commit's error (%v) among its errors", err, errDiskFull)
			}
			if msg := nhisync.ErrorMessage(err); !strings.Contains(msg, errDiskFull.Error()) {
				t.Errorf("Drain says %q, which does not name the failed outcome commit", msg)
			}
			if step == "claim" && !errors.Is(err, errStoreGone) {
				t.Errorf("Drain: %v; want the claim's error (%v) among its errors", err, errStoreGone)
			}
			if len(written) > 0 {
				t.Errorf("the drain reported %v writes done, though no outcome committed", written)
			}
		})
	}
}

// TestDrainGivingWayStillReportsAFailedOutcome: a drain whose next claim
// gives way to a pass elsewhere (ECONFLICT, which its callers pass over
// quietly) while the outcome commit of the writes it sent before fails
// returns an error whose code is the outcome's, not a conflict: the
// writes went out and their outcome is not in, and a person is told.
func TestDrainGivingWayStillReportsAFailedOutcome(t *testing.T) {
	const n = 6
	w, mu, counted := queuedCatalogWrites(t, n)
	defer engine.SetClaimRows(2)()
	store := &failingAfterSend{Store: w.store, claim: true,
		claimErr: nhisync.Errorf(nhisync.ECONFLICT, "a pass is running elsewhere (test)")}
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: mu, sent: counted}
	})
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	_, err := e.Drain(context.Background())
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Drain: %v; want the failed outcome commit's error (%v) among its errors", err, errDiskFull)
	}
	if code := nhisync.ErrorCode(err); code == nhisync.ECONFLICT {
		t.Errorf("Drain's error has code %s (%v): its callers take it for a pass elsewhere and say nothing of the failed outcome", code, err)
	}
}
