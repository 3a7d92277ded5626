package engine_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// scriptedOutcomes answers each write as its script says, by external id,
// without sending it; before it answers the first time it runs meanwhile
// (what another process changes while the writes are out).
type scriptedOutcomes struct {
	nhisync.Connector
	status    map[string]nhisync.WriteStatus
	meanwhile func()
}

func (c *scriptedOutcomes) Apply(_ context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	if c.meanwhile != nil {
		c.meanwhile()
		c.meanwhile = nil
	}
	res := make([]nhisync.WriteResult, len(ws))
	for i, w := range ws {
		res[i].Status = c.status[w.ID]
		if res[i].Status == nhisync.WriteFailed {
			res[i].Err = nhisync.Errorf(nhisync.EUNAVAIL, "the catalog refused %s (test)", w.ID)
		}
	}
	return res, nil
}

// TestWriteOutcomesLandOnTheirLinks: queued updates of the catalog, whose
// external ids are the CMDB's too, come back applied, stale, missing or
// failed, a few claims and chunks at a time, while meanwhile some of
// their links moved to another record and some records were renamed. Each
// write's outcome lands on its own link and nowhere else: an applied one
// moves that link's shadow and assertion and rehashes it, a stale or
// missing one drops that link's hash, a failed one stays queued; a link
// that left the write's record, and every CMDB link, stay as they were;
// the audit log says each outcome once, naming the record as it is named
// now.
func TestWriteOutcomesLandOnTheirLinks(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 14).Draw(rt, "writes")
		defer engine.SetClaimRows(rapid.IntRange(1, n+1).Draw(rt, "claim"))()
		statuses := []nhisync.WriteStatus{nhisync.WriteApplied, nhisync.WriteStale, nhisync.WriteMissing, nhisync.WriteFailed}
		dir, err := os.MkdirTemp("", "nhisync-outcomes-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		var cmdb, catalog []map[string]any
		for i := range n {
			// One external id in both systems; x10 sorts before x2.
			id := fmt.Sprintf("x%d", i)
			cmdb = append(cmdb, sa(id, "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i)))
			catalog = append(catalog, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
		}
		w := newWorldIn(rt, dir, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
		down := w.process("first", func(c nhisync.Connector) nhisync.Connector {
			return &scriptedOutcomes{Connector: c, status: map[string]nhisync.WriteStatus{}} // every write fails
		})
		ctx := context.Background()
		if _, err := down.Sync(ctx, engine.PassOptions{}); err != nil {
			rt.Fatal(err)
		}
		queued, err := w.store.OutboxWrites(ctx, "catalog", nhisync.OutboxReady, time.Time{}, 0)
		if err != nil || len(queued) != n {
			rt.Fatalf("%d catalog writes queued (%v), want %d", len(queued), err, n)
		}
		w.clock.Advance(time.Hour)
		byExt := map[string]*nhisync.OutboxWrite{}
		ids := make([]string, 0, n)
		for _, o := range queued {
			byExt[o.ExternalID] = o
			ids = append(ids, o.ExternalID)
		}
		slices.Sort(ids)
		status := map[string]nhisync.WriteStatus{}
		moved, renamed := map[string]bool{}, map[string]bool{}
		for _, id := range ids {
			status[id] = rapid.SampledFrom(statuses).Draw(rt, "status-"+id)
			moved[id] = n > 1 && rapid.IntRange(0, 3).Draw(rt, "moved-"+id) == 0
			renamed[id] = rapid.IntRange(0, 3).Draw(rt, "renamed-"+id) == 0
		}

		// Meanwhile: links move to the next write's record, records are
		// renamed; then what the outcomes must change is taken.
		var before map[string][]*nhisync.Link
		keys := map[int64]string{}
		meanwhile := func() {
			b := &nhisync.Batch{}
			links := loadLinks(rt, w, "catalog", ids)
			for i, id := range ids {
				if moved[id] {
					l := links[id]
					l.RecordID = byExt[ids[(i+1)%len(ids)]].RecordID
					b.Links = append(b.Links, l)
				}
			}
			var recIDs []int64
			for _, o := range queued {
				recIDs = append(recIDs, o.RecordID)
			}
			recs, err := w.store.LoadRecords(ctx, recIDs)
			if err != nil {
				rt.Fatal(err)
			}
			for _, r := range recs {
				keys[r.ID] = r.Key
			}
			for _, id := range ids {
				if renamed[id] {
					r := recs[slices.IndexFunc(recs, func(r *nhisync.Record) bool { return r.ID == byExt[id].RecordID })]
					r.Key += "-renamed"
					keys[r.ID] = r.Key
					b.Records = append(b.Records, r)
				}
			}
			if err := w.store.Commit(ctx, b); err != nil {
				rt.Fatal(err)
			}
			before = map[string][]*nhisync.Link{}
			for _, sys := range []string{"catalog", "cmdb"} {
				for _, id := range ids {
					before[sys] = append(before[sys], loadLinks(rt, w, sys, []string{id})[id])
				}
			}
		}
		size, _, err := w.store.AuditHead(ctx)
		if err != nil {
			rt.Fatal(err)
		}
		e := w.process("drain", func(c nhisync.Connector) nhisync.Connector {
			return &scriptedOutcomes{Connector: c, status: status, meanwhile: meanwhile}
		})
		now := w.clock.Now()
		if _, err := e.Drain(ctx); err != nil {
			rt.Fatalf("Drain: %v", err)
		}

		for i, id := range ids {
			o := byExt[id]
			was, is := before["catalog"][i], loadLinks(rt, w, "catalog", []string{id})[id]
			want := cloneLink(was)
			switch {
			case moved[id] || status[id] == nhisync.WriteFailed:
			case status[id] == nhisync.WriteApplied:
				fs := want.Field("owner")
				fs.Shadow, fs.Asserted, fs.Since = o.New, o.New, now
				want.Hash = is.Hash
				if is.Hash == nil || slices.Equal(is.Hash, was.Hash) {
					rt.Errorf("catalog %s: applied, its hash is %x, was %x; want it recomputed", id, is.Hash, was.Hash)
				}
			default:
				want.Hash = nil
			}
			// (Stored is the store's note of the link as loaded.)
			if d := cmp.Diff(want, is, cmpopts.IgnoreFields(nhisync.Link{}, "Stored")); d != "" {
				rt.Errorf("catalog %s (%s, moved %v) (-want +got):\n%s", id, status[id], moved[id], d)
			}
			if d := cmp.Diff(before["cmdb"][i], loadLinks(rt, w, "cmdb", []string{id})[id], cmpopts.IgnoreFields(nhisync.Link{}, "Stored")); d != "" {
				rt.Errorf("cmdb %s changed by the catalog's write (-want +got):\n%s", id, d)
			}
		}

		left, err := w.store.OutboxWrites(ctx, "", "", time.Time{}, 0)
		if err != nil {
			rt.Fatal(err)
		}
		for _, o := range left {
			if status[o.ExternalID] != nhisync.WriteFailed || o.Attempts != 2 {
				rt.Errorf("write to catalog %s left queued after %s, attempt %d", o.ExternalID, status[o.ExternalID], o.Attempts)
			}
		}
		action := map[nhisync.WriteStatus]string{nhisync.WriteApplied: nhisync.ActWriteApplied, nhisync.WriteStale: nhisync.ActWriteStale,
			nhisync.WriteMissing: nhisync.ActWriteStale, nhisync.WriteFailed: nhisync.ActWriteFailed}
		said := map[int64]int{}
		err = w.store.ScanAudit(ctx, size+1, 0, func(ev *nhisync.AuditEntry, _ []byte) error {
			if ev.System != "catalog" || (ev.Action != nhisync.ActWriteApplied && ev.Action != nhisync.ActWriteStale && ev.Action != nhisync.ActWriteFailed) {
				return nil
			}
			var o *nhisync.OutboxWrite
			for _, q := range queued {
				if q.RecordID == ev.RecordID {
					o = q
				}
			}
			switch {
			case o == nil:
				rt.Errorf("audit entry %d about record %d, which no write was for", ev.Seq, ev.RecordID)
			case ev.Action != action[status[o.ExternalID]] || ev.Field != "owner" || ev.Record != keys[o.RecordID] || !ev.New.Equal(o.New):
				rt.Errorf("audit entry %d: %s %s %s %s = %v; want %s %s %s = %v", ev.Seq, ev.Action, ev.Record, ev.System, ev.Field, ev.New,
					action[status[o.ExternalID]], keys[o.RecordID], "owner", o.New)
			default:
				said[o.ID]++
			}
			return nil
		})
		if err != nil {
			rt.Fatal(err)
		}
		for _, o := range queued {
			if said[o.ID] != 1 {
				rt.Errorf("the outcome of the write to catalog %s is said %d times, want once", o.ExternalID, said[o.ID])
			}
		}
	})
}

// loadLinks returns the links of system with the given external ids, by
// external id.
func loadLinks(t tester, w *world, system string, ids []string) map[string]*nhisync.Link {
	links, err := w.store.LoadLinks(context.Background(), system, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*nhisync.Link{}
	for _, l := range links {
		out[l.ExternalID] = l
	}
	return out
}

func cloneLink(l *nhisync.Link) *nhisync.Link {
	c := *l
	c.Hash = slices.Clone(l.Hash)
	c.Fields = map[string]*nhisync.FieldState{}
	for f, fs := range l.Fields {
		s := *fs
		c.Fields[f] = &s
	}
	return &c
}

// commitLog is a store that keeps, in commit order, the queued writes each
// commit settles, and notes commits that overlap.
type commitLog struct {
	nhisync.Store
	busy    atomic.Bool
	overlap atomic.Bool
	mu      sync.Mutex
	settled [][]int64
}

func (s *commitLog) Commit(ctx context.Context, b *nhisync.Batch) error {
	if !s.busy.CompareAndSwap(false, true) {
		s.overlap.Store(true)
	}
	defer s.busy.Store(false)
	err := s.Store.Commit(ctx, b)
	if err == nil && len(b.OutboxDone) > 0 {
		s.mu.Lock()
		s.settled = append(s.settled, slices.Clone(b.OutboxDone))
		s.mu.Unlock()
	}
	return err
}

// sentLog sends writes as its connector does and keeps, call by call, the
// ids of the records each Apply wrote to.
type sentLog struct {
	nhisync.Connector
	calls [][]string
}

func (c *sentLog) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	c.calls = append(c.calls, ids)
	return c.Connector.Apply(ctx, ws)
}

// TestDrainCommitsOutcomesInOrder: a drain commits each chunk's outcome
// while it sends the next, yet the outcomes commit one at a time, in the
// order their writes went out, and all of them are in when Drain returns.
func TestDrainCommitsOutcomesInOrder(t *testing.T) {
	const n = 9
	defer engine.SetClaimRows(2)()
	w, mu, counted := queuedCatalogWrites(t, n)
	ctx := context.Background()
	queued, err := w.store.OutboxWrites(ctx, "catalog", nhisync.OutboxReady, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	extOf := map[int64]string{}
	for _, o := range queued {
		extOf[o.ID] = o.ExternalID
	}
	store := &commitLog{Store: w.store}
	sent := &sentLog{}
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
		sent.Connector = &sendCounter{Connector: c, mu: mu, sent: counted}
		return sent
	})
	e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	sum, err := e.Drain(ctx)
	if err != nil || sum.WritesApplied != n {
		t.Fatalf("Drain: applied %v, %v; want %d", sum, err, n)
	}
	store.mu.Lock()
	settled := store.settled
	store.mu.Unlock()
	if len(sent.calls) != (n+1)/2 {
		t.Fatalf("the writes went out in %d chunks, want %d", len(sent.calls), (n+1)/2)
	}
	if len(settled) != len(sent.calls) {
		t.Fatalf("%d outcomes committed when Drain returned, for %d chunks sent", len(settled), len(sent.calls))
	}
	for k, ids := range settled {
		var got []string
		for _, id := range ids {
			got = append(got, extOf[id])
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(sent.calls[k]))
		if !slices.Equal(got, want) {
			t.Errorf("outcome %d settles the writes to %v, but chunk %d went to %v", k, got, k, want)
		}
	}
	if store.overlap.Load() {
		t.Error("two outcome commits ran at once")
	}
	appliedOnce(t, w, n, counted)
}

// renewCounter counts claim renewals.
type renewCounter struct {
	nhisync.Store
	renewals atomic.Int32
}

func (s *renewCounter) RenewClaim(ctx context.Context, c *nhisync.Claim, ids []int64, now time.Time, ttl time.Duration) error {
	s.renewals.Add(1)
	return s.Store.RenewClaim(ctx, c, ids, now, ttl)
}

// TestPassSendsFreshClaimsWithoutRenewing: under the pass lease, a claim
// made moments ago goes out without a renewal (no one else may take its
// writes before it expires); a drain outside a pass renews and checks each
// claim before its writes leave.
func TestPassSendsFreshClaimsWithoutRenewing(t *testing.T) {
	const n = 6
	defer engine.SetClaimRows(2)()
	for _, pass := range []bool{true, false} {
		w, mu, counted := queuedCatalogWrites(t, n)
		store := &renewCounter{Store: w.store}
		conns := w.openConns(func(c nhisync.Connector) nhisync.Connector {
			return &sendCounter{Connector: c, mu: mu, sent: counted}
		})
		e := engine.New(w.cfg, store, conns, engine.WithClock(w.clock), engine.WithHolder("sender"))
		var err error
		if pass {
			_, err = e.Sync(context.Background(), engine.PassOptions{})
		} else {
			_, err = e.Drain(context.Background())
		}
		if err != nil {
			t.Fatal(err)
		}
		appliedOnce(t, w, n, counted)
		switch got := store.renewals.Load(); {
		case pass && got != 0:
			t.Errorf("a pass renewed its fresh claims %d times, want none", got)
		case !pass && got != n/2:
			t.Errorf("a drain renewed its claims %d times, want %d (one a chunk)", got, n/2)
		}
	}
}

// slowOutcomes delays each outcome commit (a batch that settles queued
// writes) so that the drain goes on while it is under way.
type slowOutcomes struct{ nhisync.Store }

func (s *slowOutcomes) Commit(ctx context.Context, b *nhisync.Batch) error {
	if len(b.OutboxDone) > 0 {
		time.Sleep(150 * time.Millisecond)
	}
	return s.Store.Commit(ctx, b)
}

// TestOutcomesOfOneLinkDoNotOverlap: two writes to one link that go out in
// consecutive chunks (here one claim each) both land on its shadow: the
// second outcome loads the link only once the first outcome's commit, still
// under way while the second chunk is sent, is in. Loaded before, it would
// write back the link as it was and undo the first write's shadow.
func TestOutcomesOfOneLinkDoNotOverlap(t *testing.T) {
	const n = 1 // its two writes, owner and classification, go out one after the other
	defer engine.SetClaimRows(1)()
	var cmdb, catalog []map[string]any
	for i := range n {
		cmdb = append(cmdb, sa(fmt.Sprintf("c%d", i), "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i), "tags", []any{"pci"}))
		catalog = append(catalog, sa(fmt.Sprintf("k%d", i), "aws", fmt.Sprintf("bot-%d", i)))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": {}, "cmdb.json": cmdb, "catalog.json": catalog})
	down := w.process("first", func(c nhisync.Connector) nhisync.Connector {
		return &sendCounter{Connector: c, mu: &sync.Mutex{}, sent: map[string]int{}, fail: true}
	})
	ctx := context.Background()
	if _, err := down.Sync(ctx, engine.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	queued, err := w.store.OutboxWrites(ctx, "catalog", nhisync.OutboxReady, time.Time{}, 0)
	if err != nil || len(queued) != 2*n {
		t.Fatalf("%d catalog writes queued (%v), want %d", len(queued), err, 2*n)
	}
	w.clock.Advance(time.Hour)
	// The catalog sent a chunk at a time, as by a connector that does not
	// rewrite its system whole (SQL, LDAP, SCIM).
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector { return &sentLog{Connector: c} })
	e := engine.New(w.cfg, &slowOutcomes{Store: w.store}, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	if sum, err := e.Drain(ctx); err != nil || sum.WritesApplied != 2*n {
		t.Fatalf("Drain: %+v, %v; want %d applied", sum, err, 2*n)
	}
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("k%d", i))
	}
	links, err := w.store.LoadLinks(ctx, "catalog", ids)
	if err != nil || len(links) != n {
		t.Fatalf("LoadLinks: %d links, %v", len(links), err)
	}
	for _, l := range links {
		i := l.ExternalID[1:]
		if got := l.Field("owner").Shadow.String(); got != "o"+i+"@x" {
			t.Errorf("catalog %s: owner shadow %q after its write was applied, want o%s@x", l.ExternalID, got, i)
		}
		if got := l.Field("classification").Shadow.String(); !strings.Contains(got, "pci") {
			t.Errorf("catalog %s: classification shadow %q after its write was applied, want pci", l.ExternalID, got)
		}
	}
}
