package file_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	"github.com/nhisync/nhisync/connector/file"
)

// fileSystem is a file system under test: the file's name and content,
// its id setting and canonical → native mappings ("field=native").
type fileSystem struct {
	name     string
	content  string
	id       string
	fields   []string
	settings nhisync.Settings
	mode     os.FileMode
	prep     func(sys *nhisync.System)
}

// open writes the file into a temp dir and opens a connector on it.
func (fs fileSystem) open(t *testing.T) (*file.Connector, *nhisync.System, string) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, fs.name)
	mode := fs.mode
	if mode == 0 {
		mode = 0o644
	}
	if fs.content != "\x00missing" {
		if err := os.WriteFile(p, []byte(fs.content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	kind := conntest.Kind()
	sys := &nhisync.System{
		Name: "test", Connector: "file", Kind: kind.Name, ID: fs.id, Direction: nhisync.DirBoth,
		Settings: nhisync.Settings{"path": fs.name}, BaseDir: dir,
	}
	for k, v := range fs.settings {
		sys.Settings[k] = v
	}
	for _, f := range fs.fields {
		canon, nat, _ := strings.Cut(f, "=")
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: canon, Name: nat, Type: kind.Fields[canon].Type, Direction: nhisync.DirBoth})
	}
	if fs.prep != nil {
		fs.prep(sys)
	}
	c, err := file.New(sys, kind)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, sys, p
}

type observed struct {
	ids    []string
	values map[string][]nhisync.Value
}

func snapshot(t *testing.T, c nhisync.Connector) observed {
	t.Helper()
	o := observed{values: map[string][]nhisync.Value{}}
	err := c.Snapshot(t.Context(), func(obs nhisync.Observation) error {
		o.ids = append(o.ids, obs.ID)
		o.values[obs.ID] = slices.Clone(obs.Values)
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return o
}

// value returns the observed value of canonical field f of record id.
func (o observed) value(sys *nhisync.System, id, f string) nhisync.Value {
	for i, m := range sys.Fields {
		if m.Field == f {
			return o.values[id][i]
		}
	}
	return nhisync.Value{}
}

func apply(t *testing.T, c nhisync.Connector, writes ...nhisync.Write) []nhisync.WriteResult {
	t.Helper()
	res, err := c.Apply(t.Context(), writes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func update(id string, changes ...nhisync.Change) nhisync.Write {
	return nhisync.Write{ID: id, Changes: changes}
}

func set(field, old, new string) nhisync.Change {
	return nhisync.Change{Field: field, Old: nhisync.Str(old), New: nhisync.Str(new)}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantCode(t *testing.T, err error, code, fragment string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s containing %q", code, fragment)
	}
	if got := nhisync.ErrorCode(err); got != code {
		t.Errorf("error code %s (%v), want %s", got, err, code)
	}
	if !strings.Contains(nhisync.ErrorMessage(err), fragment) {
		t.Errorf("error %q lacks %q", nhisync.ErrorMessage(err), fragment)
	}
}

// diff shows want and got for a failed comparison of file contents.
func diff(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("file content:\n%s\nwant:\n%s", got, want)
	}
}
