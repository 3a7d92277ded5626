package engine_test

import (
	"context"
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
