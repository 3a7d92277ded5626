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

// heldOutcomes is a store that holds back the outcome commits of writes
// to one system (batches carrying a claim whose audit entries name it)
// until release is closed, or until it gives up waiting.
type heldOutcomes struct {
	nhisync.Store
	system  string
	release chan struct{}
	// gaveUp is set when a held commit went ahead without release.
	mu     sync.Mutex
	gaveUp bool
}

func (s *heldOutcomes) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil && len(b.Audit) > 0 && b.Audit[0].System == s.system {
		s.mu.Lock()
		gaveUp := s.gaveUp
		s.mu.Unlock()
		if !gaveUp {
			select {
			case <-s.release:
			case <-time.After(time.Minute): // the drain waits for this commit: nothing releases it
				s.mu.Lock()
				s.gaveUp = true
				s.mu.Unlock()
			}
		}
	}
	return s.Store.Commit(ctx, b)
}

// appliedCall closes sent (when set) as its first Apply call starts, and
// returned (when set) once that call has returned.
type appliedCall struct {
	nhisync.Connector
	once, done     sync.Once
	sent, returned chan struct{}
}

func (c *appliedCall) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.sent != nil {
		c.once.Do(func() { close(c.sent) })
	}
	if c.returned != nil {
		defer c.done.Do(func() { close(c.returned) })
	}
	return c.Connector.Apply(ctx, ws)
}

// queuedBothWays returns a world whose first pass, with the CMDB and the
// catalog down, queued n writes to each: the first n accounts lack the
// catalog's steward, the next n the CMDB's owner. Its clock is then an
// hour on, so the writes are due.
func queuedBothWays(t *testing.T, n int) *world {
	t.Helper()
	var cmdb, catalog []map[string]any
	for i := range 2 * n {
		owner := fmt.Sprintf("o%d@x", i)
		if i < n {
			cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", fmt.Sprintf("bot-%d", i), "owner", owner))
			catalog = append(catalog, sa(fmt.Sprintf("k%d", i), "aws", fmt.Sprintf("bot-%d", i)))
		} else {
			cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", fmt.Sprintf("bot-%d", i)))
			catalog = append(catalog, sa(fmt.Sprintf("k%d", i), "aws", fmt.Sprintf("bot-%d", i), "steward", owner))
		}
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
	down := w.openConns(nil)
	mu := &sync.Mutex{}
	for _, name := range []string{"cmdb", "catalog"} {
		down[name] = &sendCounter{Connector: down[name], mu: mu, sent: map[string]int{}, fail: true}
	}
	first := engine.New(w.cfg, w.store, down, engine.WithClock(w.clock), engine.WithHolder("first"))
	if _, err := first.Sync(context.Background(), engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cmdb", "catalog"} {
		if q, err := w.store.OutboxWrites(context.Background(), name, nhisync.OutboxReady, time.Time{}, 0); err != nil || len(q) != n {
			t.Fatalf("%d %s writes queued (%v), want %d", len(q), name, err, n)
		}
	}
	w.clock.Advance(time.Hour)
	return w
}

// TestWholeSystemOutcomeCommitsWhileTheNextSystemSends: a whole-file
// system's outcome, several chunks, commits while the drain claims and
// sends the next system's writes (the CMDB's outcome is held until the
// catalog's writes went out), and the outcomes still commit in order: every
// CMDB write's audit entry before every catalog one's.
func TestWholeSystemOutcomeCommitsWhileTheNextSystemSends(t *testing.T) {
	const n = 6
	defer engine.SetApplyChunk(2)()
	w := queuedBothWays(t, n)

	store := &heldOutcomes{Store: w.store, system: "cmdb", release: make(chan struct{})}
	conns := w.openConns(nil)
	sent := &appliedCall{Connector: conns["catalog"], sent: make(chan struct{})}
	conns["catalog"] = sent
	go func() {
		<-sent.sent
		close(store.release)
	}()
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	sum, err := e.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if store.gaveUp {
		t.Errorf("the CMDB's outcome had to commit before the catalog's writes went out")
	}
	if sum.WritesApplied != 2*n {
		t.Errorf("%d writes applied, want %d", sum.WritesApplied, 2*n)
	}
	var order []string
	err = w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action == nhisync.ActWriteApplied {
			order = append(order, e.System)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2*n {
		t.Fatalf("%d write.applied entries, want %d", len(order), 2*n)
	}
	for i, sys := range order {
		if want := map[bool]string{true: "cmdb", false: "catalog"}[i < n]; sys != want {
			t.Fatalf("write.applied entries by system %v: the CMDB's outcome must all come first", order)
		}
	}
	for i := range n {
		if got := w.field("catalog.json", fmt.Sprintf("k%d", i), "steward"); got != fmt.Sprintf("o%d@x", i) {
			t.Errorf("catalog k%d steward = %v", i, got)
		}
		if got := w.field("cmdb.json", fmt.Sprintf("c%d", n+i), "owner"); got != fmt.Sprintf("o%d@x", n+i) {
			t.Errorf("cmdb c%d owner = %v", n+i, got)
		}
	}
}

// firstOutcomeWaits is a store whose first outcome commit (a batch carrying a
// claim) waits until sent is closed, or gives up after a while; it counts
// the outcome commits.
type firstOutcomeWaits struct {
	nhisync.Store
	sent    <-chan struct{}
	mu      sync.Mutex
	commits int
}

func (s *firstOutcomeWaits) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil {
		s.mu.Lock()
		s.commits++
		first := s.commits == 1
		s.mu.Unlock()
		if first {
			select {
			case <-s.sent:
			case <-time.After(10 * time.Second):
			}
		}
	}
	return s.Store.Commit(ctx, b)
}

// TestOutcomesQueuedBehindACommitCommitTogether: outcomes that wait in the
// queue while the commit before them is slow commit together, up to
// outcomeChunk records (a group commit): a system's writes sent in four
// Apply calls of two, while the first outcome's commit holds until all
// four went out, commit in fewer than four, and every write is applied
// once, in the catalog and in the audit log.
func TestOutcomesQueuedBehindACommitCommitTogether(t *testing.T) {
	const n, chunk = 8, 2
	w, mu, counted := queuedCatalogWrites(t, n)
	defer engine.SetClaimRows(n)()
	defer engine.SetApplyChunk(chunk)()
	defer engine.SetOutcomeChunk(n)()
	sent := make(chan struct{})
	calls := 0
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
		// Not a whole-file connector (sendCounter hides ApplyWhole): one
		// Apply call per chunk.
		return &sendCounter{Connector: c, mu: mu, sent: counted, before: func() {
			if calls++; calls == n/chunk {
				close(sent)
			}
		}}
	})
	store := &firstOutcomeWaits{Store: w.store, sent: sent}
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	sum, err := e.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if calls != n/chunk {
		t.Fatalf("%d Apply calls, want %d", calls, n/chunk)
	}
	if sum.WritesApplied != n {
		t.Errorf("%d writes applied, want %d", sum.WritesApplied, n)
	}
	if store.commits >= calls {
		t.Errorf("%d outcome commits for %d Apply calls: the outcomes queued behind the slow commit did not commit together", store.commits, calls)
	}
	appliedOnce(t, w, n, counted)
}
