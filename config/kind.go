package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// kindNode is a kind being built, with the nodes later passes check.
type kindNode struct {
	kind   *nhisync.Kind
	path   string
	line   int
	keys   map[string]entry
	fields []*fieldNode
}

// fieldNode is a field being built.
type fieldNode struct {
	field *nhisync.Field
	path  string
	keys  map[string]entry
}

var kindKeys = []string{"match", "create_from", "retire_from", "fields", "rules"}

var fieldKeys = []string{"type", "values", "to", "required", "sensitive", "authority", "resolve", "wins", "stale_after", "approve_to", "max_age"}

// kinds reads `kinds:`: each kind's own keys and fields. References to
// systems are checked by kindRefs once systems are read.
func (p *parser) kinds(n *yaml.Node, cfg *nhisync.Config) []*kindNode {
	entries, ok := p.mapping(n, "kinds")
	if !ok {
		return nil
	}
	var out []*kindNode
	for _, e := range entries {
		path := join("kinds", e.key)
		if !p.name(e.k, path, "kind") {
			continue
		}
		body, ok := p.mapping(e.v, path)
		if !ok {
			continue
		}
		k := &kindNode{
			kind: &nhisync.Kind{Name: e.key, Fields: map[string]*nhisync.Field{}},
			path: path,
			line: e.k.Line,
			keys: p.known(body, path, kindKeys),
		}
		p.fields(k)
		p.match(k)
		cfg.Kinds[e.key] = k.kind
		cfg.KindNames = append(cfg.KindNames, e.key)
		out = append(out, k)
	}
	return out
}

// fields reads a kind's `fields:`.
func (p *parser) fields(k *kindNode) {
	fe, ok := k.keys["fields"]
	if !ok || isNull(fe.v) {
		p.add(k.line, k.path, "missing fields; declare the kind's fields, e.g. fields: { name: { type: string } }")
		return
	}
	entries, ok := p.mapping(fe.v, k.path+".fields")
	if !ok {
		return
	}
	for _, e := range entries {
		path := k.path + ".fields." + e.key
		if !p.name(e.k, path, "field") {
			continue
		}
		// A field that is not a mapping is still declared, so systems
		// mapping it are not reported too.
		body, ok := p.mapping(e.v, path)
		f := &fieldNode{
			field: &nhisync.Field{Name: e.key, Resolve: nhisync.ResolvePriority},
			path:  path,
			keys:  p.known(body, path, fieldKeys),
		}
		if ok {
			p.field(f, e.k.Line)
		}
		k.kind.Fields[e.key] = f.field
		k.kind.FieldNames = append(k.kind.FieldNames, e.key)
		k.fields = append(k.fields, f)
	}
	if len(entries) == 0 {
		p.add(fe.k.Line, k.path+".fields", "no fields; declare at least the match fields")
	}
}

// field reads one field's own keys (not those naming systems or kinds).
func (p *parser) field(fn *fieldNode, line int) {
	f, keys, path := fn.field, fn.keys, fn.path
	types := make([]string, len(nhisync.FieldTypes))
	for i, t := range nhisync.FieldTypes {
		types[i] = string(t)
	}
	if e, ok := keys["type"]; !ok || isNull(e.v) {
		p.add(line, path, "missing type; add type: with one of %s", strings.Join(types, ", "))
	} else if s, ok := p.str(e.v, path+".type"); ok {
		if !contains(types, s) {
			p.add(e.v.Line, path+".type", "unknown type %s%s", p.show(resolve(e.v)), suggest(s, types))
		} else {
			f.Type = nhisync.FieldType(s)
		}
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"required", &f.Required}, {"sensitive", &f.Sensitive}} {
		if e, ok := keys[b.key]; ok {
			*b.dst, _ = p.boolean(e.v, path+"."+b.key)
		}
	}

	if e, ok := keys["values"]; ok {
		if f.Type != nhisync.TypeEnum && f.Type != "" {
			p.add(e.k.Line, path+".values", "values only applies to enum fields; remove it or make the type enum")
		} else if vals, nodes, ok := p.strList(e.v, path+".values"); ok {
			seen := map[string]bool{}
			for i, v := range vals {
				if v == "" {
					p.add(nodes[i].Line, path+".values", "empty value; remove it")
				} else if seen[v] {
					p.add(nodes[i].Line, path+".values", "%q is listed twice; list each value once", v)
				}
				seen[v] = true
			}
			f.Values = vals
		}
	}
	if f.Type == nhisync.TypeEnum && len(f.Values) == 0 {
		p.add(line, path, "an enum needs values: [...], listed from least to most strict")
	}

	if e, ok := keys["to"]; ok {
		if f.Type != nhisync.TypeRef && f.Type != nhisync.TypeRefs && f.Type != "" {
			p.add(e.k.Line, path+".to", "to only applies to ref and refs fields; remove it or make the type ref")
		} else {
			f.To, _ = p.str(e.v, path+".to")
		}
	} else if f.Type == nhisync.TypeRef || f.Type == nhisync.TypeRefs {
		p.add(line, path, "a %s field needs to: KIND, the kind it points at", f.Type)
	}

	if e, ok := keys["resolve"]; ok && !isNull(e.v) {
		if s, ok := p.str(e.v, path+".resolve"); ok {
			p.resolveStrategy(f, s, resolve(e.v), path+".resolve")
		}
	}
	if e, ok := keys["wins"]; ok && !isNull(e.v) {
		if s, ok := p.str(e.v, path+".wins"); ok {
			switch {
			case s != "add" && s != "remove":
				p.add(e.v.Line, path+".wins", "%s is not add or remove (default add)", p.show(resolve(e.v)))
			case f.Resolve != nhisync.ResolveMerge:
				p.add(e.k.Line, path+".wins", "wins only applies with resolve: merge; remove it or add resolve: merge")
			default:
				f.WinsRemove = s == "remove"
			}
		}
	}
	if e, ok := keys["stale_after"]; ok && !isNull(e.v) {
		f.StaleAfter, _ = p.duration(e.v, path+".stale_after")
	}
	if e, ok := keys["max_age"]; ok && !isNull(e.v) {
		if f.Type != nhisync.TypeTime && f.Type != "" {
			p.add(e.k.Line, path+".max_age", "max_age only applies to time fields (how old a date such as last_rotated may be), not %s; remove it or make the type time", f.Type)
		} else {
			f.MaxAge, _ = p.duration(e.v, path+".max_age")
		}
	}
}

// resolveStrategy checks a field's resolve: against its type.
func (p *parser) resolveStrategy(f *nhisync.Field, s string, n *yaml.Node, path string) {
	names := make([]string, len(nhisync.Strategies))
	for i, st := range nhisync.Strategies {
		names[i] = string(st)
	}
	st := nhisync.Strategy(s)
	switch {
	case !contains(names, s):
		p.add(n.Line, path, "unknown strategy %s%s", p.show(n), suggest(s, names))
		return
	case st == nhisync.ResolveMerge && f.Type != "" && !f.Type.IsSet():
		p.add(n.Line, path, "merge only applies to set and refs fields, not %s; use priority, latest or manual", f.Type)
		return
	case st == nhisync.ResolveStrictest && f.Type != "" && f.Type != nhisync.TypeEnum:
		p.add(n.Line, path, "strictest only applies to enum fields, not %s; use priority, latest or manual", f.Type)
		return
	}
	f.Resolve = st
}

// match reads a kind's `match:` and marks the match fields required.
func (p *parser) match(k *kindNode) {
	e, ok := k.keys["match"]
	if !ok || isNull(e.v) {
		p.add(k.line, k.path, "missing match; list the fields that identify a record across systems, e.g. match: [platform, name]")
		return
	}
	names, nodes, ok := p.strList(e.v, k.path+".match")
	if !ok {
		return
	}
	if len(names) == 0 {
		p.add(e.k.Line, k.path+".match", "match is empty; list at least one field")
		return
	}
	if len(k.kind.FieldNames) == 0 {
		return // the missing fields are reported already
	}
	for i, name := range names {
		f := k.kind.Fields[name]
		switch {
		case slices.Contains(names[:i], name):
			p.add(nodes[i].Line, k.path+".match", "%q is listed twice", name)
		case f == nil:
			p.add(nodes[i].Line, k.path+".match", "no field %q in this kind%s", name, suggest(name, k.kind.FieldNames))
		case f.Type.IsSet():
			p.add(nodes[i].Line, k.path+".match", "field %q is a %s; match on single-valued fields", name, f.Type)
		default:
			f.Required = true
			k.kind.Match = append(k.kind.Match, name)
		}
	}
}

// kindRefs checks what a kind says about other kinds and systems:
// to:, create_from, retire_from, authority and approve_to.
func (p *parser) kindRefs(k *kindNode, cfg *nhisync.Config) {
	for _, fn := range k.fields {
		if f := fn.field; f.To != "" && cfg.Kinds[f.To] == nil {
			e := fn.keys["to"]
			p.add(e.v.Line, fn.path+".to", "no kind %q%s", f.To, suggest(f.To, cfg.KindNames))
		}
	}
	k.kind.CreateFrom = p.kindSystems(k, cfg, "create_from", func(s *nhisync.System, line int, path string) bool {
		var missing []string
		for _, m := range k.kind.Match {
			if s.Mapping(m) == nil {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			p.add(line, path, "system %s creates records but does not map match field(s) %s; map them in systems.%s.fields", s.Name, strings.Join(missing, ", "), s.Name)
			return false
		}
		return true
	})
	k.kind.RetireFrom = p.kindSystems(k, cfg, "retire_from", nil)
	if e, ok := k.keys["retire_from"]; ok && len(k.kind.RetireFrom) > 0 {
		lc := k.kind.Fields[nhisync.FieldLifecycle]
		if lc == nil || lc.Type != nhisync.TypeEnum || !slices.Contains(lc.Values, nhisync.LifecycleDecommissioned) {
			p.add(e.k.Line, k.path+".retire_from", "retiring sets lifecycle: decommissioned, so the kind needs a field lifecycle: { type: enum, values: [..., decommissioned] }")
		}
	}
	for _, fn := range k.fields {
		f := fn.field
		f.Authority = p.fieldSystems(k, fn, cfg, "authority", func(s *nhisync.System) string {
			if !s.Reads(f.Name) {
				return fmt.Sprintf("system %s does not read field %s, so it cannot set it; map it with direction read or both, or remove it from authority", s.Name, f.Name)
			}
			return ""
		})
		f.ApproveTo = p.fieldSystems(k, fn, cfg, "approve_to", func(s *nhisync.System) string {
			if !s.Writes(f.Name) {
				return fmt.Sprintf("nhisync never writes field %s to system %s (direction read); remove it from approve_to", f.Name, s.Name)
			}
			return ""
		})
	}
}

// kindSystems reads a kind's list of systems under key; each must be a
// declared system of the kind, and pass check when given.
func (p *parser) kindSystems(k *kindNode, cfg *nhisync.Config, key string, check func(s *nhisync.System, line int, path string) bool) []string {
	e, ok := k.keys[key]
	if !ok {
		return nil
	}
	path := k.path + "." + key
	names, nodes, ok := p.strList(e.v, path)
	if !ok {
		return nil
	}
	var out []string
	for i, name := range names {
		s := p.declaredSystem(cfg, name, nodes[i].Line, path, slices.Contains(names[:i], name))
		if s == nil {
			continue
		}
		if s.Kind != k.kind.Name {
			p.add(nodes[i].Line, path, "system %s holds kind %s, not %s; remove it here", name, s.Kind, k.kind.Name)
			continue
		}
		if check != nil && !check(s, nodes[i].Line, path) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// fieldSystems reads a field's list of systems under key (authority,
// approve_to): each a declared system of the kind that maps the field and
// passes check (which returns what is wrong, or "").
func (p *parser) fieldSystems(k *kindNode, fn *fieldNode, cfg *nhisync.Config, key string, check func(s *nhisync.System) string) []string {
	e, ok := fn.keys[key]
	if !ok {
		return nil
	}
	path := fn.path + "." + key
	names, nodes, ok := p.strList(e.v, path)
	if !ok {
		return nil
	}
	var out []string
	for i, name := range names {
		line := nodes[i].Line
		s := p.declaredSystem(cfg, name, line, path, slices.Contains(names[:i], name))
		if s == nil {
			continue
		}
		switch {
		case s.Kind != k.kind.Name:
			p.add(line, path, "system %s holds kind %s, not %s; remove it here", name, s.Kind, k.kind.Name)
		case s.Mapping(fn.field.Name) == nil:
			p.add(line, path, "system %s does not map field %s; add %s to systems.%s.fields or remove %s here", name, fn.field.Name, fn.field.Name, name, name)
		default:
			if msg := check(s); msg != "" {
				p.add(line, path, "%s", msg)
				continue
			}
			out = append(out, name)
		}
	}
	return out
}

// declaredSystem returns the named system, or reports it unknown or listed
// twice.
func (p *parser) declaredSystem(cfg *nhisync.Config, name string, line int, path string, dup bool) *nhisync.System {
	if dup {
		p.add(line, path, "%q is listed twice", name)
		return nil
	}
	s := cfg.Systems[name]
	if s == nil {
		p.add(line, path, "no system %q%s", name, suggest(name, cfg.SystemNames))
	}
	return s
}

// rules reads and compiles a kind's `rules:`.
func (p *parser) rules(k *kindNode) {
	e, ok := k.keys["rules"]
	if !ok || isNull(e.v) {
		return
	}
	path := k.path + ".rules"
	n := resolve(e.v)
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, path, "expected a list of { name: NAME, check: CEL }, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		body, ok := p.mapping(item, ipath)
		if !ok {
			continue
		}
		keys := p.known(body, ipath, []string{"name", "check"})
		line := resolve(item).Line
		var name string
		nameOK := true
		if ne, ok := keys["name"]; ok && !isNull(ne.v) {
			name, nameOK = p.str(ne.v, ipath+".name")
			if first, dup := seen[name]; dup && name != "" {
				p.add(ne.v.Line, ipath+".name", "rule %q is already defined at line %d; give each rule its own name", name, first)
			}
			seen[name] = ne.v.Line
		}
		if name == "" && nameOK {
			p.add(line, ipath, "missing name; give the rule a name, shown when it quarantines a proposal")
		}
		ce, ok := keys["check"]
		if !ok || isNull(ce.v) {
			p.add(line, ipath, "missing check; give a CEL expression that is true for valid records")
			continue
		}
		expr, ok := p.str(ce.v, ipath+".check")
		if !ok || name == "" {
			continue
		}
		r, err := rule.Compile(k.kind, name, expr)
		if err != nil {
			p.add(ce.v.Line, ipath+".check", "%s", oneLine(nhisync.ErrorMessage(err)))
			continue
		}
		k.kind.Rules = append(k.kind.Rules, r)
	}
}

// oneLine keeps a message on one line.
func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }
