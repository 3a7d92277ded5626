package file

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvFormat is a CSV file with a header row naming the columns. Sets are
// cells holding the elements joined by the mapping's separator. A UTF-8
// byte order mark (with a quoted header, as PowerShell's Export-Csv
// writes) and CRLF line ends are read and kept on rewrite.
//
// A row is never read as something it does not say: a row with fewer
// cells than the header (cut short, or hand-edited), or with extra
// non-empty cells, makes every field of that record malformed (quarantined
// with the line number) — unless it lacks its id, or it is the last line
// and has no line end, when the file looks torn and the read fails. A
// header without the id column or a read mapping's column fails the read
// naming the column and the header found.
type csvFormat struct {
	// guard neutralises formulas in cells nhisync writes (csv_formula_guard).
	guard bool
	// need lists the columns the header must have.
	need []column
}

// column is a header cell a system needs: what says what it is for.
type column struct {
	name, what string
	id         bool
}

func (csvFormat) nested() bool { return false }

const bom = "\ufeff"

// formulaStart holds the first characters that make a spreadsheet read a
// cell as a formula (OWASP CSV injection): = + - @ tab CR.
const formulaStart = "=+-@\t\r"

// guardCell prefixes a cell that would start a formula with a quote.
func guardCell(s string) string {
	if s != "" && strings.IndexByte(formulaStart, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// unguardCell is the inverse of guardCell: a quote before a formula
// character reads as the cell without it, so a value nhisync wrote reads
// back as itself and never looks like a change.
func unguardCell(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.IndexByte(formulaStart, s[1]) >= 0 {
		return s[1:]
	}
	return s
}

// syntaxError is a malformed file; Line is 1-based (0 when unknown).
type syntaxError struct {
	Line int
	Msg  string
}

func (e *syntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if pe.StartLine > 0 && pe.StartLine != pe.Line {
			// A quote left open swallows the lines after it: encoding/csv
			// names the line where it gave up, a person needs the line
			// where the record (and the stray quote) began.
			return &syntaxError{Line: pe.StartLine, Msg: fmt.Sprintf("%v (a quote opened in the record on this line is still open on line %d)", pe.Err, pe.Line)}
		}
		return &syntaxError{Line: pe.Line, Msg: pe.Err.Error()}
	}
	return err
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	return cr
}

// columns maps header names to column indexes; a name also matches a
// header cell holding it with surrounding spaces, and the first of two
// equal header cells wins.
func columns(header []string) map[string]int {
	cols := make(map[string]int, 2*len(header))
	for i, h := range header {
		if _, dup := cols[h]; !dup {
			cols[h] = i
		}
	}
	for i, h := range header {
		if t := strings.TrimSpace(h); t != h {
			if _, dup := cols[t]; !dup {
				cols[t] = i
			}
		}
	}
	return cols
}

// checkHeader reports the first needed column the header lacks.
func (f csvFormat) checkHeader(header []string, cols map[string]int) error {
	for _, c := range f.need {
		if _, ok := cols[c.name]; !ok {
			shown := strings.Join(header, ",")
			if len(shown) > 200 {
				shown = shown[:200] + "…"
			}
			return &syntaxError{Line: 1, Msg: fmt.Sprintf("the header has no column %q (%s); header found: %s. Fix the header or the mapping", c.name, c.what, shown)}
		}
	}
	return nil
}

type csvRow struct {
	cols  map[string]int
	cells []string
	guard bool
	// problem says why the row cannot be read as values ("" when it can).
	problem string
}

func (r *csvRow) text(fd *field) string {
	if i, ok := r.cols[fd.name]; ok && i < len(r.cells) {
		if r.guard {
			return unguardCell(r.cells[i])
		}
		return r.cells[i]
	}
	return ""
}

func (r *csvRow) get(fd *field) (any, bool) {
	if i, ok := r.cols[fd.name]; ok && i < len(r.cells) {
		return r.text(fd), true
	}
	return nil, false
}

func (r *csvRow) malformed() string { return r.problem }

// rowProblem says why a row of n cells cannot be read under a header of
// width cells ("" when it can): cut short, or holding extra non-empty
// cells (a stray separator shifts every cell after it).
func rowProblem(cells []string, width, line int) string {
	switch {
	case len(cells) < width:
		return fmt.Sprintf("line %d has %d of the header's %d fields: the row is cut short; fix the line", line, len(cells), width)
	case len(cells) > width:
		for _, c := range cells[width:] {
			if c != "" {
				return fmt.Sprintf("line %d has %d fields but the header has %d: a stray separator shifts the cells; fix the line", line, len(cells), width)
			}
		}
	}
	return ""
}

// lastByte remembers the last byte read through it.
type lastByte struct {
	r    io.Reader
	last byte
}

func (l *lastByte) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.last = p[n-1]
	}
	return n, err
}

// stripBOM returns r without a leading UTF-8 byte order mark.
func stripBOM(r *bufio.Reader) {
	if b, err := r.Peek(len(bom)); err == nil && string(b) == bom {
		r.Discard(len(bom))
	}
}

func (f csvFormat) scan(r io.Reader, fn func(row) error) error {
	lb := &lastByte{r: r}
	br := bufio.NewReaderSize(lb, 256<<10)
	stripBOM(br)
	cr := newCSVReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil // an empty file holds no records
	}
	if err != nil {
		return csvError(err)
	}
	header = append([]string(nil), header...)
	row := &csvRow{cols: columns(header), guard: f.guard}
	if err := f.checkHeader(header, row.cols); err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(err)
		}
		line, _ := cr.FieldPos(0)
		row.cells = rec
		row.problem = rowProblem(rec, len(header), line)
		if len(rec) < len(header) {
			if err := f.cutShort(br, lb, row, line); err != nil {
				return err
			}
		}
		if _, err := br.Peek(1); err == io.EOF && lb.last != '\n' && row.problem == "" {
			row.problem = unterminated(line)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// unterminated is the problem of a last line without a line end: its
// last cell may have been cut mid-write (alice@exa), and nothing in the
// row tells, so it is not read as values.
func unterminated(line int) string {
	return fmt.Sprintf("line %d, the last, has no line end: the file may have been cut mid-write; end the line to have it read", line)
}

// cutShort fails the read for a short row that lacks its id, or that is
// the file's last line without a line end (a torn file).
func (f csvFormat) cutShort(br *bufio.Reader, lb *lastByte, row *csvRow, line int) error {
	for _, c := range f.need {
		if c.id && row.cols[c.name] >= len(row.cells) {
			return &syntaxError{Line: line, Msg: fmt.Sprintf("the row has %d fields and is cut short before its id column %q; fix or remove the line", len(row.cells), c.name)}
		}
	}
	if _, err := br.Peek(1); err == io.EOF && lb.last != '\n' {
		return &syntaxError{Line: line, Msg: "the last line is incomplete (no line end, fields missing): the file looks torn, perhaps still being written; not read"}
	}
	return nil
}

type csvTable struct {
	header []string
	cols   map[string]int
	rows   [][]string
	lines  []int // the line each row starts on
	// short marks rows that had fewer cells than the header when loaded:
	// they are written back as they were, never padded into rows of
	// empty values.
	short []bool
	// problems says, per loaded row, why it cannot be read (rowProblem at
	// load: columns nhisync adds later do not make rows short).
	problems []string
	bom      bool
	crlf     bool
	guard    bool
}

func (f csvFormat) load(data []byte) (table, error) {
	t := &csvTable{guard: f.guard}
	if bytes.HasPrefix(data, []byte(bom)) {
		t.bom = true
		data = data[len(bom):]
	}
	if i := bytes.IndexByte(data, '\n'); i > 0 && data[i-1] == '\r' {
		t.crlf = true
	}
	cr := newCSVReader(bytes.NewReader(data))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		if t.header == nil {
			t.header = rec
			continue
		}
		line, _ := cr.FieldPos(0)
		t.rows = append(t.rows, rec)
		t.lines = append(t.lines, line)
		t.short = append(t.short, len(rec) < len(t.header))
		t.problems = append(t.problems, rowProblem(rec, len(t.header), line))
	}
	if n := len(t.rows); n > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		// A rewrite would end the line and make a possibly cut row read
		// as values: nothing is written until the file ends its last line.
		return nil, &syntaxError{Line: t.lines[n-1], Msg: "the last line has no line end: the file looks cut mid-write; end the line (or let the writer finish) before nhisync writes to it"}
	}
	t.cols = columns(t.header)
	if len(t.header) > 0 {
		if err := f.checkHeader(t.header, t.cols); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *csvTable) len() int { return len(t.rows) }

func (t *csvTable) row(i int) row {
	r := &csvRow{cols: t.cols, cells: t.rows[i], guard: t.guard}
	if i < len(t.problems) {
		r.problem = t.problems[i]
	}
	return r
}

func (t *csvTable) check(int, *field) error { return nil }

func (t *csvTable) arrays(int, *field) bool { return false }

// set stores text in a cell; a column the header lacks is added at the end.
func (t *csvTable) set(i int, fd *field, v any) {
	col, ok := t.cols[fd.name]
	if !ok {
		if v == nil {
			return
		}
		col = len(t.header)
		t.header = append(t.header, fd.name)
		t.cols[fd.name] = col
	}
	r := t.rows[i]
	for len(r) <= col {
		r = append(r, "")
	}
	s, _ := v.(string)
	if t.guard {
		s = guardCell(s)
	}
	r[col] = s
	t.rows[i] = r
}

func (t *csvTable) add() int {
	t.rows = append(t.rows, make([]string, len(t.header)))
	return len(t.rows) - 1
}

func (t *csvTable) encode() ([]byte, error) {
	var b bytes.Buffer
	if t.bom {
		b.WriteString(bom)
	}
	if len(t.header) > 0 {
		writeCSVRow(&b, t.header, t.crlf)
	}
	for i, r := range t.rows {
		for len(r) < len(t.header) && (i >= len(t.short) || !t.short[i]) {
			r = append(r, "")
		}
		writeCSVRow(&b, r, t.crlf)
	}
	return b.Bytes(), nil
}

// writeCSVRow writes one record as encoding/csv reads it back. It differs
// from csv.Writer where that loses data: a lone CR inside a cell is kept
// in a CRLF file (csv.Writer drops it), and a row of one empty cell is
// written as "" (csv.Writer writes an empty line, which readers skip).
func writeCSVRow(b *bytes.Buffer, rec []string, crlf bool) {
	eol := "\n"
	if crlf {
		eol = "\r\n"
	}
	if len(rec) == 1 && rec[0] == "" {
		b.WriteString(`""` + eol)
		return
	}
	for i, f := range rec {
		if i > 0 {
			b.WriteByte(',')
		}
		if !cellNeedsQuotes(f) {
			b.WriteString(f)
			continue
		}
		b.WriteByte('"')
		for j := 0; j < len(f); j++ {
			switch c := f[j]; {
			case c == '"':
				b.WriteString(`""`)
			case c == '\n':
				b.WriteString(eol)
			case c == '\r' && j+1 < len(f) && f[j+1] == '\n':
				// CRLF inside a cell reads back as LF whatever is written.
				b.WriteString(eol)
				j++
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	b.WriteString(eol)
}

// cellNeedsQuotes follows encoding/csv: separators, quotes, line breaks,
// leading space and the `\.` end-of-data marker need quotes.
func cellNeedsQuotes(f string) bool {
	if f == "" {
		return false
	}
	if f == `\.` || strings.ContainsAny(f, ",\"\r\n") {
		return true
	}
	return f[0] == ' ' || f[0] == '\t'
}
