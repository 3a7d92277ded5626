package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/nhisync/nhisync"
)

// oidcLogin signs people in with an OpenID Connect provider: the
// authorization code flow with PKCE, state and nonce; the ID token's
// roles claim gives the role, its preferred_username (else email, else
// subject) the name the audit log records.
type oidcLogin struct {
	cfg      *nhisync.OIDC
	redirect string
	tls      bool

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
	// pending sign-ins by state, each bound to the browser by a cookie.
	pending map[string]*pendingLogin
}

type pendingLogin struct {
	nonce, verifier, next string
	expires               time.Time
}

// loginTTL bounds the time between leaving for the provider and coming back.
const loginTTL = 10 * time.Minute

func newOIDCLogin(opt ConsoleOptions) *oidcLogin {
	redirect := opt.OIDC.RedirectURL
	if redirect == "" {
		redirect = opt.BaseURL + "/auth/callback"
	}
	return &oidcLogin{cfg: opt.OIDC, redirect: redirect, tls: opt.TLS, pending: map[string]*pendingLogin{}}
}

// setup discovers the provider once it answers (it may start after us).
func (o *oidcLogin) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.oauth != nil {
		return o.oauth, o.verifier, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return nil, nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("the identity provider %s does not answer; sign in with a token meanwhile", o.cfg.Issuer), Err: err}
	}
	o.provider = p
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.oauth = &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: o.redirect, Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	return o.oauth, o.verifier, nil
}

func (c *console) oidcStart(w http.ResponseWriter, r *http.Request) {
	o := c.oidc
	conf, _, err := o.setup(r.Context())
	if err != nil {
		c.s.log.Warn("OIDC provider unavailable", "issuer", o.cfg.Issuer, "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "login", &view{Title: "Sign in", Error: nhisync.ErrorMessage(err), OIDC: true})
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	now := c.s.opt.Now()
	o.mu.Lock()
	for k, p := range o.pending {
		if now.After(p.expires) {
			delete(o.pending, k)
		}
	}
	o.pending[state] = &pendingLogin{nonce: nonce, verifier: verifier, next: safeNext(r.URL.Query().Get("next")), expires: now.Add(loginTTL)}
	o.mu.Unlock()
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, and this cookie must come with it.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: state, Path: "/auth/", HttpOnly: true, Secure: o.tls,
		SameSite: http.SameSiteLaxMode, MaxAge: int(loginTTL.Seconds())})
	http.Redirect(w, r, conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (c *console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	fail := func(status int, msg string, err error) {
		if err != nil {
			c.s.log.Warn("OIDC sign-in refused", "reason", msg, "err", err)
		}
		c.render(w, r, status, "login", &view{Title: "Sign in", Error: msg, OIDC: true})
	}
	o := c.oidc
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "the identity provider refused the sign-in: "+e, nil)
		return
	}
	ck, err := r.Cookie(oidcCookie)
	state := q.Get("state")
	if err != nil || state == "" || ck.Value != state {
		fail(http.StatusBadRequest, "this sign-in did not start here (or took too long); start again", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/auth/", HttpOnly: true, Secure: o.tls, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	o.mu.Lock()
	p := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if p == nil || c.s.opt.Now().After(p.expires) {
		fail(http.StatusBadRequest, "this sign-in expired; start again", nil)
		return
	}
	conf, verifier, err := o.setup(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, nhisync.ErrorMessage(err), err)
		return
	}
	tok, err := conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "the identity provider did not accept the sign-in code", err)
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		fail(http.StatusUnauthorized, "the identity provider sent no ID token", nil)
		return
	}
	idt, err := verifier.Verify(r.Context(), raw)
	if err != nil {
		fail(http.StatusUnauthorized, "the ID token does not verify", err)
		return
	}
	if idt.Nonce != p.nonce {
		fail(http.StatusUnauthorized, "the ID token is not for this sign-in (nonce)", nil)
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		fail(http.StatusUnauthorized, "the ID token's claims do not decode", err)
		return
	}
	// A provider may keep profile claims (and custom ones) for the
	// UserInfo endpoint when it issues an access token (OIDC Core 5.4):
	// fill in what the ID token lacks from there, for the same subject.
	if firstString(claims, "preferred_username", "email") == "" || claims[o.cfg.RolesClaim] == nil {
		ui, err := o.provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
		if err != nil {
			fail(http.StatusUnauthorized, "the identity provider's userinfo endpoint did not answer", err)
			return
		}
		var extra map[string]any
		if ui.Subject != idt.Subject || ui.Claims(&extra) != nil {
			fail(http.StatusUnauthorized, "the userinfo answer is not about the signed-in subject", nil)
			return
		}
		for k, v := range extra {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	name := firstString(claims, "preferred_username", "email", "sub")
	role := highestRole(claims[o.cfg.RolesClaim])
	if nhisync.ValidTokenName(name) != nil {
		// The name is the audit log's actor: keep it to the same
		// characters as a token's.
		fail(http.StatusForbidden, "your identity's name cannot be recorded as an actor; ask an admin for a token", nil)
		return
	}
	if role == "" {
		fail(http.StatusForbidden, fmt.Sprintf("%s has no nhisync role: the identity provider must put viewer, steward, approver or admin in the %s claim", name, o.cfg.RolesClaim), nil)
		return
	}
	c.s.log.Info("console sign-in with OIDC", "caller", name, "role", role)
	c.start(w, principal{name: name, role: role})
	// A page, not a redirect: the session cookie is SameSite=Strict, and a
	// redirect in this cross-site chain would arrive without it.
	c.render(w, r, http.StatusOK, "signedin", &view{Title: "Signed in", Data: p.next})
}

func firstString(claims map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := claims[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// highestRole reads a roles claim (a string or a list of strings) and
// returns the highest nhisync role in it ("" for none).
func highestRole(v any) nhisync.Role {
	var names []string
	switch x := v.(type) {
	case string:
		names = []string{x}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	var best nhisync.Role
	for _, n := range names {
		r := nhisync.Role(n)
		if r.Valid() && (best == "" || r.Includes(best)) {
			best = r
		}
	}
	return best
}
