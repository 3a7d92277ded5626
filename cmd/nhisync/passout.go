package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

// What sync and plan print besides their own summary: the systems the
// pass failed (first, in full), the decisions and writes per system, and
// the drift line that ends them (SPEC §3.13).

// reportedError is an error whose details the command has already
// printed (the failed systems of a pass, or -o json's "error" key); run
// only adds its one-line message on stderr.
type reportedError struct{ err error }

func (r *reportedError) Error() string { return r.err.Error() }
func (r *reportedError) Unwrap() error { return r.err }

// errorJSON is SPEC §6's error shape: {"error": {"code", "message"}}.
type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// passError is the error of a pass that failed some systems, nil when it
// failed none.
func passError(cfg *nhisync.Config, sum *engine.Summary) error {
	failed := sum.FailedSystems(cfg)
	if len(failed) == 0 {
		return nil
	}
	var parts []string
	for _, name := range failed {
		parts = append(parts, name+" ("+failureWord(sum.Systems[name])+")")
	}
	others := "the others were synced"
	if len(failed) == len(cfg.SystemNames) {
		others = "nothing was synced"
	}
	return nhisync.Errorf(nhisync.EUNAVAIL, "%d of %d systems failed this pass: %s; %s",
		len(failed), len(cfg.SystemNames), strings.Join(parts, ", "), others)
}

func failureWord(ss *engine.SystemSummary) string {
	switch {
	case ss.ReadFailed:
		return "could not be read"
	case ss.Paused:
		return "paused"
	default:
		return fmt.Sprintf("%d writes failed", ss.Failed)
	}
}

// printFailures names every system the pass failed, with the cause in
// full and what to do, before anything else.
func printFailures(o *out, cfg *nhisync.Config, sum *engine.Summary) {
	failed := sum.FailedSystems(cfg)
	if len(failed) == 0 {
		return
	}
	for _, name := range failed {
		ss := sum.Systems[name]
		switch {
		case ss.ReadFailed:
			o.Printf("%s %s could not be read: %s\n", o.red("FAILED"), o.bold(name), ss.Error)
			if sum.DryRun {
				o.Printf("       nothing of %s was taken as changed or vanished; fix it and run plan again\n", name)
			} else {
				// The failed read degraded the system: a plain sync leaves it
				// alone until its backoff ends (up to an hour), so say how to
				// read it at once once it is fixed.
				o.Printf("       nothing of %s was taken as changed or vanished; it now rests with backoff: fix it, then run `nhisync sync --retry-paused`\n", name)
			}
		case ss.Paused:
			o.Printf("%s %s %s\n", o.red("PAUSED"), o.bold(name), ss.Error)
			o.Printf("       it is retried after %s; `nhisync sync --retry-paused` retries it now\n", ss.PausedUntil.Format(time.RFC3339))
		default:
			o.Printf("%s %s %d writes failed: %s\n", o.red("FAILED"), o.bold(name), ss.Failed, ss.Error)
			o.Printf("       they stay queued and are retried with backoff\n")
		}
	}
	o.Printf("\n")
}

// failureNote is the NOTE column of a failed system in the pass table:
// the cause is printed in full above it.
func failureNote(ss *engine.SystemSummary) string {
	if ss.Failing() {
		return strings.ToUpper(failureWord(ss)) + " (see above)"
	}
	return ss.Error
}

// planActions are the decisions plan and sync list (the others are
// bookkeeping).
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

// nhisyncSystem heads the decisions no system made.
const nhisyncSystem = "(nhisync)"

// isGuardEvent tells a blast-radius guard's request (about a system, not
// a record) from a held write.
func isGuardEvent(ev *nhisync.AuditEntry) bool {
	return ev.Action == nhisync.ActApprovalRequested && ev.Record == "" && ev.Kind == ""
}

// changeList is a pass's decisions and writes, per system.
type changeList struct {
	lines map[string][]string
	// total counts every listed decision and write per system, kept in
	// the summary's events or not.
	total map[string]int
}

func changes(o *out, sum *engine.Summary) changeList {
	cl := changeList{lines: map[string][]string{}, total: map[string]int{}}
	for sys, actions := range sum.Actions {
		if sys == "" {
			sys = nhisyncSystem
		}
		for action, n := range actions {
			if _, ok := planActions[action]; ok {
				cl.total[sys] += n
			}
		}
	}
	for _, ev := range sum.Events {
		word, ok := planActions[ev.Action]
		if !ok {
			continue
		}
		sys := ev.System
		if sys == "" {
			sys = nhisyncSystem
		}
		if sum.Actions == nil {
			cl.total[sys]++
		}
		if isGuardEvent(ev) {
			reason, _, _ := strings.Cut(ev.Reason, "; sample: ")
			cl.lines[sys] = append(cl.lines[sys], fmt.Sprintf("%-17s %s  %s", "guard holds", ev.New.Text(), o.yellow("("+reason+"); review with `nhisync approvals`")))
			continue
		}
		line := fmt.Sprintf("%-17s %s/%s", word, ev.Kind, ev.Record)
		if ev.Field != "" {
			line += " " + ev.Field
		}
		if !ev.New.IsZero() || !ev.Old.IsZero() {
			to := quoteValue(ev.New)
			if p := ev.New.Problem(); p != "" && strings.Contains(ev.Reason, p) {
				// The reason that follows says what is wrong with it.
				to = "(malformed)"
			}
			line += fmt.Sprintf(": %s → %s", quoteValue(ev.Old), to)
		}
		if ev.Reason != "" {
			line += "  " + o.dim("("+ev.Reason+")")
		}
		cl.lines[sys] = append(cl.lines[sys], line)
	}
	for _, wr := range sum.Writes {
		var line string
		switch {
		case wr.Create:
			line = fmt.Sprintf("%-17s %s/%s", "create record", wr.Kind, wr.Record)
		default:
			line = fmt.Sprintf("%-17s %s/%s %s: %s → %s", "write", wr.Kind, wr.Record, wr.Field, quoteValue(wr.Old), quoteValue(wr.New))
		}
		if wr.Status == nhisync.OutboxHeld {
			line += "  " + o.yellow("(held for approval)")
		}
		cl.lines[wr.System] = append(cl.lines[wr.System], line)
		cl.total[wr.System]++
	}
	return cl
}

// print prints the list per system, at most limit lines each (0: all),
// and reports whether it printed anything.
func (cl changeList) print(o *out, cfg *nhisync.Config, limit int) bool {
	some := false
	for _, name := range append([]string{nhisyncSystem}, cfg.SystemNames...) {
		lines := cl.lines[name]
		if len(lines) == 0 {
			continue
		}
		some = true
		o.Printf("%s\n", o.bold(name))
		shown := lines
		if limit > 0 && len(shown) > limit {
			shown = shown[:limit]
		}
		for _, l := range shown {
			o.Printf("  %s\n", l)
		}
		if more := max(cl.total[name], len(lines)) - len(shown); more > 0 {
			o.Printf("  %s\n", o.dim(fmt.Sprintf("… and %d more (all of them with -v)", more)))
		}
	}
	return some
}

// driftWords says each drift reason for the drift line.
var driftWords = map[string]string{
	engine.DriftHeld:        "held for approval",
	engine.DriftRejected:    "rejected by a person",
	engine.DriftGuard:       "held by the guard",
	engine.DriftQuarantined: "quarantined",
	engine.DriftConflicted:  "conflicted",
	engine.DriftReported:    "reported drift (on_refused: report)",
	engine.DriftFailing:     "write failing",
	engine.DriftQueued:      "write queued",
	engine.DriftReadOnly:    "read-only",
	engine.DriftIdentifies:  "match field naming the record",
	engine.DriftBehind:      "not yet planned",
}

// driftAfter is the stored drift a pass leaves: with dry, the fields the
// plan would write are left out (the plan lists them).
func driftAfter(ctx context.Context, a *app, sum *engine.Summary, dry bool) (engine.DriftSummary, error) {
	items, err := a.engine.Drift(ctx)
	if err != nil {
		return engine.DriftSummary{}, err
	}
	if dry {
		written := map[string]bool{}
		for _, w := range sum.Writes {
			if w.Status != nhisync.OutboxHeld {
				written[fmt.Sprintf("%s\x00%d\x00%s", w.System, w.RecordID, w.Field)] = true
			}
		}
		kept := items[:0]
		for _, it := range items {
			if !written[fmt.Sprintf("%s\x00%d\x00%s", it.System, it.RecordID, it.Field)] {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	return a.engine.SummarizeDrift(items), nil
}

// heldBack says what a plan's own decisions leave out of step: held
// writes, quarantined values, conflicts opened, guard requests (a held
// retirement makes no write, yet the estate is not in step).
func heldBack(sum *engine.Summary) []string {
	guards := 0
	for _, ev := range sum.Events {
		if isGuardEvent(ev) {
			guards++
		}
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{
		{sum.WritesHeld, "writes held for approval"},
		{sum.Quarantined, "values quarantined"},
		{sum.ConflictsOpened, "conflicts opened"},
		{guards, "guard requests"},
	} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return parts
}

// printDriftLine ends sync and plan: how many fields in which systems
// differ from golden and why, or that every system is in step — said
// only when every system was read, nothing is pending and nothing
// differs.
func printDriftLine(o *out, cfg *nhisync.Config, sum *engine.Summary, d engine.DriftSummary, pending bool) {
	failed := sum.FailedSystems(cfg)
	if d.Fields == 0 {
		switch {
		case len(failed) > 0:
			o.Printf("Not in step: %s failed this pass (above); the systems read hold every golden value.\n", strings.Join(failed, ", "))
		case pending && len(heldBack(sum)) > 0:
			o.Printf("%s after these writes: %s (above).\n", o.yellow("Not in step"), strings.Join(heldBack(sum), ", "))
		case pending:
			o.Printf("Once these writes land, every system holds every golden value.\n")
		default:
			o.Printf("%s every system holds every golden value.\n", o.green("In step:"))
		}
		return
	}
	var why []string
	for _, r := range engine.DriftReasons {
		if n := d.ByReason[r]; n > 0 {
			why = append(why, fmt.Sprintf("%d %s", n, driftWords[r]))
		}
	}
	var where []string
	for _, s := range d.Systems {
		where = append(where, fmt.Sprintf("%s %d", s, d.BySystem[s]))
	}
	o.Printf("%s %d fields differ from golden (%s): %s. List them: nhisync drift\n",
		o.yellow("Not in step:"), d.Fields, strings.Join(where, ", "), strings.Join(why, ", "))
}

// printOpenStrays names the records that stay unmatched or disputed after
// a pass, and why when a kind lets no system create golden records.
func printOpenStrays(o *out, cfg *nhisync.Config, sum *engine.Summary) {
	n := sum.OpenUnmatched + sum.OpenDisputed
	if n == 0 {
		return
	}
	o.Printf("%d records link to no golden record (%d unmatched, %d disputed): nhisync unmatched lists them.\n", n, sum.OpenUnmatched, sum.OpenDisputed)
	for _, k := range cfg.KindNames {
		if kind := cfg.Kinds[k]; len(kind.CreateFrom) == 0 {
			o.Printf("Kind %s has no create_from, so no system may create its golden records and every record of it stays unmatched: list the systems of record in kinds.%s.create_from.\n", k, k)
		}
	}
}
