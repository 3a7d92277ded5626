package main

import (
	"fmt"
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
				if a.out.json {
					return a.out.JSON(planJSON{Summary: sum, Decisions: decisions(sum.Events), Writes: planWrites(sum.Writes)})
				}
				printPlan(a.out, a.cfg, sum)
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

// planActions are the decisions plan lists (the others are bookkeeping).
var planActions = map[string]string{
	nhisync.ActRecordCreated:     "create",
	nhisync.ActAccepted:          "accept",
	nhisync.ActRefused:           "refuse",
	nhisync.ActMerged:            "merge",
	nhisync.ActQuarantined:       "quarantine",
	nhisync.ActConflictOpened:    "open conflict",
	nhisync.ActConflictUpdated:   "update conflict",
	nhisync.ActApprovalRequested: "hold for approval",
	nhisync.ActRecordUnmatched:   "unmatched",
	nhisync.ActRecordDisputed:    "disputed",
	nhisync.ActRecordRetired:     "retire",
	nhisync.ActRecordVanished:    "vanished",
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

// printPlan prints a dry run, per system: decisions taken on its
// proposals, then the writes it would receive.
func printPlan(o *out, cfg *nhisync.Config, sum *engine.Summary) {
	w := o.w
	bySystem := map[string][]string{}
	for _, ev := range sum.Events {
		word, ok := planActions[ev.Action]
		if !ok {
			continue
		}
		sys := ev.System
		if sys == "" {
			sys = "(nhisync)"
		}
		line := fmt.Sprintf("%-17s %s/%s", word, ev.Kind, ev.Record)
		if ev.Field != "" {
			line += " " + ev.Field
		}
		if !ev.New.IsZero() || !ev.Old.IsZero() {
			line += fmt.Sprintf(": %s → %s", quoteValue(ev.Old), quoteValue(ev.New))
		}
		if ev.Reason != "" {
			line += "  " + o.dim("("+ev.Reason+")")
		}
		bySystem[sys] = append(bySystem[sys], line)
	}
	writes := map[string][]string{}
	for _, wr := range sum.Writes {
		line := ""
		switch {
		case wr.Create:
			line = fmt.Sprintf("%-17s %s/%s", "create record", wr.Kind, wr.Record)
		default:
			line = fmt.Sprintf("%-17s %s/%s %s: %s → %s", "write", wr.Kind, wr.Record, wr.Field, quoteValue(wr.Old), quoteValue(wr.New))
		}
		if wr.Status == nhisync.OutboxHeld {
			line += "  " + o.yellow("(held for approval)")
		}
		writes[wr.System] = append(writes[wr.System], line)
	}
	names := append([]string{"(nhisync)"}, cfg.SystemNames...)
	some := false
	for _, name := range names {
		ds, ws := bySystem[name], writes[name]
		if len(ds)+len(ws) == 0 {
			continue
		}
		some = true
		fmt.Fprintf(w, "%s\n", o.bold(name))
		for _, l := range ds {
			fmt.Fprintf(w, "  %s\n", l)
		}
		for _, l := range ws {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if !some {
		fmt.Fprintln(w, "Nothing to do: every system is in step.")
		return
	}
	fmt.Fprintf(w, "\n%d decisions, %d writes (%d held for approval). Nothing was written; run `nhisync sync` to apply.\n",
		len(decisions(sum.Events)), sum.WritesPlanned, sum.WritesHeld)
}

func quoteValue(v nhisync.Value) string {
	if v.IsZero() {
		return "∅"
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
