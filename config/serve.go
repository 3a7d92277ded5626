package config

import (
	"net/url"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/nhisync/nhisync"
)

// DefaultReconcile is how often `nhisync serve` runs a full pass when the
// file has no `reconcile:`.
const DefaultReconcile = time.Hour

// DefaultRolesClaim is the ID token claim read for a person's role.
const DefaultRolesClaim = "nhisync_roles"

// serve reads `reconcile:` and `serve:`:
//
//	reconcile: 1h
//	serve:
//	  oidc:
//	    issuer: https://login.example.com
//	    client_id: nhisync
//	    client_secret: ${OIDC_SECRET}
//	    roles_claim: nhisync_roles
func (p *parser) serve(top map[string]entry, cfg *nhisync.Config) {
	cfg.Reconcile = DefaultReconcile
	p.memoryLimit(top, cfg)
	if e, ok := top["reconcile"]; ok && !isNull(e.v) {
		if d, ok := p.duration(e.v, "reconcile"); ok {
			if d < time.Second {
				p.add(e.v.Line, "reconcile", "a full pass at most every %s is too often; use 1s or more (default 1h)", d)
			} else {
				cfg.Reconcile = d
			}
		}
	}
	e, ok := top["serve"]
	if !ok || isNull(e.v) {
		return
	}
	entries, ok := p.mapping(e.v, "serve")
	if !ok {
		return
	}
	s := p.known(entries, "serve", []string{"oidc"})
	oe, ok := s["oidc"]
	if !ok || isNull(oe.v) {
		return
	}
	oentries, ok := p.mapping(oe.v, "serve.oidc")
	if !ok {
		return
	}
	o := p.known(oentries, "serve.oidc", []string{"issuer", "client_id", "client_secret", "roles_claim", "redirect_url"})
	cfgO := &nhisync.OIDC{RolesClaim: DefaultRolesClaim}
	get := func(key string, required bool) string {
		ke, ok := o[key]
		if !ok || isNull(ke.v) {
			if required {
				p.add(oe.v.Line, "serve.oidc."+key, "missing; serve.oidc needs issuer, client_id and client_secret")
			}
			return ""
		}
		v, ok := p.str(ke.v, "serve.oidc."+key)
		if ok && v == "" && required {
			p.add(ke.v.Line, "serve.oidc."+key, "is empty; give a value (secrets as ${VAR})")
		}
		return v
	}
	cfgO.Issuer = get("issuer", true)
	cfgO.ClientID = get("client_id", true)
	cfgO.ClientSecret = get("client_secret", true)
	if v := get("roles_claim", false); v != "" {
		cfgO.RolesClaim = v
	}
	cfgO.RedirectURL = get("redirect_url", false)
	for _, k := range []string{"issuer", "redirect_url"} {
		ke, ok := o[k]
		if !ok || isNull(ke.v) {
			continue
		}
		v := cfgO.Issuer
		if k == "redirect_url" {
			v = cfgO.RedirectURL
		}
		if u, err := url.Parse(v); v != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			p.add(ke.v.Line, "serve.oidc."+k, "%s is not an http(s) URL", p.show(resolve(ke.v)))
		}
	}
	cfg.Serve.OIDC = cfgO
}

// memoryLimit reads `memory_limit:`, a size such as 2GiB (or bytes).
func (p *parser) memoryLimit(top map[string]entry, cfg *nhisync.Config) {
	e, ok := top["memory_limit"]
	if !ok || isNull(e.v) {
		return
	}
	s, ok := p.str(e.v, "memory_limit")
	if !ok {
		return
	}
	n, err := humanize.ParseBytes(s)
	switch {
	case err != nil:
		p.add(e.v.Line, "memory_limit", "%q is not a size; write it as bytes or as text such as 2GiB", s)
	case n < 64<<20:
		p.add(e.v.Line, "memory_limit", "%s is too little to run in; use 64MiB or more (or leave memory_limit out)", s)
	case n > 1<<50:
		p.add(e.v.Line, "memory_limit", "%s is more than any machine holds; write a size such as 2GiB", s)
	default:
		cfg.MemoryLimit = int64(n)
	}
}
