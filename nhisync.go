// Package nhisync is the vocabulary of the project: the domain types
// (values, golden records, links, shadows, proposals, conflicts, approvals,
// quarantine, audit entries), the validated configuration they are judged
// by, and the small interfaces that storage and connectors implement.
//
// It imports only the standard library. Every dependency lives in a package
// of its own that implements these interfaces (sqlite, connector/file,
// connector/sql, …); only cmd/nhisync wires them together.
package nhisync

import "time"

// Clock tells the time. The engine and connectors never call time.Now
// directly so tests can step a fake clock through staleness and backoff.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// FakeClock is a settable clock for tests.
type FakeClock struct{ T time.Time }

// Now returns the clock's current setting.
func (c *FakeClock) Now() time.Time { return c.T }

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) { c.T = c.T.Add(d) }

// HLC is a hybrid logical clock: wall time that never goes backwards and
// never repeats, so observation times order events even when the wall
// clock steps back or two events share a tick. It is not safe for
// concurrent use; the engine owns one per pass.
type HLC struct {
	Clock Clock
	last  time.Time
}

// Observe makes sure later readings are after t (for example the highest
// time persisted by an earlier run).
func (h *HLC) Observe(t time.Time) {
	if t.After(h.last) {
		h.last = t
	}
}

// Now returns a time strictly after every earlier reading.
func (h *HLC) Now() time.Time {
	t := h.Clock.Now().UTC()
	if !t.After(h.last) {
		t = h.last.Add(time.Microsecond)
	}
	h.last = t
	return t
}

// Last returns the latest reading.
func (h *HLC) Last() time.Time { return h.last }
