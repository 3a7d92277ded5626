package http_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	nhttp "github.com/nhisync/nhisync/connector/http"
)

func systemFor(s nhisync.Settings) *nhisync.System {
	sys := conntest.System("api", "http")
	sys.Settings = s
	return sys
}

func openB(t testing.TB, sys *nhisync.System) *nhttp.Connector {
	t.Helper()
	c, err := nhttp.New(sys, conntest.Kind())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, s nhisync.Settings) (*nhisync.System, *nhttp.Connector) {
	t.Helper()
	sys := systemFor(s)
	return sys, openB(t, sys)
}

func fill(a *api, n int) {
	for i := range n {
		r := conntest.Record(i)
		r[conntest.TagsName] = []any{"internal"}
		a.put(r[conntest.IDName].(string), r)
	}
}

func count(t *testing.T, c nhisync.Connector) (map[string]nhisync.Observation, error) {
	t.Helper()
	got := map[string]nhisync.Observation{}
	err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		o.Values = append([]nhisync.Value(nil), o.Values...)
		got[o.ID] = o
		return nil
	})
	return got, err
}

// Every paging style reads every record once.
func TestPagingStyles(t *testing.T) {
	for _, paging := range []string{"page", "cursor", "link"} {
		t.Run(paging, func(t *testing.T) {
			a := newAPI(t, paging, true)
			fill(a, 23)
			s := settings(a, paging)
			s["list"].(map[string]any)["query"] = map[string]any{"per_page": "5"}
			if paging == "page" {
				s["list"].(map[string]any)["size"] = 5
			}
			_, c := open(t, s)
			got, err := count(t, c)
			if err != nil || len(got) != 23 {
				t.Fatalf("read %d records (err %v), want 23", len(got), err)
			}
			if n := a.calls["GET"]; n != 5 {
				t.Errorf("%d list calls for 23 records at 5 a page, want 5", n)
			}
		})
	}
}

// A next link to another host is refused: the token would go with it.
func TestNextLinkToAnotherHostRefused(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the token was sent to another host: %s", r.Header.Get("Authorization"))
	}))
	defer evil.Close()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+evil.URL+"/v1/accounts?page=2>; rel=\"next\"")
		io.WriteString(w, `{"data":{"items":[{"sysid":"a"}]}}`)
	}))
	defer a.Close()
	_, c := open(t, nhisync.Settings{"url": a.URL + "/v1", "auth": map[string]any{"token": apiToken},
		"list": map[string]any{"path": "/accounts", "items": "data.items", "paging": "link"}})
	if _, err := count(t, c); err == nil || !strings.Contains(err.Error(), "outside the API's url") {
		t.Errorf("err %v, want the link refused", err)
	}
}

// A record changed between nhisync's GET and its PATCH: the API refuses
// the If-Match (412) and the write is stale, the change kept. Without
// ETags, check --connect says writes are read-compare-write.
func TestETagMakesConcurrentChangeStale(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 2)
	sys, c := open(t, settings(a, "page"))
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: "sa-00000", Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("owner0@example.com"), New: nhisync.Str("x@example.com")}}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("plain write: %v %+v", err, res)
	}
	if caps := c.Capabilities(t.Context()); !caps.ConditionalWrites {
		t.Errorf("capabilities %+v, want conditional writes", caps)
	}
	// The record changes after the GET.
	a.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch {
			rec := a.get("sa-00001")
			rec[conntest.OwnerName] = "someone@example.com"
			a.put("sa-00001", rec)
		}
		return false
	})
	res, err = c.Apply(t.Context(), []nhisync.Write{{ID: "sa-00001", Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("owner1@example.com"), New: nhisync.Str("y@example.com")}}}})
	if err != nil || res[0].Status != nhisync.WriteStale {
		t.Fatalf("write under a concurrent change: %v %+v, want stale", err, res)
	}
	if got := a.get("sa-00001")[conntest.OwnerName]; got != "someone@example.com" {
		t.Errorf("owner %v: the concurrent change was overwritten", got)
	}
	_ = sys
	plain := newAPI(t, "page", false)
	fill(plain, 1)
	_, pc := open(t, settings(plain, "page"))
	if err := pc.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if caps := pc.Capabilities(t.Context()); caps.ConditionalWrites || !strings.Contains(caps.ConditionalNote, "no ETag") || !caps.Incremental {
		t.Errorf("capabilities without ETags: %+v", caps)
	}
}

// 429 and 503 are tried again, waiting what Retry-After asks.
func TestRetriesHonourRetryAfter(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 3)
	_, c := open(t, settings(a, "page"))
	var waits []time.Duration
	nhttp.Client(c).Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	a.fail429, a.fail503 = 1, 1
	got, err := count(t, c)
	if err != nil || len(got) != 3 {
		t.Fatalf("read %d records, err %v", len(got), err)
	}
	if len(waits) != 2 || waits[0] != 0 && waits[0] > time.Second {
		t.Errorf("waits %v, want two retries", waits)
	}
	// Retry-After: 7 is honoured.
	first := true
	a.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if first {
			first = false
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	if _, err := count(t, c); err != nil {
		t.Fatal(err)
	}
	if waits[2] != 7*time.Second {
		t.Errorf("waited %v after Retry-After: 7", waits[2])
	}
}

// Refused credentials fail the system with a clear message, and no
// secret shows in any error; a call that does not answer times out.
func TestRefusedCredentialsAndTimeout(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 1)
	s := settings(a, "page")
	const wrong = "wrong-token-s3cr3t-value"
	s["auth"] = map[string]any{"token": wrong}
	_, c := open(t, s)
	_, err := count(t, c)
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("refused token: %v", err)
	}
	for _, e := range []error{err, c.Check(t.Context())} {
		if e != nil && strings.Contains(e.Error(), wrong) {
			t.Errorf("the error shows the token: %v", e)
		}
	}
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer slow.Close()
	defer close(block)
	s = settings(a, "page")
	s["url"], s["timeout"], s["retries"] = slow.URL, "50ms", 0
	_, sc := open(t, s)
	if _, err := count(t, sc); nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a call that never answers: %v", err)
	}
}

// A record whose value is not one is read as malformed (quarantined on
// that record); a record without an id is skipped; the rest is read.
func TestUndecodableRecordReadGoesOn(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 3)
	r := a.get("sa-00001")
	r[conntest.OwnerName] = map[string]any{"nested": "object"}
	a.put("sa-00001", r)
	a.put("noid", map[string]any{conntest.NameName: "anonymous"})
	delete(a.recs["noid"], conntest.IDName)
	sys, c := open(t, settings(a, "page"))
	got, err := count(t, c)
	if err != nil || len(got) != 3 {
		t.Fatalf("read %d records (err %v), want 3", len(got), err)
	}
	owner := 0
	for i, m := range sys.Fields {
		if m.Field == "owner" {
			owner = i
		}
	}
	if got["sa-00001"].Values[owner].Problem() == "" || got["sa-00002"].Values[owner].Text() != "owner2@example.com" {
		t.Errorf("owner of sa-00001 %q (want malformed), sa-00002 %q", got["sa-00001"].Values[owner], got["sa-00002"].Values[owner])
	}
}

// The webhook: a signed, fresh, small call is accepted once and hands the
// ids to Watch; a bad signature (401), an old timestamp, an oversized body
// or a replay (400) change nothing; no answer holds the secret.
func TestWebhook(t *testing.T) {
	const secret = "hook-secret-0123456789abcdef"
	a := newAPI(t, "page", true)
	s := settings(a, "page")
	s["webhook"] = map[string]any{"path": "/hooks/api", "secret": secret, "max_bytes": 256}
	_, plain := open(t, s)
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	plain.Now = func() time.Time { return now }
	c := nhttp.HookConnector{Connector: plain}
	if c.WebhookPath() != "/hooks/api" {
		t.Fatalf("WebhookPath %q", c.WebhookPath())
	}
	got := make(chan []string, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Watch(ctx, func(ids []string) { got <- ids }) }()
	defer func() { cancel(); <-done }()

	call := func(body string, ts time.Time, sig string) (int, string) {
		t.Helper()
		tss := strconv.FormatInt(ts.Unix(), 10)
		if sig == "" {
			sig = nhttp.Sign([]byte(secret), tss, []byte(body))
		}
		r := httptest.NewRequest(http.MethodPost, "/hooks/api", strings.NewReader(body))
		r.Header.Set(nhttp.HeaderTimestamp, tss)
		r.Header.Set(nhttp.HeaderSignature, sig)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("the answer shows the secret: %s", w.Body)
		}
		return w.Code, w.Body.String()
	}
	body := `{"ids": ["sa-1", "sa-2"]}`
	for _, tc := range []struct {
		name string
		body string
		ts   time.Time
		sig  string
		want int
	}{
		{"bad signature", body, now, "sha256=" + strings.Repeat("ab", 32), http.StatusUnauthorized},
		{"no signature", body, now, "sha256=", http.StatusUnauthorized},
		{"old timestamp", body, now.Add(-6 * time.Minute), "", http.StatusBadRequest},
		{"future timestamp", body, now.Add(6 * time.Minute), "", http.StatusBadRequest},
		{"oversized", `{"ids": ["` + strings.Repeat("x", 300) + `"]}`, now, "", http.StatusBadRequest},
	} {
		if code, msg := call(tc.body, tc.ts, tc.sig); code != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, code, msg, tc.want)
		}
	}
	select {
	case ids := <-got:
		t.Fatalf("a refused call reached Watch: %v", ids)
	default:
	}
	if code, msg := call(body, now.Add(-time.Minute), ""); code != http.StatusAccepted {
		t.Fatalf("valid call: HTTP %d %s", code, msg)
	}
	if ids := <-got; len(ids) != 2 || ids[0] != "sa-1" {
		t.Errorf("Watch got %v", ids)
	}
	if code, _ := call(body, now.Add(-time.Minute), ""); code != http.StatusBadRequest {
		t.Errorf("a replayed call: HTTP %d, want 400", code)
	}
	r := httptest.NewRequest(http.MethodGet, "/hooks/api", bytes.NewReader(nil))
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d", w.Code)
	}
}

// Open gives each system the capabilities configured: a Watcher only with
// a webhook, a Changer only with a cursor.
func TestOpenCapabilities(t *testing.T) {
	a := newAPI(t, "page", true)
	hook := map[string]any{"path": "/hooks/a", "secret": strings.Repeat("s", 20)}
	for _, tc := range []struct {
		cursor, hook bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		s := settings(a, "page")
		if !tc.cursor {
			delete(s, "cursor")
		}
		if tc.hook {
			s["webhook"] = hook
		}
		c, err := nhttp.Open(t.Context(), systemFor(s), conntest.Kind())
		if err != nil {
			t.Fatal(err)
		}
		_, watcher := c.(nhisync.Watcher)
		_, changer := c.(nhisync.Changer)
		_, handler := c.(http.Handler)
		if watcher != tc.hook || handler != tc.hook || changer != tc.cursor {
			t.Errorf("cursor %v hook %v: %T is Watcher %v, Handler %v, Changer %v", tc.cursor, tc.hook, c, watcher, handler, changer)
		}
	}
}

// Bad settings are refused, naming the setting.
func TestValidate(t *testing.T) {
	a := newAPI(t, "page", true)
	for _, tc := range []struct {
		edit func(s nhisync.Settings)
		want string
	}{
		{func(s nhisync.Settings) { delete(s, "url") }, "url"},
		{func(s nhisync.Settings) { s["url"] = "http://u:p@h/" }, "credentials"},
		{func(s nhisync.Settings) { delete(s, "list") }, "list is required"},
		{func(s nhisync.Settings) { s["list"].(map[string]any)["paging"] = "offset" }, "list.paging"},
		{func(s nhisync.Settings) { s["list"].(map[string]any)["paging"] = "cursor" }, "list.next"},
		{func(s nhisync.Settings) { s["update"] = map[string]any{"method": "DELETE"} }, "update.method"},
		{func(s nhisync.Settings) { s["update"] = map[string]any{"body": "{{.Nope"} }, "update.body"},
		{func(s nhisync.Settings) { s["get"] = "/accounts/x" }, "{id}"},
		{func(s nhisync.Settings) { s["auth"] = map[string]any{"token": "env:NHISYNC_NO_SUCH_VAR"} }, "NHISYNC_NO_SUCH_VAR"},
		{func(s nhisync.Settings) { s["webhook"] = map[string]any{"path": "/hooks/x", "secret": "short"} }, "webhook.secret"},
		{func(s nhisync.Settings) {
			s["webhook"] = map[string]any{"path": "/api/v1/x", "secret": strings.Repeat("s", 20)}
		}, "webhook.path"},
	} {
		s := settings(a, "page")
		tc.edit(s)
		sys := conntest.System("api", "http")
		sys.Settings = s
		err := nhttp.Validate(sys, conntest.Kind())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want it to name %q", err, tc.want)
		}
	}
}

// check --connect finds a get setting that does not reach the listed
// records.
func TestCheckFindsWrongGet(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 1)
	s := settings(a, "page")
	s["get"] = "/accounts/{id}/nope"
	_, c := open(t, s)
	if err := c.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "fix get") {
		t.Errorf("Check: %v", err)
	}
}

// A body template renders the write.
func TestBodyTemplate(t *testing.T) {
	a := newAPI(t, "page", true)
	fill(a, 1)
	s := settings(a, "page")
	s["update"] = map[string]any{"method": "PATCH", "body": `{"ownedby": {{json .Fields.owner}}, "notes": "set by nhisync"}`}
	_, c := open(t, s)
	res, err := c.Apply(t.Context(), []nhisync.Write{{ID: "sa-00000", Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str("owner0@example.com"), New: nhisync.Str("t@example.com")}}}})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("%v %+v", err, res)
	}
	if r := a.get("sa-00000"); r[conntest.OwnerName] != "t@example.com" || r[conntest.NotesName] != "set by nhisync" {
		t.Errorf("record after the templated write: %v", r)
	}
}
