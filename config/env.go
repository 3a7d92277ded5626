package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// expandTree expands ${VAR} in every string scalar value under n (mapping
// keys are names, not values, and stay as written). The original text of
// every changed scalar is kept in p.orig so messages can quote what the
// file says instead of the expanded value, which may be a secret.
func (p *parser) expandTree(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			p.expandTree(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.expandTree(n.Content[i+1], join(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.expandTree(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "$") {
			return
		}
		if _, done := p.orig[n]; done {
			return
		}
		out, errs := expand(n.Value, p.lookupEnv)
		for _, e := range errs {
			p.add(n.Line, path, "%s", e)
		}
		if len(errs) > 0 {
			p.badExpand[n] = true
		}
		if out != n.Value {
			p.orig[n] = n.Value
			n.Value = out
		}
	}
}

// expand replaces ${VAR} and ${VAR:-default} in s with the environment's
// values (the default when VAR is unset or empty) and $$ with $. A $ not
// followed by { or $ stays as is. It returns the problems found; they name
// variables, never their values.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var errs []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			errs = append(errs, "unclosed ${ (write $$ for a literal dollar sign)")
			b.WriteString(s[i:])
			break
		}
		body := s[i+2 : i+2+end]
		i += 2 + end
		name, def, hasDef := strings.Cut(body, ":-")
		if !validEnvName(name) {
			errs = append(errs, fmt.Sprintf("${%s} is not a valid variable reference; write ${NAME} or ${NAME:-default} with NAME made of letters, digits and _ (or $$ for a literal dollar sign)", body))
			continue
		}
		v, ok := lookup(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			errs = append(errs, fmt.Sprintf("environment variable %s is not set; set it in the environment or give a default with ${%s:-value}", name, name))
		}
	}
	return b.String(), errs
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// tainted reports whether a scalar under n failed to expand: its problem
// is reported, and what depends on its value should not be judged.
func (p *parser) tainted(n *yaml.Node) bool {
	n = resolve(n)
	if n == nil {
		return false
	}
	if p.badExpand[n] {
		return true
	}
	for _, c := range n.Content {
		if c.Kind != yaml.AliasNode && p.tainted(c) {
			return true
		}
	}
	return false
}

// join appends a key to a dotted key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
