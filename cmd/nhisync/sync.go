package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// syncListLimit is how many decisions and writes sync lists per system
// without -v.
const syncListLimit = 8

// syncOut is `sync -o json`: the pass summary (SPEC §6), the drift it
// leaves and, when a system failed, the error (exit 1).
type syncOut struct {
	*engine.Summary
	Drift engine.DriftSummary `json:"drift"`
	Error *errorJSON          `json:"error,omitempty"`
}

func syncCmd(g *globals) *cobra.Command {
	var incremental, retryPaused, verbose bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run one full pass: read every system, decide, write, audit",
		Long: `Run one pass: send queued writes, read every system, decide every change by
the config's rules, commit the decisions with the audit log, then write the
golden values to every system that is behind. A second pass with no outside
change writes nothing.

sync names every system it could not read or write first, with the cause,
and exits 1 when there is one (the other systems are synced all the same);
a system that could not be read is never taken to be empty. It then lists
what it changed per system (all of it with -v) and ends with what still
differs from golden and why (nhisync drift lists it).

A system whose calls mostly failed is degraded and rests with backoff (its
poll interval, doubling per failed pass, at most an hour) while the others
go on; --retry-paused tries it at once.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), true, func(a *app) error {
				opt := engine.PassOptions{Incremental: incremental, RespectPause: !retryPaused, KeepEvents: !a.out.json, EventLimit: syncListLimit}
				if verbose {
					opt.EventLimit = 0
				}
				sum, err := a.engine.Sync(cmd.Context(), opt)
				a.progress.done()
				if err != nil {
					return err
				}
				a.engine.RedactSummary(sum)
				drift, err := driftAfter(cmd.Context(), a, sum, false)
				if err != nil {
					return err
				}
				failure := passError(a.cfg, sum)
				if a.out.json {
					so := syncOut{Summary: sum, Drift: drift}
					if failure != nil {
						so.Error = &errorJSON{Code: nhisync.ErrorCode(failure), Message: nhisync.ErrorMessage(failure)}
					}
					if err := a.out.JSON(so); err != nil {
						return err
					}
				} else {
					printFailures(a.out, a.cfg, sum)
					printSummary(a, sum)
					limit := syncListLimit
					if verbose {
						limit = 0
					}
					cl := changes(a.out, sum)
					if len(cl.lines) > 0 {
						a.out.Printf("\n")
						cl.print(a.out, a.cfg, limit)
					}
					a.out.Printf("\n")
					printDriftLine(a.out, a.cfg, sum, drift, false)
					printOpenStrays(a.out, a.cfg, sum)
				}
				if failure != nil {
					return &reportedError{failure}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&retryPaused, "retry-paused", false, "also read and write degraded systems still resting after failures")
	cmd.Flags().BoolVar(&incremental, "incremental", false, "read systems that offer a change cursor only since their last read (vanished records are detected by full passes)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every decision and write, not the first few per system")
	return cmd
}

// printSummary prints a pass's counts and per-system table.
func printSummary(a *app, sum *engine.Summary) {
	o := a.out
	verb := "Synced"
	if sum.DryRun {
		verb = "Planned"
	}
	o.Printf("%s %d records in %s\n", o.bold(verb), sum.Records, (time.Duration(sum.DurationMS) * time.Millisecond).String())
	o.Printf("  created %d, linked %d, accepted %d, refused %d, merged %d, quarantined %s, conflicts opened %s, approvals requested %s\n",
		sum.Created, sum.Linked, sum.Accepted, sum.Refused, sum.Merged,
		warnNum(o, sum.Quarantined), warnNum(o, sum.ConflictsOpened), warnNum(o, sum.ApprovalsRequested))
	if sum.Unmatched+sum.Disputed+sum.Retired+sum.OpenUnmatched+sum.OpenDisputed > 0 {
		o.Printf("  unmatched %d (%d open), disputed %d (%d open), retired %d\n", sum.Unmatched, sum.OpenUnmatched, sum.Disputed, sum.OpenDisputed, sum.Retired)
	}
	var rows [][]string
	for _, name := range a.cfg.SystemNames {
		s := sum.Systems[name]
		if s == nil {
			continue
		}
		failed := strconv.Itoa(s.Failed)
		note := failureNote(s)
		if s.Stale > 0 {
			note = fmt.Sprintf("%d stale (changed meanwhile; re-read next pass) %s", s.Stale, note)
		}
		written := strconv.Itoa(s.Written)
		if sum.DryRun {
			written = "-"
		}
		rows = append(rows, []string{name, s.Mode, strconv.Itoa(s.Read), strconv.Itoa(s.Changed), strconv.Itoa(s.Planned), written, failed, strconv.Itoa(s.Held), note})
	}
	o.StyledTable([]string{"system", "mode", "read", "changed", "planned", "written", "failed", "held", "note"}, rows, func(r, c int) string {
		switch {
		case c == 6 && rows[r][6] != "0":
			return ansiRed
		case c == 7 && rows[r][7] != "0":
			return ansiYellow
		case c == 8 && sum.Systems[rows[r][0]].Failing():
			return ansiRed
		case c == 8:
			return ansiDim
		}
		return ""
	})
}

func warnNum(o *out, n int) string {
	if n == 0 {
		return "0"
	}
	return o.yellow(strconv.Itoa(n))
}
