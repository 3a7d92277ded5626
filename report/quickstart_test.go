package report_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/config"
	"github.com/nhisync/nhisync/quickstart"
	"github.com/nhisync/nhisync/report"
	"github.com/nhisync/nhisync/sqlite"
)

// TestQuickstartFindings is the golden test of the demo estate: after the
// first sync, each report finds every governance problem the quickstart
// planted, and nothing else.
func TestQuickstartFindings(t *testing.T) {
	sc, err := quickstart.Generate(filepath.Join(t.TempDir(), "demo"), quickstart.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(sc.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenURL(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := &world{t: t, dir: sc.Dir, cfg: cfg, store: st, clock: &nhisync.FakeClock{T: quickstart.DefaultNow.Add(time.Hour)}}
	if sum := w.sync(); sum.WritesFailed > 0 {
		t.Fatalf("first sync: %d writes failed", sum.WritesFailed)
	}
	w.clock.Advance(time.Hour)

	sa := func(keys ...[]string) []string {
		var out []string
		for _, ks := range keys {
			for _, k := range ks {
				out = append(out, "service_account/"+k)
			}
		}
		return out
	}
	// records returns "KIND/KEY[ @SYSTEM][ .FIELD]" of the findings of
	// type typ, sorted.
	records := func(res *report.Result, typ string, withSystem, withField bool) []string {
		var out []string
		for _, f := range res.Findings {
			if f.Type != typ {
				continue
			}
			s := f.Name()
			if withSystem {
				s += " @" + f.System
			}
			if withField {
				s += " ." + f.Field
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	suffixed := func(names []string, suffix string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = n + suffix
		}
		slices.Sort(out)
		return out
	}
	expectTypes := func(res *report.Result, types ...string) {
		t.Helper()
		var got []string
		for typ := range res.Summary {
			got = append(got, typ)
		}
		slices.Sort(got)
		slices.Sort(types)
		if !slices.Equal(got, types) {
			t.Errorf("report %s finds types %v, want only %v:\n%s", res.Report, got, types, details(res))
		}
	}
	same := func(what string, got, want []string) {
		t.Helper()
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %d %q\nwant %d %q", what, len(got), got, len(want), want)
		}
	}
	if len(sc.LiveOrphans) == 0 || len(sc.RetiredAppNHIs) == 0 || len(sc.Reused) != 2 || len(sc.StaleRotations) == 0 {
		t.Fatalf("the quickstart plants too little: %+v", sc)
	}

	orphans := w.report("orphans", report.Options{})
	expectTypes(orphans, "no-owner", "retired-application")
	same("no-owner", records(orphans, "no-owner", false, false), sa(sc.LiveOrphans))
	same("retired-application", records(orphans, "retired-application", false, false), sa(sc.RetiredAppNHIs))

	stale := w.report("stale", report.Options{})
	expectTypes(stale, "max-age")
	same("max-age", records(stale, "max-age", true, true), suffixed(sa(sc.StaleRotations), " @idp .last_rotated"))

	hygiene := w.report("hygiene", report.Options{})
	expectTypes(hygiene, "reuse")
	same("reuse", records(hygiene, "reuse", false, false), sa(sc.Reused))

	drift := w.report("drift", report.Options{})
	expectTypes(drift, "drift")
	same("drift", records(drift, "drift", true, true), append(suffixed(sa(sc.InvalidOwner), " @cmdb .owner"), suffixed(sa(sc.PolicyApproval), " @policy .policy_state")...))
	for _, f := range drift.Findings {
		if !strings.Contains(f.Detail, "quarantined") && !strings.Contains(f.Detail, "held: approval") {
			t.Errorf("drift %s: %s", f.Name(), f.Detail)
		}
	}

	coverage := w.report("coverage", report.Options{})
	expectTypes(coverage, "unmatched", "system-coverage", "empty-field")
	unmatched := append(suffixed(sa(sc.UnknownInPolicy), " @policy"), suffixed(sa(sc.UnknownInCatalog), " @catalog")...)
	same("unmatched", records(coverage, "unmatched", true, false), unmatched)
	counts := map[string]int{}
	for _, f := range coverage.Findings {
		switch f.Type {
		case "system-coverage":
			counts[f.System] = f.Count
		case "empty-field":
			counts["."+f.Field] = f.Count
		}
	}
	want := map[string]int{
		// The systems lack what the scenario left out of them.
		quickstart.SystemIDP: len(sc.Lacks[quickstart.SystemIDP]), quickstart.SystemCMDB: len(sc.Lacks[quickstart.SystemCMDB]),
		quickstart.SystemPolicy: len(sc.Lacks[quickstart.SystemPolicy]),
		// Fields only a missing system gives: application (cmdb),
		// entitlements and last_rotated (idp, and policy, which never holds
		// a cmdb-only identity), policy_state (the catalog has it only for
		// identities in the policy engine); owner for the orphans; used_by
		// everywhere but the reused.
		".application": len(sc.Lacks[quickstart.SystemCMDB]), ".entitlements": len(sc.Lacks[quickstart.SystemIDP]),
		".last_rotated": len(sc.Lacks[quickstart.SystemIDP]), ".policy_state": len(sc.Lacks[quickstart.SystemPolicy]),
		".owner": len(sc.LiveOrphans), ".used_by": sc.Live - len(sc.Reused),
	}
	for k, n := range want {
		if n == 0 {
			delete(want, k)
		}
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("coverage counts %v, want %v:\n%s", counts, want, details(coverage))
	}
}
