package postgres

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"pgregory.net/rapid"
)

// TestPropertyLeaseFencing: random interleavings of acquire (and renew),
// release, time passing (expiry) and fenced commits from several holders
// never let two holders commit under the same lease epoch, and a fenced
// commit succeeds exactly when its holder still holds the lease at the
// fence's epoch (a model of the lease row says so). Each check uses a
// lease of its own on one store.
func TestPropertyLeaseFencing(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	var n atomic.Int64
	const ttl = 10 * time.Second
	rapid.Check(t, func(rt *rapid.T) {
		lease := fmt.Sprintf("pass-%d", n.Add(1))
		holders := []string{"a", "b", "c"}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		// The model: who holds the lease, until when, at which epoch.
		var mHolder string
		var mExpires time.Time
		var mEpoch int64
		fences := map[string]*nhisync.Fence{}
		committed := map[int64]string{} // epoch → the holder that committed under it
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for i := range steps {
			h := rapid.SampledFrom(holders).Draw(rt, "holder")
			switch op := rapid.IntRange(0, 3).Draw(rt, "op"); op {
			case 0: // acquire or renew
				ok, err := s.AcquireLease(ctx, lease, h, now, ttl)
				if err != nil {
					rt.Fatalf("step %d: AcquireLease: %v", i, err)
				}
				want := mHolder == "" || mHolder == h || !mExpires.After(now)
				if ok != want {
					rt.Fatalf("step %d: AcquireLease(%s) = %v, model says %v (held by %q until %v, now %v)", i, h, ok, want, mHolder, mExpires, now)
				}
				if ok {
					if mHolder != h {
						mEpoch++
					}
					mHolder, mExpires = h, now.Add(ttl)
					f, err := s.LeaseFence(ctx, lease, h)
					if err != nil || f.Epoch != mEpoch {
						rt.Fatalf("step %d: LeaseFence(%s) = %+v, %v; model epoch %d", i, h, f, err, mEpoch)
					}
					fences[h] = f
				}
			case 1: // release
				if err := s.ReleaseLease(ctx, lease, h); err != nil {
					rt.Fatalf("step %d: ReleaseLease: %v", i, err)
				}
				if mHolder == h {
					mHolder, mExpires = "", time.Time{}
				}
			case 2: // time passes (the lease may expire)
				now = now.Add(time.Duration(rapid.IntRange(1, 15).Draw(rt, "seconds")) * time.Second)
			case 3: // a fenced commit with the last fence h took
				f := fences[h]
				if f == nil {
					continue
				}
				err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{lease: h}, Fence: f})
				want := mHolder == h && mEpoch == f.Epoch
				if (err == nil) != want {
					rt.Fatalf("step %d: Commit by %s at epoch %d: %v; model: holder %q epoch %d", i, h, f.Epoch, err, mHolder, mEpoch)
				}
				if err != nil {
					if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
						rt.Fatalf("step %d: a stale commit failed with %v, want ECONFLICT", i, err)
					}
					continue
				}
				if other, ok := committed[f.Epoch]; ok && other != h {
					rt.Fatalf("step %d: %s and %s both committed under epoch %d", i, other, h, f.Epoch)
				}
				committed[f.Epoch] = h
			}
		}
	})
}

// TestConcurrentAcquireOneWins: holders racing for a free lease at the
// same instant, each on its own connection: exactly one gets it, and only
// its fence commits.
func TestConcurrentAcquireOneWins(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 5 {
		lease := fmt.Sprintf("feed/idp-%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for i := range 4 {
			h := fmt.Sprintf("replica-%d", i)
			wg.Go(func() {
				ok, err := s.AcquireLease(ctx, lease, h, now, time.Minute)
				if err != nil {
					t.Errorf("AcquireLease(%s): %v", h, err)
				}
				if ok {
					mu.Lock()
					winners = append(winners, h)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d holders took the lease at once: %v", round, len(winners), winners)
		}
		f, err := s.LeaseFence(ctx, lease, winners[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{lease: winners[0]}, Fence: f}); err != nil {
			t.Fatalf("the winner's commit: %v", err)
		}
	}
}
