package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/internal/benchestate"
)

// TestKeysAheadCorrelateAlike: a first pass and a drift pass over the
// bench's estate (unmatched records, malformed and empty match values
// among them) correlate alike whether the match keys are built ahead, in
// blocks of a few keys, or by correlation itself: the same summaries, the
// same golden records under the same ids and match keys.
func TestKeysAheadCorrelateAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("two estates of 3,000 NHIs")
	}
	run := func(ahead bool) (sums []string, records []string, taken int) {
		oldMin, oldBlock, oldAhead, oldHook := keysAheadMin, keysBlock, keysBlocksAhead, keysAheadTaken
		defer func() { keysAheadMin, keysBlock, keysBlocksAhead, keysAheadTaken = oldMin, oldBlock, oldAhead, oldHook }()
		keysAheadMin, keysBlock, keysBlocksAhead = 1<<30, 7, 1
		if ahead {
			keysAheadMin = 1
		}
		keysAheadTaken = func() { taken++ }
		ctx := context.Background()
		es, cfg, store := openEstate(t, 3000, benchestate.DefaultMix(0.05))
		conns, err := nhisync.OpenConnectors(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer nhisync.CloseConnectors(conns)
		e := New(cfg, store, conns)
		for i := range 2 {
			if i == 1 {
				if err := es.ApplyDrift(); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := e.Sync(ctx, PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sum.DurationMS = 0
			js, err := json.Marshal(sum)
			if err != nil {
				t.Fatal(err)
			}
			sums = append(sums, string(js))
		}
		if err := store.ScanRecordHeads(ctx, func(h nhisync.RecordHead) error {
			records = append(records, fmt.Sprintf("%+v", h))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(records)
		return sums, records, taken
	}
	sums, records, _ := run(false)
	aheadSums, aheadRecords, taken := run(true)
	if taken < 3000 {
		t.Fatalf("correlation took %d keys built ahead, want one for each of the 3,000 NHIs' first records at least", taken)
	}
	if !slices.Equal(sums, aheadSums) {
		t.Errorf("summaries differ:\nby correlation: %v\nbuilt ahead:    %v", sums, aheadSums)
	}
	if len(records) < 3000 || !slices.Equal(records, aheadRecords) {
		t.Errorf("golden records differ: %d by correlation, %d with keys built ahead", len(records), len(aheadRecords))
	}
}
