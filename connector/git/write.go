package git

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"go.yaml.in/yaml/v3"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// maxAttempts bounds how often a batch starts again because the branch
// moved while it was being committed.
const maxAttempts = 5

// Apply applies writes as one commit on the branch. Each write is checked
// against the branch head the commit is made on: an entity no longer
// holding an Old value is WriteStale and left alone; one already holding
// every New value is WriteApplied without a change. The branch moves to
// the new commit only if it still points at that head (else the batch
// starts again from the new head, up to 5 times); with `push` set, the
// commit is then pushed, and a refused push moves the branch back.
//
// It returns *nhisync.Error EUNAVAIL when the repository cannot be read,
// written or pushed to, EINVALID when a catalog file is not YAML, and
// ECONFLICT when the branch kept moving.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	if len(writes) == 0 {
		return []nhisync.WriteResult{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		cm, err := c.head(ctx)
		if err != nil {
			return nil, err
		}
		a := &applier{c: c, ids: map[string][]*entity{}, dirty: map[*yamlFile]bool{}}
		err = c.files(ctx, cm, nil, func(f *yamlFile) error {
			a.files = append(a.files, f)
			for _, ch := range f.chunks {
				if ch.node == nil {
					continue
				}
				if id, err := c.idOf(ch.node); err == nil && id != "" {
					a.ids[id] = append(a.ids[id], &entity{file: f, ch: ch})
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		res := make([]nhisync.WriteResult, len(writes))
		for i, w := range writes {
			res[i] = a.apply(w)
		}
		if len(a.dirty) == 0 {
			return res, nil
		}
		moved, err := c.commit(ctx, cm, a)
		if err != nil {
			return nil, err
		}
		if !moved {
			return res, nil
		}
	}
	return nil, c.errorf(nhisync.ECONFLICT, "branch %s kept moving while nhisync committed to it (%d tries); the writes will be tried again next pass", c.branch.Short(), maxAttempts)
}

type entity struct {
	file *yamlFile
	ch   *chunk
}

type applier struct {
	c     *Connector
	files []*yamlFile
	ids   map[string][]*entity
	dirty map[*yamlFile]bool
	// log lists what changed, one line per write, for the commit message.
	log []string
}

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

func (a *applier) writable(name string) (*field, error) {
	for i, m := range a.c.sys.Fields {
		if m.Field != name {
			continue
		}
		if !a.c.sys.Direction.Writes() || !m.Direction.Writes() {
			return nil, a.c.errorf(nhisync.EINVALID, "field %s is read-only in this system", name)
		}
		return &a.c.fields[i], nil
	}
	return nil, a.c.errorf(nhisync.EINVALID, "field %s is not mapped in this system", name)
}

type pending struct {
	fd *field
	ch nhisync.Change
}

// plan checks a write's changes against an entity: a failed or stale
// result, or the changes still to make.
func (a *applier) plan(e *entity, changes []nhisync.Change) (nhisync.WriteResult, []pending) {
	var todo []pending
	stale := false
	for _, ch := range changes {
		fd, err := a.writable(ch.Field)
		if err != nil {
			return failed(err), nil
		}
		if err := fd.path.CheckNode(e.ch.node); err != nil {
			return failed(a.c.errorf(nhisync.EINVALID, "%s: %s", e.file.path, nhisync.ErrorMessage(err))), nil
		}
		cur, err := native.Decode(nodeGet(e.ch.node, fd.path), fd.m)
		if err != nil {
			return failed(err), nil
		}
		t := fd.m.Type
		switch {
		case t.Canonical(cur).Equal(t.Canonical(ch.New)):
		case t.Canonical(cur).Equal(t.Canonical(ch.Old)):
			todo = append(todo, pending{fd, ch})
		default:
			stale = true
		}
	}
	if stale {
		return nhisync.WriteResult{Status: nhisync.WriteStale}, nil
	}
	return nhisync.WriteResult{}, todo
}

func (a *applier) apply(w nhisync.Write) nhisync.WriteResult {
	if w.Create {
		return a.createEntity(w)
	}
	es := a.ids[w.ID]
	switch len(es) {
	case 0:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
	case 1:
	default:
		return failed(a.c.errorf(nhisync.EINVALID, "id %q is held by %d entities; make ids unique to write to them", w.ID, len(es)))
	}
	res, todo := a.plan(es[0], w.Changes)
	if res.Status != "" {
		res.ID = w.ID
		return res
	}
	if err := a.store(es[0], w.ID, todo); err != nil {
		return failed(err)
	}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
}

// store makes the changes in an entity's node tree.
func (a *applier) store(e *entity, id string, todo []pending) error {
	if len(todo) == 0 {
		return nil
	}
	var parts []string
	for _, p := range todo {
		old := p.fd.path.Node(e.ch.node)
		arrays := old == nil || old.Kind == yaml.SequenceNode || old.ShortTag() == "!!null"
		v, err := native.Encode(p.ch.New, p.fd.m, arrays)
		if err != nil {
			return err
		}
		if v == nil {
			p.fd.path.DeleteNode(e.ch.node)
		} else if err := p.fd.path.SetNode(e.ch.node, native.EncodeNode(v, old)); err != nil {
			return a.c.errorf(nhisync.EINVALID, "%s: %s", e.file.path, nhisync.ErrorMessage(err))
		}
		part := fmt.Sprintf("%s %s → %s", p.ch.Field, a.show(p.ch.Field, p.ch.Old), a.show(p.ch.Field, p.ch.New))
		if p.ch.Reason != "" {
			part += " (" + p.ch.Reason + ")"
		}
		parts = append(parts, part)
	}
	e.ch.dirty = true
	a.dirty[e.file] = true
	a.log = append(a.log, fmt.Sprintf("- %s (%s): %s", id, e.file.path, strings.Join(parts, "; ")))
	// The id may have changed.
	if nid, err := a.c.idOf(e.ch.node); err == nil && nid != id {
		a.ids[id] = removeEntity(a.ids[id], e)
		if nid != "" {
			a.ids[nid] = append(a.ids[nid], e)
		}
	}
	return nil
}

func removeEntity(es []*entity, e *entity) []*entity {
	out := es[:0]
	for _, x := range es {
		if x != e {
			out = append(out, x)
		}
	}
	return out
}

// show writes a value for the commit message; a sensitive field's value
// is never written there.
func (a *applier) show(field string, v nhisync.Value) string {
	if f := a.c.kind.Fields[field]; f != nil && f.Sensitive {
		return "(sensitive)"
	}
	if v.IsZero() {
		return "(empty)"
	}
	if v.IsSet() {
		return "[" + v.Join(", ") + "]"
	}
	return fmt.Sprintf("%q", v.Text())
}

// createEntity appends a new document (systems with provision: true). A
// retried create finds the entity it made (same mapped values) instead of
// adding another.
func (a *applier) createEntity(w nhisync.Write) nhisync.WriteResult {
	c := a.c
	if !c.sys.Provision {
		return failed(c.errorf(nhisync.EINVALID, "this system does not take new records (set provision: true to allow it)"))
	}
	for _, ch := range w.Changes {
		if _, err := a.writable(ch.Field); err != nil {
			return failed(err)
		}
	}
	for id, es := range a.ids {
		if len(es) != 1 {
			continue
		}
		if res, todo := a.plan(es[0], w.Changes); res.Status == "" && len(todo) == 0 {
			return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
		}
	}
	node := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	e := &entity{ch: &chunk{node: node, doc: &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{node}}, dirty: true}}
	var todo []pending
	for _, ch := range w.Changes {
		fd, _ := a.writable(ch.Field)
		ch.Old = nhisync.Value{}
		todo = append(todo, pending{fd, ch})
	}
	var id string
	mappedID := c.id != nil && slicesContainsPath(c.fields, c.id.path)
	if c.id != nil && !mappedID {
		for id == "" || len(a.ids[id]) > 0 {
			b := make([]byte, 8)
			if _, err := io.ReadFull(c.Rand, b); err != nil {
				return failed(&nhisync.Error{Code: nhisync.EINTERNAL, Message: "cannot make a random id", Err: err})
			}
			id = hex.EncodeToString(b)
		}
		_ = c.id.path.SetNode(node, native.EncodeNode(id, nil))
	}
	f := a.createFile()
	f.chunks = append(f.chunks, e.ch)
	e.file = f
	a.dirty[f] = true
	if err := a.store(e, "(new)", todo); err != nil {
		return failed(err)
	}
	nid, err := c.idOf(node)
	if err != nil || nid == "" {
		return failed(c.errorf(nhisync.EINVALID, "a new entity needs a value for its id"))
	}
	if len(a.ids[nid]) > 1 {
		return failed(c.errorf(nhisync.EINVALID, "an entity with id %q exists already", nid))
	}
	a.log[len(a.log)-1] = strings.Replace(a.log[len(a.log)-1], "(new)", nid+" (new)", 1)
	a.ids[nid] = []*entity{e}
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: nid}
}

func slicesContainsPath(fields []field, p native.Path) bool {
	for _, f := range fields {
		if f.path.String() == p.String() {
			return true
		}
	}
	return false
}

// createFile returns the file new entities go to: create_path, else the
// first file the glob matched, else catalog-info.yaml.
func (a *applier) createFile() *yamlFile {
	name := filepath.ToSlash(filepath.Clean(a.c.create))
	if a.c.create == "" {
		name = "catalog-info.yaml"
		if len(a.files) > 0 {
			name = a.files[0].path
		}
	}
	for _, f := range a.files {
		if f.path == name {
			return f
		}
	}
	f := &yamlFile{path: name}
	a.files = append(a.files, f)
	return f
}

// encodeFile writes a file back: untouched documents byte for byte,
// written ones re-encoded from their node trees.
func encodeFile(f *yamlFile) ([]byte, error) {
	var b bytes.Buffer
	for i, ch := range f.chunks {
		sep := ch.sep
		if i > 0 && len(sep) == 0 {
			sep = []byte("---\n")
		}
		if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
			b.WriteByte('\n')
		}
		b.Write(sep)
		if !ch.dirty {
			b.Write(ch.body)
			continue
		}
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(ch.doc); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// commit writes the dirty files as one commit on top of cm and moves the
// branch to it. It reports true when the branch had moved (nothing was
// committed; the batch must start again).
func (c *Connector) commit(ctx context.Context, cm *object.Commit, a *applier) (bool, error) {
	files := map[string][]byte{}
	for f := range a.dirty {
		data, err := encodeFile(f)
		if err != nil {
			return false, c.errorf(nhisync.EINVALID, "cannot write %s back as YAML: %v", f.path, err)
		}
		files[f.path] = data
	}
	base, err := cm.Tree()
	if err != nil {
		return false, c.unavail(err, "cannot read the tree of commit %s", cm.Hash)
	}
	th, err := c.writeTree(base, files)
	if err != nil {
		return false, c.unavail(err, "cannot write the new tree")
	}
	sig := object.Signature{Name: c.author.Name, Email: c.author.Address, When: c.Now()}
	msg := c.msg + "\n\n" + strings.Join(a.log, "\n") + "\n"
	nc := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: th, ParentHashes: []plumbing.Hash{cm.Hash}}
	ch, err := c.storeObject(nc)
	if err != nil {
		return false, c.unavail(err, "cannot write the commit")
	}
	if c.beforeSwap != nil {
		c.beforeSwap()
	}
	if c.remote {
		return c.pushTo(ctx, "origin", ch, cm.Hash)
	}
	newRef, oldRef := plumbing.NewHashReference(c.branch, ch), plumbing.NewHashReference(c.branch, cm.Hash)
	if err := c.repo.Storer.CheckAndSetReference(newRef, oldRef); err != nil {
		if errors.Is(err, storage.ErrReferenceHasChanged) {
			return true, nil
		}
		return false, c.unavail(err, "cannot move branch %s", c.branch.Short())
	}
	if c.push == "" {
		return false, nil
	}
	moved, err := c.pushTo(ctx, c.push, ch, cm.Hash)
	if err != nil || moved {
		// Undo the commit: what the system holds is what reached the remote.
		if rerr := c.repo.Storer.CheckAndSetReference(oldRef, newRef); rerr != nil && err == nil {
			err = c.unavail(rerr, "the push was refused and branch %s could not be moved back", c.branch.Short())
		}
	}
	return moved, err
}

// pushTo pushes the branch, now at commit ch, to a remote (a configured
// remote's name, or a URL or path). It reports true when the remote's
// branch moved past parent (someone else pushed): start again.
func (c *Connector) pushTo(ctx context.Context, target string, ch, parent plumbing.Hash) (bool, error) {
	spec := config.RefSpec(fmt.Sprintf("%s:%s", c.branch, c.branch))
	var remote *gogit.Remote
	if r, err := c.repo.Remote(target); err == nil {
		remote = r
	} else {
		url := target
		if !isURL(url) && !filepath.IsAbs(url) {
			url = filepath.Join(c.sys.BaseDir, url)
		}
		remote = gogit.NewRemote(c.repo.Storer, remoteConfig("nhisync-push", url))
	}
	if c.remote {
		// The clone's own branch carries the commit to push.
		if err := c.repo.Storer.SetReference(plumbing.NewHashReference(c.branch, ch)); err != nil {
			return false, c.unavail(err, "cannot move branch %s in the clone", c.branch.Short())
		}
	}
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := remote.PushContext(pctx, &gogit.PushOptions{RemoteName: remote.Config().Name, RefSpecs: []config.RefSpec{spec}})
	switch {
	case err == nil || errors.Is(err, gogit.NoErrAlreadyUpToDate):
		return false, nil
	case errors.Is(err, gogit.ErrNonFastForwardUpdate) || strings.Contains(err.Error(), "non-fast-forward"):
		if c.remote {
			_ = c.repo.Storer.SetReference(plumbing.NewHashReference(c.branch, parent))
		}
		return true, nil
	}
	if c.remote {
		_ = c.repo.Storer.SetReference(plumbing.NewHashReference(c.branch, parent))
	}
	return false, c.unavail(err, "cannot push branch %s to %s; nothing was committed", c.branch.Short(), redactURL(target))
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func (c *Connector) storeObject(o encoder) (plumbing.Hash, error) {
	obj := c.repo.Storer.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return c.repo.Storer.SetEncodedObject(obj)
}

func (c *Connector) storeBlob(data []byte) (plumbing.Hash, error) {
	obj := c.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return c.repo.Storer.SetEncodedObject(obj)
}

// writeTree returns the hash of base with files (path → content) put in,
// making the subtrees on their way.
func (c *Connector) writeTree(base *object.Tree, files map[string][]byte) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if base != nil {
		entries = append(entries, base.Entries...)
	}
	find := func(name string) int {
		for i, e := range entries {
			if e.Name == name {
				return i
			}
		}
		return -1
	}
	put := func(e object.TreeEntry) {
		if i := find(e.Name); i >= 0 {
			entries[i] = e
		} else {
			entries = append(entries, e)
		}
	}
	subs := map[string]map[string][]byte{}
	for p, data := range files {
		dir, rest, nested := strings.Cut(p, "/")
		if !nested {
			h, err := c.storeBlob(data)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			mode := filemode.Regular
			if i := find(p); i >= 0 && entries[i].Mode == filemode.Executable {
				mode = filemode.Executable
			}
			put(object.TreeEntry{Name: p, Mode: mode, Hash: h})
			continue
		}
		if subs[dir] == nil {
			subs[dir] = map[string][]byte{}
		}
		subs[dir][rest] = data
	}
	for dir, sub := range subs {
		var st *object.Tree
		if i := find(dir); i >= 0 && entries[i].Mode == filemode.Dir {
			t, err := object.GetTree(c.repo.Storer, entries[i].Hash)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			st = t
		}
		h, err := c.writeTree(st, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		put(object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h})
	}
	// Git orders entries by name, a directory's name as if it ended in /.
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	return c.storeObject(&object.Tree{Entries: entries})
}
