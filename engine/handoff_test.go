package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// readN is a connector's read of n observations, reusing one Values
// slice as connectors do, and failing after fail of them when fail > 0.
func readN(n, fail int) func(func(nhisync.Observation) error) error {
	return func(emit func(nhisync.Observation) error) error {
		vals := make([]nhisync.Value, 3)
		for i := range n {
			if fail > 0 && i == fail {
				return errors.New("the file changed while it was read")
			}
			vals[0], vals[1], vals[2] = nhisync.Str(fmt.Sprint(i)), nhisync.SetOf("a", fmt.Sprint(i)), nhisync.Value{}
			if err := emit(nhisync.Observation{ID: fmt.Sprint("id-", i), Values: vals}); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			// The connector reuses its slice once emit returned.
			vals[0], vals[1] = nhisync.Str("reused"), nhisync.Str("reused")
		}
		return nil
	}
}

// Every observation reaches emit once, in the read's order, with the
// values it had when the connector passed it (not what the connector's
// reused slice holds later), and no more values than the system maps.
func TestHandOffKeepsOrderAndValues(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 5000} {
		got := 0
		err := handOff(2, readN(n, 0), nil, func(obs nhisync.Observation) error {
			if want := fmt.Sprint("id-", got); obs.ID != want {
				return fmt.Errorf("observation %d is %s, want %s", got, obs.ID, want)
			}
			if len(obs.Values) != 2 || obs.Values[0].Text() != fmt.Sprint(got) || !obs.Values[1].Has(fmt.Sprint(got)) {
				return fmt.Errorf("observation %d holds %v", got, obs.Values)
			}
			got++
			return nil
		})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got != n {
			t.Fatalf("n=%d: emit saw %d observations", n, got)
		}
	}
}

// ahead sees every observation once, in runs of at most warmRun that
// follow each other in the read's order, each run before emit sees its
// first observation (and after emit saw the run before).
func TestHandOffAhead(t *testing.T) {
	for _, n := range []int{0, 1, warmRun, warmRun + 1, 511, 512, 513, 5000} {
		aheadOf, emitted := 0, 0
		err := handOff(2, readN(n, 0), func(run []nhisync.Observation) {
			if len(run) == 0 || len(run) > warmRun {
				t.Errorf("n=%d: a run of %d", n, len(run))
			}
			if emitted != aheadOf {
				t.Errorf("n=%d: run starting at %d handed ahead after emit saw %d", n, aheadOf, emitted)
			}
			for _, obs := range run {
				if want := fmt.Sprint("id-", aheadOf); obs.ID != want {
					t.Errorf("n=%d: ahead saw %s, want %s", n, obs.ID, want)
				}
				aheadOf++
			}
		}, func(obs nhisync.Observation) error {
			if emitted >= aheadOf {
				return fmt.Errorf("emit saw %s before ahead did", obs.ID)
			}
			emitted++
			return nil
		})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if aheadOf != n || emitted != n {
			t.Fatalf("n=%d: ahead saw %d observations, emit %d", n, aheadOf, emitted)
		}
	}
}

// An error of emit stops the read and is what the read returns (as the
// connector wraps it); a read's own error is returned; emit sees nothing
// after its error.
func TestHandOffErrors(t *testing.T) {
	stop := errors.New("the pass lost its lease")
	seen := 0
	err := handOff(3, readN(100000, 0), nil, func(nhisync.Observation) error {
		seen++
		if seen == 700 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the emit's error", err)
	}
	if seen != 700 {
		t.Fatalf("emit saw %d observations, want none after its error (700)", seen)
	}

	seen = 0
	err = handOff(3, readN(2000, 1500), nil, func(nhisync.Observation) error { seen++; return nil })
	if err == nil || err.Error() != "the file changed while it was read" {
		t.Fatalf("err = %v, want the read's error", err)
	}
}

// A panic of the connector's read or of emit is returned as an error,
// each recovered on its goroutine; after emit's, the read stops as after
// its error.
func TestHandOffRecoversPanics(t *testing.T) {
	seen := 0
	err := handOff(3, readN(100000, 0), nil, func(nhisync.Observation) error {
		if seen++; seen == 700 {
			panic("index out of range (test)")
		}
		return nil
	})
	var pe *panicked
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "staging a record panicked: index out of range (test)") {
		t.Fatalf("err = %v, want the emit's panic", err)
	}
	if seen != 700 {
		t.Fatalf("emit saw %d observations, want none after its panic (700)", seen)
	}
	panicky := func(emit func(nhisync.Observation) error) error {
		if err := readN(1000, 0)(emit); err != nil {
			return err
		}
		panic(errors.New("the decoder broke (test)"))
	}
	seen = 0
	err = handOff(3, panicky, nil, func(nhisync.Observation) error { seen++; return nil })
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the connector panicked: the decoder broke (test)") {
		t.Fatalf("err = %v, want the read's panic", err)
	}
	if seen > 1000 {
		t.Fatalf("emit saw %d observations, more than the read passed before it panicked (1000)", seen)
	}
}
