package native

import (
	"encoding/json"
	"strings"

	"github.com/nhisync/nhisync"
	"go.yaml.in/yaml/v3"
)

// Node tags used when building nodes.
const (
	tagStr   = "!!str"
	tagSeq   = "!!seq"
	tagMap   = "!!map"
	tagInt   = "!!int"
	tagFloat = "!!float"
)

// MaxAliasValues bounds how many values NodeValue builds for one node, so
// that YAML aliases nested in aliases (a "billion laughs" document of a
// few hundred bytes) cannot expand without limit.
const MaxAliasValues = 10000

// NodeValue returns the native Go value of a YAML node, ready for Decode:
// strings for text (and timestamps, kept as written), json.Number for
// numbers, bool, nil for null, []any for sequences and map[string]any for
// mappings. Aliases are followed, up to MaxAliasValues values in all. It
// returns *nhisync.Error EINVALID for a value that expands past the limit,
// a mapping key that is not text, or a key given twice.
func NodeValue(n *yaml.Node) (any, error) {
	budget := MaxAliasValues
	return nodeValue(n, &budget)
}

func nodeValue(n *yaml.Node, budget *int) (any, error) {
	if n == nil {
		return nil, nil
	}
	if *budget--; *budget < 0 {
		return nil, nhisync.Errorf(nhisync.EINVALID, "line %d: the value expands (through YAML aliases) to more than %d values; write it out without nested aliases", n.Line, MaxAliasValues)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0], budget)
	case yaml.AliasNode:
		return nodeValue(n.Alias, budget)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		if err := mergeMapping(m, n, budget, map[string]bool{}); err != nil {
			return nil, err
		}
		return m, nil
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	case tagInt, tagFloat:
		if IsJSONNumber(n.Value) {
			return json.Number(n.Value), nil
		}
	}
	return n.Value, nil
}

// mergeMapping adds the pairs of mapping n to m; keys of n itself must be
// unique, and "<<" merges other mappings in without overriding n's keys.
func mergeMapping(m map[string]any, n *yaml.Node, budget *int, own map[string]bool) error {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return nhisync.Errorf(nhisync.EINVALID, "line %d: a mapping key is not text", n.Content[i].Line)
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if own[k.Value] {
			return nhisync.Errorf(nhisync.EINVALID, "line %d: key %q appears twice in one mapping; keep one", k.Line, k.Value)
		}
		own[k.Value] = true
		x, err := nodeValue(v, budget)
		if err != nil {
			return err
		}
		m[k.Value] = x
	}
	for _, v := range merges {
		v = deref(v)
		srcs := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			src = deref(src)
			if src == nil || src.Kind != yaml.MappingNode {
				return nhisync.Errorf(nhisync.EINVALID, "line %d: a << merge must name a mapping", n.Line)
			}
			sub := make(map[string]any, len(src.Content)/2)
			if err := mergeMapping(sub, src, budget, map[string]bool{}); err != nil {
				return err
			}
			for k, x := range sub {
				if !own[k] {
					own[k] = true
					m[k] = x
				}
			}
		}
	}
	return nil
}

// IsJSONNumber reports whether s is a number as JSON writes it.
func IsJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	return json.Valid([]byte(s)) && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
}

// NodeChecked is Node that also refuses a path through a mapping holding
// one of its keys twice (which of the two is meant cannot be told). It
// returns *nhisync.Error EINVALID naming the key and its line.
func (p Path) NodeChecked(root *yaml.Node) (*yaml.Node, error) {
	n := root
	for _, k := range p {
		n = deref(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, nil
		}
		var v *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != k {
				continue
			}
			if v != nil {
				return nil, nhisync.Errorf(nhisync.EINVALID, "line %d: key %q appears twice in one object; keep one", n.Content[i].Line, k)
			}
			v = n.Content[i+1]
		}
		if v == nil {
			return nil, nil
		}
		n = v
	}
	return n, nil
}

// Node returns the value node at p in a mapping node (nil when a key is
// missing or an intermediate node is not a mapping). Aliases are followed.
func (p Path) Node(root *yaml.Node) *yaml.Node {
	n := root
	for _, k := range p {
		n = deref(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		_, v := lookup(n, k)
		if v == nil {
			return nil
		}
		n = v
	}
	return n
}

// CheckNode reports why SetNode(root, …) would fail, without changing
// anything; nil when it would succeed.
func (p Path) CheckNode(root *yaml.Node) error {
	if len(p) == 0 {
		return nhisync.Errorf(nhisync.EINVALID, "empty native path")
	}
	anchored := func(n *yaml.Node, at Path) error {
		if n.Anchor != "" {
			where := at.String()
			if len(at) == 0 {
				where = "the record"
			}
			// An anchored node shows wherever it is aliased: a write would
			// change those places too, or leave their alias dangling.
			return nhisync.Errorf(nhisync.EINVALID, "native path %s: %s (line %d) is a YAML anchor (&%s); nhisync does not write into anchored nodes", p, where, n.Line, n.Anchor)
		}
		return nil
	}
	n := root
	for i, k := range p {
		if n.Kind != yaml.MappingNode {
			return nhisync.Errorf(nhisync.EINVALID, "native path %s: %s (line %d) is not a mapping", p, p[:i], n.Line)
		}
		if err := anchored(n, p[:i]); err != nil {
			return err
		}
		_, v := lookup(n, k)
		if v == nil {
			return nil // created on the way
		}
		if i == len(p)-1 {
			return anchored(v, p) // an alias here is replaced, not written through
		}
		if v.Kind == yaml.AliasNode {
			return nhisync.Errorf(nhisync.EINVALID, "native path %s: %s (line %d) is a YAML alias; nhisync does not write through aliases", p, p[:i+1], v.Line)
		}
		n = v
	}
	return nil
}

// SetNode stores v at p in a mapping node, replacing the old value node
// (its comments move to v) or appending the key, and creating missing
// intermediate mappings. It returns *nhisync.Error EINVALID, changing
// nothing, when CheckNode would.
func (p Path) SetNode(root *yaml.Node, v *yaml.Node) error {
	if err := p.CheckNode(root); err != nil {
		return err
	}
	n := root
	for i, k := range p {
		key, old := lookup(n, k)
		if i == len(p)-1 {
			if key == nil {
				n.Content = append(n.Content, keyNode(k), v)
				return nil
			}
			for j := 1; j < len(n.Content); j += 2 {
				if n.Content[j] == old {
					n.Content[j] = v
				}
			}
			return nil
		}
		if old == nil {
			old = &yaml.Node{Kind: yaml.MappingNode, Tag: tagMap}
			n.Content = append(n.Content, keyNode(k), old)
		}
		n = old
	}
	return nil
}

// DeleteNode removes the key at p and reports whether it was there.
// Intermediate mappings stay, even when they become empty.
func (p Path) DeleteNode(root *yaml.Node) bool {
	if len(p) == 0 {
		return false
	}
	parent := deref(p[:len(p)-1].Node(root))
	if parent == nil || parent.Kind != yaml.MappingNode {
		return false
	}
	k := p[len(p)-1]
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == k {
			parent.Content = append(parent.Content[:i], parent.Content[i+2:]...)
			return true
		}
	}
	return false
}

// EncodeNode builds the node for a native value from Encode (a string or
// []any of strings; nil is no node) so that it looks like old, the node it
// replaces: a number or boolean stays unquoted when the new text still
// reads as one, a quoted string keeps its quotes, a flow sequence stays
// flow, and comments stay.
func EncodeNode(v any, old *yaml.Node) *yaml.Node {
	if v == nil {
		return nil
	}
	var n *yaml.Node
	if elems, ok := v.([]any); ok {
		n = &yaml.Node{Kind: yaml.SequenceNode, Tag: tagSeq}
		var like *yaml.Node
		if old != nil && old.Kind == yaml.SequenceNode {
			n.Style = old.Style &^ yaml.TaggedStyle
			if len(old.Content) > 0 {
				like = old.Content[0]
			}
		}
		for _, e := range elems {
			s, _ := Text(e)
			n.Content = append(n.Content, scalarNode(s, like))
		}
	} else {
		s, _ := Text(v)
		if old != nil && old.Kind != yaml.ScalarNode {
			old = nil
		}
		n = scalarNode(s, old)
	}
	if old != nil {
		n.HeadComment, n.LineComment, n.FootComment = old.HeadComment, old.LineComment, old.FootComment
	}
	return n
}

func scalarNode(text string, like *yaml.Node) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tagStr, Value: text}
	if like == nil || like.Kind != yaml.ScalarNode {
		return n
	}
	switch tag := like.ShortTag(); tag {
	case tagStr:
		n.Style = like.Style &^ yaml.TaggedStyle
		if strings.Contains(text, "\n") && n.Style&(yaml.SingleQuotedStyle|yaml.FlowStyle) != 0 {
			n.Style = 0
		}
	case tagInt, tagFloat, "!!bool", "!!timestamp":
		rt := implicitTag(text)
		if rt == tag || ((tag == tagInt || tag == tagFloat) && (rt == tagInt || rt == tagFloat)) {
			n.Tag = rt
		}
	}
	return n
}

// implicitTag returns the tag YAML gives text written plain ("!!str" when
// it would not read back as one plain scalar).
func implicitTag(text string) string {
	if text == "" || strings.ContainsAny(text, "\n#") {
		return tagStr
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) != 1 {
		return tagStr
	}
	c := doc.Content[0]
	if c.Kind != yaml.ScalarNode || c.Style != 0 || c.Value != text {
		return tagStr
	}
	return c.ShortTag()
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func keyNode(k string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagStr, Value: k}
}
