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
// byte order mark and CRLF line ends are kept on rewrite; short rows read
// as empty cells.
type csvFormat struct{}

func (csvFormat) nested() bool { return false }

const bom = "\ufeff"

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
		if i == 0 {
			h = strings.TrimPrefix(h, bom)
		}
		if _, dup := cols[h]; !dup {
			cols[h] = i
		}
	}
	for i, h := range header {
		if t := strings.TrimSpace(strings.TrimPrefix(h, bom)); t != h {
			if _, dup := cols[t]; !dup {
				cols[t] = i
			}
		}
	}
	return cols
}

type csvRow struct {
	cols  map[string]int
	cells []string
}

func (r *csvRow) text(fd *field) string {
	if i, ok := r.cols[fd.name]; ok && i < len(r.cells) {
		return r.cells[i]
	}
	return ""
}

func (r *csvRow) get(fd *field) (any, bool) {
	if i, ok := r.cols[fd.name]; ok && i < len(r.cells) {
		return r.cells[i], true
	}
	return nil, false
}

func (csvFormat) scan(r io.Reader, _ []field, fn func(row) error) error {
	cr := newCSVReader(bufio.NewReaderSize(r, 256<<10))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil // an empty file holds no records
	}
	if err != nil {
		return csvError(err)
	}
	row := &csvRow{cols: columns(header)}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(err)
		}
		row.cells = rec
		if err := fn(row); err != nil {
			return err
		}
	}
}

type csvTable struct {
	header []string
	cols   map[string]int
	rows   [][]string
	bom    bool
	crlf   bool
}

func (csvFormat) load(data []byte) (table, error) {
	t := &csvTable{}
	if bytes.HasPrefix(data, []byte(bom)) {
		t.bom = true
		data = data[len(bom):]
	}
	if i := bytes.IndexByte(data, '\n'); i > 0 && data[i-1] == '\r' {
		t.crlf = true
	}
	recs, err := newCSVReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, csvError(err)
	}
	if len(recs) > 0 {
		t.header, t.rows = recs[0], recs[1:]
	}
	t.cols = columns(t.header)
	return t, nil
}

func (t *csvTable) len() int { return len(t.rows) }

func (t *csvTable) row(i int) row { return &csvRow{cols: t.cols, cells: t.rows[i]} }

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
	w := csv.NewWriter(&b)
	w.UseCRLF = t.crlf
	if len(t.header) > 0 {
		if err := w.Write(t.header); err != nil {
			return nil, err
		}
	}
	for _, r := range t.rows {
		for len(r) < len(t.header) {
			r = append(r, "")
		}
		if err := w.Write(r); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return b.Bytes(), w.Error()
}
