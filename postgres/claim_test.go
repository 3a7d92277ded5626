package postgres

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"pgregory.net/rapid"
)

// TestPropertyOutboxClaims: random interleavings of claims (with random
// limits), renewals, releases, commits of a write's outcome under a claim
// and time passing (claims expiring), from several senders, against a
// model of the outbox: each claim returns exactly the due writes no live
// claim holds, oldest first, so two live claims never hold one write; an
// expired claim's writes are claimed again; a renewal or commit succeeds
// exactly when its claim still holds its writes, so each write's outcome
// is committed once. Each check uses a system of its own on one store.
func TestPropertyOutboxClaims(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	var n atomic.Int64
	const ttl = 10 * time.Second
	rapid.Check(t, func(rt *rapid.T) {
		system := fmt.Sprintf("sys-%d", n.Add(1))
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		now := start
		const writes = 6
		first, err := s.NewIDs(ctx, writes)
		if err != nil {
			rt.Fatal(err)
		}
		b := &nhisync.Batch{}
		for i := range writes {
			b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: first + int64(i), System: system, ExternalID: fmt.Sprintf("x%d", i),
				RecordID: 1, Field: "owner", Status: nhisync.OutboxReady, NextAt: start.Add(time.Duration(i-writes) * time.Millisecond)})
		}
		if err := s.Commit(ctx, b); err != nil {
			rt.Fatal(err)
		}
		// The model: each queued write's claim (token, until); gone once
		// its outcome committed.
		type row struct {
			token int64
			until time.Time
		}
		model := map[int64]*row{}
		for i := range writes {
			model[first+int64(i)] = &row{}
		}
		claims := map[string]*nhisync.Claim{}
		done := map[int64]string{} // write → the sender whose outcome committed
		holders := []string{"a", "b", "c"}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for i := range steps {
			h := rapid.SampledFrom(holders).Draw(rt, "holder")
			c := claims[h]
			switch op := rapid.IntRange(0, 4).Draw(rt, "op"); op {
			case 0: // claim
				limit := rapid.IntRange(0, 3).Draw(rt, "limit")
				var want []int64
				for id := first; id < first+writes; id++ {
					if r := model[id]; r != nil && (r.token == 0 || !r.until.After(now)) && (limit == 0 || len(want) < limit) {
						want = append(want, id)
					}
				}
				got, _, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: system, Holder: h, Now: now, TTL: ttl, Limit: limit})
				if err != nil {
					rt.Fatalf("step %d: ClaimOutbox(%s): %v", i, h, err)
				}
				if !slices.Equal(got.IDs, want) {
					rt.Fatalf("step %d: %s claimed %v, model says %v", i, h, got.IDs, want)
				}
				for _, id := range got.IDs {
					model[id].token, model[id].until = got.Token, now.Add(ttl)
				}
				claims[h] = got
			case 1: // renew
				if c == nil || len(c.IDs) == 0 {
					continue
				}
				ids := c.IDs[:rapid.IntRange(1, len(c.IDs)).Draw(rt, "renew")]
				err := s.RenewClaim(ctx, c, ids, now, ttl)
				want := true
				for _, id := range ids {
					if r := model[id]; r == nil || r.token != c.Token {
						want = false
					}
				}
				if (err == nil) != want {
					rt.Fatalf("step %d: RenewClaim(%s, %v): %v, model says held %v", i, h, ids, err, want)
				}
				if err != nil && nhisync.ErrorCode(err) != nhisync.ECONFLICT {
					rt.Fatalf("step %d: RenewClaim failed with %v, want ECONFLICT", i, err)
				}
				if want {
					for _, id := range ids {
						model[id].until = now.Add(ttl)
					}
				}
			case 2: // release
				if c == nil {
					continue
				}
				if err := s.ReleaseClaim(ctx, c); err != nil {
					rt.Fatalf("step %d: ReleaseClaim(%s): %v", i, h, err)
				}
				for _, id := range c.IDs {
					if r := model[id]; r != nil && r.token == c.Token {
						r.token, r.until = 0, time.Time{}
					}
				}
			case 3: // the outcome of one claimed write commits
				if c == nil || len(c.IDs) == 0 {
					continue
				}
				id := rapid.SampledFrom(c.IDs).Draw(rt, "write")
				err := s.Commit(ctx, &nhisync.Batch{OutboxDone: []int64{id}, Claim: c, Meta: map[string]string{system: h}})
				r := model[id]
				want := r != nil && r.token == c.Token
				if (err == nil) != want {
					rt.Fatalf("step %d: %s's commit of write %d: %v, model says held %v", i, h, id, err, want)
				}
				if err != nil {
					if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
						rt.Fatalf("step %d: a lost claim's commit failed with %v, want ECONFLICT", i, err)
					}
					continue
				}
				if by, ok := done[id]; ok {
					rt.Fatalf("step %d: write %d's outcome committed by %s and again by %s", i, id, by, h)
				}
				done[id] = h
				delete(model, id)
			case 4: // time passes
				now = now.Add(time.Duration(rapid.IntRange(1, 15).Draw(rt, "seconds")) * time.Second)
			}
		}
	})
}

// TestConcurrentClaimersExpiry: senders on their own connections claim
// one system's writes at once, two at a time; three died holding their
// claim (they never commit) before the others start. Every live claim holds writes no other live
// claim holds; once the dead senders' claims expire, the survivors claim
// and send those writes too, so each write's outcome commits once.
func TestConcurrentClaimersExpiry(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const writes = 60
	first, err := s.NewIDs(ctx, writes)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &nhisync.Batch{}
	for i := range writes {
		b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: first + int64(i), System: "idp", ExternalID: fmt.Sprintf("x%d", i),
			RecordID: 1, Field: "owner", Status: nhisync.OutboxReady, NextAt: start})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	claimedBy := map[int64]string{}
	done := map[int64]string{}
	run := func(holder string, now time.Time, die bool) {
		for {
			c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "idp", Holder: holder, Now: now, TTL: time.Minute, Limit: 2})
			if err != nil {
				t.Errorf("%s: ClaimOutbox: %v", holder, err)
				return
			}
			if len(ws) == 0 {
				return
			}
			mu.Lock()
			for _, id := range c.IDs {
				if by, ok := claimedBy[id]; ok && !die && by != "" {
					// A write claimed again must have been a dead sender's.
					if by[0] != 'd' {
						t.Errorf("write %d claimed by %s while %s's live claim held it", id, holder, by)
					}
				}
				claimedBy[id] = holder
			}
			mu.Unlock()
			if die {
				return // dies holding the claim
			}
			if err := s.Commit(ctx, &nhisync.Batch{OutboxDone: c.IDs, Claim: c}); err != nil {
				t.Errorf("%s: Commit: %v", holder, err)
				return
			}
			mu.Lock()
			for _, id := range c.IDs {
				if by, ok := done[id]; ok {
					t.Errorf("write %d sent by %s and by %s", id, by, holder)
				}
				done[id] = holder
			}
			mu.Unlock()
		}
	}
	// The dead senders claim first (a goroutine started late would find
	// the live ones had sent everything), then the live ones race.
	for i := range 3 {
		run(fmt.Sprintf("dead-%d", i), start, true)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { run(fmt.Sprintf("live-%d", i), start, false) })
	}
	wg.Wait()
	if len(done) != writes-6 {
		t.Fatalf("%d writes sent while 3 dead senders hold 2 each, want %d", len(done), writes-6)
	}
	// A minute later the dead senders' claims have expired.
	for i := range 2 {
		wg.Go(func() { run(fmt.Sprintf("late-%d", i), start.Add(time.Minute), false) })
	}
	wg.Wait()
	if len(done) != writes {
		t.Fatalf("%d of %d writes sent after the dead senders' claims expired", len(done), writes)
	}
}
