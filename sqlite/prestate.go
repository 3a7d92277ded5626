package sqlite

import (
	"sync"
	"sync/atomic"

	"github.com/nhisync/nhisync"
)

// states are the encoded states of a batch's records and links, encoded by
// a helper goroutine while the commit's goroutine runs its statements: the
// commit is the first pass's critical path (the engine decides the next
// batch meanwhile), and encoding was an eighth of it. Records are handed
// over a chunk of recordRows at a time, so the first INSERT starts as
// soon as its rows are encoded; the links follow them.
type states struct {
	recs  [][]byte
	links [][]byte
	buf   []byte // what recs and links point into

	// ready receives once per chunk of encoded records; linksDone is
	// closed once every link is encoded; stop asks the helper to give
	// up, and exited is closed when it has returned.
	ready     chan struct{}
	linksDone chan struct{}
	exited    chan struct{}
	stop      atomic.Bool

	// seen is how many records the commit's goroutine knows are encoded;
	// linksSeen whether it saw linksDone.
	seen      int
	linksSeen bool

	// allNew is set when the batch's records are all new (the bulk
	// window): writeRecords looks none up.
	allNew bool
}

// statesPool keeps the buffers of earlier commits.
var statesPool = sync.Pool{New: func() any { return &states{} }}

// encodeStates starts encoding b's records and links. The caller must call
// done before the batch is handed back (the helper reads it).
func encodeStates(b *nhisync.Batch) *states {
	st := statesPool.Get().(*states)
	st.recs = grow(st.recs, len(b.Records))
	st.links = grow(st.links, len(b.Links))
	st.ready = make(chan struct{}, (len(b.Records)+recordRows-1)/recordRows)
	st.linksDone = make(chan struct{})
	st.exited = make(chan struct{})
	st.stop.Store(false)
	st.seen, st.linksSeen = 0, false
	go st.encode(b)
	return st
}

func grow(s [][]byte, n int) [][]byte {
	clear(s)
	if cap(s) < n {
		return make([][]byte, n)
	}
	return s[:n]
}

func (st *states) encode(b *nhisync.Batch) {
	defer close(st.exited)
	buf := st.buf[:0]
	for i, r := range b.Records {
		if st.stop.Load() {
			return
		}
		start := len(buf)
		buf = encodeRecordState(buf, r)
		st.recs[i] = buf[start:len(buf):len(buf)]
		if (i+1)%recordRows == 0 || i+1 == len(b.Records) {
			st.ready <- struct{}{}
		}
	}
	for i, l := range b.Links {
		if i%recordRows == 0 && st.stop.Load() {
			return
		}
		start := len(buf)
		buf = encodeLinkState(buf, l)
		st.links[i] = buf[start:len(buf):len(buf)]
	}
	st.buf = buf
	close(st.linksDone)
}

// record returns the state of the batch's record i, waiting for it.
func (st *states) record(i int) []byte {
	for i >= st.seen {
		<-st.ready
		st.seen = min(st.seen+recordRows, len(st.recs))
	}
	return st.recs[i]
}

// recordRef is record as an argument pointing to the state (bindable).
func (st *states) recordRef(i int) *[]byte {
	st.record(i)
	return &st.recs[i]
}

// linkRef is link as an argument pointing to the state (bindable).
func (st *states) linkRef(i int) *[]byte {
	st.link(i)
	return &st.links[i]
}

// link returns the state of the batch's link i, waiting for it.
func (st *states) link(i int) []byte {
	if !st.linksSeen {
		<-st.linksDone
		st.linksSeen = true
	}
	return st.links[i]
}

// done stops the helper, waits for it and keeps the buffers for another
// commit; the states must not be used after.
func (st *states) done() {
	st.stop.Store(true)
	<-st.exited
	if cap(st.buf) > 16<<20 {
		// A huge batch: let its buffer go.
		st.buf = nil
	}
	clear(st.recs)
	clear(st.links)
	statesPool.Put(st)
}
