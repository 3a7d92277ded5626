package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// steppedClock is a clock that a connector moves on while outcome commits
// read it on their goroutines.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// slowSends wraps the catalog's connector: before each Apply another
// sender that ignores the pass lease tries to claim the catalog's queued
// writes (it must find none: the pass's claims hold them), and each Apply
// takes steps[i] of the clock.
type slowSends struct {
	nhisync.Connector
	store  nhisync.Store
	clock  *steppedClock
	steps  []time.Duration
	calls  int
	stolen []string
}

func (c *slowSends) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	now := c.clock.Now()
	_, rows, err := c.store.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "catalog", Holder: "intruder", Now: now, TTL: time.Minute})
	if err != nil {
		return nil, err
	}
	for _, o := range rows {
		c.stolen = append(c.stolen, fmt.Sprintf("write %d (%s %s) at +%s", o.ID, o.ExternalID, o.Field, now.Sub(t0)))
	}
	res, err := c.Connector.Apply(ctx, ws)
	if c.calls < len(c.steps) {
		c.clock.Advance(c.steps[c.calls])
	}
	c.calls++
	return res, err
}

// TestLongPassDrainKeepsItsClaims: a pass's drain that takes longer than
// its claims' period keeps every write of its claim held until it is sent,
// not only the chunk before which it renewed: another sender (one that
// does not give way to the pass lease, as the store sees every sender)
// finds none of them free, and each write goes out once. The claim is
// sent in four chunks, the first taking 0.9 of the period, the next ones
// 0.1: the renewal before the second chunk is the last the drain needs,
// and the last two chunks leave after the claim's first period.
func TestLongPassDrainKeepsItsClaims(t *testing.T) {
	const n = 8
	const ttl = 30 * time.Second
	w, mu, counted := queuedCatalogWrites(t, n)
	defer engine.SetClaimRows(n)()
	defer engine.SetApplyChunk(2)()
	clock := &steppedClock{t: w.clock.Now()}
	var sends *slowSends
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
		sends = &slowSends{Connector: &sendCounter{Connector: c, mu: mu, sent: counted}, store: w.store, clock: clock,
			steps: []time.Duration{ttl * 9 / 10, ttl / 10, ttl / 10, ttl / 10}}
		return sends
	})
	e := engine.New(w.cfg, w.store, conns, engine.WithClock(clock), engine.WithHolder("pass"))
	sum, err := e.Sync(context.Background(), engine.PassOptions{LeaseTTL: ttl})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if sends.calls != n/2 {
		t.Fatalf("the writes went out in %d chunks, want %d", sends.calls, n/2)
	}
	for _, s := range sends.stolen {
		t.Errorf("another sender claimed %s while the pass was sending its claim", s)
	}
	if sum.WritesApplied != n {
		t.Errorf("%d writes applied, want %d", sum.WritesApplied, n)
	}
	appliedOnce(t, w, n, counted)
}
