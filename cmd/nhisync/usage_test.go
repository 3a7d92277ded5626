package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes checks SPEC §6's exit codes: 0 done, 1 failed, 2 bad usage.
func TestExitCodes(t *testing.T) {
	w := newManualWorkspace(t)
	w.ok(t, "sync")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string // in stderr
	}{
		{"no command prints help", nil, exitOK, ""},
		{"help", []string{"help", "sync"}, exitOK, ""},
		{"audit prints help", []string{"audit"}, exitOK, ""},
		{"unknown command", []string{"frob"}, exitInvalid, `unknown command "frob"`},
		{"misspelt command", []string{"snyc"}, exitInvalid, `did you mean "sync"?`},
		{"unknown subcommand", []string{"audit", "frob"}, exitInvalid, "frob"},
		{"unknown report", []string{"report", "frob"}, exitInvalid, "run `nhisync report --help` for the commands"},
		{"unknown flag", []string{"sync", "--frob"}, exitInvalid, "unknown flag: --frob"},
		{"unknown global flag", []string{"--frob", "records"}, exitInvalid, "unknown flag: --frob"},
		{"bad output", []string{"-o", "yaml", "records"}, exitInvalid, "table or json"},
		{"flag without value", []string{"records", "--kind"}, exitInvalid, "needs an argument"},
		{"bad flag value", []string{"records", "--limit", "many"}, exitInvalid, "invalid argument"},
		{"negative limit", []string{"records", "--limit", "-1"}, exitInvalid, "--limit -1: give 0"},
		{"extra argument", []string{"records", "extra"}, exitInvalid, "takes no arguments"},
		{"missing argument", []string{"show"}, exitInvalid, "usage: nhisync show KIND/KEY"},
		{"too many arguments", []string{"explain", "service_account/bot-one"}, exitInvalid, "usage: nhisync explain"},
		{"bad record name", []string{"show", "bot-one"}, exitInvalid, "KIND/KEY"},
		{"unknown kind", []string{"show", "robot/bot-one"}, exitInvalid, `no kind "robot"`},
		{"wrong key parts", []string{"show", "service_account/a/b"}, exitInvalid, "1 match field"},
		{"bad seq", []string{"audit", "proof", "0"}, exitInvalid, "positive number"},
		{"bad sizes", []string{"audit", "consistency", "a", "b"}, exitInvalid, "tree sizes"},
		{"no such record", []string{"show", "service_account/nobody"}, exitFailed, "no record service_account/nobody"},
		{"explain no such record", []string{"explain", "service_account/nobody", "owner"}, exitFailed, "no record service_account/nobody"},
		{"no such conflict", []string{"conflicts", "resolve", "424242", "--pick", "a", "--as", "x"}, exitFailed, "424242"},
		{"ok", []string{"records"}, exitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := w.run(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("nhisync %s: exit %d, stderr %q; want exit %d with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.msg)
			}
			if tc.code == exitOK && r.stderr != "" {
				t.Errorf("stderr of a successful run: %q", r.stderr)
			}
		})
	}

	t.Run("no config", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nhisync.yaml")
		r := cli(t, "-c", missing, "sync")
		if r.code != exitInvalid || !strings.Contains(r.stderr, "no config at") || !strings.Contains(r.stderr, "nhisync init") {
			t.Errorf("sync without a config: exit %d %q", r.code, r.stderr)
		}
	})
	t.Run("NHISYNC_CONFIG", func(t *testing.T) {
		t.Setenv("NHISYNC_CONFIG", w.config)
		if r := cli(t, "show", "service_account/bot-one"); r.code != exitOK {
			t.Errorf("show with NHISYNC_CONFIG: exit %d %q", r.code, r.stderr)
		}
	})
	t.Run("NHISYNC_ACTOR", func(t *testing.T) {
		t.Setenv("NHISYNC_ACTOR", "frank")
		var open []obj
		w.json(t, &open, "conflicts")
		if len(open) == 0 {
			t.Fatal("no open conflict")
		}
		var c obj
		w.json(t, &c, "conflicts", "resolve", fmt.Sprint(intOf(t, "conflict", open[0], "id")), "--pick", "a")
		if c["resolved_by"] != "frank" {
			t.Errorf("resolved_by = %v, want $NHISYNC_ACTOR", c["resolved_by"])
		}
	})
}

// TestInvalidConfig: a config with a mistake is refused by every command
// with file:line and exit 2, before anything is created.
func TestInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		line string // "nhisync.yaml:N"
		msg  string
	}{
		{"unknown top key", func(s string) string { return strings.Replace(s, "kinds:\n", "stor: x\nkinds:\n", 1) }, "nhisync.yaml:5:", `unknown key "stor"; did you mean "store"?`},
		{"unknown field key", func(s string) string {
			return strings.Replace(s, "owner: { type: string, resolve: manual }", "owner: { type: string, resolve: manual, authorty: [a] }", 1)
		}, "nhisync.yaml:11:", `unknown key "authorty"`},
		{"unknown system in authority", func(s string) string {
			return strings.Replace(s, "owner: { type: string, resolve: manual }", "owner: { type: string, authority: [c] }", 1)
		}, "nhisync.yaml:11:", `"c"`},
		{"missing env var", func(s string) string {
			return strings.Replace(s, "path: ./a.json", "path: ${NHISYNC_TEST_UNSET_PATH}", 1)
		}, "nhisync.yaml:", "NHISYNC_TEST_UNSET_PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newManualWorkspace(t)
			cfg := tc.edit(manualConfig)
			if cfg == manualConfig {
				t.Fatal("the edit changed nothing")
			}
			writeFile(t, w.config, cfg)
			for _, args := range [][]string{{"check"}, {"sync"}, {"plan"}, {"records"}, {"approvals"}, {"audit", "verify"}, {"audit", "key"}} {
				r := w.run(t, args...)
				if r.code != exitInvalid || !strings.Contains(r.stderr, tc.line) || !strings.Contains(r.stderr, tc.msg) {
					t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s and %q", args, r.code, r.stderr, tc.line, tc.msg)
				}
				if r.stdout != "" {
					t.Errorf("%v printed %q on stdout", args, r.stdout)
				}
			}
			if _, err := os.Stat(w.path("data")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("an invalid config left a store or key behind: %v", err)
			}
			if got := readFile(t, w.path("a.json")); !strings.Contains(got, `"alice@example.com"`) || strings.Contains(got, "bob@") {
				t.Errorf("an invalid config changed a system: %s", got)
			}
		})
	}
}

func TestInit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "nhisync.yaml")
	r := cli(t, "-c", path, "init")
	if r.code != exitOK || !strings.Contains(r.stdout, "Wrote "+path) {
		t.Fatalf("init: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	starter := readFile(t, path)
	if !strings.Contains(starter, "version: 1") || !strings.Contains(starter, "#") {
		t.Errorf("the starter is not a commented config:\n%s", starter)
	}
	r = cli(t, "-c", path, "init")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "--force") {
		t.Errorf("init over an existing file: exit %d %q", r.code, r.stderr)
	}
	if r := cli(t, "-c", path, "init", "--force", "-o", "json"); r.code != exitOK || !strings.Contains(r.stdout, `"config"`) {
		t.Errorf("init --force -o json: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}
