package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"
	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

func memoryStorage() storage.Storer { return memory.NewStorage() }

func remoteConfig(name, url string) *config.RemoteConfig {
	return &config.RemoteConfig{Name: name, URLs: []string{url}}
}

// head returns the commit at the branch head; with a URL repo it fetches
// the branch first. It returns *nhisync.Error EUNAVAIL when the branch
// cannot be read.
func (c *Connector) head(ctx context.Context) (*object.Commit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.remote {
		spec := config.RefSpec(fmt.Sprintf("+%s:%s", c.branch, c.branch))
		fctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := c.repo.FetchContext(fctx, &gogit.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Tags: gogit.NoTags, Force: true})
		timedOut := fctx.Err() != nil
		cancel()
		if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if timedOut {
				return nil, c.unavail(err, "fetching branch %s from %s took longer than %s (timeout)", c.branch.Short(), redactURL(c.sys.Settings.String(SettingRepo)), c.timeout)
			}
			return nil, c.unavail(err, "cannot fetch branch %s from %s", c.branch.Short(), redactURL(c.sys.Settings.String(SettingRepo)))
		}
	}
	ref, err := c.repo.Reference(c.branch, true)
	if err != nil {
		return nil, c.unavail(err, "the repository has no branch %s (set branch, or commit to it first)", c.branch.Short())
	}
	cm, err := c.repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, c.unavail(err, "cannot read commit %s of branch %s", ref.Hash(), c.branch.Short())
	}
	return cm, nil
}

// chunk is one YAML document of a file: its `---` line (empty for the
// first document without one) and its text.
type chunk struct {
	sep, body []byte
	// line is the body's first line in the file.
	line int
	// node is the document's root mapping (nil for an empty document).
	node *yaml.Node
	doc  *yaml.Node
	// dirty: nhisync wrote into node; the document is re-encoded.
	dirty bool
}

// yamlFile is one catalog file, split into its documents.
type yamlFile struct {
	path   string
	chunks []*chunk
}

// splitDocs splits a YAML stream at its `---` lines. A `---` at the start
// of a line always starts a document: block scalars are indented.
func splitDocs(data []byte) []*chunk {
	var out []*chunk
	cur := &chunk{line: 1}
	line := 1
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		l := data[off:next]
		if string(bytes.TrimRight(l, " \t\r\n")) == "---" {
			out = append(out, cur)
			cur = &chunk{sep: l, line: line + 1}
		} else {
			cur.body = append(cur.body, l...)
		}
		line++
		off = next
	}
	return append(out, cur)
}

// parseFile parses a catalog file into documents. A document that is not
// YAML, or not a mapping, fails the file with *nhisync.Error EINVALID
// naming the file, the line and the commit: its entity's id cannot be
// told, and leaving it out would look like a deletion.
func (c *Connector) parseFile(path string, data []byte, at plumbing.Hash) (*yamlFile, error) {
	f := &yamlFile{path: path}
	bad := func(line int, msg string) error {
		return c.errorf(nhisync.EINVALID, "%s line %d (commit %s): %s; fix the file on branch %s", path, line, at.String()[:12], msg, c.branch.Short())
	}
	for _, ch := range splitDocs(data) {
		f.chunks = append(f.chunks, ch)
		if len(bytes.TrimSpace(ch.body)) == 0 {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(ch.body, &doc); err != nil {
			return nil, bad(ch.line, "not YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if len(doc.Content) == 0 {
			continue // comments only
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, bad(ch.line+root.Line-1, "the document is not a mapping (an entity is apiVersion:, kind:, metadata: …)")
		}
		ch.doc, ch.node = &doc, root
	}
	return f, nil
}

// files calls fn with every file of the commit's tree the glob matches
// (only those named in only, when it is not nil), parsed, in path order.
func (c *Connector) files(ctx context.Context, cm *object.Commit, only map[string]map[string]bool, fn func(*yamlFile) error) error {
	tree, err := cm.Tree()
	if err != nil {
		return c.unavail(err, "cannot read the tree of commit %s", cm.Hash)
	}
	iter := tree.Files()
	defer iter.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := iter.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.unavail(err, "cannot read the tree of commit %s", cm.Hash)
		}
		if _, listed := only[f.Name]; (only != nil && !listed) || !c.matches(f.Name) || !f.Mode.IsFile() {
			continue
		}
		data, err := blobBytes(f)
		if err != nil {
			return c.unavail(err, "cannot read %s at commit %s", f.Name, cm.Hash)
		}
		yf, err := c.parseFile(f.Name, data, cm.Hash)
		if err != nil {
			return err
		}
		if err := fn(yf); err != nil {
			return err
		}
	}
}

func (c *Connector) matches(name string) bool {
	ok, _ := doublestar.Match(c.glob, name)
	return ok
}

func blobBytes(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Snapshot streams every entity of every file the glob matches at the
// branch head, in path then document order. A document that is not YAML
// fails the read (EINVALID naming file, line and commit); a value that is
// not one (an object where text belongs, a key given twice) reads as
// nhisync.Malformed, which validation quarantines, and the read goes on.
func (c *Connector) Snapshot(ctx context.Context, emit func(nhisync.Observation) error) error {
	_, err := c.read(ctx, "", emit)
	return err
}

// Changes streams the entities of the files that differ between the
// cursor commit and the branch head (every file when cursor is "" or a
// commit the repository no longer has) and returns the head's id. Each
// observation read incrementally carries the author (e-mail) and time of
// the newest commit that changed its file, for separation of duties and
// resolve: latest.
func (c *Connector) Changes(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	return c.read(ctx, cursor, emit)
}

func (c *Connector) read(ctx context.Context, cursor string, emit func(nhisync.Observation) error) (string, error) {
	cm, err := c.head(ctx)
	if err != nil {
		return "", err
	}
	only, err := c.changedSince(cursor, cm)
	if err != nil {
		return "", err
	}
	var authors map[string]*object.Commit
	if only != nil {
		authors = c.lastCommits(ctx, cm, plumbing.NewHash(cursor), only)
	}
	obs := nhisync.Observation{Values: make([]nhisync.Value, len(c.fields))}
	err = c.files(ctx, cm, only, func(f *yamlFile) error {
		obs.Modified, obs.Actor = time.Time{}, ""
		if a := authors[f.path]; a != nil {
			obs.Modified, obs.Actor = a.Author.When.UTC(), a.Author.Email
		}
		for _, ch := range f.chunks {
			if ch.node == nil || (only != nil && only[f.path][string(ch.body)]) {
				continue
			}
			ok, err := c.observe(f.path, ch, &obs)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := emit(obs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return cm.Hash.String(), nil
}

// changedSince returns the paths changed between commit cursor and cm,
// each with the set of document texts its old version held, or nil (read
// everything) when cursor is "" or unknown here.
func (c *Connector) changedSince(cursor string, cm *object.Commit) (map[string]map[string]bool, error) {
	if cursor == "" || !plumbing.IsHash(cursor) {
		return nil, nil
	}
	if cursor == cm.Hash.String() {
		return map[string]map[string]bool{}, nil
	}
	old, err := c.repo.CommitObject(plumbing.NewHash(cursor))
	if err != nil {
		return nil, nil // history rewritten: read it all
	}
	ot, err := old.Tree()
	if err != nil {
		return nil, nil
	}
	nt, err := cm.Tree()
	if err != nil {
		return nil, c.unavail(err, "cannot read the tree of commit %s", cm.Hash)
	}
	changes, err := object.DiffTree(ot, nt)
	if err != nil {
		return nil, c.unavail(err, "cannot compare commits %s and %s", old.Hash, cm.Hash)
	}
	only := map[string]map[string]bool{}
	for _, ch := range changes {
		if ch.To.Name == "" || !c.matches(ch.To.Name) {
			continue
		}
		// Documents held unchanged in the old file are left out.
		before := map[string]bool{}
		if ch.From.Name != "" {
			if f, err := ot.File(ch.From.Name); err == nil {
				if data, err := blobBytes(f); err == nil {
					for _, d := range splitDocs(data) {
						before[string(d.body)] = true
					}
				}
			}
		}
		only[ch.To.Name] = before
	}
	return only, nil
}

// maxAuthorWalk bounds how many commits an incremental read walks to
// learn who last changed each file.
const maxAuthorWalk = 500

// lastCommits returns, for each path in only, the newest commit after
// since that changed it (walking first parents from head, at most
// maxAuthorWalk commits; paths not found there are left out).
func (c *Connector) lastCommits(ctx context.Context, head *object.Commit, since plumbing.Hash, only map[string]map[string]bool) map[string]*object.Commit {
	out := map[string]*object.Commit{}
	cm := head
	for n := 0; n < maxAuthorWalk && cm != nil && cm.Hash != since && len(out) < len(only) && ctx.Err() == nil; n++ {
		tree, err := cm.Tree()
		if err != nil {
			return out
		}
		var parent *object.Commit
		var ptree *object.Tree
		if cm.NumParents() > 0 {
			if parent, err = cm.Parent(0); err != nil {
				return out
			}
			if ptree, err = parent.Tree(); err != nil {
				return out
			}
		}
		changes, err := object.DiffTree(ptree, tree)
		if err != nil {
			return out
		}
		for _, ch := range changes {
			if _, ok := only[ch.To.Name]; ok && out[ch.To.Name] == nil {
				out[ch.To.Name] = cm
			}
		}
		cm = parent
	}
	return out
}

// observe fills obs from one document and reports false for one without
// an id (it cannot be linked). A document whose id key is given twice
// fails the read: which entity is meant cannot be told.
func (c *Connector) observe(path string, ch *chunk, obs *nhisync.Observation) (bool, error) {
	id, err := c.idOf(ch.node)
	if err != nil {
		return false, c.errorf(nhisync.EINVALID, "%s line %d: the entity's id cannot be read: %s", path, ch.line, nhisync.ErrorMessage(err))
	}
	if id == "" {
		return false, nil
	}
	obs.ID = id
	for i := range c.fields {
		fd := &c.fields[i]
		if !fd.m.Direction.Reads() {
			obs.Values[i] = nhisync.Value{}
			continue
		}
		v, err := native.Decode(nodeGet(ch.node, fd.path), fd.m)
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "entity %s (%s): %s", id, path, nhisync.ErrorMessage(err))
		}
		obs.Values[i] = v
	}
	return true, nil
}

// nodeGet returns the native value at p (nil when absent), or
// native.Invalid saying why it cannot be read.
func nodeGet(root *yaml.Node, p native.Path) any {
	n, err := p.NodeChecked(root)
	if err != nil {
		return native.Invalid{Reason: nhisync.ErrorMessage(err)}
	}
	if n == nil {
		return nil
	}
	v, err := native.NodeValue(n)
	if err != nil {
		return native.Invalid{Reason: nhisync.ErrorMessage(err)}
	}
	return v
}

func (c *Connector) idOf(root *yaml.Node) (string, error) {
	text := func(p native.Path) (string, error) {
		v := nodeGet(root, p)
		if inv, ok := v.(native.Invalid); ok {
			return "", errors.New(inv.Reason)
		}
		s, ok := native.Text(v)
		if !ok {
			return "", fmt.Errorf("%s is not text", p)
		}
		return strings.TrimSpace(s), nil
	}
	if c.id != nil {
		return text(c.id.path)
	}
	parts := make([]string, len(c.match))
	empty := true
	for i, k := range c.match {
		s, err := text(c.fields[k].path)
		if err != nil {
			return "", err
		}
		parts[i], empty = s, empty && s == ""
	}
	if empty {
		return "", nil
	}
	return strings.Join(parts, "/"), nil
}
