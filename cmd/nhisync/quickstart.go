package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/engine"
	"github.com/nhisync/nhisync/quickstart"
)

func quickstartCmd(g *globals) *cobra.Command {
	var dir string
	var force bool
	var seed int64
	var serveToo bool
	var fl serveFlags
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Make a demo workspace of four drifting systems and run a first sync on it",
		Long: `Write a demo workspace — a CMDB export (CSV), a data catalog (YAML), an
identity provider (a SQLite table) and a policy engine (JSON) holding about 200
non-human identities with realistic drift — then run one sync and tell what
happened: what was accepted, refused, merged and quarantined, which writes wait
for approval, and what was written to each system. With --serve it then
creates an admin token, prints the console's URL and the token, and serves
the workspace (as nhisync serve does) until interrupted.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if serveToo {
				if err := fl.check(); err != nil {
					return err
				}
			}
			cfgPath := filepath.Join(dir, quickstart.ConfigFile)
			if _, err := os.Stat(cfgPath); err == nil && !force {
				return nhisync.Errorf(nhisync.EINVALID, "%s already holds a workspace: continue with `%s -c %s sync`, or start over with `%s quickstart --force`", dir, progName(), cfgPath, progName())
			}
			// Dates (rotations, updates) fall in the year before today, so
			// the reports judge them as they would a real estate; the same
			// seed on the same day gives the same files.
			today := time.Now().UTC().Truncate(24 * time.Hour)
			sc, err := quickstart.Generate(dir, quickstart.Options{Seed: seed, Force: force, Now: today})
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
			a.engine.RedactSummary(sum)
			if a.out.json {
				return a.out.JSON(map[string]any{"dir": dir, "config": cfgPath, "summary": sum})
			}
			entries, _, err := a.store.AuditHead(cmd.Context())
			if err != nil {
				return err
			}
			story(a.out.w, a.out, dir, sc, sum, entries)
			if !serveToo {
				return nil
			}
			secret, err := quickstartToken(cmd.Context(), a)
			if err != nil {
				return err
			}
			a.Close()
			fl.fallback = true
			return serve(cmd.Context(), &qg, fl, func(url string) {
				a.out.Printf("\nServing the console at %s/login\nSign in with this admin token (shown once; more with `%s -c %s token create NAME --role ROLE`):\n\n  %s\n\nEdit a file under %s and watch the change reach the other systems. Ctrl-C stops.\n",
					url, progName(), cfgPath, secret, filepath.Join(dir, "systems"))
			})
		},
	}
	cmd.Flags().BoolVar(&serveToo, "serve", false, "then serve the API and console on the workspace (prints the URL and an admin token)")
	cmd.Flags().StringVar(&fl.addr, "addr", "127.0.0.1:8080", "with --serve: the address (another free port when it is taken)")
	fl.logFormat = "text"
	cmd.Flags().StringVar(&dir, "dir", "nhisync-quickstart", "directory for the demo workspace")
	cmd.Flags().BoolVar(&force, "force", false, "replace an earlier quickstart workspace in --dir")
	cmd.Flags().Int64Var(&seed, "seed", 1, "seed of the generated estate (same seed on the same day, same data)")
	return cmd
}

// quickstartToken creates the demo's admin token and returns its secret.
func quickstartToken(ctx context.Context, a *app) (string, error) {
	secret, hash, err := nhisync.NewTokenSecret()
	if err != nil {
		return "", err
	}
	t := &nhisync.Token{Name: "quickstart-admin", Role: nhisync.RoleAdmin, Hash: hash, Created: time.Now().UTC(), CreatedBy: "quickstart"}
	if err := createToken(ctx, a, t, "quickstart"); err != nil {
		return "", err
	}
	return secret, nil
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
func story(w io.Writer, o *out, dir string, sc *quickstart.Scenario, sum *engine.Summary, entries int64) {
	fmt.Fprintf(w, "%s a demo estate in %s/\n", o.bold("nhisync quickstart:"), dir)
	fmt.Fprintf(w, "  %d non-human identities, held by four systems that disagree:\n", sc.Accounts)
	for _, s := range quickstart.Systems {
		fmt.Fprintf(w, "    %-8s %-18s %-36s %4d records\n", s, systemTitles[s], systemFiles[s], sc.Records[s])
	}
	fmt.Fprintf(w, "  and an application register, %s (%d applications; %s is decommissioned).\n", quickstart.AppsFile, sc.Records[quickstart.SystemApps], sc.RetiredApp)
	ev := events(sum.Events)
	fmt.Fprintf(w, "\n%s\n", o.bold("First sync:"))
	line := func(word string, n int, text string, examples ...string) {
		fmt.Fprintf(w, "  %-15s %s\n", fmt.Sprintf("%s %d", word, n), text)
		for _, ex := range examples {
			if ex != "" {
				fmt.Fprintf(w, "  %-15s %s\n", "", o.dim(ex))
			}
		}
	}
	line("created", sum.Created, fmt.Sprintf("golden records (idp and cmdb create identities, apps applications); %d records of the other systems linked", sum.Linked))
	line("accepted", sum.Accepted, "values, each by its field's source-of-truth rule")
	line("refused", sum.Refused, "values that lost to a higher-ranked or stricter one; their systems are repaired:",
		ev.contest(sc.OwnerConflict, "owner"), ev.contest(sc.Decommissioned, nhisync.FieldLifecycle))
	line("merged", sum.Merged, "set edits from several systems combined:", ev.merged(sc.LabelMerge, "classification"))
	line("quarantined", sum.Quarantined, "invalid values, neither applied nor spread:", ev.quarantined(sc.InvalidOwner))
	line("unmatched", sum.Unmatched, "NHIs no registry knows (their system may not create records):", ev.unmatched(sc.UnknownInPolicy))
	if sum.ConflictsOpened > 0 {
		line("conflicts", sum.ConflictsOpened, "opened for a person (resolve: manual)")
	}
	line("held", sum.WritesHeld, "writes waiting for a person's approval (approve_to):", ev.held(sc.PolicyApproval))
	var written []string
	for _, s := range quickstart.Systems {
		if ss := sum.Systems[s]; ss != nil {
			written = append(written, fmt.Sprintf("%s %d", s, ss.Written))
		}
	}
	line("written", sum.WritesApplied, strings.Join(written, ", ")+"; each only if the system still held what nhisync read")
	fmt.Fprintf(w, "  Every step is in the signed, hash-chained audit log (%d entries).\n", entries)

	cfg := filepath.Join(dir, quickstart.ConfigFile)
	prog := progName() + " -c " + cfg
	fmt.Fprintf(w, "\n%s\n", o.bold("Try next:"))
	fmt.Fprintf(w, "  %s quarantine          # the invalid values nhisync stopped\n", prog)
	fmt.Fprintf(w, "  %s approvals           # the policy writes waiting for you\n", prog)
	fmt.Fprintf(w, "  %s unmatched           # the NHIs no registry knows\n", prog)
	rec := "service_account/aws/payments-bot"
	if len(sc.OwnerConflict) > 0 {
		rec = "service_account/" + sc.OwnerConflict[0]
	}
	fmt.Fprintf(w, "  %s explain %s owner\n", prog, rec)
	fmt.Fprintf(w, "Then edit a file under %s/systems/ and run `%s sync` again.\n", dir, prog)
	// The hints every command prints say `nhisync CMD`, without -c.
	fmt.Fprintf(w, "The hints nhisync prints leave out -c: run `export NHISYNC_CONFIG=%s` in this folder and they work as written.\n", cfg)
	fmt.Fprintf(w, "\n%s what needs a person, with OWASP NHI and NIST CSF ids:\n", o.bold("Governance findings:"))
	fmt.Fprintf(w, "  %s report orphans        # no owner; %d identities of the decommissioned %s application\n", prog, len(sc.RetiredAppNHIs), sc.RetiredApp)
	fmt.Fprintf(w, "  (also report stale, drift, coverage, hygiene; report evidence --out evidence.html for an auditor)\n")
}

// events finds the decisions of a pass about planted accounts.
type events []*nhisync.AuditEntry

// find returns the last event with action about one of keys (and field,
// when given).
func (es events) find(action string, keys []string, field string) *nhisync.AuditEntry {
	for _, k := range keys {
		var last *nhisync.AuditEntry
		for _, e := range es {
			if e.Action == action && strings.EqualFold(e.Record, k) && (field == "" || e.Field == field) {
				last = e
			}
		}
		if last != nil {
			return last
		}
	}
	return nil
}

// contest tells how a disagreement about field was settled.
func (es events) contest(keys []string, field string) string {
	lost := es.find(nhisync.ActRefused, keys, field)
	if lost == nil {
		return ""
	}
	won := es.find(nhisync.ActAccepted, []string{lost.Record}, field)
	if won == nil {
		return ""
	}
	return fmt.Sprintf("%s %s: %s %s beats %s %s (%s)", lost.Record, field, won.System, quoteValue(won.New), lost.System, quoteValue(lost.New), lost.Reason)
}

func (es events) merged(keys []string, field string) string {
	e := es.find(nhisync.ActMerged, keys, field)
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s %s → %s (%s)", e.Record, field, quoteValue(e.New), e.Reason)
}

func (es events) quarantined(keys []string) string {
	e := es.find(nhisync.ActQuarantined, keys, "")
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s %s %s from %s (%s)", e.Record, e.Field, quoteValue(e.New), e.System, e.Reason)
}

func (es events) unmatched(keys []string) string {
	e := es.find(nhisync.ActRecordUnmatched, keys, "")
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s exists only in %s", e.Record, e.System)
}

func (es events) held(keys []string) string {
	e := es.find(nhisync.ActApprovalRequested, keys, "")
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s %s %s → %s to %s", e.Record, e.Field, quoteValue(e.Old), quoteValue(e.New), e.System)
}
