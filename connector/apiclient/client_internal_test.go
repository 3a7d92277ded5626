package apiclient

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":     0,
		"5":    5 * time.Second,
		"-3":   0,
		"soon": 0,
		now.Add(7 * time.Second).Format(http.TimeFormat): 7 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):      0,
		"86400": maxWait,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		status int
		method string
		want   bool
	}{
		{429, "POST", true}, {503, "POST", false}, {503, "GET", true}, {502, "PATCH", true},
		{500, "GET", true}, {500, "POST", false}, {404, "GET", false}, {412, "PATCH", false},
	} {
		if got := retryable(c.status, c.method); got != c.want {
			t.Errorf("retryable(%d, %s) = %v", c.status, c.method, got)
		}
	}
}
