package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
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
func convergence(ctx context.Context, cfg *nhisync.Config, store nhisync.Store) (*checkResult, error) {
	conns, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	res := &checkResult{HeldBack: map[string]int{}}
	items, err := engine.New(cfg, store, conns).Drift(ctx)
	if err != nil {
		return nil, err
	}
	type at struct {
		record        int64
		system, field string
	}
	listed := make(map[at]string, len(items))
	for _, it := range items {
		listed[at{it.RecordID, it.System, it.Field}] = it.Reason
		if !heldBack[it.Reason] {
			res.fail("%s %s %s: engine lists it %s (%s)", it.System, it.Record, it.Field, it.Reason, it.Detail)
		}
	}

	// want[system][external id] = the golden record its live link names.
	want := map[string]map[string]*nhisync.Record{}
	for _, name := range cfg.SystemNames {
		want[name] = map[string]*nhisync.Record{}
	}
	err = store.ScanRecords(ctx, "", func(r *nhisync.Record) error {
		for _, l := range r.Links {
			if l.Status == nhisync.LinkLive && want[l.System] != nil {
				want[l.System][l.ExternalID] = r
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		err := conns[name].Snapshot(ctx, func(obs nhisync.Observation) error {
			rec := want[name][obs.ID]
			if rec == nil {
				return nil // unmatched or disputed: linked to no record
			}
			for i, m := range sys.Fields {
				if i >= len(obs.Values) || !sys.Writes(m.Field) {
					continue
				}
				got, golden := m.Type.Canonical(obs.Values[i]), m.Type.Canonical(rec.Value(m.Field))
				if got.Equal(golden) {
					continue
				}
				switch reason, ok := listed[at{rec.ID, name, m.Field}]; {
				case !ok:
					res.fail("%s %s %s = %v, golden %v, and engine.Drift does not list it", name, obs.ID, m.Field, got, golden)
				case heldBack[reason]:
					res.HeldBack[reason]++
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return res, nil
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
