package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

// mapRow is a JSON object decoded for reading.
type mapRow map[string]any

func (r mapRow) get(fd *field) (any, bool) { return fd.path.Get(r) }

// nodeRow is an object held as a node tree (YAML, or JSON being edited).
type nodeRow struct{ n *yaml.Node }

func (r nodeRow) get(fd *field) (any, bool) {
	v := fd.path.Node(r.n)
	if v == nil {
		return nil, false
	}
	x, err := native.NodeValue(v)
	if err != nil {
		return v.Value, true
	}
	return x, true
}

// decodeObject decodes one JSON object, numbers kept as json.Number.
func decodeObject(raw []byte) (mapRow, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("expected an object, found null")
	}
	return m, nil
}

// jsonFormat is a JSON array of objects.
type jsonFormat struct{}

func (jsonFormat) nested() bool { return true }

func (jsonFormat) scan(r io.Reader, _ []field, fn func(row) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	t, err := loadJSON(data)
	if err != nil {
		return err
	}
	for i := range t.spans {
		row, err := t.decodeSpan(i)
		if err != nil {
			return err
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

func (jsonFormat) load(data []byte) (table, error) { return loadJSON(data) }

// span is one element's byte range in the file.
type span struct{ start, end int }

// spanTable is a JSON array or JSONL file held as its bytes and the byte
// range of each record. Records are decoded when read and parsed into node
// trees only when written, so a rewrite keeps every untouched record
// byte for byte and memory stays near the file's size.
type spanTable struct {
	data    []byte
	spans   []span
	lines   bool // JSONL
	indent  string
	open    int // JSON: the offset just after '['
	close   int // JSON: the offset of ']'
	touched map[int]*yaml.Node
	added   []*yaml.Node
}

// skipSpace returns the offset of the first byte at or after i that is
// neither white space nor a comma.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n', ',':
			i++
		default:
			return i
		}
	}
	return i
}

func loadJSON(data []byte) (*spanTable, error) {
	t := &spanTable{data: data, indent: jsonIndent(data), touched: map[int]*yaml.Node{}}
	if len(bytes.TrimSpace(data)) == 0 {
		t.data, t.open, t.close, t.indent = []byte("[]\n"), 1, 1, "  "
		return t, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(data, dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, &syntaxError{Line: 1, Msg: "expected a JSON array of objects"}
	}
	t.open = int(dec.InputOffset())
	for dec.More() {
		start := skipSpace(data, int(dec.InputOffset()))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(data, dec, err)
		}
		if len(raw) == 0 || raw[0] != '{' {
			return nil, &syntaxError{Line: 1 + bytes.Count(data[:start], []byte("\n")), Msg: fmt.Sprintf("element %d of the array is not an object", len(t.spans)+1)}
		}
		t.spans = append(t.spans, span{start, int(dec.InputOffset())})
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonError(data, dec, err)
	}
	t.close = int(dec.InputOffset()) - 1
	if _, err := dec.Token(); err != io.EOF {
		return nil, &syntaxError{Line: 1 + bytes.Count(data[:t.close], []byte("\n")), Msg: "unexpected data after the JSON array"}
	}
	return t, nil
}

// jsonlFormat is one JSON object per line; blank lines are skipped.
type jsonlFormat struct{}

func (jsonlFormat) nested() bool { return true }

func (jsonlFormat) scan(r io.Reader, _ []field, fn func(row) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		m, err := decodeObject(b)
		if err != nil {
			return &syntaxError{Line: line, Msg: "invalid JSON object: " + err.Error()}
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (jsonlFormat) load(data []byte) (table, error) {
	t := &spanTable{data: data, lines: true, touched: map[int]*yaml.Node{}}
	line := 0
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		line++
		s := span{off, end}
		for s.start < s.end && isSpace(data[s.start]) {
			s.start++
		}
		for s.end > s.start && isSpace(data[s.end-1]) {
			s.end--
		}
		if s.start < s.end {
			if _, err := decodeObject(data[s.start:s.end]); err != nil {
				return nil, &syntaxError{Line: line, Msg: "invalid JSON object: " + err.Error()}
			}
			t.spans = append(t.spans, s)
		}
		off = end + 1
	}
	return t, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (t *spanTable) len() int { return len(t.spans) + len(t.added) }

func (t *spanTable) decodeSpan(i int) (row, error) {
	s := t.spans[i]
	m, err := decodeObject(t.data[s.start:s.end])
	if err != nil {
		return nil, &syntaxError{Line: 1 + bytes.Count(t.data[:s.start], []byte("\n")), Msg: "invalid JSON object: " + err.Error()}
	}
	return m, nil
}

func (t *spanTable) row(i int) row {
	if n := t.nodeIf(i); n != nil {
		return nodeRow{n}
	}
	r, err := t.decodeSpan(i)
	if err != nil {
		// load decoded every span already; this cannot happen.
		return mapRow{}
	}
	return r
}

// nodeIf returns the node tree of record i when it has one already.
func (t *spanTable) nodeIf(i int) *yaml.Node {
	if i >= len(t.spans) {
		return t.added[i-len(t.spans)]
	}
	return t.touched[i]
}

// node returns the node tree of record i, parsing it on first use.
func (t *spanTable) node(i int) *yaml.Node {
	if n := t.nodeIf(i); n != nil {
		return n
	}
	s := t.spans[i]
	dec := json.NewDecoder(bytes.NewReader(t.data[s.start:s.end]))
	dec.UseNumber()
	n, err := readJSON(dec)
	if err != nil {
		// load decoded every span already; this cannot happen.
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	t.touched[i] = n
	return n
}

func (t *spanTable) check(i int, fd *field) error { return fd.path.CheckNode(t.node(i)) }

func (t *spanTable) arrays(i int, fd *field) bool { return treeArrays(t.node(i), fd) }

func (t *spanTable) set(i int, fd *field, v any) { treeSet(t.node(i), fd, v) }

func (t *spanTable) add() int {
	t.added = append(t.added, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
	return t.len() - 1
}

func (t *spanTable) encode() ([]byte, error) {
	w := &jsonWriter{b: make([]byte, 0, len(t.data)+len(t.added)*256), indent: t.indent}
	depth := 1
	if t.lines {
		w.indent, depth = "", 0
	}
	prev := 0
	for i, s := range t.spans {
		w.b = append(w.b, t.data[prev:s.start]...)
		if n := t.touched[i]; n != nil {
			w.value(n, depth)
		} else {
			w.b = append(w.b, t.data[s.start:s.end]...)
		}
		prev = s.end
	}
	if t.lines {
		w.b = append(w.b, t.data[prev:]...)
		for _, n := range t.added {
			if len(w.b) > 0 && w.b[len(w.b)-1] != '\n' {
				w.b = append(w.b, '\n')
			}
			w.value(n, 0)
			w.b = append(w.b, '\n')
		}
		return w.b, nil
	}
	if len(t.added) == 0 {
		return append(w.b, t.data[prev:]...), nil
	}
	if len(t.spans) == 0 {
		w.b = append(w.b, t.data[:t.open]...)
		prev = t.close
	}
	for j, n := range t.added {
		if len(t.spans)+j > 0 {
			w.b = append(w.b, ',')
		}
		w.newline(1)
		w.value(n, 1)
	}
	if len(t.spans) == 0 {
		w.newline(0)
	}
	return append(w.b, t.data[prev:]...), nil
}

func treeArrays(n *yaml.Node, fd *field) bool {
	old := fd.path.Node(n)
	return old == nil || old.Kind == yaml.SequenceNode || old.ShortTag() == "!!null"
}

func treeSet(n *yaml.Node, fd *field, v any) {
	if v == nil {
		fd.path.DeleteNode(n)
		return
	}
	// check ran before set, so SetNode cannot fail here.
	_ = fd.path.SetNode(n, native.EncodeNode(v, fd.path.Node(n)))
}
