package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nhisync/nhisync/quickstart"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// testdata is the absolute path of testdata/, taken before any test
// changes directory.
var testdata = func() string {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return dir
}()

// golden compares got with testdata/NAME, or with -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		if err := os.MkdirAll(testdata, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no golden file testdata/%s: run go test ./cmd/nhisync -update", name)
	} else if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("output differs from testdata/%s (-want +got); if the change is intended, run go test ./cmd/nhisync -update\n%s", name, diff)
	}
}

// TestPlanGolden pins the table `plan` prints: for the first pass over a
// small demo estate, and after one edit in each system of a synced one.
func TestPlanGolden(t *testing.T) {
	t.Run("first pass", func(t *testing.T) {
		w := newQuickstart(t, quickstart.Options{Seed: 1, Accounts: quickstart.MinAccounts}, false)
		first := w.ok(t, "plan")
		golden(t, "plan_first.golden", first)
		// plan wrote nothing: a second plan says the same.
		if again := w.ok(t, "plan"); again != first {
			t.Errorf("a second plan differs from the first: plan changed something\n%s", cmp.Diff(first, again))
		}
	})

	t.Run("after edits", func(t *testing.T) {
		w := newQuickstart(t, quickstart.Options{Seed: 1}, true)
		// One change in each system: a new owner in the CMDB, a label in
		// the catalog, a revoked grant in the policy engine and a
		// decommission in the identity provider.
		editFile(t, w.path(quickstart.CMDBFile),
			"payments-bot,aws,service_account,olga.novak@example.com,",
			"payments-bot,aws,service_account,new.owner@example.com,")
		editFile(t, w.path(quickstart.CatalogFile),
			"- name: ai-support-agent\n  platform: aws\n  steward: \"\"\n  tags:\n    - internal\n",
			"- name: ai-support-agent\n  platform: aws\n  steward: \"\"\n  tags:\n    - internal\n    - pii\n")
		editFile(t, w.path(quickstart.PolicyFile),
			"\"id\": \"pol-00001\",\n    \"account\": \"payments-bot\",\n    \"platform\": \"aws\",\n    \"grants\": [\n      \"dynamodb:read\",\n      \"s3:read\"\n    ],",
			"\"id\": \"pol-00001\",\n    \"account\": \"payments-bot\",\n    \"platform\": \"aws\",\n    \"grants\": [\n      \"dynamodb:read\"\n    ],")
		db, err := sql.Open("sqlite", w.path(quickstart.IDPFile))
		if err != nil {
			t.Fatal(err)
		}
		res, err := db.ExecContext(t.Context(), "UPDATE service_accounts SET status = 'decommissioned', updated_at = '2026-01-01T00:00:00Z' WHERE name = 'ci-deployer'")
		if n, _ := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("decommission ci-deployer in the idp: %v (%d rows)", err, n)
		}
		db.Close()

		golden(t, "plan_edits.golden", w.ok(t, "plan"))
	})
}

// TestQuickstartGolden pins the story `nhisync quickstart` tells.
func TestQuickstartGolden(t *testing.T) {
	t.Chdir(t.TempDir())
	// The story names the command to run next after the program's own
	// name, which under go test is the test binary's.
	arg0 := os.Args[0]
	os.Args[0] = "nhisync"
	t.Cleanup(func() { os.Args[0] = arg0 })

	r := cli(t, "quickstart", "--dir", "demo")
	if r.code != exitOK {
		t.Fatalf("quickstart: exit %d %q", r.code, r.stderr)
	}
	golden(t, "quickstart.golden", r.stdout)

	r = cli(t, "quickstart", "--dir", "demo")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "already holds a workspace") || !strings.Contains(r.stderr, "nhisync -c demo/nhisync.yaml sync") {
		t.Errorf("quickstart over a workspace: exit %d %q", r.code, r.stderr)
	}
	var again obj
	r = cli(t, "quickstart", "--dir", "demo", "--force", "-o", "json")
	if r.code != exitOK {
		t.Fatalf("quickstart --force: exit %d %q", r.code, r.stderr)
	}
	w := &workspace{config: filepath.Join("demo", quickstart.ConfigFile)}
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil {
		t.Fatal(err)
	}
	requireKeys(t, "quickstart -o json", again, "dir", "config", "summary")
	for _, k := range summaryKeys {
		intOf(t, "quickstart summary", objOf(t, "quickstart", again, "summary"), k)
	}
	// The forced workspace starts over: the same story's first sync.
	if n := intOf(t, "summary", objOf(t, "quickstart", again, "summary"), "created"); n == 0 {
		t.Error("quickstart --force created no records: the old store was kept")
	}
	w.ok(t, "audit", "verify")
}
