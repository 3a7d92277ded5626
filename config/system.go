package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// DefaultPoll is how often a system without `poll:` is read.
const DefaultPoll = time.Minute

// systemNode is a system being built.
type systemNode struct {
	sys    *nhisync.System
	kind   *nhisync.Kind
	driver *nhisync.Driver
	path   string
	line   int
	// bad is set when the system itself has problems; its connector's
	// Validate is then not called.
	bad bool
}

var mappingKeys = []string{"name", "read", "write", "direction", "join", "ref"}

// systems reads `systems:`.
func (p *parser) systems(n *yaml.Node, cfg *nhisync.Config) []*systemNode {
	entries, ok := p.mapping(n, "systems")
	if !ok {
		return nil
	}
	var out []*systemNode
	for _, e := range entries {
		path := join("systems", e.key)
		if !p.name(e.k, path, "system") {
			continue
		}
		before := len(p.list)
		s := &systemNode{
			sys: &nhisync.System{
				Name:      e.key,
				Direction: nhisync.DirBoth,
				Poll:      DefaultPoll,
				OnRefused: nhisync.Repair,
				Settings:  nhisync.Settings{},
				BaseDir:   cfg.BaseDir,
				Pos:       fmt.Sprintf("%s:%d", p.file, e.k.Line),
			},
			path: path,
			line: e.k.Line,
		}
		p.system(s, e.v, cfg)
		s.bad = len(p.list) > before || p.tainted(e.v)
		cfg.Systems[e.key] = s.sys
		cfg.SystemNames = append(cfg.SystemNames, e.key)
		out = append(out, s)
	}
	return out
}

// system reads one system's keys.
func (p *parser) system(s *systemNode, n *yaml.Node, cfg *nhisync.Config) {
	if isNull(n) {
		p.add(s.line, s.path, "empty system; give at least connector, kind and fields")
		return
	}
	body, ok := p.mapping(n, s.path)
	if !ok {
		return
	}
	keys := make(map[string]entry, len(body))
	for _, e := range body {
		keys[e.key] = e
	}
	sys, path := s.sys, s.path

	if e, ok := keys["connector"]; !ok || isNull(e.v) {
		p.add(s.line, path, "missing connector; add connector: with one of %s", strings.Join(nhisync.DriverNames(), ", "))
	} else if name, ok := p.str(e.v, path+".connector"); ok {
		if d, ok := nhisync.LookupDriver(name); ok {
			sys.Connector, s.driver = name, &d
		} else {
			p.add(e.v.Line, path+".connector", "unknown connector %s%s", p.show(resolve(e.v)), suggest(name, nhisync.DriverNames()))
		}
	}

	if e, ok := keys["kind"]; !ok || isNull(e.v) {
		p.add(s.line, path, "missing kind; add kind: with one of %s", strings.Join(cfg.KindNames, ", "))
	} else if name, ok := p.str(e.v, path+".kind"); ok {
		if k := cfg.Kinds[name]; k != nil {
			sys.Kind, s.kind = name, k
		} else {
			p.add(e.v.Line, path+".kind", "no kind %s%s", p.show(resolve(e.v)), suggest(name, cfg.KindNames))
		}
	}

	for _, e := range body {
		kpath := path + "." + e.key
		switch e.key {
		case "connector", "kind":
		case "fields":
			p.mappings(s, e, cfg)
		case "id":
			sys.ID, _ = p.str(e.v, kpath)
		case "direction":
			if d, ok := p.direction(e.v, kpath); ok {
				sys.Direction = d
			}
		case "poll":
			if !isNull(e.v) {
				if d, ok := p.duration(e.v, kpath); ok {
					sys.Poll = d
				}
			}
		case "provision":
			sys.Provision, _ = p.boolean(e.v, kpath)
		case "on_refused":
			if v, ok := p.str(e.v, kpath); ok && v != "" {
				switch nhisync.OnRefused(v) {
				case nhisync.Repair, nhisync.Report:
					sys.OnRefused = nhisync.OnRefused(v)
				default:
					p.add(e.v.Line, kpath, "%s is not repair or report (default repair)", p.show(resolve(e.v)))
				}
			}
		case "guard":
			sys.Guard, _ = p.guard(e.v, kpath)
		default:
			if s.driver != nil && !contains(s.driver.Settings, e.key) {
				allowed := append(append([]string{}, nhisync.CommonSettings...), s.driver.Settings...)
				p.add(e.k.Line, path, "unknown key %q for connector %s%s", e.key, sys.Connector, suggest(e.key, allowed))
				continue
			}
			sys.Settings[e.key] = p.value(e.v, kpath)
		}
	}
	if _, ok := keys["fields"]; !ok {
		p.add(s.line, path, "missing fields; map the kind's fields to the system's, e.g. fields: { name: account_name }")
	}
}

// mappings reads a system's `fields:`, in file order.
func (p *parser) mappings(s *systemNode, e entry, cfg *nhisync.Config) {
	path := s.path + ".fields"
	entries, ok := p.mapping(e.v, path)
	if !ok {
		return
	}
	if len(entries) == 0 {
		p.add(e.k.Line, path, "no fields mapped; map at least one match field of the kind")
		return
	}
	if s.kind == nil || len(s.kind.FieldNames) == 0 {
		return // the kind or its fields are reported already
	}
	for _, fe := range entries {
		fpath := path + "." + fe.key
		f := s.kind.Fields[fe.key]
		if f == nil {
			p.add(fe.k.Line, path, "no field %q in kind %s%s", fe.key, s.kind.Name, suggest(fe.key, s.kind.FieldNames))
			continue
		}
		m := &nhisync.Mapping{Field: fe.key, Type: f.Type, Direction: nhisync.DirBoth}
		if p.mapping1(m, fe.v, fpath, cfg) {
			s.sys.Fields = append(s.sys.Fields, m)
		}
	}
	if len(s.sys.Fields) > 0 && len(s.kind.Match) > 0 && !anyMatch(s.sys, s.kind) {
		p.add(e.k.Line, path, "maps none of the match fields (%s) of kind %s, so its records cannot be correlated; map at least one", strings.Join(s.kind.Match, ", "), s.kind.Name)
	}
}

func anyMatch(sys *nhisync.System, k *nhisync.Kind) bool {
	for _, m := range k.Match {
		if sys.Mapping(m) != nil {
			return true
		}
	}
	return false
}

// mapping1 reads one field mapping: a native name, or a mapping with
// name, read, write, direction, join and ref.
func (p *parser) mapping1(m *nhisync.Mapping, n *yaml.Node, path string, cfg *nhisync.Config) bool {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		name, _ := p.str(n, path)
		if name == "" {
			p.add(n.Line, path, "empty native name; give the system's column, attribute or path")
			return false
		}
		m.Name = name
		return true
	}
	body, ok := p.mapping(n, path)
	if !ok {
		return false
	}
	before := len(p.list)
	keys := p.known(body, path, mappingKeys)
	m.Name = m.Field
	if e, ok := keys["name"]; ok {
		if name, ok := p.str(e.v, path+".name"); ok {
			if name == "" {
				p.add(e.v.Line, path+".name", "empty native name; give the system's column, attribute or path, or leave name out for %q", m.Field)
			} else {
				m.Name = name
			}
		}
	}
	if e, ok := keys["direction"]; ok {
		if d, ok := p.direction(e.v, path+".direction"); ok {
			m.Direction = d
		}
	}
	if e, ok := keys["join"]; ok {
		if sep, ok := p.str(e.v, path+".join"); ok {
			switch {
			case !m.Type.IsSet():
				p.add(e.k.Line, path+".join", "join only applies to set and refs fields; remove it")
			case sep == "":
				p.add(e.v.Line, path+".join", "empty separator; leave join out for the default \",\"")
			default:
				m.Join = sep
			}
		}
	}
	if e, ok := keys["ref"]; ok {
		if k, ok := p.str(e.v, path+".ref"); ok {
			if cfg.Kinds[k] == nil {
				p.add(e.v.Line, path+".ref", "no kind %q%s", k, suggest(k, cfg.KindNames))
			} else {
				m.Ref = k
			}
		}
	}
	for _, t := range []struct {
		key string
		dst *nhisync.Transform
		src *string
	}{{"read", &m.Read, &m.ReadExpr}, {"write", &m.Write, &m.WriteExpr}} {
		e, ok := keys[t.key]
		if !ok || isNull(e.v) {
			continue
		}
		expr, ok := p.str(e.v, path+"."+t.key)
		if !ok {
			continue
		}
		tr, err := rule.CompileTransform(expr, m.Type)
		if err != nil {
			p.add(e.v.Line, path+"."+t.key, "%s", oneLine(nhisync.ErrorMessage(err)))
			continue
		}
		*t.dst, *t.src = tr, expr
	}
	return len(p.list) == before
}

// direction decodes read | write | both.
func (p *parser) direction(n *yaml.Node, path string) (nhisync.Direction, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", false
	}
	switch d := nhisync.Direction(s); d {
	case nhisync.DirBoth, nhisync.DirRead, nhisync.DirWrite:
		return d, true
	case "":
		return nhisync.DirBoth, true
	}
	p.add(resolve(n).Line, path, "%s is not read, write or both (default both)", p.show(resolve(n)))
	return "", false
}

// guard decodes `guard:`: off (or false), a count, a percentage "P%", or
// { max_changes: N | "P%" }.
func (p *parser) guard(n *yaml.Node, path string) (nhisync.Guard, bool) {
	n = resolve(n)
	if isNull(n) {
		return nhisync.Guard{}, true
	}
	if n.Kind == yaml.MappingNode {
		body, ok := p.mapping(n, path)
		if !ok {
			return nhisync.Guard{}, false
		}
		keys := p.known(body, path, []string{"max_changes"})
		e, ok := keys["max_changes"]
		if !ok || isNull(e.v) {
			return nhisync.Guard{}, true
		}
		return p.guardLimit(e.v, path+".max_changes", false)
	}
	return p.guardLimit(n, path, true)
}

// guardLimit decodes a count or "P%"; off and false only when offOK.
func (p *parser) guardLimit(n *yaml.Node, path string, offOK bool) (nhisync.Guard, bool) {
	s, ok := p.scalar(n, path, "a count or a percentage")
	if !ok {
		return nhisync.Guard{}, false
	}
	v := strings.TrimSpace(s.Value)
	hint := "write a count like 50, a percentage like \"10%\""
	if offOK {
		hint += ", or off"
	}
	switch lv := strings.ToLower(v); {
	case offOK && (lv == "off" || lv == "false"):
		return nhisync.Guard{Off: true}, true
	case offOK && lv == "true":
		return nhisync.Guard{}, true
	case strings.HasSuffix(v, "%"):
		pct, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "%")), 64)
		if err != nil || pct <= 0 || pct > 100 {
			p.add(s.Line, path, "%s is not a percentage between 0 and 100; %s", p.show(s), hint)
			return nhisync.Guard{}, false
		}
		return nhisync.Guard{Percent: pct}, true
	}
	count, err := strconv.Atoi(v)
	if err != nil {
		p.add(s.Line, path, "%s is not a guard; %s", p.show(s), hint)
		return nhisync.Guard{}, false
	}
	if count < 1 {
		p.add(s.Line, path, "the count must be at least 1; to disable the guard write guard: off")
		return nhisync.Guard{}, false
	}
	return nhisync.Guard{Max: count}, true
}

// validate calls the connector's own Validate on a sound system.
func (p *parser) validate(s *systemNode) {
	if s.bad || s.kind == nil || s.driver == nil || s.driver.Validate == nil {
		return
	}
	if err := s.driver.Validate(s.sys, s.kind); err != nil {
		p.add(s.line, s.path, "%s", oneLine(nhisync.ErrorMessage(err)))
	}
}
