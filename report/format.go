package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// csvHeader is the column order of WriteCSV.
var csvHeader = []string{"severity", "type", "kind", "record", "system", "field", "detail", "frameworks", "count"}

// WriteCSV writes the findings as CSV (RFC 4180) with a header row;
// frameworks are joined by spaces.
func WriteCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, f := range res.Findings {
		count := ""
		if f.Count > 0 {
			count = strconv.Itoa(f.Count)
		}
		if err := cw.Write([]string{string(f.Severity), f.Type, f.Kind, f.Record, f.System, f.Field, f.Detail, strings.Join(f.Frameworks, " "), count}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown writes the findings as a Markdown document: a summary,
// then one table per severity.
func WriteMarkdown(w io.Writer, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# nhisync report %s\n\nGenerated %s. %d findings.\n\n", res.Report, res.GeneratedAt.Format("2006-01-02 15:04 MST"), len(res.Findings))
	if len(res.Findings) > 0 {
		b.WriteString("| type | findings |\n| --- | ---: |\n")
		for _, t := range Types {
			if n := res.Summary[t.Name]; n > 0 {
				fmt.Fprintf(&b, "| %s | %d |\n", t.Name, n)
			}
		}
	}
	for _, sev := range Severities {
		var rows []*Finding
		for _, f := range res.Findings {
			if f.Severity == sev {
				rows = append(rows, f)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s (%d)\n\n| type | record | system | detail | frameworks |\n| --- | --- | --- | --- | --- |\n", sev, len(rows))
		for _, f := range rows {
			rec := f.Name()
			if rec == "" {
				rec = f.Kind
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.Type, mdCell(rec), mdCell(f.System), mdCell(f.Detail), strings.Join(f.Frameworks, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdCell escapes a value for a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\\\")
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
