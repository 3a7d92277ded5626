package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"

	"github.com/nhisync/nhisync"
)

// A CSV file is rewritten without being held in memory: a pass's writes
// touch a few records of a file that may hold millions. The first read
// checks the file as load does and keeps only the rows the writes name;
// the writes are planned on those rows; the second read streams every row
// into the new file, the planned rows changed, and the new file replaces
// the old one only if both reads hashed the same (and the file still does
// at the swap, as for every rewrite). When the header keeps its columns,
// the lines not changed are copied byte for byte and only the changed rows
// are encoded; when a write adds a column, every row is re-encoded (and
// padded) as load and encode would.

// csvPicked is a CSV file's header and the rows a batch of writes names.
type csvPicked struct {
	t *csvTable
	// at is the index among the file's rows of each row in t.rows.
	at []int
	// width is the header's width as read (t.header may grow).
	width int
	// spans are the byte ranges of the rows in t.rows in the file, from
	// the end of the record before to the end of the row.
	spans [][2]int64
	sum   fileSum
	read  fs.FileInfo // the file's stat when opened for the read
}

// lineEnd remembers whether the first line ends with CRLF.
type lineEnd struct {
	r          io.Reader
	prev       byte
	seen, crlf bool
}

func (l *lineEnd) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if !l.seen {
		for _, b := range p[:n] {
			if b == '\n' {
				l.seen, l.crlf = true, l.prev == '\r'
				break
			}
			l.prev = b
		}
	}
	return n, err
}

// pickCSV reads the file at path and keeps the rows holding one of ids.
func (c *Connector) pickCSV(ctx context.Context, f csvFormat, path string, ids map[string]bool) (*csvPicked, error) {
	file, info, err := c.openRegular(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	g := newGuardedReader(ctx, file, c.maxBytes)
	le := &lineEnd{r: g}
	br := bufio.NewReaderSize(le, 256<<10)
	t := &csvTable{guard: f.guard}
	var skip int64
	if b, err := br.Peek(len(bom)); err == nil && string(b) == bom {
		t.bom = true
		br.Discard(len(bom))
		skip = int64(len(bom))
	}
	cr := newCSVReader(br)
	cr.ReuseRecord = true
	p := &csvPicked{t: t, read: info}
	header, err := cr.Read()
	switch {
	case err == io.EOF:
	case err != nil:
		return nil, c.readError(c.guardError(csvError(err)))
	default:
		t.header = slices.Clone(header)
		t.cols = columns(t.header)
	}
	p.width = len(t.header)
	row := &csvRow{cols: t.cols, guard: f.guard}
	n, last := 0, 0
	for t.header != nil {
		start := cr.InputOffset()
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.readError(c.guardError(csvError(err)))
		}
		line, _ := cr.FieldPos(0)
		last = line
		row.cells = rec
		if ids[c.idOf(row)] {
			t.rows = append(t.rows, slices.Clone(rec))
			t.lines = append(t.lines, line)
			t.short = append(t.short, len(rec) < p.width)
			t.problems = append(t.problems, rowProblem(rec, p.width, line))
			p.at = append(p.at, n)
			p.spans = append(p.spans, [2]int64{skip + start, skip + cr.InputOffset()})
		}
		n++
	}
	if _, err := io.Copy(io.Discard, g); err != nil {
		return nil, c.guardError(err)
	}
	if n > 0 && g.last != '\n' {
		return nil, c.readError(&syntaxError{Line: last, Msg: "the last line has no line end: the file looks cut mid-write; end the line (or let the writer finish) before nhisync writes to it"})
	}
	if len(t.header) > 0 {
		if err := f.checkHeader(t.header, t.cols); err != nil {
			return nil, c.readError(err)
		}
	}
	t.crlf = le.crlf
	if t.cols == nil {
		t.cols = map[string]int{}
	}
	p.sum = g.sum()
	return p, nil
}

// streamCSV writes the new file to w: every row of the file at path, the
// picked ones as changed. It returns errChanged when the file no longer
// hashes as it did when picked.
func (c *Connector) streamCSV(ctx context.Context, path string, p *csvPicked, w io.Writer) error {
	file, _, err := c.openRegular(path)
	if err != nil {
		return err
	}
	defer file.Close()
	g := newGuardedReader(ctx, file, c.maxBytes)
	if len(p.t.header) == p.width {
		return c.spliceCSV(g, p, w)
	}
	br := bufio.NewReaderSize(g, 256<<10)
	if b, err := br.Peek(len(bom)); err == nil && string(b) == bom {
		br.Discard(len(bom))
	}
	t := p.t
	var b bytes.Buffer
	if t.bom {
		b.WriteString(bom)
	}
	cr := newCSVReader(br)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil && err != io.EOF {
		return errChanged // it parsed when picked
	}
	if len(t.header) > 0 {
		writeCSVRow(&b, t.header, t.crlf)
	}
	k := 0
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errChanged
		}
		short := len(rec) < p.width
		if k < len(p.at) && p.at[k] == n {
			rec, short = t.rows[k], t.short[k]
			k++
		}
		for len(rec) < len(t.header) && !short {
			rec = append(rec, "")
		}
		writeCSVRow(&b, rec, t.crlf)
		if b.Len() >= 64<<10 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, g); err != nil {
		return c.guardError(err)
	}
	if k != len(p.at) || g.sum() != p.sum {
		return errChanged
	}
	return nil
}

// spliceCSV is streamCSV when the header keeps its columns: every row
// nhisync does not change is copied as it is, byte for byte (so is the
// header), and only the changed rows are encoded — and, as the parser
// skips them, any blank lines just before a changed row are dropped. A row
// copied reads back as the cells it held, as a re-encoded one would.
func (c *Connector) spliceCSV(g *guardedReader, p *csvPicked, w io.Writer) error {
	var at int64
	var b bytes.Buffer
	for k, sp := range p.spans {
		if _, err := io.CopyN(w, g, sp[0]-at); err != nil {
			return c.spliceError(err)
		}
		if _, err := io.CopyN(io.Discard, g, sp[1]-sp[0]); err != nil {
			return c.spliceError(err)
		}
		at = sp[1]
		b.Reset()
		writeCSVRow(&b, p.t.rows[k], p.t.crlf)
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
	}
	if _, err := io.Copy(w, g); err != nil {
		return c.guardError(err)
	}
	if g.sum() != p.sum {
		return errChanged
	}
	return nil
}

// spliceError: a file that ends before a row read a moment ago changed.
func (c *Connector) spliceError(err error) error {
	if err == io.EOF {
		return errChanged
	}
	return c.guardError(err)
}

// applyCSV applies updates (no creates) to a CSV file in one read
// (rewriteCSV), or in two (applyCSVPicked) when the one read leaves the
// file or batch to them; see Apply for what each result means.
func (c *Connector) applyCSV(ctx context.Context, f csvFormat, path string, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	byID := make(map[string][]int, len(writes))
	for i, w := range writes {
		byID[w.ID] = append(byID[w.ID], i)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := c.rewriteCSV(ctx, f, path, writes, byID)
		switch {
		case errors.Is(err, errSlowPath):
			return c.applyCSVPicked(ctx, f, path, writes)
		case errors.Is(err, errChanged):
			if attempt < maxAttempts {
				continue
			}
			return nil, c.keptChanging(err)
		}
		return res, err
	}
}

// applyCSVPicked applies updates (no creates) to a CSV file in two
// streaming reads: every file rewriteCSV leaves to it.
func (c *Connector) applyCSVPicked(ctx context.Context, f csvFormat, path string, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	ids := make(map[string]bool, len(writes))
	for _, w := range writes {
		ids[w.ID] = true
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := c.pickCSV(ctx, f, path, ids)
		if err != nil {
			return nil, err
		}
		a := &applier{c: c, t: p.t}
		results := make([]nhisync.WriteResult, len(writes))
		for i, w := range writes {
			results[i] = a.apply(w)
		}
		if !a.dirty {
			return results, nil
		}
		err = c.replaceWith(ctx, path, func(w io.Writer) error { return c.streamCSV(ctx, path, p, w) }, p.sum, p.read)
		if err == errChanged {
			if attempt < maxAttempts {
				continue
			}
			return nil, c.keptChanging(err)
		}
		if err != nil {
			return nil, err
		}
		return results, nil
	}
}
