package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/config"
	"github.com/nhisync/nhisync/sqlite"
)

// The bench runs its passes on a small estate and finds it converged;
// its convergence check does see a system out of step with golden.
func TestBenchConvergesAndCheckSeesDrift(t *testing.T) {
	dir := t.TempDir()
	stdout := os.Stdout
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = devnull
	_, err = run(300, dir, options{drift: 0.05, profilePass: "quiet"})
	os.Stdout = stdout
	devnull.Close()
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	ctx := context.Background()
	cfg, err := config.Load(filepath.Join(dir, "nhisync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.OpenURL(ctx, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if c, err := convergence(ctx, cfg, store); err != nil || c.String() != "" {
		t.Fatalf("after the bench's passes: %v, %v; want converged", c, err)
	}
	// Another owner in the CMDB's first record, with no pass after it.
	path := filepath.Join(dir, "cmdb.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	cells := strings.Split(lines[1], ",")
	cells[3] = "someone-else@example.com"
	lines[1] = strings.Join(cells, ",")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := convergence(ctx, cfg, store); err != nil || c.String() == "" {
		t.Fatalf("after drifting the CMDB without a pass: %v, %v; want a difference", c, err)
	}
}
