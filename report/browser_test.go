package report_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/nhisync/nhisync/report"
)

// chromium returns Debian's chromium, installed by `make test`
// (scripts/deps). Without it the browser test is skipped on a developer
// machine but fails under CI, so a CI run cannot pass without it.
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

// TestEvidencePackInChromium renders the pack in headless Chromium from a
// file:// URL, as an auditor opening an attachment would, and checks that
// each section and each chart is there and not empty, and that the page
// asks for nothing over the network (nor any other file).
func TestEvidencePackInChromium(t *testing.T) {
	bin := chromium(t)
	w, ev, _ := evidenceWorld(t)
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, ev); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(w.dir, "evidence.html")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + file

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// Start the browser without a deadline (a deadline on the first run
	// would bound the whole browser), then listen before navigating.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var requests []string
	if err := chromedp.Listen(ctx, func(e any) {
		if r, ok := e.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, r.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	type section struct {
		ID   string `json:"id"`
		Text int    `json:"text"`
	}
	type chart struct {
		Name   string  `json:"name"`
		Shapes int     `json:"shapes"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(url), chromedp.WaitReady("section#audit")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	sections, err := chromedp.Run(tctx, chromedp.Evaluate[[]section](`[...document.querySelectorAll("section")].map(s => ({id: s.id, text: s.innerText.trim().length}))`))
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(tctx, chromedp.Evaluate[[]chart](`[...document.querySelectorAll("figure[data-chart]")].map(f => {
		const svg = f.querySelector("svg"); const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
		const shapes = svg ? [...svg.querySelectorAll("rect")].filter(x => x.getBBox().width > 0 && x.getBBox().height > 0).length : 0;
		return {name: f.dataset.chart, shapes: shapes, width: r.width, height: r.height};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	printRule, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`[...document.styleSheets].some(s => [...s.cssRules].some(r => r.media && r.media.mediaText === "print" && r.cssText.includes("break-before")))`))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"scope", "coverage", "findings", "changes", "decisions", "audit"}
	if len(sections) != len(want) {
		t.Errorf("sections %+v, want %v", sections, want)
	}
	for i, s := range sections {
		if i < len(want) && s.ID != want[i] || s.Text < 40 {
			t.Errorf("section %d: %+v, want %q with text", i, s, want[min(i, len(want)-1)])
		}
	}
	wantCharts := []string{"coverage", "frameworks", "changes"}
	if len(charts) != len(wantCharts) {
		t.Errorf("charts %+v, want %v", charts, wantCharts)
	}
	for i, c := range charts {
		if i < len(wantCharts) && c.Name != wantCharts[i] || c.Shapes < 2 || c.Width < 100 || c.Height < 40 {
			t.Errorf("chart %+v is missing, empty or not drawn", c)
		}
	}
	if !printRule {
		t.Error("no print stylesheet starting sections on a new page")
	}
	for _, r := range requests {
		if r != url {
			t.Errorf("the pack requested %s: it must load nothing", r)
		}
	}
	if len(requests) == 0 {
		t.Error("no request seen at all: the network listener did not work")
	}
	for _, id := range []string{"checkpoint", "verifier-key", "commands", "proof", "script"} {
		if !strings.Contains(buf.String(), `id="`+id+`"`) {
			t.Errorf("the audit section lacks %s", id)
		}
	}
}
