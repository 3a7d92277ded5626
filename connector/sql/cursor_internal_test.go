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

// TestWindowFunctions: window functions are told from the server's
// version: MariaDB from 10.2, MySQL from 8.0; a version not read, none.
func TestWindowFunctions(t *testing.T) {
	for v, want := range map[string]bool{
		"8.0.36":                           true,
		"8.4.2-commercial":                 true,
		"9.1.0":                            true,
		"5.7.44-log":                       false,
		"5.6.51":                           false,
		"10.11.19-MariaDB-0+deb12u1":       true,
		"10.2.0-MariaDB":                   true,
		"10.1.48-MariaDB-0ubuntu0.18.04.1": false,
		"5.5.5-10.3.39-MariaDB":            true,
		"5.5.5-10.1.2-MariaDB":             false,
		"11.4.2-MariaDB":                   true,
		"":                                 false,
		"unknown":                          false,
	} {
		if got := windowFunctions(v); got != want {
			t.Errorf("windowFunctions(%q) = %v, want %v", v, got, want)
		}
	}
}
