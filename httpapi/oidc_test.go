package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/httpapi"
)

// rolesStorage is the example OP's storage with an nhisync_roles claim per
// user, given in the ID token and by the userinfo endpoint.
type rolesStorage struct {
	*storage.Storage
	roles map[string][]string // by user ID
}

func (s *rolesStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	s.addRoles(ui, req.GetSubject())
	return nil
}

func (s *rolesStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	s.addRoles(ui, ui.Subject)
	return nil
}

func (s *rolesStorage) addRoles(ui *oidc.UserInfo, subject string) {
	if r, ok := s.roles[subject]; ok {
		ui.AppendClaims("nhisync_roles", r)
	}
}

// TestOIDCSignIn signs in to the console through a real OpenID provider
// (zitadel/oidc's example OP, started in the test): code flow with PKCE,
// the role from the nhisync_roles claim, the name from preferred_username.
// A person without a role is refused; a callback without the state cookie
// is refused.
func TestOIDCSignIn(t *testing.T) {
	// The OP, on a free port.
	var opHandler http.Handler
	opSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { opHandler.ServeHTTP(w, r) }))
	defer opSrv.Close()
	issuer := opSrv.URL
	// The console's server is created unstarted, so its address is known
	// for the client's redirect URI.
	var consoleHandler http.Handler
	console := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { consoleHandler.ServeHTTP(w, r) }))
	base := "http://" + console.Listener.Addr().String()
	client := storage.WebClient("nhisync-console", "client-secret", base+"/auth/callback")
	st := &rolesStorage{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{client.GetID(): client}),
		roles:   map[string][]string{"id1": {"viewer", "steward"}},
	}
	opHandler = exampleop.SetupServer(issuer, st, slog.New(slog.DiscardHandler), false)

	f := newFixture(t, 4)
	srv, err := httpapi.New(httpapi.Options{Config: f.cfg, Store: f.store, Engine: f.engine, Console: httpapi.ConsoleOptions{
		BaseURL: base,
		OIDC:    &nhisync.OIDC{Issuer: issuer, ClientID: "nhisync-console", ClientSecret: "client-secret", RolesClaim: "nhisync_roles"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	consoleHandler = srv
	console.Start()
	defer console.Close()

	signIn := func(username string) (*http.Client, int, string) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		// The console sends the browser to the OP, which shows its login
		// form.
		resp, err := c.Get(base + "/auth/oidc")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), issuer+"/login/username") {
			t.Fatalf("start: %d at %s, want the OP's login form", resp.StatusCode, resp.Request.URL)
		}
		id := resp.Request.URL.Query().Get("authRequestID")
		// The person signs in at the OP, which sends them back.
		resp, err = c.PostForm(issuer+"/login/username", url.Values{"id": {id}, "username": {username}, "password": {"verysecure"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return c, resp.StatusCode, string(body)
	}

	host := strings.Split(strings.TrimPrefix(issuer, "http://"), ":")[0]
	c, status, body := signIn("test-user@" + host)
	if status != http.StatusOK || !strings.Contains(body, "Signed in") {
		t.Fatalf("callback: %d\n%s", status, body)
	}
	resp, err := c.Get(base + "/records")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "test-user@"+host+" (steward)") {
		t.Errorf("after OIDC sign-in: %d, page does not name the steward:\n%.400s", resp.StatusCode, page)
	}
	for _, ck := range jar(c).Cookies(mustURL(base + "/")) {
		if ck.Name == "nhisync_session" && ck.Value == "" {
			t.Error("empty session cookie")
		}
	}

	// A person the OP gives no nhisync role is refused.
	_, status, body = signIn("test-user2")
	if status != http.StatusForbidden || !strings.Contains(body, "no nhisync role") {
		t.Errorf("user without a role: %d\n%.300s", status, body)
	}

	// A callback that did not start in this browser is refused.
	resp, err = http.Get(base + "/auth/callback?code=x&state=y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback without the state cookie: %d, want 400", resp.StatusCode)
	}
}

func jar(c *http.Client) http.CookieJar { return c.Jar }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
