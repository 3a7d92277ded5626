package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/quickstart"
)

func quickstartCmd(g *globals) *cobra.Command {
	var dir string
	var force bool
	var seed int64
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Make a demo workspace of four drifting systems and run a first sync on it",
		Long: `Write a demo workspace — a CMDB export (CSV), a data catalog (YAML), an
identity provider (a SQLite table) and a policy engine (JSON) holding about 200
non-human identities with realistic drift — then run one sync and tell what
happened: what was accepted, refused, merged and quarantined, which writes wait
for approval, and what was written to each system.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfgPath := filepath.Join(dir, quickstart.ConfigFile)
			if _, err := os.Stat(cfgPath); err == nil && !force {
				return nhisync.Errorf(nhisync.EINVALID, "%s already holds a workspace: continue with `%s -c %s sync`, or start over with `%s quickstart --force`", dir, progName(), cfgPath, progName())
			}
			sc, err := quickstart.Generate(dir, quickstart.Options{Seed: seed, Force: force})
			if err != nil {
				return err
			}
			qg := *g
			qg.config = cfgPath
			a, err := qg.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer a.Close()
			sum, err := a.engine.Sync(cmd.Context(), engine.PassOptions{KeepEvents: true})
			a.progress.done()
			if err != nil {
				return err
			}
			if err := a.checkpoint(cmd.Context()); err != nil {
				return err
			}
			if a.out.json {
				return a.out.JSON(map[string]any{"dir": dir, "config": cfgPath, "summary": sum})
			}
			story(a.out.w, a.out, dir, sc, sum)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "nhisync-quickstart", "directory for the demo workspace")
	cmd.Flags().BoolVar(&force, "force", false, "replace an earlier quickstart workspace in --dir")
	cmd.Flags().Int64Var(&seed, "seed", 1, "seed of the generated estate (same seed, same data)")
	return cmd
}

// progName is how the user ran nhisync: the binary's name, or the go run
// line when it was built on the fly.
func progName() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./cmd/nhisync"
	}
	return filepath.Base(os.Args[0])
}

var systemTitles = map[string]string{
	quickstart.SystemIDP:     "identity provider",
	quickstart.SystemCMDB:    "CMDB",
	quickstart.SystemCatalog: "data catalog",
	quickstart.SystemPolicy:  "policy engine",
}

var systemFiles = map[string]string{
	quickstart.SystemIDP:     quickstart.IDPFile + " (SQLite table)",
	quickstart.SystemCMDB:    quickstart.CMDBFile,
	quickstart.SystemCatalog: quickstart.CatalogFile,
	quickstart.SystemPolicy:  quickstart.PolicyFile,
}

// story tells a newcomer what the first sync did, with one example of
// each kind of decision, and what to try next.
func story(w io.Writer, o *out, dir string, sc *quickstart.Scenario, sum *engine.Summary) {
	first := map[string]*nhisync.AuditEntry{}
	for _, ev := range sum.Events {
		if first[ev.Action] == nil {
			first[ev.Action] = ev
		}
	}
	fmt.Fprintf(w, "%s a demo estate in %s/\n", o.bold("nhisync quickstart:"), dir)
	fmt.Fprintf(w, "  %d non-human identities, held by four systems that disagree:\n", sc.Accounts)
	for _, s := range quickstart.Systems {
		fmt.Fprintf(w, "    %-8s %-18s %-36s %4d records\n", s, systemTitles[s], systemFiles[s], sc.Records[s])
	}
	fmt.Fprintf(w, "\n%s\n", o.bold("First sync:"))
	line := func(word string, n int, text string, ex *nhisync.AuditEntry) {
		fmt.Fprintf(w, "  %-12s %s\n", word+" "+fmt.Sprint(n), text)
		if ex != nil {
			fmt.Fprintf(w, "  %-12s %s\n", "", o.dim("e.g. "+example(ex)))
		}
	}
	line("created", sum.Created, fmt.Sprintf("golden records from the systems in create_from; linked %d more records to them", sum.Linked), nil)
	line("accepted", sum.Accepted, "values chosen by per-field source-of-truth rules", first[nhisync.ActAccepted])
	line("refused", sum.Refused, "proposals that lost to a higher-ranked or stricter value; those systems are repaired", first[nhisync.ActRefused])
	line("merged", sum.Merged, "set edits combined (labels, entitlements)", first[nhisync.ActMerged])
	line("quarantined", sum.Quarantined, "values that failed validation: not applied, not propagated", first[nhisync.ActQuarantined])
	line("unmatched", sum.Unmatched, "records no registry knows (their system may not create records)", first[nhisync.ActRecordUnmatched])
	if sum.ConflictsOpened > 0 {
		line("conflicts", sum.ConflictsOpened, "opened for a person (resolve: manual)", first[nhisync.ActConflictOpened])
	}
	line("held", sum.WritesHeld, "writes waiting for a person's approval (approve_to)", first[nhisync.ActApprovalRequested])
	var written []string
	for _, s := range quickstart.Systems {
		if ss := sum.Systems[s]; ss != nil {
			written = append(written, fmt.Sprintf("%s %d", s, ss.Written))
		}
	}
	fmt.Fprintf(w, "  %-12s %s — every change is in the signed audit log\n", fmt.Sprintf("written %d", sum.WritesApplied), strings.Join(written, ", "))

	cfg := filepath.Join(dir, quickstart.ConfigFile)
	prog := progName() + " -c " + cfg
	fmt.Fprintf(w, "\n%s\n", o.bold("Try next:"))
	fmt.Fprintf(w, "  %s quarantine          # the invalid values nhisync stopped\n", prog)
	fmt.Fprintf(w, "  %s approvals           # the policy writes waiting for you\n", prog)
	rec := "service_account/aws/payments-bot"
	if len(sc.OwnerConflict) > 0 {
		rec = "service_account/" + sc.OwnerConflict[0]
	}
	fmt.Fprintf(w, "  %s explain %s owner\n", prog, rec)
	fmt.Fprintf(w, "Then edit a file under %s/systems/ and run `%s sync` again.\n", dir, prog)
}

func example(ev *nhisync.AuditEntry) string {
	s := ev.Record
	if ev.Field != "" {
		s += " " + ev.Field
	}
	switch {
	case ev.System == "":
	case ev.Action == nhisync.ActApprovalRequested:
		// The system of an approval request is where the write goes.
		s += " to " + ev.System
	default:
		s += " from " + ev.System
	}
	if !ev.New.IsZero() {
		s += ": " + quoteValue(ev.New)
	}
	if ev.Reason != "" {
		s += " (" + ev.Reason + ")"
	}
	return s
}
