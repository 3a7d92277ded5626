package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
)

// applyChunk is how many records one connector Apply call carries.
var applyChunk = 500

// Drain applies every ready write that is due, system by system. Human
// actions call it after they commit; the service calls it between passes.
//
// It claims the writes it sends (Store.ClaimOutbox), so replicas sharing a
// store drain in parallel and none sends a write another holds; it gives
// way to a pass running elsewhere (ECONFLICT: that pass sends the queued
// writes itself), and the outcome of each write commits only while its
// claim still holds it.
func (e *Engine) Drain(ctx context.Context) (*Summary, error) {
	sum := newSummary(e.cfg, false)
	now := e.clock.Now().UTC()
	if err := e.drain(ctx, sum, now, nil, &held{yield: leaseName, ttl: e.drainTTL()}); err != nil {
		return nil, err
	}
	return sum, e.drainHealth(ctx, sum, now)
}

// held is what a drain sends writes under: the lease it holds (a pass's
// fence; nil outside a pass) or the lease it gives way to, and how long a
// claim or a renewal lasts.
type held struct {
	fence *nhisync.Fence
	yield string
	ttl   time.Duration
	// inflight is the outcome commit under way (nil for none).
	inflight *outcomeCommit
	// leaseAt is when this drain last renewed and checked fence's lease.
	leaseAt time.Time
	// sum is what the drain counts into, and report is told of it: an
	// outcome's writes count once its commit is in (settle).
	sum    *Summary
	report func(Progress)
}

// outcomeCommit is the commit of one Apply call's outcome, chunk by chunk
// (what each loads included), run on a goroutine of its own while the
// drain sends the next chunk (or system): one at a time, in order, so the
// audit log reads as if they were made one after the other.
type outcomeCommit struct {
	done chan struct{}
	err  error
	// system and tally are what the outcome adds to the summary: tally
	// counts the writes of the chunks committed.
	system string
	tally  writeTally
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

// failed returns the error of an outcome commit that has failed, without
// waiting for one under way; one that is done is settled.
func (h *held) failed() error {
	if c := h.inflight; c != nil {
		select {
		case <-c.done:
			return h.settle()
		default:
		}
	}
	return nil
}

// wait waits for the outcome commit under way, if any, settles it and
// returns its error.
func (h *held) wait() error {
	if c := h.inflight; c != nil {
		<-c.done
		return h.settle()
	}
	return nil
}

// settle takes the finished outcome commit off h and returns its error
// (so it is returned once): the writes it settles count in h.sum only
// when their chunk committed, as no write counts as done that was not.
func (h *held) settle() error {
	c := h.inflight
	h.inflight = nil
	ss := h.sum.sys(c.system)
	ss.Written += c.tally.applied
	ss.Stale += c.tally.stale
	ss.Failed += c.tally.failed
	h.sum.WritesApplied += c.tally.applied
	h.sum.WritesStale += c.tally.stale
	h.sum.WritesFailed += c.tally.failed
	if ss.Error == "" && c.tally.failure != "" {
		ss.Error = fmt.Sprintf("writes failed (retried with backoff): %s", c.tally.failure)
	}
	if c.tally != (writeTally{}) {
		h.report(Progress{Stage: "write", System: c.system, Done: ss.Written})
	}
	return c.err
}

// also returns err, the failure of a drain's claim or send, together with
// the failure of the outcome commit still under way, if it fails too:
// neither is dropped, and a person is told both. Its code is the outcome
// commit's when err is a conflict: a drain that gives way to a pass
// elsewhere is no failure to its callers (they pass over ECONFLICT
// quietly), but an outcome that failed to commit is one.
func (h *held) also(err error) error {
	oerr := h.wait()
	if oerr == nil {
		return err
	}
	code := nhisync.ErrorCode(err)
	if code == nhisync.ECONFLICT {
		code = nhisync.ErrorCode(oerr)
	}
	return &nhisync.Error{
		Code:    code,
		Message: fmt.Sprintf("%s; and the outcome of the writes sent before failed to commit: %s", nhisync.ErrorMessage(err), nhisync.ErrorMessage(oerr)),
		Err:     errors.Join(err, oerr),
	}
}

// drainTTL is how long a drain's claims last unless renewed: the
// engine's lease period.
func (e *Engine) drainTTL() time.Duration {
	if e.leaseTTL > 0 {
		return e.leaseTTL
	}
	return humanLeaseTTL
}

// claimRows is how many queued writes one claim takes: a few chunks'
// worth, so a claim's writes go out before it needs renewing twice.
var claimRows = 4 * applyChunk

// drain applies due ready writes to every system not in skip, a claim at
// a time. A pass's drain claims under its lease (snd.fence), renewed and
// checked before each chunk of writes leaves and carried by the commit of
// their outcome with the claim, so a long drain keeps both and a process
// that lost either writes nothing more.
func (e *Engine) drain(ctx context.Context, sum *Summary, now time.Time, skip map[string]bool, snd *held) error {
	snd.sum, snd.report = sum, e.report
	for _, name := range e.cfg.SystemNames {
		conn := e.conns[name]
		sys := e.cfg.Systems[name]
		if conn == nil || !sys.Direction.Writes() || skip[name] {
			continue
		}
		whole := false
		if w, ok := conn.(nhisync.WholeApplier); ok && w.ApplyWhole() {
			whole = true // one Apply: the connector rewrites the system once
		}
		limit := claimRows
		if whole {
			limit = 0
		}
		for {
			claim, rows, err := e.claim(ctx, nhisync.ClaimRequest{System: name, Due: now, Limit: limit,
				Holder: e.holder, TTL: snd.ttl, Fence: snd.fence, Yield: snd.yield})
			if err != nil {
				return snd.also(err)
			}
			if len(rows) == 0 {
				break
			}
			if err := e.sendClaimed(ctx, sys, conn, claim, rows, whole, now, snd); err != nil {
				err = snd.also(err)
				_ = e.store.ReleaseClaim(context.WithoutCancel(ctx), claim)
				return err
			}
			if whole || len(rows) < limit {
				break
			}
		}
	}
	return snd.wait()
}

// claim claims queued writes as req says, at the clock's time. A drain
// that gives way to the pass lease tries again for a moment while another
// holds it: a person's action or another drain's health update holds it
// that briefly; a pass holds it longer, and the drain stops (ECONFLICT).
func (e *Engine) claim(ctx context.Context, req nhisync.ClaimRequest) (*nhisync.Claim, []*nhisync.OutboxWrite, error) {
	for tries := 0; ; tries++ {
		req.Now = e.clock.Now().UTC()
		c, rows, err := e.store.ClaimOutbox(ctx, req)
		if err == nil || req.Yield == "" || nhisync.ErrorCode(err) != nhisync.ECONFLICT || tries == claimRetries {
			return c, rows, err
		}
		t := time.NewTimer(claimPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// claimRetries bounds how often a yielding claim tries again.
const claimRetries = 10

// sendClaimed applies the claimed rows in chunks of up to applyChunk
// records (all at once for a whole applier).
func (e *Engine) sendClaimed(ctx context.Context, sys *nhisync.System, conn nhisync.Connector, claim *nhisync.Claim, rows []*nhisync.OutboxWrite, whole bool, now time.Time, snd *held) error {
	chunk := applyChunk
	if whole {
		chunk = len(rows)
	}
	for len(rows) > 0 {
		n := 0
		seen := make(map[string]bool, min(chunk, len(rows)))
		// Take rows for up to chunk records.
		for n < len(rows) && (len(seen) < chunk || seen[rowKey(rows[n])]) {
			seen[rowKey(rows[n])] = true
			n++
		}
		// The renewal covers every write the claim still holds to send,
		// not only this chunk's: the claim's period (claim.Until) is
		// then what each of them is held for.
		if err := e.stillHolds(ctx, snd, claim, rows); err != nil {
			return err
		}
		if err := e.applyRows(ctx, sys, conn, rows[:n], now, snd, claim); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func rowKey(o *nhisync.OutboxWrite) string {
	if o.Create {
		return fmt.Sprintf("create:%d", o.ID)
	}
	return o.ExternalID
}

// applyRows sends queued writes in one Apply call and commits the outcome
// (recordOutcome): confirmed writes advance shadows (echo suppression),
// stale ones are dropped for re-observation, failed ones retry with
// backoff.
func (e *Engine) applyRows(ctx context.Context, sys *nhisync.System, conn nhisync.Connector, rows []*nhisync.OutboxWrite, now time.Time, snd *held, claim *nhisync.Claim) error {
	var writes []nhisync.Write
	var groups [][]*nhisync.OutboxWrite
	index := map[string]int{}
	for _, o := range rows {
		if o.Create {
			w := nhisync.Write{Create: true}
			for _, m := range sys.Fields {
				if v, ok := o.Values[m.Field]; ok {
					w.Changes = append(w.Changes, nhisync.Change{Field: m.Field, New: v})
				}
			}
			writes = append(writes, w)
			groups = append(groups, []*nhisync.OutboxWrite{o})
			continue
		}
		i, ok := index[o.ExternalID]
		if !ok {
			i = len(writes)
			index[o.ExternalID] = i
			writes = append(writes, nhisync.Write{ID: o.ExternalID})
			groups = append(groups, nil)
		}
		writes[i].Changes = append(writes[i].Changes, nhisync.Change{Field: o.Field, Old: o.Old, New: o.New, Reason: o.Rule})
		groups[i] = append(groups[i], o)
	}
	results, err := conn.Apply(ctx, writes)
	if err == nil && len(results) != len(writes) {
		err = nhisync.Errorf(nhisync.EINTERNAL, "connector %s returned %d results for %d writes", sys.Connector, len(results), len(writes))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		results = make([]nhisync.WriteResult, len(writes))
		for i := range results {
			results[i] = nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
		}
	}
	return e.recordOutcome(ctx, sys, groups, results, now, snd, claim)
}

// recordOutcome commits the outcome of one Apply call's writes to sys:
// groups[i] are the queued rows results[i] answers, held by claim. The
// outcome commits a chunk of applyChunk records at a time, the chunks one
// after the other on a goroutine of its own (snd.inflight), which starts
// once the outcome of the Apply call before is in; the drain meanwhile
// claims and sends the next chunk (or system), and waits for the last
// outcome before it returns. So a whole-file system's outcome, many
// chunks, commits while the next system's writes go out, and outcomes
// still commit one at a time, in order. The writes count in the summary
// once their chunk's commit is in (held.settle).
//
// Each chunk's commit loads only what it moves (outcomeBatch): the links
// of sys the updates went to and the display keys of the writes' records
// (what their audit entries name). It loads them once the commit before
// is in: so it never writes back a link as that commit found it, and a
// store that commits on one connection reads them where they are about to
// be written (the SQLite store reads them on its writer, whose page cache
// its commits keep).
func (e *Engine) recordOutcome(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time, snd *held, claim *nhisync.Claim) error {
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
	if err := snd.wait(); err != nil {
		return err
	}
	c := &outcomeCommit{done: make(chan struct{}), system: sys.Name}
	snd.inflight = c
	fence := snd.fence
	done := outcomeDone
	go func() {
		defer func() {
			close(c.done)
			if done != nil {
				done(c.err)
			}
		}()
		for len(results) > 0 {
			n := min(applyChunk, len(results))
			if c.err = e.commitOutcome(ctx, sys, groups[:n], results[:n], now, fence, claim); c.err != nil {
				return
			}
			c.tally.add(groups[:n], results[:n])
			groups, results = groups[n:], results[n:]
		}
	}()
	return nil
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

// commitOutcome commits the outcome of a chunk of writes to sys
// (recordOutcome) with fence and claim.
func (e *Engine) commitOutcome(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time, fence *nhisync.Fence, claim *nhisync.Claim) error {
	b, err := e.outcomeBatch(ctx, sys, groups, results, now)
	if err != nil {
		return err
	}
	b.Fence, b.Claim = fence, claim
	if err := e.store.Commit(ctx, b); err != nil || e.writeObserver == nil {
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
// audit entry per write.
func (e *Engine) outcomeBatch(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, now time.Time) (*nhisync.Batch, error) {
	var recIDs []int64
	var extIDs []string
	seenRec := make(map[int64]bool, len(groups))
	seenExt := make(map[string]bool, len(groups))
	for _, g := range groups {
		for _, o := range g {
			if !seenRec[o.RecordID] {
				seenRec[o.RecordID] = true
				recIDs = append(recIDs, o.RecordID)
			}
			if !o.Create && !seenExt[o.ExternalID] {
				seenExt[o.ExternalID] = true
				extIDs = append(extIDs, o.ExternalID)
			}
		}
	}
	keys, err := e.store.RecordKeys(ctx, recIDs)
	if err != nil {
		return nil, err
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

// pause is how long a degraded system rests after its n-th failed pass:
// its poll interval doubling per failure, at most an hour.
func pause(sys *nhisync.System, n int) time.Duration {
	d := 30 * time.Second
	if sys != nil && sys.Poll > 0 {
		d = sys.Poll
	}
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// updateHealth marks systems degraded when their calls mostly failed this
// pass, pausing them with backoff, and recovers them when calls succeed;
// the commit carries fence.
func (e *Engine) updateHealth(ctx context.Context, sum *Summary, now time.Time, fence *nhisync.Fence) error {
	b, err := e.healthBatch(ctx, sum, now)
	if err != nil || b.Empty() {
		return err
	}
	b.Fence = fence
	return e.store.Commit(ctx, b)
}

// drainHealth is updateHealth after a drain outside a pass: it takes the
// pass lease for the one commit, as the system states are a pass's too,
// and leaves the states to the pass when one runs elsewhere.
func (e *Engine) drainHealth(ctx context.Context, sum *Summary, now time.Time) error {
	b, err := e.healthBatch(ctx, sum, now)
	if err != nil || b.Empty() {
		return err
	}
	ok, err := e.store.AcquireLease(ctx, leaseName, e.holder, e.clock.Now().UTC(), humanLeaseTTL)
	if err != nil || !ok {
		return err
	}
	defer func() { _ = e.store.ReleaseLease(context.WithoutCancel(ctx), leaseName, e.holder) }()
	if b.Fence, err = e.store.LeaseFence(ctx, leaseName, e.holder); err != nil {
		return err
	}
	return e.store.Commit(ctx, b)
}

// healthBatch is the batch of system states whose health this pass or
// drain changes.
func (e *Engine) healthBatch(ctx context.Context, sum *Summary, now time.Time) (*nhisync.Batch, error) {
	states, err := e.store.Systems(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*nhisync.SystemState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	b := &nhisync.Batch{}
	for _, name := range e.cfg.SystemNames {
		ss := sum.Systems[name]
		if ss == nil || ss.Paused || (ss.Mode == nhisync.ModeSkipped && !ss.ReadFailed && ss.Written+ss.Failed == 0) {
			continue
		}
		st := byName[name]
		if st == nil {
			st = &nhisync.SystemState{Name: name, Health: nhisync.HealthOK}
		}
		before := *st
		writesFailed := ss.Failed > 0 && ss.Failed*2 >= ss.Failed+ss.Written && ss.Failed+ss.Written >= 2
		switch {
		case ss.ReadFailed || writesFailed:
			st.Failures++
			st.PausedUntil = now.Add(pause(e.cfg.Systems[name], st.Failures))
			if ss.Error != "" {
				st.LastError = ss.Error
			}
			if st.Health != nhisync.HealthDegraded {
				st.Health = nhisync.HealthDegraded
				e.auditTo(b, &nhisync.AuditEntry{Action: nhisync.ActSystemDegraded, System: name, Reason: fmt.Sprintf("most calls failed: %s", st.LastError)}, now)
			}
		default:
			if st.Health == nhisync.HealthDegraded {
				e.auditTo(b, &nhisync.AuditEntry{Action: nhisync.ActSystemRecovered, System: name}, now)
			}
			st.Health, st.Failures, st.PausedUntil = nhisync.HealthOK, 0, time.Time{}
		}
		if byName[name] != nil && st.Health == before.Health && st.Failures == before.Failures && st.PausedUntil.Equal(before.PausedUntil) && st.LastError == before.LastError {
			continue // nothing to write
		}
		b.Systems = append(b.Systems, st)
	}
	return b, nil
}

// stillHolds renews the claim on rows (every write it still holds to
// send: claim.Until then holds for each), and the pass lease when the
// sender holds one, and fails (ECONFLICT) unless this engine still holds
// both (the lease at its fence's epoch): done before writes leave for a
// system. (Between this check and the system's write a window remains that
// no store can close; conditional writes, which carry the value last seen,
// keep a late write from overwriting a newer one.)
//
// Under a lease, both are renewed only once a third of their period has
// gone by since they last were, as a pass renews its lease between
// batches: until they expire no other process may take them (a drain
// elsewhere claims only unclaimed or expired writes and gives way to the
// lease, and people's actions, which could change a queued write, wait
// for the lease), so what was checked then still holds. A drain outside
// a pass renews and checks its claim before every chunk.
func (e *Engine) stillHolds(ctx context.Context, snd *held, claim *nhisync.Claim, rows []*nhisync.OutboxWrite) error {
	if err := snd.failed(); err != nil {
		return err // no more writes leave after an outcome failed to commit
	}
	now := e.clock.Now().UTC()
	if fence := snd.fence; fence != nil {
		if err := e.renewFence(ctx, snd, now); err != nil {
			return err
		}
		if claim.Until.Sub(now) > snd.ttl-snd.ttl/3 {
			return nil // claimed or renewed moments ago
		}
	}
	ids := make([]int64, len(rows))
	for i, o := range rows {
		ids[i] = o.ID
	}
	return e.store.RenewClaim(ctx, claim, ids, now, snd.ttl)
}

// renewFence renews the lease of snd's fence unless it was renewed less
// than a third of its period ago, and fails (ECONFLICT) unless this
// engine still holds it at the fence's epoch.
func (e *Engine) renewFence(ctx context.Context, snd *held, now time.Time) error {
	fence := snd.fence
	if now.Sub(snd.leaseAt) < snd.ttl/3 {
		return nil
	}
	lost := nhisync.Errorf(nhisync.ECONFLICT, "this process lost the %s lease to another (was it paused?); it sends no more writes; run it again", fence.Lease)
	ok, err := e.store.AcquireLease(ctx, fence.Lease, fence.Holder, now, snd.ttl)
	if err != nil {
		return err
	}
	if !ok {
		return lost
	}
	f, err := e.store.LeaseFence(ctx, fence.Lease, fence.Holder)
	if err != nil {
		return err
	}
	if f.Epoch != fence.Epoch {
		return lost
	}
	snd.leaseAt = now
	return nil
}

// outcomeDone, when set (tests), is called with each outcome commit's
// error once the drain can see it (failed returns it).
var outcomeDone func(error)

// awaitClaims waits, once this engine holds the pass lease, until no
// other process holds claims on queued writes: a drain elsewhere that
// claimed before the lease was taken finishes (or its claims expire)
// before the pass or action loads a record whose links it moves. The
// claims of a process known to be gone (killed on this host) go back to
// the queue at once. It gives up (ECONFLICT) when claims outlive the
// longest they were seen to last.
func (e *Engine) awaitClaims(ctx context.Context) error {
	polls := -1
	var since time.Time
	for {
		now := e.clock.Now().UTC()
		holders, err := e.store.OutboxClaims(ctx, now)
		if err != nil {
			return err
		}
		var last time.Time
		for h, until := range holders {
			switch {
			case h == e.holder:
			case e.deadHolder != nil && e.deadHolder(h):
				e.log.Warn("returning the queued writes of a process that is gone to the queue", "holder", h)
				if err := e.store.ReleaseClaims(ctx, h); err != nil {
					return err
				}
			case until.After(last):
				last = until
			}
		}
		if last.IsZero() {
			return nil
		}
		if polls < 0 {
			polls = int(last.Sub(now)/claimPoll) + 2
			since = now
			e.log.Info("waiting for queued writes another process claimed before this one took the pass lease", "until", last)
		}
		// A stalled process's claims can hold a pass for up to their
		// period: the progress line says what it waits for.
		e.report(Progress{Stage: "waiting for writes another process claimed (seconds)", Done: int(now.Sub(since).Seconds()), Total: int(last.Sub(since).Seconds()) + 1})
		if polls == 0 {
			return nhisync.Errorf(nhisync.ECONFLICT, "another process is sending queued writes of this store and holds them past their claim; try again when it is done")
		}
		polls--
		t := time.NewTimer(claimPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// claimPoll is how often awaitClaims looks again.
const claimPoll = 50 * time.Millisecond
