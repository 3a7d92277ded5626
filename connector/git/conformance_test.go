package git_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/conntest"
	_ "github.com/nhisync/nhisync/connector/git"
)

// gitRepo is a real repository on disk, made and changed with go-git's
// worktree API (as a person committing would), not with the connector.
type gitRepo struct{ dir string }

func newRepo(t testing.TB, bare bool) gitRepo {
	t.Helper()
	dir := t.TempDir()
	r, err := gogit.PlainInit(dir, bare)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")); err != nil {
		t.Fatal(err)
	}
	return gitRepo{dir}
}

// commit writes files (nil content deletes) as one commit on main.
func (g gitRepo) commit(t testing.TB, msg string, files map[string][]byte) plumbing.Hash {
	t.Helper()
	disk, err := gogit.PlainOpen(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := gogit.Open(disk.Storer, memfs.New())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reference("refs/heads/main", true); err == nil {
		if err := wt.Checkout(&gogit.CheckoutOptions{Branch: "refs/heads/main", Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	for p, data := range files {
		if data == nil {
			if _, err := wt.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		wt.Filesystem.MkdirAll(filepath.Dir(p), 0o755)
		f, err := wt.Filesystem.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
		f.Close()
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: &object.Signature{Name: "Person", Email: "person@example.com", When: time.Now()}, AllowEmptyCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// files returns the files at the head of main.
func (g gitRepo) files(t *testing.T) map[string][]byte {
	t.Helper()
	r, err := gogit.PlainOpen(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	c := g.head(t)
	cm, err := r.CommitObject(c.Hash)
	if err != nil {
		t.Fatal(err)
	}
	tree, _ := cm.Tree()
	out := map[string][]byte{}
	tree.Files().ForEach(func(f *object.File) error {
		rd, _ := f.Reader()
		data, _ := io.ReadAll(rd)
		rd.Close()
		out[f.Name] = data
		return nil
	})
	return out
}

func (g gitRepo) head(t *testing.T) *object.Commit {
	t.Helper()
	r, err := gogit.PlainOpen(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := r.Reference("refs/heads/main", true)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := r.CommitObject(ref.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// harness keeps the suite's records as multi-document YAML files spread
// over three directories of a bare repository.
type harness struct{}

func (harness) Features() conntest.Features { return conntest.Features{CompositeID: true} }

func repoOf(sys *nhisync.System) gitRepo { return gitRepo{sys.Settings.String("repo")} }

func fileOf(i int) string { return fmt.Sprintf("team%d/catalog-info.yaml", i%3) }

func encodeDocs(t testing.TB, docs []map[string]any) []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
	}
	enc.Close()
	return b.Bytes()
}

func decodeDocs(t *testing.T, data []byte) []map[string]any {
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

func (harness) Setup(t *testing.T, sys *nhisync.System, recs []map[string]any) {
	t.Helper()
	g := newRepo(t, true)
	sys.Settings = nhisync.Settings{"repo": g.dir, "branch": "main", "glob": "**/catalog-info.yaml"}
	byFile := map[string][]map[string]any{}
	for i, r := range recs {
		byFile[fileOf(i)] = append(byFile[fileOf(i)], r)
	}
	files := map[string][]byte{"README.md": []byte("not a catalog file\n")}
	for p, docs := range byFile {
		files[p] = encodeDocs(t, docs)
	}
	g.commit(t, "catalog", files)
}

// find returns the file and document index holding id.
func find(t *testing.T, sys *nhisync.System, id string) (map[string][]byte, string, []map[string]any, int) {
	files := repoOf(sys).files(t)
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if filepath.Base(p) != "catalog-info.yaml" {
			continue
		}
		docs := decodeDocs(t, files[p])
		for i, d := range docs {
			if conntest.IDOf(sys, stringify(d)) == id {
				return files, p, docs, i
			}
		}
	}
	return files, "", nil, -1
}

// stringify turns decoded YAML into the suite's shapes ([]string for
// lists).
func stringify(d map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range d {
		if l, ok := v.([]any); ok {
			s := make([]string, len(l))
			for i, e := range l {
				s[i] = fmt.Sprint(e)
			}
			out[k] = s
			continue
		}
		if v != nil {
			if _, ok := v.(string); !ok {
				v = fmt.Sprint(v)
			}
		}
		out[k] = v
	}
	return out
}

func (harness) Edit(t *testing.T, sys *nhisync.System, id string, native map[string]any) {
	t.Helper()
	_, p, docs, i := find(t, sys, id)
	if i < 0 {
		t.Fatalf("Edit: no entity %q", id)
	}
	for k, v := range native {
		if v == nil {
			delete(docs[i], k)
		} else {
			docs[i][k] = v
		}
	}
	repoOf(sys).commit(t, "edit "+id, map[string][]byte{p: encodeDocs(t, docs)})
}

func (harness) Remove(t *testing.T, sys *nhisync.System, id string) {
	t.Helper()
	_, p, docs, i := find(t, sys, id)
	if i < 0 {
		t.Fatalf("Remove: no entity %q", id)
	}
	docs = append(docs[:i], docs[i+1:]...)
	repoOf(sys).commit(t, "remove "+id, map[string][]byte{p: encodeDocs(t, docs)})
}

func (harness) Raw(t *testing.T, sys *nhisync.System, id string) map[string]any {
	t.Helper()
	_, _, docs, i := find(t, sys, id)
	if i < 0 {
		return nil
	}
	return stringify(docs[i])
}

func TestConformanceGit(t *testing.T) {
	conntest.Run(t, "git", harness{})
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
