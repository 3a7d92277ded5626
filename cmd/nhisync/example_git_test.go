package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const gitExampleDir = "../../examples/git-catalog"

// gitCommitAll commits the working tree of the repository at dir as a
// person would (git add -A; git commit).
func gitCommitAll(t *testing.T, dir, msg string) plumbing.Hash {
	t.Helper()
	r, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: &object.Signature{Name: "Pat", Email: "pat@example.com", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// gitInitFrom makes a repository at repo holding the files of src, on
// main, in one commit (git init -b main; cp; git add -A; git commit).
func gitInitFrom(t *testing.T, src, repo string) {
	t.Helper()
	if err := os.Rename(src, repo); err != nil {
		t.Fatal(err)
	}
	r, err := gogit.PlainInit(repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")); err != nil {
		t.Fatal(err)
	}
	gitCommitAll(t, repo, "catalog")
}

func gitHead(t *testing.T, dir string) *object.Commit {
	t.Helper()
	r, err := gogit.PlainOpen(dir)
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

func gitFile(t *testing.T, dir, path string) string {
	t.Helper()
	f, err := gitHead(t, dir).File(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Contents()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExampleGitCatalog runs examples/git-catalog through the CLI on a
// real git repository made from its catalog/ folder: the CMDB's contact
// reaches the catalog as one commit by the configured author, an owner
// change committed in git reaches the CMDB, and a quiet pass commits and
// writes nothing.
func TestExampleGitCatalog(t *testing.T) {
	files := map[string]string{}
	err := filepath.WalkDir(gitExampleDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(gitExampleDir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, files)
	// The operator makes the catalog repository (git init; git add; git commit).
	repo := filepath.Join(w.dir, "catalog-repo")
	gitInitFrom(t, filepath.Join(w.dir, "catalog"), repo)
	r, err := gogit.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}

	out := w.ok(t, "check", "--connect")
	if !strings.Contains(out, "catalog") || !strings.Contains(out, "read 3 records") {
		t.Errorf("check --connect:\n%s", out)
	}
	w.ok(t, "sync")
	cm := gitHead(t, repo)
	if cm.Author.Email != "nhisync@example.com" || !strings.HasPrefix(cm.Message, "nhisync: governance fields from the CMDB") {
		t.Errorf("nhisync's commit: %s <%s>: %s", cm.Author.Name, cm.Author.Email, cm.Message)
	}
	pay := gitFile(t, repo, "payments/catalog-info.yaml")
	if !strings.Contains(pay, "nhi.example/contact: payments-oncall@example.com") || !strings.Contains(pay, "owner: team-payments # who answers for this identity") {
		t.Errorf("payments catalog after the first pass:\n%s", pay)
	}
	first := cm.Hash

	// A person hands svc-billing to another team, in git.
	p := filepath.Join(repo, "billing", "catalog-info.yaml")
	// The working tree is not the source: check out what nhisync committed.
	wt, _ := r.Worktree()
	if err := wt.Reset(&gogit.ResetOptions{Mode: gogit.HardReset}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "owner: team-billing", "owner: team-finance", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCommitAll(t, repo, "billing moves to finance")
	w.ok(t, "sync")
	csv, _ := os.ReadFile(filepath.Join(w.dir, "cmdb.csv"))
	if !strings.Contains(string(csv), "CI-1003,svc-billing,gcp,team-finance,") {
		t.Errorf("the CMDB did not follow the owner change in git:\n%s", csv)
	}
	// A quiet pass: no commit, no write.
	head := gitHead(t, repo).Hash
	sum := syncJSON(t, w)
	if n := intOf(t, "quiet", sum, "writes_applied"); n != 0 {
		t.Errorf("a quiet pass applied %d writes", n)
	}
	if gitHead(t, repo).Hash != head || head == first {
		t.Errorf("quiet pass moved the branch (first %s, head %s, now %s)", first, head, gitHead(t, repo).Hash)
	}
}
