package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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

// botWorld is a world of n service accounts, x0… (aws/bot-0…), in all
// three systems, the cmdb's with an owner; idp is the idp's records.
func botWorld(t *testing.T, n int) (w *world, idp []map[string]any) {
	var cmdb, catalog []map[string]any
	for i := range n {
		id := fmt.Sprintf("x%d", i)
		idp = append(idp, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
		cmdb = append(cmdb, sa(id, "aws", fmt.Sprintf("bot-%d", i), "owner", fmt.Sprintf("o%d@x", i)))
		catalog = append(catalog, sa(id, "aws", fmt.Sprintf("bot-%d", i)))
	}
	return newWorld(t, baseConfig, map[string][]map[string]any{"idp.json": idp, "cmdb.json": cmdb, "catalog.json": catalog}), idp
}

// TestPassLoadsForCommit: a pass loads the stored records of the records
// that changed in a system marked for a commit (nhisync.ForCommit), so
// that the store may ready its commits (the SQLite store maps its file
// into the writer); those that vanished from one (wouldRetire's, loaded
// before any commit) are not; a plan, which commits nothing, marks none.
func TestPassLoadsForCommit(t *testing.T) {
	w, idp := botWorld(t, 6)
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

// loadsBeside is a store whose first commit after arm holds until the
// store has been asked for a third LoadRecords since, or fails after a
// while: a pass whose loads wait for its commits never asks for it.
type loadsBeside struct {
	nhisync.Store
	mu      sync.Mutex
	armed   bool
	loads   int
	third   chan struct{}
	commits int
}

func (l *loadsBeside) arm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed, l.loads, l.third = true, 0, make(chan struct{})
}

func (l *loadsBeside) LoadRecords(ctx context.Context, ids []int64) ([]*nhisync.Record, error) {
	l.mu.Lock()
	if l.armed {
		if l.loads++; l.loads == 3 {
			close(l.third)
		}
	}
	l.mu.Unlock()
	return l.Store.LoadRecords(ctx, ids)
}

func (l *loadsBeside) Commit(ctx context.Context, b *nhisync.Batch) error {
	l.mu.Lock()
	wait := l.armed && l.commits == 0 && len(b.Records) > 0
	if wait {
		l.commits++
	}
	third := l.third
	l.mu.Unlock()
	if wait {
		select {
		case <-third:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("the pass's loads waited for its first commit")
		}
	}
	return l.Store.Commit(ctx, b)
}

// TestPassLoadsBesideCommits: while a pass commits a batch of stored
// records, it reads the stored records of the batches after the next
// (engine recLoader): with a batch of two and a read per batch, its third
// read comes while its first commit is in flight, where a pass loading
// only once the commit before has ended would wait for that commit.
func TestPassLoadsBesideCommits(t *testing.T) {
	defer engine.SetLoadAheadChunks(1)()
	const n = 12
	w, _ := botWorld(t, n)
	w.opts = []engine.Option{engine.WithBatchSize(2)}
	w.sync()
	bc := w.store.(*bulkCheck)
	beside := &loadsBeside{Store: bc.Store}
	bc.Store = beside
	for i := range n {
		w.edit("cmdb.json", fmt.Sprintf("x%d", i), map[string]any{"owner": fmt.Sprintf("changed%d@x", i)})
	}
	beside.arm()
	w.sync()
	for i := range n {
		if got := w.record("service_account", "aws", fmt.Sprintf("bot-%d", i)).Value("owner").Text(); got != fmt.Sprintf("changed%d@x", i) {
			t.Fatalf("bot-%d's owner is %q after the pass", i, got)
		}
	}
}
