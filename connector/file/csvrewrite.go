package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"slices"

	"github.com/nhisync/nhisync"
)

// A pass's updates to a CSV file are applied in one read of it. Each line
// the read takes is copied to the new file as it is, but for the rows the
// writes name: those are parsed whole (by encoding/csv, as a snapshot
// parses them), their writes planned, and the changed ones encoded in
// their place. The rest of the file is only scanned: a row's quotes are
// checked as encoding/csv checks them and the cells its id is made of
// taken out, without parsing every cell into a string.
//
// The scan takes only what it reads exactly as encoding/csv does: a file
// holding anything else (a CR that does not end a line, a quote
// encoding/csv would refuse, a last line without its line end, a line
// longer than the read buffer) or a batch whose rewrite is not one row at
// a time (a write to an id two rows hold, a write that changes its row's
// id or adds a column to the header) is left to the two-read rewrite
// (applyCSVPicked), which reads every such file as load does and says
// what is wrong with it.

// errSlowPath: the one-read rewrite leaves this file or batch to the
// two-read one.
var errSlowPath = errors.New("the CSV file needs the two-read rewrite")

// csvScanner reads a CSV file one record (or blank line) at a time as the
// bytes it is made of.
type csvScanner struct {
	br *bufio.Reader
	// buf holds a record that spans lines.
	buf []byte
	// line is the number of lines read.
	line int
	// crlf tells whether the file's first line ends with CRLF.
	crlf bool
}

// next returns the next record, or the next blank line (blank: encoding/csv
// skips it), as the bytes read, line end included; raw is valid until the
// next call, line is the line the record starts on, quotes how many quote
// characters it holds. It returns io.EOF at the end, errSlowPath when the
// file is not one the scan reads exactly, and read errors as they come.
func (s *csvScanner) next() (raw []byte, blank bool, line, quotes int, err error) {
	l, err := s.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(l) == 0 {
			return nil, false, 0, 0, io.EOF
		}
		return nil, false, 0, 0, slowOr(err)
	}
	s.line++
	if s.line == 1 {
		s.crlf = len(l) >= 2 && l[len(l)-2] == '\r'
	}
	if len(l) == 1 || len(l) == 2 && l[0] == '\r' {
		return l, true, s.line, 0, nil
	}
	line = s.line
	quotes = bytes.Count(l, []byte{'"'})
	if quotes%2 == 0 {
		return l, false, line, quotes, nil
	}
	// A quoted cell holds a line break: read on to the line that closes it.
	s.buf = append(s.buf[:0], l...)
	for quotes%2 != 0 {
		l, err = s.br.ReadSlice('\n')
		if err != nil {
			return nil, false, 0, 0, slowOr(err)
		}
		s.line++
		quotes += bytes.Count(l, []byte{'"'})
		s.buf = append(s.buf, l...)
	}
	return s.buf, false, line, quotes, nil
}

// slowOr is errSlowPath for what the two-read rewrite explains better (a
// torn last line, a line longer than the buffer), and err otherwise.
func slowOr(err error) error {
	if err == io.EOF || err == bufio.ErrBufferFull {
		return errSlowPath
	}
	return err
}

// scanCells checks that raw, one whole record with its line end and
// quotes quote characters, reads under encoding/csv as this scan reads it,
// and puts the cells at the column indexes want (ascending) into cells
// (nil for a column the row does not reach); quoted cells are unquoted
// into scratch. ok is false when raw is not a record the scan reads
// exactly.
func scanCells(raw []byte, quotes int, want []int, cells [][]byte, scratch []byte) (out []byte, ok bool) {
	clear(cells)
	body := raw[:len(raw)-1]
	if n := len(body); n > 0 && body[n-1] == '\r' {
		body = body[:n-1]
	}
	if bytes.IndexByte(body, '\r') >= 0 {
		return scratch, false // encoding/csv reads a CR inside a line its own way
	}
	if quotes == 0 {
		// No quotes: the cells are what lies between the separators.
		pos, col := 0, 0
		for k, w := range want {
			for col < w {
				i := bytes.IndexByte(body[pos:], ',')
				if i < 0 {
					return scratch, true // the row ends before column w
				}
				pos += i + 1
				col++
			}
			end := bytes.IndexByte(body[pos:], ',')
			if end < 0 {
				end = len(body) - pos
			}
			cells[k] = body[pos : pos+end]
		}
		return scratch, true
	}
	// Past the last cell wanted, only the quotes need reading; a record
	// over several lines is read cell by cell, as its line breaks are.
	oneLine := bytes.IndexByte(body, '\n') < 0
	k := 0
	for pos, col := 0, 0; ; col++ {
		if k == len(want) && oneLine {
			return scratch, quotesRead(body[pos:])
		}
		var cell []byte
		if pos < len(body) && body[pos] == '"' {
			// A quoted cell: "" is a quote, and the closing quote is
			// followed by a separator or the line end.
			start, j, doubled := pos+1, pos+1, false
			for {
				i := bytes.IndexByte(body[j:], '"')
				if i < 0 {
					return scratch, false
				}
				j += i + 1
				if j < len(body) && body[j] == '"' {
					j++
					doubled = true
					continue
				}
				break
			}
			cell = body[start : j-1]
			if k < len(want) && want[k] == col && doubled {
				from := len(scratch)
				for len(cell) > 0 {
					i := bytes.IndexByte(cell, '"')
					if i < 0 {
						scratch = append(scratch, cell...)
						break
					}
					scratch = append(scratch, cell[:i+1]...)
					cell = cell[i+2:]
				}
				cell = scratch[from:]
			}
			if j < len(body) && body[j] != ',' {
				return scratch, false // encoding/csv: extraneous quote
			}
			pos = j
		} else {
			i := bytes.IndexByte(body[pos:], ',')
			if i < 0 {
				i = len(body) - pos
			}
			cell = body[pos : pos+i]
			if bytes.IndexByte(cell, '"') >= 0 || bytes.IndexByte(cell, '\n') >= 0 {
				return scratch, false // a bare quote; a line break outside quotes
			}
			pos += i
		}
		if k < len(want) && want[k] == col {
			cells[k] = cell
			k++
		}
		if pos == len(body) {
			return scratch, true
		}
		pos++ // the separator
	}
}

// quotesRead reports whether b, the rest of a one-line record from the
// start of a cell, reads under encoding/csv as scanCells reads it: every
// quote opens a cell, is doubled inside one or closes it before a
// separator or the line end. It looks at the quotes only, not at each
// cell: a wide record's cells past its id cost a scan for quotes, not a
// scan per cell (the commas between two quotes, outside any, are all
// separators).
func quotesRead(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '"')
		if i < 0 {
			return true
		}
		if i > 0 && b[i-1] != ',' {
			return false // a bare quote
		}
		j := i + 1
		for {
			q := bytes.IndexByte(b[j:], '"')
			if q < 0 {
				return false
			}
			j += q + 1
			if j < len(b) && b[j] == '"' {
				j++
				continue
			}
			break
		}
		if j == len(b) {
			return true
		}
		if b[j] != ',' {
			return false // encoding/csv: extraneous quote
		}
		b = b[j+1:]
	}
}

// unguardBytes is unguardCell on bytes.
func unguardBytes(b []byte) []byte {
	if len(b) >= 2 && b[0] == '\'' && bytes.IndexByte([]byte(formulaStart), b[1]) >= 0 {
		return b[1:]
	}
	return b
}

// csvIDCells is how a CSV row's id is made: the header columns (-1 for
// none) of the fields idOf reads, in the order it reads them.
func (c *Connector) csvIDCells(cols map[string]int) []int {
	var fds []*field
	switch {
	case c.id != nil:
		fds = []*field{c.id}
	default:
		for _, fi := range c.match {
			fds = append(fds, &c.fields[fi])
		}
	}
	at := make([]int, len(fds))
	for k, fd := range fds {
		at[k] = -1
		if i, ok := cols[fd.name]; ok {
			at[k] = i
		}
	}
	return at
}

// appendCSVID appends the id idOf gives a row whose id cells (in
// csvIDCells order) are cells.
func (c *Connector) appendCSVID(dst []byte, cells [][]byte, guard bool) []byte {
	text := func(b []byte) []byte {
		if guard {
			b = unguardBytes(b)
		}
		return bytes.TrimSpace(b)
	}
	if c.id != nil || len(cells) == 1 {
		return append(dst, text(cells[0])...)
	}
	from, empty := len(dst), true
	for k, b := range cells {
		if k > 0 {
			dst = append(dst, '/')
		}
		t := text(b)
		empty = empty && len(t) == 0
		dst = append(dst, t...)
	}
	if empty {
		return dst[:from]
	}
	return dst
}

// rewriteCSV applies updates (no creates) to the CSV file at path in one
// read, writing the new file as it goes, and puts the new file in place
// when a write changed it. byID lists the writes to each id in batch
// order. It returns errChanged when the file changed before the swap, and
// errSlowPath when the file or batch is for the two-read rewrite.
func (c *Connector) rewriteCSV(ctx context.Context, f csvFormat, path string, writes []nhisync.Write, byID map[string][]int) ([]nhisync.WriteResult, error) {
	file, info, err := c.openRegular(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	n, err := c.createNew(path)
	if err != nil {
		return nil, err
	}
	done, dirty, err := c.streamRewrite(ctx, f, file, n.w, writes, byID)
	if err != nil || !dirty {
		n.discard()
		if err != nil {
			return nil, err
		}
		return done.res, nil
	}
	if err := c.install(ctx, path, n, done.sum, info); err != nil {
		return nil, err
	}
	return done.res, nil
}

// csvRewritten is what one read of a CSV file rewrote: each write's result
// and the content hash of the file read.
type csvRewritten struct {
	res []nhisync.WriteResult
	sum fileSum
}

// streamRewrite reads file and writes the new file to w (see rewriteCSV);
// dirty tells whether a write changed a row.
func (c *Connector) streamRewrite(ctx context.Context, f csvFormat, file io.Reader, w *bufio.Writer, writes []nhisync.Write, byID map[string][]int) (out csvRewritten, dirty bool, err error) {
	g := newGuardedReader(ctx, file, c.maxBytes)
	br := bufio.NewReaderSize(g, 256<<10)
	readErr := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errSlowPath) {
			return err
		}
		return errSlowPath // the two-read rewrite reads it again and says what is wrong
	}
	hasBOM := false
	if b, err := br.Peek(len(bom)); err == nil && string(b) == bom {
		hasBOM = true
		br.Discard(len(bom))
		w.WriteString(bom)
	}
	s := &csvScanner{br: br}
	// The header: the first record.
	var header []string
	for {
		raw, blank, _, _, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, false, readErr(err)
		}
		w.Write(raw)
		if blank {
			continue
		}
		rec, ok := parseRecord(raw)
		if !ok {
			return out, false, errSlowPath
		}
		header = rec
		break
	}
	out.res = make([]nhisync.WriteResult, len(writes))
	if header == nil {
		// No header, no records: every write is to a missing record.
		for i, wr := range writes {
			out.res[i] = nhisync.WriteResult{Status: nhisync.WriteMissing, ID: wr.ID}
		}
		if _, err := io.Copy(io.Discard, g); err != nil {
			return out, false, readErr(err)
		}
		out.sum = g.sum()
		return out, false, nil
	}
	cols := columns(header)
	width := len(header)
	if err := f.checkHeader(header, cols); err != nil {
		return out, false, errSlowPath
	}
	at := c.csvIDCells(cols)
	want := slices.Clone(at)
	slices.Sort(want)
	want = slices.Compact(want)
	if len(want) > 0 && want[0] < 0 {
		want = want[1:]
	}
	cells := make([][]byte, len(want))
	idCells := make([][]byte, len(at))
	hit := make(map[string]bool, len(byID))
	var scratch, id []byte
	var enc bytes.Buffer
	var rows recordParser
	for {
		raw, blank, line, quotes, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, false, readErr(err)
		}
		if blank {
			w.Write(raw)
			continue
		}
		var ok bool
		scratch, ok = scanCells(raw, quotes, want, cells, scratch[:0])
		if !ok {
			return out, false, errSlowPath
		}
		for k, col := range at {
			idCells[k] = nil
			if i, found := slices.BinarySearch(want, col); found {
				idCells[k] = cells[i]
			}
		}
		id = c.appendCSVID(id[:0], idCells, f.guard)
		todo := byID[string(id)]
		if len(id) == 0 || len(todo) == 0 {
			w.Write(raw)
			continue
		}
		if hit[string(id)] {
			return out, false, errSlowPath // two rows hold the id
		}
		rowID := string(id)
		hit[rowID] = true
		rec, ok := rows.parse(raw)
		if !ok {
			return out, false, errSlowPath
		}
		t := &csvTable{header: header, cols: cols, rows: [][]string{rec}, lines: []int{line},
			short: []bool{len(rec) < width}, problems: []string{rowProblem(rec, width, line)},
			bom: hasBOM, crlf: s.crlf, guard: f.guard}
		a := &applier{c: c, t: t}
		for _, i := range todo {
			out.res[i] = a.apply(writes[i])
		}
		if !a.dirty {
			w.Write(raw)
			continue
		}
		if len(t.header) != width || c.idOf(t.row(0)) != rowID {
			return out, false, errSlowPath // the rewrite is no longer one row at a time
		}
		dirty = true
		enc.Reset()
		writeCSVRow(&enc, t.rows[0], t.crlf)
		w.Write(enc.Bytes())
	}
	for id, todo := range byID {
		if !hit[id] {
			for _, i := range todo {
				out.res[i] = nhisync.WriteResult{Status: nhisync.WriteMissing, ID: writes[i].ID}
			}
		}
	}
	out.sum = g.sum()
	return out, dirty, nil
}

// recordParser parses one record at a time as encoding/csv does, with one
// csv.Reader for all of them: a new reader per row written (its buffers
// grown anew each time) was a sixth of a rewrite's scan.
type recordParser struct {
	src bytes.Reader
	cr  *csv.Reader
}

// parse parses raw, one record, as encoding/csv does; ok is false unless
// it holds exactly one record. A reader that failed is not used again.
func (p *recordParser) parse(raw []byte) ([]string, bool) {
	if p.cr == nil {
		p.cr = newCSVReader(&p.src)
	}
	p.src.Reset(raw)
	rec, err := p.cr.Read()
	if err == nil {
		_, err = p.cr.Read()
		if err == io.EOF {
			return rec, true
		}
	}
	p.cr = nil
	return nil, false
}

// parseRecord parses raw, one record, as encoding/csv does; ok is false
// unless it holds exactly one record.
func parseRecord(raw []byte) ([]string, bool) {
	var p recordParser
	return p.parse(raw)
}
