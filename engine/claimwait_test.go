package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// slowOutcome is a store whose outcome commits of one system's writes
// wait until release is closed, then each take step of the clock; before
// each, another sender that ignores the pass lease tries to claim the
// queued writes of other (it must find none: a claim holds them).
type slowOutcome struct {
	nhisync.Store
	system, other string
	release       chan struct{}
	clock         *steppedClock
	step          time.Duration
	mu            sync.Mutex
	stolen        []string
}

func (s *slowOutcome) Commit(ctx context.Context, b *nhisync.Batch) error {
	if b.Claim != nil && len(b.Audit) > 0 && b.Audit[0].System == s.system {
		select {
		case <-s.release:
		case <-time.After(time.Minute):
		}
		s.clock.Advance(s.step)
		now := s.clock.Now()
		_, rows, err := s.Store.ClaimOutbox(ctx, nhisync.ClaimRequest{System: s.other, Holder: "intruder", Now: now, TTL: time.Hour})
		if err != nil {
			return err
		}
		s.mu.Lock()
		for _, o := range rows {
			s.stolen = append(s.stolen, fmt.Sprintf("write %d (%s %s) at +%s", o.ID, o.ExternalID, o.Field, now.Sub(t0)))
		}
		s.mu.Unlock()
	}
	return s.Store.Commit(ctx, b)
}

// sentCall closes sent once its first Apply call has returned.
type sentCall struct {
	nhisync.Connector
	once sync.Once
	sent chan struct{}
}

func (c *sentCall) Apply(ctx context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	defer c.once.Do(func() { close(c.sent) })
	return c.Connector.Apply(ctx, ws)
}

func (c *sentCall) ApplyWhole() bool {
	w, ok := c.Connector.(nhisync.WholeApplier)
	return ok && w.ApplyWhole()
}

// TestWaitingClaimOutlivesALongOutcome: a drain outside a pass sends the
// catalog's writes while the CMDB's outcome, many chunks of a whole-file
// rewrite, commits before theirs can, for longer than a claim's period.
// The catalog's claim is renewed while its writes wait (by the goroutine
// that commits outcomes, between chunks), so no other sender takes them
// once its first period is over, and their outcome commits: each write
// went out once.
func TestWaitingClaimOutlivesALongOutcome(t *testing.T) {
	const n = 6
	const ttl = 30 * time.Second
	defer engine.SetApplyChunk(2)()
	w := queuedBothWays(t, n)

	clock := &steppedClock{t: w.clock.Now()}
	store := &slowOutcome{Store: w.store, system: "cmdb", other: "catalog", release: make(chan struct{}), clock: clock, step: ttl / 2}
	conns := w.openConns(nil)
	sent := &sentCall{Connector: conns["catalog"], sent: make(chan struct{})}
	conns["catalog"] = sent
	go func() {
		<-sent.sent
		close(store.release)
	}()
	e := engine.New(w.cfg, store, conns, engine.WithClock(clock), engine.WithHolder("drain"), engine.WithLeaseTTL(ttl))
	sum, err := e.Drain(context.Background())
	for _, s := range store.stolen {
		t.Errorf("another sender claimed %s while the drain's outcome of the CMDB's writes was committing", s)
	}
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if sum.WritesApplied != 2*n {
		t.Errorf("%d writes applied, want %d", sum.WritesApplied, 2*n)
	}
	if left, err := w.store.OutboxWrites(context.Background(), "", "", time.Time{}, 0); err != nil || len(left) != 0 {
		t.Errorf("%d writes left in the outbox (%v)", len(left), err)
	}
}

// panickyApply is a connector whose Apply panics with a value that quotes
// its secret; it scrubs the secret from a text as the real ones do.
type panickyApply struct{ nhisync.Connector }

func (panickyApply) Apply(context.Context, []nhisync.Write) ([]nhisync.WriteResult, error) {
	panic("lost the connection to dsn user:hunter2@db")
}

func (panickyApply) Scrub(s string) string { return strings.ReplaceAll(s, "hunter2", "***") }

// TestApplyPanicFailsTheWrites: a connector that panics while writing
// fails its writes, retried with backoff, as a failed call does, instead
// of taking the process (a serve's drain) down; what the queued writes
// and the summary say has the connector's secret scrubbed.
func TestApplyPanicFailsTheWrites(t *testing.T) {
	const n = 2
	w, _, _ := queuedCatalogWrites(t, n)
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector { return panickyApply{c} })
	e := engine.New(w.cfg, w.store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"))
	sum, err := e.Drain(context.Background())
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if sum.WritesFailed != n {
		t.Errorf("%d writes failed, want %d", sum.WritesFailed, n)
	}
	if msg := sum.Systems["catalog"].Error; !strings.Contains(msg, "panicked") || strings.Contains(msg, "hunter2") {
		t.Errorf("the catalog's error says %q; want the panic, its secret scrubbed", msg)
	}
	queued, err := w.store.OutboxWrites(context.Background(), "catalog", nhisync.OutboxReady, time.Time{}, 0)
	if err != nil || len(queued) != n {
		t.Fatalf("%d catalog writes queued (%v), want %d", len(queued), err, n)
	}
	for _, o := range queued {
		if o.Attempts != 2 || strings.Contains(o.LastError, "hunter2") || !strings.Contains(o.LastError, "***") {
			t.Errorf("queued write %d: attempt %d, last error %q; want its second attempt, its secret scrubbed", o.ID, o.Attempts, o.LastError)
		}
	}
}

// panickyErr is a connector's error whose Error method panics with a value
// quoting the connector's secret, as an error type with a bug may.
type panickyErr struct{}

func (panickyErr) Error() string { panic("formatting an error of dsn user:hunter2@db") }

// failsPanickily fails every write with panickyErr; it scrubs the secret
// as panickyApply does.
type failsPanickily struct{ panickyApply }

func (failsPanickily) Apply(_ context.Context, ws []nhisync.Write) ([]nhisync.WriteResult, error) {
	res := make([]nhisync.WriteResult, len(ws))
	for i := range res {
		res[i] = nhisync.WriteResult{Status: nhisync.WriteFailed, Err: panickyErr{}}
	}
	return res, nil
}

// TestSenderPanicIsScrubbed: connector code that panics on a sender's
// goroutine outside the Apply call (here a failed write's error, read for
// why it failed) fails the system's sends by name; the error the drain
// returns and the log have the connector's secret scrubbed, and the
// claimed writes go back to the queue.
func TestSenderPanicIsScrubbed(t *testing.T) {
	const n = 2
	w, _, _ := queuedCatalogWrites(t, n)
	var logged bytes.Buffer
	conns := w.openConns(func(c nhisync.Connector) nhisync.Connector { return failsPanickily{panickyApply{c}} })
	e := engine.New(w.cfg, w.store, conns, engine.WithClock(w.clock), engine.WithHolder("drain"),
		engine.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	_, err := e.Drain(context.Background())
	if err == nil || !strings.Contains(err.Error(), "catalog panicked") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Drain: %v; want the catalog's sends failed by the panic, its secret scrubbed", err)
	}
	if log := logged.String(); strings.Contains(log, "hunter2") || !strings.Contains(log, "***") {
		t.Errorf("log: want the panic, its secret scrubbed, got:\n%s", log)
	}
	holders, err := w.store.OutboxClaims(context.Background(), w.clock.Now())
	if err != nil || len(holders) != 0 {
		t.Errorf("claims left after the drain: %v (%v)", holders, err)
	}
}
