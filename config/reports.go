package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/rule"
)

// reports reads `reports:`, the settings of `nhisync report`:
//
//	reports:
//	  hygiene:
//	    overprivileged: '"admin" in entitlements'
//
// The expression is compiled against every kind; it applies to the kinds
// it compiles for (whose fields it reads) and must compile for one.
func (p *parser) reports(n *yaml.Node, cfg *nhisync.Config) {
	entries, ok := p.mapping(n, "reports")
	if !ok {
		return
	}
	top := p.known(entries, "reports", []string{"hygiene"})
	he, ok := top["hygiene"]
	if !ok {
		return
	}
	hentries, ok := p.mapping(he.v, "reports.hygiene")
	if !ok {
		return
	}
	h := p.known(hentries, "reports.hygiene", []string{"overprivileged"})
	oe, ok := h["overprivileged"]
	if !ok || isNull(oe.v) {
		return
	}
	const path = "reports.hygiene.overprivileged"
	expr, ok := p.str(oe.v, path)
	if !ok {
		return
	}
	if expr == "" {
		p.add(oe.v.Line, path, "empty expression; give a CEL check over a record's fields, e.g. '\"admin\" in entitlements', or remove the key")
		return
	}
	var first error
	var kinds []string
	for _, name := range cfg.KindNames {
		if _, err := rule.CompileFilter(cfg.Kinds[name], expr); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		kinds = append(kinds, name)
	}
	if len(kinds) == 0 {
		msg := "the expression compiles for no kind"
		if first != nil {
			msg = oneLine(nhisync.ErrorMessage(first))
		}
		p.add(oe.v.Line, path, "%s; write a CEL check over the fields of a kind that returns true for an overprivileged record", msg)
		return
	}
	cfg.Reports = nhisync.Reports{Overprivileged: expr, OverprivilegedKinds: kinds}
}
