package quickstart

import (
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// textFiles are the workspace files compared byte for byte.
var textFiles = []string{ConfigFile, CMDBFile, CatalogFile, PolicyFile}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idpDump returns the idp table's rows as text, in id order.
func idpDump(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, IDPFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, name, platform, status, scopes, rotated_at, updated_at, created_by
		FROM service_accounts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		cols := make([]string, 8)
		ptrs := make([]any, len(cols))
		for i := range cols {
			ptrs[i] = &cols[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		b.WriteString(strings.Join(cols, "|") + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestGenerateDeterministic(t *testing.T) {
	// Only the idp holds times, so a different Now changes only idp.db.
	tests := []struct {
		name              string
		a, b              Options
		textSame, idpSame bool
	}{
		{"same seed", Options{Seed: 1}, Options{Seed: 1}, true, true},
		{"same seed, small", Options{Seed: 5, Accounts: MinAccounts}, Options{Seed: 5, Accounts: MinAccounts}, true, true},
		{"same seed, explicit default time", Options{Seed: 3}, Options{Seed: 3, Now: DefaultNow}, true, true},
		{"other seed", Options{Seed: 1}, Options{Seed: 2}, false, false},
		{"other time", Options{Seed: 1}, Options{Seed: 1, Now: DefaultNow.Add(48 * time.Hour)}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa, err := Generate(t.TempDir(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := Generate(t.TempDir(), tt.b)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range textFiles[1:] {
				same := bytes.Equal(readFile(t, filepath.Join(sa.Dir, f)), readFile(t, filepath.Join(sb.Dir, f)))
				if same != tt.textSame {
					t.Errorf("%s identical = %v, want %v", f, same, tt.textSame)
				}
			}
			if same := idpDump(t, sa.Dir) == idpDump(t, sb.Dir); same != tt.idpSame {
				t.Errorf("idp.db rows identical = %v, want %v", same, tt.idpSame)
			}
			if same := sa.Describe() == strings.ReplaceAll(sb.Describe(), sb.Dir, sa.Dir); same != tt.textSame {
				t.Errorf("Describe identical = %v, want %v", same, tt.textSame)
			}
		})
	}
}

// TestGenerateGolden pins the output of one seed; refresh with -update
// after an intended change.
func TestGenerateGolden(t *testing.T) {
	sc, err := Generate(t.TempDir(), Options{Seed: 7, Accounts: MinAccounts})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{"idp.txt": []byte(idpDump(t, sc.Dir)), "describe.txt": []byte(strings.ReplaceAll(sc.Describe(), sc.Dir, "DIR"))}
	for _, f := range textFiles {
		got[filepath.Base(f)] = readFile(t, filepath.Join(sc.Dir, f))
	}
	golden := filepath.Join("testdata", "seed7")
	for name, b := range got {
		path := filepath.Join(golden, name)
		if *update {
			if err := os.MkdirAll(golden, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if want := readFile(t, path); !bytes.Equal(b, want) {
			t.Errorf("%s differs from %s (run go test -update after an intended change)", name, path)
		}
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name     string
		existing string // a file present before Generate
	}{
		{"config", ConfigFile},
		{"cmdb export", CMDBFile},
		{"idp database", IDPFile},
		{"state of an earlier sync", DataDir + "/nhisync.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, filepath.FromSlash(tt.existing))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			content := []byte("a user's own file\n")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Generate(dir, Options{Seed: 1})
			if code := nhisync.ErrorCode(err); code != nhisync.EINVALID {
				t.Fatalf("Generate error %v (code %q), want EINVALID", err, code)
			}
			if msg := nhisync.ErrorMessage(err); !strings.Contains(msg, "refusing to overwrite") {
				t.Errorf("message %q does not say it refuses to overwrite", msg)
			}
			if got := readFile(t, path); !bytes.Equal(got, content) {
				t.Errorf("%s changed to %q", tt.existing, got)
			}
			if _, err := os.Stat(filepath.Join(dir, ConfigFile)); tt.existing != ConfigFile && err == nil {
				t.Errorf("Generate wrote %s after refusing", ConfigFile)
			}
		})
	}
}

func TestGenerateForce(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir, Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a sync, and files that belong to the user.
	theirs := []string{"README.md", "systems/ldap.ldif", "backup/nhisync.yaml"}
	ours := []string{DataDir + "/nhisync.db", DataDir + "/audit.key", IDPFile + "-wal", IDPFile + "-shm"}
	for _, f := range append(theirs, ours...) {
		path := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Generate(dir, Options{Seed: 2}); nhisync.ErrorCode(err) != nhisync.EINVALID {
		t.Fatalf("second Generate without Force: %v, want EINVALID", err)
	}
	sc, err := Generate(dir, Options{Seed: 2, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range theirs {
		if got := string(readFile(t, filepath.Join(dir, filepath.FromSlash(f)))); got != f {
			t.Errorf("Force changed %s to %q", f, got)
		}
	}
	for _, f := range ours {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Force left %s behind (%v)", f, err)
		}
	}
	fresh, err := Generate(t.TempDir(), Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range textFiles {
		if !bytes.Equal(readFile(t, filepath.Join(sc.Dir, f)), readFile(t, filepath.Join(fresh.Dir, f))) {
			t.Errorf("%s after Force differs from a fresh workspace of the same seed", f)
		}
	}
	if idpDump(t, sc.Dir) != idpDump(t, fresh.Dir) {
		t.Errorf("idp.db after Force differs from a fresh workspace of the same seed")
	}
}

func TestGenerateInvalid(t *testing.T) {
	file := filepath.Join(t.TempDir(), "systems")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		opt  Options
		want string
	}{
		{"no dir", "", Options{}, "no directory"},
		{"dir is a file", file, Options{}, "not a directory"},
		{"systems is a file", filepath.Dir(file), Options{}, "not a directory"},
		{"negative accounts", "", Options{Accounts: -1}, "between"},
		{"too few accounts", "", Options{Accounts: MinAccounts - 1}, "between"},
		{"too many accounts", "", Options{Accounts: MaxAccounts + 1}, "between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" && tt.want != "no directory" {
				dir = filepath.Join(t.TempDir(), "ws")
			}
			_, err := Generate(dir, tt.opt)
			if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(nhisync.ErrorMessage(err), tt.want) {
				t.Fatalf("Generate error %v, want EINVALID saying %q", err, tt.want)
			}
			if tt.dir == "" && dir != "" {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Generate created %s despite invalid options", dir)
				}
			}
		})
	}
}

// TestWorkspaceUndo: a failed write takes back exactly what it created.
func TestWorkspaceUndo(t *testing.T) {
	root := t.TempDir()
	mine := filepath.Join(root, "mine.txt")
	if err := os.WriteFile(mine, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := &workspace{dir: filepath.Join(root, "new", "ws")}
	if err := ws.mkdir("systems"); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.create(CMDBFile, func(w io.Writer) (int, error) { return io.WriteString(w, "sys_id\n") }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	if _, err := ws.create(CatalogFile, func(w io.Writer) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("create error %v, want %v", err, boom)
	}
	if _, err := ws.create(CMDBFile, func(io.Writer) (int, error) { return 0, nil }); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over an existing file: %v, want ErrExist", err)
	}
	ws.undo()
	for _, f := range []string{CMDBFile, CatalogFile, "systems"} {
		if _, err := os.Lstat(ws.path(f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("undo left %s (%v)", f, err)
		}
	}
	if got := string(readFile(t, mine)); got != "keep" {
		t.Errorf("undo touched a file it did not create: %q", got)
	}
}

func TestDescribe(t *testing.T) {
	sc, err := Generate(t.TempDir(), Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	d := sc.Describe()
	if !strings.Contains(d, sc.Dir) {
		t.Errorf("Describe does not name the directory:\n%s", d)
	}
	for _, c := range sc.Cases() {
		if !strings.Contains(d, c.Name) || !strings.Contains(d, c.Keys[0]) {
			t.Errorf("Describe does not show case %s with example %s:\n%s", c.Name, c.Keys[0], d)
		}
	}
	if lines := strings.Count(d, "\n"); lines > 16 {
		t.Errorf("Describe has %d lines, want a few", lines)
	}
}
