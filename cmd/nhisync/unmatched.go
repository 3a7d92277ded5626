package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
)

func unmatchedCmd(g *globals) *cobra.Command {
	var system string
	var dismissed bool
	cmd := &cobra.Command{
		Use:   "unmatched",
		Short: "Records no golden record matches (NHIs no registry knows), and disputed ones",
		Long: `List the records systems hold that link to no golden record: unmatched ones
(no golden record matches, and their system is not in the kind's
create_from) and disputed ones (several golden records match). They stay
listed, with when nhisync first and last saw them, until they link (a
golden record appears for them), vanish from their system, or a person
dismisses them with  nhisync unmatched dismiss SYSTEM/NATIVE_ID.

It reads only nhisync's store, as the last full pass left it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.with(cmd.Context(), false, func(a *app) error {
				if system != "" && a.cfg.Systems[system] == nil {
					return nhisync.Errorf(nhisync.EINVALID, "no system %q in the config", system)
				}
				us, err := a.engine.Unmatched(cmd.Context(), system, dismissed)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(us)
				}
				if len(us) == 0 {
					a.out.Printf("No unmatched or disputed records: every record read links to a golden record.\n")
					return nil
				}
				rows := make([][]string, 0, len(us))
				for _, u := range us {
					rows = append(rows, []string{u.ID, u.Kind + "/" + u.Key, u.Status, u.FirstSeen.Format(time.RFC3339), u.LastSeen.Format(time.RFC3339)})
				}
				a.out.Table([]string{"id", "record", "status", "first seen", "last seen"}, rows)
				// The reasons are long and often the same: say each once.
				seen := map[string]int{}
				var reasons []string
				for _, u := range us {
					if seen[u.Reason] == 0 {
						reasons = append(reasons, u.Reason)
					}
					seen[u.Reason]++
				}
				a.out.Printf("\n")
				for _, r := range reasons {
					a.out.Printf("%s: %s\n", plural(seen[r], "record"), r)
				}
				a.out.Printf("\nDismiss one a person has looked into with: nhisync unmatched dismiss ID\n")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&system, "system", "", "only this system's records")
	cmd.Flags().BoolVar(&dismissed, "dismissed", false, "also list the records people dismissed")
	cmd.AddCommand(unmatchedDismissCmd(g))
	return cmd
}

func unmatchedDismissCmd(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "dismiss ID",
		Short: "Dismiss an unmatched or disputed record (ID: SYSTEM/NATIVE_ID) once a person has looked into it",
		Long: `Dismiss an unmatched or disputed record once a person has looked into it:
it is no longer listed (a disputed record's quarantine item is dismissed
with it) until it changes in its system, and it still links should a golden
record it matches appear. The dismissal is in the audit log with your name.`,
		Args: exactArgs(1, "SYSTEM/NATIVE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := actor(as)
			if err != nil {
				return err
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				system, native, err := a.engine.ParseUnmatchedID(args[0])
				if err != nil {
					return err
				}
				u, err := a.engine.DismissUnmatched(cmd.Context(), system, native, who)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(u)
				}
				a.out.Printf("%s (%s/%s) dismissed by %s; it is listed again if it changes in %s.\n", u.ID, u.Kind, u.Key, who, u.System)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who dismisses (default $NHISYNC_ACTOR, else the OS user)")
	return cmd
}

// plural says n things: "1 record", "2 records".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
