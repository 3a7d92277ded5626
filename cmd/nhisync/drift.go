package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

func driftCmd(g *globals) *cobra.Command {
	var system, reason string
	cmd := &cobra.Command{
		Use:   "drift",
		Short: "Every field a system holds differently from golden, and why it is left so",
		Long: `List every field of every golden record that a linked system holds
differently from the golden value, with the reason nhisync leaves it so:

  held         a write waits for a person's approval (approve_to)
  rejected     a person rejected the write of this value
  guard        the blast-radius guard holds the pass's writes to the system
  quarantined  the system's value failed validation
  conflicted   an open conflict holds writes of the field
  reported     refused, and the system has on_refused: report
  failing      the write failed and retries with backoff
  queued       the write is queued, not sent yet
  read-only    nhisync may not write the field there
  identifies   a match field naming the record where it has no id column
  behind       no write planned yet; the next sync plans it

It reads only nhisync's store (what the last pass saw), no system. sync and
plan end with the count of these; only with none do they say "in step".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason != "" && !slices.Contains(engine.DriftReasons, reason) {
				return usagef("--reason %q: one of %s", reason, strings.Join(engine.DriftReasons, ", "))
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				if system != "" && a.cfg.Systems[system] == nil {
					return nhisync.Errorf(nhisync.EINVALID, "no system %q in the config; systems: %s", system, strings.Join(a.cfg.SystemNames, ", "))
				}
				items, err := a.engine.Drift(cmd.Context())
				if err != nil {
					return err
				}
				items = slices.DeleteFunc(items, func(it engine.DriftItem) bool {
					return (system != "" && it.System != system) || (reason != "" && it.Reason != reason)
				})
				if a.out.json {
					return a.out.JSON(items)
				}
				if len(items) == 0 {
					a.out.Printf("No drift: every linked system holds every golden value it maps.\n")
					return nil
				}
				rows := make([][]string, 0, len(items))
				for _, it := range items {
					rows = append(rows, []string{it.Kind + "/" + it.Record, it.Field, it.System, quoteValue(it.Value), quoteValue(it.Golden), it.Reason, it.Detail})
				}
				a.out.Table([]string{"record", "field", "system", "value", "golden", "reason", "detail"}, rows)
				d := a.engine.SummarizeDrift(items)
				a.out.Printf("\n%d fields in %d systems differ from golden.\n", d.Fields, len(d.Systems))
				a.out.Printf("Decide held writes with `nhisync approvals`, quarantined values with `nhisync quarantine`, conflicts with `nhisync conflicts`.\n")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&system, "system", "", "only this system's drift")
	cmd.Flags().StringVar(&reason, "reason", "", "only drift for this reason: "+strings.Join(engine.DriftReasons, ", "))
	return cmd
}
