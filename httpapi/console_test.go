package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
)

// browserless is a cookie-keeping client that does not follow redirects,
// standing in for a browser in the console's HTTP-level tests.
type browserless struct {
	f *fixture
	c *http.Client
}

func (f *fixture) browser(t *testing.T) *browserless {
	jar, _ := cookiejar.New(nil)
	return &browserless{f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserless) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := b.c.Get(b.f.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browserless) post(t *testing.T, path string, form url.Values) (int, string, http.Header) {
	t.Helper()
	resp, err := b.c.PostForm(b.f.ts.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn pastes who's token on /login.
func (b *browserless) signIn(t *testing.T, who string) {
	t.Helper()
	status, body, h := b.post(t, "/login", url.Values{"token": {b.f.tokens[who]}, "next": {"/conflicts"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/conflicts" {
		t.Fatalf("sign in as %s: %d %s", who, status, body)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"nhisync_session=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("session cookie over plain HTTP is Secure: %q", ck)
	}
}

func (b *browserless) csrf(t *testing.T, page string) string {
	t.Helper()
	_, body, _ := b.get(t, page)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s has no CSRF field:\n%s", page, body)
	}
	return m[1]
}

// TestConsoleSessions: pages need a session; a pasted token opens one
// (HttpOnly, SameSite=Strict cookie); a bad token does not; a revoked
// token's session ends; logout ends it.
func TestConsoleSessions(t *testing.T) {
	f := newFixture(t, 4)
	b := f.browser(t)
	if status, _, h := b.get(t, "/records"); status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("inventory without a session: %d → %s, want the login page", status, h.Get("Location"))
	}
	if status, body, _ := b.post(t, "/login", url.Values{"token": {"nhs_wrong"}}); status != http.StatusUnauthorized || !strings.Contains(body, "unknown or revoked") {
		t.Errorf("bad token: %d", status)
	}
	if status, _, h := b.post(t, "/login", url.Values{"token": {f.tokens["vera"]}, "next": {"//evil.example/x"}}); status != http.StatusSeeOther || h.Get("Location") != "/records" {
		t.Errorf("off-site next: %d → %s, want /records", status, h.Get("Location"))
	}
	b.signIn(t, "vera")
	for _, p := range []string{"/records", "/records?q=bot-002", "/records/service_account/aws/bot-001", "/conflicts", "/quarantine", "/approvals", "/systems", "/reports", "/reports/orphans", "/audit"} {
		status, body, h := b.get(t, p)
		if status != http.StatusOK || !strings.Contains(body, "vera (viewer)") {
			t.Errorf("%s: %d", p, status)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(body, "https://") {
			t.Errorf("%s: CSP %q or an outside URL in the page", p, csp)
		}
	}
	_, body, _ := b.get(t, "/records?q=bot-002")
	if !strings.Contains(body, "service_account/aws/bot-002") || strings.Contains(body, "aws/bot-001") {
		t.Errorf("search for bot-002 shows the wrong records")
	}
	_, body, _ = b.get(t, "/records/service_account/aws/bot-001")
	for _, want := range []string{"team-001@example.com", "other-001@example.com", "conflict", "(sensitive)", "record.created"} {
		if !strings.Contains(body, want) {
			t.Errorf("record page lacks %q", want)
		}
	}
	if strings.Contains(body, "hunter2") {
		t.Error("record page shows a sensitive value")
	}
	// A viewer sees no action forms.
	if _, body, _ := b.get(t, "/conflicts"); strings.Contains(body, "Pick cmdb") {
		t.Error("a viewer is offered to resolve")
	}
	for _, p := range []string{"/static/htmx.min.js", "/static/htmx.LICENSE", "/static/style.css"} {
		if status, _, _ := b.get(t, p); status != http.StatusOK {
			t.Errorf("%s: %d", p, status)
		}
	}

	// Revoking the token ends the session.
	if err := f.store.RevokeToken(t.Context(), "vera"); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.get(t, "/records"); status != http.StatusSeeOther {
		t.Errorf("after revoking the token: %d, want a redirect to /login", status)
	}

	// Logout.
	b2 := f.browser(t)
	b2.signIn(t, "stan")
	tok := b2.csrf(t, "/records")
	if status, _, _ := b2.post(t, "/logout", url.Values{"csrf": {tok}}); status != http.StatusSeeOther {
		t.Errorf("logout: %d", status)
	}
	if status, _, _ := b2.get(t, "/records"); status != http.StatusSeeOther {
		t.Errorf("after logout: %d, want a redirect to /login", status)
	}
}

// TestConsoleActions: a form without its CSRF token is refused and decides
// nothing; with it, a steward resolves as themself; a role too low is a
// 403; separation of duties holds in the console too.
func TestConsoleActions(t *testing.T) {
	f := newFixture(t, 6)
	conflicts := f.items(t, "conflicts", "open")
	id := int64(conflicts[0]["id"].(float64))
	b := f.browser(t)
	b.signIn(t, "ana")
	path := fmt.Sprintf("/conflicts/%d/resolve", id)
	for name, form := range map[string]url.Values{
		"no csrf":    {"pick": {"catalog"}},
		"wrong csrf": {"pick": {"catalog"}, "csrf": {"forged"}},
	} {
		status, body, _ := b.post(t, path, form)
		if status != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Errorf("%s: %d, want 403 naming CSRF", name, status)
		}
	}
	if got := f.items(t, "conflicts", "open"); len(got) != 3 {
		t.Fatalf("a CSRF-less POST decided something: %d open conflicts", len(got))
	}
	tok := b.csrf(t, "/conflicts")
	if !strings.Contains(func() string { _, body, _ := b.get(t, "/conflicts"); return body }(), "Pick catalog") {
		t.Error("a steward is not offered to pick")
	}
	status, _, h := b.post(t, path, url.Values{"csrf": {tok}, "value": {"ana-said@example.com"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/conflicts?done=") {
		t.Fatalf("resolve: %d → %s", status, h.Get("Location"))
	}
	c, err := f.store.Conflict(t.Context(), id)
	if err != nil || c.Status != nhisync.StatusResolved || c.ResolvedBy != "ana" {
		t.Errorf("conflict after the form: %+v, %v", c, err)
	}
	// ana caused the held write to policy: she may not approve it.
	var aid int64
	for _, a := range f.items(t, "approvals", "pending") {
		if a["requested_by"] == "person:ana" {
			aid = int64(a["id"].(float64))
		}
	}
	status, body, _ := b.post(t, fmt.Sprintf("/approvals/%d/approve", aid), url.Values{"csrf": {tok}})
	if status != http.StatusForbidden || !strings.Contains(body, "separation of duties") {
		t.Errorf("ana approving her own change: %d", status)
	}
	// A viewer cannot approve even with a valid CSRF token.
	v := f.browser(t)
	v.signIn(t, "vera")
	if status, _, _ := v.post(t, fmt.Sprintf("/approvals/%d/approve", aid), url.Values{"csrf": {v.csrf(t, "/approvals")}}); status != http.StatusForbidden {
		t.Errorf("viewer approving: %d, want 403", status)
	}
	// Another session's CSRF token is no good either.
	if status, _, _ := v.post(t, fmt.Sprintf("/approvals/%d/approve", aid), url.Values{"csrf": {tok}}); status != http.StatusForbidden {
		t.Errorf("another session's CSRF token: %d, want 403", status)
	}
	a, _ := f.store.Approval(t.Context(), aid)
	if a.Status != nhisync.StatusPending {
		t.Errorf("approval decided by refused requests: %s", a.Status)
	}
}

// TestConsoleAuditShowsOnlySyncedCheckpoints: the audit page lists the
// checkpoints the store hands out (LatestCheckpoint's and older), not one
// a bulk window signed before it was synced to disk.
func TestConsoleAuditShowsOnlySyncedCheckpoints(t *testing.T) {
	f := newFixture(t, 4)
	b := f.browser(t)
	b.signIn(t, "vera")
	if _, body, _ := b.get(t, "/audit"); !strings.Contains(body, "Latest signed checkpoint") {
		t.Fatal("the audit page shows no checkpoint after a pass")
	}
	// The SQLite store's mark of a bulk window not synced yet, opened
	// before any checkpoint was signed.
	raw := f.store.(interface {
		ExecRaw(ctx context.Context, query string, args ...any) error
	})
	if err := raw.ExecRaw(t.Context(), `INSERT INTO meta (key, value) VALUES ('sqlite.bulk_window_unsynced', '0')`); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := b.get(t, "/audit"); strings.Contains(body, "Latest signed checkpoint") || strings.Contains(body, "— ") {
		t.Errorf("the audit page shows a checkpoint no synced one covers:\n%s", body)
	}
}
