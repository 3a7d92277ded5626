package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
)

// out prints results as aligned tables for people (color only on a
// terminal, never with NO_COLOR) or as JSON for programs.
type out struct {
	w     io.Writer
	json  bool
	color bool
}

func newOut(w io.Writer, format string) *out {
	o := &out{w: w, json: format == "json"}
	if f, ok := w.(*os.File); ok && !o.json {
		_, noColor := os.LookupEnv("NO_COLOR")
		o.color = !noColor && os.Getenv("TERM") != "dumb" && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
	}
	return o
}

// JSON prints v as indented JSON.
func (o *out) JSON(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Printf prints text for people.
func (o *out) Printf(format string, args ...any) { fmt.Fprintf(o.w, format, args...) }

// Table prints rows under a header, columns aligned.
func (o *out) Table(header []string, rows [][]string) { o.StyledTable(header, rows, nil) }

// StyledTable is Table with a color per cell (style returns an ANSI code
// or ""). Widths are measured on the plain text so color never skews
// the columns.
func (o *out) StyledTable(header []string, rows [][]string, style func(row, col int) string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for ri, r := range rows {
		for i, c := range r {
			c = clip(c, 60)
			rows[ri][i] = c
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	line := func(cells []string, styleOf func(col int) string) {
		var b strings.Builder
		for i, c := range cells {
			pad := ""
			if i < len(cells)-1 && i < len(widths) {
				pad = strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2)
			}
			b.WriteString(o.paint(styleOf(i), c))
			b.WriteString(pad)
		}
		fmt.Fprintln(o.w, strings.TrimRight(b.String(), " "))
	}
	upper := make([]string, len(header))
	for i, h := range header {
		upper[i] = strings.ToUpper(h)
	}
	line(upper, func(int) string { return ansiBold })
	for ri, r := range rows {
		line(r, func(col int) string {
			if style == nil {
				return ""
			}
			return style(ri, col)
		})
	}
}

// clip shortens a cell for a table (JSON output is never clipped).
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

const (
	ansiBold   = "\x1b[1m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiDim    = "\x1b[2m"
	ansiReset  = "\x1b[0m"
)

func (o *out) paint(code, s string) string {
	if !o.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (o *out) bold(s string) string   { return o.paint(ansiBold, s) }
func (o *out) green(s string) string  { return o.paint(ansiGreen, s) }
func (o *out) yellow(s string) string { return o.paint(ansiYellow, s) }
func (o *out) dim(s string) string    { return o.paint(ansiDim, s) }
func (o *out) red(s string) string    { return o.paint(ansiRed, s) }
