package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// failedOutcome is a store whose outcome commits (the batches that carry a
// claim) fail; every claim after one that claimed writes waits until the
// drain can see that an outcome failed (engine.SetOutcomeDone), so the
// failure is in before the next chunk leaves.
type failedOutcome struct {
	nhisync.Store
	once    sync.Once
	failed  chan struct{}
	claimed bool
}

var errDiskFull = errors.New("the disk is full (test)")

func (s *failedOutcome) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil {
		return errDiskFull
	}
	return s.Store.Commit(ctx, b)
}

func (s *failedOutcome) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	if s.claimed {
		<-s.failed
	}
	c, rows, err := s.Store.ClaimOutbox(ctx, req)
	s.claimed = s.claimed || len(rows) > 0
	return c, rows, err
}

// TestDrainStopsOnceAnOutcomeFailsToCommit: once the outcome of a chunk
// fails to commit (on its goroutine, while the drain claims the next), no
// more writes leave, and Drain fails with that commit's error.
func TestDrainStopsOnceAnOutcomeFailsToCommit(t *testing.T) {
	const n = 6
	defer engine.SetClaimRows(2)()
	w, mu, counted := queuedCatalogWrites(t, n)
	store := &failedOutcome{Store: w.store, failed: make(chan struct{})}
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
