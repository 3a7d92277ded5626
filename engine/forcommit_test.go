package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// commitLoads is a store that counts the records LoadRecords loads, those
// marked for a commit (nhisync.ForCommit) apart, passing the bulk window
// on.
type commitLoads struct {
	nhisync.Store
	mu               sync.Mutex
	marked, unmarked int
}

func (c *commitLoads) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	c.mu.Lock()
	if nhisync.IsForCommit(ctx) {
		c.marked += len(ids)
	} else {
		c.unmarked += len(ids)
	}
	c.mu.Unlock()
	return c.Store.LoadRecords(ctx, ids)
}

func (c *commitLoads) BeginBulk(ctx context.Context) (bool, error) {
	return c.Store.(nhisync.BulkLoader).BeginBulk(ctx)
}

func (c *commitLoads) EndBulk(ctx context.Context) error {
	return c.Store.(nhisync.BulkLoader).EndBulk(ctx)
}

func (c *commitLoads) take() (marked, unmarked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	marked, unmarked = c.marked, c.unmarked
	c.marked, c.unmarked = 0, 0
	return marked, unmarked
}

// TestPassLoadsForCommit: a pass loads the stored records of the records
// that changed in a system marked for a commit (nhisync.ForCommit), so
// that the store may read them where the commits write; those that
// vanished from one (wouldRetire's, loaded before any commit, when the
// writer's cache would take a fresh page for each) are not; a plan, which
// commits nothing, marks none.
func TestPassLoadsForCommit(t *testing.T) {
	const n = 6
	var idp, cmdb, catalog []map[string]any
	for i := range n {
		id := fmt.Sprintf("x%d", i)
		idp = append(idp, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
		cmdb = append(cmdb, sa(id, "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i)))
		catalog = append(catalog, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
	}
	w := newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": catalog})
	w.sync()
	bc := w.store.(*bulkCheck)
	loads := &commitLoads{Store: bc.Store}
	bc.Store = loads

	w.edit("cmdb.json", "x1", map[string]any{"owner": "changed@x"})
	w.put("idp.json", idp[1:]) // x0 vanishes from the idp
	if _, err := w.engine().Sync(context.Background(), engine.PassOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if marked, unmarked := loads.take(); marked != 0 || unmarked == 0 {
		t.Errorf("a plan loaded %d records for a commit and %d otherwise, want none and some", marked, unmarked)
	}
	w.sync()
	if marked, unmarked := loads.take(); marked < 1 || unmarked < 1 {
		t.Errorf("a pass loaded %d records for a commit and %d otherwise, want the changed one marked and the vanished one not (wouldRetire reads on a reader)", marked, unmarked)
	}
}
