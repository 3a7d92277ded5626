package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// aheadWatch is a store whose first outcome commit of a pass's drain
// (a batch with a claim and a fence) waits, for a while, until a load of
// links marked nhisync.Ahead has come in: the next chunk's outcome built
// before that commit is in. The load may come before the commit starts
// (the build ahead is started just before it), so any Ahead load before
// the first outcome commit is done counts.
type aheadWatch struct {
	nhisync.Store
	mu        sync.Mutex
	once      sync.Once
	ahead     chan struct{}
	firstDone bool
	during    bool // an Ahead load came before the first outcome commit was in
}

func (s *aheadWatch) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	if nhisync.IsAhead(ctx) {
		s.mu.Lock()
		if !s.firstDone {
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
		first = !s.firstDone
		s.mu.Unlock()
	}
	if first {
		select {
		case <-s.ahead:
		case <-time.After(5 * time.Second):
		}
		defer func() {
			s.mu.Lock()
			s.firstDone = true
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
	// The file system's one Apply call commits in three outcomes, of the
	// 500 records each that the estate is sized for.
	defer engine.SetApplyChunk(500)()
	w := newWorld(t, baseConfig, threeChunks())
	watch := &aheadWatch{Store: w.store, ahead: make(chan struct{})}
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
