package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
)

// statusFlag adds --status (default open/pending) and --all.
func statusFlags(cmd *cobra.Command, status *string, all *bool, def string) {
	cmd.Flags().StringVar(status, "status", def, "show items with this status")
	cmd.Flags().BoolVar(all, "all", false, "show items of every status")
}

func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%s ID must be a positive number, got %q", what, s)
	}
	return id, nil
}

// drainAfter sends the writes a human action queued, connecting to the
// systems they go to, and signs a checkpoint of the audit log.
func drainAfter(ctx context.Context, g *globals) (int, error) {
	a, err := g.open(ctx, true)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	sum, err := a.engine.Drain(ctx)
	if err != nil {
		return 0, err
	}
	if err := a.checkpoint(ctx); err != nil {
		return 0, err
	}
	return sum.WritesApplied, nil
}

func conflictsCmd(g *globals) *cobra.Command {
	var status string
	var all bool
	cmd := &cobra.Command{
		Use:   "conflicts",
		Short: "The conflict queue: proposals nhisync may not settle alone",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer a.Close()
			f := nhisync.ItemFilter{Status: status}
			if all {
				f.Status = ""
			}
			items, err := a.store.Conflicts(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.out.json {
				if items == nil {
					items = []*nhisync.Conflict{}
				}
				return a.out.JSON(items)
			}
			if len(items) == 0 {
				a.out.Printf("No %s conflicts.\n", f.Status)
				return nil
			}
			var rows [][]string
			for _, c := range items {
				var ps []string
				for _, p := range c.Proposals {
					ps = append(ps, p.System+"="+quoteValue(p.Value))
				}
				rows = append(rows, []string{strconv.FormatInt(c.ID, 10), c.Kind + "/" + c.Record, c.Field, c.Status, quoteValue(c.Golden), strings.Join(ps, "  ")})
			}
			a.out.Table([]string{"id", "record", "field", "status", "golden", "proposals"}, rows)
			a.out.Printf("\nResolve with: nhisync conflicts resolve ID --pick SYSTEM   (or --value V)\n")
			return nil
		},
	}
	statusFlags(cmd, &status, &all, nhisync.StatusOpen)
	var pick, value, as string
	resolve := &cobra.Command{
		Use:   "resolve ID (--pick SYSTEM | --value V)",
		Short: "Settle a conflict by picking a system's proposal or giving a value",
		Args:  exactArgs(1, "ID --pick SYSTEM | --value V"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "conflict")
			if err != nil {
				return err
			}
			if (pick == "") == !cmd.Flags().Changed("value") {
				return usagef("give exactly one of --pick SYSTEM or --value V")
			}
			who, err := actor(as)
			if err != nil {
				return err
			}
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			c, err := a.engine.ResolveConflict(cmd.Context(), id, pick, value, who)
			a.Close()
			if err != nil {
				return err
			}
			n, err := drainAfter(cmd.Context(), g)
			if err != nil {
				return err
			}
			if a.out.json {
				return a.out.JSON(c)
			}
			a.out.Printf("Conflict %d resolved by %s: %s %s = %s; %d writes applied.\n", c.ID, who, c.Kind+"/"+c.Record, c.Field, quoteValue(c.Resolution), n)
			return nil
		},
	}
	resolve.Flags().StringVar(&pick, "pick", "", "take this system's proposal")
	resolve.Flags().StringVar(&value, "value", "", "give the value (sets: comma-separated)")
	resolve.Flags().StringVar(&as, "as", "", "who resolves (default $NHISYNC_ACTOR, else the OS user)")
	cmd.AddCommand(resolve)
	return cmd
}

func quarantineCmd(g *globals) *cobra.Command {
	var status string
	var all bool
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "Proposals that failed validation, and records that could not be correlated",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer a.Close()
			f := nhisync.ItemFilter{Status: status}
			if all {
				f.Status = ""
			}
			items, err := a.store.QuarantineItems(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.out.json {
				if items == nil {
					items = []*nhisync.QuarantineItem{}
				}
				return a.out.JSON(items)
			}
			if len(items) == 0 {
				a.out.Printf("No %s quarantine items.\n", f.Status)
				return nil
			}
			var rows [][]string
			for _, q := range items {
				rows = append(rows, []string{strconv.FormatInt(q.ID, 10), q.Kind + "/" + q.Record, q.Field, q.System, quoteValue(q.Value), q.Rule, q.Reason})
			}
			a.out.Table([]string{"id", "record", "field", "system", "value", "rule", "reason"}, rows)
			a.out.Printf("\nFix the value in the system (the next sync picks it up), or: nhisync quarantine dismiss ID\n")
			return nil
		},
	}
	statusFlags(cmd, &status, &all, nhisync.StatusOpen)
	var as string
	dismiss := &cobra.Command{
		Use:   "dismiss ID",
		Short: "Dismiss a quarantined proposal: the system is repaired with the golden value",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "quarantine")
			if err != nil {
				return err
			}
			who, err := actor(as)
			if err != nil {
				return err
			}
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			q, err := a.engine.DismissQuarantine(cmd.Context(), id, who)
			a.Close()
			if err != nil {
				return err
			}
			n, err := drainAfter(cmd.Context(), g)
			if err != nil {
				return err
			}
			if a.out.json {
				return a.out.JSON(q)
			}
			a.out.Printf("Quarantine item %d dismissed by %s; %d writes applied.\n", q.ID, who, n)
			return nil
		},
	}
	dismiss.Flags().StringVar(&as, "as", "", "who dismisses (default $NHISYNC_ACTOR, else the OS user)")
	cmd.AddCommand(dismiss)
	return cmd
}

func approvalsCmd(g *globals) *cobra.Command {
	var status string
	var all bool
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "Writes held for a person's approval",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer a.Close()
			f := nhisync.ItemFilter{Status: status}
			if all {
				f.Status = ""
			}
			items, err := a.store.Approvals(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.out.json {
				if items == nil {
					items = []*nhisync.Approval{}
				}
				return a.out.JSON(items)
			}
			if len(items) == 0 {
				a.out.Printf("No %s approvals.\n", f.Status)
				return nil
			}
			var rows [][]string
			for _, ap := range items {
				rec := ap.Kind + "/" + ap.Record
				change := quoteValue(ap.Old) + " → " + quoteValue(ap.Value)
				if ap.Guard {
					rec = "(guard)"
					change = ap.Value.Text()
				}
				rows = append(rows, []string{strconv.FormatInt(ap.ID, 10), rec, ap.Field, ap.System, change, ap.RequestedBy, ap.Status})
			}
			a.out.Table([]string{"id", "record", "field", "system", "write", "requested by", "status"}, rows)
			a.out.Printf("\nDecide with: nhisync approvals approve ID   or   nhisync approvals reject ID\n")
			return nil
		},
	}
	statusFlags(cmd, &status, &all, nhisync.StatusPending)
	var as string
	mk := func(use, short string, grant bool) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  exactArgs(1, "ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := parseID(args[0], "approval")
				if err != nil {
					return err
				}
				who, err := actor(as)
				if err != nil {
					return err
				}
				a, err := g.open(cmd.Context(), false)
				if err != nil {
					return err
				}
				var ap *nhisync.Approval
				if grant {
					ap, err = a.engine.Approve(cmd.Context(), id, who)
				} else {
					ap, err = a.engine.Reject(cmd.Context(), id, who)
				}
				a.Close()
				if err != nil {
					return err
				}
				n := 0
				if grant {
					if n, err = drainAfter(cmd.Context(), g); err != nil {
						return err
					}
				} else if err := checkpointOnly(cmd.Context(), g); err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(ap)
				}
				a.out.Printf("Approval %d %s by %s; %d writes applied.\n", ap.ID, ap.Status, who, n)
				return nil
			},
		}
		c.Flags().StringVar(&as, "as", "", "who decides (default $NHISYNC_ACTOR, else the OS user)")
		return c
	}
	cmd.AddCommand(mk("approve", "Approve a held write; it is sent at once", true), mk("reject", "Reject a held write; the system stays as it is", false))
	return cmd
}

func checkpointOnly(ctx context.Context, g *globals) error {
	a, err := g.open(ctx, false)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.checkpoint(ctx)
}
