package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
)

func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%s ID must be a positive number, got %q", what, s)
	}
	return id, nil
}

// queue describes one list of open work: conflicts, quarantine, approvals.
type queue[T any] struct {
	use, short, noun, status string
	// statuses are the values --status accepts.
	statuses []string
	list     func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]T, error)
	header   []string
	row      func(T) []string
	// statusOf is an item's status, for the STATUS column of --all
	// (queues whose rows already show it leave it nil).
	statusOf func(T) string
	hint     string
	// hide redacts an item's sensitive values (nhisync.Redacted) unless
	// --reveal is given.
	hide func(a *app, it T)
}

// command lists the queue: --status (default open or pending) or --all.
func (q queue[T]) command(g *globals) *cobra.Command {
	var status string
	var all, reveal bool
	cmd := &cobra.Command{
		Use:   q.use,
		Short: q.short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !all && !slices.Contains(q.statuses, status) {
				return usagef("--status %q: %s have one of the statuses %s (or use --all)", status, q.noun, strings.Join(q.statuses, ", "))
			}
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer a.Close()
			f := nhisync.ItemFilter{Status: status}
			if all {
				f.Status = ""
			}
			items, err := q.list(cmd.Context(), a.store, f)
			if err != nil {
				return err
			}
			if reveal {
				if err := a.revealed(cmd.Context(), q.use, "", 0, "", ""); err != nil {
					return err
				}
			} else if q.hide != nil {
				for _, it := range items {
					q.hide(a, it)
				}
			}
			if a.out.json {
				if items == nil {
					items = []T{}
				}
				return a.out.JSON(items)
			}
			if len(items) == 0 {
				a.out.Printf("No %s %s.\n", f.Status, q.noun)
				return nil
			}
			header := q.header
			rows := make([][]string, 0, len(items))
			for _, it := range items {
				rows = append(rows, q.row(it))
			}
			if all && q.statusOf != nil {
				// Items of every status: say which is which.
				header = append(slices.Clone(q.header), "status")
				for i, it := range items {
					rows[i] = append(rows[i], q.statusOf(it))
				}
			}
			a.out.Table(header, rows)
			a.out.Printf("\n%s\n", q.hint)
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", q.status, "show items with this status: "+strings.Join(q.statuses, ", "))
	cmd.Flags().BoolVar(&all, "all", false, "show items of every status")
	revealFlag(cmd, &reveal)
	return cmd
}

// action is a person's decision on one item: it runs under their name,
// then the writes it queued are sent and the audit log checkpointed.
type action[T any] struct {
	use, short, what, asHelp string
	// drain sends queued writes afterwards (not after a rejection).
	drain bool
	do    func(ctx context.Context, a *app, cmd *cobra.Command, id int64, who string) (T, error)
	done  func(item T, who string, writes int) string
}

func (ac action[T]) command(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   ac.use,
		Short: ac.short,
		Args:  exactArgs(1, strings.TrimPrefix(ac.use, strings.Fields(ac.use)[0]+" ")),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], ac.what)
			if err != nil {
				return err
			}
			who, err := actor(as)
			if err != nil {
				return err
			}
			// Connect to the systems only when the decision's writes go out.
			return g.with(cmd.Context(), ac.drain, func(a *app) error {
				item, err := ac.do(cmd.Context(), a, cmd, id, who)
				if err != nil {
					return err
				}
				writes, stale := 0, 0
				var failure error
				if ac.drain {
					sum, err := a.engine.Drain(cmd.Context())
					if err != nil {
						return err
					}
					writes, stale = sum.WritesApplied, sum.WritesStale
					failure = drainFailure(a.cfg, sum, ac.what)
				}
				if a.out.json {
					if err := a.out.JSON(item); err != nil {
						return err
					}
				} else {
					a.out.Printf("%s\n", ac.done(item, who, writes))
					if stale > 0 {
						// "0 writes applied" alone reads as if the decision did nothing.
						a.out.Printf("%d writes not sent: the record changed in its system since nhisync read it (nothing overwritten); the next sync reads it again and decides.\n", stale)
					}
				}
				if failure != nil {
					// The decision is recorded; its writes are not all out.
					// Failure is loud (SPEC §3.13): exit 1, the cause on
					// stderr, after the result printed above.
					return &reportedError{failure}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", ac.asHelp+" (default $NHISYNC_ACTOR, else the OS user)")
	return cmd
}

// drainFailure names the writes a person's decision sent that failed, by
// system and cause, or returns nil when none did.
func drainFailure(cfg *nhisync.Config, sum *engine.Summary, what string) error {
	if sum.WritesFailed == 0 {
		return nil
	}
	var causes []string
	for _, name := range cfg.SystemNames {
		if ss := sum.Systems[name]; ss != nil && ss.Failed > 0 {
			causes = append(causes, fmt.Sprintf("%s: %s", name, ss.Error))
		}
	}
	return nhisync.Errorf(nhisync.EUNAVAIL, "the %s is recorded, but %d writes failed (%s); they stay queued and syncs retry them with backoff (nhisync drift --reason failing)",
		what, sum.WritesFailed, strings.Join(causes, "; "))
}

func conflictsCmd(g *globals) *cobra.Command {
	cmd := queue[*nhisync.Conflict]{
		use: "conflicts", short: "The conflict queue: proposals nhisync may not settle alone",
		noun: "conflicts", status: nhisync.StatusOpen,
		statuses: []string{nhisync.StatusOpen, nhisync.StatusResolved},
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.Conflict, error) {
			return s.Conflicts(ctx, f)
		},
		hide:   func(a *app, c *nhisync.Conflict) { a.engine.RedactConflict(c) },
		header: []string{"id", "record", "field", "status", "golden", "proposals"},
		row: func(c *nhisync.Conflict) []string {
			var ps []string
			for _, p := range c.Proposals {
				ps = append(ps, p.System+"="+quoteValue(p.Value))
			}
			return []string{strconv.FormatInt(c.ID, 10), c.Kind + "/" + c.Record, c.Field, c.Status, quoteValue(c.Golden), strings.Join(ps, "  ")}
		},
		hint: "Resolve with: nhisync conflicts resolve ID --pick SYSTEM   (or --value V)",
	}.command(g)
	var pick, value string
	resolve := action[*nhisync.Conflict]{
		use: "resolve ID (--pick SYSTEM | --value V)", short: "Settle a conflict by picking a system's proposal or giving a value",
		what: "conflict", asHelp: "who resolves", drain: true,
		do: func(ctx context.Context, a *app, cmd *cobra.Command, id int64, who string) (*nhisync.Conflict, error) {
			if (pick == "") == !cmd.Flags().Changed("value") {
				return nil, usagef("give exactly one of --pick SYSTEM or --value V")
			}
			return a.engine.ResolveConflict(ctx, id, pick, value, who)
		},
		done: func(c *nhisync.Conflict, who string, n int) string {
			return fmt.Sprintf("Conflict %d resolved by %s: %s %s = %s; %d writes applied.", c.ID, who, c.Kind+"/"+c.Record, c.Field, quoteValue(c.Resolution), n)
		},
	}.command(g)
	resolve.Flags().StringVar(&pick, "pick", "", "take this system's proposal")
	resolve.Flags().StringVar(&value, "value", "", "give the value (sets: comma-separated)")
	cmd.AddCommand(resolve)
	return cmd
}

func quarantineCmd(g *globals) *cobra.Command {
	cmd := queue[*nhisync.QuarantineItem]{
		use: "quarantine", short: "Values that failed validation, and disputed records (several golden records match); unmatched records: nhisync unmatched",
		noun: "quarantine items", status: nhisync.StatusOpen,
		statuses: []string{nhisync.StatusOpen, nhisync.StatusDismissed, nhisync.StatusCleared},
		statusOf: func(q *nhisync.QuarantineItem) string { return q.Status },
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.QuarantineItem, error) {
			return s.QuarantineItems(ctx, f)
		},
		hide:   func(a *app, q *nhisync.QuarantineItem) { a.engine.RedactQuarantine(q) },
		header: []string{"id", "record", "field", "system", "value", "rule", "reason"},
		row: func(q *nhisync.QuarantineItem) []string {
			return []string{strconv.FormatInt(q.ID, 10), q.Kind + "/" + q.Record, q.Field, q.System, quoteValue(q.Value), q.Rule, q.Reason}
		},
		hint: "Fix the value in the system (the next sync picks it up), or: nhisync quarantine dismiss ID",
	}.command(g)
	cmd.AddCommand(action[*nhisync.QuarantineItem]{
		use: "dismiss ID", short: "Dismiss a quarantined proposal: the system is repaired with the golden value",
		what: "quarantine", asHelp: "who dismisses", drain: true,
		do: func(ctx context.Context, a *app, _ *cobra.Command, id int64, who string) (*nhisync.QuarantineItem, error) {
			return a.engine.DismissQuarantine(ctx, id, who)
		},
		done: func(q *nhisync.QuarantineItem, who string, n int) string {
			return fmt.Sprintf("Quarantine item %d dismissed by %s; %d writes applied.", q.ID, who, n)
		},
	}.command(g))
	return cmd
}

func approvalsCmd(g *globals) *cobra.Command {
	cmd := queue[*nhisync.Approval]{
		use: "approvals", short: "Writes held for a person's approval",
		noun: "approvals", status: nhisync.StatusPending,
		statuses: []string{nhisync.StatusPending, nhisync.StatusApproved, nhisync.StatusRejected, nhisync.StatusSuperseded},
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.Approval, error) {
			return s.Approvals(ctx, f)
		},
		hide:   func(a *app, ap *nhisync.Approval) { a.engine.RedactApproval(ap) },
		header: []string{"id", "record", "field", "system", "write", "requested by", "status"},
		row: func(ap *nhisync.Approval) []string {
			rec, change := ap.Kind+"/"+ap.Record, quoteValue(ap.Old)+" → "+quoteValue(ap.Value)
			if ap.Guard {
				rec, change = "(guard)", ap.Value.Text()
			}
			return []string{strconv.FormatInt(ap.ID, 10), rec, ap.Field, ap.System, change, ap.RequestedBy, ap.Status}
		},
		hint: "Decide with: nhisync approvals approve ID   or   nhisync approvals reject ID",
	}.command(g)
	decided := func(ap *nhisync.Approval, who string, n int) string {
		return fmt.Sprintf("Approval %d %s by %s; %d writes applied.", ap.ID, ap.Status, who, n)
	}
	cmd.AddCommand(
		action[*nhisync.Approval]{
			use: "approve ID", short: "Approve a held write; it is sent at once", what: "approval", asHelp: "who decides", drain: true,
			do: func(ctx context.Context, a *app, _ *cobra.Command, id int64, who string) (*nhisync.Approval, error) {
				return a.engine.Approve(ctx, id, who)
			},
			done: decided,
		}.command(g),
		action[*nhisync.Approval]{
			use: "reject ID", short: "Reject a held write; the system stays as it is", what: "approval", asHelp: "who decides",
			do: func(ctx context.Context, a *app, _ *cobra.Command, id int64, who string) (*nhisync.Approval, error) {
				return a.engine.Reject(ctx, id, who)
			},
			done: decided,
		}.command(g),
	)
	return cmd
}
