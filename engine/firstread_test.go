package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// countLoads is a world's store that counts the external IDs a pass asks
// LoadLinks for while reading and correlating: before its first commit
// (applying the pass's writes afterwards loads the links it moves).
type countLoads struct {
	*bulkCheck
	asked     int
	committed bool
}

func (c *countLoads) LoadLinks(ctx context.Context, system string, ids []string) ([]*nhisync.Link, error) {
	if !c.committed {
		c.asked += len(ids)
	}
	return c.bulkCheck.LoadLinks(ctx, system, ids)
}

func (c *countLoads) Commit(ctx context.Context, b *nhisync.Batch) error {
	c.committed = true
	return c.bulkCheck.Commit(ctx, b)
}

// TestFirstPassLoadsNoLinks: ids seen for the first time have no stored
// link, so a first pass asks the store for none — not for its unmatched
// or disputed records either — and an id read twice is disputed in a
// first pass as in any other.
func TestFirstPassLoadsNoLinks(t *testing.T) {
	w := newWorld(t, baseConfig, map[string][]map[string]any{
		"idp.json":     {sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot"), sa("i2", "aws", "evil-bot")},
		"cmdb.json":    {sa("c1", "aws", "payments-bot", "owner", "alice@example.com")},
		"catalog.json": {sa("k1", "aws", "payments-bot"), sa("k9", "azure", "nobody")},
	})
	c := &countLoads{bulkCheck: w.store.(*bulkCheck)}
	w.store = c
	sum := w.sync()
	if c.asked != 0 {
		t.Errorf("a first pass asked the store for %d links", c.asked)
	}
	if sum.Created != 1 || sum.Unmatched != 1 || sum.Disputed != 1 {
		t.Fatalf("created %d unmatched %d disputed %d; want 1, 1, 1\n%s", sum.Created, sum.Unmatched, sum.Disputed, actions(sum))
	}
	qs := w.quarantine(nhisync.StatusOpen)
	if len(qs) != 1 || qs[0].ExternalID != "i2" || !strings.Contains(qs[0].Reason, `id "i2" is held by 2 records in idp`) {
		t.Fatalf("quarantine %+v", qs)
	}
	// Both strays are stored now: the next pass, staging every stray again
	// (k9, unchanged, is otherwise left alone: leaveStrays), reads them
	// back, and the id once unique again is correlated afresh.
	w.put("idp.json", []map[string]any{sa("i1", "aws", "payments-bot"), sa("i2", "aws", "billing-bot")})
	c.committed = false
	restore := engine.SetLeaveStrays(false)
	sum = w.sync()
	restore()
	if c.asked == 0 {
		t.Errorf("a later pass loaded no stored stray")
	}
	if sum.Created != 1 || len(w.quarantine(nhisync.StatusOpen)) != 0 {
		t.Fatalf("after the fix: created %d, open quarantine %v\n%s", sum.Created, w.quarantine(nhisync.StatusOpen), actions(sum))
	}
}
