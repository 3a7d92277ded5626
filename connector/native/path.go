// Package native owns what every connector shares when it turns a system's
// own data into nhisync's canonical values and back: native field paths
// (SPEC §5: dot-separated keys, ["…"] for keys holding dots or slashes),
// decoding native values (strings, numbers, booleans, times, arrays) into
// nhisync.Value per a mapping, and encoding values back, applying the
// mapping's read and write transforms. It also edits YAML node trees in
// place, so connectors that rewrite YAML or JSON keep key order and
// comments.
package native

import (
	"fmt"
	"strings"

	"github.com/nhisync/nhisync"
)

// Path is a parsed native field path: the keys from the outermost object
// inwards. A flat name is a path of one key.
type Path []string

// ParsePath parses a native path such as
// metadata.annotations["nhi.example/owner"] or
// ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].manager.value.
// Inside ["…"], \" and \\ escape a quote and a backslash. It returns
// *nhisync.Error EINVALID for an empty key, an unclosed bracket or stray
// characters.
func ParsePath(s string) (Path, error) {
	bad := func(format string, args ...any) error {
		return nhisync.Errorf(nhisync.EINVALID, "native path %q: %s; write keys as a.b or a[\"b.c\"]", s, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(s) == "" {
		return nil, bad("empty path")
	}
	var p Path
	i := 0
	for {
		if i < len(s) && s[i] == '[' {
			key, n, err := parseBracket(s[i:])
			if err != nil {
				return nil, bad("%v", err)
			}
			p = append(p, key)
			i += n
		} else {
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			if j == i {
				return nil, bad("empty key at offset %d", i)
			}
			p = append(p, s[i:j])
			i = j
		}
		if i == len(s) {
			return p, nil
		}
		switch s[i] {
		case '.':
			i++
			if i == len(s) {
				return nil, bad("path ends with a dot")
			}
		case '[':
			// a["b"]: a bracketed key may follow a key directly.
		default:
			return nil, bad("unexpected %q at offset %d", s[i], i)
		}
	}
}

// parseBracket parses ["…"] at the start of s and returns the key and how
// many bytes it took.
func parseBracket(s string) (string, int, error) {
	if len(s) < 2 || s[1] != '"' {
		return "", 0, fmt.Errorf(`expected ["` + `" after [`)
	}
	var b strings.Builder
	for i := 2; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unfinished escape")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			if i+1 >= len(s) || s[i+1] != ']' {
				return "", 0, fmt.Errorf(`expected ] after closing quote`)
			}
			if b.Len() == 0 {
				return "", 0, fmt.Errorf("empty key in brackets")
			}
			return b.String(), i + 2, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unclosed bracket")
}

// String returns the path in the syntax ParsePath reads, bracketing keys
// that hold dots, slashes, brackets or quotes, or surrounding space.
func (p Path) String() string {
	var b strings.Builder
	for i, k := range p {
		if k == "" || strings.ContainsAny(k, `./[]"\`) || strings.TrimSpace(k) != k {
			b.WriteString(`["`)
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k))
			b.WriteString(`"]`)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

// Get returns the value at p in m; false when a key is missing or an
// intermediate value is not an object.
func (p Path) Get(m map[string]any) (any, bool) {
	if len(p) == 0 {
		return nil, false
	}
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	v, ok := m[p[len(p)-1]]
	return v, ok
}

// Set stores v at p in m, creating missing intermediate objects. It never
// replaces a non-object on the way: that returns *nhisync.Error EINVALID.
func (p Path) Set(m map[string]any, v any) error {
	if len(p) == 0 {
		return nhisync.Errorf(nhisync.EINVALID, "empty native path")
	}
	for i, k := range p[:len(p)-1] {
		switch next := m[k].(type) {
		case map[string]any:
			m = next
		case nil:
			child := map[string]any{}
			m[k] = child
			m = child
		default:
			return nhisync.Errorf(nhisync.EINVALID, "native path %s: %s holds a %T, not an object", p, p[:i+1], next)
		}
	}
	m[p[len(p)-1]] = v
	return nil
}

// Delete removes the key at p from m and reports whether it was there.
// Intermediate objects are left in place, even when they become empty.
func (p Path) Delete(m map[string]any) bool {
	if len(p) == 0 {
		return false
	}
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return false
		}
		m = next
	}
	_, ok := m[p[len(p)-1]]
	delete(m, p[len(p)-1])
	return ok
}
