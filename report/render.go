package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

//go:embed evidence.html.tmpl
var evidenceHTML string

var evidenceTmpl = template.Must(template.New("evidence").Funcs(template.FuncMap{"join": strings.Join}).Parse(evidenceHTML))

// maxShown is how many findings the HTML lists; -o json has them all.
const maxShown = 500

// WriteHTML renders the pack as one self-contained HTML file: styles
// inline, charts as inline SVG, no script and no external asset (a
// Content-Security-Policy forbids loading any), with a print stylesheet
// that starts each section on a new page.
func WriteHTML(w io.Writer, ev *Evidence) error {
	data := struct {
		Ev                                          *Evidence
		CoverageChart, FrameworkChart, ChangesChart template.HTML
		Severities                                  []Severity
		Shown                                       []*Finding
		Hidden                                      int
		ProofJSON                                   string
	}{Ev: ev, Severities: Severities}
	var cov []bar
	for _, c := range ev.Coverage {
		cov = append(cov, bar{label: c.System + " (" + c.Kind + ")", a: c.Held, total: c.Total, note: fmt.Sprintf("%d of %d", c.Held, c.Total)})
	}
	data.CoverageChart = hbarChart("Golden records held per system", cov)
	var fw []bar
	for _, f := range ev.ByFramework {
		if f.Count > 0 {
			fw = append(fw, bar{label: f.ID, a: f.Count})
		}
	}
	if len(fw) == 0 {
		fw = []bar{{label: "no findings", a: 0}}
	}
	data.FrameworkChart = hbarChart("Findings per framework id", fw)
	var ch []bar
	for _, c := range ev.Changes {
		ch = append(ch, bar{label: c.Start.Format("2006-01-02"), a: c.Decisions, b: c.Writes})
	}
	data.ChangesChart = columnChart("Changes per "+ev.Bucket, "decisions", "writes", ch)
	data.Shown = ev.Findings
	if len(data.Shown) > maxShown {
		data.Shown, data.Hidden = data.Shown[:maxShown], len(ev.Findings)-maxShown
	}
	if ev.Audit.Proof != nil {
		b, err := json.MarshalIndent(ev.Audit.Proof, "", "  ")
		if err != nil {
			return err
		}
		data.ProofJSON = string(b)
	}
	return evidenceTmpl.Execute(w, data)
}
