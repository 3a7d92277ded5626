package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nhisync/nhisync"
)

// applyChunk is how many records one connector Apply call carries.
const applyChunk = 500

// Drain applies every ready write that is due, system by system. Human
// actions call it after they commit; passes call it before reading and
// after deciding.
//
// It holds the pass lease while it writes, so it never races a pass, and
// stops (ECONFLICT) if it loses it.
func (e *Engine) Drain(ctx context.Context) (*Summary, error) {
	sum := newSummary(e.cfg, false)
	now := e.clock.Now().UTC()
	if err := e.acquireLease(ctx, leaseName, now, humanLeaseTTL, "a sync pass is running on this store; it sends the queued writes itself"); err != nil {
		return nil, err
	}
	defer func() { _ = e.store.ReleaseLease(context.WithoutCancel(ctx), leaseName, e.holder) }()
	fence, err := e.store.LeaseFence(ctx, leaseName, e.holder)
	if err != nil {
		return nil, err
	}
	if err := e.drain(ctx, sum, now, nil, &held{fence: fence, ttl: humanLeaseTTL}); err != nil {
		return nil, err
	}
	return sum, e.updateHealth(ctx, sum, now, fence)
}

// held is a lease the caller holds while it sends writes: its fence and
// how long a renewal lasts.
type held struct {
	fence *nhisync.Fence
	ttl   time.Duration
}

// drain applies due ready writes to every system not in skip. lease is
// the lease the caller holds: it is renewed and checked before each chunk
// of writes leaves and carried by the commit of their outcome, so a long
// drain keeps it and a process that lost it writes nothing more.
func (e *Engine) drain(ctx context.Context, sum *Summary, now time.Time, skip map[string]bool, lease *held) error {
	for _, name := range e.cfg.SystemNames {
		conn := e.conns[name]
		sys := e.cfg.Systems[name]
		if conn == nil || !sys.Direction.Writes() || skip[name] {
			continue
		}
		rows, err := e.store.OutboxWrites(ctx, name, nhisync.OutboxReady, now, 0)
		if err != nil {
			return err
		}
		chunk := applyChunk
		if w, ok := conn.(nhisync.WholeApplier); ok && w.ApplyWhole() {
			chunk = len(rows) // one Apply: the connector rewrites the system once
		}
		for len(rows) > 0 {
			n := 0
			seen := make(map[string]bool, min(chunk, len(rows)))
			// Take rows for up to chunk records.
			for n < len(rows) && (len(seen) < chunk || seen[rowKey(rows[n])]) {
				seen[rowKey(rows[n])] = true
				n++
			}
			if err := e.applyRows(ctx, sys, conn, rows[:n], sum, now, lease); err != nil {
				return err
			}
			rows = rows[n:]
			e.report(Progress{Stage: "write", System: name, Done: sum.sys(name).Written})
		}
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
// a chunk of applyChunk records at a time: confirmed writes advance shadows
// (echo suppression), stale ones are dropped for re-observation, failed
// ones retry with backoff.
func (e *Engine) applyRows(ctx context.Context, sys *nhisync.System, conn nhisync.Connector, rows []*nhisync.OutboxWrite, sum *Summary, now time.Time, lease *held) error {
	if err := e.stillHolds(ctx, lease); err != nil {
		return err
	}
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
	for len(results) > 0 {
		n := min(applyChunk, len(results))
		if err := e.recordOutcome(ctx, sys, groups[:n], results[:n], sum, now, lease); err != nil {
			return err
		}
		groups, results = groups[n:], results[n:]
	}
	return nil
}

// recordOutcome commits the outcome of writes sent to sys: groups[i] are
// the queued rows results[i] answers.
func (e *Engine) recordOutcome(ctx context.Context, sys *nhisync.System, groups [][]*nhisync.OutboxWrite, results []nhisync.WriteResult, sum *Summary, now time.Time, lease *held) error {
	// Load the records to move their links.
	var ids []int64
	seen := make(map[int64]bool, len(groups))
	for _, g := range groups {
		for _, o := range g {
			if !seen[o.RecordID] {
				seen[o.RecordID] = true
				ids = append(ids, o.RecordID)
			}
		}
	}
	recs, err := e.store.LoadRecords(ctx, ids)
	if err != nil {
		return err
	}
	byID := make(map[int64]*nhisync.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	b := &nhisync.Batch{}
	fp := mappingFingerprint(sys)
	touched := map[*nhisync.Link]bool{}
	// stale links keep no hash, so the next pass reads the record whatever
	// it holds then, even the content it held when first linked.
	stale := map[*nhisync.Link]bool{}
	ss := sum.sys(sys.Name)
	for i, res := range results {
		for _, o := range groups[i] {
			rec := byID[o.RecordID]
			ev := &nhisync.AuditEntry{Actor: nhisync.Actor, Kind: o.Kind, RecordID: o.RecordID, Record: o.Record, Field: o.Field, System: sys.Name, Old: o.Old, New: o.New}
			var link *nhisync.Link
			if rec != nil {
				ev.Record = rec.Key
				if !o.Create {
					for _, l := range rec.Links {
						if l.System == sys.Name && l.ExternalID == o.ExternalID {
							link = l
						}
					}
				}
			}
			switch res.Status {
			case nhisync.WriteApplied:
				b.OutboxDone = append(b.OutboxDone, o.ID)
				ss.Written++
				sum.WritesApplied++
				if o.Create {
					if rec == nil || res.ID == "" {
						continue
					}
					link = &nhisync.Link{System: sys.Name, ExternalID: res.ID, RecordID: rec.ID, Status: nhisync.LinkLive, FirstSeen: now, SeenAt: now}
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
					touched[link] = true
				}
			case nhisync.WriteStale, nhisync.WriteMissing:
				b.OutboxDone = append(b.OutboxDone, o.ID)
				ss.Stale++
				sum.WritesStale++
				ev.Action = nhisync.ActWriteStale
				ev.Reason = "the record changed in " + sys.Name + " since it was read; dropped for re-observation"
				if res.Status == nhisync.WriteMissing {
					ev.Reason = "the record is gone from " + sys.Name
				}
				if link != nil {
					link.Hash = nil // re-observe it whatever its content
					touched[link] = true
					stale[link] = true
				}
			default:
				o.Attempts++
				o.NextAt = now.Add(backoff(o.Attempts))
				o.LastError = nhisync.ErrorMessage(res.Err)
				b.Outbox = append(b.Outbox, o)
				ss.Failed++
				sum.WritesFailed++
				if ss.Error == "" {
					ss.Error = fmt.Sprintf("writes failed (retried with backoff): %s", o.LastError)
				}
				ev.Action = nhisync.ActWriteFailed
				ev.Reason = fmt.Sprintf("attempt %d: %s; retry after %s", o.Attempts, o.LastError, o.NextAt.Format(time.RFC3339))
			}
			e.auditTo(b, ev, now)
		}
	}
	for l := range touched {
		if !stale[l] && (l.Hash != nil || l.FirstSeen.Equal(now)) {
			l.Hash = linkHash(sys, fp, l)
		}
		b.Links = append(b.Links, l)
	}
	if lease != nil {
		b.Fence = lease.fence
	}
	if err := e.store.Commit(ctx, b); err != nil {
		return err
	}
	if e.writeObserver != nil {
		at := e.clock.Now().UTC()
		for i, res := range results {
			for _, o := range groups[i] {
				e.writeObserver(o, res.Status, at)
			}
		}
	}
	return nil
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
// pass, pausing them with backoff, and recovers them when calls succeed.
func (e *Engine) updateHealth(ctx context.Context, sum *Summary, now time.Time, fence *nhisync.Fence) error {
	states, err := e.store.Systems(ctx)
	if err != nil {
		return err
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
		b.Systems = append(b.Systems, st)
	}
	if b.Empty() {
		return nil
	}
	b.Fence = fence
	return e.store.Commit(ctx, b)
}

// stillHolds renews the lease and fails (ECONFLICT) unless this engine
// still holds it at its fence's epoch: done before writes leave for a
// system. (Between this check and the system's write a window remains that
// no store can close; conditional writes, which carry the value last seen,
// keep a late write from overwriting a newer one.)
func (e *Engine) stillHolds(ctx context.Context, lease *held) error {
	if lease == nil {
		return nil
	}
	fence := lease.fence
	lost := nhisync.Errorf(nhisync.ECONFLICT, "this process lost the %s lease to another (was it paused?); it sends no more writes; run it again", fence.Lease)
	ok, err := e.store.AcquireLease(ctx, fence.Lease, fence.Holder, e.clock.Now(), lease.ttl)
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
	return nil
}
