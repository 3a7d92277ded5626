package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// parser walks the YAML nodes of one file, collecting problems.
type parser struct {
	problems
	lookupEnv func(string) (string, bool)
	// orig holds the text as written of scalars changed by ${VAR} expansion.
	orig map[*yaml.Node]string
	// badExpand holds scalars whose expansion failed (already reported);
	// decoders skip them silently.
	badExpand map[*yaml.Node]bool
}

// entry is one key: value pair of a mapping.
type entry struct {
	key  string
	k, v *yaml.Node
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit null (`key:` alone).
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node's shape for messages.
func kindName(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// show quotes a scalar for a message as the file writes it, so a value
// that came from the environment is never revealed. Long values are cut.
func (p *parser) show(n *yaml.Node) string {
	s := n.Value
	if o, ok := p.orig[n]; ok {
		s = o
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return strconv.Quote(s)
}

// mapping returns the entries of a mapping node in file order (keys merged
// in with `<<` after the keys written out, which override them). Null is
// an empty mapping. Duplicate keys are problems.
func (p *parser) mapping(n *yaml.Node, path string) ([]entry, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, path, "expected a mapping of key: value, got %s", kindName(n))
		return nil, false
	}
	var out []entry
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, path, "a key must be a plain name, got %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, join(path, k.Value), "duplicate key (first at line %d); keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{key: k.Value, k: k, v: v})
	}
	for _, m := range merges {
		m = resolve(m)
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			es, ok := p.mapping(src, path)
			if !ok {
				continue
			}
			for _, e := range es {
				if _, dup := seen[e.key]; !dup {
					seen[e.key] = e.k.Line
					out = append(out, e)
				}
			}
		}
	}
	return out, true
}

// known reports keys of entries not in allowed and returns the others by
// key.
func (p *parser) known(entries []entry, path string, allowed []string) map[string]entry {
	out := make(map[string]entry, len(entries))
	for _, e := range entries {
		if !contains(allowed, e.key) {
			p.add(e.k.Line, path, "unknown key %q%s", e.key, suggest(e.key, allowed))
			continue
		}
		out[e.key] = e
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scalar returns n as a scalar, or reports that it is not one.
func (p *parser) scalar(n *yaml.Node, path, want string) (*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, path, "expected %s, got %s", want, kindName(n))
		return nil, false
	}
	if p.badExpand[n] {
		return nil, false
	}
	return n, true
}

// str decodes a string; null is "".
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	s, ok := p.scalar(n, path, "a string")
	if !ok {
		return "", false
	}
	return s.Value, true
}

// boolean decodes true or false.
func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := p.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch strings.ToLower(s.Value) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.add(s.Line, path, "%s is not true or false", p.show(s))
	return false, false
}

// integer decodes an int.
func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	s, ok := p.scalar(n, path, "an integer")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(strings.ReplaceAll(s.Value, "_", ""))
	if err != nil {
		p.add(s.Line, path, "%s is not an integer", p.show(s))
		return 0, false
	}
	return v, true
}

var daysRE = regexp.MustCompile(`^(\d+)d(.*)$`)

// parseDuration parses a Go duration ("2160h", "30s", "1h30m"), also with
// a leading count of days ("90d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	if m := daysRE.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || int64(days) > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("too many days")
		}
		d := time.Duration(days) * 24 * time.Hour
		if m[2] == "" {
			return d, nil
		}
		rest, err := time.ParseDuration(m[2])
		if err != nil {
			return 0, err
		}
		return d + rest, nil
	}
	return time.ParseDuration(s)
}

// duration decodes a positive duration.
func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := p.scalar(n, path, "a duration")
	if !ok {
		return 0, false
	}
	d, err := parseDuration(s.Value)
	if err != nil || d <= 0 {
		p.add(s.Line, path, "%s is not a positive duration; write it like 30s, 15m, 2160h or 90d", p.show(s))
		return 0, false
	}
	return d, true
}

// strList decodes a list of strings and returns the element nodes too.
// A single string is refused with a hint to write a list.
func (p *parser) strList(n *yaml.Node, path string) ([]string, []*yaml.Node, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil, true
	}
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode {
			p.add(n.Line, path, "expected a list; write [%s]", n.Value)
		} else {
			p.add(n.Line, path, "expected a list, got %s", kindName(n))
		}
		return nil, nil, false
	}
	out := make([]string, 0, len(n.Content))
	nodes := make([]*yaml.Node, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := p.scalar(c, fmt.Sprintf("%s[%d]", path, i), "a string")
		if !good {
			ok = false
			continue
		}
		out = append(out, s.Value)
		nodes = append(nodes, s)
	}
	return out, nodes, ok
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// name checks a kind, system or field name.
func (p *parser) name(k *yaml.Node, path, what string) bool {
	if nameRE.MatchString(k.Value) {
		return true
	}
	p.add(k.Line, path, "%s name %q is not valid; use lower-case letters, digits and _, starting with a letter", what, k.Value)
	return false
}

// value converts a connector setting to Go: string, int, float64, bool,
// nil, []any or map[string]any. Strings are already expanded.
func (p *parser) value(n *yaml.Node, path string) any {
	n = resolve(n)
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = p.value(c, fmt.Sprintf("%s[%d]", path, i))
		}
		return out
	case yaml.MappingNode:
		entries, _ := p.mapping(n, path)
		out := make(map[string]any, len(entries))
		for _, e := range entries {
			out[e.key] = p.value(e.v, join(path, e.key))
		}
		return out
	}
	if _, expanded := p.orig[n]; expanded {
		return n.Value
	}
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		return strings.ToLower(n.Value) == "true"
	case "!!int":
		if v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 0); err == nil {
			return int(v)
		}
	case "!!float":
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return v
		}
	}
	return n.Value
}
