package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisync/nhisync/quickstart"
)

// result is what one in-process run of the command line produced.
type result struct {
	code   int
	stdout string
	stderr string
}

// cli runs the command line in-process, as main does, and returns its exit
// code and output.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// workspace is a config file and the systems it names, in a temp dir.
type workspace struct {
	dir    string
	config string
	// sc is set for quickstart workspaces.
	sc *quickstart.Scenario
}

// newQuickstart generates the seed-1 demo workspace; with synced it also
// runs the first sync, as `nhisync quickstart` does.
func newQuickstart(t *testing.T, opt quickstart.Options, synced bool) *workspace {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ws")
	sc, err := quickstart.Generate(dir, opt)
	if err != nil {
		t.Fatalf("quickstart.Generate: %v", err)
	}
	w := &workspace{dir: dir, config: sc.ConfigPath, sc: sc}
	if synced {
		w.ok(t, "sync")
	}
	return w
}

// newWorkspace writes files (name → content) into a temp dir; the config
// is the one named nhisync.yaml.
func newWorkspace(t *testing.T, files map[string]string) *workspace {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return &workspace{dir: dir, config: filepath.Join(dir, "nhisync.yaml")}
}

// run runs nhisync -c CONFIG args….
func (w *workspace) run(t *testing.T, args ...string) result {
	t.Helper()
	return cli(t, append([]string{"-c", w.config}, args...)...)
}

// ok runs a command that must succeed and returns its stdout.
func (w *workspace) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := w.run(t, args...)
	if r.code != exitOK {
		t.Fatalf("nhisync %s: exit %d, want 0\nstderr: %s\nstdout: %s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// json runs a command with -o json that must succeed and decodes its
// output into v.
func (w *workspace) json(t *testing.T, v any, args ...string) {
	t.Helper()
	out := w.ok(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("nhisync %s -o json: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// path returns the absolute path of a file of the workspace.
func (w *workspace) path(name string) string { return filepath.Join(w.dir, filepath.FromSlash(name)) }

// obj is a decoded JSON object.
type obj = map[string]any

// requireKeys fails unless m has every key.
func requireKeys(t *testing.T, what string, m obj, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no key %q in %v", what, k, m)
		}
	}
}

// intOf returns m[key], failing unless it is a JSON integer.
func intOf(t *testing.T, what string, m obj, key string) int {
	t.Helper()
	f, ok := m[key].(float64)
	if !ok || f != float64(int64(f)) {
		t.Errorf("%s: %q is %#v, want an integer", what, key, m[key])
		return 0
	}
	return int(f)
}

// strOf returns m[key], failing unless it is a JSON string.
func strOf(t *testing.T, what string, m obj, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Errorf("%s: %q is %#v, want a string", what, key, m[key])
	}
	return s
}

// objOf returns m[key], failing unless it is a JSON object.
func objOf(t *testing.T, what string, m obj, key string) obj {
	t.Helper()
	o, ok := m[key].(map[string]any)
	if !ok {
		t.Errorf("%s: %q is %#v, want an object", what, key, m[key])
	}
	return o
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editFile replaces old by new, once, in a file; old must be there.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	s := readFile(t, path)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not hold %q", filepath.Base(path), old)
	}
	writeFile(t, path, strings.Replace(s, old, new, 1))
}
