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

// claimOrder wraps a store: it notes each claim a system makes before
// the first claim of every system before it in config order was in, and
// holds each system's first claim a moment (so a sender that did not wait
// for it would claim meanwhile).
type claimOrder struct {
	nhisync.Store
	systems []string // config order
	mu      sync.Mutex
	claimed map[string]bool
	early   []string
}

func (s *claimOrder) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	s.mu.Lock()
	first := !s.claimed[req.System]
	for _, sys := range s.systems {
		if sys == req.System {
			break
		}
		if !s.claimed[sys] {
			s.early = append(s.early, fmt.Sprintf("%s claimed before %s's first claim was in", req.System, sys))
		}
	}
	s.mu.Unlock()
	if first {
		time.Sleep(20 * time.Millisecond) // widens the window; nothing is timed
	}
	c, rows, err := s.Store.ClaimOutbox(ctx, req)
	s.mu.Lock()
	s.claimed[req.System] = true
	s.mu.Unlock()
	return c, rows, err
}

// TestFirstClaimsGoInConfigOrder: a drain's senders make their first
// claims in config order, the order their outcomes commit in, each once
// the one before it is in: the first system's writes go out while the
// next system's claim (a whole-file system's, of all its writes) runs,
// instead of waiting behind it.
func TestFirstClaimsGoInConfigOrder(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "bot-1"), sa("i2", "aws", "bot-2")},
		"cmdb.json":    {sa("c1", "aws", "bot-1", "owner", "o1@x", "scopes", []any{"s3:read"}), sa("c2", "aws", "bot-2", "owner", "o2@x", "scopes", []any{"s3:write"})},
		"catalog.json": {sa("k1", "aws", "bot-1"), sa("k2", "aws", "bot-2")},
	})
	store := &claimOrder{Store: w.store, systems: w.cfg.SystemNames, claimed: map[string]bool{}}
	e := engine.New(w.cfg, store, w.openConns(nil), engine.WithClock(w.clock))
	sum, err := e.Sync(context.Background(), engine.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.WritesApplied == 0 {
		t.Fatalf("the pass applied no writes: %+v", sum)
	}
	for _, s := range store.early {
		t.Error(s)
	}
}
