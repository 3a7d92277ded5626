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

// NodeValue returns the native Go value of a YAML node, ready for Decode:
// strings for text (and timestamps, kept as written), json.Number for
// numbers, bool, nil for null, []any for sequences and map[string]any for
// mappings. Aliases are followed.
func NodeValue(n *yaml.Node) (any, error) {
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return NodeValue(n.Content[0])
	case yaml.AliasNode:
		return NodeValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := NodeValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			return nil, nhisync.Errorf(nhisync.EINVALID, "line %d: %v", n.Line, err)
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

// IsJSONNumber reports whether s is a number as JSON writes it.
func IsJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	return json.Valid([]byte(s)) && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
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
	n := root
	for i, k := range p {
		if n.Kind != yaml.MappingNode {
			return nhisync.Errorf(nhisync.EINVALID, "native path %s: %s (line %d) is not a mapping", p, p[:i], n.Line)
		}
		if i == len(p)-1 {
			return nil
		}
		_, v := lookup(n, k)
		if v == nil {
			return nil // created on the way
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
