package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// fixedRun is a run at N NHIs with these wall seconds: floor, first,
// quiet, drift and drift's apply phase; peak RSS per pass in MiB.
func fixedRun(n int, floor, first, quiet, drift, driftApply float64, rssMiB [3]int64, converged bool) *result {
	return &result{Records: n, Systems: 3, Store: "sqlite", FloorSeconds: floor, Converged: converged, Passes: []passResult{
		{Name: "first", Seconds: first, CPUSeconds: first * 1.5, PeakRSSBytes: rssMiB[0] << 20},
		{Name: "quiet", Seconds: quiet, PeakRSSBytes: rssMiB[1] << 20},
		{Name: "drift", Seconds: drift, PeakRSSBytes: rssMiB[2] << 20, Phases: phases{Apply: driftApply}},
	}}
}

func byName(ts []target) map[string]target {
	m := map[string]target{}
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

// The verdict on this morning's 1M figures: first pass, quiet pass,
// peak RSS and convergence met; the drift pass, less its apply phase,
// over 2 × floor. A figure equal to its limit meets it.
func TestVerdictAtOneMillion(t *testing.T) {
	r := fixedRun(1_000_000, 3.29, 45.5, 5.61, 8.96, 1.69, [3]int64{1536, 1100, 1200}, true)
	got := byName(verdict(r))
	want := []struct {
		name         string
		value, limit float64
		met          bool
	}{
		{targetFirstPass, 45.5, 60, true},
		{targetQuietPass, 5.61, 6.58, true},
		{targetDriftPass, 8.96 - 1.69, 6.58, false},
		{targetPeakRSS, 1536 << 20, 2 << 30, true},
		{targetConverged, 1, 1, true},
	}
	if len(got) != len(want) {
		t.Errorf("%d targets, want %d: %+v", len(got), len(want), got)
	}
	for _, w := range want {
		g, ok := got[w.name]
		if !ok || !near(g.Value, w.value) || !near(g.Limit, w.limit) || g.Met != w.met {
			t.Errorf("%s: %+v, want value %v limit %v met %v", w.name, g, w.value, w.limit, w.met)
		}
	}
	if n := got[targetFirstPass].Note; n != "" {
		t.Errorf("at 1M the first-pass limit is not scaled, but its note says %q", n)
	}
	if n := got[targetPeakRSS].Note; !strings.Contains(n, "first") {
		t.Errorf("peak RSS note %q does not name the highest pass", n)
	}

	// Exactly at each limit: met.
	r = fixedRun(1_000_000, 2, 60, 4, 5, 1, [3]int64{2048, 2048, 2048}, true)
	for _, tg := range verdict(r) {
		if !tg.Met {
			t.Errorf("at its limit %s missed: %+v", tg.Name, tg)
		}
	}
	// Just over each: missed.
	r = fixedRun(1_000_000, 2, 60.01, 4.01, 5.01, 1, [3]int64{10, 2049, 10}, false)
	for _, tg := range verdict(r) {
		if tg.Met {
			t.Errorf("over its limit %s met: %+v", tg.Name, tg)
		}
	}
}

// Below 1M the first-pass limit scales linearly with N and says so;
// the others do not scale. A run without RSS figures or without a pass
// meets nothing it cannot show.
func TestVerdictScalesAndNeedsFigures(t *testing.T) {
	got := byName(verdict(fixedRun(300_000, 0.98, 11.3, 1.63, 2.60, 0.10, [3]int64{600, 400, 400}, true)))
	if f := got[targetFirstPass]; !near(f.Limit, 18) || !f.Met || !strings.Contains(f.Note, "300k") {
		t.Errorf("first pass at 300k: %+v, want limit 18 s, met, a note naming 300k", f)
	}
	if q, d := got[targetQuietPass], got[targetDriftPass]; !near(q.Limit, 1.96) || !q.Met || !near(d.Value, 2.5) || d.Met {
		t.Errorf("quiet %+v, drift %+v: want limits of 2 × floor, drift 2.5 s missed", q, d)
	}

	r := fixedRun(1000, 1, 0.01, 1, 1, 0, [3]int64{0, 0, 0}, true)
	if rss := byName(verdict(r))[targetPeakRSS]; rss.Met || !strings.Contains(rss.Note, "not measured") {
		t.Errorf("unmeasured RSS: %+v, want missed and said so", rss)
	}
	r.Passes = r.Passes[:1]
	got = byName(verdict(r))
	if got[targetQuietPass].Met || got[targetDriftPass].Met || !got[targetFirstPass].Met {
		t.Errorf("a run of only a first pass: %+v; want quiet and drift missed", got)
	}
}

// Linearity compares the largest N's first-pass CPU and peak RSS per
// NHI with the smallest N's, whatever order -n gave them in; it needs
// two counts.
func TestLinearity(t *testing.T) {
	small := fixedRun(100_000, 1, 10, 1, 1, 0, [3]int64{300, 200, 200}, true)     // 150 µs/NHI, 300 MiB
	mid := fixedRun(300_000, 1, 40, 1, 1, 0, [3]int64{700, 200, 200}, true)       // 200 µs/NHI
	large := fixedRun(1_000_000, 1, 120, 1, 1, 0, [3]int64{900, 4500, 200}, true) // 180 µs/NHI; 4500 MiB
	small.Passes[0].SystemCPUSeconds, large.Passes[0].SystemCPUSeconds = 1.5, 30
	got := byName(linearity([]*result{mid, large, small}))
	if c := got[targetLinearCPU]; !near(c.Value, 1.2) || !c.Met || !strings.Contains(c.Note, "150.0 µs at 100k") || !strings.Contains(c.Note, "180.0 µs at 1M") || !strings.HasSuffix(c.Note, "; of it the kernel's 15.0 µs and 30.0 µs") {
		t.Errorf("CPU per NHI: %+v, want 1.2× of 100k's, met", c)
	}
	if m := got[targetLinearRSS]; !near(m.Value, 1.5) || m.Met {
		t.Errorf("RSS per NHI: %+v, want 1.5× (the quiet pass's peak at 1M), missed", m)
	}
	large.Passes[0].CPUSeconds = 1000
	if c := byName(linearity([]*result{small, large}))[targetLinearCPU]; c.Met {
		t.Errorf("1 ms per NHI against 150 µs: %+v, want missed", c)
	}
	if l := linearity([]*result{small}); l != nil {
		t.Errorf("one run: %+v, want no linearity", l)
	}
	if l := linearity([]*result{small, small}); l != nil {
		t.Errorf("one N twice: %+v, want no linearity", l)
	}
}

// The text, JSON and Markdown outputs carry the verdict; missed names
// each missed target, with its N when there are several.
func TestVerdictOutputs(t *testing.T) {
	r := fixedRun(1_000_000, 3.29, 45.5, 5.61, 8.96, 1.69, [3]int64{1536, 1100, 1200}, true)
	r.Targets = verdict(r)
	var out bytes.Buffer
	printVerdict(&out, r)
	text := out.String()
	for _, want := range []string{"drift_pass", "missed", "7.270 s  limit 6.580 s", "first_pass", "45.500 s  limit 60.000 s"} {
		if !strings.Contains(text, want) {
			t.Errorf("text verdict lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "scales") {
		t.Errorf("text verdict at 1M speaks of scaling:\n%s", text)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Records int `json:"records"`
		Targets []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
			Limit float64 `json:"limit"`
			Met   bool    `json:"met"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Records != 1_000_000 || len(back.Targets) != 5 || back.Targets[2].Name != "drift_pass" || back.Targets[2].Met || back.Targets[2].Limit != 6.58 {
		t.Errorf("JSON targets: %+v, %v", back, err)
	}
	if line := verdictLine(r); !strings.Contains(line, "drift_pass 7.270 s ≤ 6.580 s **missed**") || !strings.Contains(line, "quiet_pass 5.610 s ≤ 6.580 s met") {
		t.Errorf("Markdown verdict: %s", line)
	}
	if m := missed([]*result{r}); len(m) != 1 || m[0] != "drift_pass" {
		t.Errorf("missed %v, want drift_pass", m)
	}
	s := fixedRun(100_000, 1, 5, 3, 1, 0, [3]int64{300, 200, 200}, true)
	s.Targets = verdict(s)
	if m := missed([]*result{s, r}); strings.Join(m, ",") != "quiet_pass (100k),drift_pass (1M)" {
		t.Errorf("missed %v, want each with its N", m)
	}
}

// -check exits 1 when a target is missed, naming every missed target on
// stderr, and 0 when none is; without it a converged run exits 0. Bad
// arguments exit 2.
func TestCheckExitCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench")
	}
	for _, args := range [][]string{{"-n", "0"}, {"-json", "-md"}, {"-check", "extra"}, {"-nosuchflag"}} {
		var out, errs bytes.Buffer
		if code := cli(args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errs bytes.Buffer
	code := cli([]string{"-n", "1000", "-drift", "0.05", "-json", "-check"}, &out, &errs)
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Targets) != 5 {
		t.Fatalf("-json -check: %v, %d targets (exit %d, stderr %s)", err, len(res.Targets), code, errs.String())
	}
	bad := missed([]*result{&res})
	switch {
	case len(bad) > 0 && code != 1, len(bad) == 0 && code != 0:
		t.Errorf("-check with missed %v exited %d", bad, code)
	}
	for _, name := range bad {
		if !strings.Contains(errs.String(), name) {
			t.Errorf("stderr does not name missed %s: %q", name, errs.String())
		}
	}
	// At 1k NHIs the first pass's limit is 60 ms: a pass's fixed costs
	// alone exceed it, so -check must have refused.
	if !slices.Contains(bad, targetFirstPass) || code != 1 {
		t.Errorf("first pass %+v at 1k, exit %d; want missed and exit 1", res.Targets[0], code)
	}

	out.Reset()
	errs.Reset()
	if code := cli([]string{"-n", "1000", "-drift", "0.05", "-json"}, &out, &errs); code != 0 {
		t.Errorf("without -check a converged run exited %d: %s", code, errs.String())
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// A run that did not converge fails the command; with -check the error
// still names every missed target, not only the convergence.
func TestOutcomeNamesEveryMiss(t *testing.T) {
	r := fixedRun(1_000_000, 3.29, 45.5, 5.61, 8.96, 1.69, [3]int64{1536, 1100, 1200}, false)
	r.Targets = verdict(r)
	err := outcome([]*result{r}, true)
	if err == nil || !strings.Contains(err.Error(), "did not converge") || !strings.Contains(err.Error(), "drift_pass") || !strings.Contains(err.Error(), "converged") {
		t.Errorf("-check on a run that missed drift_pass and did not converge: %v", err)
	}
	if err := outcome([]*result{r}, false); err == nil || strings.Contains(err.Error(), "drift_pass") {
		t.Errorf("without -check: %v, want the convergence alone", err)
	}
	r = fixedRun(1_000_000, 3.29, 45.5, 5.61, 6.0, 1.69, [3]int64{1536, 1100, 1200}, true)
	r.Targets = verdict(r)
	if err := outcome([]*result{r}, true); err != nil {
		t.Errorf("every target met: %v", err)
	}
}
