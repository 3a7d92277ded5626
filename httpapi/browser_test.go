package httpapi_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nhisync/nhisync"
)

var screenshots = flag.String("console.screenshots", "", "directory to write console screenshots to (make console-screenshots)")

// chromium returns Debian's chromium (scripts/deps installs it). Without it
// the test skips on a developer's machine but fails under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; run scripts/deps (make test does) to install Debian's chromium")
	}
	t.Skip("chromium is not installed (scripts/deps installs it); under CI=true this test fails instead")
	return ""
}

// TestConsoleInChromium drives the console in headless Chromium: sign in by
// pasting a token, open a record, resolve a conflict and approve a held
// write by clicking, and check the store; a POST without the CSRF token,
// sent by script from the signed-in page, is refused.
//
// A page shows (#who visible) before its deferred htmx script has run, so
// after signing in the test waits for the document to load, not for an
// element: the script of the first signed-in page is held back until the
// page shows, as a loaded machine can make it arrive. The test checked
// htmx and typed the search as soon as #who showed: htmx was not there
// yet, and the search never went out (the test failed at its deadline).
func TestConsoleInChromium(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t, 6)
	var hold atomic.Bool
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/static/htmx.min.js" {
			w.Header().Set("Cache-Control", "no-store")
			if hold.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
		}
		f.srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// Start the browser without a deadline (a deadline on the first run
	// would bound the whole browser).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// No deadline of its own (a loaded machine is slow, not wrong): the
	// test's, less a margin to close the browser and say which step hung.
	ctx, cancel := context.WithCancel(bctx)
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(bctx, d.Add(-15*time.Second))
	}
	defer cancel()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if *screenshots == "" {
				return nil
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644)
		})
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(what string, sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}

	// Sign in.
	do("sign in",
		chromedp.Navigate(ts.URL+"/records"),
		chromedp.WaitVisible(chromedp.ID("token")),
		shot("login"),
		chromedp.Func(func(context.Context, *chromedp.Target) error { hold.Store(true); return nil }),
		chromedp.SendKeys(chromedp.ID("token"), f.tokens["ana"]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("who")),
	)
	close(release)
	do("load the signed-in page",
		chromedp.Poll[chromedp.Void](`document.readyState === "complete"`, chromedp.WithPollingTimeout(0)),
		shot("inventory"),
	)
	if who := text("who", "#who"); who != "ana (approver)" {
		t.Fatalf("signed in as %q", who)
	}
	htmx, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof htmx === "object" && typeof htmx.version === "string"`))
	if err != nil || !htmx {
		t.Errorf("the embedded htmx did not load: %v", err)
	}

	// Search (htmx swaps the results as one types), then open a record.
	do("search",
		chromedp.SendKeys(chromedp.ID("q"), "bot-001"),
		chromedp.WaitNotPresent(chromedp.Search(`//a[contains(., "aws/bot-002")]`)),
	)
	if results := text("results", "#results"); !strings.Contains(results, "aws/bot-001") {
		t.Errorf("search results: %s", results)
	}
	do("open a record",
		chromedp.Click(chromedp.Search(`//a[contains(., "service_account/aws/bot-001")]`)),
		chromedp.WaitVisible(chromedp.CSS("table.fields")),
		shot("record"),
	)
	fields := text("fields", "table.fields")
	for _, want := range []string{"team-001@example.com", "other-001@example.com", "(sensitive)"} {
		if !strings.Contains(fields, want) {
			t.Errorf("record page lacks %q:\n%s", want, fields)
		}
	}

	// Resolve a conflict by clicking.
	id := int64(f.items(t, "conflicts", "open")[0]["id"].(float64))
	do("resolve a conflict",
		chromedp.Navigate(ts.URL+"/conflicts"),
		chromedp.WaitVisible(chromedp.ID(fmt.Sprintf("conflict-%d", id))),
		shot("conflicts"),
		chromedp.Click(chromedp.Search(fmt.Sprintf(`//tr[@id="conflict-%d"]//button[normalize-space()="Pick catalog"]`, id))),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	flash := text("flash", ".flash")
	c, err := f.store.Conflict(t.Context(), id)
	if err != nil || c.Status != nhisync.StatusResolved || c.ResolvedBy != "ana" || c.Picked != "catalog" {
		t.Errorf("after clicking: conflict %+v, %v (flash %q)", c, err, flash)
	}

	// Approve a held write (requested by the CMDB, so ana may).
	var aid int64
	var value string
	for _, a := range f.items(t, "approvals", "pending") {
		if a["requested_by"] == "cmdb" {
			aid, value = int64(a["id"].(float64)), a["value"].(string)
			break
		}
	}
	do("approve a write",
		chromedp.Navigate(ts.URL+"/approvals"),
		chromedp.WaitVisible(chromedp.ID(fmt.Sprintf("approval-%d", aid))),
		shot("approvals"),
		chromedp.Click(chromedp.Search(fmt.Sprintf(`//tr[@id="approval-%d"]//button[normalize-space()="Approve"]`, aid))),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	flash = text("flash", ".flash")
	a, err := f.store.Approval(t.Context(), aid)
	if err != nil || a.Status != nhisync.StatusApproved || a.DecidedBy != "ana" {
		t.Errorf("after clicking: approval %+v, %v (flash %q)", a, err, flash)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, "policy.csv")); !strings.Contains(string(b), value) {
		t.Errorf("policy.csv lacks the approved %q:\n%s", value, b)
	}

	// A POST without the CSRF token, from the signed-in page (cookies
	// sent), is refused and decides nothing.
	other := int64(f.items(t, "conflicts", "open")[0]["id"].(float64))
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`fetch("/conflicts/%d/resolve", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "pick=cmdb"}).then(r => r.status)`, other), chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("CSRF-less POST from the page: %d, %v; want 403", status, err)
	}
	if c, _ := f.store.Conflict(t.Context(), other); c.Status != nhisync.StatusOpen {
		t.Errorf("the CSRF-less POST resolved conflict %d", other)
	}
	do("systems and audit pages",
		chromedp.Navigate(ts.URL+"/systems"), chromedp.WaitVisible(chromedp.ID("system-cmdb")), shot("systems"),
		chromedp.Navigate(ts.URL+"/audit"), chromedp.WaitVisible(chromedp.CSS("pre.note")), shot("audit"),
	)
}
