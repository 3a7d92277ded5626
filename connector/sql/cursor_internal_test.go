package sql

import (
	"testing"
	"time"
)

func TestModified(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"not a time", time.Time{}},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000123", time.UnixMilli(1700000000123)},
		{"1700000000123456", time.UnixMicro(1700000000123456)},
		{"1700000000123456789", time.Unix(0, 1700000000123456789)},
		{"2026-01-02 03:04:05", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04:05.5+01:00", time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)},
		{"2026-01-02 03:04:05.123+00", time.Date(2026, 1, 2, 3, 4, 5, 123e6, time.UTC)},
		{"2026-01-02 03:04:05.123456", time.Date(2026, 1, 2, 3, 4, 5, 123456e3, time.UTC)},
	} {
		if got := modified(tc.in); !got.Equal(tc.want) {
			t.Errorf("modified(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCompareCursor(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9", "10", -1},
		{"10", "9", 1},
		{"1.5", "1.50", 0},
		{"2026-01-02 03:04:05", "2026-01-02T03:04:04Z", 1},
		{"2026-01-02 16:00:00", "2026-01-02T15:00:00Z", 1},
		{"b", "a", 1},
		{"a", "a", 0},
	} {
		if got := compareCursor(tc.a, tc.b); got != tc.want {
			t.Errorf("compareCursor(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
