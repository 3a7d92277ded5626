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
