package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// outcomesFail is a store whose outcome commits (the batches that carry a
// claim) fail with errDiskFull: every one, or with first only the first;
// a failing one fails once after is closed (nil: at once). Its other
// commits go through.
type outcomesFail struct {
	nhisync.Store
	first bool
	after <-chan struct{}
	// failed: an outcome commit failed (mu).
	mu     sync.Mutex
	failed bool
}

var errDiskFull = errors.New("the disk is full (test)")

func (s *outcomesFail) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil {
		s.mu.Lock()
		fail := !s.first || !s.failed
		s.failed = true
		s.mu.Unlock()
		if fail {
			if s.after != nil {
				<-s.after
			}
			return errDiskFull
		}
	}
	return s.Store.Commit(ctx, b)
}

// failedOutcome is a store whose outcome commits fail (outcomesFail);
// every claim of a system after one that claimed its writes waits until
// the drain can see that an outcome failed (engine.SetOutcomeDone), so
// the failure is in before the next chunk leaves. (Only that system's:
// the others' senders run beside it, and their outcomes commit before
// its own.)
type failedOutcome struct {
	*outcomesFail
	once    sync.Once
	failed  chan struct{}
	mu      sync.Mutex
	claimed map[string]bool
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
	store := &failedOutcome{outcomesFail: &outcomesFail{Store: w.store}, failed: make(chan struct{}), claimed: map[string]bool{}}
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
	*outcomesFail
	claim, renew bool
	// mu guards claimed and renewals: the systems' senders run at once.
	mu       sync.Mutex
	claimed  bool
	renewals int
	// claimErr, when set, is the claim's failure instead of errStoreGone.
	claimErr error
}

var errStoreGone = errors.New("the store went away (test)")

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
			store := &failingAfterSend{outcomesFail: &outcomesFail{Store: w.store}, claim: step == "claim"}
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
	store := &failingAfterSend{outcomesFail: &outcomesFail{Store: w.store}, claim: true,
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

// TestOutcomesQueuedBehindAFailedOneStillCommit: the CMDB's outcome fails
// to commit once the catalog's writes went out (sent beside it); the
// catalog's outcome, queued behind it, still commits: its writes are
// audited as applied, and a drain after it sends none of them again. The
// drain, and a pass whose drain it is, fail with the CMDB's error.
func TestOutcomesQueuedBehindAFailedOneStillCommit(t *testing.T) {
	for _, pass := range []bool{false, true} {
		t.Run(map[bool]string{false: "drain", true: "pass"}[pass], func(t *testing.T) {
			outcomesBehindAFailedOne(t, pass)
		})
	}
}

func outcomesBehindAFailedOne(t *testing.T, pass bool) {
	const n = 4
	w := queuedBothWays(t, n)
	mu := &sync.Mutex{}
	ctx := context.Background()

	// Both sent a chunk at a time (sendCounter hides ApplyWhole), the
	// catalog's writes counted.
	counted := func(conns map[string]nhisync.Connector, name string) *sendCounter {
		c := &sendCounter{Connector: conns[name], mu: mu, sent: map[string]int{}}
		conns[name] = c
		return c
	}
	conns := w.openConns(nil)
	counted(conns, "cmdb")
	catalogSent := counted(conns, "catalog")
	// The CMDB's outcome fails once the catalog's writes went out.
	catalogCall := &appliedCall{Connector: catalogSent, returned: make(chan struct{})}
	conns["catalog"] = catalogCall
	store := &outcomesFail{Store: w.store, first: true, after: catalogCall.returned}
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	var err error
	if pass {
		_, err = e.Sync(ctx, engine.PassOptions{})
	} else {
		_, err = e.Drain(ctx)
	}
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("%v; want the failed outcome commit's error (%v)", err, errDiskFull)
	}
	for i := range n {
		if c := catalogSent.sent[fmt.Sprintf("k%d owner", i)]; c != 1 {
			t.Fatalf("catalog k%d owner was applied %d times, want once (sent beside the failing outcome)", i, c)
		}
	}
	applied := 0
	err = w.store.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action == nhisync.ActWriteApplied && e.System == "catalog" {
			applied++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if applied != n {
		t.Errorf("the audit log holds %d catalog write.applied entries, want %d: the catalog's outcome, queued behind the failed one, did not commit", applied, n)
	}
	if q, err := w.store.OutboxWrites(ctx, "catalog", "", time.Time{}, 0); err != nil || len(q) != 0 {
		t.Errorf("%d catalog writes still queued (%v), want none: their outcome committed", len(q), err)
	}

	// A drain after it sends none of the catalog's writes again (the
	// CMDB's go again: their outcome did not commit).
	conns = w.openConns(nil)
	catalogSent = counted(conns, "catalog")
	again := engine.New(w.cfg, w.store, conns, engine.WithClock(w.clock), engine.WithHolder("again"))
	if _, err := again.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if len(catalogSent.sent) != 0 {
		t.Errorf("the next drain sent the catalog's writes again: %v", catalogSent.sent)
	}
	for i := range n {
		if got := w.field("catalog.json", fmt.Sprintf("k%d", i), "steward"); got != fmt.Sprintf("o%d@x", i) {
			t.Errorf("catalog k%d steward = %v", i, got)
		}
	}
}

// TestChunksAfterAFailedOneStillCommit: a whole-file system's writes go
// out in one Apply call and their outcome commits chunk by chunk; when
// the first chunk fails to commit, the chunks after it (writes sent in
// the same call) still commit, and only the first chunk's writes go back
// to the queue.
func TestChunksAfterAFailedOneStillCommit(t *testing.T) {
	const n, chunk = 6, 2
	w, _, _ := queuedCatalogWrites(t, n)
	defer engine.SetApplyChunk(chunk)()
	store := &outcomesFail{Store: w.store, first: true}
	e := engine.New(w.cfg, store, w.openConns(nil), engine.WithClock(w.clock), engine.WithHolder("drain"))
	ctx := context.Background()
	if _, err := e.Drain(ctx); !errors.Is(err, errDiskFull) {
		t.Fatalf("Drain: %v; want the failed outcome commit's error (%v)", err, errDiskFull)
	}
	applied := 0
	err := w.store.ScanAudit(ctx, 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action == nhisync.ActWriteApplied {
			applied++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if applied != n-chunk {
		t.Errorf("the audit log holds %d write.applied entries, want %d: every chunk but the failed one commits", applied, n-chunk)
	}
	if q, err := w.store.OutboxWrites(ctx, "catalog", nhisync.OutboxReady, time.Time{}, 0); err != nil || len(q) != chunk {
		t.Errorf("%d catalog writes back in the queue (%v), want the failed chunk's %d", len(q), err, chunk)
	}
}
