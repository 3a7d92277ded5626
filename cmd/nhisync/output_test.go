package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
)

// tableCommands print tables with colored cells on a terminal: plan and
// sync on a fresh demo estate have held writes, quarantined values and
// dimmed reasons to paint.
var tableCommands = [][]string{
	{"plan"}, {"sync"}, {"records", "--limit", "5"}, {"approvals"}, {"quarantine"}, {"conflicts"},
	{"explain", "service_account/aws/payments-bot", "owner"}, {"show", "service_account/aws/payments-bot"},
	{"history", "service_account/aws/payments-bot"}, {"audit", "verify"}, {"check"},
}

// TestTableOutputHasNoEscapes: when stdout is a file, not a terminal, the
// tables carry no ANSI escapes, with or without NO_COLOR.
func TestTableOutputHasNoEscapes(t *testing.T) {
	for _, noColor := range []bool{false, true} {
		name := "color allowed"
		if noColor {
			name = "NO_COLOR"
		}
		t.Run(name, func(t *testing.T) {
			if noColor {
				t.Setenv("NO_COLOR", "1")
			} else {
				unsetenv(t, "NO_COLOR")
			}
			t.Setenv("TERM", "xterm-256color")
			w := newQuickstart(t, quickstart.Options{Seed: 1}, false)
			for _, args := range tableCommands {
				f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
				if err != nil {
					t.Fatal(err)
				}
				var stderr bytes.Buffer
				code := run(t.Context(), append([]string{"-c", w.config}, args...), f, &stderr)
				f.Close()
				out := readFile(t, f.Name())
				if code != exitOK || out == "" {
					t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr.String())
				}
				all := out + stderr.String()
				if i := strings.Index(all, "\x1b["); i >= 0 {
					t.Errorf("%v wrote an ANSI escape to a file: %q", args, all[max(0, i-40):min(len(all), i+40)])
				}
			}
		})
	}
}

// unsetenv unsets key for the test, restoring it after.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	t.Setenv(key, "") // registers the restore
	os.Unsetenv(key)
}
