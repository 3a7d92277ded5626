package engine

import (
	"slices"

	"github.com/nhisync/nhisync"
)

// Correlation runs on one core while the other waits: most of its time is
// map probes that must run in order (a record one observation creates is
// the candidate of the next), but a part of it (at 1M NHIs about 0.8 of
// 2.7 CPU-s) is building each observation's match key, which depends on
// the observation alone. startKeysAhead builds those keys on a goroutine
// of its own, system by system in config order, a few blocks ahead of
// correlation, which takes them as they come: its memory is those blocks,
// not a key for every record.

// keysAheadMin is how many changed observations a system must have for
// its keys to be built ahead: below it the goroutine and its waits cost
// more than the keys. keysBlock is how many keys a block holds, and
// keysBlocksAhead how many blocks of a system may wait. Variables for
// tests.
var (
	keysAheadMin    = 2048
	keysBlock       = 1024
	keysBlocksAhead = 4
)

// keysAheadTaken, when set (tests), is called for each key correlation
// takes built ahead.
var keysAheadTaken func()

// aheadKey is one observation's match key, or why it cannot match.
type aheadKey struct {
	key       string
	unmatched string
}

// keysAhead is the match keys of one system's changed observations, obs
// as the read left them, in blocks, in obs's order.
type keysAhead struct {
	obs    []*staged
	blocks chan []aheadKey
	// done is closed once correlation is done with the system: blocks not
	// taken by then are dropped.
	done chan struct{}
	// cur is the block taken last, the keys of obs[from:from+len(cur)];
	// at is where the next look-up starts (correlation takes the
	// observations in obs's order, and then those it added at the end).
	cur      []aheadKey
	from, at int
}

// startKeysAhead starts building the match keys of the systems with
// keysAheadMin changed observations or more that map every match field
// (with some unmapped, correlation looks candidates up by the values
// themselves) and read no id twice (correlation takes those records out
// of r.changed in place), leaving each system's in its read
// (sysRead.ahead). stop ends the building, and returns once it has.
func (p *pass) startKeysAhead() (stop func()) {
	// a job keeps its keys beside its read: correlation clears r.ahead
	// once done with the system, while this goroutine may still hold it.
	type job struct {
		r *sysRead
		a *keysAhead
	}
	var jobs []job
	for _, name := range p.e.cfg.SystemNames {
		r := p.reads[name]
		if r == nil || len(r.changed) < keysAheadMin || len(r.dups) > 0 || slices.Contains(r.matchIdx, -1) {
			continue
		}
		r.ahead = &keysAhead{obs: r.changed, blocks: make(chan []aheadKey, keysBlocksAhead), done: make(chan struct{})}
		jobs = append(jobs, job{r, r.ahead})
	}
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for _, j := range jobs {
			if !buildKeys(j.r, j.a, quit) {
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-stopped
	}
}

// buildKeys sends the match keys of a.obs, observations of r's system,
// in blocks (reading only what r's correlation does not change: its kind,
// system and match mapping), and closes the channel once they are all
// sent, correlation is done with the system, or one does not decode
// (correlation then builds the keys from there itself, and fails as it
// would have). It returns false when quit was closed first.
func buildKeys(r *sysRead, a *keysAhead, quit <-chan struct{}) (goOn bool) {
	defer close(a.blocks)
	defer func() {
		if recover() != nil {
			goOn = true
		}
	}()
	kind, sys, matchIdx := r.kind, r.sys, r.matchIdx
	vals := make([]string, 0, len(matchIdx))
	for from := 0; from < len(a.obs); from += keysBlock {
		obs := a.obs[from:min(from+keysBlock, len(a.obs))]
		blk := make([]aheadKey, len(obs))
		for i, st := range obs {
			key, _, unmatched := matchKeyInto(kind, matchIdx, &vals, func(j int) nhisync.Value { return st.value(sys, j) })
			blk[i] = aheadKey{key: key, unmatched: unmatched}
		}
		select {
		case a.blocks <- blk:
		case <-a.done:
			return true
		case <-quit:
			return false
		}
	}
	return true
}

// aheadKey returns st's match key when it was built ahead.
func (r *sysRead) aheadKey(st *staged) (aheadKey, bool) {
	a := r.ahead
	if a == nil {
		return aheadKey{}, false
	}
	for i := a.at; i < len(a.obs); i++ {
		if a.obs[i] != st {
			continue
		}
		for i >= a.from+len(a.cur) {
			blk, ok := <-a.blocks
			if !ok {
				r.doneAhead() // building failed: from here on correlation builds them
				return aheadKey{}, false
			}
			a.from += len(a.cur)
			a.cur = blk
		}
		a.at = i + 1
		if keysAheadTaken != nil {
			keysAheadTaken()
		}
		return a.cur[i-a.from], true
	}
	// Not one the read left (correlation adds those after them): none of
	// them comes after it.
	a.at = len(a.obs)
	return aheadKey{}, false
}

// doneAhead lets the building of r's keys go on to the next system.
func (r *sysRead) doneAhead() {
	if r.ahead != nil {
		close(r.ahead.done)
		r.ahead = nil
	}
}
