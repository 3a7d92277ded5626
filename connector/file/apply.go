package file

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/connector/native"
)

// maxAttempts bounds the read-check-write loop when someone else keeps
// changing the file while nhisync rewrites it.
const maxAttempts = 5

// errChanged: the file changed between reading it and replacing it.
var errChanged = errors.New("file changed while being rewritten")

// errNoExchange is exchange's error where the file system cannot swap
// two files.
var errNoExchange = errors.New("the file system cannot swap files")

// Apply applies writes by rewriting the file once for the batch. Each
// write is checked against the file as it is now: a record no longer
// holding an Old value is WriteStale and left alone; a record already
// holding every New value is WriteApplied without a change. The new file
// replaces the old one atomically, and only if the old one's content hash
// is still the one read (else the whole batch is redone, up to 5 times).
// Permissions are kept; the file gets the writer's owner.
//
// Create writes (systems with provision: true) append a record. Its id is
// the match fields joined (no id setting), the mapped id field's value, or
// a random hex id stored in the unmapped id field. A retried create finds
// the record it made (same match field values) instead of adding another.
//
// It returns *nhisync.Error EUNAVAIL when the file cannot be read or
// replaced, EINVALID when it is malformed, ECONFLICT when it kept changing.
func (c *Connector) Apply(ctx context.Context, writes []nhisync.Write) ([]nhisync.WriteResult, error) {
	if len(writes) == 0 {
		return []nhisync.WriteResult{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	path := c.path
	if p, err := filepath.EvalSymlinks(c.path); err == nil {
		path = p // replace the link's target, not the link
	}
	if f, ok := c.format.(csvFormat); ok && !slices.ContainsFunc(writes, func(w nhisync.Write) bool { return w.Create }) {
		return c.applyCSV(ctx, f, path, writes)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, sum, info, err := c.readAll(ctx, path)
		if err != nil {
			return nil, err
		}
		t, err := c.format.load(data)
		if err != nil {
			return nil, c.readError(err)
		}
		a := &applier{c: c, t: t}
		results := make([]nhisync.WriteResult, len(writes))
		for i, w := range writes {
			results[i] = a.apply(w)
		}
		if !a.dirty {
			return results, nil
		}
		out, err := t.encode()
		if err != nil {
			return nil, &nhisync.Error{Code: nhisync.EINTERNAL, Message: fmt.Sprintf("system %s: encoding the new file failed", c.sys.Name), Err: err}
		}
		err = c.replace(ctx, path, out, sum, info)
		if errors.Is(err, errChanged) {
			if attempt < maxAttempts {
				continue
			}
			return nil, c.keptChanging(err)
		}
		if err != nil {
			return nil, err
		}
		return results, nil
	}
}

// keptChanging is the error of a batch given up after maxAttempts.
func (c *Connector) keptChanging(err error) error {
	return &nhisync.Error{Code: nhisync.ECONFLICT, Message: fmt.Sprintf("system %s: %s kept changing while nhisync rewrote it; nothing was written", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
}

// ApplyWhole reports that every Apply rewrites the whole file, so the
// engine sends a pass's writes in one call (nhisync.WholeApplier).
func (c *Connector) ApplyWhole() bool { return true }

// readError turns a malformed-file error into *nhisync.Error EINVALID
// naming the file and line; other errors pass unchanged.
func (c *Connector) readError(err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		return &nhisync.Error{Code: nhisync.EINVALID, Message: fmt.Sprintf("system %s: %s %s", c.sys.Name, c.sys.Settings.String(SettingPath), se.Error())}
	}
	return err
}

// replace writes out to a temp file next to path, syncs it, and puts it
// in place of path unless path no longer holds the file read (opened as
// read, hashing to old): see install.
func (c *Connector) replace(ctx context.Context, path string, out []byte, old fileSum, read fs.FileInfo) error {
	return c.replaceWith(ctx, path, func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	}, old, read)
}

// replaceWith is replace with the new content written by write (which may
// return errChanged when what it reads moved under it).
func (c *Connector) replaceWith(ctx context.Context, path string, write func(io.Writer) error, old fileSum, read fs.FileInfo) error {
	n, err := c.createNew(path)
	if err != nil {
		return err
	}
	if err := write(n.w); err != nil {
		n.discard()
		if errors.Is(err, errChanged) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		var ne *nhisync.Error
		if errors.As(err, &ne) {
			return err
		}
		return n.writeError(c, err)
	}
	return c.install(ctx, path, n, old, read)
}

// newFile is the temp file a rewrite writes beside the file it replaces.
type newFile struct {
	f    *os.File
	w    *bufio.Writer
	name string
}

// createNew creates the temp file that will replace path.
func (c *Connector) createNew(path string) (*newFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".nhisync-*")
	if err != nil {
		return nil, &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot create a temp file beside %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
	}
	return &newFile{f: tmp, w: bufio.NewWriterSize(&writeAhead{f: tmp}, 256<<10), name: tmp.Name()}, nil
}

// writebackEvery is how much of a new file is written before the kernel
// is asked to start writing it out (writeAhead).
const writebackEvery = 8 << 20

// writeAhead writes a new file and has the kernel write out each
// writebackEvery bytes as soon as they are written (startWriteback),
// while the rewrite reads on: the fsync before the swap then waits for
// the file's last few MiB, not for all of it (a million-NHI export is some
// 400 MB, about a second of disk). The fsync still makes the whole file
// durable before it replaces the old one.
type writeAhead struct {
	f *os.File
	// written is how much was written; started how much of it is being
	// written out.
	written, started int64
}

func (w *writeAhead) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackEvery {
		startWriteback(w.f, w.started, w.written-w.started)
		w.started = w.written
	}
	return n, err
}

// discard closes and removes the temp file.
func (n *newFile) discard() {
	n.f.Close()
	os.Remove(n.name)
}

func (n *newFile) writeError(c *Connector, err error) error {
	return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot write the new %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
}

// install syncs the temp file n and puts it in place of path, with the
// permissions of the file read, unless path no longer holds that file
// (errChanged): the one opened as read (its stat then), whose content
// hashed to old. The temp file is gone afterwards, in place or removed,
// but for a file that is not ours found at its name after a swap back
// (kept, and named in the error).
//
// On Linux the new file is swapped in with renameat2(RENAME_EXCHANGE) and
// the file swapped out is hashed: when it no longer hashes to old (an edit
// landed since the read), it is swapped back and the batch redone, so the
// edit is not lost (see exchange for what remains). Before the swap only
// the file's stat is compared with the read's (inode, size, modification
// and change times: an edit found there costs no swap); hashing the whole
// file there too read it a third time for what the check after the swap
// finds anyway. Where files cannot be swapped, the content is hashed
// before a plain rename (an edit landing between the two is lost).
func (c *Connector) install(ctx context.Context, path string, n *newFile, old fileSum, read fs.FileInfo) error {
	err := n.w.Flush()
	if err == nil {
		err = n.f.Chmod(read.Mode().Perm())
	}
	if err == nil {
		err = n.f.Sync()
	}
	// The swap back below tells our file by its identity: what is at its
	// name then is ours only if it is this very file.
	var ours fs.FileInfo
	if err == nil {
		ours, err = n.f.Stat()
	}
	if cerr := n.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(n.name)
		return n.writeError(c, err)
	}
	name := n.name
	done := false
	defer func() {
		if !done {
			os.Remove(name)
		}
	}()
	if c.beforeCheck != nil {
		c.beforeCheck()
	}
	if !unmoved(path, read) {
		return errChanged
	}
	if c.beforeSwap != nil {
		c.beforeSwap()
	}
	err = exchange(name, path)
	switch {
	case errors.Is(err, errNoExchange):
		if !c.holds(ctx, path, old) {
			return errChanged
		}
		if err := os.Rename(name, path); err != nil {
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot replace %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
		}
		done = true // renamed over path
	case err != nil:
		return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: cannot replace %s", c.sys.Name, c.sys.Settings.String(SettingPath)), Err: err}
	case !c.holds(ctx, name, old):
		// Someone wrote since the read: their file is now at name. Swap it
		// back and redo the batch against it.
		err := exchange(name, path)
		if err == nil {
			if now, serr := os.Lstat(name); serr != nil || !os.SameFile(now, ours) {
				err = errors.New("yet another file arrived during the swap back")
			}
		}
		if err != nil {
			done = true // a file that is not ours stays at name, never deleted
			return &nhisync.Error{Code: nhisync.EUNAVAIL, Message: fmt.Sprintf("system %s: %s changed while nhisync replaced it, and putting the changed file back failed; the file swapped out is kept as %s", c.sys.Name, c.sys.Settings.String(SettingPath), filepath.Base(name)), Err: err}
		}
		return errChanged
	}
	// Make the rename durable. The file is replaced whatever happens here,
	// so a failure must not report the batch as not applied.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// unmoved reports whether the file at path is still the regular file read
// was the stat of when it was opened: the same inode, size, modification
// time and (where the system keeps one) change time, which a write moves
// and no one sets back.
func unmoved(path string, read fs.FileInfo) bool {
	now, err := os.Stat(path)
	return err == nil && now.Mode().IsRegular() && os.SameFile(now, read) && now.Size() == read.Size() &&
		now.ModTime().Equal(read.ModTime()) && changeTime(now) == changeTime(read)
}

// holds reports whether the file at path is a regular file hashing to sum.
func (c *Connector) holds(ctx context.Context, path string, sum fileSum) bool {
	f, _, err := c.openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	c.contentChecks++
	g := newGuardedReader(ctx, f, c.maxBytes)
	if _, err := io.Copy(io.Discard, g); err != nil {
		return false
	}
	return g.sum() == sum
}

// applier applies one batch to a loaded table.
type applier struct {
	c     *Connector
	t     table
	ids   map[string][]int
	match map[string][]int // by mapped match values, for explicit ids
	dirty bool
}

// pending is a native value to store in a field.
type pending struct {
	fd *field
	v  any
}

func (a *applier) index() {
	if a.ids != nil {
		return
	}
	a.ids = make(map[string][]int, a.t.len())
	for i := range a.t.len() {
		if id := a.c.idOf(a.t.row(i)); id != "" {
			a.ids[id] = append(a.ids[id], i)
		}
	}
}

func failed(err error) nhisync.WriteResult {
	return nhisync.WriteResult{Status: nhisync.WriteFailed, Err: err}
}

func (a *applier) apply(w nhisync.Write) nhisync.WriteResult {
	a.index()
	if w.Create {
		return a.create(w)
	}
	rows := a.ids[w.ID]
	switch len(rows) {
	case 0:
		return nhisync.WriteResult{Status: nhisync.WriteMissing, ID: w.ID}
	case 1:
	default:
		return failed(a.c.errorf(nhisync.EINVALID, "id %q is held by %d records; make ids unique to write to them", w.ID, len(rows)))
	}
	i := rows[0]
	res, sets := a.plan(i, w.Changes)
	if res.Status != "" {
		return res
	}
	a.store(i, w.ID, sets)
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: w.ID}
}

// writable returns the field a change writes, or why it may not.
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

// plan compares every change with record i: a zero result and the values
// to store when the write may go ahead.
func (a *applier) plan(i int, changes []nhisync.Change) (nhisync.WriteResult, []pending) {
	r := a.t.row(i)
	if m, ok := r.(interface{ malformed() string }); ok && m.malformed() != "" {
		return failed(a.c.errorf(nhisync.EINVALID, "%s; nhisync does not write to a malformed row", m.malformed())), nil
	}
	todo := make([]*field, 0, len(changes))
	news := make([]nhisync.Value, 0, len(changes))
	stale := false
	for _, ch := range changes {
		fd, err := a.writable(ch.Field)
		if err != nil {
			return failed(err), nil
		}
		cur, err := decode(r, fd)
		if err != nil {
			return failed(a.c.errorf(nhisync.EINVALID, "%s", nhisync.ErrorMessage(err))), nil
		}
		if p := cur.Problem(); p != "" {
			return failed(a.c.errorf(nhisync.EINVALID, "field %s: %s; fix it in the file before nhisync writes to it", ch.Field, p)), nil
		}
		typ := fd.m.Type
		cur = typ.Canonical(cur)
		switch {
		case cur.Equal(typ.Canonical(ch.New)):
			// Already there: a retried write, or the same change made twice.
		case cur.Equal(typ.Canonical(ch.Old)):
			todo = append(todo, fd)
			news = append(news, ch.New)
		default:
			stale = true
		}
	}
	if stale {
		return nhisync.WriteResult{Status: nhisync.WriteStale}, nil
	}
	sets := make([]pending, len(todo))
	for k, fd := range todo {
		if err := a.t.check(i, fd); err != nil {
			return failed(a.c.errorf(nhisync.EINVALID, "field %s: %s", fd.m.Field, nhisync.ErrorMessage(err))), nil
		}
		v, err := native.Encode(news[k], fd.m, a.t.arrays(i, fd))
		if err != nil {
			return failed(err), nil
		}
		sets[k] = pending{fd, v}
	}
	return nhisync.WriteResult{}, sets
}

// store writes values into record i and keeps the id index right when a
// write changes the record's id (its match fields, without an id field).
func (a *applier) store(i int, id string, sets []pending) {
	if len(sets) == 0 {
		return
	}
	for _, s := range sets {
		a.t.set(i, s.fd, s.v)
	}
	a.dirty = true
	if nid := a.c.idOf(a.t.row(i)); nid != id {
		rows := a.ids[id]
		for k, r := range rows {
			if r == i {
				a.ids[id] = append(rows[:k], rows[k+1:]...)
				break
			}
		}
		if nid != "" {
			a.ids[nid] = append(a.ids[nid], i)
		}
	}
	a.match = nil
}

func (a *applier) create(w nhisync.Write) nhisync.WriteResult {
	c := a.c
	if !c.sys.Provision {
		return failed(c.errorf(nhisync.EINVALID, "this system does not take new records (set provision: true to allow it)"))
	}
	vals := make([]any, len(c.fields))
	given := make([]bool, len(c.fields))
	var sets []pending
	for _, ch := range w.Changes {
		fd, err := a.writable(ch.Field)
		if err != nil {
			return failed(err)
		}
		k := fieldIndex(c, fd)
		v, err := native.Encode(ch.New, fd.m, c.format.nested())
		if err != nil {
			return failed(err)
		}
		vals[k], given[k] = v, true
		if v != nil {
			sets = append(sets, pending{fd, v})
		}
	}
	// A record holding the same match values may be this create, retried.
	if rows := a.existing(vals, given); len(rows) > 0 {
		if len(rows) > 1 {
			return failed(c.errorf(nhisync.EINVALID, "%d records already hold the new record's match fields", len(rows)))
		}
		res, todo := a.plan(rows[0], w.Changes)
		id := c.idOf(a.t.row(rows[0]))
		if res.Status == "" && len(todo) > 0 {
			res.Status = nhisync.WriteStale // a different record with the same key
		}
		if res.Status == "" {
			res.Status = nhisync.WriteApplied
		}
		res.ID = id
		return res
	}
	var id string
	switch {
	case c.id == nil:
		id = compositeID(c, vals)
	case c.idMapped() >= 0:
		id, _ = native.Text(vals[c.idMapped()])
		id = strings.TrimSpace(id)
	default:
		for id == "" || len(a.ids[id]) > 0 {
			b := make([]byte, 8)
			if _, err := io.ReadFull(c.Rand, b); err != nil {
				return failed(&nhisync.Error{Code: nhisync.EINTERNAL, Message: "cannot make a random id", Err: err})
			}
			id = hex.EncodeToString(b)
		}
		sets = append([]pending{{c.id, id}}, sets...)
	}
	if id == "" {
		return failed(c.errorf(nhisync.EINVALID, "a new record needs a value for its id"))
	}
	if len(a.ids[id]) > 0 {
		return failed(c.errorf(nhisync.EINVALID, "a record with id %q exists already", id))
	}
	i := a.t.add()
	for _, s := range sets {
		a.t.set(i, s.fd, s.v)
	}
	a.dirty = true
	a.ids[id] = append(a.ids[id], i)
	a.match = nil
	return nhisync.WriteResult{Status: nhisync.WriteApplied, ID: id}
}

func fieldIndex(c *Connector, fd *field) int {
	for k := range c.fields {
		if &c.fields[k] == fd {
			return k
		}
	}
	return -1
}

// idMapped returns the index of the field mapped to the id's native name
// (-1 when the id field is not mapped).
func (c *Connector) idMapped() int {
	for k, fd := range c.fields {
		if c.id != nil && fd.name == c.id.name {
			return k
		}
	}
	return -1
}

func compositeID(c *Connector, vals []any) string {
	parts := make([]string, len(c.match))
	empty := true
	for k, fi := range c.match {
		s, _ := native.Text(vals[fi])
		parts[k] = strings.TrimSpace(s)
		empty = empty && parts[k] == ""
	}
	if empty {
		return ""
	}
	return strings.Join(parts, "/")
}

// existing returns the records already holding the match field values of
// a create, when the system maps every match field and the create gives
// them all.
func (a *applier) existing(vals []any, given []bool) []int {
	c := a.c
	if c.id == nil {
		return a.ids[compositeID(c, vals)]
	}
	var idx []int
	for _, mf := range c.kind.Match {
		k := -1
		for j, m := range c.sys.Fields {
			if m.Field == mf {
				k = j
			}
		}
		if k < 0 || !given[k] {
			return nil
		}
		idx = append(idx, k)
	}
	key := func(text func(k int) string) string {
		var b strings.Builder
		for _, k := range idx {
			b.WriteString(strings.TrimSpace(text(k)))
			b.WriteByte(0x1f)
		}
		return b.String()
	}
	if a.match == nil {
		a.match = map[string][]int{}
		for i := range a.t.len() {
			r := a.t.row(i)
			k := key(func(k int) string { return rowText(r, &c.fields[k]) })
			a.match[k] = append(a.match[k], i)
		}
	}
	return a.match[key(func(k int) string { s, _ := native.Text(vals[k]); return s })]
}
