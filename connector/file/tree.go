package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

// mapRow is a JSON object decoded for reading. encoding/json keeps the
// last of two equal keys and turns invalid UTF-8 into U+FFFD; both would
// make a value out of data that is not one, so mapRow remembers them and
// reads an affected field as native.Invalid.
type mapRow struct {
	m map[string]any
	// dups are the key paths given twice in the object.
	dups []native.Path
	// badUTF8: the object's bytes are not valid UTF-8.
	badUTF8 bool
	// line returns the object's first line, for reasons.
	line func() int
}

func (r *mapRow) get(fd *field) (any, bool) {
	for _, d := range r.dups {
		if overlaps(d, fd.path) {
			return native.Invalid{Reason: fmt.Sprintf("key %s appears twice in the object at line %d; keep one", d, r.line())}, true
		}
	}
	v, ok := fd.path.Get(r.m)
	if ok && r.badUTF8 && holdsReplacement(v) {
		return native.Invalid{Reason: fmt.Sprintf("the object at line %d is not valid UTF-8 here; fix the encoding at the source", r.line())}, true
	}
	return v, ok
}

// overlaps reports whether one path is a prefix of the other.
func overlaps(a, b native.Path) bool {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func holdsReplacement(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, utf8.RuneError)
	case []any:
		for _, e := range v {
			if holdsReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, utf8.RuneError) || holdsReplacement(e) {
				return true
			}
		}
	}
	return false
}

// nodeRow is an object held as a node tree (YAML, or JSON being edited).
type nodeRow struct {
	n *yaml.Node
	// problem says why the record cannot be read ("" when it can).
	problem string
}

func (r nodeRow) malformed() string { return r.problem }

func (r nodeRow) get(fd *field) (any, bool) {
	v, err := fd.path.NodeChecked(r.n)
	if err != nil {
		return native.Invalid{Reason: nhisync.ErrorMessage(err)}, true
	}
	if v == nil {
		return nil, false
	}
	x, err := native.NodeValue(v)
	if err != nil {
		return native.Invalid{Reason: nhisync.ErrorMessage(err)}, true
	}
	return x, true
}

// decodeObject decodes one JSON object, numbers kept as json.Number;
// line returns its first line.
func decodeObject(raw []byte, line func() int) (*mapRow, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("expected an object, found null")
	}
	r := &mapRow{m: m, badUTF8: !utf8.Valid(raw), line: line}
	// Counting keys in the text is one pass without allocation; only an
	// object that lost keys to duplicates is walked to find them.
	if countKeys(raw) != countMapKeys(m) {
		r.dups = dupPaths(raw)
	}
	return r, nil
}

// countKeys counts the member names of every object in a valid JSON text.
func countKeys(b []byte) int {
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		for i++; i < len(b) && b[i] != '"'; i++ {
			if b[i] == '\\' {
				i++
			}
		}
		j := i + 1
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j < len(b) && b[j] == ':' {
			n++
		}
	}
	return n
}

// countMapKeys counts the keys of every object in a decoded value.
func countMapKeys(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		n += len(v)
		for _, e := range v {
			n += countMapKeys(e)
		}
	case []any:
		for _, e := range v {
			n += countMapKeys(e)
		}
	}
	return n
}

// dupPaths returns the key paths given twice in a valid JSON object (keys
// inside arrays are left out: native paths do not go through arrays).
func dupPaths(raw []byte) []native.Path {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []native.Path
	var walk func(path native.Path, inArray bool) error
	walk = func(path native.Path, inArray bool) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		seen := map[string]bool{}
		for dec.More() {
			if d == '{' {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				p := append(path[:len(path):len(path)], k)
				if seen[k] && !inArray {
					out = append(out, p)
				}
				seen[k] = true
				if err := walk(p, inArray); err != nil {
					return err
				}
				continue
			}
			if err := walk(path, true); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	walk(nil, false)
	return out
}

// jsonFormat is a JSON array of objects.
type jsonFormat struct{}

func (jsonFormat) nested() bool { return true }

func (jsonFormat) scan(r io.Reader, fn func(row) error) error {
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

func (jsonlFormat) scan(r io.Reader, fn func(row) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		at := line
		m, err := decodeObject(b, func() int { return at })
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
			if _, err := decodeObject(data[s.start:s.end], nil); err != nil {
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
	m, err := decodeObject(t.data[s.start:s.end], func() int { return 1 + bytes.Count(t.data[:s.start], []byte("\n")) })
	if err != nil {
		return nil, &syntaxError{Line: 1 + bytes.Count(t.data[:s.start], []byte("\n")), Msg: "invalid JSON object: " + err.Error()}
	}
	return m, nil
}

func (t *spanTable) row(i int) row {
	if n := t.nodeIf(i); n != nil {
		return nodeRow{n: n}
	}
	r, err := t.decodeSpan(i)
	if err != nil {
		// load decoded every span already; this cannot happen.
		return &mapRow{m: map[string]any{}}
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
