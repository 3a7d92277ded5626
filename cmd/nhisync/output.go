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
	// w is where text for people goes: through termSafe, so a value
	// holding terminal escapes cannot drive the terminal. raw takes JSON.
	w     io.Writer
	raw   io.Writer
	json  bool
	color bool
}

func newOut(w io.Writer, format string) *out {
	o := &out{w: termSafe{w}, raw: w, json: format == "json"}
	if f, ok := w.(*os.File); ok && !o.json {
		_, noColor := os.LookupEnv("NO_COLOR")
		o.color = !noColor && os.Getenv("TERM") != "dumb" && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
	}
	return o
}

// termSafe escapes what a terminal would act on in text written for
// people: C0 and C1 control characters (ESC starting CSI and OSC
// sequences, BEL, backspace, CR…), DEL, bidirectional overrides that
// reorder what is shown, and bytes that are not UTF-8 — as \x1b, \u009b,
// \u202e, \xff. Line ends pass, and so do the colour codes nhisync itself
// paints with (ansi* below); nothing else reaches the terminal raw. Every
// line printed through out goes through it, tables and explain/history
// alike, so a value from a system is shown, never executed.
type termSafe struct{ w io.Writer }

// ansiCodes are the only escape sequences let through.
var ansiCodes = []string{ansiBold, ansiGreen, ansiYellow, ansiRed, ansiDim, ansiReset}

func (t termSafe) Write(p []byte) (int, error) {
	if safeText(p) {
		return t.w.Write(p)
	}
	if _, err := t.w.Write(escapeTerminal(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safeText is the fast path: printable ASCII, line ends and tabs only.
func safeText(p []byte) bool {
	for _, c := range p {
		if (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

func escapeTerminal(p []byte) []byte {
	out := make([]byte, 0, len(p)+16)
	const hex = "0123456789abcdef"
	for i := 0; i < len(p); {
		c := p[i]
		if c == 0x1b {
			if code := ownCode(p[i:]); code != "" {
				out = append(out, code...)
				i += len(code)
				continue
			}
		}
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
				out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
			} else {
				out = append(out, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
		case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x61c:
			out = fmt.Appendf(out, "\\u%04x", r)
		default:
			out = append(out, p[i:i+n]...)
		}
		i += n
	}
	return out
}

// ownCode returns the colour code of nhisync's own that p starts with.
func ownCode(p []byte) string {
	for _, code := range ansiCodes {
		if len(p) >= len(code) && string(p[:len(code)]) == code {
			return code
		}
	}
	return ""
}

// JSON prints v as indented JSON.
func (o *out) JSON(v any) error {
	enc := json.NewEncoder(o.raw)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Printf prints text for people.
func (o *out) Printf(format string, args ...any) { fmt.Fprintf(o.w, format, args...) }

// Table prints rows under a header, columns aligned.
func (o *out) Table(header []string, rows [][]string) { o.StyledTable(header, rows, nil) }

// FullTable is Table without clipping long cells: for one record's
// values, where a clipped value would hide what a person came to read.
func (o *out) FullTable(header []string, rows [][]string) { o.table(header, rows, nil, 0) }

// StyledTable is Table with a color per cell (style returns an ANSI code
// or ""). Widths are measured on the plain text so color never skews
// the columns.
func (o *out) StyledTable(header []string, rows [][]string, style func(row, col int) string) {
	o.table(header, rows, style, 60)
}

// table prints a table, clipping cells to clipAt runes (0: never).
func (o *out) table(header []string, rows [][]string, style func(row, col int) string, clipAt int) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for ri, r := range rows {
		for i, c := range r {
			// Escaped before measuring, so an escaped value keeps its column.
			c = clip(string(escapeTerminal([]byte(c))), clipAt)
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

// clip shortens a cell for a table to n runes (n <= 0: never; JSON
// output is never clipped).
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if n <= 0 || utf8.RuneCountInString(s) <= n {
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
