package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

func testLeases(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const ttl = 10 * time.Second
	type step struct {
		what    string
		release bool // release instead of acquire
		lease   string
		holder  string
		now     time.Time
		want    bool
	}
	steps := []step{
		{what: "free lease is taken", lease: "feed/idp", holder: "a", now: at(0), want: true},
		{what: "refused to another holder", lease: "feed/idp", holder: "b", now: at(1), want: false},
		{what: "another lease is independent", lease: "feed/cmdb", holder: "b", now: at(1), want: true},
		{what: "renewed by its holder", lease: "feed/idp", holder: "a", now: at(5), want: true},
		{what: "renewal moved expiry", lease: "feed/idp", holder: "b", now: at(14), want: false},
		{what: "expired lease is taken over", lease: "feed/idp", holder: "b", now: at(15), want: true},
		{what: "old holder is refused", lease: "feed/idp", holder: "a", now: at(16), want: false},
		{what: "release by a non-holder", release: true, lease: "feed/idp", holder: "a"},
		{what: "non-holder's release changed nothing", lease: "feed/idp", holder: "a", now: at(17), want: false},
		{what: "release by the holder", release: true, lease: "feed/idp", holder: "b"},
		{what: "released lease is free", lease: "feed/idp", holder: "a", now: at(18), want: true},
		{what: "release of an unknown lease", release: true, lease: "nope", holder: "a"},
		{what: "the other lease still held", lease: "feed/cmdb", holder: "a", now: at(2), want: false},
	}
	for i, st := range steps {
		if st.release {
			if err := s.ReleaseLease(ctx, st.lease, st.holder); err != nil {
				t.Fatalf("step %d (%s): ReleaseLease: %v", i, st.what, err)
			}
			continue
		}
		got, err := s.AcquireLease(ctx, st.lease, st.holder, st.now, ttl)
		if err != nil {
			t.Fatalf("step %d (%s): AcquireLease: %v", i, st.what, err)
		}
		if got != st.want {
			t.Errorf("step %d (%s): AcquireLease(%s, %s) = %v, want %v", i, st.what, st.lease, st.holder, got, st.want)
		}
	}
	if h, exp, err := s.Lease(ctx, "feed/idp"); err != nil || h != "a" || !exp.Equal(at(18).Add(ttl)) {
		t.Errorf("Lease(feed/idp) = %q, %v, %v; want a until %v", h, exp, err, at(18).Add(ttl))
	}
	if h, exp, err := s.Lease(ctx, "nope"); err != nil || h != "" || !exp.IsZero() {
		t.Errorf("Lease(nope) = %q, %v, %v; want nobody", h, exp, err)
	}
	for _, bad := range []struct {
		lease, holder string
		ttl           time.Duration
	}{{"", "a", ttl}, {"x", "", ttl}, {"x", "a", 0}, {"x", "a", -time.Second}} {
		_, err := s.AcquireLease(ctx, bad.lease, bad.holder, at(0), bad.ttl)
		wantCode(t, fmt.Sprintf("AcquireLease(%q, %q, %v)", bad.lease, bad.holder, bad.ttl), err, nhisync.EINVALID)
	}
}

// testLeaseFence: a lease's epoch is a fencing token. It stays the same
// while one holder renews, grows whenever the lease passes to another
// holder (even back to an earlier one), and a commit fenced with a stale
// epoch writes nothing (issue 6 finding 12).
func testLeaseFence(t *testing.T, s nhisync.Store) {
	ctx := ctxOf(t)
	const ttl = 10 * time.Second
	take := func(holder string, now time.Time) {
		t.Helper()
		if ok, err := s.AcquireLease(ctx, "pass", holder, now, ttl); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", holder, ok, err)
		}
	}
	fence := func(holder string) *nhisync.Fence {
		t.Helper()
		f, err := s.LeaseFence(ctx, "pass", holder)
		if err != nil {
			t.Fatalf("LeaseFence(%s): %v", holder, err)
		}
		return f
	}
	take("a", at(0))
	a1 := fence("a")
	take("a", at(5)) // a renewal keeps the epoch
	if f := fence("a"); f.Epoch != a1.Epoch {
		t.Fatalf("a renewal moved the epoch from %d to %d", a1.Epoch, f.Epoch)
	}
	take("b", at(20)) // a's lease expired: b takes it over
	b := fence("b")
	if b.Epoch <= a1.Epoch {
		t.Fatalf("taking the lease over kept epoch %d (a had %d)", b.Epoch, a1.Epoch)
	}
	if _, err := s.LeaseFence(ctx, "pass", "a"); nhisync.ErrorCode(err) != nhisync.ECONFLICT {
		t.Fatalf("LeaseFence of a holder that lost the lease: %v, want ECONFLICT", err)
	}
	// b's work commits under its fence; a's stale work does not.
	commit(t, s, &nhisync.Batch{Meta: map[string]string{"by": "b"}, Fence: b})
	err := s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"by": "a"}, Fence: a1,
		Audit: []*nhisync.AuditEntry{{Time: at(21), Actor: nhisync.Actor, Action: nhisync.ActObserved}}})
	wantCode(t, "Commit with a stale fence", err, nhisync.ECONFLICT)
	if v, _ := s.Meta(ctx, "by"); v != "b" {
		t.Fatalf("a stale fence's commit wrote: meta by = %q", v)
	}
	if n, _, _ := s.AuditHead(ctx); n != 0 {
		t.Fatalf("a stale fence's commit appended %d audit entries", n)
	}
	// b releases; a takes the lease again, at a new epoch: its old fence
	// stays stale (no ABA).
	if err := s.ReleaseLease(ctx, "pass", "b"); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := s.Lease(ctx, "pass"); h != "" {
		t.Fatalf("released lease still held by %q", h)
	}
	take("a", at(22))
	a2 := fence("a")
	if a2.Epoch <= b.Epoch {
		t.Fatalf("taking the lease again kept epoch %d (b had %d)", a2.Epoch, b.Epoch)
	}
	err = s.Commit(ctx, &nhisync.Batch{Meta: map[string]string{"by": "a"}, Fence: a1})
	wantCode(t, "Commit with a fence from before the lease was lost", err, nhisync.ECONFLICT)
	commit(t, s, &nhisync.Batch{Meta: map[string]string{"by": "a"}, Fence: a2})
}
