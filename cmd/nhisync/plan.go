package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	"github.com/nhisync/nhisync/engine"
)

func planCmd(g *globals) *cobra.Command {
	var rules string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Dry run: what a sync would accept, refuse, quarantine, open, hold and write",
		Long: `Run the very same pass as sync, reading every system, and show what it would
decide and write, per system, without writing anything anywhere.

With --rules FILE, try a proposed config instead: recompute every golden value
from the assertions nhisync already holds, under the proposed rules, and list
the values that would change. No system is read.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rules != "" {
				return whatIf(cmd, g, rules)
			}
			return g.with(cmd.Context(), true, func(a *app) error {
				sum, err := a.engine.Sync(cmd.Context(), engine.PassOptions{DryRun: true})
				a.progress.done()
				if err != nil {
					return err
				}
				a.engine.RedactSummary(sum)
				drift, err := driftAfter(cmd.Context(), a, sum, true)
				if err != nil {
					return err
				}
				failure := passError(a.cfg, sum)
				if a.out.json {
					pj := planJSON{Summary: sum, Decisions: decisions(sum.Events), Writes: planWrites(sum.Writes), Drift: drift}
					if failure != nil {
						pj.Error = &errorJSON{Code: nhisync.ErrorCode(failure), Message: nhisync.ErrorMessage(failure)}
					}
					if err := a.out.JSON(pj); err != nil {
						return err
					}
				} else {
					printPlan(a.out, a.cfg, sum, drift)
				}
				if failure != nil {
					return &reportedError{failure}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&rules, "rules", "", "try a proposed config file against current assertions (what-if)")
	return cmd
}

type planJSON struct {
	Summary   *engine.Summary `json:"summary"`
	Decisions []decisionJSON  `json:"decisions"`
	Writes    []writeJSON     `json:"writes"`
	// Drift counts the fields left differing from golden after the plan.
	Drift engine.DriftSummary `json:"drift"`
	// Error is set when a system could not be read (exit 1).
	Error *errorJSON `json:"error,omitempty"`
}

type decisionJSON struct {
	Action string        `json:"action"`
	Kind   string        `json:"kind,omitempty"`
	Record string        `json:"record,omitempty"`
	Field  string        `json:"field,omitempty"`
	System string        `json:"system,omitempty"`
	Old    nhisync.Value `json:"old"`
	New    nhisync.Value `json:"new"`
	Reason string        `json:"reason,omitempty"`
}

type writeJSON struct {
	System     string        `json:"system"`
	Kind       string        `json:"kind"`
	Record     string        `json:"record"`
	ExternalID string        `json:"external_id,omitempty"`
	Field      string        `json:"field,omitempty"`
	Old        nhisync.Value `json:"old"`
	New        nhisync.Value `json:"new"`
	Create     bool          `json:"create,omitempty"`
	Status     string        `json:"status"`
}

func decisions(events []*nhisync.AuditEntry) []decisionJSON {
	out := []decisionJSON{}
	for _, ev := range events {
		if _, ok := planActions[ev.Action]; !ok {
			continue
		}
		out = append(out, decisionJSON{Action: ev.Action, Kind: ev.Kind, Record: ev.Record, Field: ev.Field, System: ev.System, Old: ev.Old, New: ev.New, Reason: ev.Reason})
	}
	return out
}

func planWrites(ws []*nhisync.OutboxWrite) []writeJSON {
	out := []writeJSON{}
	for _, w := range ws {
		out = append(out, writeJSON{System: w.System, Kind: w.Kind, Record: w.Record, ExternalID: w.ExternalID, Field: w.Field, Old: w.Old, New: w.New, Create: w.Create, Status: w.Status})
	}
	return out
}

// printPlan prints a dry run: the systems it could not read first, then
// per system the decisions taken on its proposals and the writes it would
// receive, then what stays differing from golden.
func printPlan(o *out, cfg *nhisync.Config, sum *engine.Summary, drift engine.DriftSummary) {
	printFailures(o, cfg, sum)
	some := changes(o, sum).print(o, cfg, 0)
	if some {
		o.Printf("\n%d decisions, %d writes (%d held for approval). Nothing was written; run `nhisync sync` to apply.\n",
			len(decisions(sum.Events)), sum.WritesPlanned, sum.WritesHeld)
	} else if drift.Fields == 0 && len(sum.FailedSystems(cfg)) == 0 {
		o.Printf("Nothing to do.\n")
	} else {
		o.Printf("Nothing to write.\n")
	}
	printDriftLine(o, cfg, sum, drift, some)
	printOpenStrays(o, cfg, sum)
}

func quoteValue(v nhisync.Value) string {
	if v.IsZero() {
		return "∅"
	}
	if _, bad := v.MalformedReason(); bad {
		return v.String()
	}
	if v.IsSet() {
		return "[" + strings.Join(v.Elems(), ", ") + "]"
	}
	return fmt.Sprintf("%q", v.Text())
}

// whatIf tries a proposed config against the stored assertions.
func whatIf(cmd *cobra.Command, g *globals, rulesFile string) error {
	a, err := g.open(cmd.Context(), false)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := os.Stat(rulesFile); errors.Is(err, fs.ErrNotExist) {
		// config.Load's hint (`nhisync init`, -c FILE) is about the
		// workspace's config, not a proposed one.
		return nhisync.Errorf(nhisync.EINVALID, "--rules %s: no such file; copy the config there and change its rules", rulesFile)
	}
	proposed, err := config.Load(rulesFile)
	if err != nil {
		return err
	}
	changes, n, err := a.engine.WhatIf(cmd.Context(), proposed)
	if err != nil {
		return err
	}
	if a.out.json {
		if changes == nil {
			changes = []engine.Change{}
		}
		return a.out.JSON(map[string]any{"records": n, "changes": changes})
	}
	if len(changes) == 0 {
		a.out.Printf("Under %s, all %d golden records keep every value.\n", rulesFile, n)
		return nil
	}
	var rows [][]string
	for _, c := range changes {
		rows = append(rows, []string{c.Kind + "/" + c.Record, c.Field, quoteValue(c.Current), quoteValue(c.Proposed.Value), c.Proposed.Source, c.Proposed.Rule, strings.Join(c.Writes, ",")})
	}
	a.out.Table([]string{"record", "field", "now", "would be", "from", "rule", "writes"}, rows)
	a.out.Printf("\n%d values of %d records would change under %s. Nothing was written.\n", len(changes), n, rulesFile)
	return nil
}
