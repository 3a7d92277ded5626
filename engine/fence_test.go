package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/audit"
	"github.com/nhisync/nhisync/engine"
)

// otherProcess returns an engine over the world's store with connectors of
// its own, as another nhisync process would have.
func (w *world) otherProcess(holder string) *engine.Engine {
	return engine.New(w.cfg, w.store, w.openConns(nil), engine.WithClock(w.clock), engine.WithHolder(holder))
}

// TestStalledPassIsFenced (issue 6 finding 12): a pass stalled past its
// lease while another process took the lease and wrote can neither commit
// its stale decisions nor send writes: the lease is a fencing token.
func TestStalledPassIsFenced(t *testing.T) {
	const ttl = 2 * time.Minute
	newFencedWorld := func(t *testing.T) *world {
		w := newWorld(t, baseConfig, map[string][]map[string]any{
			"idp.json":     {sa("i1", "aws", "bot", "scopes", []any{"s3:read"})},
			"cmdb.json":    {sa("c1", "aws", "bot", "owner", "a@x", "scopes", []any{"s3:read"})},
			"catalog.json": {sa("k1", "aws", "bot", "steward", "a@x")},
		})
		w.sync()
		return w
	}
	setOwner := func(w *world, owner string) {
		recs := w.get("cmdb.json")
		recs[0]["owner"] = owner
		w.put("cmdb.json", recs)
	}

	t.Run("cannot commit", func(t *testing.T) {
		w := newFencedWorld(t)
		setOwner(w, "b@x")
		stalled := false
		w.wrap = func(name string, c nhisync.Connector) nhisync.Connector {
			if name != "catalog" {
				return c
			}
			// The catalog is read after the CMDB: the pass has seen b@x
			// when it stalls past its lease, and meanwhile the CMDB says
			// c@x and another process syncs it.
			return &slowRead{Connector: c, during: func() {
				if stalled {
					return
				}
				stalled = true
				w.clock.Advance(ttl + time.Minute)
				setOwner(w, "c@x")
				if _, err := w.otherProcess("B").Sync(context.Background(), engine.PassOptions{LeaseTTL: ttl}); err != nil {
					t.Fatalf("the other process's pass: %v", err)
				}
			}}
		}
		_, err := w.engine().Sync(context.Background(), engine.PassOptions{LeaseTTL: ttl})
		if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
			t.Fatalf("the stalled pass: %v, want ECONFLICT (it lost its lease)", err)
		}
		if got := w.golden("service_account", "owner", "aws", "bot"); got != "c@x" {
			t.Errorf("golden owner = %q, want the newer pass's c@x", got)
		}
		if got := w.get("catalog.json")[0]["steward"]; got != "c@x" {
			t.Errorf("catalog steward = %v, want c@x", got)
		}
		// Nothing of the stalled pass reached the audit log, and time
		// never ran backwards in it.
		err = w.store.ScanAudit(context.Background(), 1, 0, func(e *nhisync.AuditEntry, _ []byte) error {
			if e.New.String() == "b@x" {
				t.Errorf("entry %d (%s) holds the stalled pass's b@x", e.Seq, e.Action)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := audit.Verify(context.Background(), w.store, w.verifier); err != nil || !rep.OK {
			t.Fatalf("audit verify: %+v %v", rep, err)
		}
	})

	t.Run("cannot send writes", func(t *testing.T) {
		w := newFencedWorld(t)
		// One change for each of two systems: the IdP's scopes go to the
		// CMDB, the CMDB's owner to the catalog. The CMDB's and the
		// catalog's writes go out at once; the catalog's claim waits
		// until the pass has stalled sending the CMDB's.
		idp := w.get("idp.json")
		idp[0]["scopes"] = []any{"s3:read", "s3:write"}
		w.put("idp.json", idp)
		setOwner(w, "b@x")
		clock := &steppedClock{t: w.clock.Now()}
		store := &gatedClaims{Store: w.store, system: "catalog", holder: "A", open: make(chan struct{})}
		catalogWrites := 0
		conns := w.openConns(nil)
		// Stalled while its writes to the CMDB go out; meanwhile another
		// process takes the lease and runs.
		conns["cmdb"] = &slowRead{Connector: conns["cmdb"], during: func() {}, onApply: func() {
			if store.opened {
				return
			}
			clock.Advance(ttl + time.Minute)
			b := engine.New(w.cfg, w.store, w.openConns(nil), engine.WithClock(clock), engine.WithHolder("B"))
			if _, err := b.Sync(context.Background(), engine.PassOptions{LeaseTTL: ttl}); err != nil {
				t.Errorf("the other process's pass: %v", err)
			}
			store.opened = true
			close(store.open)
		}}
		conns["catalog"] = &slowRead{Connector: conns["catalog"], during: func() {}, onApply: func() { catalogWrites++ }}
		a := engine.New(w.cfg, store, conns, engine.WithClock(clock), engine.WithHolder("A"))
		_, err := a.Sync(context.Background(), engine.PassOptions{LeaseTTL: ttl})
		if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
			t.Fatalf("the stalled pass: %v, want ECONFLICT (it lost its lease)", err)
		}
		if catalogWrites != 0 {
			t.Errorf("the stalled pass sent %d writes to the catalog after losing its lease", catalogWrites)
		}
		if got := w.get("catalog.json")[0]["steward"]; got != "b@x" {
			t.Errorf("catalog steward = %v, want b@x (written by the pass that held the lease)", got)
		}
		if rep, err := audit.Verify(context.Background(), w.store, w.verifier); err != nil || !rep.OK {
			t.Fatalf("audit verify: %+v %v", rep, err)
		}
	})
}

// gatedClaims is a store on which holder's claims of system's queued
// writes, when some are queued, wait until open is closed (or a minute
// has gone by).
type gatedClaims struct {
	nhisync.Store
	system, holder string
	open           chan struct{}
	opened         bool // set by whoever closes open, before
}

func (s *gatedClaims) ClaimOutbox(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	queued, err := s.Store.OutboxWrites(ctx, s.system, nhisync.OutboxReady, time.Time{}, 0)
	if err != nil {
		return nil, nil, err
	}
	if req.System == s.system && req.Holder == s.holder && len(queued) > 0 {
		select {
		case <-s.open:
		case <-time.After(time.Minute):
		}
	}
	return s.Store.ClaimOutbox(ctx, req)
}

// TestStalledDismissIsFenced: a person's dismissal of an unmatched record
// stalled past its lease while a pass took the lease and wrote commits
// nothing (ECONFLICT), as every other human action.
func TestStalledDismissIsFenced(t *testing.T) {
	w := newWorld(t, strayConfig, map[string][]map[string]any{
		"idp.json":    {sa("1", "aws", "bot")},
		"policy.json": {sa("p1", "aws", "bot"), sa("p2", "aws", "ghost")},
	})
	w.sync()
	stalled := &stallLoadLinks{Store: w.store, during: func() {
		w.clock.Advance(2 * time.Hour)
		if _, err := w.otherProcess("B").Sync(context.Background(), engine.PassOptions{}); err != nil {
			t.Fatalf("the other process's pass: %v", err)
		}
	}}
	a := engine.New(w.cfg, stalled, w.openConns(nil), engine.WithClock(w.clock), engine.WithHolder("A"))
	_, err := a.DismissUnmatched(context.Background(), "policy", "p2", "erin")
	if nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("the stalled dismissal: %v, want ECONFLICT (it lost its lease)", err)
	}
	if got := strings.Join(w.unmatchedIDs(false), "\n"); got != "policy/p2 aws/ghost unmatched" {
		t.Errorf("after the stalled dismissal, open unmatched:\n%s", got)
	}
	if _, err := a.DismissUnmatched(context.Background(), "policy", "p2", "erin"); err != nil {
		t.Fatalf("dismissing again, holding the lease: %v", err)
	}
	if got := w.unmatchedIDs(false); len(got) != 0 {
		t.Errorf("after the dismissal, open unmatched: %v", got)
	}
}

// stallLoadLinks is a store whose first LoadLinks runs during before it
// loads.
type stallLoadLinks struct {
	nhisync.Store
	during func()
	done   bool
}

func (s *stallLoadLinks) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	if !s.done {
		s.done = true
		s.during()
	}
	return s.Store.LoadLinks(ctx, system, ids)
}
