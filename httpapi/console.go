package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nhisync/nhisync"
)

// The console's templates and assets, served from the binary: htmx
// (2.x, minified, with its licence) and a hand-written stylesheet. Nothing
// is loaded from anywhere else (the Content-Security-Policy says so).
//
//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// ConsoleOptions configure the web console.
type ConsoleOptions struct {
	// TLS marks session cookies Secure (the console is served over HTTPS).
	TLS bool
	// OIDC, when set, offers sign-in with an OpenID Connect provider.
	OIDC *nhisync.OIDC
	// BaseURL is the console's external URL (for the OIDC redirect when
	// OIDC.RedirectURL is empty), e.g. http://127.0.0.1:8080.
	BaseURL string
	// SessionTTL bounds a session (default 8h).
	SessionTTL time.Duration
}

// Cookie names.
const (
	sessionCookie = "nhisync_session"
	oidcCookie    = "nhisync_oidc"
)

// session is one signed-in person.
type session struct {
	who     principal
	csrf    string
	expires time.Time
}

// console serves the web pages.
type console struct {
	s       *Server
	opt     ConsoleOptions
	pages   map[string]*template.Template
	static  http.Handler
	oidc    *oidcLogin
	mu      sync.Mutex
	session map[string]*session
}

func newConsole(s *Server, opt ConsoleOptions) (*console, error) {
	if opt.SessionTTL == 0 {
		opt.SessionTTL = 8 * time.Hour
	}
	c := &console{s: s, opt: opt, session: map[string]*session{}, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"value": showValue, "time": showTime, "join": strings.Join,
		"can":       func(p *principal, role string) bool { return p != nil && p.role.Includes(nhisync.Role(role)) },
		"recordURL": func(kind, key string) string { return "/records/" + kind + "/" + key },
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "web/templates/base.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "web/templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "web/templates/"), ".html")
		if name == "base" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	sub, err := fs.Sub(staticFS, "web/static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	if opt.OIDC != nil {
		c.oidc = newOIDCLogin(opt)
	}
	return c, nil
}

// route registers the console's pages.
func (c *console) route(mux *http.ServeMux) {
	mux.Handle("GET /static/", c.headers(c.static))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.page(nhisync.RoleViewer, c.logout))
	if c.oidc != nil {
		mux.HandleFunc("GET /auth/oidc", c.oidcStart)
		mux.HandleFunc("GET /auth/callback", c.oidcCallback)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/records", http.StatusSeeOther) })
	mux.HandleFunc("GET /records", c.page(nhisync.RoleViewer, c.inventory))
	mux.HandleFunc("GET /records/{kind}/{rest...}", c.page(nhisync.RoleViewer, c.recordPage))
	mux.HandleFunc("GET /conflicts", c.page(nhisync.RoleViewer, c.conflictsPage))
	mux.HandleFunc("GET /quarantine", c.page(nhisync.RoleViewer, c.quarantinePage))
	mux.HandleFunc("GET /approvals", c.page(nhisync.RoleViewer, c.approvalsPage))
	mux.HandleFunc("POST /conflicts/{id}/resolve", c.page(nhisync.RoleSteward, c.resolve))
	mux.HandleFunc("POST /quarantine/{id}/dismiss", c.page(nhisync.RoleSteward, c.dismiss))
	mux.HandleFunc("POST /approvals/{id}/approve", c.page(nhisync.RoleApprover, c.approve))
	mux.HandleFunc("POST /approvals/{id}/reject", c.page(nhisync.RoleApprover, c.reject))
	mux.HandleFunc("GET /systems", c.page(nhisync.RoleViewer, c.systemsPage))
	mux.HandleFunc("GET /reports", c.page(nhisync.RoleViewer, c.reportsPage))
	mux.HandleFunc("GET /reports/{name}", c.page(nhisync.RoleViewer, c.reportsPage))
	mux.HandleFunc("GET /audit", c.page(nhisync.RoleViewer, c.auditPage))
}

// csp allows nothing but this origin: no CDN, no inline script.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (c *console) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Who   *principal
	CSRF  string
	Title string
	Nav   string
	Flash string
	Error string
	OIDC  bool
	Data  any
}

// pageFunc handles a signed-in request; it returns the template to render
// (or "" after writing a redirect) and its data.
type pageFunc func(w http.ResponseWriter, r *http.Request, v *view) (string, error)

// page wraps a console handler: a session (else to /login), the role, and
// for POST the CSRF token; errors render the error page with the API's
// status for their code.
func (c *console) page(need nhisync.Role, h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		sess := c.current(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "error", &view{Title: "Signed out", Error: "Your session has ended; sign in again."})
			return
		}
		v := &view{Who: &sess.who, CSRF: sess.csrf, Flash: r.URL.Query().Get("done"), OIDC: c.oidc != nil}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, v, nhisync.Errorf(nhisync.EINVALID, "the form is too large or malformed"))
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
				c.s.log.Warn("console: a form without a valid CSRF token was refused", "caller", sess.who.name, "path", r.URL.Path)
				c.fail(w, r, v, nhisync.Errorf(nhisync.EFORBIDDEN, "the form's CSRF token is missing or stale; reload the page and try again"))
				return
			}
		}
		if !sess.who.role.Includes(need) {
			c.fail(w, r, v, nhisync.Errorf(nhisync.EFORBIDDEN, "this needs the %s role; you are %s", need, sess.who.role))
			return
		}
		name, err := h(w, r, v)
		if err != nil {
			c.fail(w, r, v, err)
			return
		}
		if name != "" {
			c.render(w, r, http.StatusOK, name, v)
		}
	}
}

func (c *console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	code := nhisync.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	v.Title, v.Error = http.StatusText(status), nhisync.ErrorMessage(err)
	if code == nhisync.EINTERNAL || !ok {
		c.s.log.Error("console request failed", "path", r.URL.Path, "err", err)
		v.Error = "internal error; the server log has the cause"
	}
	c.render(w, r, status, "error", v)
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t := c.pages[name]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	block := "page"
	if r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Target") != "" && t.Lookup("partial") != nil {
		block = "partial"
	}
	if err := t.ExecuteTemplate(w, block, v); err != nil {
		c.s.log.Error("console template failed", "page", name, "err", err)
	}
}

// current returns the request's session, or nil. A token session ends
// when its token is revoked or its role changed.
func (c *console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	c.mu.Lock()
	sess := c.session[ck.Value]
	now := c.s.opt.Now()
	if sess != nil && now.After(sess.expires) {
		delete(c.session, ck.Value)
		sess = nil
	}
	c.mu.Unlock()
	if sess == nil {
		return nil
	}
	if sess.who.token {
		toks, err := c.s.opt.Store.Tokens(r.Context())
		if err != nil {
			return nil
		}
		for _, t := range toks {
			if t.Name == sess.who.name && t.Role == sess.who.role {
				return sess
			}
		}
		c.drop(ck.Value)
		return nil
	}
	return sess
}

func (c *console) drop(id string) {
	c.mu.Lock()
	delete(c.session, id)
	c.mu.Unlock()
}

// start opens a session for who and sets its cookie: HttpOnly,
// SameSite=Strict, Secure under TLS.
func (c *console) start(w http.ResponseWriter, who principal) {
	id, csrf := randomToken(), randomToken()
	c.mu.Lock()
	now := c.s.opt.Now()
	for k, s := range c.session {
		if now.After(s.expires) {
			delete(c.session, k)
		}
	}
	c.session[id] = &session{who: who, csrf: csrf, expires: now.Add(c.opt.SessionTTL)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: c.opt.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.opt.SessionTTL.Seconds())})
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", OIDC: c.oidc != nil, Data: safeNext(r.URL.Query().Get("next"))})
	})).ServeHTTP(w, r)
}

// login signs in with a pasted token. The login form needs no CSRF token:
// it grants nothing an attacker does not already hold (the token).
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "login", &view{Title: "Sign in", Error: "the form is too large or malformed"})
		return
	}
	p, err := c.s.lookupToken(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		status := http.StatusUnauthorized
		msg := "That token is unknown or revoked. Make one with: nhisync token create NAME --role viewer"
		if nhisync.ErrorCode(err) != codeUnauthorized {
			status, msg = http.StatusInternalServerError, "internal error; the server log has the cause"
			c.s.log.Error("console sign-in failed", "err", err)
		}
		c.render(w, r, status, "login", &view{Title: "Sign in", Error: msg, OIDC: c.oidc != nil})
		return
	}
	c.s.log.Info("console sign-in", "caller", p.name, "role", p.role)
	c.start(w, *p)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, v *view) (string, error) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.drop(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: c.opt.TLS, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return "", nil
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/records"
	}
	return next
}
