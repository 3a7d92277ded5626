package main

import (
	"bytes"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// heapWatch follows a pass's live heap (as the last garbage collection
// left it) and, when asked for a profile, keeps the heap profile taken
// at its highest: the profile of the pass's peak, not of its end.
type heapWatch struct {
	profile bool
	stop    chan struct{}
	done    chan struct{}
	sample  []metrics.Sample
	peak    uint64
	best    bytes.Buffer
	err     error
}

// watchHeap starts following the live heap; with profile, it also takes
// a heap profile whenever the live heap reaches a new high.
func watchHeap(profile bool) *heapWatch {
	h := &heapWatch{profile: profile, stop: make(chan struct{}), done: make(chan struct{}),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			h.look()
			select {
			case <-h.stop:
				h.look()
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapWatch) look() {
	metrics.Read(h.sample)
	if h.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	v := h.sample[0].Value.Uint64()
	if v <= h.peak {
		return
	}
	h.peak = v
	if h.profile && h.err == nil {
		h.best.Reset()
		h.err = pprof.Lookup("heap").WriteTo(&h.best, 0)
	}
}

// finish stops following and returns the peak live heap; with a path,
// it writes the profile taken at the peak there.
func (h *heapWatch) finish(path string) (uint64, error) {
	close(h.stop)
	<-h.done
	if h.err != nil || path == "" || !h.profile {
		return h.peak, h.err
	}
	return h.peak, os.WriteFile(path, h.best.Bytes(), 0o644)
}
