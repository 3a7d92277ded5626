package engine

import (
	"context"
	"testing"

	"github.com/nhisync/nhisync"
)

// countedIDs is a store that only reserves IDs, counting the
// reservations (each one a write transaction in a real store).
type countedIDs struct {
	nhisync.Store
	next  int64
	calls int
}

func (s *countedIDs) NewIDs(_ context.Context, n int) (int64, error) {
	s.calls++
	first := s.next
	s.next += int64(n)
	return first, nil
}

// A pass creating a million records reserves their IDs in a few dozen
// store transactions, not one per 256 IDs (about 3,900, each with its
// fsync); a pass needing a few IDs reserves only idsFirst. Every ID is
// handed out once, in increasing order.
func TestIDsReserveGrowing(t *testing.T) {
	ctx := context.Background()
	st := &countedIDs{next: 1}
	a := &ids{store: st}
	last := int64(0)
	for i := range 1_000_000 {
		id, err := a.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("ID %d after %d (the %dth)", id, last, i)
		}
		last = id
	}
	if st.calls > 30 {
		t.Errorf("a million IDs took %d reservations, want at most 30", st.calls)
	}
	if gap := st.next - 1 - 1_000_000; gap > idsMost {
		t.Errorf("%d IDs reserved and not used, want at most %d", gap, idsMost)
	}

	small := &countedIDs{next: 1}
	b := &ids{store: small}
	for range 10 {
		if _, err := b.get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if small.calls != 1 || small.next != 1+idsFirst {
		t.Errorf("10 IDs took %d reservations of %d IDs in all, want 1 of %d", small.calls, small.next-1, idsFirst)
	}
}
