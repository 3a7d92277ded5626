package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
)

// PassOptions shape one pass.
type PassOptions struct {
	// DryRun decides everything and commits nothing: plan.
	DryRun bool
	// Incremental reads systems that offer a change cursor only from their
	// stored cursor. Vanished records are detected by full reads only.
	Incremental bool
	// RespectPause skips degraded systems until their backoff has passed
	// (the service does; a one-off sync tries every system).
	RespectPause bool
	// Systems limits reading to these systems (nil: all).
	Systems []string
	// LeaseTTL is how long the pass lease lasts unless renewed; a running
	// pass renews it every third of it (default 2m).
	LeaseTTL time.Duration
	// KeepEvents keeps the pass's decisions in Summary.Events (always
	// kept in a dry run).
	KeepEvents bool
	// EventLimit, when above 0, keeps at most that many events per system
	// and action in Summary.Events (a sync's compact listing need not hold
	// a first pass's millions); the counts stay complete.
	EventLimit int
}

const (
	leaseName  = "pass"
	metaHLC    = "hlc"
	metaConfig = "config"
	// metaStraysSeen followed by a system's name is when a pass last read
	// that system in full, seeing every stray of it that did not vanish
	// (its start, Unix nanoseconds): see lastSeen.
	metaStraysSeen = "strays_seen."
)

// pass is the state of one run of the pipeline.
type pass struct {
	e   *Engine
	opt PassOptions
	dry bool
	now time.Time
	hlc *nhisync.HLC
	ids *ids
	sum *Summary

	// version is the links' version read before any head was loaded
	// (versioned: read, the engine keeps heads); keep are the tables to
	// keep at the pass's end (keptheads.go).
	version   uint64
	versioned bool
	keep      map[string]*keptHeads

	systems map[string]*nhisync.SystemState
	// straysSeen is, by system, when a pass last read it in full before
	// this one (metaStraysSeen).
	straysSeen map[string]time.Time
	// strayOpen holds, by system, its open disputes (strayItems).
	strayOpen map[string]map[string]*nhisync.QuarantineItem
	reads     map[string]*sysRead
	// recIdx finds golden records by kind and normalized match key.
	recIdx  *recIndex
	partial map[string]map[string][]int64
	work    map[int64]*recWork
	works   slab[recWork]
	// vanished lists, by record ID, the systems the record vanished from.
	vanished map[int64][]string
	// preloaded holds records correlation loaded (wouldRetire) for
	// decideAll, by ID.
	preloaded map[int64]*nhisync.Record
	// stray are staged observations that link to no record (unmatched,
	// disputed), by system.
	stray []*strayObs
	// restaged holds the stored links restageStrays loaded, by system and
	// external id ("\x00" between), for settleStrays, until it is done.
	restaged map[string]*nhisync.Link
	// planned collects this pass's planned writes (dry runs keep them here
	// instead of in the store).
	planned []*nhisync.OutboxWrite
	// emptyStore is set when the pass opened a store's bulk window: the
	// store held no records and no links when it began, so no write
	// either (every write is a record's, and records are never deleted),
	// and every write queued is this pass's own (in planned).
	emptyStore bool
	// sent holds the display keys of the records whose writes this pass
	// committed (recordKeys.note), for the outcomes of its drain.
	sent recordKeys

	batch *nhisync.Batch
	// configChanged is set when the config differs from the last pass's.
	configChanged bool
	// paused lists degraded systems resting this pass.
	paused map[string]bool
	// leaseTTL and leaseAt keep the pass lease renewed; fence is the lease
	// as the pass took it, carried by every commit.
	leaseTTL time.Duration
	leaseAt  time.Time
	fence    *nhisync.Fence
	// inflight, when not nil, yields the error of the batch being
	// committed while the next is decided (commitAsync).
	inflight chan error
	// auditRooms lend the batches their leaves' memory, in turn: the
	// batch before the one in flight is committed when the next is
	// prepared (commitAsync), so its room is free again.
	auditRooms [2]nhisync.AuditRoom
	auditTurn  int
	// readMu serialises what the goroutines reading systems share: the
	// progress callback and the lease.
	readMu sync.Mutex
	// recEst is about how many golden records there are (sizes indexes).
	recEst int
}

// sysRead is what a pass read from one system.
type sysRead struct {
	sys  *nhisync.System
	kind *nhisync.Kind
	fp   string
	// mapping is the mapping fingerprint the system's stored hashes were
	// taken with (nhisync.SystemState.Mapping) when the read began.
	mapping string
	// heads are the system's stored links by external ID, until
	// correlation is done. The ids read without a stored link are in
	// freshIDs (placeFresh), and share the head fresh (seen, linked to
	// nothing): a first pass allocates no head per record, and tells a new
	// id from one read twice by one map operation; freshLinked counts
	// those that correlation linked to a record.
	heads     *headTable
	freshIDs  map[uint64]*staged
	freshMore map[string]struct{}
	// someHeads is set when heads holds only the stored links of the ids
	// read (an incremental read), not every one of the system.
	someHeads   bool
	fresh       head
	freshLinked int
	// stored counts the heads of stored links.
	stored int
	// headsMoved is set when correlation linked a stored link's head to a
	// record: the table no longer holds the store's heads.
	headsMoved bool
	// bit is the system's bit in recWork.matchedBy: 1 << its index in
	// the config's order, 0 past the 32nd (whose links are found by
	// reading the records' observations).
	bit uint32
	// changed are the observations to correlate, until correlation is
	// done; then each is held by its record's work until decided.
	changed  []*staged
	full     bool
	ok       bool
	at       time.Time
	cursor   string
	count    int
	seen     int   // distinct records read
	readIdx  []int // indexes of readable mappings
	matchIdx []int // mapping index per kind.Match entry (-1 if unmapped)
	// dups counts the extra records holding an id already read.
	dups map[string]int
	// strayKeys are the match keys of the unchanged unmatched and
	// dismissed records a full read found (noteStray), until correlation.
	strayKeys map[string]strayKey

	// staged allocates observations; arena holds their encodings
	// (external IDs among them).
	staged slab[staged]
	arena  texts
	hdr    []byte // stage's scratch
	// matchVals is match's scratch.
	matchVals []string
	// ahead is the match keys of changed built ahead during correlation
	// (keysahead.go), nil when they are not.
	ahead *keysAhead
	// warmed keeps what warming the heads read (readSystem).
	warmed uint32
}

type strayObs struct {
	st     *staged
	status nhisync.LinkStatus
	reason string
	// stored is false when the store held no link for the id when the
	// pass loaded its system's heads: there is none to load.
	stored bool
}

// recWork is what a pass must decide about one record: 56 bytes, as a
// first pass holds one per record. The systems a record vanished from
// are in pass.vanished.
type recWork struct {
	id int64
	// key is the normalized match key of a record new in this pass (its
	// kind is that of its first observation, the one that created it);
	// the store has those of the others.
	key   string
	obs   []*staged
	isNew bool
	// matchedBy has the bit (sysRead.bit) of every system that correlation
	// linked to the record by match values in this pass, so the dispute
	// check reads no observation (one cache miss each) to learn it.
	matchedBy uint32
}

// Sync runs one pass: drain queued writes, read every system, decide,
// commit, then apply the writes the pass planned. With opt.DryRun it is
// plan: the same code with the outbox discarded.
func (e *Engine) Sync(ctx context.Context, opt PassOptions) (*Summary, error) {
	start := e.clock.Now()
	p := e.newPass(opt, start)
	if !p.dry {
		p.leaseTTL = opt.LeaseTTL
		if p.leaseTTL == 0 {
			p.leaseTTL = 2 * time.Minute
		}
		if err := e.acquireLease(ctx, leaseName, p.now, p.leaseTTL, "another nhisync process is running a pass on this store; wait for it to finish"); err != nil {
			return nil, err
		}
		p.leaseAt = start
		defer func() { _ = e.store.ReleaseLease(context.WithoutCancel(ctx), leaseName, e.holder) }()
		// The lease is the pass's fencing token: every commit and every
		// chunk of writes checks the pass still holds it at this epoch.
		f, err := e.store.LeaseFence(ctx, leaseName, e.holder)
		if err != nil {
			return nil, err
		}
		p.fence = f
	}
	if err := p.loadState(ctx); err != nil {
		return nil, err
	}
	if !p.dry {
		if err := p.e.drain(ctx, p.sum, p.now, p.paused, &held{fence: p.fence, ttl: p.leaseTTL, leaseAt: p.leaseAt}); err != nil {
			return nil, err
		}
	}
	if err := p.observe(ctx); err != nil {
		return nil, err
	}
	if err := p.correlate(ctx); err != nil {
		return nil, err
	}
	if err := p.decideBulk(ctx); err != nil {
		return nil, err
	}
	if err := p.finish(ctx); err != nil {
		return nil, err
	}
	if !p.dry {
		if err := p.e.drain(ctx, p.sum, p.now, p.paused, &held{fence: p.fence, ttl: p.leaseTTL, keys: p.sent, leaseAt: p.leaseAt}); err != nil {
			return nil, err
		}
		if err := p.e.updateHealth(ctx, p.sum, p.now, p.fence); err != nil {
			return nil, err
		}
	}
	p.keepAll(ctx)
	p.sum.Records = p.recIdx.records
	p.sum.DurationMS = e.clock.Now().Sub(start).Milliseconds()
	return p.sum, nil
}

// newPass returns the state of a pass starting at start, before it has
// read anything.
func (e *Engine) newPass(opt PassOptions, start time.Time) *pass {
	return &pass{
		e:        e,
		opt:      opt,
		dry:      opt.DryRun,
		now:      start.UTC(),
		hlc:      &nhisync.HLC{Clock: e.clock},
		ids:      &ids{store: e.store, dry: opt.DryRun},
		sum:      newSummary(e.cfg, opt.DryRun),
		reads:    map[string]*sysRead{},
		recIdx:   newRecIndex(e.store, e.cfg),
		partial:  map[string]map[string][]int64{},
		work:     map[int64]*recWork{},
		vanished: map[int64][]string{},
		batch:    &nhisync.Batch{},
	}
}

// decideBulk is decideAll, inside a store's bulk window when the store
// offers one and holds nothing yet (nhisync.BulkLoader): a first pass only
// adds records and links, each once (correlation gives every new record a
// match key no other holds, and every read record one link), and decideAll
// looks nothing up by key in the store. The window closes before
// anything else of the pass, even when deciding failed.
func (p *pass) decideBulk(ctx context.Context) (err error) {
	bl, ok := p.e.store.(nhisync.BulkLoader)
	if p.dry || !ok {
		return p.decideAll(ctx)
	}
	open, err := bl.BeginBulk(ctx)
	if err != nil {
		return err
	}
	if !open {
		return p.decideAll(ctx)
	}
	p.emptyStore = true
	defer func() {
		// The memory the decided records' observations held goes back to
		// the system beside the window's closing, not before it
		// (releaseMemory), and is back before the pass goes on.
		released := make(chan struct{})
		go func() {
			defer close(released)
			releaseMemory()
		}()
		// A window that fails to close is said even when deciding
		// failed first (the store's next Open closes it).
		if eerr := bl.EndBulk(context.WithoutCancel(ctx)); eerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store's bulk window: %w", eerr))
		}
		<-released
	}()
	return p.decideAll(ctx)
}

// releaseMemory is called once a bulk window's records are decided and
// committed, on a goroutine of its own beside the store's closing of the
// window (EndBulk): a first pass's peak of memory is its staged
// observations (every record of every system), all garbage now, and the
// Go runtime would hand the pages they held back to the system only
// slowly, so the store's sorts closing the window and the writes that
// follow would take their memory on top of them (at 300k NHIs the first
// pass's RSS stayed at its decide peak through apply). One forced
// collection, over what the pass still holds (the key index, the planned
// writes), returns them at once. Returning them is dear (one madvise per
// span, the page tables' work: 0.8 CPU-s at 300k NHIs), and serial: before
// EndBulk it held the pass up by all of it, while EndBulk's first step
// waits for the disk to sync the window and its sorts allocate their
// buffers only then. A variable for tests.
var releaseMemory = debug.FreeOSMemory

// loadState reads the HLC, system states and the golden key index.
func (p *pass) loadState(ctx context.Context) error {
	if fp, err := p.e.store.Meta(ctx, metaConfig); err != nil {
		return err
	} else if print := p.e.configPrint(); fp != print {
		// Decisions from here on follow another config: say so in the log.
		p.audit(&nhisync.AuditEntry{Action: nhisync.ActConfigLoaded, New: nhisync.Str(print), Old: nhisync.Str(fp), Reason: "config " + filepathBase(p.e.cfg.Path) + " changed"})
		p.configChanged = true
	}
	if v, err := p.e.store.Meta(ctx, metaHLC); err != nil {
		return err
	} else if v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			p.hlc.Observe(time.Unix(0, n).UTC())
		}
	}
	states, err := p.e.store.Systems(ctx)
	if err != nil {
		return err
	}
	p.systems = map[string]*nhisync.SystemState{}
	for _, s := range states {
		p.systems[s.Name] = s
	}
	if p.straysSeen, err = p.e.straysSeen(ctx); err != nil {
		return err
	}
	p.paused = map[string]bool{}
	for _, name := range p.e.cfg.SystemNames {
		st := p.systems[name]
		if st == nil {
			st = &nhisync.SystemState{Name: name, Health: nhisync.HealthOK}
			p.systems[name] = st
		}
		// A degraded system rests until its backoff has passed: neither
		// read nor written, while the others go on.
		if p.opt.RespectPause && st.Health == nhisync.HealthDegraded && p.now.Before(st.PausedUntil) {
			p.paused[name] = true
		}
	}
	// Size the record indexes for about as many records as the largest
	// system held at its last full read.
	est := 0
	for _, st := range p.systems {
		est = max(est, st.Records)
	}
	p.recEst = est
	return nil
}

// loadRecordHeads starts the golden key index, recIdx; it runs beside the
// reads of the systems, which do not use it. A pass reading a system it
// never read in full (a first pass) loads every record's head: its
// records are mostly new to the store, each matched by key. Any other
// counts the records only, and correlation decides, once it knows how
// many observations it must match, whether to load every head or look
// their keys up (recIndex.settle).
func (p *pass) loadRecordHeads(ctx context.Context, firstSight bool) error {
	if firstSight || lazyShare == 0 {
		return p.recIdx.loadAll(ctx, p.recEst)
	}
	return p.recIdx.count(ctx)
}

// observe reads every system and stages the records whose content hash
// changed since the last pass. The systems are read at the same time,
// each by its own goroutine into its own sysRead (with the golden key
// index starting beside them, loadRecordHeads), so a pass waits for its slowest system,
// not for their sum; what the reads found is then taken in the config's
// order, as if they had run one after the other.
func (p *pass) observe(ctx context.Context) error {
	type job struct {
		sys  *nhisync.System
		conn nhisync.Connector
		st   *nhisync.SystemState
		ss   *SystemSummary
		at   time.Time
		r    *sysRead
		err  error
	}
	var jobs []*job
	for _, name := range p.e.cfg.SystemNames {
		sys := p.e.cfg.Systems[name]
		conn := p.e.conns[name]
		if conn == nil || !sys.Direction.Reads() {
			continue
		}
		if p.opt.Systems != nil && !slices.Contains(p.opt.Systems, name) {
			continue
		}
		st := p.systems[name]
		if p.paused[name] {
			// Resting is not being read: nothing of it vanishes, and the
			// pass says so (SPEC §3.13).
			ss := p.sum.sys(name)
			ss.Mode, ss.Paused, ss.PausedUntil, ss.Failures = nhisync.ModePaused, true, st.PausedUntil, st.Failures
			ss.Error = fmt.Sprintf("degraded after %d failed passes, not read or written until %s", st.Failures, st.PausedUntil.Format(time.RFC3339))
			if st.LastError != "" {
				ss.Error += "; last error: " + st.LastError
			}
			continue
		}
		// The clock and the summary are read here, in order: the
		// goroutines share neither.
		jobs = append(jobs, &job{sys: sys, conn: conn, st: st, ss: p.sum.sys(name), at: p.hlc.Now()})
	}
	firstSight := false
	for _, j := range jobs {
		firstSight = firstSight || j.st.LastFullAt.IsZero()
	}
	// Before any head loads: the version the heads are kept under.
	p.headsVersion(ctx)
	var wg sync.WaitGroup
	var headsErr error
	// A panic on these goroutines is recovered there: a system's fails its
	// read (the heads' the pass), named, and the pass cleans up.
	wg.Go(func() {
		defer func() {
			if v := recover(); v != nil {
				headsErr = recovered("loading the golden records' keys", v)
			}
		}()
		headsErr = p.loadRecordHeads(ctx, firstSight)
	})
	for _, j := range jobs {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					j.r, j.err = nil, recovered("reading "+j.sys.Name, v)
				}
			}()
			j.r, j.err = p.readSystem(ctx, j.sys, j.conn, j.st, j.ss, j.at)
		})
	}
	wg.Wait()
	// The store holds no credential a connector could scrub.
	p.e.logPanic(headsErr, func(s string) string { return s })
	for _, j := range jobs {
		if j.err != nil {
			scrub := scrubber(j.conn)
			p.e.logPanic(j.err, scrub, "system", j.sys.Name)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A failed read takes nothing from the system this pass: no
			// proposals, nothing vanished. The others go on. What is said
			// of it (summary, stored state, log) has the connector's
			// credentials scrubbed.
			j.ss.Error = scrub(nhisync.ErrorMessage(j.err))
			j.ss.Mode, j.ss.ReadFailed = nhisync.ModeFailed, true
			p.e.log.Warn("read failed", "system", j.sys.Name, "error", j.ss.Error)
			j.st.LastError = j.ss.Error
			continue
		}
		p.reads[j.sys.Name] = j.r
	}
	return headsErr
}

// readReport reports a read's progress and keeps the pass lease, for
// the goroutines reading systems one at a time.
func (p *pass) readReport(ctx context.Context, pr Progress, renew bool) error {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	p.e.report(pr)
	if !renew {
		return nil
	}
	return p.renewLease(ctx)
}

func (p *pass) readSystem(ctx context.Context, sys *nhisync.System, conn nhisync.Connector, st *nhisync.SystemState, ss *SystemSummary, at time.Time) (*sysRead, error) {
	kind := p.e.cfg.Kinds[sys.Kind]
	// Sized for the records the last full read saw (newHeadTable): the
	// head table does not grow (and place every head again) a few times
	// over while the link heads load.
	fp := mappingFingerprint(sys)
	changer, isChanger := conn.(nhisync.Changer)
	incremental := isChanger && p.opt.Incremental && st.Cursor != "" && st.Mapping == fp
	heads := st.Records
	if incremental {
		heads = 0
	}
	r := &sysRead{sys: sys, kind: kind, fp: fp, mapping: st.Mapping, freshIDs: map[uint64]*staged{}, dups: map[string]int{}}
	// Every id the read finds without a stored link points at fresh: seen
	// (so it neither vanishes nor goes unnoticed when read twice), and
	// linked to nothing.
	r.fresh.seen = true
	for i, m := range sys.Fields {
		if sys.Reads(m.Field) {
			r.readIdx = append(r.readIdx, i)
		}
	}
	for _, f := range kind.Match {
		idx := -1
		for i, m := range sys.Fields {
			if m.Field == f && sys.Reads(f) {
				idx = i
			}
		}
		r.matchIdx = append(r.matchIdx, idx)
	}
	sameMapping := st.Mapping == r.fp
	// An incremental read holds the records changed since the cursor, a
	// few of the system's: it loads their heads once it has them (see
	// pending), not every head of the system.
	r.someHeads = incremental
	kept := !incremental && p.takeHeads(r, st, ss)
	if !kept {
		r.heads = newHeadTable(heads)
	}
	if !incremental && !kept {
		// The heads are added a run at a time (headRun).
		var run headRun
		push := func(h nhisync.LinkHead) {
			if run.push(h, sameMapping) {
				r.addHeads(&run)
			}
		}
		var err error
		if pager, ok := p.e.store.(nhisync.LinkHeadPager); ok {
			// A page's ids are the store's until the callback returns: the
			// run is added (its ids copied into the table) before then.
			err = pager.ScanLinkHeadPages(ctx, sys.Name, func(page []nhisync.LinkHead) error {
				for _, h := range page {
					push(h)
				}
				r.addHeads(&run)
				return nil
			})
		} else {
			err = p.e.store.ScanLinkHeads(ctx, sys.Name, func(h nhisync.LinkHead) error {
				push(h)
				return nil
			})
		}
		if err != nil {
			return nil, err
		}
		r.addHeads(&run)
	}
	// pending are an incremental read's observations, each staged with its
	// hash, until their heads are loaded.
	var pending []*staged
	r.at = at
	// buf holds one record's canonical values and enc their encoding;
	// only changed records are copied out of it.
	buf := make([]nhisync.Value, len(sys.Fields))
	var enc []byte
	emit := func(obs nhisync.Observation) error {
		r.count++
		if r.count%10000 == 0 {
			if err := p.readReport(ctx, Progress{Stage: "read", System: sys.Name, Done: r.count}, true); err != nil {
				return err
			}
		}
		clear(buf)
		for _, i := range r.readIdx {
			var v nhisync.Value
			if i < len(obs.Values) {
				v = obs.Values[i]
			}
			buf[i] = sys.Fields[i].Type.Canonical(v)
		}
		h := hashValues(enc, r.fp, buf)
		enc = h.buf
		vals := h.buf[len(r.fp):]
		if incremental {
			st := r.stage(obs.ID, vals, obs.Modified.UTC(), obs.Actor)
			st.hash, st.hasHash = h.sum, true
			pending = append(pending, st)
			return nil
		}
		hd := r.heads.get(obs.ID)
		switch {
		case hd != nil && hd.seen:
			// The same id twice in one read: neither record is read;
			// correlate disputes the id (disputeDuplicates).
			r.dups[obs.ID]++
			r.changed = append(r.changed, r.stage(obs.ID, vals, obs.Modified.UTC(), obs.Actor))
			return nil
		case hd != nil:
			hd.seen = true
			r.seen++
			// Unchanged: nothing to do. (Unchanged unmatched, disputed and
			// dismissed records are re-correlated by restageStrays, unless
			// leaveStrays tells by their key that nothing could match them.)
			if hd.status != stateGone && hd.hasHash && hd.hash == h.sum {
				if hd.recordID == 0 && (hd.status == stateUnmatched || hd.status == stateDismissed) {
					r.noteStray(obs.ID, buf)
				}
				return nil
			}
			hd.changed = true
		}
		// The id is copied once, into the observation's encoding; a new
		// id is kept by that copy.
		st := r.stage(obs.ID, vals, obs.Modified.UTC(), obs.Actor)
		if hd == nil && r.placeFresh(st) {
			// The same id twice in one read, as above.
			r.changed = append(r.changed, st)
			return nil
		}
		st.hash, st.hasHash = h.sum, true
		r.changed = append(r.changed, st)
		return nil
	}
	read := func(emit func(nhisync.Observation) error) error {
		switch {
		case incremental:
			next, err := changer.Changes(ctx, st.Cursor, emit)
			if err != nil {
				return err
			}
			r.cursor = next
			ss.Mode = nhisync.ModeIncremental
		case isChanger:
			next, err := changer.Changes(ctx, "", emit)
			if err != nil {
				return err
			}
			r.cursor, r.full = next, true
			ss.Mode = nhisync.ModeFull
		default:
			if err := conn.Snapshot(ctx, emit); err != nil {
				return err
			}
			r.full = true
			ss.Mode = nhisync.ModeFull
		}
		return nil
	}
	// A full read looks every id up in the heads, a run at a time warmed
	// first (headTable.warm); warmed keeps what warm read.
	var ahead func([]nhisync.Observation)
	if !incremental {
		ids := make([]string, 0, warmRun)
		ahead = func(run []nhisync.Observation) {
			ids = ids[:0]
			for _, obs := range run {
				ids = append(ids, obs.ID)
			}
			r.warmed += r.heads.warm(ids)
		}
	}
	if err := handOff(len(sys.Fields), read, ahead, emit); err != nil {
		if pe := (*panicked)(nil); errors.As(err, &pe) {
			return nil, fmt.Errorf("reading %s: %w", sys.Name, err)
		}
		return nil, err
	}
	if incremental {
		if err := p.placePending(ctx, r, pending); err != nil {
			return nil, err
		}
	}
	r.ok = true
	ss.Read = r.count
	ss.Changed = len(r.changed)
	_ = p.readReport(ctx, Progress{Stage: "read", System: sys.Name, Done: r.count, Total: r.count}, false)
	return r, nil
}

// addHead adds the stored link head of external id ext to r.heads; its
// hash counts only when the system's mapping is the one it was taken
// with (sameMapping). The store holds one link per id: a second head of
// an id replaces the first, as the map before the table did.
func (r *sysRead) addHead(ext string, recordID int64, status nhisync.LinkStatus, hash []byte, sameMapping bool) {
	hd, found := r.heads.add(ext)
	*hd = storedHead(recordID, status, hash, sameMapping)
	if !found {
		r.stored++
	}
}

// storedHead is the head of a stored link; its hash counts only when
// sameMapping (addHead).
func storedHead(recordID int64, status nhisync.LinkStatus, hash []byte, sameMapping bool) head {
	hd := head{recordID: recordID, status: stateOf(status)}
	if sameMapping && len(hash) == hashLen {
		hd.hash, hd.hasHash = [hashLen]byte(hash), true
	}
	return hd
}

// headRun gathers stored link heads for sysRead.addHeads, which adds
// them to the head table a run at a time (headTable.addRun).
type headRun struct {
	n     int
	ids   [addRunLen]string
	heads [addRunLen]head
}

// push keeps the head of a stored link (its hash copied: the store's
// bytes need not outlive the call) and reports whether the run is full.
func (run *headRun) push(h nhisync.LinkHead, sameMapping bool) (full bool) {
	run.heads[run.n] = storedHead(h.RecordID, h.Status, h.Hash, sameMapping)
	run.ids[run.n] = h.ExternalID
	run.n++
	return run.n == addRunLen
}

// addHeads adds run's heads to r.heads as addHead does, and empties run.
func (r *sysRead) addHeads(run *headRun) {
	if run.n == 0 {
		return
	}
	r.warmed += r.heads.addRun(run.ids[:run.n], func(i int, hd *head, found bool) {
		*hd = run.heads[i]
		if !found {
			r.stored++
		}
	})
	run.n = 0
}

// placeFresh notes st, read with no stored link for its id: a new id,
// whose head is fresh, or, when the read found the id before, a duplicate
// (true) that correlate disputes (disputeDuplicates).
//
// The set is keyed by a 64-bit hash of the id, each hash to the first
// record read with it; an id whose hash an other id has is kept in
// freshMore. A first pass puts every record of a system in the set, which
// grows from empty (how many the system holds is not known before it is
// read): growing a map keyed by the ids hashes each of them again, reading
// its bytes from wherever the record was staged, a cache miss per id once
// the set outgrows the processor's caches (at 1M ids an insert took about
// 3 times as long as into a map of hashes).
func (r *sysRead) placeFresh(st *staged) (dup bool) {
	id := st.id()
	h := maphash.String(freshSeed, id)
	switch first, ok := r.freshIDs[h]; {
	case !ok:
		r.freshIDs[h] = st
	case first.id() == id:
		dup = true
	default:
		if r.freshMore == nil {
			r.freshMore = map[string]struct{}{}
		}
		n := len(r.freshMore)
		r.freshMore[id] = struct{}{}
		dup = len(r.freshMore) == n
	}
	if dup {
		r.dups[id]++
		return true
	}
	r.seen++
	st.fresh = true
	return false
}

// freshSeed seeds the hashes of placeFresh's set.
var freshSeed = maphash.MakeSeed()

// placePending loads the stored heads of the records an incremental read
// found (pending, each staged with its hash, in read order) and sorts
// them as a full read's emit does while it reads: an id read twice is
// disputed, an unchanged record is done, the others are changed.
func (p *pass) placePending(ctx context.Context, r *sysRead, pending []*staged) error {
	ids := make([]string, 0, len(pending))
	for _, st := range pending {
		ids = append(ids, st.id())
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for start := 0; start < len(ids); start += p.e.batch {
		links, err := p.e.store.LoadLinks(ctx, r.sys.Name, ids[start:min(start+p.e.batch, len(ids))])
		if err != nil {
			return err
		}
		for _, l := range links {
			r.addHead(l.ExternalID, l.RecordID, l.Status, l.Hash, true)
		}
	}
	for _, st := range pending {
		id := st.id()
		hd := r.heads.get(id)
		switch {
		case hd != nil && hd.seen:
			r.dups[id]++
			st.hasHash = false
			r.changed = append(r.changed, st)
			continue
		case hd != nil:
			hd.seen = true
			r.seen++
			if hd.status != stateGone && hd.hasHash && hd.hash == st.hash {
				continue
			}
			hd.changed = true
			r.changed = append(r.changed, st)
			continue
		}
		if r.placeFresh(st) {
			st.hasHash = false
		}
		r.changed = append(r.changed, st)
	}
	return nil
}

// finish applies the blast-radius guard to the pass's planned writes and
// records system states and the clock.
func (p *pass) finish(ctx context.Context) error {
	if err := p.applyGuard(ctx); err != nil {
		return err
	}
	for name, r := range p.reads {
		st := p.systems[name]
		st.LastReadAt = r.at
		if r.full {
			st.LastFullAt = r.at
			st.Records = r.seen
		}
		if r.cursor != "" {
			st.Cursor = r.cursor
		}
		st.Mapping = r.fp
		if p.sum.sys(name).Error == "" {
			st.LastError = ""
		}
		p.batch.Systems = append(p.batch.Systems, st)
	}
	// Correlation may have set some already (metaStraysSeen).
	p.batch.Meta = setMeta(p.batch.Meta, metaHLC, strconv.FormatInt(p.hlc.Last().UnixNano(), 10))
	if p.configChanged {
		p.batch.Meta[metaConfig] = p.e.configPrint()
	}
	return p.commit(ctx)
}

// commit writes the pending batch (or, in a dry run, drops it) and waits
// for it.
func (p *pass) commit(ctx context.Context) error {
	if err := p.commitAsync(ctx); err != nil {
		return err
	}
	return p.flush()
}

// commitAsync starts writing the pending batch (or, in a dry run, drops
// it) while the caller goes on deciding the next one: the store's work on
// one batch overlaps the engine's on the next. It first waits for the
// batch before, so batches land one at a time and in order, and a failed
// one stops the pass at the next commit or flush. Nothing of a batch
// leaves for a system before flush has returned without error.
func (p *pass) commitAsync(ctx context.Context) error {
	// The batch's audit entries are complete: encode their leaves now,
	// while the batch before may still be committing, so that the store
	// only splices in seq, time and prev_hash.
	if !p.dry {
		p.batch.PrepareAuditIn(&p.auditRooms[p.auditTurn])
		p.auditTurn ^= 1
	}
	if err := p.flush(); err != nil {
		return err
	}
	// The batch is emptied in place: the decider keeps filling the same one.
	b := &nhisync.Batch{}
	*b, *p.batch = *p.batch, nhisync.Batch{}
	for _, ev := range b.Audit {
		p.sum.count(ev)
	}
	if p.dry || p.opt.KeepEvents {
		p.sum.keep(b.Audit, p.opt.EventLimit)
	}
	if p.dry {
		return nil
	}
	done := make(chan error, 1)
	p.inflight = done
	go func() {
		if !b.Empty() {
			b.Fence = p.fence
			if err := p.e.store.Commit(ctx, b); err != nil {
				done <- fmt.Errorf("commit: %w", err)
				return
			}
			p.sent.note(b)
		}
		done <- p.renewLease(ctx)
	}()
	return nil
}

// flush waits for the batch in flight, if any, and returns its error.
func (p *pass) flush() error {
	if p.inflight == nil {
		return nil
	}
	err := <-p.inflight
	p.inflight = nil
	return err
}

// renewLease keeps the pass lease while a long pass runs; a pass that
// lost it stops rather than race another process.
func (p *pass) renewLease(ctx context.Context) error {
	if p.dry {
		return nil
	}
	now := p.e.clock.Now()
	if now.Sub(p.leaseAt) < p.leaseTTL/3 {
		return nil
	}
	ok, err := p.e.store.AcquireLease(ctx, leaseName, p.e.holder, now, p.leaseTTL)
	if err != nil {
		return err
	}
	if ok {
		// Held again, but perhaps only because another process took it
		// over and let it go meanwhile: then its epoch moved.
		f, err := p.e.store.LeaseFence(ctx, leaseName, p.e.holder)
		if err != nil {
			return err
		}
		ok = f.Epoch == p.fence.Epoch
	}
	if !ok {
		return nhisync.Errorf(nhisync.ECONFLICT, "the pass lost its lease to another process (was it paused for more than %s?); nothing more of it was written; run sync again", p.leaseTTL)
	}
	p.leaseAt = now
	return nil
}

// audit appends an entry to the pending batch.
func (p *pass) audit(ev *nhisync.AuditEntry) {
	p.e.auditTo(p.batch, ev, p.now)
}

// auditTo appends an entry to b, stamped now unless it has a time, with
// the values of a sensitive field replaced by their HMAC under the audit
// secret.
func (e *Engine) auditTo(b *nhisync.Batch, ev *nhisync.AuditEntry, now time.Time) {
	if ev.Time.IsZero() {
		ev.Time = now
	}
	if ev.Actor == "" {
		ev.Actor = nhisync.Actor
	}
	if ev.Field != "" {
		ev.Old = e.auditValue(ev.Kind, ev.Field, ev.Old)
		ev.New = e.auditValue(ev.Kind, ev.Field, ev.New)
	}
	b.Audit = append(b.Audit, ev)
}

// auditValue returns what the audit log keeps of a value of kind's field:
// the value, or its SensitiveValue when the field is sensitive.
func (e *Engine) auditValue(kind, field string, v nhisync.Value) nhisync.Value {
	if k := e.cfg.Kinds[kind]; k != nil {
		if f := k.Field(field); f != nil && f.Sensitive {
			return nhisync.SensitiveValue(e.auditKey, v)
		}
	}
	return v
}

// configPrint is what the audit log and the store keep of the config's
// fingerprint: its HMAC under the audit secret, since the fingerprint
// hashes expanded settings (DSNs with ${VAR} passwords) that a plain hash
// would let anyone holding an export test guesses against.
func (e *Engine) configPrint() string {
	return nhisync.SensitiveValue(e.auditKey, nhisync.Str(e.cfg.Fingerprint)).Text()
}

func filepathBase(p string) string { return filepath.Base(p) }
