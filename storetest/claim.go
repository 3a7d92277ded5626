package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

// claimWrites queues n ready writes of system, due at at(0), at(1)…, and
// returns their IDs in that order.
func claimWrites(t *testing.T, s nhisync.Store, system string, n int) []int64 {
	t.Helper()
	ids := newIDs(t, s, n)
	b := &nhisync.Batch{}
	for i, id := range ids {
		b.Outbox = append(b.Outbox, &nhisync.OutboxWrite{ID: id, System: system, ExternalID: fmt.Sprintf("x-%d", id), RecordID: 100,
			Kind: "service_account", Record: "service_account/aws/r", Field: "owner", Old: nhisync.Str("a@x"), New: nhisync.Str(fmt.Sprintf("v%d", i)),
			Status: nhisync.OutboxReady, Cause: "cmdb", NextAt: at(i), Created: at(0)})
	}
	commit(t, s, b)
	return ids
}

// claimIDs claims as req says and returns the claim and the IDs of the
// writes returned (which must be the claim's IDs).
func claimIDs(t *testing.T, s nhisync.Store, req nhisync.ClaimRequest) (*nhisync.Claim, []int64) {
	t.Helper()
	c, ws, err := s.ClaimOutbox(ctxOf(t), req)
	if err != nil {
		t.Fatalf("ClaimOutbox(%s at %v): %v", req.Holder, req.Now, err)
	}
	var ids []int64
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, c.IDs) {
		t.Fatalf("ClaimOutbox returned writes %v but its claim names %v", ids, c.IDs)
	}
	if c.Holder != req.Holder || c.Token == 0 || !c.Until.Equal(req.Now.Add(req.TTL)) {
		t.Fatalf("ClaimOutbox returned claim %+v for holder %s until %v", c, req.Holder, req.Now.Add(req.TTL))
	}
	return c, ids
}

// wantClaims checks OutboxClaims at now.
func wantClaims(t *testing.T, s nhisync.Store, now time.Time, want map[string]time.Time) {
	t.Helper()
	got, err := s.OutboxClaims(ctxOf(t), now)
	if err != nil {
		t.Fatalf("OutboxClaims: %v", err)
	}
	if d := diff(want, got); d != "" {
		t.Fatalf("OutboxClaims at %v (-want +got):\n%s", now, d)
	}
}

// testOutboxClaims: ClaimOutbox hands each due ready write of a system to
// one live claim at a time, oldest first; an expired claim's writes are
// claimed again, and the old claim can then neither renew nor commit
// them; a commit under a claim releases what it rewrites; claims give way
// to a lease held by another (Yield) and need a held fence.
func testOutboxClaims(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const ttl = 10 * time.Second
	w := claimWrites(t, s, "idp", 5)
	other := claimWrites(t, s, "cmdb", 1)
	held := newIDs(t, s, 2)
	commit(t, s, &nhisync.Batch{Outbox: []*nhisync.OutboxWrite{
		{ID: held[0], System: "idp", ExternalID: "h", RecordID: 100, Field: "owner", Status: nhisync.OutboxHeld, NextAt: at(0), Created: at(0)},
		{ID: held[1], System: "idp", ExternalID: "later", RecordID: 100, Field: "owner", Status: nhisync.OutboxReady, NextAt: at(100), Created: at(0)},
	}})
	req := func(holder string, now time.Time, limit int) nhisync.ClaimRequest {
		return nhisync.ClaimRequest{System: "idp", Holder: holder, Now: now, TTL: ttl, Limit: limit}
	}

	a, got := claimIDs(t, s, req("a", at(10), 2))
	if !slices.Equal(got, w[:2]) {
		t.Fatalf("a claimed %v, want the two oldest %v", got, w[:2])
	}
	b, got := claimIDs(t, s, req("b", at(15), 0))
	if !slices.Equal(got, w[2:]) {
		t.Fatalf("b claimed %v, want the rest that is due and ready %v (not a's, not held, not due later, not cmdb's)", got, w[2:])
	}
	if c, got := claimIDs(t, s, req("c", at(16), 0)); len(got) != 0 {
		t.Fatalf("c claimed %v while a and b hold every due write", got)
	} else if err := s.ReleaseClaim(ctx, c); err != nil {
		t.Fatalf("ReleaseClaim of an empty claim: %v", err)
	}
	wantClaims(t, s, at(16), map[string]time.Time{"a": at(20), "b": at(25)})
	// a's claim ran out at(20); c takes its writes.
	c, got := claimIDs(t, s, req("c", at(21), 0))
	if !slices.Equal(got, w[:2]) {
		t.Fatalf("after a's claim expired c claimed %v, want a's %v", got, w[:2])
	}
	wantClaims(t, s, at(21), map[string]time.Time{"b": at(25), "c": at(31)})
	err := s.RenewClaim(ctx, a, a.IDs, at(22), ttl)
	wantCode(t, "RenewClaim of a claim whose writes another claim took", err, nhisync.ECONFLICT)
	err = s.Commit(ctx, &nhisync.Batch{OutboxDone: a.IDs[:1], Claim: a, Meta: map[string]string{"by": "a"},
		Audit: []*nhisync.AuditEntry{{Time: at(22), Actor: nhisync.Actor, Action: nhisync.ActWriteApplied, System: "idp"}}})
	wantCode(t, "Commit under a claim whose writes another claim took", err, nhisync.ECONFLICT)
	if v, _ := s.Meta(ctx, "by"); v != "" {
		t.Fatalf("a lost claim's commit wrote: meta by = %q", v)
	}
	if n, _, _ := s.AuditHead(ctx); n != 0 {
		t.Fatalf("a lost claim's commit appended %d audit entries", n)
	}
	// c sends one write and retries the other later: the retried write
	// leaves the claim, and is claimed again once due.
	retry, err := s.OutboxWrites(ctx, "idp", "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var second *nhisync.OutboxWrite
	for _, o := range retry {
		if o.ID == c.IDs[1] {
			second = o
		}
	}
	second.Attempts, second.NextAt = 1, at(30)
	if err := s.RenewClaim(ctx, c, c.IDs, at(22), ttl); err != nil || !c.Until.Equal(at(32)) {
		t.Fatalf("RenewClaim(c) = %v, until %v; want nil, %v", err, c.Until, at(32))
	}
	commit(t, s, &nhisync.Batch{OutboxDone: c.IDs[:1], Outbox: []*nhisync.OutboxWrite{second}, Claim: c})
	err = s.Commit(ctx, &nhisync.Batch{OutboxDone: c.IDs[:1], Claim: c, Meta: map[string]string{"by": "c"}})
	wantCode(t, "Commit under a claim of a write already sent and removed", err, nhisync.ECONFLICT)
	err = s.RenewClaim(ctx, c, c.IDs[1:], at(23), ttl)
	wantCode(t, "RenewClaim of a write the claim's own commit rewrote", err, nhisync.ECONFLICT)
	if _, got := claimIDs(t, s, req("d", at(24), 0)); len(got) != 0 {
		t.Fatalf("d claimed %v before the retried write was due again", got)
	}
	// b's claim, renewed past its expiry while nobody took its writes,
	// holds; b then releases what it did not send.
	if err := s.RenewClaim(ctx, b, b.IDs, at(26), ttl); err != nil {
		t.Fatalf("RenewClaim of an expired claim nobody took over: %v", err)
	}
	if _, got := claimIDs(t, s, req("d", at(27), 0)); len(got) != 0 {
		t.Fatalf("d claimed %v from b's renewed claim", got)
	}
	commit(t, s, &nhisync.Batch{OutboxDone: b.IDs[:1], Claim: b})
	if err := s.ReleaseClaim(ctx, b); err != nil {
		t.Fatal(err)
	}
	d, got := claimIDs(t, s, req("d", at(30), 0))
	if want := []int64{b.IDs[1], b.IDs[2], c.IDs[1]}; !slices.Equal(got, want) {
		t.Fatalf("d claimed %v, want b's released writes and the retried one, oldest first: %v", got, want)
	}
	if err := s.ReleaseClaim(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, s, at(30), map[string]time.Time{})
	// A holder known gone: its claims return to the queue at once.
	g, got := claimIDs(t, s, req("gone", at(30), 2))
	if len(got) != 2 {
		t.Fatalf("gone claimed %v, want 2 writes", got)
	}
	wantClaims(t, s, at(30), map[string]time.Time{"gone": at(40)})
	if err := s.ReleaseClaims(ctx, "someone-else"); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, s, at(30), map[string]time.Time{"gone": at(40)})
	if err := s.ReleaseClaims(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, s, at(30), map[string]time.Time{})
	err = s.RenewClaim(ctx, g, g.IDs, at(31), ttl)
	wantCode(t, "RenewClaim after the holder's claims were released", err, nhisync.ECONFLICT)
	// Yield: while another holds the lease, nothing is claimed.
	if ok, err := s.AcquireLease(ctx, "pass", "p", at(40), ttl); err != nil || !ok {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	y := req("q", at(41), 0)
	y.Yield = "pass"
	_, _, err = s.ClaimOutbox(ctx, y)
	wantCode(t, "ClaimOutbox yielding to a lease another holds", err, nhisync.ECONFLICT)
	y.Holder = "p"
	if c, got := claimIDs(t, s, y); len(got) != 3 {
		t.Fatalf("the lease's holder claimed %v, want 3 writes", got)
	} else if err := s.ReleaseClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
	y.Holder, y.Now = "q", at(50) // the lease expired
	if c, got := claimIDs(t, s, y); len(got) != 3 {
		t.Fatalf("after the lease expired q claimed %v, want 3 writes", got)
	} else if err := s.ReleaseClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
	y.Yield, y.Now = "never-taken", at(51)
	if c, got := claimIDs(t, s, y); len(got) != 3 {
		t.Fatalf("yielding to a lease nobody ever took, q claimed %v, want 3 writes", got)
	} else if err := s.ReleaseClaim(ctx, c); err != nil {
		t.Fatal(err)
	}

	// Fence: a claim under a lease that was lost claims nothing.
	f, err := s.LeaseFence(ctx, "pass", "p")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.AcquireLease(ctx, "pass", "r", at(60), ttl); err != nil || !ok {
		t.Fatalf("AcquireLease(r): %v, %v", ok, err)
	}
	fr := req("p", at(61), 0)
	fr.Fence = f
	_, _, err = s.ClaimOutbox(ctx, fr)
	wantCode(t, "ClaimOutbox under a lost fence", err, nhisync.ECONFLICT)
	if rf, err := s.LeaseFence(ctx, "pass", "r"); err != nil {
		t.Fatal(err)
	} else {
		fr.Holder, fr.Fence = "r", rf
		if c, got := claimIDs(t, s, fr); len(got) != 3 {
			t.Fatalf("claim under a held fence got %v, want 3 writes", got)
		} else if err := s.ReleaseClaim(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// The other system's write was never claimed.
	if got, err := s.OutboxWrites(ctx, "cmdb", "", time.Time{}, 0); err != nil || len(got) != 1 || got[0].ID != other[0] {
		t.Fatalf("cmdb's outbox = %v, %v", got, err)
	}
	for _, bad := range []nhisync.ClaimRequest{
		{Holder: "a", Now: at(0), TTL: ttl},
		{System: "idp", Now: at(0), TTL: ttl},
		{System: "idp", Holder: "a", Now: at(0)},
	} {
		_, _, err := s.ClaimOutbox(ctx, bad)
		wantCode(t, fmt.Sprintf("ClaimOutbox(%+v)", bad), err, nhisync.EINVALID)
	}
	err = s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"x": "y"}, Claim: &nhisync.Claim{Holder: "a"}})
	wantCode(t, "Commit with a claim that has no token", err, nhisync.EINVALID)
}

// testOutboxClaimsConcurrent: senders claiming one system's writes at
// once, a few at a time, and committing each write's removal under their
// claim, send every write exactly once.
func testOutboxClaimsConcurrent(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	ids := claimWrites(t, s, "idp", 120)
	var mu sync.Mutex
	sentBy := map[int64]string{}
	var wg sync.WaitGroup
	// Failures are reported with t.Errorf, which never blocks: a channel
	// of them filled up by duplicate claims blocked its sender with mu
	// held, and the test hung until the package's timeout instead of
	// naming the writes handed out twice.
	for i := range 4 {
		holder := fmt.Sprintf("sender-%d", i)
		wg.Go(func() {
			for {
				c, ws, err := s.ClaimOutbox(ctx, nhisync.ClaimRequest{System: "idp", Holder: holder, Now: at(200), TTL: time.Hour, Limit: 7})
				if err != nil {
					t.Errorf("%s: ClaimOutbox: %v", holder, err)
					return
				}
				if len(ws) == 0 {
					return
				}
				mu.Lock()
				for _, w := range ws {
					if by, dup := sentBy[w.ID]; dup {
						t.Errorf("write %d claimed by %s and by %s", w.ID, by, holder)
					}
					sentBy[w.ID] = holder
				}
				mu.Unlock()
				if err := s.Commit(ctx, &nhisync.Batch{OutboxDone: c.IDs, Claim: c}); err != nil {
					t.Errorf("%s: Commit: %v", holder, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(sentBy) != len(ids) {
		t.Errorf("%d of %d writes were claimed", len(sentBy), len(ids))
	}
	if left, err := s.OutboxWrites(ctx, "", "", time.Time{}, 0); err != nil || len(left) != 0 {
		t.Errorf("%d writes left in the outbox (%v)", len(left), err)
	}
}
