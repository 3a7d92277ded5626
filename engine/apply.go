package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
)

// applyChunk is how many records one connector Apply call carries.
var applyChunk = 500

// outcomeChunk is how many records' outcomes one commit carries: a
// whole-file system's one Apply call commits in chunks of it, and the
// outcomes of Apply calls of one claim that wait behind a commit join up
// to it (gather). Each commit syncs the store and signs its checkpoint,
// one at a time on the drain's one committing goroutine, which a first
// pass's drain at 1M NHIs (~100k writes) keeps busy for most of its
// length; four Apply chunks a commit take up to a quarter of the syncs
// and signatures. A commit that fails sends its chunk's writes back to
// the queue, to be sent again (stale-checked) with backoff.
var outcomeChunk = 4 * applyChunk

// Drain applies every ready write that is due, two systems at once. Human
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
// claim or a renewal lasts; and what its senders and the goroutine that
// commits their outcomes share.
type held struct {
	fence *nhisync.Fence
	yield string
	ttl   time.Duration
	// keys are the display keys of records a pass committed, which its
	// outcomes need not read (outcomeBatch); nil outside a pass.
	keys recordKeys
	// sum is what the drain counts into, and report is told of it: an
	// outcome's writes count once its commit is in (settle). Only the
	// goroutine that commits outcomes writes it while the drain runs.
	sum    *Summary
	report func(Progress)

	// leaseAt is when this drain last renewed and checked fence's lease
	// (leaseMu: its senders take turns); a pass's drain starts with when
	// the pass last did, so its first chunk does not wait on the writer
	// (behind another system's claim) to renew a lease renewed moments ago.
	leaseMu sync.Mutex
	leaseAt time.Time

	mu sync.Mutex
	// holds are the drain's claims that may still hold writes.
	holds []*claimHold
	// outErr is the first outcome that failed to commit; halt is set once
	// a sender failed. Either stops every sender before its next chunk.
	outErr error
	halt   bool
}

// errHalted stops a sender because the drain stopped: an outcome failed
// to commit or another sender failed (the drain returns their errors).
var errHalted = errors.New("the drain stopped")

// outcomeFailed returns the first outcome commit's failure, if any.
func (h *held) outcomeFailed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.outErr
}

// halted reports whether senders must send no more.
func (h *held) halted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.halt || h.outErr != nil
}

// haltSends stops the other senders before their next chunk.
func (h *held) haltSends() {
	h.mu.Lock()
	h.halt = true
	h.mu.Unlock()
}

// result returns the drain's error once every sender is done and every
// outcome in: the senders' failures (of claims or sends, in config order)
// together with the failure of an outcome commit, if one failed too:
// none is dropped, and a person is told each. Its code is the first that
// is not a conflict: a drain that gives way to a pass elsewhere is no
// failure to its callers (they pass over ECONFLICT quietly), but an
// outcome that failed to commit, or a system that failed, is one.
func (h *held) result(errs []error) error {
	oerr := h.outcomeFailed()
	if oerr != nil {
		if len(errs) == 0 {
			return oerr
		}
		errs = append(errs, oerr)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	code := nhisync.ErrorCode(errs[0])
	msgs := make([]string, len(errs))
	for i, err := range errs {
		if code == nhisync.ECONFLICT {
			code = nhisync.ErrorCode(err)
		}
		msgs[i] = nhisync.ErrorMessage(err)
	}
	msg := strings.Join(msgs, "; ")
	if oerr != nil {
		msg = strings.Join(msgs[:len(msgs)-1], "; ") + "; and the outcome of the writes sent before failed to commit: " + msgs[len(msgs)-1]
	}
	return &nhisync.Error{Code: code, Message: msg, Err: errors.Join(errs...)}
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

// sendersAtOnce is how many systems a drain sends writes to at once: on
// two cores, one system's sends beside another's (a CSV rewrite beside
// SQL updates) and the outcome commits of the ones before.
var sendersAtOnce = 2

// sender is the sending of a drain's writes to one system.
type sender struct {
	sys   *nhisync.System
	conn  nhisync.Connector
	whole bool
	// queue carries the outcomes of its Apply calls to commitOutcomes.
	queue chan *outcomeJob
	err   error
	// claimed is closed once the sender's first claim is in, or it
	// stopped before one; after is the claimed of the sender before it
	// (nil for the first), whose first claim it waits for before its own.
	claimed     chan struct{}
	claimedOnce sync.Once
	after       <-chan struct{}
}

// firstClaimed lets the sender after s claim.
func (s *sender) firstClaimed() {
	s.claimedOnce.Do(func() { close(s.claimed) })
}

// drain applies due ready writes to every system not in skip, a claim at
// a time, up to sendersAtOnce systems at once (started in config order),
// while one goroutine commits their outcomes (commitOutcomes), one at a
// time: each system's in the order its writes went out, the systems' in
// config order. A pass's drain claims under its lease (snd.fence),
// renewed and checked before each chunk of writes leaves and carried by
// the commit of their outcome with the claim, so a long drain keeps both
// and a process that lost either writes nothing more. Once a sender fails
// or an outcome fails to commit no more writes leave, but the outcomes
// of the writes already sent still commit, each in its own transaction
// (the drain fails with the first failure); the drain returns when every
// outcome of the writes sent was committed or failed to, and returns the
// writes its claims still hold to the queue.
func (e *Engine) drain(ctx context.Context, sum *Summary, now time.Time, skip map[string]bool, snd *held) error {
	snd.sum, snd.report = sum, e.report
	var senders []*sender
	for _, name := range e.cfg.SystemNames {
		conn := e.conns[name]
		sys := e.cfg.Systems[name]
		if conn == nil || !sys.Direction.Writes() || skip[name] {
			continue
		}
		s := &sender{sys: sys, conn: conn, queue: make(chan *outcomeJob, claimRows/max(applyChunk, 1)+1), claimed: make(chan struct{})}
		if n := len(senders); n > 0 {
			s.after = senders[n-1].claimed
		}
		if w, ok := conn.(nhisync.WholeApplier); ok && w.ApplyWhole() {
			s.whole = true // one Apply: the connector rewrites the system once
		}
		senders = append(senders, s)
	}
	if len(senders) == 0 {
		return nil
	}
	queues := make([]chan *outcomeJob, len(senders))
	for i, s := range senders {
		queues[i] = s.queue
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		e.commitOutcomes(ctx, snd, queues)
	}()
	// Senders take slots in config order, and commitOutcomes waits on the
	// first system whose queue is open, whose sender has a slot: no
	// sender waits on a queue nobody takes from.
	slots := make(chan struct{}, max(sendersAtOnce, 1))
	var wg sync.WaitGroup
	for _, s := range senders {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			defer close(s.queue)
			s.err = e.send(ctx, s, now, snd)
		})
	}
	wg.Wait()
	<-committed
	snd.releaseOpen(ctx, e.store)
	var errs []error
	for _, s := range senders {
		if s.err != nil {
			errs = append(errs, s.err)
		}
	}
	return snd.result(errs)
}

// applyCall sends writes to sys in one Apply call. A panic of the
// connector fails the call, as an error would: its writes are retried
// with backoff, the system fails loudly, by name, and the process (a
// serve's drain) goes on. The panic's value, which may quote a DSN or a
// token the connector holds, is scrubbed of its credentials in what is
// said and logged with its stack.
func (e *Engine) applyCall(ctx context.Context, sys *nhisync.System, conn nhisync.Connector, writes []nhisync.Write) (results []nhisync.WriteResult, err error) {
	defer func() {
		if v := recover(); v != nil {
			results, err = nil, e.sendPanic("writing to "+sys.Name, v, sys, conn)
		}
	}()
	return conn.Apply(ctx, writes)
}

// sendPanic is the error of a panic recovered while sending writes to sys
// through conn: logged with its stack, and said and logged with its value
// scrubbed of conn's credentials.
func (e *Engine) sendPanic(what string, v any, sys *nhisync.System, conn nhisync.Connector) error {
	perr := recovered(what, v)
	scrub := scrubber(conn)
	e.logPanic(perr, scrub, "system", sys.Name)
	return &nhisync.Error{Code: nhisync.EINTERNAL, Message: scrub(perr.Error())}
}

// send claims and sends s's due writes, a claim at a time, until none is
// left, it fails (and halts the drain's other senders) or the drain
// halts. A panic on its goroutine (but the connector's Apply, applyCall's)
// fails the system's sends, by name, and is logged with its stack; as
// connector code runs there too (a write's error's Error method), its
// value is said and logged scrubbed, as applyCall's.
func (e *Engine) send(ctx context.Context, s *sender, now time.Time, snd *held) (err error) {
	defer func() {
		s.firstClaimed()
		if v := recover(); v != nil {
			err = e.sendPanic("sending writes to "+s.sys.Name, v, s.sys, s.conn)
		}
		if errors.Is(err, errHalted) {
			err = nil
		} else if err != nil {
			snd.haltSends()
		}
	}()
	limit := claimRows
	if s.whole {
		limit = 0
	}
	// The systems' first claims go in config order, the order their
	// outcomes commit in: the first system's writes go out, and their
	// outcomes commit, while the next one's claim runs (a whole-file
	// system's, of all its writes, holds the writer longest), instead of
	// waiting behind it.
	if s.after != nil {
		select {
		case <-s.after:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		// A halted drain's sender notices before the claim's first chunk
		// leaves (stillHolds), as a claim's failure is said beside a
		// failed outcome's.
		claim, rows, err := e.claim(ctx, nhisync.ClaimRequest{System: s.sys.Name, Due: now, Limit: limit,
			Holder: e.holder, TTL: snd.ttl, Fence: snd.fence, Yield: snd.yield})
		s.firstClaimed()
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		if err := e.sendClaimed(ctx, s, snd.hold(claim), rows, now, snd); err != nil {
			return err
		}
		if s.whole || len(rows) < limit {
			return nil
		}
	}
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
func (e *Engine) sendClaimed(ctx context.Context, s *sender, hold *claimHold, rows []*nhisync.OutboxWrite, now time.Time, snd *held) error {
	chunk := applyChunk
	if s.whole {
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
		// The renewal covers every write the claim still holds, not
		// only this chunk's: the claim's period (claim.Until) is then
		// what each of them is held for.
		if err := e.stillHolds(ctx, snd, hold); err != nil {
			return err
		}
		if err := e.applyRows(ctx, s, rows[:n], now, hold); err != nil {
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
func (e *Engine) applyRows(ctx context.Context, s *sender, rows []*nhisync.OutboxWrite, now time.Time, hold *claimHold) error {
	sys, conn := s.sys, s.conn
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
	results, err := e.applyCall(ctx, sys, conn, writes)
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
	e.recordOutcome(sys, groups, results, now, hold, s.queue)
	return nil
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

// stillHolds renews the claim of hold (every write it still holds:
// claim.Until then holds for each), and the pass lease when the
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
func (e *Engine) stillHolds(ctx context.Context, snd *held, hold *claimHold) error {
	if snd.halted() {
		return errHalted // no more writes leave after an outcome failed to commit
	}
	now := e.clock.Now().UTC()
	if fence := snd.fence; fence != nil {
		if err := e.renewFence(ctx, snd, now); err != nil {
			return err
		}
	}
	hold.mu.Lock()
	defer hold.mu.Unlock()
	if snd.fence != nil && hold.claim.Until.Sub(now) > snd.ttl-snd.ttl/3 {
		return nil // claimed or renewed moments ago
	}
	return hold.renew(ctx, e.store, now, snd.ttl)
}

// renewFence renews the lease of snd's fence unless it was renewed less
// than a third of its period ago, and fails (ECONFLICT) unless this
// engine still holds it at the fence's epoch.
func (e *Engine) renewFence(ctx context.Context, snd *held, now time.Time) error {
	fence := snd.fence
	snd.leaseMu.Lock()
	defer snd.leaseMu.Unlock()
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
