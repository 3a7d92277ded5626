package engine

import (
	"errors"

	"github.com/nhisync/nhisync"
)

// handOff runs read, which passes each observation of a system to the
// function it is given (a connector's Snapshot or Changes), in this
// goroutine, and emit, which canonicalises, hashes and stages it, in
// another, in batches: the connector decodes the next rows while the
// rows before are staged. A system's read then takes about as long as
// the slower of the two, not their sum — which counts when the last
// system is still being read and the other core has nothing left to do.
// emit sees every observation in the read's order, one at a time; ahead,
// when not nil, sees each run of up to warmRun of them before emit sees
// the first of the run (a full read warms their heads, headTable.warm).
//
// Each observation is copied into its batch (its Values too: a connector
// reuses its slice once the function returns, as nhisync.Connector
// allows); the values themselves are immutable. An error of emit stops
// the read at the next batch and is returned, as the connector returns
// it; otherwise read's error is. A panic of read or of emit is recovered
// (each on its goroutine) and returned as an error, the read stopped as
// by emit's: a connector's bug fails its system's read, not the process.
func handOff(width int, read func(emit func(nhisync.Observation) error) error, ahead func([]nhisync.Observation), emit func(nhisync.Observation) error) error {
	const (
		size    = 512 // observations per batch
		batches = 3   // one being filled, one waiting, one being staged
	)
	full := make(chan *obsBatch, batches)
	free := make(chan *obsBatch, batches)
	for range batches {
		free <- &obsBatch{}
	}
	failed := make(chan struct{}) // closed when emit failed
	done := make(chan struct{})   // closed when every batch is staged
	var emitErr error             // written before failed is closed
	stage := func(b *obsBatch) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered("staging a record", v)
			}
		}()
		for i, obs := range b.obs {
			if ahead != nil && i%warmRun == 0 {
				ahead(b.obs[i:min(i+warmRun, len(b.obs))])
			}
			if err = emit(obs); err != nil {
				return err
			}
		}
		return nil
	}
	go func() {
		defer close(done)
		for b := range full {
			if emitErr == nil {
				if emitErr = stage(b); emitErr != nil {
					close(failed)
				}
			}
			b.obs, b.vals = b.obs[:0], b.vals[:0]
			free <- b
		}
	}()
	var cur *obsBatch
	send := func() error {
		select {
		case <-failed:
			return emitErr
		case full <- cur:
			cur = nil
			return nil
		}
	}
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = recovered("the connector", v)
			}
		}()
		return read(func(obs nhisync.Observation) error {
			if cur == nil {
				select {
				case <-failed:
					return emitErr
				case cur = <-free:
				}
			}
			cur.add(obs, width)
			if len(cur.obs) == size {
				return send()
			}
			return nil
		})
	}()
	if err == nil && cur != nil && len(cur.obs) > 0 {
		err = send()
	}
	close(full)
	<-done
	// A panic staging a record is said, whatever error the connector made
	// of it.
	var pe *panicked
	if err == nil || errors.As(emitErr, &pe) && !errors.Is(err, emitErr) {
		err = emitErr
	}
	return err
}

// obsBatch is a batch of observations handed from a connector to the
// goroutine staging them; vals holds their values.
type obsBatch struct {
	obs  []nhisync.Observation
	vals []nhisync.Value
}

// add copies obs into the batch, with at most width of its values (a
// system's mappings: emit reads no others).
func (b *obsBatch) add(obs nhisync.Observation, width int) {
	n := min(len(obs.Values), width)
	start := len(b.vals)
	// A batch whose vals grow leaves the observations before on the old
	// array, which they keep alive until the batch is staged.
	b.vals = append(b.vals, obs.Values[:n]...)
	obs.Values = b.vals[start:len(b.vals):len(b.vals)]
	b.obs = append(b.obs, obs)
}
