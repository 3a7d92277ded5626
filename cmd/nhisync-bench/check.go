package main

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"golang.org/x/sync/errgroup"
)

// heldBack are the reasons engine.Drift may give for a system holding
// another value than golden that SPEC §3 rule 8 excuses: held,
// quarantined, conflicted, or reported, and what is never written
// (read-only mappings, match fields naming a record in a system without
// an id column). Failing, queued and behind are not excused: after a
// pass with no outside change they mean it did not converge.
var heldBack = map[string]bool{
	engine.DriftHeld: true, engine.DriftRejected: true, engine.DriftGuard: true,
	engine.DriftQuarantined: true, engine.DriftConflicted: true, engine.DriftReported: true,
	engine.DriftReadOnly: true, engine.DriftIdentifies: true,
}

// checkResult is what the convergence check found: the fields that
// differ from golden and are excused, by engine.Drift's reason, and
// those that are not, with a few of them.
type checkResult struct {
	HeldBack map[string]int `json:"held_back"`
	Bad      int            `json:"bad"`
	Samples  []string       `json:"samples,omitempty"`
}

func (c *checkResult) fail(format string, args ...any) {
	c.Bad++
	if len(c.Samples) < 5 {
		c.Samples = append(c.Samples, fmt.Sprintf(format, args...))
	}
}

// String says what is out of step, or "" when nothing is.
func (c *checkResult) String() string {
	if c.Bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d fields differ from golden without a reason to (e.g. %s)", c.Bad, strings.Join(c.Samples, "; "))
}

// convergence reads every system and compares each linked record's
// written fields with the golden record. A field may differ only where
// engine.Drift lists it, for a reason in heldBack; a field that differs
// and is not listed, or is listed as failing, queued or behind, is out of
// step. Drift items of these last reasons are out of step too, read or
// not.
//
// To stay small at a million records it keeps, per live link, only the
// record's id and a hash of the golden values the system should hold; a
// system record whose values hash otherwise is compared field by field
// against its golden record, loaded again.
func convergence(ctx context.Context, cfg *nhisync.Config, store nhisync.Store) (*checkResult, error) {
	conns, err := nhisync.OpenConnectors(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer nhisync.CloseConnectors(conns)
	res := &checkResult{HeldBack: map[string]int{}}

	// engine.Drift's scan of the store and the golden hashes' scan run
	// side by side, then every system is read at once: each is a pass over
	// a million records on one core, and a 1M run spent two minutes here
	// doing them in turn.
	var items []engine.DriftItem
	want := map[string]map[string]linked{}
	for _, name := range cfg.SystemNames {
		want[name] = map[string]linked{}
	}
	seed := maphash.MakeSeed()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		items, err = engine.New(cfg, store, conns).Drift(gctx)
		return err
	})
	g.Go(func() error {
		var h goldenHash
		return store.ScanRecords(gctx, "", func(r *nhisync.Record) error {
			for _, l := range r.Links {
				if sys := cfg.Systems[l.System]; l.Status == nhisync.LinkLive && sys != nil {
					want[l.System][l.ExternalID] = linked{r.ID, h.sum(seed, sys, func(_ int, m *nhisync.Mapping) nhisync.Value { return r.Value(m.Field) })}
				}
			}
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	listed := make(map[at]string, len(items))
	for _, it := range items {
		listed[at{it.RecordID, it.System, it.Field}] = it.Reason
		if !heldBack[it.Reason] {
			res.fail("%s %s %s: engine lists it %s (%s)", it.System, it.Record, it.Field, it.Reason, it.Detail)
		}
	}

	// Records whose values hash otherwise than golden, to compare field by
	// field, each system's found by a goroutine of its own.
	diffs := make([][]differing, len(cfg.SystemNames))
	g, gctx = errgroup.WithContext(ctx)
	for i, name := range cfg.SystemNames {
		sys, want := cfg.Systems[name], want[name]
		g.Go(func() error {
			var h goldenHash
			err := conns[name].Snapshot(gctx, func(obs nhisync.Observation) error {
				l, ok := want[obs.ID]
				if !ok {
					return nil // unmatched or disputed: linked to no record
				}
				got := h.sum(seed, sys, func(i int, _ *nhisync.Mapping) nhisync.Value {
					if i < len(obs.Values) {
						return obs.Values[i]
					}
					return nhisync.Value{}
				})
				if got != l.sum {
					diffs[i] = append(diffs[i], differing{name, strings.Clone(obs.ID), l.record, slices.Clone(obs.Values)})
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	diff := slices.Concat(diffs...)
	for start := 0; start < len(diff); start += 1000 {
		chunk := diff[start:min(start+1000, len(diff))]
		ids := make([]int64, len(chunk))
		for i, d := range chunk {
			ids[i] = d.record
		}
		recs, err := store.LoadRecords(ctx, ids)
		if err != nil {
			return nil, err
		}
		byID := make(map[int64]*nhisync.Record, len(recs))
		for _, r := range recs {
			byID[r.ID] = r
		}
		for _, d := range chunk {
			rec, sys := byID[d.record], cfg.Systems[d.system]
			if rec == nil {
				res.fail("%s %s: its golden record %d is gone", d.system, d.id, d.record)
				continue
			}
			for i, m := range sys.Fields {
				if i >= len(d.values) || !sys.Writes(m.Field) {
					continue
				}
				got, golden := m.Type.Canonical(d.values[i]), m.Type.Canonical(rec.Value(m.Field))
				if got.Equal(golden) {
					continue
				}
				switch reason, ok := listed[at{rec.ID, d.system, m.Field}]; {
				case !ok:
					res.fail("%s %s %s = %v, golden %v, and engine.Drift does not list it", d.system, d.id, m.Field, got, golden)
				case heldBack[reason]:
					res.HeldBack[reason]++
				}
			}
		}
	}
	return res, nil
}

// at is a field of a record in a system (engine.Drift's items by place).
type at struct {
	record        int64
	system, field string
}

// linked is what a system's record should hold: the golden record its
// live link names, and the hash of the golden values of the fields
// nhisync writes there.
type linked struct {
	record int64
	sum    uint64
}

// differing is a system's record whose values hash otherwise than golden.
type differing struct {
	system, id string
	record     int64
	values     []nhisync.Value
}

// goldenHash hashes the values of the fields nhisync writes in a system,
// canonical, in the system's field order; one per goroutine (its buffer).
type goldenHash struct{ buf []byte }

func (h *goldenHash) sum(seed maphash.Seed, sys *nhisync.System, value func(i int, m *nhisync.Mapping) nhisync.Value) uint64 {
	h.buf = h.buf[:0]
	for i := range sys.Fields {
		m := sys.Fields[i]
		if sys.Writes(m.Field) {
			h.buf = m.Type.Canonical(value(i, m)).AppendBinary(h.buf)
		}
	}
	return maphash.Bytes(seed, h.buf)
}

// heldBackString lists held-back counts by reason, for the text output.
func heldBackString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for r, n := range m {
		parts = append(parts, r+" "+strconv.Itoa(n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
