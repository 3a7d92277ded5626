package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// aheadWatch is a store whose first outcome commit of a pass's drain
// (a batch with a claim and a fence) waits, for a while, until a load of
// links marked nhisync.Ahead has come in: the next chunk's outcome built
// while that commit is in flight.
type aheadWatch struct {
	nhisync.Store
	mu      sync.Mutex
	once    sync.Once
	ahead   chan struct{}
	inFirst bool
	during  bool // an Ahead load came while the first outcome commit waited
}

func (s *aheadWatch) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	if nhisync.IsAhead(ctx) {
		s.mu.Lock()
		if s.inFirst {
			s.during = true
			s.once.Do(func() { close(s.ahead) })
		}
		s.mu.Unlock()
	}
	return s.Store.LoadLinks(ctx, system, ids)
}

func (s *aheadWatch) Commit(ctx context.Context, b *nhisync.Batch) error {
	first := false
	if b.Claim != nil && b.Fence != nil {
		s.mu.Lock()
		if s.ahead == nil {
			s.ahead, s.inFirst, first = make(chan struct{}), true, true
		}
		s.mu.Unlock()
	}
	if first {
		select {
		case <-s.ahead:
		case <-time.After(5 * time.Second):
		}
		defer func() {
			s.mu.Lock()
			s.inFirst = false
			s.mu.Unlock()
		}()
	}
	return s.Store.Commit(ctx, b)
}

// A pass's drain builds the outcome of a file system's next chunk of
// writes (its links read ahead, nhisync.Ahead) while the chunk before
// commits, and every write is still applied, committed and quiet on the
// next pass.
func TestPassDrainBuildsNextOutcomeAhead(t *testing.T) {
	w := newWorld(t, baseConfig, threeChunks())
	watch := &aheadWatch{Store: w.store}
	w.store = watch
	sum := w.sync()
	if got := sum.Systems["cmdb"].Written; got != threeChunksN {
		t.Fatalf("cmdb written %d, want %d\n%s", got, threeChunksN, actions(sum))
	}
	watch.mu.Lock()
	during := watch.during
	watch.mu.Unlock()
	if !during {
		t.Fatal("no outcome was built ahead (links loaded nhisync.Ahead) while the outcome before it committed")
	}
	if got := w.field("cmdb.json", "c1200", "status"); got != "active" {
		t.Fatalf("c1200 status = %v, want active", got)
	}
	sum = w.sync()
	if sum.WritesPlanned != 0 || sum.Systems["cmdb"].Changed != 0 {
		t.Fatalf("second pass not quiet: planned %d, cmdb changed %d", sum.WritesPlanned, sum.Systems["cmdb"].Changed)
	}
}
