package git_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/git"
)

const catalog = `# Team catalog: owned by platform.
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments-bot   # the bot
  annotations:
    nhi.example/owner: alice@example.com
    github.com/project-slug: acme/payments
spec:
  type: service
  owner: team-payments
  lifecycle: production
---
# second entity
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing-bot
  annotations:
    nhi.example/owner: bob@example.com
spec:
  type: service
  owner: team-billing
  lifecycle: experimental
`

func backstage(t *testing.T, repo string, settings nhisync.Settings) (*nhisync.System, *git.Connector) {
	t.Helper()
	k := &nhisync.Kind{Name: "component", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, f := range []string{"name", "owner", "team", "lifecycle"} {
		k.Fields[f] = &nhisync.Field{Name: f, Type: nhisync.TypeString, Resolve: nhisync.ResolvePriority}
		k.FieldNames = append(k.FieldNames, f)
	}
	sys := &nhisync.System{Name: "catalog", Connector: "git", Kind: "component", ID: "metadata.name",
		Direction: nhisync.DirBoth, Settings: nhisync.Settings{"repo": repo, "commit": map[string]any{"author": "Sync Bot <sync@example.com>", "message": "nhisync: catalog owners"}}}
	for k, v := range settings {
		sys.Settings[k] = v
	}
	for f, n := range map[string]string{"name": "metadata.name", "owner": `metadata.annotations["nhi.example/owner"]`, "team": "spec.owner", "lifecycle": "spec.lifecycle"} {
		sys.Fields = append(sys.Fields, &nhisync.Mapping{Field: f, Name: n, Type: nhisync.TypeString, Direction: nhisync.DirBoth})
	}
	c, err := git.Open(t.Context(), sys, k)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC) }
	return sys, c
}

func read(t *testing.T, sys *nhisync.System, c *git.Connector) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	err := c.Snapshot(t.Context(), func(o nhisync.Observation) error {
		m := map[string]string{}
		for i, f := range sys.Fields {
			m[f.Field] = o.Values[i].Text()
			if p := o.Values[i].Problem(); p != "" {
				m[f.Field] = "MALFORMED: " + p
			}
		}
		out[o.ID] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ownerWrite(id, from, to string) nhisync.Write {
	return nhisync.Write{ID: id, Changes: []nhisync.Change{{Field: "owner", Old: nhisync.Str(from), New: nhisync.Str(to)}}}
}

// A write re-encodes only the document it changed: comments, key order
// and the other document stay byte for byte; the commit has the
// configured author and lists the change.
func TestWriteKeepsCommentsOrderAndOtherDocuments(t *testing.T) {
	g := newRepo(t, true)
	g.commit(t, "catalog", map[string][]byte{"payments/catalog-info.yaml": []byte(catalog)})
	sys, c := backstage(t, g.dir, nil)
	if got := read(t, sys, c)["billing-bot"]["team"]; got != "team-billing" {
		t.Fatalf("spec.owner of billing-bot = %q", got)
	}
	w := ownerWrite("payments-bot", "alice@example.com", "carol@example.com")
	w.Changes[0].Reason = "cmdb: priority: cmdb's change wins (higher rank)"
	res, err := c.Apply(t.Context(), []nhisync.Write{w})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("Apply: %v %+v", err, res)
	}
	got := string(g.files(t)["payments/catalog-info.yaml"])
	want := strings.Replace(catalog, "nhi.example/owner: alice@example.com", "nhi.example/owner: carol@example.com", 1)
	// The YAML encoder puts one space before a line comment.
	want = strings.Replace(want, "payments-bot   # the bot", "payments-bot # the bot", 1)
	if got != want {
		t.Errorf("file after the write:\n%s\nwant:\n%s", got, want)
	}
	cm := g.head(t)
	if cm.Author.Name != "Sync Bot" || cm.Author.Email != "sync@example.com" {
		t.Errorf("author %s <%s>", cm.Author.Name, cm.Author.Email)
	}
	if !strings.HasPrefix(cm.Message, "nhisync: catalog owners\n") || !strings.Contains(cm.Message, `- payments-bot (payments/catalog-info.yaml): owner "alice@example.com" → "carol@example.com" (cmdb: priority: cmdb's change wins (higher rank))`) {
		t.Errorf("commit message:\n%s", cm.Message)
	}
	// One commit per batch; nothing to do makes no commit.
	before := g.head(t).Hash
	if _, err := c.Apply(t.Context(), []nhisync.Write{ownerWrite("payments-bot", "alice@example.com", "carol@example.com")}); err != nil {
		t.Fatal(err)
	}
	if g.head(t).Hash != before {
		t.Errorf("a write already holding its value made a commit")
	}
}

// The branch moving between nhisync's read and its commit makes the batch
// start again from the new head: a concurrent change of the same value
// makes the write stale, another entity's change is kept.
func TestBranchMovedUnderneathIsRechecked(t *testing.T) {
	g := newRepo(t, true)
	g.commit(t, "catalog", map[string][]byte{"payments/catalog-info.yaml": []byte(catalog)})
	sys, c := backstage(t, g.dir, nil)
	once := false
	git.SetBeforeSwap(c, func() {
		if once {
			return
		}
		once = true
		edited := strings.Replace(catalog, "alice@example.com", "mallory@example.com", 1)
		edited = strings.Replace(edited, "lifecycle: experimental", "lifecycle: production", 1)
		g.commit(t, "person edits", map[string][]byte{"payments/catalog-info.yaml": []byte(edited)})
	})
	res, err := c.Apply(t.Context(), []nhisync.Write{
		ownerWrite("payments-bot", "alice@example.com", "carol@example.com"),
		ownerWrite("billing-bot", "bob@example.com", "dave@example.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nhisync.WriteStale || res[1].Status != nhisync.WriteApplied {
		t.Fatalf("results %+v, want stale then applied", res)
	}
	got := read(t, sys, c)
	if got["payments-bot"]["owner"] != "mallory@example.com" || got["billing-bot"]["owner"] != "dave@example.com" || got["billing-bot"]["lifecycle"] != "production" {
		t.Errorf("after the retried batch: %v", got)
	}
	if g.head(t).Message == "person edits" {
		t.Errorf("nhisync's commit is not on top of the concurrent one")
	}
}

// push sends every commit to a bare repository on disk; a repo given as
// a URL is cloned into memory and pushed back to.
func TestPushToBareRepository(t *testing.T) {
	origin := newRepo(t, true)
	origin.commit(t, "catalog", map[string][]byte{"catalog-info.yaml": []byte(catalog)})
	local := newRepo(t, true)
	local.commit(t, "catalog", map[string][]byte{"catalog-info.yaml": []byte(catalog)})
	empty := newRepo(t, true)
	_, c := backstage(t, local.dir, nhisync.Settings{"push": empty.dir})
	if _, err := c.Apply(t.Context(), []nhisync.Write{ownerWrite("billing-bot", "bob@example.com", "erin@example.com")}); err != nil {
		t.Fatal(err)
	}
	if a, b := local.head(t).Hash, empty.head(t).Hash; a != b {
		t.Errorf("pushed head %s, local head %s", b, a)
	}
	// URL mode: the clone reads origin and pushes to it.
	sys, uc := backstage(t, "file://"+origin.dir, nil)
	if got := read(t, sys, uc)["billing-bot"]["owner"]; got != "bob@example.com" {
		t.Fatalf("read through the URL: owner %q", got)
	}
	res, err := uc.Apply(t.Context(), []nhisync.Write{ownerWrite("billing-bot", "bob@example.com", "frank@example.com")})
	if err != nil || res[0].Status != nhisync.WriteApplied {
		t.Fatalf("Apply through the URL: %v %+v", err, res)
	}
	if !strings.Contains(string(origin.files(t)["catalog-info.yaml"]), "nhi.example/owner: frank@example.com") {
		t.Errorf("origin lacks the pushed write")
	}
	// A refused push (the remote is not a repository) undoes the commit.
	_, bad := backstage(t, local.dir, nhisync.Settings{"push": t.TempDir()})
	before := local.head(t).Hash
	if _, err := bad.Apply(t.Context(), []nhisync.Write{ownerWrite("billing-bot", "erin@example.com", "gina@example.com")}); err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL {
		t.Errorf("push to a non-repository: err %v, want EUNAVAIL", err)
	}
	if local.head(t).Hash != before {
		t.Errorf("a refused push left the commit on the branch")
	}
}

// A value that cannot be read is reported on that entity alone, the rest
// of the read goes on; a document that is not YAML fails the read naming
// file, line and commit (leaving it out would look like a deletion).
func TestUndecodableEntities(t *testing.T) {
	g := newRepo(t, true)
	bad := strings.Replace(catalog, "nhi.example/owner: bob@example.com", "nhi.example/owner: {nested: object}", 1)
	g.commit(t, "catalog", map[string][]byte{"a/catalog-info.yaml": []byte(bad)})
	sys, c := backstage(t, g.dir, nil)
	got := read(t, sys, c)
	if !strings.HasPrefix(got["billing-bot"]["owner"], "MALFORMED") || got["payments-bot"]["owner"] != "alice@example.com" {
		t.Errorf("read %v", got)
	}
	g.commit(t, "broken", map[string][]byte{"b/catalog-info.yaml": []byte("metadata:\n  name: x\n   bad: [\n")})
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EINVALID || !strings.Contains(err.Error(), "b/catalog-info.yaml line") || !strings.Contains(err.Error(), "commit ") {
		t.Errorf("broken YAML: %v", err)
	}
}

// Bad settings are refused with the setting named.
func TestValidate(t *testing.T) {
	k := &nhisync.Kind{Name: "component", Match: []string{"name"}, Fields: map[string]*nhisync.Field{}}
	for _, tc := range []struct {
		settings nhisync.Settings
		want     string
	}{
		{nhisync.Settings{}, "set repo"},
		{nhisync.Settings{"repo": "x", "glob": "[a"}, "glob"},
		{nhisync.Settings{"repo": "x", "commit": map[string]any{"author": "no email"}}, "commit.author"},
		{nhisync.Settings{"repo": "x", "commit": map[string]any{"sign": true}}, "unknown key"},
		{nhisync.Settings{"repo": "x", "branch": "a..b"}, "branch"},
	} {
		err := git.Validate(&nhisync.System{Name: "c", ID: "metadata.name", Settings: tc.settings}, k)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to name %q", tc.settings, err, tc.want)
		}
	}
}

// A password in a repository URL never shows in an error.
func TestURLPasswordNotInErrors(t *testing.T) {
	sys, c := backstage(t, "https://bot:s3cret-token@127.0.0.1:1/catalog.git", nil)
	_ = sys
	err := c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if err == nil || nhisync.ErrorCode(err) != nhisync.EUNAVAIL {
		t.Fatalf("unreachable remote: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(nhisync.ErrorMessage(err), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if err := c.Check(t.Context()); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Check: %v", err)
	}
}

// A remote that accepts the connection and never answers times out.
func TestFetchTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, c := backstage(t, "http://"+ln.Addr().String()+"/catalog.git", nhisync.Settings{"timeout": "100ms"})
	err = c.Snapshot(t.Context(), func(nhisync.Observation) error { return nil })
	if nhisync.ErrorCode(err) != nhisync.EUNAVAIL || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a silent remote: %v", err)
	}
}

// An incremental read says who committed the change, and when.
func TestChangesCarryCommitAuthor(t *testing.T) {
	g := newRepo(t, true)
	g.commit(t, "catalog", map[string][]byte{"a/catalog-info.yaml": []byte(catalog)})
	sys, c := backstage(t, g.dir, nil)
	_ = sys
	cursor, err := c.Changes(t.Context(), "", func(nhisync.Observation) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	g.commit(t, "edit", map[string][]byte{"a/catalog-info.yaml": []byte(strings.Replace(catalog, "bob@example.com", "erin@example.com", 1))})
	var got []nhisync.Observation
	if _, err := c.Changes(t.Context(), cursor, func(o nhisync.Observation) error { got = append(got, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "billing-bot" || got[0].Actor != "person@example.com" || got[0].Modified.IsZero() {
		t.Errorf("incremental read: %+v", got)
	}
}
