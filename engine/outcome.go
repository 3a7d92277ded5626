package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
)

// outcomeJob is the outcome of one Apply call's writes to sys, waiting to
// commit: groups[i] are the queued rows results[i] answers, held by hold.
type outcomeJob struct {
	sys     *nhisync.System
	groups  [][]*nhisync.OutboxWrite
	results []nhisync.WriteResult
	now     time.Time
	hold    *claimHold
}

// claimHold is a claim of a drain and the writes it still holds whose
// outcome is not in: its sender renews it before each chunk leaves, the
// goroutine that commits outcomes renews it while its writes wait to be
// sent or to commit (renewWaiting), and that goroutine takes the writes
// of each chunk off it before it commits their outcome. mu makes them
// take turns (and guards claim.Until, which a renewal sets): a renewal
// names only writes the claim still holds, as the store refuses a
// renewal of writes another took or a commit settled.
type claimHold struct {
	mu    sync.Mutex
	claim *nhisync.Claim
	// open are the claimed writes whose outcome has not committed.
	open map[int64]bool
}

// renew renews the claim on every write it still holds, and returns
// nil when it holds none. h.mu must be held.
func (h *claimHold) renew(ctx context.Context, store nhisync.Store, now time.Time, ttl time.Duration) error {
	if len(h.open) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(h.open))
	for _, id := range h.claim.IDs {
		if h.open[id] {
			ids = append(ids, id)
		}
	}
	return store.RenewClaim(ctx, h.claim, ids, now, ttl)
}

// settle takes the writes of groups off the claim's open writes, or puts
// them back (open).
func (h *claimHold) settle(groups [][]*nhisync.OutboxWrite, open bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range groups {
		for _, o := range g {
			if open {
				h.open[o.ID] = true
			} else {
				delete(h.open, o.ID)
			}
		}
	}
}

// hold registers claim with h, its writes all open.
func (h *held) hold(claim *nhisync.Claim) *claimHold {
	c := &claimHold{claim: claim, open: make(map[int64]bool, len(claim.IDs))}
	for _, id := range claim.IDs {
		c.open[id] = true
	}
	h.mu.Lock()
	h.holds = append(h.holds, c)
	h.mu.Unlock()
	return c
}

// openHolds returns the claims of h that still hold writes, and forgets
// the others.
func (h *held) openHolds() []*claimHold {
	h.mu.Lock()
	defer h.mu.Unlock()
	keep := h.holds[:0]
	for _, c := range h.holds {
		c.mu.Lock()
		open := len(c.open) > 0
		c.mu.Unlock()
		if open {
			keep = append(keep, c)
		}
	}
	clear(h.holds[len(keep):])
	h.holds = keep
	return slices.Clone(keep)
}

// releaseOpen returns to the queue the writes the drain's claims still
// hold once every outcome is in: those left unsent when the drain
// stopped, and those whose outcome did not commit (sent, they go out
// again: conditional, they then come back stale).
func (h *held) releaseOpen(ctx context.Context, store nhisync.Store) {
	for _, c := range h.openHolds() {
		_ = store.ReleaseClaim(context.WithoutCancel(ctx), c.claim)
	}
}

// recordOutcome queues the outcome of one Apply call's writes to sys
// (groups[i] are the queued rows results[i] answers, held by hold) for
// the drain's goroutine that commits outcomes (commitOutcomes), which
// commits it a chunk of outcomeChunk records at a time while the drain
// sends the next chunk (or system): outcomes commit one at a time, a
// system's in the order its writes went out, the systems' in config
// order, so the audit log reads as if they were made one after the
// other. Failed writes are rescheduled with backoff here.
func (e *Engine) recordOutcome(sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time, hold *claimHold, queue chan<- *outcomeJob) {
	for i, res := range results {
		switch res.Status {
		case nhisync.WriteApplied, nhisync.WriteStale, nhisync.WriteMissing:
		default:
			for _, o := range groups[i] {
				o.Attempts++
				o.NextAt = now.Add(backoff(o.Attempts))
				o.LastError = writeFailure(sys, res)
			}
		}
	}
	queue <- &outcomeJob{sys: sys, groups: groups, results: results, now: now, hold: hold}
}

// writeFailure is why a write failed: the connector's error, or, when it
// gave none or answered with a status nhisync does not know, that it did
// (SPEC §3.13: a failed write is named with why, in the summary, the
// audit log and the queued write).
func writeFailure(sys *nhisync.System, res nhisync.WriteResult) string {
	if msg := nhisync.ErrorMessage(res.Err); msg != "" {
		return msg
	}
	if res.Status != nhisync.WriteFailed {
		return fmt.Sprintf("the %s connector answered a write with status %q, which nhisync does not know (a bug in the connector: report it); the write is retried", sys.Connector, res.Status)
	}
	return fmt.Sprintf("the %s connector failed a write without saying why (a bug in the connector: report it); the write is retried", sys.Connector)
}

// commitOutcomes commits the outcomes queued on queues, the first
// queue's until it is closed, then the next one's (a system's each, in
// config order). Once one fails to commit (held.outcomeFailed) the
// senders send no more, but every outcome already queued is of writes
// already sent: it still commits each of them, chunk by chunk, so none
// of those writes goes back to the queue to be sent again (a create made
// twice) with no audit entry of the first time. That is safe: each
// commit checks the claim and the fence in its transaction, so an
// outcome whose claim or lease was lost fails too. The drain keeps the
// first failure (held.settle) and fails with it.
// Between chunks, and while it waits, it renews the claims of writes
// still waiting to be sent or to commit (renewWaiting): a long outcome,
// such as a whole-file system's, would otherwise outlast the claims of
// the systems whose outcomes come after it, and another process could
// take their writes (no double effect, but their sends wasted, and their
// outcomes failing to commit).
//
// Each chunk's commit loads only what it moves (outcomeBatch): the links
// of the system the updates went to and the display keys of the writes'
// records (what their audit entries name), but the keys of the records its
// pass committed, which it has (recordKeys). It loads them once the commit
// before is in: so it never writes back a link as that commit found it,
// and a store that commits on one connection reads them where they are
// about to be written (the SQLite store reads them on its writer, whose
// page cache its commits keep); but a pass's drain builds the next chunk
// of a job while one commits (commitJob). The writes count in the summary
// once their chunk's commit is in (held.settle).
func (e *Engine) commitOutcomes(ctx context.Context, snd *held, queues []chan *outcomeJob) {
	// Waiting for an outcome, it looks six times a claim's period whether
	// one needs renewing (at a third of its period).
	tick := time.NewTicker(max(snd.ttl/6, time.Millisecond))
	defer tick.Stop()
	for _, q := range queues {
		var next *outcomeJob
		open := true
		for next != nil || open {
			job := next
			if job == nil {
				select {
				case j, ok := <-q:
					if !ok {
						open = false
						continue
					}
					job = j
				case <-tick.C:
					e.renewWaiting(ctx, snd)
					continue
				}
			}
			next = nil
			if open {
				job, next, open = gather(job, q)
			}
			e.commitJob(ctx, snd, job)
		}
	}
}

// gather joins to job the outcomes queued behind it on q, without
// waiting, while they are of the same claim and the joined outcome holds
// fewer than outcomeChunk records: a group commit. The sender queues an
// outcome per Apply call (applyChunk records), and outcomes wait in the
// queue only while the commits fall behind the sends, so the commits take
// fewer, larger steps exactly when they hold the drain up. It returns the
// job, an outcome it took that could not join (nil if none), and whether
// q is still open. Joined outcomes commit as one job's chunks do: their
// writes were all sent.
func gather(job *outcomeJob, q <-chan *outcomeJob) (joined, next *outcomeJob, open bool) {
	for len(job.results) < outcomeChunk {
		select {
		case j, ok := <-q:
			if !ok {
				return job, nil, false
			}
			if j.hold != job.hold || j.sys != job.sys || !j.now.Equal(job.now) || len(job.results)+len(j.results) > outcomeChunk {
				return job, j, true
			}
			job = &outcomeJob{sys: job.sys, now: job.now, hold: job.hold,
				groups:  append(job.groups[:len(job.groups):len(job.groups)], j.groups...),
				results: append(job.results[:len(job.results):len(job.results)], j.results...)}
		default:
			return job, nil, true
		}
	}
	return job, nil, true
}

// commitJob commits job's outcome, chunk by chunk, renewing waiting
// claims between chunks, and counts the writes committed. A chunk that
// fails to commit does not stop the chunks after it (their writes were
// sent in the same Apply call, or joined by gather); the first failure
// is kept.
//
// In a pass's drain each chunk's batch is built ahead (buildAhead), while
// the chunk before commits, its links read where that commit does not
// hold them up (nhisync.Ahead): only the drain's own outcome commits
// write links while the pass holds its lease, so what it read is what it
// would read once that commit is in, but for the links that commit
// wrote, and a chunk holding one is built again then.
func (e *Engine) commitJob(ctx context.Context, snd *held, job *outcomeJob) {
	var tally writeTally
	var first error
	groups, results := job.groups, job.results
	var next *aheadBatch
	defer func() {
		if next != nil {
			<-next.done // a build not taken (the job stops early) ends first
		}
	}()
	for len(results) > 0 {
		n := min(outcomeChunk, len(results))
		// The chunk's writes leave the claim's renewals before their
		// commit settles them (after it, a renewal naming them fails),
		// and come back if it fails, to be released.
		job.hold.settle(groups[:n], false)
		ahead := next
		next = nil
		var b *nhisync.Batch
		var err error
		if ahead != nil {
			<-ahead.done
			b = ahead.b
		}
		if b == nil {
			b, err = e.outcomeBatch(ctx, job.sys, groups[:n], results[:n], job.now, snd.keys)
		}
		if err == nil && snd.fence != nil && len(results) > n {
			m := min(outcomeChunk, len(results)-n)
			next = e.buildAhead(ctx, job.sys, groups[n:n+m], results[n:n+m], job.now, snd.keys, b.Links)
		}
		if err == nil {
			err = e.commitOutcome(ctx, job.sys, b, groups[:n], results[:n], snd, job.hold.claim)
		}
		if err != nil {
			job.hold.settle(groups[:n], true)
			if first == nil {
				first = err
			}
		} else {
			tally.add(groups[:n], results[:n])
		}
		groups, results = groups[n:], results[n:]
		if len(results) > 0 {
			e.renewWaiting(ctx, snd)
		}
	}
	snd.settle(job.sys.Name, tally, first)
	if outcomeDone != nil {
		outcomeDone(first)
	}
}

// aheadBatch is the outcome batch of a chunk built ahead (buildAhead):
// b is nil when it must be built again, once the commit before is in (a
// build that failed is built again too, and fails there, said).
type aheadBatch struct {
	done chan struct{}
	b    *nhisync.Batch
}

// buildAhead builds, on a goroutine of its own, the outcome batch of the
// chunk after one whose batch (writing the links before) is about to
// commit: its links read without waiting for that commit (nhisync.Ahead).
// The batch is dropped (b nil) when it holds a link before holds, which
// that commit writes: it is built again once the commit is in. Its audit
// leaves are prepared too, which the commit would do otherwise.
func (e *Engine) buildAhead(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time, known recordKeys, before []*nhisync.Link) *aheadBatch {
	a := &aheadBatch{done: make(chan struct{})}
	writing := make(map[string]bool, len(before))
	for _, l := range before {
		writing[l.ExternalID] = true
	}
	go func() {
		defer close(a.done)
		for _, g := range groups {
			for _, o := range g {
				if !o.Create && writing[o.ExternalID] {
					return // built again after the commit
				}
			}
		}
		b, err := e.outcomeBatch(nhisync.Ahead(ctx), sys, groups, results, now, known)
		if err != nil {
			return // built again: its failure said then
		}
		b.PrepareAudit()
		a.b = b
	}()
	return a
}

// renewWaiting renews every claim of the drain that still holds writes
// once a third of its period has gone by since it was claimed or last
// renewed. A renewal that fails is left to the commit of the writes'
// outcome, which checks the claim in its transaction and fails if
// another took them.
func (e *Engine) renewWaiting(ctx context.Context, snd *held) {
	for _, c := range snd.openHolds() {
		c.mu.Lock()
		now := e.clock.Now().UTC()
		if c.claim.Until.Sub(now) <= snd.ttl-snd.ttl/3 {
			_ = c.renew(ctx, e.store, now, snd.ttl)
		}
		c.mu.Unlock()
	}
}

// settle counts an outcome's writes whose chunks committed in h.sum (no
// write counts as done that was not) and, when its commit failed, keeps
// the first failure and halts the drain's sends: no more writes leave
// after an outcome failed to commit.
func (h *held) settle(system string, t writeTally, err error) {
	h.mu.Lock()
	if err != nil && h.outErr == nil {
		h.outErr = err
	}
	h.mu.Unlock()
	ss := h.sum.sys(system)
	ss.Written += t.applied
	ss.Stale += t.stale
	ss.Failed += t.failed
	h.sum.WritesApplied += t.applied
	h.sum.WritesStale += t.stale
	h.sum.WritesFailed += t.failed
	if ss.Error == "" && t.failure != "" {
		ss.Error = fmt.Sprintf("writes failed (retried with backoff): %s", t.failure)
	}
	if t != (writeTally{}) {
		h.report(Progress{Stage: "write", System: system, Done: ss.Written})
	}
}

// writeTally counts the outcomes of a chunk of writes.
type writeTally struct {
	applied, stale, failed int
	// failure is the first failed write's error.
	failure string
}

// add counts the outcomes of writes: groups[i] are the queued rows
// results[i] answers.
func (t *writeTally) add(groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult) {
	for i, res := range results {
		for _, o := range groups[i] {
			switch res.Status {
			case nhisync.WriteApplied:
				t.applied++
			case nhisync.WriteStale, nhisync.WriteMissing:
				t.stale++
			default:
				t.failed++
				if t.failure == "" {
					t.failure = o.LastError
				}
			}
		}
	}
}

// commitOutcome commits b, the outcome of a chunk of writes to sys
// (recordOutcome, outcomeBatch), with the drain's fence and claim.
func (e *Engine) commitOutcome(ctx context.Context, sys *nhisync.System, b *nhisync.Batch, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, snd *held, claim *nhisync.Claim) error {
	b.Fence, b.Claim = snd.fence, claim
	err := e.store.Commit(ctx, b)
	if err != nil || e.writeObserver == nil {
		return err
	}
	at := e.clock.Now().UTC()
	for i, res := range results {
		for _, o := range groups[i] {
			e.writeObserver(o, res.Status, at)
		}
	}
	return nil
}

// outcomeBatch builds the batch of an outcome (recordOutcome): outbox rows
// done or rescheduled, the links it moves written back in key order, an
// audit entry per write. The display keys of the writes' records are read
// from the store but those known (the keys a pass committed: recordKeys).
func (e *Engine) outcomeBatch(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time, known recordKeys) (*nhisync.Batch, error) {
	var recIDs []int64
	var extIDs []string
	seenRec := make(map[int64]bool, len(groups))
	seenExt := make(map[string]bool, len(groups))
	for _, g := range groups {
		for _, o := range g {
			if !seenRec[o.RecordID] {
				seenRec[o.RecordID] = true
				if _, ok := known[o.RecordID]; !ok {
					recIDs = append(recIDs, o.RecordID)
				}
			}
			if !o.Create && !seenExt[o.ExternalID] {
				seenExt[o.ExternalID] = true
				extIDs = append(extIDs, o.ExternalID)
			}
		}
	}
	keys := map[int64]string{}
	var err error
	if len(recIDs) > 0 {
		if keys, err = e.store.RecordKeys(ctx, recIDs); err != nil {
			return nil, err
		}
	}
	var loaded []*nhisync.Link
	if len(extIDs) > 0 {
		if loaded, err = e.store.LoadLinks(ctx, sys.Name, extIDs); err != nil {
			return nil, err
		}
	}
	links := make(map[string]*nhisync.Link, len(loaded))
	for _, l := range loaded {
		links[l.ExternalID] = l
	}
	b := &nhisync.Batch{}
	fp := mappingFingerprint(sys)
	var touched []*nhisync.Link
	mark := map[*nhisync.Link]bool{}
	touch := func(l *nhisync.Link) {
		if !mark[l] {
			mark[l] = true
			touched = append(touched, l)
		}
	}
	// stale links keep no hash, so the next pass reads the record whatever
	// it holds then, even the content it held when first linked.
	stale := map[*nhisync.Link]bool{}
	for i, res := range results {
		for _, o := range groups[i] {
			key, exists := keys[o.RecordID]
			if !exists {
				key, exists = known[o.RecordID]
			}
			ev := &nhisync.AuditEntry{Actor: nhisync.Actor, Kind: o.Kind, RecordID: o.RecordID, Record: o.Record, Field: o.Field, System: sys.Name, Old: o.Old, New: o.New}
			var link *nhisync.Link
			if exists {
				ev.Record = key
				// The link the write went to, while it is still the
				// record's.
				if l := links[o.ExternalID]; !o.Create && l != nil && l.RecordID == o.RecordID {
					link = l
				}
			}
			switch res.Status {
			case nhisync.WriteApplied:
				b.OutboxDone = append(b.OutboxDone, o.ID)
				if o.Create {
					if !exists || res.ID == "" {
						continue
					}
					link = &nhisync.Link{System: sys.Name, ExternalID: res.ID, RecordID: o.RecordID, Status: nhisync.LinkLive, FirstSeen: now, SeenAt: now}
					for f, v := range o.Values {
						fs := link.Field(f)
						fs.Shadow, fs.Asserted, fs.Since = v, v, now
					}
					ev.Action, ev.Field, ev.New, ev.Reason = nhisync.ActRecordProvisioned, "", nhisync.Str(res.ID), "provision: true"
				} else {
					ev.Action = nhisync.ActWriteApplied
					if o.ApprovalID != 0 {
						ev.Reason = fmt.Sprintf("approved (approval %d)", o.ApprovalID)
					}
					if link != nil {
						fs := link.Field(o.Field)
						fs.Shadow = o.New
						if sys.Reads(o.Field) {
							fs.Asserted, fs.Since = o.New, now
						}
					}
				}
				if link != nil {
					touch(link)
				}
			case nhisync.WriteStale, nhisync.WriteMissing:
				b.OutboxDone = append(b.OutboxDone, o.ID)
				ev.Action = nhisync.ActWriteStale
				ev.Reason = "the record changed in " + sys.Name + " since it was read; dropped for re-observation"
				if res.Status == nhisync.WriteMissing {
					ev.Reason = "the record is gone from " + sys.Name
				}
				if link != nil {
					link.Hash = nil // re-observe it whatever its content
					touch(link)
					stale[link] = true
				}
			default:
				b.Outbox = append(b.Outbox, o)
				ev.Action = nhisync.ActWriteFailed
				ev.Reason = fmt.Sprintf("attempt %d: %s; retry after %s", o.Attempts, o.LastError, o.NextAt.Format(time.RFC3339))
			}
			e.auditTo(b, ev, now)
		}
	}
	// Key order (a stable sort keeps two links created under one id in
	// the order they came, the later one winning as before).
	slices.SortStableFunc(touched, func(x, y *nhisync.Link) int { return strings.Compare(x.ExternalID, y.ExternalID) })
	for _, l := range touched {
		if !stale[l] && (l.Hash != nil || l.FirstSeen.Equal(now)) {
			l.Hash = linkHash(sys, fp, l)
		}
		b.Links = append(b.Links, l)
	}
	return b, nil
}

// recordKeys are the display keys of the records a pass committed with
// writes to send, by record ID: the outcomes of the pass's drain take them
// from here instead of reading them (Store.RecordKeys: at 1M NHIs, a
// random page of records for each). They are current while the pass runs:
// a record's key is written only by a commit holding the pass lease (a
// pass's or a person's action), which the pass holds until its drain is
// done, and each outcome's commit checks it still does (its fence);
// records are never deleted.
type recordKeys map[int64]string

// note keeps the keys of b's records that b queues writes for, and those
// b writes again of records kept before, once b has committed. Only the
// goroutine committing the pass's batches calls it, one batch at a time;
// the drain reads the keys after the last is in.
func (k *recordKeys) note(b *nhisync.Batch) {
	if len(b.Records) == 0 || (len(b.Outbox) == 0 && len(*k) == 0) {
		return
	}
	if *k == nil {
		*k = recordKeys{}
	}
	queued := make(map[int64]bool, len(b.Outbox))
	for _, w := range b.Outbox {
		queued[w.RecordID] = true
	}
	for _, r := range b.Records { // a later row of a record wins, as in the store
		if _, kept := (*k)[r.ID]; kept || queued[r.ID] {
			(*k)[r.ID] = r.Key
		}
	}
}

// linkHash recomputes a link's content hash from what the system asserts,
// so the record reads back as unchanged after nhisync's own write.
func linkHash(sys *nhisync.System, fp string, l *nhisync.Link) []byte {
	values := make([]nhisync.Value, len(sys.Fields))
	for i, m := range sys.Fields {
		if sys.Reads(m.Field) {
			values[i] = m.Type.Canonical(l.Asserted(m.Field))
		}
	}
	return contentHash(fp, values)
}

// outcomeDone, when set (tests), is called with each outcome commit's
// error once the drain can see it.
var outcomeDone func(error)
