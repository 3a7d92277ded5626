package ldap

import (
	"testing"
	"time"
)

func TestGeneralizedTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), "20260601120000Z"},
		{time.Date(2026, 3, 4, 3, 6, 7, 5e8, time.UTC), "20260304030607.5Z"},
		{time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 7200)), "20260304030607Z"},
	} {
		got := formatGeneralized(tc.in)
		if got != tc.want {
			t.Errorf("formatGeneralized(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back := generalizedTime(got); !back.Equal(tc.in) {
			t.Errorf("generalizedTime(%q) = %v, want %v", got, back, tc.in)
		}
	}
	if !generalizedTime("2026-01-01").IsZero() {
		t.Errorf("a non-GeneralizedTime read as a time")
	}
}
