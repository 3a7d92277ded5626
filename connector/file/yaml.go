package file

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/nhisync/nhisync/connector/native"
	"go.yaml.in/yaml/v3"
)

// yamlFormat is a YAML document holding a list of mappings. It is parsed
// whole into a node tree, so a rewrite keeps comments, key order, quoting
// and flow style; indentation is re-made in the file's own step.
type yamlFormat struct{}

func (yamlFormat) nested() bool { return true }

func (yamlFormat) scan(r io.Reader, fn func(row) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, seq, err := parseYAML(data)
	if err != nil {
		return err
	}
	for i, item := range seq.Content {
		r := nodeRow{n: item}
		if i == len(seq.Content)-1 && !endsLine(data) {
			r.problem = fmt.Sprintf("the file's last line has no line end: the record at line %d may have been cut mid-write; end the line to have it read", item.Line)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (yamlFormat) load(data []byte) (table, error) {
	doc, seq, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	if len(seq.Content) > 0 && !endsLine(data) {
		// A rewrite would end the line and make a possibly cut value read.
		return nil, &syntaxError{Line: seq.Content[len(seq.Content)-1].Line, Msg: "the file's last line has no line end: it looks cut mid-write; end the line (or let the writer finish) before nhisync writes to it"}
	}
	t := &yamlTable{doc: doc, seq: seq, orig: data, touched: map[int][]native.Path{}}
	t.indent, t.compact = yamlStyle(data)
	return t, nil
}

// parseYAML returns the document and its top-level list, checking that
// every item is a mapping. An empty file is an empty list.
func parseYAML(data []byte) (doc, seq *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var d yaml.Node
	if err := dec.Decode(&d); err != nil {
		if err != io.EOF {
			return nil, nil, &syntaxError{Msg: err.Error()}
		}
		d = yaml.Node{Kind: yaml.DocumentNode}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return nil, nil, &syntaxError{Msg: err.Error()}
		}
		return nil, nil, &syntaxError{Line: extra.Line, Msg: "a second YAML document; the file must hold one list of mappings"}
	}
	if len(d.Content) == 0 || (d.Content[0].Kind == yaml.ScalarNode && d.Content[0].ShortTag() == "!!null") {
		d.Content = []*yaml.Node{{Kind: yaml.SequenceNode, Tag: "!!seq"}}
	}
	top := d.Content[0]
	if top.Kind != yaml.SequenceNode {
		return nil, nil, &syntaxError{Line: top.Line, Msg: "expected a list of mappings (- name: …)"}
	}
	for _, item := range top.Content {
		if item.Kind != yaml.MappingNode {
			return nil, nil, &syntaxError{Line: item.Line, Msg: "list item is not a mapping"}
		}
	}
	return &d, top, nil
}

// yamlStyle guesses a YAML file's indentation step and whether lists
// under a key sit at the key's own indentation ("compact").
func yamlStyle(data []byte) (indent int, compact bool) {
	indent = 2
	lines := strings.Split(string(data), "\n")
	seenIndent, seenSeq := false, false
	for i, l := range lines {
		t := strings.TrimRight(l, " \t\r")
		if !strings.HasSuffix(t, ":") || strings.HasPrefix(strings.TrimSpace(t), "#") {
			continue
		}
		next := ""
		for _, n := range lines[i+1:] {
			if s := strings.TrimSpace(n); s != "" && !strings.HasPrefix(s, "#") {
				next = strings.TrimRight(n, "\r")
				break
			}
		}
		at := lead(t)
		if strings.HasPrefix(strings.TrimSpace(t), "- ") {
			at += 2
		}
		nat := lead(next)
		isSeq := strings.HasPrefix(strings.TrimSpace(next), "- ")
		switch {
		case isSeq && !seenSeq:
			compact, seenSeq = nat == at, true
		case !isSeq && !seenIndent && nat > at:
			indent, seenIndent = nat-at, true
		}
		if seenSeq && seenIndent {
			break
		}
	}
	return indent, compact
}

func lead(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

type yamlTable struct {
	doc, seq *yaml.Node
	indent   int
	compact  bool
	// orig is the file as loaded; touched holds the paths written, by
	// record.
	orig    []byte
	touched map[int][]native.Path
}

func (t *yamlTable) len() int                     { return len(t.seq.Content) }
func (t *yamlTable) row(i int) row                { return nodeRow{n: t.seq.Content[i]} }
func (t *yamlTable) check(i int, fd *field) error { return fd.path.CheckNode(t.seq.Content[i]) }
func (t *yamlTable) arrays(i int, fd *field) bool { return treeArrays(t.seq.Content[i], fd) }
func (t *yamlTable) set(i int, fd *field, v any) {
	t.touched[i] = append(t.touched[i], fd.path)
	treeSet(t.seq.Content[i], fd, v)
}

func (t *yamlTable) add() int {
	if len(t.seq.Content) == 0 {
		t.seq.Style = 0 // "[]" grows into a block list
	}
	t.seq.Content = append(t.seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
	return len(t.seq.Content) - 1
}

func (t *yamlTable) encode() ([]byte, error) {
	spellFlowNulls(t.doc, false, map[*yaml.Node]bool{})
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(t.indent)
	if t.compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(t.doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if i, ok := t.untouchedChanged(b.Bytes()); !ok {
		return nil, &syntaxError{Line: t.seq.Content[i].Line, Msg: "the YAML encoder cannot write this file back without changing this record, which nhisync did not touch (an unusual construct: an anchored or empty key?); write it plainly"}
	}
	return b.Bytes(), nil
}

// untouchedChanged checks that everything nhisync did not write — other
// records, and the other keys of the records it wrote — reads the same
// from out as from the file loaded; it returns the first record that does
// not. A file the plain decoder refuses (duplicate keys) is not checked.
func (t *yamlTable) untouchedChanged(out []byte) (int, bool) {
	var before, after []any
	if yaml.Unmarshal(t.orig, &before) != nil || yaml.Unmarshal(out, &after) != nil {
		return 0, true
	}
	for i := range before {
		if i >= len(after) {
			return i, false
		}
		b, a := before[i], after[i]
		for _, p := range t.touched[i] {
			// The whole top-level key: a write may create the mappings on
			// its way.
			deletePath(b, p[:1])
			deletePath(a, p[:1])
		}
		if !reflect.DeepEqual(b, a) {
			return i, false
		}
	}
	return 0, true
}

// deletePath removes the key at p from a decoded mapping, if there.
func deletePath(v any, p native.Path) {
	for i, k := range p {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if i == len(p)-1 {
			delete(m, k)
			return
		}
		v = m[k]
	}
}

// spellFlowNulls writes empty nulls inside flow collections ({a} is
// {a: null}) as null: the encoder would write them as an empty quoted
// string — text, not
// null — changing data nhisync never touched.
func spellFlowNulls(n *yaml.Node, inFlow bool, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.ScalarNode && inFlow && n.Value == "" && n.ShortTag() == "!!null" && n.Style == 0 {
		n.Value = "null"
	}
	flow := inFlow || n.Style&yaml.FlowStyle != 0
	for _, c := range n.Content {
		spellFlowNulls(c, flow, seen)
	}
}

// endsLine reports whether a YAML file ends its last line (or is blank
// or ends in a flow collection or comment-free closing bracket, which
// cannot be cut without a syntax error).
func endsLine(data []byte) bool {
	t := bytes.TrimRight(data, " \t")
	return len(bytes.TrimSpace(t)) == 0 || bytes.HasSuffix(t, []byte("\n")) || bytes.HasSuffix(t, []byte("]"))
}
