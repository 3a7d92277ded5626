package report

import (
	"fmt"
	"html"
	"html/template"
	"strings"
)

// bar is one bar of a chart: a label and one or two stacked values.
type bar struct {
	label string
	a, b  int // b stacks on a; total is the bar's full extent (0: a+b)
	total int
	note  string
}

// hbarChart draws labelled horizontal bars as an inline SVG (no script,
// no external asset). Each bar spans a/max of the width; with total set,
// a light track shows the whole.
func hbarChart(title string, bars []bar) template.HTML {
	const labelW, barW, rowH, pad = 200, 360, 22, 6
	hi := 1
	for _, b := range bars {
		hi = max(hi, b.a+b.b, b.total)
	}
	h := len(bars)*rowH + 2*pad
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), labelW+barW+120, h, labelW+barW+120, h)
	fmt.Fprintf(&s, `<title>%s</title>`, html.EscapeString(title))
	for i, b := range bars {
		y := pad + i*rowH
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end" class="lbl">%s</text>`, labelW-8, y+15, html.EscapeString(b.label))
		if b.total > 0 {
			fmt.Fprintf(&s, `<rect class="track" x="%d" y="%d" width="%d" height="%d"/>`, labelW, y+3, b.total*barW/hi, rowH-6)
		}
		w := b.a * barW / hi
		fmt.Fprintf(&s, `<rect class="bar" x="%d" y="%d" width="%d" height="%d"><title>%s: %d</title></rect>`, labelW, y+3, max(w, 1), rowH-6, html.EscapeString(b.label), b.a)
		note := b.note
		if note == "" {
			note = fmt.Sprint(b.a)
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="val">%s</text>`, labelW+max(w, b.total*barW/hi)+6, y+15, html.EscapeString(note))
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// columnChart draws stacked columns (a below, b on top) over time as an
// inline SVG, with the first and last labels under the axis.
func columnChart(title, aName, bName string, bars []bar) template.HTML {
	const w, h, left, bottom, top = 720, 200, 40, 28, 10
	hi := 1
	for _, b := range bars {
		hi = max(hi, b.a+b.b)
	}
	n := max(len(bars), 1)
	colW := float64(w-left-10) / float64(n)
	plotH := float64(h - bottom - top)
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), w, h, w, h)
	fmt.Fprintf(&s, `<title>%s</title>`, html.EscapeString(title))
	fmt.Fprintf(&s, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, left, h-bottom, w-10, h-bottom)
	fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end" class="val">%d</text>`, left-4, top+10, hi)
	fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end" class="val">0</text>`, left-4, h-bottom)
	for i, b := range bars {
		x := float64(left) + float64(i)*colW + 1
		ha := float64(b.a) * plotH / float64(hi)
		hb := float64(b.b) * plotH / float64(hi)
		y := float64(h-bottom) - ha
		fmt.Fprintf(&s, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`, x, y, max(colW-2, 1), ha, html.EscapeString(b.label), b.a, aName)
		fmt.Fprintf(&s, `<rect class="bar2" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`, x, y-hb, max(colW-2, 1), hb, html.EscapeString(b.label), b.b, bName)
	}
	if len(bars) > 0 {
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="val">%s</text>`, left, h-8, html.EscapeString(bars[0].label))
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end" class="val">%s</text>`, w-10, h-8, html.EscapeString(bars[len(bars)-1].label))
	}
	fmt.Fprintf(&s, `<rect class="bar" x="%d" y="%d" width="10" height="10"/><text x="%d" y="%d" class="val">%s</text>`, w-260, top, w-246, top+9, html.EscapeString(aName))
	fmt.Fprintf(&s, `<rect class="bar2" x="%d" y="%d" width="10" height="10"/><text x="%d" y="%d" class="val">%s</text>`, w-130, top, w-116, top+9, html.EscapeString(bName))
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}
