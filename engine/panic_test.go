package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// panickyRead is a connector whose read panics once it has passed the
// engine its first record, as a connector's decoder with a bug would: on
// the goroutine reading the system, inside the emit callback's caller.
type panickyRead struct{ nhisync.Connector }

func (c panickyRead) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	return c.Connector.Snapshot(ctx, func(o nhisync.Observation) error {
		if err := emit(o); err != nil {
			return err
		}
		panic("the catalog's decoder broke (test)")
	})
}

// TestAPanickingReadFailsItsSystem: a connector that panics while a pass
// reads it does not crash the process: the pass names the system as one
// it could not read, with the panic, syncs the others, and releases its
// lease.
func TestAPanickingReadFailsItsSystem(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot", "status", "active")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com")},
		"catalog.json": {sa("k1", "aws", "payments-bot"), sa("k2", "aws", "billing-bot")},
	})
	e := w.process("panicky", func(c nhisync.Connector) nhisync.Connector { return panickyRead{c} })
	sum, err := e.Sync(context.Background(), engine.PassOptions{})
	if err != nil {
		t.Fatalf("Sync: %v; want the pass to go on with the other systems", err)
	}
	if got := sum.FailedSystems(w.cfg); !slices.Equal(got, []string{"catalog"}) {
		t.Errorf("failed systems %v, want [catalog]", got)
	}
	cat := sum.Systems["catalog"]
	if !cat.ReadFailed || !strings.Contains(cat.Error, "reading catalog") || !strings.Contains(cat.Error, "the catalog's decoder broke") {
		t.Errorf("catalog: read failed %v, error %q; want its read failed with the panic, naming the system", cat.ReadFailed, cat.Error)
	}
	if sum.Created != 1 {
		t.Errorf("created %d records, want 1 (the other systems are synced)", sum.Created)
	}
	ok, err := w.store.AcquireLease(context.Background(), "pass", "another", w.clock.Now(), time.Minute)
	if err != nil || !ok {
		t.Errorf("another process could not take the pass lease after the pass (%v, %v): it was not released", ok, err)
	}
}

// secretRead is a connector holding a credential whose read panics with
// a value quoting it (as a driver might panic with its DSN); it scrubs
// the credential as a connector does its own errors (nhisync.Scrubber).
type secretRead struct{ nhisync.Connector }

const readSecret = "s3cr3t-pw"

func (c secretRead) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	panic("cannot dial postgres://nhi:" + readSecret + "@db.internal/estate")
}

func (c secretRead) Scrub(s string) string { return strings.ReplaceAll(s, readSecret, "xxxxx") }

// TestAPanicsValueIsScrubbed: a read's panic carrying the connector's
// credential is said scrubbed, by the connector's own Scrub, in the pass
// summary, the system's stored state, the audit log and the log; the log
// has the panic's stack.
func TestAPanicsValueIsScrubbed(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot", "status", "active")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com")},
		"catalog.json": {sa("k1", "aws", "payments-bot")},
	})
	var logged bytes.Buffer
	e := engine.New(w.cfg, w.store, w.openConns(func(c nhisync.Connector) nhisync.Connector { return secretRead{c} }),
		engine.WithClock(w.clock), engine.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	ctx := context.Background()
	sum, err := e.Sync(ctx, engine.PassOptions{})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if cat := sum.Systems["catalog"]; !cat.ReadFailed || !strings.Contains(cat.Error, "postgres://nhi:xxxxx@db.internal") || strings.Contains(cat.Error, readSecret) {
		t.Errorf("catalog: read failed %v, error %q; want the panic with its credential scrubbed", cat.ReadFailed, cat.Error)
	}
	states, err := w.store.Systems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cat *nhisync.SystemState
	for _, st := range states {
		if st.Name == "catalog" {
			cat = st
		}
	}
	if cat == nil || cat.LastError == "" || strings.Contains(cat.LastError, readSecret) {
		t.Errorf("catalog's stored state %+v: want the panic as last error, scrubbed", cat)
	}
	if err := w.store.ScanAudit(ctx, 0, 0, func(_ *nhisync.AuditEntry, leaf []byte) error {
		if bytes.Contains(leaf, []byte(readSecret)) {
			t.Errorf("audit entry carries the credential: %s", leaf)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if log := logged.String(); strings.Contains(log, readSecret) || !strings.Contains(log, "panicked") || !strings.Contains(log, "goroutine") {
		t.Errorf("log: want the panic with its stack and without the credential, got:\n%s", log)
	}
}

// panickyHeads is a store whose scan of the golden records' heads panics.
type panickyHeads struct{ nhisync.Store }

func (panickyHeads) ScanRecordHeads(context.Context, func(nhisync.RecordHead) error) error {
	panic("the record heads' decoder broke (test)")
}

// TestAPanicLoadingKeysIsLogged: a panic while the golden records' keys
// load fails the pass, named, and is logged with its stack, as a read's
// panic is.
func TestAPanicLoadingKeysIsLogged(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json": {sa("i1", "aws", "payments-bot", "status", "active")},
	})
	var logged bytes.Buffer
	e := engine.New(w.cfg, panickyHeads{w.store}, w.openConns(nil), engine.WithClock(w.clock),
		engine.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	_, err := e.Sync(context.Background(), engine.PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "loading the golden records' keys panicked") {
		t.Fatalf("Sync = %v; want the pass failed by the panic, named", err)
	}
	if log := logged.String(); !strings.Contains(log, "record heads' decoder broke") || !strings.Contains(log, "goroutine") {
		t.Errorf("log: want the panic with its stack, got:\n%s", log)
	}
}
