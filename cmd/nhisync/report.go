package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/report"
)

// reportFormats are the outputs report commands print; the global -o
// allows table and json, reports also csv and md.
var reportFormats = []string{"table", "json", "csv", "md"}

func reportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Governance findings tagged with OWASP NHI and NIST CSF ids; evidence writes an auditor's pack",
		Long: `Governance findings over what the store holds (golden records, every system's
assertions, open items, system states, the audit log); no system is read.

  orphans    NHIs nobody answers for: no owner, an unknown or departed owner,
             an application decommissioned while the NHI stays active
  stale      time fields older than their max_age (long-lived secrets), and
             systems not read for ten poll intervals
  drift      system values that differ from the golden value, and why
  coverage   which records each system lacks; unmatched and disputed records;
             fields no system gives a value for
  hygiene    one NHI used by several applications or environments, used
             interactively by a person, or overprivileged
             (reports.hygiene.overprivileged)
  evidence   an auditor's pack: one self-contained HTML file (--out) or JSON

Every finding has a severity (high, medium, low) and framework ids. Output:
-o table (default), json, csv or md. The command exits 0 whatever it finds;
--fail-on SEVERITY exits 1 when a finding of that severity or a higher one
exists (for CI pipelines).`,
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(reportFormats, g.output) {
				return usagef("-o/--output must be one of %s for reports, not %q", strings.Join(reportFormats, ", "), g.output)
			}
			return nil
		},
	}
	for _, name := range reportNames {
		cmd.AddCommand(findingsCmd(g, name))
	}
	cmd.AddCommand(evidenceCmd(g))
	return cmd
}

// reportNames are the finding reports the CLI offers, in help order.
var reportNames = []string{"orphans", "stale", "drift", "coverage", "hygiene"}

var reportShort = map[string]string{
	"orphans":  "NHIs nobody answers for (OWASP NHI1)",
	"stale":    "values older than their max_age (OWASP NHI7) and systems not read for 10 polls",
	"drift":    "system values that differ from the golden value, and why they are not fixed yet",
	"coverage": "records each system lacks; unmatched and disputed records; empty fields",
	"hygiene":  "NHI reuse (NHI9), environments (NHI8), human use (NHI10), overprivileged (NHI5)",
}

// reportFlags are the filters every finding report takes.
type reportFlags struct {
	kind, system, where, failOn string
}

func (f *reportFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kind, "kind", "", "only findings about records of this kind")
	cmd.Flags().StringVar(&f.system, "system", "", "only findings about this system")
	cmd.Flags().StringVar(&f.where, "where", "", "CEL filter over records, as for `records --where` (leaves out findings about no record)")
}

func (f *reportFlags) addFailOn(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.failOn, "fail-on", "", "exit 1 when a finding of this severity (high, medium, low) or a higher one exists")
}

// reporter makes the Reporter the flags select, with the engine's drift
// (report drift and the evidence pack's findings ask the planner why).
func (f *reportFlags) reporter(a *app) (*report.Reporter, error) {
	opt := report.Options{Kind: f.kind, System: f.system, Where: f.where}
	opt.Drift = a.engine.Drift
	return report.New(a.cfg, a.store, opt)
}

func findingsCmd(g *globals, name string) *cobra.Command {
	var fl reportFlags
	cmd := &cobra.Command{
		Use:   name,
		Short: reportShort[name],
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var failOn report.Severity
			if fl.failOn != "" {
				s, err := report.ParseSeverity(fl.failOn)
				if err != nil {
					return usagef("--fail-on: %s", nhisync.ErrorMessage(err))
				}
				failOn = s
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				rp, err := fl.reporter(a)
				if err != nil {
					return err
				}
				res, err := rp.Run(cmd.Context(), name)
				if err != nil {
					return err
				}
				if err := printReport(a, res); err != nil {
					return err
				}
				return failed(res, failOn)
			})
		},
	}
	fl.add(cmd)
	fl.addFailOn(cmd)
	return cmd
}

// failed returns an error (exit 1) when --fail-on names a severity that
// a finding reaches.
func failed(res *report.Result, failOn report.Severity) error {
	if failOn == "" {
		return nil
	}
	n := 0
	for _, f := range res.Findings {
		if f.Severity.AtLeast(failOn) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// The findings are printed already (with -o json, as one document):
	// run adds only the one-line reason on stderr.
	return &reportedError{nhisync.Errorf(nhisync.ECONFLICT, "%d %s finding(s) of severity %s or higher (--fail-on %s)", n, res.Report, failOn, failOn)}
}

// printReport prints a report in the chosen format.
func printReport(a *app, res *report.Result) error {
	switch a.g.output {
	case "json":
		return a.out.JSON(res)
	case "csv":
		return report.WriteCSV(a.out.w, res)
	case "md":
		return report.WriteMarkdown(a.out.w, res)
	}
	o := a.out
	if len(res.Findings) == 0 {
		o.Printf("%s: no findings.\n", res.Report)
		return nil
	}
	for _, sev := range report.Severities {
		var rows [][]string
		for _, f := range res.Findings {
			if f.Severity != sev {
				continue
			}
			rec := f.Name()
			if rec == "" {
				rec = f.Kind
			}
			rows = append(rows, []string{f.Type, rec, f.System, f.Detail, strings.Join(f.Frameworks, " ")})
		}
		if len(rows) == 0 {
			continue
		}
		paint := map[report.Severity]string{report.High: ansiRed, report.Medium: ansiYellow, report.Low: ansiDim}[sev]
		o.Printf("%s\n", o.paint(ansiBold+paint, fmt.Sprintf("%s (%d)", strings.ToUpper(string(sev)), len(rows))))
		o.wideTable([]string{"type", "record", "system", "detail", "frameworks"}, rows)
		o.Printf("\n")
	}
	var parts []string
	for _, t := range report.Types {
		if n := res.Summary[t.Name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", t.Name, n))
		}
	}
	o.Printf("%d findings: %s\n", len(res.Findings), strings.Join(parts, ", "))
	return nil
}

// wideTable prints rows under a header like Table, but never clips the
// detail column (a finding's sentence is the point of the report): the
// other columns are aligned and the detail comes last.
func (o *out) wideTable(header []string, rows [][]string) {
	const detail = 3
	order := func(r []string) []string {
		return append(append(slices.Clone(r[:detail]), r[detail+1:]...), r[detail])
	}
	hdr := order(header)
	cells := make([][]string, len(rows))
	widths := make([]int, len(hdr)-1)
	for i := range widths {
		widths[i] = utf8.RuneCountInString(hdr[i])
	}
	for ri, r := range rows {
		cells[ri] = order(r)
		for i := range widths {
			widths[i] = max(widths[i], utf8.RuneCountInString(cells[ri][i]))
		}
	}
	line := func(cs []string, bold bool) {
		var b strings.Builder
		for i, c := range cs {
			if bold {
				c = o.bold(strings.ToUpper(c))
			}
			b.WriteString(c)
			if i < len(widths) {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cs[i])+2))
			}
		}
		fmt.Fprintln(o.w, strings.TrimRight(b.String(), " "))
	}
	line(hdr, true)
	for _, c := range cells {
		line(c, false)
	}
}

func evidenceCmd(g *globals) *cobra.Command {
	var fl reportFlags
	var since, outFile string
	cmd := &cobra.Command{
		Use:   "evidence --out FILE.html",
		Short: "Write an auditor's evidence pack: one self-contained, printable HTML file (or -o json)",
		Long: `Write an auditor's evidence pack as ONE self-contained HTML file (no external
assets, no script: it opens offline from an email attachment, and prints with
a page per section): the scope and time window; coverage per system and
findings by framework id as inline SVG charts; changes over time from the
audit log; every conflict, approval and quarantine decision in the window
with who decided, when and why; the latest signed checkpoint, the verifier
key, and the commands (and a stand-alone script) an auditor runs to check an
inclusion proof without nhisync. -o json prints the same content.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var from time.Time
			if since != "" {
				t, ok := nhisync.ParseTime(since)
				if !ok {
					return usagef("--since %q: give a date (2026-01-31) or an RFC 3339 time", since)
				}
				from = t
			}
			switch {
			case g.output == "json" && outFile != "":
				return usagef("give either --out FILE.html or -o json, not both")
			case g.output != "json" && outFile == "":
				return usagef("where to? give --out FILE.html (or -o json to print the pack as JSON)")
			case g.output != "json" && g.output != "table":
				return usagef("evidence is HTML (--out FILE.html) or JSON (-o json), not %s", g.output)
			}
			return g.with(cmd.Context(), false, func(a *app) error {
				rp, err := fl.reporter(a)
				if err != nil {
					return err
				}
				vk := ""
				if _, err := os.Stat(a.cfg.SigningKey); err == nil {
					if vk, err = verifierKey(a, ""); err != nil {
						return err
					}
				}
				ev, err := rp.Evidence(cmd.Context(), from, vk)
				if err != nil {
					return err
				}
				if a.out.json {
					return a.out.JSON(ev)
				}
				var buf bytes.Buffer
				if err := report.WriteHTML(&buf, ev); err != nil {
					return nhisync.Errorf(nhisync.EINTERNAL, "render the evidence pack: %v", err)
				}
				if err := os.WriteFile(outFile, buf.Bytes(), 0o644); err != nil {
					return nhisync.Errorf(nhisync.EINVALID, "cannot write %s: %v", outFile, err)
				}
				cp := "no signed checkpoint yet"
				if ev.Audit.Checkpoint != nil {
					cp = fmt.Sprintf("checkpoint of %d entries", ev.Audit.Checkpoint.Size)
				}
				a.out.Printf("Wrote %s: %d findings, %d decisions by people since %s, %s. Open it in a browser, or print it.\n",
					outFile, len(ev.Findings), len(ev.Decisions), ev.Window.Since.Format("2006-01-02"), cp)
				return nil
			})
		},
	}
	fl.add(cmd)
	cmd.Flags().StringVar(&since, "since", "", "start of the window (a date or RFC 3339 time; default 90 days ago)")
	cmd.Flags().StringVar(&outFile, "out", "", "HTML file to write")
	return cmd
}
