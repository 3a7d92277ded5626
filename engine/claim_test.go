package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// sendCounter wraps a system's connector for drains racing each other:
// it hides ApplyWhole (writes then go out claim by claim), sends one
// Apply at a time (the file is one system), counts each write's fields
// applied, and can fail every Apply or run before delegating.
type sendCounter struct {
	nhisync.Connector
	mu     *sync.Mutex
	sent   map[string]int // "id field" → times applied
	fail   bool
	before func()
}

func (c *sendCounter) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.before != nil {
		c.before()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return nil, nhisync.Errorf(nhisync.EUNAVAIL, "the catalog is down (test)")
	}
	res, err := c.Connector.Apply(ctx, ws)
	if err != nil {
		return res, err
	}
	for i, r := range res {
		if r.Status == nhisync.WriteApplied {
			for _, ch := range ws[i].Changes {
				c.sent[ws[i].ID+" "+ch.Field]++
			}
		}
	}
	return res, nil
}

// process returns an engine over the world's store, as another process
// would run it: holder, connectors of its own, the catalog's wrapped.
func (w *world) process(holder string, catalog func(nhisync.Connector) nhisync.Connector) *engine.Engine {
	return engine.New(w.cfg, w.store, w.openConns(catalog), engine.WithClock(w.clock), engine.WithHolder(holder))
}

// openConns opens connectors of the world's systems of their own (closed
// when the test ends), the catalog's wrapped by catalog when it is set.
func (w *world) openConns(catalog func(nhisync.Connector) nhisync.Connector) map[string]nhisync.Connector {
	conns, err := nhisync.OpenConnectors(context.Background(), w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { nhisync.CloseConnectors(conns) })
	if catalog != nil && conns["catalog"] != nil {
		conns["catalog"] = catalog(conns["catalog"])
	}
	return conns
}

// queuedCatalogWrites makes a world of n service accounts whose catalog
// entries lack the owner the CMDB gives, runs a first pass while the
// catalog is down (its writes stay queued, retried after a backoff) and
// moves the clock past the retry.
func queuedCatalogWrites(t *testing.T, n int) (*world, *sync.Mutex, map[string]int) {
	var cmdb, catalog []map[string]any
	for i := range n {
		cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i)))
		catalog = append(catalog, sa(fmt.Sprintf("k%d", i), "aws", fmt.Sprintf("bot-%d", i)))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
	mu, sent := &sync.Mutex{}, map[string]int{}
	down := w.process("first", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: mu, sent: sent, fail: true}
	})
	if _, err := down.Sync(context.Background(), engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	queued, err := w.store.OutboxWrites(context.Background(), "catalog", nhisync.OutboxReady, time.Time{}, 0)
	if err != nil || len(queued) != n {
		t.Fatalf("%d catalog writes queued (%v), want %d", len(queued), err, n)
	}
	w.clock.Advance(time.Hour)
	return w, mu, sent
}

// appliedOnce checks the catalog holds every owner, each write went out
// once and the audit log says write.applied once per write.
func appliedOnce(t *testing.T, w *world, n int, sent map[string]int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("k%d", i)
		if got := w.field("catalog.json", id, "steward"); got != fmt.Sprintf("o%d@x", i) {
			t.Errorf("catalog %s steward = %v, want o%d@x", id, got, i)
		}
		if c := sent[id+" owner"]; c != 1 {
			t.Errorf("catalog %s owner was applied %d times, want once", id, c)
		}
	}
	applied := map[string]int{}
	err := w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
		if e.Action == nhisync.ActWriteApplied {
			applied[fmt.Sprintf("%d %s %s", e.RecordID, e.System, e.Field)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != n {
		t.Errorf("the audit log holds write.applied for %d writes, want %d", len(applied), n)
	}
	for k, c := range applied {
		if c != 1 {
			t.Errorf("the audit log says write.applied %d times for %s", c, k)
		}
	}
	if left, err := w.store.OutboxWrites(context.Background(), "", "", time.Time{}, 0); err != nil || len(left) != 0 {
		t.Errorf("%d writes left in the outbox (%v)", len(left), err)
	}
}

// TestDrainersSendEachWriteOnce: three processes drain one outbox at once,
// claiming three writes at a time; every write goes out once and is
// audited once.
func TestDrainersSendEachWriteOnce(t *testing.T) {
	defer engine.SetClaimRows(3)()
	const n = 20
	w, mu, sent := queuedCatalogWrites(t, n)
	var wg sync.WaitGroup
	var total sync.Map
	for i := range 3 {
		e := w.process(fmt.Sprintf("replica-%d", i), func(c nhisync.Connector) nhisync.Connector {
			return &sendCounter{Connector: c, mu: mu, sent: sent}
		})
		wg.Go(func() {
			sum, err := e.Drain(context.Background())
			if err != nil {
				t.Errorf("replica-%d: Drain: %v", i, err)
				return
			}
			total.Store(i, sum.WritesApplied)
		})
	}
	wg.Wait()
	n0 := 0
	total.Range(func(k, v any) bool {
		n0 += v.(int)
		t.Logf("replica-%d applied %d writes", k, v)
		return true
	})
	if n0 != n {
		t.Errorf("the drains applied %d writes in all, want %d", n0, n)
	}
	appliedOnce(t, w, n, sent)
}

// TestStalledDrainCannotCommit: a drain stalls after claiming writes, past
// its claim; another process claims and sends them. The stalled one's
// outcome does not commit (ECONFLICT): each write is audited once.
func TestStalledDrainCannotCommit(t *testing.T) {
	const n = 5
	w, mu, sent := queuedCatalogWrites(t, n)
	other := w.process("other", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: mu, sent: sent}
	})
	stalled := false
	e := w.process("stalled", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: mu, sent: map[string]int{}, before: func() {
			if stalled {
				return
			}
			stalled = true
			w.clock.Advance(2 * time.Minute) // past the drain's 1m claim
			sum, err := other.Drain(context.Background())
			if err != nil || sum.WritesApplied != n {
				t.Errorf("the other process's drain: %v, applied %v; want all %d", err, sum, n)
			}
		}}
	})
	_, err := e.Drain(context.Background())
	if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("the stalled drain: %v, want ECONFLICT (its claim was taken over)", err)
	}
	appliedOnce(t, w, n, sent)
	if live, err := w.store.OutboxClaims(context.Background(), w.clock.Now()); err != nil || len(live) != 0 {
		t.Errorf("claims still live: %v (%v)", live, err)
	}
}

// TestPassReturnsClaimsOfTheDead: writes claimed by a process known to be
// gone (killed on this host) go back to the queue when a pass takes the
// lease, and the pass sends them at once instead of waiting for the
// claims to expire.
func TestPassReturnsClaimsOfTheDead(t *testing.T) {
	const n = 4
	w, mu, sent := queuedCatalogWrites(t, n)
	c, rows, err := w.store.ClaimOutbox(context.Background(), nhisync.ClaimRequest{System: "catalog", Holder: "gone", Now: w.clock.Now(), TTL: time.Hour})
	if err != nil || len(rows) != n {
		t.Fatalf("the gone process's claim: %d writes, %v", len(rows), err)
	}
	e := w.process("next", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: mu, sent: sent}
	})
	engine.WithDeadHolder(func(h string) bool { return h == c.Holder })(e)
	sum, err := e.Sync(context.Background(), engine.PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.WritesApplied != n {
		t.Errorf("the pass applied %d writes, want the gone process's %d", sum.WritesApplied, n)
	}
	appliedOnce(t, w, n, sent)
}

// TestPassSaysItWaitsForClaims: a pass that finds queued writes claimed by
// another live process waits for the claims to end and says so on its
// progress line (a stalled process's claims can hold it for their whole
// period); claims that outlive the longest they were seen to last end the
// wait with ECONFLICT.
func TestPassSaysItWaitsForClaims(t *testing.T) {
	w, _, _ := queuedCatalogWrites(t, 2)
	if _, _, err := w.store.ClaimOutbox(context.Background(), nhisync.ClaimRequest{System: "catalog", Holder: "alive", Now: w.clock.Now(), TTL: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	e := w.process("next", nil)
	var waits []engine.Progress
	engine.WithProgress(func(p engine.Progress) {
		if strings.HasPrefix(p.Stage, "waiting for writes another process claimed") {
			waits = append(waits, p)
		}
	})(e)
	_, err := e.Sync(context.Background(), engine.PassOptions{})
	if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("a pass behind claims that never end (the clock stands still): %v, want ECONFLICT", err)
	}
	if len(waits) == 0 || waits[0].Total < 1 {
		t.Errorf("the pass did not say it waited for the other process's claims: %+v", waits)
	}
}
